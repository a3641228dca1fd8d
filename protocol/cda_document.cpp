#include "protocol/cda_document.hpp"

#include <pugixml.hpp>
#include <vector>

#include "protocol/ascii.hpp"
#include "protocol/ins_matricule.hpp"

namespace mssgate::protocol {
namespace {

// The longest document code or code system kept (as for the X-MSS-CODECDA claims).
constexpr size_t kMaxCodeBytes = 64;

// CDA R2's namespace: every element read must be in it, prefixed or not.
constexpr std::string_view kHl7Namespace = "urn:hl7-org:v3";

// Element names without their namespace prefix: CDA is in urn:hl7-org:v3, often unprefixed.
std::string_view local_name(const pugi::xml_node& node) {
  std::string_view name = node.name();
  size_t colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// Whether the element is in the HL7 v3 namespace: its prefix (or the default namespace) as the
// nearest declaration among it and its ancestors binds it. An element in another namespace, or
// in none, is not CDA's, whatever its local name.
bool in_hl7_namespace(const pugi::xml_node& element) {
  std::string_view name = element.name();
  size_t colon = name.find(':');
  std::string attribute =
      colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(name.substr(0, colon));
  for (pugi::xml_node n = element; n && n.type() == pugi::node_element; n = n.parent()) {
    if (pugi::xml_attribute declared = n.attribute(attribute.c_str()))
      return declared.value() == kHl7Namespace;
  }
  return false;
}

bool is_cda_element(const pugi::xml_node& node, std::string_view name) {
  return node.type() == pugi::node_element && local_name(node) == name && in_hl7_namespace(node);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
  for (auto c = parent.first_child(); c; c = c.next_sibling()) {
    if (is_cda_element(c, name)) return c;
  }
  return {};
}

std::vector<pugi::xml_node> children(const pugi::xml_node& parent, std::string_view name) {
  std::vector<pugi::xml_node> out;
  for (auto c = parent.first_child(); c; c = c.next_sibling()) {
    if (is_cda_element(c, name)) out.push_back(c);
  }
  return out;
}

// Whether the parsed document has a DOCTYPE: the check of the bytes misses one written in
// another encoding than UTF-8 (UTF-16, UTF-32), which pugixml converts before parsing.
bool has_doctype_node(const pugi::xml_document& document) {
  for (auto n = document.first_child(); n; n = n.next_sibling()) {
    if (n.type() == pugi::node_doctype) return true;
  }
  return false;
}

bool has_text(const pugi::xml_node& node) {
  std::string_view text = node.child_value();
  return text.find_first_not_of(" \t\r\n") != std::string_view::npos;
}

size_t depth_of(const pugi::xml_node& root, size_t cap) {
  // Iterative: a hostile document must not exhaust the stack.
  size_t max_depth = 0;
  std::vector<std::pair<pugi::xml_node, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (depth > max_depth) max_depth = depth;
    if (max_depth > cap) return max_depth;
    for (auto c = node.first_child(); c; c = c.next_sibling())
      stack.emplace_back(c, depth + 1);
  }
  return max_depth;
}

bool declares_doctype(std::string_view xml) {
  // Any DTD, internal subset or entity declaration: refused before parsing.
  for (size_t at = xml.find("<!"); at != std::string_view::npos; at = xml.find("<!", at + 2)) {
    std::string_view rest = xml.substr(at + 2);
    if (ascii_istarts_with(rest, "DOCTYPE") || ascii_istarts_with(rest, "ENTITY")) return true;
  }
  return false;
}

// ClinicalDocument/code. Codes go to the journal, the indicator log and the exports: kept only
// when they look like codes (as the X-MSS-CODECDA claims must), so that no free text of a
// sender's goes there.
void read_document_code(const pugi::xml_node& root, CdaFacts& facts) {
  auto code = child(root, "code");
  if (!code) return;
  auto word = [](const char* value) -> std::string {
    if (*value == '\0') return {};
    return printable_word(value, kMaxCodeBytes) ? value : "invalid";
  };
  facts.code = word(code.attribute("code").value());
  facts.code_system = word(code.attribute("codeSystem").value());
}

// The best of the patient's INS ids: a production one (NIR or NIA) over a test one, a
// well-formed matricule over one that is not, the NIR over the NIA. Only the verdict on the
// value is kept.
void read_patient_ins(const pugi::xml_node& patient_role, CdaFacts& facts) {
  auto rank = [](CdaFacts::Ins kind, bool well_formed) {
    CdaFacts candidate;
    candidate.ins = kind;
    return (candidate.production_ins() ? 4 : 0) + (well_formed ? 2 : 0) +
           (kind == CdaFacts::Ins::kProduction ? 1 : 0);
  };
  int best = -1;
  for (const auto& id : children(patient_role, "id")) {
    auto kind = ins_kind_of_oid(id.attribute("root").value());
    std::string_view value = id.attribute("extension").value();
    if (kind == CdaFacts::Ins::kAbsent || value.empty()) continue;
    bool well_formed = check_ins_matricule(value) == InsMatricule::kWellFormed;
    if (rank(kind, well_formed) > best) {
      best = rank(kind, well_formed);
      facts.ins = kind;
      facts.ins_well_formed = well_formed;
    }
  }
}

// Whether each of the four identity traits is there, never what it says.
void read_patient_traits(const pugi::xml_node& patient, CdaFacts& facts) {
  for (const auto& name : children(patient, "name")) {
    for (const auto& family : children(name, "family")) {
      std::string_view qualifier = family.attribute("qualifier").value();
      if (has_text(family) && (qualifier.empty() || qualifier == "BR")) facts.birth_name = true;
    }
    for (const auto& given : children(name, "given")) {
      if (has_text(given)) facts.given_name = true;
    }
  }
  if (auto gender = child(patient, "administrativeGenderCode")) {
    std::string_view code = gender.attribute("code").value();
    facts.sex = code == "M" || code == "F";
  }
  if (auto birth = child(patient, "birthTime"))
    facts.birth_date = *birth.attribute("value").value() != '\0';
}

}  // namespace

CdaFacts::Ins ins_kind_of_oid(std::string_view oid) {
  if (oid == "1.2.250.1.213.1.4.8") return CdaFacts::Ins::kProduction;
  if (oid == "1.2.250.1.213.1.4.9") return CdaFacts::Ins::kTemporary;
  if (oid == "1.2.250.1.213.1.4.10") return CdaFacts::Ins::kTest;
  if (oid == "1.2.250.1.213.1.4.11") return CdaFacts::Ins::kDemo;
  return CdaFacts::Ins::kAbsent;
}

CdaFacts read_cda(std::string_view xml, const CdaLimits& limits) {
  CdaFacts facts;
  if (xml.size() > limits.max_bytes) {
    facts.status = CdaFacts::Status::kTooLarge;
    return facts;
  }
  if (declares_doctype(xml)) {
    facts.status = CdaFacts::Status::kDoctypeRefused;
    return facts;
  }
  pugi::xml_document document;
  // pugixml never expands an entity beyond the five predefined ones and character references,
  // nor reads an external one. A DOCTYPE is kept as a node, to be refused: whatever the
  // document's encoding, one never passes.
  auto parsed =
      document.load_buffer(xml.data(), xml.size(), pugi::parse_default | pugi::parse_doctype);
  if (!parsed) {
    facts.status = CdaFacts::Status::kMalformed;
    return facts;
  }
  if (has_doctype_node(document)) {
    facts.status = CdaFacts::Status::kDoctypeRefused;
    return facts;
  }
  if (depth_of(document, limits.max_depth) > limits.max_depth) {
    facts.status = CdaFacts::Status::kTooDeep;
    return facts;
  }
  pugi::xml_node root = document.document_element();
  if (!root || !is_cda_element(root, "ClinicalDocument")) {
    facts.status = CdaFacts::Status::kNotCda;
    return facts;
  }
  facts.status = CdaFacts::Status::kRead;
  read_document_code(root, facts);
  pugi::xml_node patient_role = child(child(root, "recordTarget"), "patientRole");
  read_patient_ins(patient_role, facts);
  read_patient_traits(child(patient_role, "patient"), facts);
  return facts;
}

std::string_view to_string(CdaFacts::Status status) {
  switch (status) {
    case CdaFacts::Status::kRead:
      return "read";
    case CdaFacts::Status::kNotCda:
      return "not_cda";
    case CdaFacts::Status::kMalformed:
      return "malformed_xml";
    case CdaFacts::Status::kTooLarge:
      return "xml_too_large";
    case CdaFacts::Status::kTooDeep:
      return "xml_too_deep";
    case CdaFacts::Status::kDoctypeRefused:
      return "doctype_refused";
  }
  return "?";
}

std::string_view to_string(CdaFacts::Ins ins) {
  switch (ins) {
    case CdaFacts::Ins::kAbsent:
      return "absent";
    case CdaFacts::Ins::kProduction:
      return "production";
    case CdaFacts::Ins::kTemporary:
      return "temporary";
    case CdaFacts::Ins::kTest:
      return "test";
    case CdaFacts::Ins::kDemo:
      return "demo";
  }
  return "?";
}

}  // namespace mssgate::protocol
