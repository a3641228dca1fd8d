#include "protocol/message_inspector.hpp"

#include <mimetic/codec/base64.h>
#include <mimetic/codec/qp.h>
#include <mimetic/contentdisposition.h>
#include <mimetic/contenttype.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <optional>
#include <utility>

#include "protocol/ascii.hpp"
#include "protocol/message_header.hpp"

namespace mssgate::protocol {
namespace {

// A line longer than this cannot be a boundary delimiter (RFC 2046: boundary ≤ 70 characters,
// plus "--", "--" and transport padding): it is passed on without being held.
constexpr size_t kLineHold = 1024;
// Quoted-printable lines are at most 76 characters (RFC 2045 §6.7); far longer ones are
// refused rather than held by the decoder.
constexpr size_t kMaxQuotedPrintableLine = 4096;

// What is read of a report's machine-readable part, and of the ids it gives.
constexpr size_t kMaxReportFieldBytes = 8 << 10;
constexpr size_t kMaxOriginalIdBytes = 250;

// The words a report may say (RFC 3464 Action, RFC 8098 disposition-type); another is "other".
std::string report_word(std::string_view value, std::initializer_list<std::string_view> known) {
  std::string word = ascii_lower(trim_blanks(value));
  for (auto k : known)
    if (word == k) return word;
  return "other";
}

// An id as a report gives it: printable ASCII, capped; anything else is not kept.
// A message id as the reports name it: the "<left@right>" of the field when it has one (a
// comment or a folded space around it does not make another id), else its trimmed text.
std::string_view angle_id(std::string_view value) {
  value = trim_blanks(value);
  size_t open = value.find('<');
  size_t close = open == std::string_view::npos ? open : value.find('>', open);
  if (close == std::string_view::npos) return value;
  return value.substr(open, close - open + 1);
}

// One field of a report's machine-readable part, if it is one the acknowledgement keeps.
void read_report_field(const HeaderField& field, MessageFacts::Acknowledgement& ack) {
  std::string name = ascii_lower(field.name);
  const std::string& value = field.value;
  if (name == "action") {
    ack.actions.push_back(
        report_word(value, {"delivered", "delayed", "failed", "relayed", "expanded"}));
  } else if (name == "disposition" && ack.disposition.empty()) {
    // action-mode/sending-mode; disposition-type[/modifier...]
    size_t semicolon = value.find(';');
    std::string_view type = semicolon == std::string::npos
                                ? std::string_view{}
                                : std::string_view(value).substr(semicolon + 1);
    type = type.substr(0, type.find('/'));
    ack.disposition =
        report_word(type, {"displayed", "processed", "deleted", "dispatched", "denied", "failed"});
  } else if (name == "original-message-id" && ack.original_message_id.empty()) {
    ack.original_message_id = report_id(value);
  } else if (name == "original-envelope-id" && ack.original_envelope_id.empty()) {
    ack.original_envelope_id = report_id(value);
  }
}

// The header section a DSN returns of the message it reports on (text/rfc822-headers, or the
// start of a message/rfc822): its Message-ID names that message when the DSN has no
// Original-Envelope-Id the sender would know it by.
void read_returned_headers(std::string_view text, MessageFacts::Acknowledgement& ack) {
  HeaderSectionReader section(kMaxReportFieldBytes);
  auto read = section.feed(text);
  if (read.status == HeaderSectionReader::Status::kTooLarge) return;
  if (read.status == HeaderSectionReader::Status::kNeedMore) section.end_of_message();
  for (const auto& field : section.fields()) {
    if (ascii_iequals(field.name, "Message-ID")) {
      ack.original_message_id = report_id(field.value);
      return;
    }
  }
}

// A report's machine-readable part: blocks of header fields (RFC 3464 §2.1, RFC 8098 §3.1),
// each read as the message's own header section is.
void read_report_fields(std::string_view text, MessageFacts::Acknowledgement& ack) {
  while (!text.empty()) {
    HeaderSectionReader block(kMaxReportFieldBytes);
    auto read = block.feed(text);
    text.remove_prefix(read.consumed);
    if (read.status == HeaderSectionReader::Status::kTooLarge) return;
    if (read.status == HeaderSectionReader::Status::kNeedMore) block.end_of_message();
    for (const auto& field : block.fields())
      read_report_field(field, ack);
  }
}

std::string_view line_content(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool only_blanks(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// The value of the first field `name`, or empty.
std::string first_value(const std::vector<HeaderField>& fields, std::string_view name) {
  for (const auto& field : fields) {
    if (ascii_iequals(field.name, name)) return field.value;
  }
  return std::string();
}

// A parameter of a parsed field, RFC 2231 `name*=charset''value` form included (the value is
// then percent-encoded; only its ASCII matters here).
template <class Field>
std::string parameter(const Field& field, const std::string& name) {
  std::string value = field.param(name);
  if (!value.empty()) return value;
  std::string extended = field.param(name + "*");
  auto quote = extended.find("''");
  if (quote != std::string::npos) extended = extended.substr(quote + 2);
  std::string decoded;
  for (size_t i = 0; i < extended.size(); ++i) {
    if (extended[i] == '%' && i + 2 < extended.size()) {
      auto hex = extended.substr(i + 1, 2);
      if (std::isxdigit(static_cast<unsigned char>(hex[0])) &&
          std::isxdigit(static_cast<unsigned char>(hex[1]))) {
        decoded += static_cast<char>(std::stoi(hex, nullptr, 16));
        i += 2;
        continue;
      }
    }
    decoded += extended[i];
  }
  return decoded;
}

bool xdm_archive_name(std::string_view name) {
  auto slash = name.find_last_of("/\\");
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  return ascii_iequals(name, "IHE_XDM.ZIP");
}

enum class PartEncoding { kIdentity, kBase64, kQuotedPrintable };

// The leaf part being read, when its bytes are worth decoding. Not nested in the Walker: clang
// does not take a nested struct with member initializers for default-constructible while the
// struct around it is still being defined, and std::optional<LeafPart>::emplace() would not
// compile.
struct LeafPart {
  bool decode = false;            // a zip attachment candidate
  bool report_fields = false;     // a report's delivery-status or disposition-notification part
  bool returned_headers = false;  // the header section a DSN returns
  std::string captured;           // of either, its first kMaxReportFieldBytes, as they come
  bool named_xdm = false;
  PartEncoding encoding = PartEncoding::kIdentity;
  mimetic::Base64::Decoder base64;
  mimetic::QP::Decoder quoted_printable;
  size_t encoded_line = 0;  // length of the current quoted-printable line
  std::string decoded;
  size_t taken = 0;  // of the shared memory, for `decoded`
};

}  // namespace

std::string report_id(std::string_view value) {
  value = angle_id(value);
  if (value.size() > kMaxOriginalIdBytes) return {};
  for (char c : value)
    if (c <= ' ' || c > '~') return {};
  return std::string(value);
}

std::string_view to_string(MessageFacts::Ins ins) {
  switch (ins) {
    case MessageFacts::Ins::kAbsent:
      return "absent";
    case MessageFacts::Ins::kTest:
      return "test";
    case MessageFacts::Ins::kMalformed:
      return "malformed";
    case MessageFacts::Ins::kUnqualified:
      return "unqualified";
    case MessageFacts::Ins::kQualified:
      return "qualified";
  }
  return "absent";
}

std::string_view to_string(Mismatch mismatch) {
  switch (mismatch) {
    case Mismatch::kCodecdaMissing:
      return "codecda_missing";
    case Mismatch::kCodecdaDiffers:
      return "codecda_differs";
    case Mismatch::kCodecdaWithoutCda:
      return "codecda_without_cda";
    case Mismatch::kInsMissing:
      return "ins_missing";
    case Mismatch::kInsONotQualified:
      return "ins_o_not_qualified";
    case Mismatch::kInsNButQualified:
      return "ins_n_but_qualified";
    case Mismatch::kInsWithoutCda:
      return "ins_without_cda";
    case Mismatch::kSubjectWithoutXdm:
      return "subject_without_xdm";
    case Mismatch::kXdmWithoutSubject:
      return "xdm_without_subject";
  }
  return "?";
}

std::optional<Mismatch> parse_mismatch(std::string_view word) {
  for (auto m : kAllMismatches) {
    if (word == to_string(m)) return m;
  }
  return std::nullopt;
}

MessageFacts::Ins ins_class(const CdaFacts& document) {
  if (document.production_ins()) {
    if (document.malformed_ins()) return MessageFacts::Ins::kMalformed;
    return document.qualified_ins() ? MessageFacts::Ins::kQualified
                                    : MessageFacts::Ins::kUnqualified;
  }
  return document.test_ins() ? MessageFacts::Ins::kTest : MessageFacts::Ins::kAbsent;
}

std::vector<std::string> MessageFacts::codes() const {
  std::vector<std::string> out;
  for (const auto& d : documents)
    out.push_back(d.code);
  return out;
}

struct MessageInspector::Walker {
  enum class Mode { kTopHeaders, kPartHeaders, kBody, kStopped };

  explicit Walker(const InspectorLimits& l)
      : limits(l), meter(l.budget), top_headers(l.max_header_bytes) {}
  ~Walker() { forget_leaf(); }
  Walker(const Walker&) = delete;
  Walker& operator=(const Walker&) = delete;

  InspectorLimits limits;
  InspectionMeter meter;  // the message's budget, over all its archives
  MessageFacts facts;
  bool ko_subject = false;  // the Subject starts with "[KO" (an integration error, in an MDN)
  Mode mode = Mode::kTopHeaders;
  HeaderSectionReader top_headers;
  std::optional<HeaderSectionReader> part_headers;
  std::vector<std::string> boundaries;  // open multiparts, innermost last
  std::string line;                     // the current line, while it may be a delimiter
  bool line_overflow = false;           // the current line is too long to be one
  std::string pending_break;            // the previous line's break, withheld from the leaf
  std::optional<LeafPart> leaf;
  size_t peak = 0;

  void uninspectable(std::string_view reason) {
    if (facts.inspected) {
      facts.inspected = false;
      facts.uninspectable_reason = std::string(reason);
    }
  }

  // Nothing more of the message is read.
  void stop(std::string_view reason) {
    uninspectable(reason);
    mode = Mode::kStopped;
  }

  void note_held() {
    size_t held = line.size() + pending_break.size() + (leaf ? leaf->decoded.size() : 0) +
                  (part_headers ? limits.max_part_header_bytes : 0);
    if (mode == Mode::kTopHeaders) held += limits.max_header_bytes;
    peak = std::max(peak, held);
  }

  void feed(std::string_view bytes) {
    if (mode != Mode::kStopped && !meter.go_on()) stop(meter.stopped());
    while (!bytes.empty() && mode != Mode::kStopped) {
      if (mode == Mode::kTopHeaders) {
        auto r = top_headers.feed(bytes);
        bytes.remove_prefix(r.consumed);
        if (r.status == HeaderSectionReader::Status::kTooLarge) {
          uninspectable("header_too_large");
          mode = Mode::kStopped;
        } else if (r.status == HeaderSectionReader::Status::kComplete) {
          top_headers_complete();
        }
      } else if (mode == Mode::kPartHeaders) {
        auto r = part_headers->feed(bytes);
        bytes.remove_prefix(r.consumed);
        if (r.status == HeaderSectionReader::Status::kTooLarge) {
          uninspectable("part_header_too_large");
          mode = Mode::kStopped;
        } else if (r.status == HeaderSectionReader::Status::kComplete) {
          part_headers_complete();
        }
      } else {
        size_t end = bytes.find('\n');
        size_t take = end == std::string_view::npos ? bytes.size() : end + 1;
        body_piece(bytes.substr(0, take), end != std::string_view::npos);
        bytes.remove_prefix(take);
      }
      note_held();
    }
    if (mode == Mode::kStopped) release();
  }

  // The leaf's decoded bytes are dropped, and their memory given back.
  void drop_decoded() {
    std::string().swap(leaf->decoded);
    meter.give_memory(std::exchange(leaf->taken, 0));
  }

  void forget_leaf() {
    if (leaf) meter.give_memory(leaf->taken);
    leaf.reset();
  }

  void release() {
    forget_leaf();
    part_headers.reset();
    std::string().swap(line);
    boundaries.clear();
  }

  // ---- headers ------------------------------------------------------------------------------
  void top_headers_complete() {
    auto fields = top_headers.fields();  // unfolded once for every use below
    facts.claims = read_mss_headers(fields);
    facts.message_id = std::string(angle_id(first_value(fields, "Message-ID")).substr(0, 250));
    ko_subject = first_value(fields, "Subject").starts_with("[KO");
    auto authors = extract_addresses(first_value(fields, "From"));
    if (!authors.empty()) facts.from = authors.front().substr(0, 320);
    open_entity(fields);
  }

  void part_headers_complete() {
    auto fields = part_headers->fields();
    part_headers.reset();
    open_entity(fields);
  }

  // Starts the body of an entity (the message itself or a part) from its header section.
  void open_entity(const std::vector<HeaderField>& headers) {
    std::string type_text = first_value(headers, "Content-Type");
    std::string disposition_text = first_value(headers, "Content-Disposition");
    // mimetic compares its case-insensitive words over the longer of the two lengths: a NUL
    // inside a value makes it read past the end of the word it is compared with. Readers
    // disagree on such a field anyway; it is not read.
    if (type_text.find('\0') != std::string::npos ||
        disposition_text.find('\0') != std::string::npos) {
      uninspectable("mime_header_nul");
      mode = Mode::kStopped;
      return;
    }
    mimetic::ContentType type(type_text.empty() ? std::string("text/plain") : type_text);
    bool top = boundaries.empty() && !leaf && facts.parts == 0;
    if (top && type.type() == "multipart" && type.subtype() == "report") {
      std::string report_type = parameter(type, "report-type");
      facts.mdn = ascii_iequals(report_type, "disposition-notification");
      facts.dsn = ascii_iequals(report_type, "delivery-status");
    }
    mode = Mode::kBody;
    if (type.type() == "multipart") {
      std::string boundary = parameter(type, "boundary");
      if (!boundary.empty() && boundary.size() <= 200) {
        if (boundaries.size() >= limits.max_depth) {
          uninspectable("mime_too_deep");
          mode = Mode::kStopped;
          return;
        }
        boundaries.push_back("--" + boundary);
        return;  // its preamble, up to the first delimiter
      }
    }
    if (++facts.parts > limits.max_parts) {
      uninspectable("too_many_parts");
      mode = Mode::kStopped;
      return;
    }
    mimetic::ContentDisposition disposition(disposition_text);
    std::string name = parameter(disposition, "filename");
    if (name.empty()) name = parameter(type, "name");
    std::string encoding = first_value(headers, "Content-Transfer-Encoding");

    forget_leaf();
    leaf.emplace();
    leaf->named_xdm = xdm_archive_name(name);
    leaf->report_fields =
        facts.report() && type.type() == "message" &&
        (type.subtype() == "delivery-status" || type.subtype() == "disposition-notification");
    leaf->returned_headers =
        facts.dsn && ((type.type() == "text" && type.subtype() == "rfc822-headers") ||
                      (type.type() == "message" && type.subtype() == "rfc822"));
    leaf->decode = !leaf->report_fields && !leaf->returned_headers &&
                   (leaf->named_xdm || type.type() != "text");
    if (ascii_iequals(encoding, "base64")) {
      leaf->encoding = PartEncoding::kBase64;
    } else if (ascii_iequals(encoding, "quoted-printable")) {
      leaf->encoding = PartEncoding::kQuotedPrintable;
    }
  }

  // ---- body lines ---------------------------------------------------------------------------
  void body_piece(std::string_view piece, bool ends_line) {
    std::string_view content = ends_line ? line_content(piece) : piece;
    std::string line_break(piece.substr(content.size()));
    if (!line_overflow && line.size() + piece.size() <= kLineHold) {
      line += piece;
      if (ends_line) complete_line();
      return;
    }
    // Too long to be a delimiter: passed on as it comes. Only a carriage return that may
    // start the line break is held back, so that the result does not depend on the pieces.
    if (!line_overflow) {
      to_leaf(pending_break);
      pending_break.clear();
      line_overflow = true;
    }
    if (ends_line && content.empty() && line_break == "\n" && line.ends_with('\r')) {
      line.pop_back();
      line_break = "\r\n";
    }
    to_leaf(line);
    line.clear();
    if (ends_line) {
      to_leaf(content);
      pending_break = std::move(line_break);
      line_overflow = false;
    } else if (content.ends_with('\r')) {
      to_leaf(content.substr(0, content.size() - 1));
      line = "\r";
    } else {
      to_leaf(content);
    }
  }

  void complete_line() {
    std::string_view content = line_content(line);
    if (!boundaries.empty() && content.starts_with("--") && delimiter(content)) {
      line.clear();
      return;
    }
    to_leaf(pending_break);
    to_leaf(content);
    pending_break = std::string(std::string_view(line).substr(content.size()));
    line.clear();
  }

  // When `content` is the delimiter of an open multipart, ends the current part and opens the
  // next one (or closes that multipart).
  bool delimiter(std::string_view content) {
    for (size_t level = boundaries.size(); level-- > 0;) {
      const std::string& b = boundaries[level];
      if (!content.starts_with(b)) continue;
      std::string_view rest = content.substr(b.size());
      bool close = rest.starts_with("--");
      if (close) rest.remove_prefix(2);
      if (!only_blanks(rest)) continue;
      close_leaf();
      if (mode == Mode::kStopped) return true;  // the archive ran over the message's budget
      pending_break.clear();
      boundaries.resize(level + 1);
      if (close) {
        boundaries.pop_back();  // the epilogue follows, up to an outer delimiter
        mode = Mode::kBody;
      } else {
        mode = Mode::kPartHeaders;
        part_headers.emplace(limits.max_part_header_bytes);
      }
      return true;
    }
    return false;
  }

  void to_leaf(std::string_view bytes) {
    if (leaf && (leaf->report_fields || leaf->returned_headers)) {
      size_t room = kMaxReportFieldBytes - leaf->captured.size();
      leaf->captured += bytes.substr(0, room);
      return;
    }
    if (!leaf || !leaf->decode || bytes.empty()) return;
    auto out = std::back_inserter(leaf->decoded);
    switch (leaf->encoding) {
      case PartEncoding::kIdentity:
        leaf->decoded += bytes;
        break;
      case PartEncoding::kBase64:
        for (char c : bytes)
          leaf->base64.process(static_cast<mimetic::Base64::Decoder::char_type>(c), out);
        break;
      case PartEncoding::kQuotedPrintable:
        for (char c : bytes) {
          leaf->encoded_line = c == '\n' ? 0 : leaf->encoded_line + 1;
          if (leaf->encoded_line > kMaxQuotedPrintableLine) {
            uninspectable("malformed_quoted_printable");
            leaf->decode = false;
            drop_decoded();
            return;
          }
          leaf->quoted_printable.process(static_cast<mimetic::QP::Decoder::char_type>(c), out);
        }
        break;
    }
    // Only a zip is kept: its first bytes say so.
    if (leaf->decoded.size() >= 4 && !leaf->decoded.starts_with("PK\x03\x04")) {
      if (leaf->named_xdm) uninspectable("xdm_not_zip");
      leaf->decode = false;
      drop_decoded();
    } else if (leaf->decoded.size() > limits.max_archive_bytes) {
      uninspectable("archive_too_large");
      leaf->decode = false;
      drop_decoded();
    } else if (leaf->decoded.capacity() > leaf->taken) {
      // The buffer grew: its memory is shared with every other message's archives.
      size_t more = leaf->decoded.capacity() - leaf->taken;
      if (meter.take_memory(more)) {
        leaf->taken += more;
      } else {
        uninspectable("inspection_memory");
        leaf->decode = false;
        drop_decoded();
      }
    }
  }

  void close_leaf() {
    if (!leaf) return;
    if (leaf->report_fields) read_report_fields(leaf->captured, facts.acknowledgement);
    if (leaf->returned_headers && facts.acknowledgement.original_message_id.empty())
      read_returned_headers(leaf->captured, facts.acknowledgement);
    if (leaf->decode) {
      auto out = std::back_inserter(leaf->decoded);
      if (leaf->encoding == PartEncoding::kBase64) leaf->base64.flush(out);
      if (leaf->encoding == PartEncoding::kQuotedPrintable) leaf->quoted_printable.flush(out);
      if (leaf->decoded.size() > limits.max_archive_bytes) {
        uninspectable("archive_too_large");
      } else if (leaf->decoded.starts_with("PK\x03\x04")) {
        read_archive(leaf->decoded, leaf->named_xdm);
      } else if (leaf->named_xdm) {
        uninspectable("xdm_not_zip");
      }
    }
    forget_leaf();
  }

  void read_archive(std::string_view zip, bool named_xdm) {
    XdmFacts xdm = read_xdm(zip, limits.xdm, &meter);
    bool stopped = xdm.status == XdmFacts::Status::kStopped;
    if (named_xdm || xdm.has_xdm_folder) {
      ++facts.xdm_archives;
      facts.suspicious_names += xdm.suspicious_names;
      if (!stopped && xdm.status != XdmFacts::Status::kRead) {
        uninspectable(to_string(xdm.status));
      } else if (!stopped && xdm.unreadable_documents > 0) {
        uninspectable("cda_unreadable");
      }
      for (auto& document : xdm.documents) {
        if (facts.documents.size() >= limits.max_documents) {
          uninspectable("too_many_documents");
          break;
        }
        facts.documents.push_back(std::move(document));
      }
    }
    if (stopped) stop(meter.stopped());  // over the message's budget, in any zip
  }

  MessageFacts finish() {
    if (mode != Mode::kStopped && !meter.go_on()) stop(meter.stopped());
    if (mode == Mode::kTopHeaders) {
      top_headers.end_of_message();
      top_headers_complete();
    } else if (mode == Mode::kPartHeaders) {
      part_headers.reset();
    } else if (mode == Mode::kBody) {
      // The last line had no break: it may still be a delimiter.
      if (line_overflow) {
        to_leaf(line);
      } else if (!line.empty()) {
        std::string_view content = line_content(line);
        if (boundaries.empty() || !content.starts_with("--") || !delimiter(content)) {
          to_leaf(pending_break);
          to_leaf(content);
        }
      }
      close_leaf();
    }
    release();
    mode = Mode::kStopped;
    facts.acknowledgement.integration_error = facts.mdn && ko_subject;
    if (facts.report()) {
      // What a report attaches again is the original message's: counted with it, not here.
      facts.xdm_archives = 0;
      facts.documents.clear();
    }
    for (const auto& d : facts.documents) {
      facts.ins = std::max(facts.ins, ins_class(d));
      facts.test_ins_qualified = facts.test_ins_qualified || d.qualified_test_ins();
    }
    compare_claims(facts);
    return std::move(facts);
  }
};

void compare_claims(MessageFacts& facts) {
  auto& m = facts.mismatches;
  m.clear();
  // A report's headers and attachments are about the original message, checked when it was
  // counted: a report has nothing to match.
  if (facts.report()) return;
  const auto& claims = facts.claims;
  bool cda = !facts.documents.empty();
  bool claims_checkable = facts.inspected;
  if (claims_checkable) {
    if (cda) {
      std::vector<std::string> found = facts.codes();
      std::sort(found.begin(), found.end());
      found.erase(std::unique(found.begin(), found.end()), found.end());
      std::vector<std::string> claimed = claims.cda_codes;
      std::sort(claimed.begin(), claimed.end());
      if (claimed.empty()) {
        m.push_back(Mismatch::kCodecdaMissing);
      } else if (claimed != found) {
        m.push_back(Mismatch::kCodecdaDiffers);
      }
      bool qualified = facts.ins == MessageFacts::Ins::kQualified || facts.test_ins_qualified;
      if (!claims.ins || claims.ins_invalid) {
        m.push_back(Mismatch::kInsMissing);
      } else if (*claims.ins && !qualified) {
        m.push_back(Mismatch::kInsONotQualified);
      } else if (!*claims.ins && qualified) {
        m.push_back(Mismatch::kInsNButQualified);
      }
    } else {
      if (!claims.cda_codes.empty()) m.push_back(Mismatch::kCodecdaWithoutCda);
      if (claims.ins || claims.ins_invalid) m.push_back(Mismatch::kInsWithoutCda);
    }
    if (claims.xdm_subject && facts.xdm_archives == 0) m.push_back(Mismatch::kSubjectWithoutXdm);
  }
  if (facts.xdm_archives > 0 && !claims.xdm_subject) m.push_back(Mismatch::kXdmWithoutSubject);
}

MessageInspector::MessageInspector(const InspectorLimits& limits)
    : walker_(std::make_unique<Walker>(limits)) {}
MessageInspector::~MessageInspector() = default;
MessageInspector::MessageInspector(MessageInspector&&) noexcept = default;
MessageInspector& MessageInspector::operator=(MessageInspector&&) noexcept = default;

void MessageInspector::feed(std::string_view bytes) {
  try {
    walker_->feed(bytes);
  } catch (const std::exception&) {
    walker_->uninspectable("inspector_error");
    walker_->mode = Walker::Mode::kStopped;
    walker_->release();
  }
}

MessageFacts MessageInspector::finish() {
  try {
    return walker_->finish();
  } catch (const std::exception&) {
    MessageFacts facts;
    facts.claims = walker_->facts.claims;
    facts.inspected = false;
    facts.uninspectable_reason = "inspector_error";
    return facts;
  }
}

void MessageInspector::set_interrupt(InspectionMeter::Interrupt interrupt) {
  walker_->meter.set_interrupt(std::move(interrupt));
}

void MessageInspector::set_shared_memory(SharedMemory* memory) {
  walker_->meter.set_shared_memory(memory);
}

bool MessageInspector::stopped() const {
  return walker_->mode == Walker::Mode::kStopped;
}

size_t MessageInspector::peak_held_bytes() const {
  return walker_->peak;
}

}  // namespace mssgate::protocol
