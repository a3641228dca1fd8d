#include "storage/directory_file.hpp"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>

#include "protocol/ascii.hpp"
#include "protocol/display_text.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/professional_id.hpp"

namespace mssgate::storage {

namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// Every column a file may have, in the order export writes them.
constexpr std::array<std::string_view, 10> kColumns = {
    "kind", "mailbox", "type", "status", "sender", "holder", "role", "match", "value", "label"};

struct KindFields {
  std::string_view kind;
  std::vector<std::string_view> required;
  std::vector<std::string_view> optional;
};

const std::vector<KindFields>& kinds() {
  static const std::vector<KindFields> all = {
      {"mailbox", {"mailbox", "type"}, {"status"}},
      {"sender", {"mailbox", "sender"}, {}},
      {"holder", {"holder"}, {"label"}},
      {"attachment", {"holder", "mailbox", "role"}, {}},
      {"binding", {"mailbox", "match", "value"}, {"label"}},
  };
  return all;
}

using protocol::ascii_lower;
using protocol::ascii_upper;
using protocol::trim_blanks;

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool needs_quotes(std::string_view field) {
  return field.find_first_of(",\"\r\n") != std::string_view::npos ||
         (!field.empty() && (field.front() == ' ' || field.back() == ' '));
}

void write_csv_field(std::string_view field, std::string& out) {
  if (!needs_quotes(field)) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// One row as (column, value) pairs, in kColumns order.
using Row = std::vector<std::pair<std::string_view, std::string>>;

void write_row(const Row& row, DirectoryFileFormat format, std::string& out) {
  if (format == DirectoryFileFormat::kJsonLines) {
    boost::json::object object;
    for (const auto& [column, value] : row)
      object[column] = value;
    out += boost::json::serialize(object);
    out += '\n';
    return;
  }
  size_t next = 0;
  for (size_t c = 0; c < kColumns.size(); ++c) {
    if (c) out += ',';
    if (next < row.size() && row[next].first == kColumns[c])
      write_csv_field(row[next++].second, out);
  }
  out += '\n';
}

}  // namespace

std::string_view to_string(DirectoryFileFormat format) {
  return format == DirectoryFileFormat::kCsv ? "csv" : "jsonl";
}

std::optional<DirectoryFileFormat> parse_directory_file_format(std::string_view text) {
  if (text == "csv") return DirectoryFileFormat::kCsv;
  if (text == "jsonl" || text == "ndjson") return DirectoryFileFormat::kJsonLines;
  return std::nullopt;
}

std::optional<DirectoryFileFormat> directory_file_format_of(std::string_view path) {
  size_t dot = path.rfind('.');
  if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos)
    return std::nullopt;
  return parse_directory_file_format(ascii_lower(path.substr(dot + 1)));
}

DirectoryFileReader::DirectoryFileReader(DirectoryFileFormat format) : format_(format) {}

void DirectoryFileReader::feed(std::string_view bytes) {
  if (at_start_) {
    // Spreadsheets often start a UTF-8 CSV with a byte order mark: it is not data.
    while (!bytes.empty() && bom_.size() < kByteOrderMark.size()) {
      bom_ += bytes.front();
      bytes.remove_prefix(1);
      if (kByteOrderMark.substr(0, bom_.size()) != bom_) break;
    }
    if (bom_.size() < kByteOrderMark.size() && kByteOrderMark.substr(0, bom_.size()) == bom_)
      return;  // still unsure
    at_start_ = false;
    std::string held = std::move(bom_);
    bom_.clear();
    if (held != kByteOrderMark) feed(held);
  }
  for (char c : bytes) {
    if (c == '\n' && !(format_ == DirectoryFileFormat::kCsv && csv_state_ == CsvState::kQuoted)) {
      end_of_line();
      ++line_;
      record_line_ = line_;
      continue;
    }
    if (c == '\n') ++line_;  // inside a quoted CSV field: the record goes on
    if (++record_bytes_ > kMaxRecordBytes) {
      if (!too_long_) {
        too_long_ = true;
        csv_state_ = CsvState::kBad;
        record_error_ = "a record over " + std::to_string(kMaxRecordBytes) + " bytes";
        json_line_.clear();
      }
      continue;
    }
    if (format_ == DirectoryFileFormat::kJsonLines) {
      json_line_ += c;
      continue;
    }
    switch (csv_state_) {
      case CsvState::kFieldStart:
        csv_fields_.emplace_back();
        csv_quoted_.push_back(c == '"');
        if (c == '"') {
          csv_state_ = CsvState::kQuoted;
        } else if (c != ',') {
          csv_fields_.back() += c;
          csv_state_ = CsvState::kUnquoted;
        }
        break;
      case CsvState::kUnquoted:
        if (c == ',') {
          csv_state_ = CsvState::kFieldStart;
        } else if (c == '"') {
          csv_state_ = CsvState::kBad;
          record_error_ =
              "a quote inside an unquoted field (quote the whole field and double the quote)";
        } else {
          csv_fields_.back() += c;
        }
        break;
      case CsvState::kQuoted:
        if (c == '"') {
          csv_state_ = CsvState::kQuoteInQuoted;
        } else {
          csv_fields_.back() += c;
        }
        break;
      case CsvState::kQuoteInQuoted:
        if (c == '"') {
          csv_fields_.back() += '"';
          csv_state_ = CsvState::kQuoted;
        } else if (c == ',') {
          csv_state_ = CsvState::kFieldStart;
        } else if (c != '\r') {
          csv_state_ = CsvState::kBad;
          record_error_ = "a character after a quoted field's closing quote";
        }
        break;
      case CsvState::kBad:
        break;
    }
  }
}

void DirectoryFileReader::end_of_line() {
  if (format_ == DirectoryFileFormat::kJsonLines) {
    if (too_long_) {
      error(record_error_);
    } else {
      take_json_line();
    }
    json_line_.clear();
  } else {
    if (csv_state_ == CsvState::kBad) {
      error(record_error_);
    } else {
      if (csv_state_ == CsvState::kFieldStart && !csv_fields_.empty()) {
        csv_fields_.emplace_back();
        csv_quoted_.push_back(false);
      }
      if (csv_state_ == CsvState::kUnquoted && !csv_fields_.back().empty() &&
          csv_fields_.back().back() == '\r')
        csv_fields_.back().pop_back();
      take_csv_record();
    }
    csv_fields_.clear();
    csv_quoted_.clear();
    csv_state_ = CsvState::kFieldStart;
  }
  too_long_ = false;
  record_bytes_ = 0;
}

ImportRows DirectoryFileReader::finish(std::vector<ImportError>& errors) {
  if (at_start_ && !bom_.empty()) {
    at_start_ = false;
    std::string held = std::move(bom_);
    feed(held);
  }
  if (format_ == DirectoryFileFormat::kCsv && csv_state_ == CsvState::kQuoted) {
    error("a quoted field is not closed before the end of the file");
  } else if (record_bytes_ > 0 || !csv_fields_.empty()) {
    end_of_line();
  }
  if (format_ == DirectoryFileFormat::kCsv && !header_read_)
    errors_.push_back({1, "the file is empty: a CSV file starts with its header (kind,...)"});
  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
  errors.insert(errors.end(), errors_.begin(), errors_.end());
  errors_.clear();
  return std::move(rows_);
}

void DirectoryFileReader::take_csv_record() {
  if (csv_fields_.empty()) return;  // a blank line
  if (csv_fields_.size() == 1 && trim_blanks(csv_fields_[0]).empty()) return;
  if (!header_read_) {
    header_read_ = true;
    header_usable_ = true;
    for (const auto& name : csv_fields_) {
      std::string column = ascii_lower(trim_blanks(name));
      if (std::find(kColumns.begin(), kColumns.end(), column) == kColumns.end()) {
        error("unknown column '" + column + "' (the columns are kind, mailbox, type, status, " +
              "sender, holder, role, match, value, label)");
        header_usable_ = false;
      } else if (std::find(header_.begin(), header_.end(), column) != header_.end()) {
        error("column '" + column + "' is named twice");
        header_usable_ = false;
      }
      header_.push_back(column);
    }
    if (std::find(header_.begin(), header_.end(), "kind") == header_.end()) {
      error("the header has no 'kind' column: is the first line the header?");
      header_usable_ = false;
    }
    return;
  }
  if (!header_usable_) return;  // the header's error says it all
  if (csv_fields_.size() != header_.size()) {
    error(std::to_string(csv_fields_.size()) + " fields where the header names " +
          std::to_string(header_.size()));
    return;
  }
  Fields fields;
  for (size_t i = 0; i < header_.size(); ++i) {
    // Spaces around an unquoted field are not data; a quoted field is taken as it is.
    std::string_view value =
        csv_quoted_[i] ? std::string_view(csv_fields_[i]) : trim_blanks(csv_fields_[i]);
    if (!value.empty()) fields.emplace_back(header_[i], std::string(value));
  }
  take_row(fields);
}

void DirectoryFileReader::take_json_line() {
  std::string_view text = json_line_;
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (trim_blanks(text).empty()) return;
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  if (ec) {
    error("not JSON: " + ec.message());
    return;
  }
  if (!value.is_object()) {
    error("a line holds one JSON object");
    return;
  }
  Fields fields;
  for (const auto& member : value.as_object()) {
    std::string name(member.key());
    if (!member.value().is_string()) {
      error("field '" + name + "' is not a string");
      return;
    }
    fields.emplace_back(std::move(name), std::string(member.value().as_string()));
  }
  take_row(fields);
}

bool DirectoryFileReader::first_seen(std::unordered_map<std::string, size_t>& seen, std::string key,
                                     std::string_view what) {
  auto [it, inserted] = seen.emplace(std::move(key), record_line_);
  if (!inserted)
    error("duplicate " + std::string(what) + " (first on line " + std::to_string(it->second) + ")");
  return inserted;
}

namespace {

const std::string* field_of(const std::vector<std::pair<std::string, std::string>>& fields,
                            std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return &value;
  }
  return nullptr;
}

}  // namespace

void DirectoryFileReader::take_row(const Fields& fields) {
  const std::string* kind_text = field_of(fields, "kind");
  if (!kind_text) {
    error("a row needs its 'kind' (mailbox, sender, holder, attachment or binding)");
    return;
  }
  std::string kind = ascii_lower(*kind_text);
  auto spec = std::find_if(kinds().begin(), kinds().end(),
                           [&](const KindFields& k) { return k.kind == kind; });
  if (spec == kinds().end()) {
    error("unknown kind '" + *kind_text + "' (mailbox, sender, holder, attachment or binding)");
    return;
  }
  bool fine = true;
  for (const auto& [name, value] : fields) {
    if (!protocol::valid_utf8(value)) {
      // A file saved in Latin-1 or Windows-1252 rather than UTF-8, most often.
      error("'" + name + "' is not UTF-8 text (save the file as UTF-8)");
      fine = false;
      continue;
    }
    if (name == "kind") continue;
    bool known =
        std::find(spec->required.begin(), spec->required.end(), name) != spec->required.end() ||
        std::find(spec->optional.begin(), spec->optional.end(), name) != spec->optional.end();
    if (!known) {
      std::string message = "a " + kind;
      message += " row has no field '" + name + "'";
      error(std::move(message));
      fine = false;
    }
  }
  for (auto name : spec->required) {
    if (!field_of(fields, name)) {
      error("a " + kind + " row needs '" + std::string(name) + "'");
      fine = false;
    }
  }
  if (!fine) return;
  if (kind == "mailbox") {
    take_mailbox(fields);
  } else if (kind == "sender") {
    take_sender(fields);
  } else if (kind == "holder") {
    take_holder(fields);
  } else if (kind == "attachment") {
    take_attachment(fields);
  } else {
    take_binding(fields);
  }
}

std::optional<std::string> DirectoryFileReader::address(const Fields& fields,
                                                        std::string_view name) {
  const std::string& text = *field_of(fields, name);
  auto normalized = protocol::normalize_mailbox_address(text);
  if (!normalized) error("'" + text + "' is not a mailbox address");
  return normalized;
}

std::optional<std::string> DirectoryFileReader::holder_id(const Fields& fields) {
  const std::string& text = *field_of(fields, "holder");
  auto normalized = protocol::normalize_professional_id(text);
  if (!normalized)
    error("'" + text + "' is not an idNat (8 + RPPS, 0 + ADELI), an RPPS or an ADELI number");
  return normalized;
}

std::optional<std::string> DirectoryFileReader::label(const Fields& fields) {
  const std::string* text = field_of(fields, "label");
  if (!text) return std::string();
  if (has_control_character(*text)) {
    error("a label is one line of text, without control characters");
    return std::nullopt;
  }
  return *text;
}

void DirectoryFileReader::take_mailbox(const Fields& fields) {
  auto mailbox = address(fields, "mailbox");
  const std::string& type_text = *field_of(fields, "type");
  auto type = protocol::parse_mailbox_type(ascii_upper(type_text));
  if (!type) error("unknown type '" + type_text + "' (PER, ORG, APP or CAB)");
  const std::string* status_text = field_of(fields, "status");
  auto status = protocol::parse_mailbox_status(status_text ? ascii_lower(*status_text) : "active");
  if (!status) error("unknown status '" + *status_text + "' (active, suspended or closed)");
  if (!mailbox || !type || !status) return;
  if (!first_seen(mailbox_lines_, *mailbox, "mailbox " + *mailbox)) return;
  rows_.contents.mailboxes.push_back({*mailbox, *type, *status});
  rows_.lines.mailboxes.push_back(record_line_);
}

void DirectoryFileReader::take_sender(const Fields& fields) {
  auto mailbox = address(fields, "mailbox");
  auto sender = address(fields, "sender");
  if (!mailbox || !sender) return;
  if (!first_seen(sender_lines_, *mailbox + '\0' + *sender,
                  "sender " + *sender + " for " + *mailbox))
    return;
  rows_.contents.senders.push_back({*mailbox, *sender});
  rows_.lines.senders.push_back(record_line_);
}

void DirectoryFileReader::take_holder(const Fields& fields) {
  auto id = holder_id(fields);
  auto text = label(fields);
  if (!id || !text) return;
  if (!first_seen(holder_lines_, *id, "holder " + *id)) return;
  rows_.contents.holders.push_back({*id, *text});
  rows_.lines.holders.push_back(record_line_);
}

void DirectoryFileReader::take_attachment(const Fields& fields) {
  auto id = holder_id(fields);
  auto mailbox = address(fields, "mailbox");
  const std::string& role_text = *field_of(fields, "role");
  auto role = parse_holder_role(ascii_lower(role_text));
  if (!role) error("unknown role '" + role_text + "' (owner, delegate or co-holder)");
  if (!id || !mailbox || !role) return;
  if (!first_seen(attachment_lines_, *id + '\0' + *mailbox,
                  "attachment of " + *id + " to " + *mailbox))
    return;
  rows_.contents.attachments.push_back({*id, *mailbox, *role});
  rows_.lines.attachments.push_back(record_line_);
}

void DirectoryFileReader::take_binding(const Fields& fields) {
  auto mailbox = address(fields, "mailbox");
  const std::string& match_text = *field_of(fields, "match");
  auto match = parse_certificate_match(ascii_lower(match_text));
  if (!match)
    error("unknown match '" + match_text + "' (spki-sha256, issuer-serial or organisation)");
  std::optional<std::string> value;
  if (match) {
    std::string why;
    value = normalize_binding_value(*match, *field_of(fields, "value"), why);
    if (!value) error(why);
  }
  auto text = label(fields);
  if (!mailbox || !match || !value || !text) return;
  if (!first_seen(binding_lines_, std::string(to_string(*match)) + '\0' + *value + '\0' + *mailbox,
                  "binding of " + *value + " to " + *mailbox))
    return;
  rows_.contents.bindings.push_back({*match, *value, *mailbox, *text});
  rows_.lines.bindings.push_back(record_line_);
}

void write_directory_file(const DirectoryContents& contents, DirectoryFileFormat format,
                          std::ostream& out) {
  std::string buffer;
  auto flush = [&](bool always) {
    if (always || buffer.size() > (1 << 16)) {
      out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      buffer.clear();
    }
  };
  if (format == DirectoryFileFormat::kCsv) {
    for (size_t c = 0; c < kColumns.size(); ++c) {
      if (c) buffer += ',';
      buffer += kColumns[c];
    }
    buffer += '\n';
  }
  for (const auto& m : contents.mailboxes) {
    write_row({{"kind", "mailbox"},
               {"mailbox", m.address},
               {"type", std::string(protocol::to_string(m.type))},
               {"status", std::string(protocol::to_string(m.status))}},
              format, buffer);
    flush(false);
  }
  for (const auto& s : contents.senders) {
    write_row({{"kind", "sender"}, {"mailbox", s.mailbox}, {"sender", s.sender}}, format, buffer);
    flush(false);
  }
  for (const auto& h : contents.holders) {
    Row row = {{"kind", "holder"}, {"holder", h.id}};
    if (!h.label.empty()) row.emplace_back("label", h.label);
    write_row(row, format, buffer);
    flush(false);
  }
  for (const auto& a : contents.attachments) {
    write_row({{"kind", "attachment"},
               {"mailbox", a.mailbox},
               {"holder", a.holder},
               {"role", std::string(to_string(a.role))}},
              format, buffer);
    flush(false);
  }
  for (const auto& b : contents.bindings) {
    Row row = {{"kind", "binding"},
               {"mailbox", b.mailbox},
               {"match", std::string(to_string(b.match))},
               {"value", b.value}};
    if (!b.label.empty()) row.emplace_back("label", b.label);
    write_row(row, format, buffer);
    flush(false);
  }
  flush(true);
}

}  // namespace mssgate::storage
