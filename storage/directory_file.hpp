#pragma once
// The directory as a file, in CSV or JSON Lines: what `mssgatectl directory import` reads and
// `directory export` writes (the formats are in docs/operator-guide.md, "Provisioning").
//
// Every row has a `kind` and the fields of that kind:
//   mailbox     mailbox, type (PER|ORG|APP|CAB), status (active|suspended|closed; default active)
//   sender      mailbox, sender                 the mailbox may also send as sender
//   holder      holder (idNat, RPPS or ADELI), label (optional)
//   attachment  holder, mailbox, role (owner|delegate|co-holder)
//   binding     mailbox, match (spki-sha256|issuer-serial), value, label (optional)
// A CSV file starts with a header naming its columns (any order, unused ones may be left out);
// a field a row's kind does not take is left empty. A JSON Lines file holds one object of
// strings per line.

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/directory_contents.hpp"

namespace mssgate::storage {

enum class DirectoryFileFormat { kCsv, kJsonLines };
std::string_view to_string(DirectoryFileFormat format);
// "csv", "jsonl" (also "ndjson").
std::optional<DirectoryFileFormat> parse_directory_file_format(std::string_view text);
// From a file name's extension: .csv, .jsonl, .ndjson.
std::optional<DirectoryFileFormat> directory_file_format_of(std::string_view path);

// Reads a directory file fed in pieces of any size (as it is read from a file, a pipe or a
// request body), checking every row: its fields, their values (addresses and identifiers are
// normalised), and that no row repeats another's key. Errors name their line and are
// collected, so that one run reports every bad row.
class DirectoryFileReader {
 public:
  // A record (a CSV record, possibly over several lines, or a JSON line) longer than this is
  // refused rather than held.
  static constexpr size_t kMaxRecordBytes = size_t{64} * 1024;

  explicit DirectoryFileReader(DirectoryFileFormat format);

  void feed(std::string_view bytes);
  // The end of the file (a last line without its line end is read). Returns the rows read and
  // adds each error to `errors`, in line order.
  ImportRows finish(std::vector<ImportError>& errors);

 private:
  using Fields = std::vector<std::pair<std::string, std::string>>;

  void end_of_line();
  void take_csv_record();
  void take_json_line();
  void take_row(const Fields& fields);
  void take_mailbox(const Fields& fields);
  void take_sender(const Fields& fields);
  void take_holder(const Fields& fields);
  void take_attachment(const Fields& fields);
  void take_binding(const Fields& fields);
  // A field's value checked and normalised; nullopt (and an error) when it is not one.
  std::optional<std::string> address(const Fields& fields, std::string_view name);
  std::optional<std::string> holder_id(const Fields& fields);
  std::optional<std::string> label(const Fields& fields);
  void error(std::string message) { errors_.push_back({record_line_, std::move(message)}); }
  bool first_seen(std::unordered_map<std::string, size_t>& seen, std::string key,
                  std::string_view what);

  DirectoryFileFormat format_;
  ImportRows rows_;
  std::vector<ImportError> errors_;
  size_t line_ = 1;         // the line the next byte is on
  size_t record_line_ = 1;  // the line the record under way started on
  bool at_start_ = true;    // nothing read yet (a UTF-8 byte order mark is skipped)
  std::string bom_;         // the start of a byte order mark, while it is unsure
  bool too_long_ = false;   // the record under way went past kMaxRecordBytes

  // CSV: the record under way, field by field.
  enum class CsvState { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kBad };
  CsvState csv_state_ = CsvState::kFieldStart;
  std::vector<std::string> csv_fields_;
  std::vector<bool> csv_quoted_;  // per field: whether it was quoted
  std::string record_error_;      // why the record under way is bad
  size_t record_bytes_ = 0;
  std::vector<std::string> header_;
  bool header_read_ = false;
  bool header_usable_ = false;

  // JSON Lines: the line under way.
  std::string json_line_;

  std::unordered_map<std::string, size_t> mailbox_lines_, sender_lines_, holder_lines_,
      attachment_lines_, binding_lines_;
};

// Writes `contents` (sorted: sort_contents) in `format`. Reading it back gives the same rows.
void write_directory_file(const DirectoryContents& contents, DirectoryFileFormat format,
                          std::ostream& out);

}  // namespace mssgate::storage
