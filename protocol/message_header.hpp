#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

struct HeaderField {
  std::string name;   // as sent
  std::string value;  // unfolded, leading and trailing blanks removed
  std::string raw;    // the bytes after the colon as sent, folds included, the last line end not
};

// Collects the header section of a message (RFC 5322 §2.2) as its bytes stream by, up to a cap.
class HeaderSectionReader {
 public:
  enum class Status { kNeedMore, kComplete, kTooLarge };
  explicit HeaderSectionReader(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Feeds message bytes; returns how many belong to the header section (the empty line
  // included) and whether it is complete. Call end_of_message() when the message ends first.
  struct Result {
    Status status;
    size_t consumed;
  };
  Result feed(std::string_view content);
  void end_of_message() { complete_ = true; }
  bool complete() const { return complete_; }

  // The fields, unfolded, in order. Valid once complete.
  std::vector<HeaderField> fields() const;
  // Every value of the field `name` (case-insensitive).
  std::vector<std::string> values(std::string_view name) const;
  // Why readers may disagree on the fields of this section, or empty when they cannot: NUL
  // ("nul"), a CR not followed by LF ("bare_cr": some readers end a line there), a first line
  // that continues nothing ("continuation_first"), a line that is not "name:" ("not_a_field":
  // some readers end the section there), white space before the colon ("spaced_field_name",
  // obsolete syntax that some readers take for another field). Valid once complete.
  std::string_view structure_problem() const;

 private:
  size_t max_bytes_;
  std::string raw_;
  bool complete_ = false;
  bool too_large_ = false;
};

// The addr-specs of an address-list header value ("Name <a@b>, c@d (comment)"), lower-cased.
std::vector<std::string> extract_addresses(std::string_view value);

}  // namespace mssgate::protocol
