// Fuzz target "cda_ins": a CDA R2 document (pugixml, no DTD) as an IHE_XDM archive holds it, and
// the INS OIDs it names. Whatever the bytes: a DOCTYPE is refused, never expanded; the caps of
// size and depth hold (a document refused for its depth reads the same with more room); a
// document is read the same twice; the OID classification agrees with the facts; nothing of
// the content is kept but the document's code and code system. The input as an INS value: the
// matricule check agrees with the rule computed another way (the department's letters replaced
// in the text, the number read whole).
#include <string>
#include <string_view>

#include "protocol/cda_document.hpp"
#include "protocol/ins_matricule.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::CdaFacts;

std::string describe(const CdaFacts& f) {
  return std::string(to_string(f.status)) + "|" + f.code + "|" + f.code_system + "|" +
         std::string(to_string(f.ins)) + "|" + std::to_string(f.ins_well_formed) + "|" +
         std::to_string(f.birth_name) + std::to_string(f.given_name) + std::to_string(f.sex) +
         std::to_string(f.birth_date);
}

// The matricule rule written the other way round: 15 characters, "2A"/"2B" at the department
// replaced by "19"/"18", then 13 digits and 2 read as numbers.
bool well_formed_the_other_way(std::string_view value) {
  if (value.size() != 15) return false;
  std::string text(value);
  if (text.compare(5, 2, "2A") == 0) text.replace(5, 2, "19");
  if (text.compare(5, 2, "2B") == 0) text.replace(5, 2, "18");
  unsigned long long number = 0;
  for (size_t i = 0; i < 13; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    number = number * 10 + static_cast<unsigned>(text[i] - '0');
  }
  if (text[13] < '0' || text[13] > '9' || text[14] < '0' || text[14] > '9') return false;
  unsigned key = static_cast<unsigned>((text[13] - '0') * 10 + (text[14] - '0'));
  return key == 97 - number % 97;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::protocol::CdaLimits limits;
  limits.max_bytes = 64 << 10;
  limits.max_depth = 32;
  auto facts = mssgate::protocol::read_cda(input, limits);
  check(describe(mssgate::protocol::read_cda(input, limits)) == describe(facts),
        "cda_ins: the same document reads the same");
  if (input.size() > limits.max_bytes)
    check(facts.status == CdaFacts::Status::kTooLarge, "cda_ins: the size cap holds");
  if (facts.status == CdaFacts::Status::kRead) {
    check(input.find("<!DOCTYPE") == std::string_view::npos,
          "cda_ins: a document with a DOCTYPE is never read");
    check(facts.code.size() <= input.size() && facts.code_system.size() <= input.size(),
          "cda_ins: what is kept comes from the document");
  }
  if (facts.status != CdaFacts::Status::kTooDeep) {
    // With more room for nesting, a document not refused for its depth reads the same.
    mssgate::protocol::CdaLimits deeper = limits;
    deeper.max_depth = 4096;
    check(describe(mssgate::protocol::read_cda(input, deeper)) == describe(facts),
          "cda_ins: the depth cap changes nothing below it");
  }
  // The input as an OID: only the four INS roots, and what starts with them, are INS kinds.
  auto kind = mssgate::protocol::ins_kind_of_oid(input);
  if (kind != CdaFacts::Ins::kAbsent)
    check(input.starts_with("1.2.250.1.213.1.4."), "cda_ins: an INS OID is under the INS root");
  bool well_formed =
      mssgate::protocol::check_ins_matricule(input) == mssgate::protocol::InsMatricule::kWellFormed;
  check(well_formed == well_formed_the_other_way(input),
        "cda_ins: the matricule check agrees with the rule computed another way");
  return 0;
}
