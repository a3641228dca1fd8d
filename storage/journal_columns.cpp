#include "storage/journal_columns.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "storage/clock.hpp"
#include "storage/column_values.hpp"

namespace mssgate::storage {
namespace {

using namespace column_values;

// When a field appears in the JSON line.
enum class Shown { kAlways, kNotEmpty, kSent, kReceived, kUninspected, kReport };

template <class Record>
struct Column {
  int field = -1;  // its Field enumerator; -1: a key, no field of the record
  std::string_view name;
  std::string_view sql;                                    // type and constraints
  void (*bind)(Statement&, int, const Record&) = nullptr;  // null: the caller or SQLite sets it
  bool (*read)(const Statement&, int, Record&) = nullptr;  // null: not read back from here
  // The same for PostgreSQL's texts.
  void (*bind_text)(TextParameters&, int, const Record&) = nullptr;
  bool (*read_text)(const TextRow&, int, Record&) = nullptr;
  void (*to_json)(std::string&, const Record&) = nullptr;  // null: not in the JSON line
  std::string_view json_key = {};                          // empty: the column's name
  Shown shown = Shown::kAlways;
  bool in_claims = false;  // inside the line's "claims" object
};

struct JsonShape {
  std::string_view key = {};
  Shown shown = Shown::kAlways;
  bool in_claims = false;
};

template <auto Member, class Field>
constexpr Column<RecordOf<Member>> column(Field field, std::string_view name, std::string_view sql,
                                          JsonShape json = {}) {
  return {static_cast<int>(field),
          name,
          sql,
          &bind_member<Member, Statement>,
          &read_member<Member, Statement>,
          &bind_member<Member, TextParameters>,
          &read_member<Member, TextRow>,
          &json_member<Member>,
          json.key,
          json.shown,
          json.in_claims};
}

template <class Record>
constexpr Column<Record> key_column(std::string_view name, std::string_view sql) {
  return {.name = name, .sql = sql};
}

template <class Record, size_t N>
consteval bool in_field_order(const std::array<Column<Record>, N>& columns) {
  int next = 0;
  for (const auto& c : columns) {
    if (c.field >= 0 && c.field != next++) return false;
  }
  return true;
}

constexpr std::string_view kText = "TEXT NOT NULL";
constexpr std::string_view kInteger = "INTEGER NOT NULL";
// The columns added after the first journals have a default: ALTER TABLE gives it to the rows
// already there.
constexpr std::string_view kAddedText = "TEXT NOT NULL DEFAULT ''";
constexpr std::string_view kAddedInteger = "INTEGER NOT NULL DEFAULT 0";
constexpr std::string_view kSeq = "seq";

using Document = IndicatorDocument;
using Event = IndicatorEvent;
using Connection = ConnectionEvent;

constexpr std::array kDocumentColumns{
    key_column<Document>(kSeq, "INTEGER NOT NULL REFERENCES indicator_event (seq)"),
    key_column<Document>("position", kInteger),
    column<&Document::code>(DocumentField::kCode, "code", kText),
    column<&Document::code_system>(DocumentField::kCodeSystem, "code_system", kText),
    column<&Document::ins>(DocumentField::kIns, "ins", kText),
};

void time_json(std::string& out, const Event& e) {
  json_string(out, iso_time(e.at_ms));
}

template <class Out>
void bind_document_count(Out& s, int index, const Event& e) {
  s.bind(index, static_cast<int64_t>(e.documents.size()));
}

void documents_json(std::string& out, const Event& e) {
  out += '[';
  for (size_t i = 0; i < e.documents.size(); ++i) {
    out += i ? ",{" : "{";
    bool first = true;
    for (const auto& c : kDocumentColumns) {
      if (!c.to_json) continue;
      out += first ? "" : ",";
      first = false;
      json_string(out, c.name);
      out += ':';
      c.to_json(out, e.documents[i]);
    }
    out += '}';
  }
  out += ']';
}

using F = EventField;
constexpr JsonShape kSentOnly{.shown = Shown::kSent};
constexpr JsonShape kReceivedOnly{.shown = Shown::kReceived};
constexpr JsonShape kWhenNotEmpty{.shown = Shown::kNotEmpty};
constexpr JsonShape kReportOnly{.shown = Shown::kReport};

// In the order of the first journals' CREATE TABLE, which is also the JSON line's.
constexpr std::array kEventColumns{
    key_column<Event>(kSeq, "INTEGER PRIMARY KEY AUTOINCREMENT"),
    column<&Event::key>(F::kKey, "event_key", "TEXT NOT NULL UNIQUE", {.key = "key"}),
    Column<Event>{.field = static_cast<int>(F::kAtMs),
                  .name = "at_ms",
                  .sql = kInteger,
                  .bind = &bind_member<&Event::at_ms, Statement>,
                  .read = &read_member<&Event::at_ms, Statement>,
                  .bind_text = &bind_member<&Event::at_ms, TextParameters>,
                  .read_text = &read_member<&Event::at_ms, TextRow>,
                  .to_json = &time_json,
                  .json_key = "time"},
    column<&Event::day>(F::kDay, "day", kText),
    // The CHECK names Direction's words.
    column<&Event::direction>(F::kDirection, "direction",
                              "TEXT NOT NULL CHECK (direction IN ('sent', 'received'))"),
    column<&Event::mailbox>(F::kMailbox, "mailbox", kText),
    column<&Event::mailbox_type>(F::kMailboxType, "mailbox_type", kText),
    column<&Event::auth_mode>(F::kAuthMode, "auth_mode", kText),
    column<&Event::azp>(F::kAzp, "azp", kText, kWhenNotEmpty),
    column<&Event::nil>(F::kNil, "nil", kText, kWhenNotEmpty),
    column<&Event::message_id>(F::kMessageId, "message_id", kText, kWhenNotEmpty),
    column<&Event::queue_id>(F::kQueueId, "queue_id", kText, kWhenNotEmpty),
    column<&Event::size>(F::kSize, "size", kInteger),
    column<&Event::recipients>(F::kRecipients, "recipients", kInteger),
    column<&Event::to_same_operator>(F::kToSameOperator, "to_same_operator", kInteger, kSentOnly),
    column<&Event::to_other_operator>(F::kToOtherOperator, "to_other_operator", kInteger,
                                      kSentOnly),
    column<&Event::to_patient>(F::kToPatient, "to_patient", kInteger, kSentOnly),
    column<&Event::counterpart>(F::kCounterpart, "counterpart", kText, kReceivedOnly),
    column<&Event::inspected>(F::kInspected, "inspected", kInteger),
    column<&Event::uninspectable_reason>(F::kUninspectableReason, "uninspectable_reason", kText,
                                         {.shown = Shown::kUninspected}),
    column<&Event::xdm>(F::kXdm, "xdm", kInteger),
    // Documents are read back from indicator_document; the event's row keeps their number.
    Column<Event>{.field = static_cast<int>(F::kDocuments),
                  .name = "documents",
                  .sql = kInteger,
                  .bind = &bind_document_count<Statement>,
                  .bind_text = &bind_document_count<TextParameters>,
                  .to_json = &documents_json},
    column<&Event::ins>(F::kIns, "ins", kText),
    column<&Event::claim_codecda>(F::kClaimCodecda, "claim_codecda", kText,
                                  {"codecda", Shown::kNotEmpty, true}),
    column<&Event::claim_ins>(F::kClaimIns, "claim_ins", kText, {"ins", Shown::kNotEmpty, true}),
    column<&Event::claim_xdm_subject>(F::kClaimXdmSubject, "claim_xdm_subject", kInteger,
                                      {"xdm_subject", Shown::kAlways, true}),
    column<&Event::mismatches>(F::kMismatches, "mismatches", kText),
    column<&Event::mes_fin>(F::kMesFin, "mes_fin", kInteger),
    column<&Event::mdn>(F::kMdn, "mdn", kInteger),
    column<&Event::mdn_requested>(F::kMdnRequested, "mdn_requested", kInteger),
    column<&Event::dsn>(F::kDsn, "dsn", kAddedInteger, kReportOnly),
    column<&Event::dsn_actions>(F::kDsnActions, "dsn_actions", kAddedText, kReportOnly),
    column<&Event::disposition>(F::kDisposition, "disposition", kAddedText, kReportOnly),
    column<&Event::integration_error>(F::kIntegrationError, "integration_error", kAddedInteger,
                                      kReportOnly),
    column<&Event::original_message_id>(F::kOriginalMessageId, "original_message_id", kAddedText,
                                        kReportOnly),
    column<&Event::original_envelope_id>(F::kOriginalEnvelopeId, "original_envelope_id", kAddedText,
                                         kReportOnly),
    column<&Event::envelope_id>(F::kEnvelopeId, "envelope_id", kAddedText, kWhenNotEmpty),
};

template <class Out>
void bind_one(Out& s, int index, const Connection&) {
  s.bind(index, int64_t{1});
}

using C = ConnectionField;
constexpr std::array kConnectionColumns{
    column<&Connection::mailbox>(C::kMailbox, "mailbox", kText),
    column<&Connection::day>(C::kDay, "day", kText),
    column<&Connection::auth_mode>(C::kAuthMode, "auth_mode", kText),
    column<&Connection::protocol>(C::kProtocol, "protocol", kText),
    column<&Connection::mailbox_type>(C::kMailboxType, "mailbox_type", kText),
    // Each sign-in counts one; the upsert adds them up.
    Column<Connection>{.field = static_cast<int>(C::kConnections),
                       .name = "connections",
                       .sql = kInteger,
                       .bind = &bind_one<Statement>,
                       .bind_text = &bind_one<TextParameters>},
    column<&Connection::at_ms>(C::kLastAtMs, "last_at_ms", kInteger),
};

// Every sign-in, failed ones too: the key is every column before mailbox_type.
using S = SignInField;
constexpr std::array kSignInColumns{
    column<&Connection::mailbox>(S::kMailbox, "mailbox", kText),
    column<&Connection::day>(S::kDay, "day", kText),
    column<&Connection::auth_mode>(S::kAuthMode, "auth_mode", kText),
    column<&Connection::protocol>(S::kProtocol, "protocol", kText),
    column<&Connection::failure>(S::kFailure, "failure", kText),
    column<&Connection::professional>(S::kProfessional, "professional", kText),
    column<&Connection::lps>(S::kLps, "lps", kText),
    column<&Connection::mailbox_type>(S::kMailboxType, "mailbox_type", kText),
    Column<Connection>{.field = static_cast<int>(S::kSignIns),
                       .name = "sign_ins",
                       .sql = kInteger,
                       .bind = &bind_one<Statement>,
                       .bind_text = &bind_one<TextParameters>},
    column<&Connection::at_ms>(S::kLastAtMs, "last_at_ms", kInteger),
};

// A table of counted sign-ins: each row adds up the sign-ins of its key (its columns before
// mailbox_type), and keeps the latest time and the mailbox's latest type.
struct CountedTable {
  std::string_view name;
  std::string_view count;  // the column of the number of sign-ins
};
constexpr CountedTable kConnectionDay{"connection_day", "connections"};
constexpr CountedTable kSignInDay{"sign_in_day", "sign_ins"};

static_assert(in_field_order(kDocumentColumns));
static_assert(in_field_order(kSignInColumns));
static_assert(in_field_order(kEventColumns));
static_assert(in_field_order(kConnectionColumns));
static_assert(kEventColumns.size() == static_cast<size_t>(F::kEnvelopeId) + 2);
static_assert(kConnectionColumns.size() == static_cast<size_t>(C::kLastAtMs) + 1);

template <class Record, size_t N>
std::string_view name_of(const std::array<Column<Record>, N>& columns, int field) {
  for (const auto& c : columns) {
    if (c.field == field) return c.name;
  }
  return {};
}

// A counted table's key: its columns before mailbox_type.
template <size_t N>
std::string counted_key(const std::array<Column<Connection>, N>& columns) {
  std::string key;
  for (const auto& c : columns) {
    if (c.name == "mailbox_type") break;
    key += (key.empty() ? "" : ", ") + std::string(c.name);
  }
  return key;
}

std::string connection_key() {
  return counted_key(kConnectionColumns);
}

template <class Record>
std::string_view own_sql(const Column<Record>& column) {
  return column.sql;
}

// The columns padded to one width, as the first journals wrote them; `sql_of` gives each
// column's type and constraints, `last` a last column or a table constraint.
template <class Record, size_t N, class SqlOf = decltype(&own_sql<Record>)>
std::string create_table(std::string_view table, const std::array<Column<Record>, N>& columns,
                         const std::string& last, SqlOf sql_of = &own_sql<Record>) {
  size_t width = 0;
  for (const auto& c : columns)
    width = std::max(width, c.name.size());
  std::string sql = "CREATE TABLE IF NOT EXISTS " + std::string(table) + " (\n";
  for (size_t i = 0; i < N; ++i) {
    const auto& c = columns[i];
    sql += "  " + std::string(c.name) + std::string(width + 1 - c.name.size(), ' ');
    sql += std::string(sql_of(c)) + (i + 1 < N || !last.empty() ? ",\n" : "\n");
  }
  if (!last.empty()) sql += "  " + last + "\n";
  return sql + ");\n";
}

// "INSERT… INTO table (…) VALUES (?1, …)" over the bound columns, after the keys when the
// caller binds them.
template <class Record, size_t N>
std::string insert_sql(std::string_view insert, std::string_view table,
                       const std::array<Column<Record>, N>& columns, bool caller_binds_keys) {
  std::string names, values;
  int count = 0;
  for (const auto& c : columns) {
    if (!c.bind && !caller_binds_keys) continue;
    ++count;
    names += (count > 1 ? ", " : "") + std::string(c.name);
    values += (count > 1 ? ", ?" : "?") + std::to_string(count);
  }
  return std::string(insert) + " INTO " + std::string(table) + " (" + names + ") VALUES (" +
         values + ")";
}

// The record's bound columns into `out` from `first_index`; `bind` names the column's binder for
// that kind of row (Column::bind for SQLite, Column::bind_text for PostgreSQL's texts).
template <class Out, class Record, size_t N>
void bind_columns(Out& out, const std::array<Column<Record>, N>& columns, const Record& record,
                  int first_index, void (*Column<Record>::*bind)(Out&, int, const Record&)) {
  int index = first_index;
  for (const auto& c : columns) {
    if (c.*bind) (c.*bind)(out, index++, record);
  }
}

template <class Record, size_t N>
void bind_record(Statement& s, const std::array<Column<Record>, N>& columns, const Record& record,
                 int first_index) {
  bind_columns(s, columns, record, first_index, &Column<Record>::bind);
}

template <class Record, size_t N>
std::string select_list(const std::array<Column<Record>, N>& columns) {
  std::string names;
  for (const auto& c : columns) {
    if (c.read) names += (names.empty() ? "" : ", ") + std::string(c.name);
  }
  return names;
}

// The record's columns read from a row whose record starts at `first_index`; `read` names the
// column's reader for that kind of row (Column::read for SQLite, Column::read_text for
// PostgreSQL's texts).
template <class Row, class Record, size_t N>
void read_columns(const Row& row, int first_index, const std::array<Column<Record>, N>& columns,
                  Record& out, std::string_view table,
                  bool (*Column<Record>::*read)(const Row&, int, Record&)) {
  int index = first_index;
  for (const auto& c : columns) {
    if (!(c.*read)) continue;
    if (!(c.*read)(row, index++, out)) {
      throw StorageError("indicator journal: " + std::string(table) + "." + std::string(c.name) +
                         " holds a value this mssgate does not know");
    }
  }
}

template <class Record, size_t N>
void read_record(const Statement& row, int first_index,
                 const std::array<Column<Record>, N>& columns, Record& out,
                 std::string_view table) {
  read_columns(row, first_index, columns, out, table, &Column<Record>::read);
}

// A sign-in adds to its row; the mailbox's type is the latest. In SQLite (`postgresql` false)
// the columns are named bare and the latest time is max(); in PostgreSQL they are named by
// their table and it is GREATEST().
template <size_t N>
std::string counted_update(const CountedTable& table,
                           const std::array<Column<Connection>, N>& columns, bool postgresql) {
  std::string count(table.count);
  std::string own = postgresql ? std::string(table.name) + "." : "";
  std::string excluded = postgresql ? "EXCLUDED." : "excluded.";
  return " ON CONFLICT (" + counted_key(columns) + ") DO UPDATE SET " + count + " = " + own +
         count + " + " + excluded + count + ", last_at_ms = " + (postgresql ? "GREATEST" : "max") +
         "(" + own + "last_at_ms, " + excluded + "last_at_ms), mailbox_type = " + excluded +
         "mailbox_type";
}

template <size_t N>
std::string counted_upsert(const CountedTable& table,
                           const std::array<Column<Connection>, N>& columns) {
  return insert_sql("INSERT", table.name, columns, false) + counted_update(table, columns, false);
}

// `value`: the column's JSON text.
bool shown(Shown when, const Event& e, std::string_view value) {
  switch (when) {
    case Shown::kAlways:
      return true;
    case Shown::kNotEmpty:
      return value != "\"\"";
    case Shown::kSent:
      return e.direction == Direction::kSent;
    case Shown::kReceived:
      return e.direction == Direction::kReceived;
    case Shown::kUninspected:
      return !e.inspected;
    case Shown::kReport:
      return e.report();
  }
  return true;
}

}  // namespace

std::string_view column_name(EventField field) {
  return name_of(kEventColumns, static_cast<int>(field));
}
std::string_view column_name(DocumentField field) {
  return name_of(kDocumentColumns, static_cast<int>(field));
}
std::string_view column_name(ConnectionField field) {
  return name_of(kConnectionColumns, static_cast<int>(field));
}
std::string_view column_name(SignInField field) {
  return name_of(kSignInColumns, static_cast<int>(field));
}

std::string journal_schema() {
  return create_table("indicator_event", kEventColumns, "") +
         "CREATE INDEX IF NOT EXISTS indicator_event_day ON indicator_event (" +
         std::string(column_name(F::kDay)) + ", " + std::string(column_name(F::kMailbox)) + ");\n" +
         added_event_indexes() +
         create_table("indicator_document", kDocumentColumns, "PRIMARY KEY (seq, position)") +
         create_table("connection_day", kConnectionColumns,
                      "PRIMARY KEY (" + connection_key() + ")") +
         sign_in_day_schema() +
         "CREATE TABLE IF NOT EXISTS journal_meta (\n"
         "  name  TEXT PRIMARY KEY,\n"
         "  value INTEGER NOT NULL\n"
         ");\n";
}

std::string sign_in_day_schema() {
  return create_table(kSignInDay.name, kSignInColumns,
                      "PRIMARY KEY (" + counted_key(kSignInColumns) + ")");
}

std::vector<std::pair<std::string_view, std::string_view>> added_event_columns() {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& c : kEventColumns) {
    if (c.sql == kAddedText || c.sql == kAddedInteger) out.emplace_back(c.name, c.sql);
  }
  return out;
}

// The reports received, by the ids of the message each acknowledges (its Message-ID, its
// envelope id): the acknowledgements report finds a sent message's reports through them. Only
// reports have those ids, so the indexes stay small and cost other events nothing.
std::string added_event_indexes() {
  auto index = [](std::string_view name, F field) {
    std::string id(column_name(field));
    return "CREATE INDEX IF NOT EXISTS " + std::string(name) + " ON indicator_event (" + id + ", " +
           std::string(column_name(F::kMailbox)) + ") WHERE " + id + " <> '';\n";
  };
  return index("indicator_event_original", F::kOriginalMessageId) +
         index("indicator_event_original_envelope", F::kOriginalEnvelopeId);
}

// A pending event's columns: seq is its pending id, and its key is not unique (two deliveries
// of the same message may be pending at once).
std::string pending_schema() {
  auto event_sql = [](const Column<Event>& c) -> std::string_view {
    if (c.name == kSeq) return "INTEGER PRIMARY KEY";
    if (c.field == static_cast<int>(F::kKey)) return kText;
    return c.sql;
  };
  auto document_sql = [](const Column<Document>& c) -> std::string_view {
    return c.name == kSeq ? "INTEGER NOT NULL REFERENCES indicator_pending (seq)" : c.sql;
  };
  return create_table("indicator_pending", kEventColumns, "", event_sql) +
         create_table("indicator_pending_document", kDocumentColumns, "PRIMARY KEY (seq, position)",
                      document_sql);
}

// Written straight into one string: the members in column order, the claims object in the
// place of its first column (even when that one is left out).
std::string json_line(int64_t seq, const IndicatorEvent& event) {
  std::string line;
  line.reserve(1024);
  line += "{\"event\":\"indicator\",\"seq\":";
  line += std::to_string(seq);
  std::string claims;
  size_t claims_at = std::string::npos;
  for (const auto& c : kEventColumns) {
    if (!c.to_json) continue;
    if (c.in_claims && claims_at == std::string::npos) claims_at = line.size();
    // The member is written, then taken back when its value is not shown.
    std::string& target = c.in_claims ? claims : line;
    size_t member_at = target.size();
    if (!c.in_claims || !target.empty()) target += ',';
    json_string(target, c.json_key.empty() ? c.name : c.json_key);
    target += ':';
    size_t value_at = target.size();
    c.to_json(target, event);
    if (!shown(c.shown, event, std::string_view(target).substr(value_at))) target.resize(member_at);
  }
  if (claims_at != std::string::npos) line.insert(claims_at, ",\"claims\":{" + claims + "}");
  line += '}';
  return line;
}

JournalInserts::JournalInserts(sqlite3* db)
    : db_(db),
      event_(db, insert_sql("INSERT OR IGNORE", "indicator_event", kEventColumns, false).c_str()),
      document_(db, insert_sql("INSERT", "indicator_document", kDocumentColumns, true).c_str()),
      connection_(db, counted_upsert(kConnectionDay, kConnectionColumns).c_str()),
      sign_in_(db, counted_upsert(kSignInDay, kSignInColumns).c_str()) {}

std::optional<int64_t> JournalInserts::add(const IndicatorEvent& event) {
  event_.reset();
  bind_record(event_, kEventColumns, event, 1);
  step_once(event_);
  if (sqlite3_changes(db_) == 0) return std::nullopt;  // already counted: a redelivery, a replay
  int64_t seq = sqlite3_last_insert_rowid(db_);
  for (size_t position = 0; position < event.documents.size(); ++position) {
    document_.reset();
    document_.bind(1, seq).bind(2, static_cast<int64_t>(position));
    bind_record(document_, kDocumentColumns, event.documents[position], 3);
    step_once(document_);
  }
  return seq;
}

void JournalInserts::add(const ConnectionEvent& connection) {
  connection_.reset();
  if (connection.failure.empty()) {
    bind_record(connection_, kConnectionColumns, connection, 1);
    step_once(connection_);
  }
  sign_in_.reset();
  bind_record(sign_in_, kSignInColumns, connection, 1);
  step_once(sign_in_);
}

// Steps a statement that returns no row, then rewinds it for the next record. The texts of the
// last record it was given in place (bind_unchanged) are not read again: every parameter is
// bound anew before the next step.
void JournalInserts::step_once(Statement& statement) {
  int rc = statement.step();
  statement.rewind();
  if (rc != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
}

Statement& JournalInserts::prepared(std::optional<Statement>& statement, const std::string& sql) {
  if (!statement) statement.emplace(db_, sql.c_str());
  statement->reset();
  return *statement;
}

int64_t JournalInserts::add_pending(const IndicatorEvent& event) {
  auto& pending =
      prepared(pending_, insert_sql("INSERT", "indicator_pending", kEventColumns, false));
  bind_record(pending, kEventColumns, event, 1);
  step_once(pending);
  int64_t id = sqlite3_last_insert_rowid(db_);
  auto& documents = prepared(pending_document_, insert_sql("INSERT", "indicator_pending_document",
                                                           kDocumentColumns, true));
  for (size_t position = 0; position < event.documents.size(); ++position) {
    documents.reset();
    documents.bind(1, id).bind(2, static_cast<int64_t>(position));
    bind_record(documents, kDocumentColumns, event.documents[position], 3);
    step_once(documents);
  }
  return id;
}

std::optional<int64_t> JournalInserts::promote(int64_t pending_id) {
  // The same columns, copied by SQL: INSERT OR IGNORE, as add() does, counts a key once.
  std::string names;
  for (const auto& c : kEventColumns) {
    if (c.bind) names += (names.empty() ? "" : ", ") + std::string(c.name);
  }
  auto& event = prepared(promote_, "INSERT OR IGNORE INTO indicator_event (" + names + ") SELECT " +
                                       names + " FROM indicator_pending WHERE seq = ?1");
  event.bind(1, pending_id);
  step_once(event);
  std::optional<int64_t> seq;
  if (sqlite3_changes(db_) > 0) {
    seq = sqlite3_last_insert_rowid(db_);
    std::string columns = select_list(kDocumentColumns);
    auto& documents =
        prepared(promote_documents_, "INSERT INTO indicator_document (seq, position, " + columns +
                                         ") SELECT ?2, position, " + columns +
                                         " FROM indicator_pending_document WHERE seq = ?1");
    documents.bind(1, pending_id).bind(2, *seq);
    step_once(documents);
  }
  drop(pending_id);
  return seq;
}

void JournalInserts::drop(int64_t pending_id) {
  auto& documents =
      prepared(drop_documents_, "DELETE FROM indicator_pending_document WHERE seq = ?1");
  documents.bind(1, pending_id);
  step_once(documents);
  auto& pending = prepared(drop_, "DELETE FROM indicator_pending WHERE seq = ?1");
  pending.bind(1, pending_id);
  step_once(pending);
}

std::vector<int64_t> pending_ids(sqlite3* db) {
  Statement rows(db, "SELECT seq FROM indicator_pending ORDER BY seq");
  std::vector<int64_t> ids;
  int rc;
  while ((rc = rows.step()) == SQLITE_ROW)
    ids.push_back(rows.integer(0));
  if (rc != SQLITE_DONE)
    throw StorageError(std::string("indicator journal: ") + sqlite3_errmsg(db));
  return ids;
}

std::vector<std::pair<int64_t, IndicatorEvent>> read_events(sqlite3* db, int64_t after_seq,
                                                            int64_t limit) {
  std::string from_events = "SELECT seq, " + select_list(kEventColumns) +
                            " FROM indicator_event WHERE seq > ?1 ORDER BY seq LIMIT ?2";
  std::string from_documents = "SELECT " + select_list(kDocumentColumns) +
                               " FROM indicator_document WHERE seq = ?1 ORDER BY position";
  Statement rows(db, from_events.c_str());
  Statement documents(db, from_documents.c_str());
  rows.bind(1, after_seq).bind(2, limit);
  std::vector<std::pair<int64_t, IndicatorEvent>> events;
  int rc;
  while ((rc = rows.step()) == SQLITE_ROW) {
    auto& [seq, event] = events.emplace_back(rows.integer(0), IndicatorEvent{});
    read_record(rows, 1, kEventColumns, event, "indicator_event");
    documents.reset();
    documents.bind(1, seq);
    while ((rc = documents.step()) == SQLITE_ROW)
      read_record(documents, 0, kDocumentColumns, event.documents.emplace_back(),
                  "indicator_document");
    if (rc != SQLITE_DONE) break;
  }
  if (rc != SQLITE_DONE)
    throw StorageError(std::string("indicator journal: ") + sqlite3_errmsg(db));
  return events;
}

namespace postgresql_journal {
namespace {

// SQLite's types as PostgreSQL's: integers are 64 bits (times in milliseconds, sizes), a seq is
// an identity that a move from SQLite may also set.
std::string typed(std::string_view sqlite_sql, bool seq_key) {
  if (seq_key) return "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
  constexpr std::string_view kSqliteInteger = "INTEGER";
  if (sqlite_sql.substr(0, kSqliteInteger.size()) == kSqliteInteger)
    return "bigint" + std::string(sqlite_sql.substr(kSqliteInteger.size()));
  return std::string(sqlite_sql);
}

template <class Record, size_t N>
std::string names_of(const std::array<Column<Record>, N>& columns, bool bound_only) {
  std::string names;
  for (const auto& c : columns) {
    if (bound_only && !c.bind_text) continue;
    names += (names.empty() ? "" : ", ") + std::string(c.name);
  }
  return names;
}

// "($1, $2, …)": one row of `count` values.
std::string placeholders(int count) {
  std::string out = "(";
  for (int i = 1; i <= count; ++i)
    out += (i > 1 ? ", $" : "$") + std::to_string(i);
  return out + ")";
}

template <class Record, size_t N>
int bound_count(const std::array<Column<Record>, N>& columns) {
  int count = 0;
  for (const auto& c : columns)
    count += c.bind_text ? 1 : 0;
  return count;
}

template <class Record, size_t N>
void texts_of(const std::array<Column<Record>, N>& columns, const Record& record,
              std::vector<std::string>& out) {
  TextParameters parameters{out};
  bind_columns(parameters, columns, record, 0, &Column<Record>::bind_text);
}

template <class Record, size_t N>
void read_texts(const PostgresqlResult& result, int row, int first_column,
                const std::array<Column<Record>, N>& columns, Record& out, std::string_view table) {
  read_columns(TextRow{result, row}, first_column, columns, out, table, &Column<Record>::read_text);
}

std::string event_table_sql(std::string_view table, bool pending) {
  return create_table(table, kEventColumns, "origin text NOT NULL", [&](const Column<Event>& c) {
    if (pending && c.field == static_cast<int>(F::kKey)) return std::string("text NOT NULL");
    return typed(c.sql, c.name == kSeq);
  });
}

// `events`: the table its seq refers to, checked by a foreign key; empty: none.
std::string document_table_sql(std::string_view table, std::string_view events) {
  return create_table(table, kDocumentColumns, "PRIMARY KEY (seq, position)",
                      [&](const Column<Document>& c) {
                        if (c.name != kSeq) return typed(c.sql, false);
                        if (events.empty()) return std::string("bigint NOT NULL");
                        return "bigint NOT NULL REFERENCES " + std::string(events) + " (seq)";
                      });
}

}  // namespace

std::string schema() {
  std::string day = std::string(column_name(F::kDay));
  std::string mailbox = std::string(column_name(F::kMailbox));
  return event_table_sql("indicator_event", false) +
         "CREATE INDEX IF NOT EXISTS indicator_event_day ON indicator_event (" + day + ", " +
         mailbox + ");\n" +
         "CREATE INDEX IF NOT EXISTS indicator_event_origin ON indicator_event (origin, seq);\n" +
         // No foreign key: an event's documents are written by the statement that writes the
         // event, from the rows it returns (insert_events_and_documents_sql), and the check cost
         // a query per document (a sixth of the server's time at a thousand events a commit).
         document_table_sql("indicator_document", "") +
         create_table("connection_day", kConnectionColumns,
                      "PRIMARY KEY (" + connection_key() + ")",
                      [](const Column<Connection>& c) { return typed(c.sql, false); }) +
         create_table(kSignInDay.name, kSignInColumns,
                      "PRIMARY KEY (" + counted_key(kSignInColumns) + ")",
                      [](const Column<Connection>& c) { return typed(c.sql, false); }) +
         event_table_sql("indicator_pending", true) +
         "CREATE INDEX IF NOT EXISTS indicator_pending_origin ON indicator_pending (origin, "
         "seq);\n" +
         document_table_sql("indicator_pending_document", "indicator_pending") +
         added_event_indexes() +
         "CREATE TABLE IF NOT EXISTS journal_position (\n"
         "  origin       text PRIMARY KEY,\n"
         "  log_position bigint NOT NULL\n"
         ");\n";
}

std::string add_event_columns() {
  std::string sql;
  for (std::string_view table : {"indicator_event", "indicator_pending"}) {
    for (const auto& [name, type] : added_event_columns()) {
      sql += "ALTER TABLE " + std::string(table) + " ADD COLUMN IF NOT EXISTS " +
             std::string(name) + " " + typed(type, false) + ";\n";
    }
  }
  return sql + added_event_indexes();
}

std::string insert_event_sql(std::string_view table, bool with_seq) {
  int columns = bound_count(kEventColumns);
  std::string sql = "INSERT INTO " + std::string(table) + " (" + (with_seq ? "seq, " : "") +
                    "origin, " + names_of(kEventColumns, true) + ") VALUES " +
                    placeholders(columns + (with_seq ? 2 : 1));
  if (table == "indicator_event") sql += " ON CONFLICT (event_key) DO NOTHING";
  return sql + " RETURNING seq, " + std::string(column_name(F::kKey));
}

std::string insert_document_sql(std::string_view table) {
  return "INSERT INTO " + std::string(table) + " (" + names_of(kDocumentColumns, false) +
         ") VALUES " + placeholders(static_cast<int>(kDocumentColumns.size()));
}

namespace {

// "unnest($1::text[], $2::bigint[], ...)" over the bound columns, from parameter `first`: one
// array a column, so that one statement of fixed text takes any number of rows.
template <class Record, size_t N>
std::string unnest_of(const std::array<Column<Record>, N>& columns, int first, bool keys) {
  std::string out = "unnest(";
  int next = first;
  for (const auto& c : columns) {
    if (!c.bind_text && !keys) continue;
    bool integer = c.sql.substr(0, 7) == "INTEGER";
    out += (next > first ? ", $" : "$") + std::to_string(next);
    out += integer ? "::bigint[]" : "::text[]";
    ++next;
  }
  return out + ")";
}

}  // namespace

std::string insert_events_and_documents_sql() {
  const std::string key(column_name(F::kKey));
  const std::string names = names_of(kEventColumns, true);
  // The documents' arrays follow the origin and the events' columns: the event's key first,
  // then the document's columns but seq, which the join gives.
  int next = 2 + bound_count(kEventColumns);
  std::string arrays = "$" + std::to_string(next++) + "::text[]";
  std::string aliases = key;
  std::string columns;
  std::string selected;
  for (const auto& c : kDocumentColumns) {
    if (c.name == kSeq) continue;
    bool integer = c.sql.substr(0, 7) == "INTEGER";
    arrays += ", $" + std::to_string(next++) + (integer ? "::bigint[]" : "::text[]");
    aliases += ", " + std::string(c.name);
    columns += ", " + std::string(c.name);
    selected += ", d." + std::string(c.name);
  }
  return "WITH e AS (INSERT INTO indicator_event (origin, " + names + ") SELECT $1, * FROM " +
         unnest_of(kEventColumns, 2, false) + " ON CONFLICT (" + key +
         ") DO NOTHING RETURNING seq, " + key + "), d AS (INSERT INTO indicator_document (seq" +
         columns + ") SELECT e.seq" + selected + " FROM unnest(" + arrays + ") AS d(" + aliases +
         ") JOIN e ON e." + key + " = d." + key + ") SELECT seq, " + key + " FROM e";
}

int document_array_count() {
  return static_cast<int>(kDocumentColumns.size());
}

void ArrayLiterals::add_row(const std::vector<std::string>& values) {
  if (columns_.empty()) columns_.assign(values.size(), "{");
  for (size_t i = 0; i < values.size() && i < columns_.size(); ++i) {
    std::string& column = columns_[i];
    if (column.size() > 1) column += ',';
    column += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') column += '\\';
      column += c;
    }
    column += '"';
  }
}

std::vector<std::string> ArrayLiterals::take() {
  for (auto& column : columns_)
    column += '}';
  return std::exchange(columns_, {});
}

namespace {

template <size_t N>
std::string counted_unnest_sql(const CountedTable& table,
                               const std::array<Column<Connection>, N>& columns) {
  return "INSERT INTO " + std::string(table.name) + " (" + names_of(columns, true) +
         ") SELECT * FROM " + unnest_of(columns, 1, false) + counted_update(table, columns, true);
}

}  // namespace

std::string insert_connections_unnest_sql() {
  return counted_unnest_sql(kConnectionDay, kConnectionColumns);
}

std::string insert_sign_ins_unnest_sql() {
  return counted_unnest_sql(kSignInDay, kSignInColumns);
}

std::string promote_sql() {
  std::string names = names_of(kEventColumns, true);
  return "INSERT INTO indicator_event (origin, " + names + ") SELECT origin, " + names +
         " FROM indicator_pending WHERE seq = $1 AND origin = $2 ON CONFLICT (event_key) DO "
         "NOTHING RETURNING seq";
}

std::string promote_documents_sql() {
  std::string columns = select_list(kDocumentColumns);
  return "INSERT INTO indicator_document (seq, position, " + columns + ") SELECT $2, position, " +
         columns + " FROM indicator_pending_document WHERE seq = $1";
}

std::string select_events_sql(std::string_view where) {
  return "SELECT seq, " + select_list(kEventColumns) + " FROM indicator_event WHERE " +
         std::string(where) + " ORDER BY seq";
}

std::string select_documents_sql() {
  return "SELECT seq, " + select_list(kDocumentColumns) +
         " FROM indicator_document WHERE seq = ANY ($1::bigint[]) ORDER BY seq, position";
}

namespace {

// A counted table's columns then its count, by its key.
template <size_t N>
std::string counted_select_sql(const CountedTable& table,
                               const std::array<Column<Connection>, N>& columns) {
  return "SELECT " + select_list(columns) + ", " + std::string(table.count) + " FROM " +
         std::string(table.name) + " ORDER BY " + counted_key(columns);
}

// A record's values, its count the one given.
template <size_t N>
void counted_values(const std::array<Column<Connection>, N>& columns, const ConnectionEvent& record,
                    int64_t count, std::vector<std::string>& out) {
  size_t first = out.size();
  texts_of(columns, record, out);
  size_t at = 0;
  for (const auto& c : columns) {
    if (!c.bind_text) continue;
    if (!c.read_text) out[first + at] = std::to_string(count);  // the count: bound, not read
    ++at;
  }
}

template <size_t N>
void read_counted(const PostgresqlResult& result, int row,
                  const std::array<Column<Connection>, N>& columns, std::string_view table,
                  ConnectionDay& out) {
  read_texts(result, row, 0, columns, out.last, table);
  int read = 0;
  for (const auto& c : columns)
    read += c.read_text ? 1 : 0;
  out.connections = result.integer(row, read);
}

}  // namespace

std::string select_connection_days_sql() {
  return counted_select_sql(kConnectionDay, kConnectionColumns);
}

std::string select_sign_in_days_sql() {
  return counted_select_sql(kSignInDay, kSignInColumns);
}

void event_values(const IndicatorEvent& event, std::vector<std::string>& out) {
  texts_of(kEventColumns, event, out);
}

void document_values(const IndicatorDocument& document, std::vector<std::string>& out) {
  texts_of(kDocumentColumns, document, out);
}

void connection_values(const ConnectionEvent& connection, int64_t connections,
                       std::vector<std::string>& out) {
  counted_values(kConnectionColumns, connection, connections, out);
}

void sign_in_values(const ConnectionEvent& sign_in, int64_t sign_ins,
                    std::vector<std::string>& out) {
  counted_values(kSignInColumns, sign_in, sign_ins, out);
}

void read_event(const PostgresqlResult& result, int row, int first_column, IndicatorEvent& out) {
  read_texts(result, row, first_column, kEventColumns, out, "indicator_event");
}

void read_document(const PostgresqlResult& result, int row, int first_column,
                   IndicatorDocument& out) {
  read_texts(result, row, first_column, kDocumentColumns, out, "indicator_document");
}

void read_connection_day(const PostgresqlResult& result, int row, ConnectionDay& out) {
  read_counted(result, row, kConnectionColumns, kConnectionDay.name, out);
}

void read_sign_in_day(const PostgresqlResult& result, int row, ConnectionDay& out) {
  read_counted(result, row, kSignInColumns, kSignInDay.name, out);
}

}  // namespace postgresql_journal

namespace {

template <size_t N>
std::vector<ConnectionDay> read_counted_days(sqlite3* db, const CountedTable& table,
                                             const std::array<Column<Connection>, N>& columns) {
  Statement rows(db, postgresql_journal::counted_select_sql(table, columns).c_str());
  int read = 0;
  for (const auto& c : columns)
    read += c.read ? 1 : 0;
  std::vector<ConnectionDay> days;
  int rc;
  while ((rc = rows.step()) == SQLITE_ROW) {
    auto& day = days.emplace_back();
    read_record(rows, 0, columns, day.last, table.name);
    day.connections = rows.integer(read);
  }
  if (rc != SQLITE_DONE)
    throw StorageError(std::string("indicator journal: ") + sqlite3_errmsg(db));
  return days;
}

}  // namespace

std::vector<ConnectionDay> read_connection_days(sqlite3* db) {
  return read_counted_days(db, kConnectionDay, kConnectionColumns);
}

std::vector<ConnectionDay> read_sign_in_days(sqlite3* db) {
  return read_counted_days(db, kSignInDay, kSignInColumns);
}

}  // namespace mssgate::storage
