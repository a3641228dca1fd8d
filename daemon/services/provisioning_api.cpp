#include "daemon/services/provisioning_api.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "daemon/telemetry/event_log.hpp"
#include "protocol/ascii.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/professional_id.hpp"
#include "storage/directory_file.hpp"

namespace mssgate::daemon {
namespace {

namespace json = boost::json;
using storage::AllowedSender;
using storage::CertificateBinding;
using storage::DirectoryChanges;
using storage::DirectoryContents;
using storage::DirectoryTable;
using storage::Holder;
using storage::HolderAttachment;
using storage::Mailbox;

constexpr std::string_view kPrefix = "/api/directory";
// At most this many bad rows (or changes of a dry run) are listed in an answer; the count says
// how many there were.
constexpr size_t kListedAtMost = 1000;
// A problem's detail, or one error's message, is cut to this.
constexpr size_t kMaxDetailBytes = 2048;

// ---- answers ----------------------------------------------------------------------------------

AdminResponse json_answer(unsigned status, const json::value& value,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  return {status, "application/json", json::serialize(value) + "\n", std::move(headers)};
}

// An RFC 9457 problem document. Its `type` is a relative reference, resolved against the
// request's URI: /api/problems/<name>, each described in docs/openapi.json.
AdminResponse problem(unsigned status, std::string_view name, std::string_view title,
                      std::string_view detail, json::object more = {}) {
  json::object document;
  document["type"] = "/api/problems/" + std::string(name);
  document["title"] = title;
  document["status"] = status;
  // What the client sent may come back in the detail: made valid UTF-8, as JSON must be.
  document["detail"] = protocol::sanitized_text(detail, kMaxDetailBytes);
  for (auto& member : more)
    document[member.key()] = std::move(member.value());
  return {status, "application/problem+json", json::serialize(document) + "\n"};
}

AdminResponse bad_request(std::string_view detail) {
  return problem(400, "bad-request", "The request cannot be read", detail);
}

AdminResponse not_found(std::string_view detail) {
  return problem(404, "not-found", "No such resource", detail);
}

// 405, with the methods the resource takes in `Allow` and in the detail.
AdminResponse method_not_allowed(std::string_view what, std::string_view allow) {
  AdminResponse refusal =
      problem(405, "method-not-allowed", "This resource does not take that method",
              std::string(what) + " takes " + std::string(allow));
  refusal.headers.emplace_back("Allow", allow);
  return refusal;
}

// Bad rows, each with its line (1 for a single resource's body).
AdminResponse invalid_rows(const std::vector<storage::ImportError>& errors, bool with_lines) {
  json::array listed;
  for (size_t i = 0; i < errors.size() && i < kListedAtMost; ++i) {
    json::object error{{"message", protocol::sanitized_text(errors[i].message, kMaxDetailBytes)}};
    if (with_lines) error["line"] = errors[i].line;
    listed.push_back(std::move(error));
  }
  std::string detail =
      errors.size() == 1 ? errors[0].message : std::to_string(errors.size()) + " errors";
  if (with_lines) detail += "; nothing was changed";
  return problem(422, "invalid-rows", "The content holds values the directory cannot take", detail,
                 {{"errors", std::move(listed)}, {"error_count", errors.size()}});
}

// ---- what a request says ----------------------------------------------------------------------

// A path segment percent-decoded (RFC 3986); nullopt when an escape is not two hex digits.
std::optional<std::string> decoded_segment(std::string_view segment) {
  std::string out;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    int high = protocol::hex_digit_value(segment[i + 1]);
    int low = protocol::hex_digit_value(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

// A list's cursor: the key of its last row, each column in hex, joined by '.'.
std::string cursor_of(const std::vector<std::string>& key) {
  std::string out;
  for (const auto& column : key)
    out += (out.empty() ? "" : ".") + protocol::hex_lower(column);
  return out;
}

std::optional<std::vector<std::string>> key_of_cursor(std::string_view cursor, size_t columns) {
  std::vector<std::string> key(1);
  for (size_t i = 0; i < cursor.size(); ++i) {
    if (cursor[i] == '.') {
      key.emplace_back();
      continue;
    }
    if (i + 1 >= cursor.size()) return std::nullopt;
    int high = protocol::hex_digit_value(cursor[i]);
    int low = protocol::hex_digit_value(cursor[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    key.back() += static_cast<char>(high * 16 + low);
    ++i;
  }
  if (key.size() != columns) return std::nullopt;
  return key;
}

std::string media_type(std::string_view content_type) {
  return protocol::ascii_lower(
      protocol::trim_blanks(content_type.substr(0, content_type.find(';'))));
}

// ---- the resources ----------------------------------------------------------------------------

// What the API knows of each kind of row.
template <class Row>
struct Kind;

template <>
struct Kind<Mailbox> {
  static constexpr std::string_view kCollection = "mailboxes";
  static constexpr std::string_view kRowKind = "mailbox";
  static constexpr DirectoryTable kTable = DirectoryTable::kMailboxes;
  static std::vector<std::string_view> key_fields() { return {"mailbox"}; }
  // Fields a key alone is checked with, for the fields the key does not hold.
  static json::object key_filler() { return {{"type", "APP"}}; }
  static std::vector<Mailbox>& rows(DirectoryContents& c) { return c.mailboxes; }
  static storage::TableChanges<Mailbox>& changes(DirectoryChanges& c) { return c.mailboxes; }
  static json::object to_json(const Mailbox& m) {
    return {{"mailbox", m.address},
            {"type", protocol::to_string(m.type)},
            {"status", protocol::to_string(m.status)}};
  }
};

template <>
struct Kind<AllowedSender> {
  static constexpr std::string_view kCollection = "senders";
  static constexpr std::string_view kRowKind = "sender";
  static constexpr DirectoryTable kTable = DirectoryTable::kSenders;
  static std::vector<std::string_view> key_fields() { return {"mailbox", "sender"}; }
  static json::object key_filler() { return {}; }
  static std::vector<AllowedSender>& rows(DirectoryContents& c) { return c.senders; }
  static storage::TableChanges<AllowedSender>& changes(DirectoryChanges& c) { return c.senders; }
  static json::object to_json(const AllowedSender& s) {
    return {{"mailbox", s.mailbox}, {"sender", s.sender}};
  }
};

template <>
struct Kind<Holder> {
  static constexpr std::string_view kCollection = "holders";
  static constexpr std::string_view kRowKind = "holder";
  static constexpr DirectoryTable kTable = DirectoryTable::kHolders;
  static std::vector<std::string_view> key_fields() { return {"holder"}; }
  static json::object key_filler() { return {}; }
  static std::vector<Holder>& rows(DirectoryContents& c) { return c.holders; }
  static storage::TableChanges<Holder>& changes(DirectoryChanges& c) { return c.holders; }
  static json::object to_json(const Holder& h) { return {{"holder", h.id}, {"label", h.label}}; }
};

template <>
struct Kind<HolderAttachment> {
  static constexpr std::string_view kCollection = "attachments";
  static constexpr std::string_view kRowKind = "attachment";
  static constexpr DirectoryTable kTable = DirectoryTable::kAttachments;
  static std::vector<std::string_view> key_fields() { return {"holder", "mailbox"}; }
  static json::object key_filler() { return {{"role", "owner"}}; }
  static std::vector<HolderAttachment>& rows(DirectoryContents& c) { return c.attachments; }
  static storage::TableChanges<HolderAttachment>& changes(DirectoryChanges& c) {
    return c.attachments;
  }
  static json::object to_json(const HolderAttachment& a) {
    return {{"holder", a.holder}, {"mailbox", a.mailbox}, {"role", storage::to_string(a.role)}};
  }
};

template <>
struct Kind<CertificateBinding> {
  static constexpr std::string_view kCollection = "bindings";
  static constexpr std::string_view kRowKind = "binding";
  static constexpr DirectoryTable kTable = DirectoryTable::kBindings;
  static std::vector<std::string_view> key_fields() { return {"mailbox", "match", "value"}; }
  static json::object key_filler() { return {}; }
  static std::vector<CertificateBinding>& rows(DirectoryContents& c) { return c.bindings; }
  static storage::TableChanges<CertificateBinding>& changes(DirectoryChanges& c) {
    return c.bindings;
  }
  static json::object to_json(const CertificateBinding& b) {
    return {{"mailbox", b.mailbox},
            {"match", storage::to_string(b.match)},
            {"value", b.value},
            {"label", b.label}};
  }
};

std::string joined_key(const std::vector<std::string>& key) {
  std::string out;
  for (const auto& column : key)
    out += (out.empty() ? "" : " ") + column;
  return out;
}

// The path of one row, its key columns percent-encoded.
std::string location_of(std::string_view collection, const std::vector<std::string>& key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = std::string(kPrefix) + "/" + std::string(collection);
  for (const auto& column : key) {
    out += '/';
    for (unsigned char c : column) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
  }
  return out;
}

// One request to one kind of row, with the directory it reads and changes.
template <class Row>
class ResourceRequest {
 public:
  using K = Kind<Row>;

  ResourceRequest(const ProvisioningRequest& request, std::vector<std::string> key_segments,
                  storage::DirectoryStore& directory)
      : request_(request), key_segments_(std::move(key_segments)), directory_(directory) {}

  AdminResponse answer() {
    std::string_view method = request_.method;
    bool item = !key_segments_.empty();
    if (item && key_segments_.size() != K::key_fields().size())
      return not_found("a " + std::string(K::kRowKind) + " is named by " +
                       std::to_string(K::key_fields().size()) + " path segments after /" +
                       std::string(K::kCollection));
    if (method == "GET" || method == "HEAD") return item ? get_one() : list();
    if ((item && method != "PUT" && method != "DELETE") || (!item && method != "POST")) {
      return item ? method_not_allowed("a " + std::string(K::kRowKind), "GET, HEAD, PUT, DELETE")
                  : method_not_allowed(K::kCollection, "GET, HEAD, POST");
    }
    if (!request_.client.may_write) return write_refused(request_);
    if (method == "DELETE") return remove();
    std::string type = media_type(request_.content_type);
    if (!type.empty() && type != "application/json")
      return problem(415, "unsupported-media-type", "The body is not JSON",
                     "send the body as Content-Type: application/json");
    return method == "POST" ? create() : replace();
  }

  static AdminResponse write_refused(const ProvisioningRequest& request) {
    Event("directory_change_refused")
        .audit()
        .add("method", request.method)
        .add("path", request.target.substr(0, request.target.find('?')))
        .add("client", request.client.address)
        .add("client_spki_sha256", request.client.spki_sha256)
        .add("client_subject", request.client.subject)
        .warn();
    return problem(403, "write-forbidden", "This client may not change the directory",
                   request.client.spki_sha256.empty()
                       ? "changes need the admin endpoint over TLS and a client certificate listed "
                         "in admin.provisioning_writers"
                       : "this client certificate (spki-sha256 " + request.client.spki_sha256 +
                             ") is not in admin.provisioning_writers");
  }

 private:
  // The row the request names or carries, checked and normalised as a row of an import file;
  // nullopt with `errors` set when it is not one. `fields` are the body's; the path's key
  // segments are added (a body that names another key is refused).
  std::optional<Row> checked_row(json::object fields, std::vector<storage::ImportError>& errors) {
    auto names = K::key_fields();
    for (size_t i = 0; i < key_segments_.size(); ++i) {
      auto found = fields.find(names[i]);
      if (found != fields.end() &&
          (!found->value().is_string() || found->value().as_string() != key_segments_[i])) {
        errors.push_back({1, "the body's '" + std::string(names[i]) + "' differs from the path's"});
        return std::nullopt;
      }
      fields[names[i]] = key_segments_[i];
    }
    if (fields.contains("kind")) {
      errors.push_back({1, "a resource's body has no 'kind': the path says it"});
      return std::nullopt;
    }
    fields["kind"] = K::kRowKind;
    storage::DirectoryFileReader reader(storage::DirectoryFileFormat::kJsonLines);
    reader.feed(json::serialize(fields));
    storage::ImportRows rows = reader.finish(errors);
    if (!errors.empty()) return std::nullopt;
    auto& found = K::rows(rows.contents);
    if (found.size() != 1) {
      errors.push_back({1, "the body is not one " + std::string(K::kRowKind)});
      return std::nullopt;
    }
    return std::move(found.front());
  }

  // The row of the body, checked; nullopt with `refusal` set (400, 422) when there is none.
  std::optional<Row> body_row(AdminResponse& refusal) {
    auto body = body_object(refusal);
    if (!body) return std::nullopt;
    std::vector<storage::ImportError> errors;
    auto row = checked_row(std::move(*body), errors);
    if (!row) refusal = invalid_rows(errors, false);
    return row;
  }

  // The stored row the path names; nullopt with `refusal` set (404) when there is none.
  std::optional<Row> named_stored_row(AdminResponse& refusal) {
    std::vector<storage::ImportError> errors;
    auto row = checked_row(K::key_filler(), errors);
    if (!row) {
      refusal = not_found(errors.front().message);
      return std::nullopt;
    }
    auto found = stored(*row);
    if (!found)
      refusal =
          not_found("no " + std::string(K::kRowKind) + " " + joined_key(storage::page_key(*row)));
    return found;
  }

  // The body as a JSON object; nullopt with `refusal` set when it is not one.
  std::optional<json::object> body_object(AdminResponse& refusal) {
    // A PUT's path names the row: an empty body is a row of its key alone (an allowed sender).
    if (request_.body.empty() && request_.method == "PUT") return json::object{};
    if (request_.body.empty()) {
      refusal = bad_request("the body is empty: send the " + std::string(K::kRowKind) +
                            " as a JSON object");
      return std::nullopt;
    }
    boost::system::error_code ec;
    json::value value = json::parse(request_.body, ec);
    if (ec) {
      refusal = bad_request("the body is not JSON: " + ec.message());
      return std::nullopt;
    }
    if (!value.is_object()) {
      refusal = bad_request("the body is not a JSON object");
      return std::nullopt;
    }
    return std::move(value.as_object());
  }

  // The stored row with `row`'s key, if any.
  std::optional<Row> stored(const Row& row) {
    std::vector<std::string> key = storage::page_key(row);
    storage::DirectoryPageQuery query;
    query.table = K::kTable;
    query.limit = 100000;
    if constexpr (std::is_same_v<Row, Holder>) {
      query.holder = key[0];
    } else if constexpr (std::is_same_v<Row, HolderAttachment>) {
      query.holder = key[0];
      query.mailbox = key[1];
    } else {
      query.mailbox = key[0];
    }
    DirectoryContents page = directory_.read_page(query);
    for (auto& candidate : K::rows(page)) {
      if (storage::page_key(candidate) == key) return std::move(candidate);
    }
    return std::nullopt;
  }

  // Why `row` cannot be stored as things are (a mailbox or professional it names is absent), or
  // nullopt.
  std::optional<AdminResponse> missing_reference(const Row& row) {
    auto missing = [](const std::string& what) {
      return problem(409, "missing-reference", "The row names what the directory does not hold",
                     what + "; create it first");
    };
    if constexpr (!std::is_same_v<Row, Mailbox> && !std::is_same_v<Row, Holder>) {
      auto mailbox = directory_.find_mailbox(row.mailbox);
      if (!mailbox.ok()) throw storage::StorageError(mailbox.error);
      if (!mailbox.value) return missing("no mailbox " + row.mailbox);
    }
    if constexpr (std::is_same_v<Row, HolderAttachment>) {
      storage::DirectoryPageQuery query;
      query.table = DirectoryTable::kHolders;
      query.holder = row.holder;
      query.limit = 1;
      if (directory_.read_page(query).holders.empty()) return missing("no holder " + row.holder);
    }
    return std::nullopt;
  }

  AdminResponse list() {
    storage::DirectoryPageQuery query;
    query.table = K::kTable;
    query.limit = kDefaultPageRows;
    std::string limit = query_parameter(request_.target, "limit");
    if (!limit.empty()) {
      size_t parsed = 0;
      bool digits = limit.size() <= 4 && std::all_of(limit.begin(), limit.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
      if (digits) parsed = std::stoul(limit);
      if (!digits || parsed < 1 || parsed > kMaxPageRows)
        return bad_request("limit is a number from 1 to " + std::to_string(kMaxPageRows));
      query.limit = parsed;
    }
    std::string after = query_parameter(request_.target, "after");
    if (!after.empty()) {
      auto key = key_of_cursor(after, storage::page_key_size(K::kTable));
      if (!key) return bad_request("after is the 'next' of an earlier page, unchanged");
      query.after = std::move(*key);
    }
    for (auto [name, filter] :
         {std::pair{"mailbox", &query.mailbox}, std::pair{"holder", &query.holder}}) {
      std::string value = query_parameter(request_.target, name);
      if (value.empty()) continue;
      bool takes =
          std::string_view(name) == "mailbox"
              ? K::kTable != DirectoryTable::kHolders
              : K::kTable == DirectoryTable::kHolders || K::kTable == DirectoryTable::kAttachments;
      if (!takes) return bad_request(std::string(K::kCollection) + " are not filtered by " + name);
      auto normalized = std::string_view(name) == "mailbox"
                            ? protocol::normalize_mailbox_address(value)
                            : protocol::normalize_professional_id(value);
      if (!normalized) return bad_request("'" + value + "' is not a " + name);
      *filter = std::move(*normalized);
    }
    // One row more than asked says whether there is a next page.
    ++query.limit;
    DirectoryContents page = directory_.read_page(query);
    auto& rows = K::rows(page);
    json::object document;
    bool more = rows.size() == query.limit;
    if (more) rows.pop_back();
    json::array items;
    for (const auto& row : rows)
      items.push_back(K::to_json(row));
    document["items"] = std::move(items);
    if (more && !rows.empty()) document["next"] = cursor_of(storage::page_key(rows.back()));
    return json_answer(200, document);
  }

  AdminResponse get_one() {
    AdminResponse refusal;
    auto found = named_stored_row(refusal);
    return found ? json_answer(200, K::to_json(*found)) : refusal;
  }

  AdminResponse create() {
    AdminResponse refusal;
    auto row = body_row(refusal);
    if (!row) return refusal;
    if (auto found = stored(*row))
      return problem(409, "already-exists", "The directory already holds this row",
                     std::string(K::kRowKind) + " " + joined_key(storage::page_key(*row)) +
                         " exists (PUT to its path replaces it)",
                     {{"existing", K::to_json(*found)}});
    if (auto missing = missing_reference(*row)) return *missing;
    DirectoryChanges changes;
    K::changes(changes).added.push_back(*row);
    directory_.apply_changes(changes);
    audit("create", *row);
    return created(*row);
  }

  AdminResponse replace() {
    AdminResponse refusal;
    auto row = body_row(refusal);
    if (!row) return refusal;
    auto found = stored(*row);
    if (found && *found == *row) return json_answer(200, K::to_json(*row));  // nothing to change
    if (!found) {
      if (auto missing = missing_reference(*row)) return *missing;
    }
    DirectoryChanges changes;
    (found ? K::changes(changes).changed : K::changes(changes).added).push_back(*row);
    directory_.apply_changes(changes);
    audit(found ? "replace" : "create", *row);
    return found ? json_answer(200, K::to_json(*row)) : created(*row);
  }

  AdminResponse remove() {
    AdminResponse refusal;
    auto found = named_stored_row(refusal);
    if (!found) return refusal;
    DirectoryChanges changes;
    K::changes(changes).removed.push_back(*found);
    directory_.apply_changes(changes);
    audit("delete", *found);
    return {204, "application/json", ""};
  }

  AdminResponse created(const Row& row) {
    return json_answer(201, K::to_json(row),
                       {{"Location", location_of(K::kCollection, storage::page_key(row))}});
  }

  // The audit event of a change: what changed, and the certificate that asked for it.
  void audit(std::string_view operation, const Row& row) {
    Event event("directory_changed");
    event.audit().add("operation", operation).add("resource", K::kRowKind);
    for (const auto& member : K::to_json(row))
      event.add(member.key(), std::string_view(member.value().as_string()));
    event.add("client", request_.client.address)
        .add("client_spki_sha256", request_.client.spki_sha256)
        .add("client_subject", request_.client.subject)
        .info();
  }

  const ProvisioningRequest& request_;
  std::vector<std::string> key_segments_;
  storage::DirectoryStore& directory_;
};

// ---- the bulk import and the export -----------------------------------------------------------

// What an import asks for, from its query and Content-Type; nullopt with `refusal` set when
// the request does not say it well.
struct ImportOptions {
  storage::DirectoryFileFormat format = storage::DirectoryFileFormat::kCsv;
  bool sync = false;
  bool dry_run = false;
  storage::AbsentMailboxes absent = storage::AbsentMailboxes::kKeep;
  std::string absent_text;  // for the audit event: suspend, close, remove, or "" (no sync)
};

std::optional<ImportOptions> import_options(const ProvisioningRequest& request,
                                            AdminResponse& refusal) {
  ImportOptions options;
  if (std::string asked = query_parameter(request.target, "format"); !asked.empty()) {
    auto format = storage::parse_directory_file_format(asked);
    if (!format) {
      refusal = bad_request("format is csv or jsonl");
      return std::nullopt;
    }
    options.format = *format;
  } else {
    std::string type = media_type(request.content_type);
    if (type == "text/csv") {
      options.format = storage::DirectoryFileFormat::kCsv;
    } else if (type == "application/jsonl" || type == "application/x-ndjson" ||
               type == "application/ndjson" || type == "application/x-jsonlines") {
      options.format = storage::DirectoryFileFormat::kJsonLines;
    } else {
      refusal = problem(415, "unsupported-media-type", "The body is not a directory file",
                        "send the file as Content-Type: text/csv or application/jsonl (or say "
                        "?format=csv|jsonl)");
      return std::nullopt;
    }
  }
  auto flag = [&](std::string_view name, bool& out) -> bool {
    std::string text = query_parameter(request.target, name);
    if (text.empty() || text == "false" || text == "0") return true;
    if (text != "true" && text != "1") return false;
    out = true;
    return true;
  };
  if (!flag("sync", options.sync) || !flag("dry_run", options.dry_run)) {
    refusal = bad_request("sync and dry_run are true or false");
    return std::nullopt;
  }
  options.absent_text = query_parameter(request.target, "absent");
  if (!options.absent_text.empty()) {
    auto chosen = storage::parse_absent_mailboxes(options.absent_text);
    if (!options.sync || !chosen) {
      refusal = bad_request(options.sync ? "absent is suspend, close or remove"
                                         : "absent goes with sync=true");
      return std::nullopt;
    }
    options.absent = *chosen;
  } else if (options.sync) {
    options.absent = storage::AbsentMailboxes::kSuspend;
    options.absent_text = "suspend";
  }
  return options;
}

// The answer of an import: what changed (or would, in a dry run), table by table.
json::object import_document(const ImportOptions& options, const DirectoryChanges& planned) {
  json::object counts;
  auto count = [&](std::string_view name, const auto& table) {
    counts[name] = json::object{{"added", table.added.size()},
                                {"changed", table.changed.size()},
                                {"removed", table.removed.size()}};
  };
  count("mailboxes", planned.mailboxes);
  count("senders", planned.senders);
  count("holders", planned.holders);
  count("attachments", planned.attachments);
  count("bindings", planned.bindings);
  json::object document{{"dry_run", options.dry_run},
                        {"sync", options.sync},
                        {"summary", storage::summarize_changes(planned)},
                        {"counts", counts}};
  if (options.dry_run) {
    auto lines = storage::describe_changes(planned);
    json::array listed;
    for (size_t i = 0; i < lines.size() && i < kListedAtMost; ++i)
      listed.push_back(json::string(lines[i]));
    document["changes"] = std::move(listed);
    document["change_count"] = lines.size();
  }
  return document;
}

// The bulk import: the file read and checked whole, then planned and made in one transaction,
// as `mssgatectl directory import` does.
AdminResponse import_file(const ProvisioningRequest& request, storage::DirectoryStore& directory) {
  if (request.method != "POST") return method_not_allowed("import", "POST");
  if (!request.client.may_write) return ResourceRequest<Mailbox>::write_refused(request);
  AdminResponse refusal;
  auto options = import_options(request, refusal);
  if (!options) return refusal;

  std::vector<storage::ImportError> errors;
  storage::DirectoryFileReader reader(options->format);
  reader.feed(request.body);
  storage::ImportRows rows = reader.finish(errors);
  if (!errors.empty()) return invalid_rows(errors, true);
  DirectoryChanges planned;
  directory.change_whole([&](const DirectoryContents& current) -> std::optional<DirectoryChanges> {
    planned = storage::plan_changes(current, rows, options->absent, errors);
    if (!errors.empty() || options->dry_run) return std::nullopt;
    return planned;
  });
  if (!errors.empty()) return invalid_rows(errors, true);
  if (!options->dry_run) {
    const auto& c = rows.contents;
    Event("directory_imported")
        .audit()
        .add("sync", options->sync)
        .add("absent", options->absent_text)
        .add("rows", c.mailboxes.size() + c.senders.size() + c.holders.size() +
                         c.attachments.size() + c.bindings.size())
        .add("changes", planned.size())
        .add("summary", storage::summarize_changes(planned))
        .add("client", request.client.address)
        .add("client_spki_sha256", request.client.spki_sha256)
        .add("client_subject", request.client.subject)
        .info();
  }
  return json_answer(200, import_document(*options, planned));
}

AdminResponse export_file(const ProvisioningRequest& request, storage::DirectoryStore& directory) {
  if (request.method != "GET" && request.method != "HEAD")
    return method_not_allowed("export", "GET, HEAD");
  std::string asked = query_parameter(request.target, "format");
  auto format = asked.empty() ? std::optional(storage::DirectoryFileFormat::kCsv)
                              : storage::parse_directory_file_format(asked);
  if (!format) return bad_request("format is csv or jsonl");
  std::ostringstream out;
  storage::write_directory_file(directory.read_whole(), *format, out);
  bool csv = *format == storage::DirectoryFileFormat::kCsv;
  return {200,
          csv ? "text/csv; charset=utf-8" : "application/jsonl",
          out.str(),
          {{"Content-Disposition",
            std::string("attachment; filename=\"directory.") + (csv ? "csv" : "jsonl") + "\""}}};
}

AdminResponse index_document(const ProvisioningRequest& request) {
  if (request.method != "GET" && request.method != "HEAD")
    return method_not_allowed("the directory's index", "GET, HEAD");
  json::object links;
  for (std::string_view name :
       {"mailboxes", "senders", "holders", "attachments", "bindings", "import", "export"})
    links[name] = std::string(kPrefix) + "/" + std::string(name);
  return json_answer(200, json::object{{"resources", links},
                                       {"openapi", "/api/openapi.json"},
                                       {"may_write", request.client.may_write}});
}

AdminResponse route(const ProvisioningRequest& request, storage::DirectoryStore& directory) {
  std::string_view path = request.target.substr(0, request.target.find('?'));
  path.remove_prefix(kPrefix.size());
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  if (path.empty()) return index_document(request);
  path.remove_prefix(1);  // the '/'
  std::vector<std::string> segments;
  while (true) {
    size_t slash = path.find('/');
    auto segment = decoded_segment(path.substr(0, slash));
    if (!segment) return bad_request("a path segment holds a '%' not followed by two hex digits");
    segments.push_back(std::move(*segment));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  std::string collection = segments.front();
  segments.erase(segments.begin());
  if (collection == "import" && segments.empty()) return import_file(request, directory);
  if (collection == "export" && segments.empty()) return export_file(request, directory);
  if (collection == "mailboxes")
    return ResourceRequest<Mailbox>(request, std::move(segments), directory).answer();
  if (collection == "senders")
    return ResourceRequest<AllowedSender>(request, std::move(segments), directory).answer();
  if (collection == "holders")
    return ResourceRequest<Holder>(request, std::move(segments), directory).answer();
  if (collection == "attachments")
    return ResourceRequest<HolderAttachment>(request, std::move(segments), directory).answer();
  if (collection == "bindings")
    return ResourceRequest<CertificateBinding>(request, std::move(segments), directory).answer();
  return not_found(
      "the directory's resources are mailboxes, senders, holders, attachments, "
      "bindings, import and export");
}

}  // namespace

AdminResponse directory_unavailable(std::string_view why) {
  return problem(503, "directory-unavailable", "The directory cannot be read or changed now",
                 std::string(why) + "; nothing was changed");
}

AdminResponse handle_provisioning(const ProvisioningRequest& request,
                                  storage::DirectoryStore& directory) {
  try {
    return route(request, directory);
  } catch (const storage::StorageRefusal& e) {
    // Another writer got there between the check and the change.
    return problem(409, "refused-by-directory", "The directory refused the change", e.what());
  } catch (const storage::StorageError& e) {
    Event("directory_api_failed").add("error", e.what()).warn();
    return directory_unavailable(e.what());
  } catch (const std::exception& e) {
    Event("directory_api_failed").add("error", e.what()).error();
    return directory_unavailable(e.what());
  }
}

}  // namespace mssgate::daemon
