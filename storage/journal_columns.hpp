#pragma once
// The indicator journal's tables, column by column. One table of column descriptors per record
// (name, SQL type, how a field is bound, read back and shown in the JSON line) makes the
// schema, the INSERTs, the row reader, the JSON line and the column names the reports use, so
// that these cannot drift apart. The texts stay those of the first journals: files written by
// earlier versions open without migration.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/indicator_event.hpp"
#include "storage/postgresql.hpp"
#include "storage/sqlite_statement.hpp"

namespace mssgate::storage {

// The columns of indicator_event that hold an event's fields, in table order.
enum class EventField {
  kKey,
  kAtMs,
  kDay,
  kDirection,
  kMailbox,
  kMailboxType,
  kAuthMode,
  kAzp,
  kNil,
  kMessageId,
  kQueueId,
  kSize,
  kRecipients,
  kToSameOperator,
  kToOtherOperator,
  kToPatient,
  kCounterpart,
  kInspected,
  kUninspectableReason,
  kXdm,
  kDocuments,  // the number of documents
  kIns,
  kClaimCodecda,
  kClaimIns,
  kClaimXdmSubject,
  kMismatches,
  kMesFin,
  kMdn,
  kMdnRequested,
  // Added in schema version 3 (SQLite) and 2 (PostgreSQL): a report's acknowledgement.
  kDsn,
  kDsnActions,
  kDisposition,
  kIntegrationError,
  kOriginalMessageId,
  kOriginalEnvelopeId,
  kEnvelopeId,
};
// The columns of indicator_document that hold a document's fields.
enum class DocumentField { kCode, kCodeSystem, kIns };
// The columns of connection_day (sign-ins per mailbox, day, mode and protocol).
enum class ConnectionField {
  kMailbox,
  kDay,
  kAuthMode,
  kProtocol,
  kMailboxType,
  kConnections,
  kLastAtMs,
};

// The columns of sign_in_day (every sign-in, failed ones too, per mailbox, day, mode, protocol,
// failure, professional and LPS).
enum class SignInField {
  kMailbox,
  kDay,
  kAuthMode,
  kProtocol,
  kFailure,
  kProfessional,
  kLps,
  kMailboxType,
  kSignIns,
  kLastAtMs,
};

std::string_view column_name(EventField field);
std::string_view column_name(SignInField field);
std::string_view column_name(DocumentField field);
std::string_view column_name(ConnectionField field);

// Every CREATE TABLE and CREATE INDEX of the journal, IF NOT EXISTS.
std::string journal_schema();
// The CREATE TABLE of sign_in_day alone, IF NOT EXISTS (a reader of a journal written before
// that table makes it a temporary, empty one).
std::string sign_in_day_schema();
// The columns added to indicator_event (and indicator_pending) after the first journals, each
// with its default: a journal written before them gains those it lacks (ALTER TABLE … ADD
// COLUMN), its events reading as no report. Name, then SQLite's type and default.
std::vector<std::pair<std::string_view, std::string_view>> added_event_columns();
// The indexes over columns of added_event_columns(), IF NOT EXISTS: made after the columns.
std::string added_event_indexes();
// The tables of pending events (IndicatorJournal::record_pending), IF NOT EXISTS: the columns
// of indicator_event and indicator_document, their seq a pending id, their key not unique.
std::string pending_schema();

// The event's line in the indicator log (docs/indicators.md, "The event"), without newline.
std::string json_line(int64_t seq, const IndicatorEvent& event);

// The INSERTs, prepared once and used by every commit after. Throw StorageError.
class JournalInserts {
 public:
  explicit JournalInserts(sqlite3* db);

  // The new event's seq; nullopt when the journal already has its key.
  std::optional<int64_t> add(const IndicatorEvent& event);
  // One more sign-in: in connection_day when it succeeded, and in sign_in_day.
  void add(const ConnectionEvent& connection);
  // A pending event; its id.
  int64_t add_pending(const IndicatorEvent& event);
  // The pending event becomes an event: its seq; nullopt when the journal already has its key
  // (or there is no such pending event). The pending event is gone either way.
  std::optional<int64_t> promote(int64_t pending_id);
  // The pending event is gone.
  void drop(int64_t pending_id);

 private:
  Statement& prepared(std::optional<Statement>& statement, const std::string& sql);
  void step_once(Statement& statement);

  sqlite3* db_;
  Statement event_;
  Statement document_;
  Statement connection_;
  Statement sign_in_;
  // Prepared on first use: most commits have no pending event.
  std::optional<Statement> pending_;
  std::optional<Statement> pending_document_;
  std::optional<Statement> promote_;
  std::optional<Statement> promote_documents_;
  std::optional<Statement> drop_;
  std::optional<Statement> drop_documents_;
};

// The ids of the pending events, in order.
std::vector<int64_t> pending_ids(sqlite3* db);

// Every row of connection_day, by mailbox, day, mode and protocol.
std::vector<ConnectionDay> read_connection_days(sqlite3* db);
// Every row of sign_in_day, by its key.
std::vector<ConnectionDay> read_sign_in_days(sqlite3* db);

// The events after `after_seq`, in seq order, at most `limit`, each with its seq and its
// documents. Throws StorageError, also on a value outside the vocabulary.
std::vector<std::pair<int64_t, IndicatorEvent>> read_events(sqlite3* db, int64_t after_seq,
                                                            int64_t limit);

// The same tables in PostgreSQL (postgresql_journal_store.cpp): the same columns, integers of
// 64 bits, and `origin`, the gateway (server.instance) that recorded an event or a pending one.
// Each gateway keeps its own pending events and its log's position (journal_position); the
// events, their keys and the sign-ins are shared.
namespace postgresql_journal {

// Every CREATE TABLE and CREATE INDEX, IF NOT EXISTS.
std::string schema();
// Version 2: the columns of added_event_columns() added to indicator_event and
// indicator_pending where missing, then their indexes.
std::string add_event_columns();
// One row of: origin (after seq when with_seq), then the event's columns; RETURNING seq,
// event_key. Into indicator_event, ON CONFLICT (event_key) DO NOTHING: no row returned for a
// key already there.
std::string insert_event_sql(std::string_view table, bool with_seq);
// Many events and their documents in one statement of fixed text (preparable): $1 the origin,
// then one array an event column ($2 the keys...), then document_array_count() arrays for the
// documents (the event's key, position, then the document's columns), as ArrayLiterals makes
// them. ON CONFLICT (event_key) DO NOTHING: the documents of an event whose key is there are
// not written. RETURNING seq, event_key of the events written.
std::string insert_events_and_documents_sql();
int document_array_count();
// Many sign-ins, one array a column (the sign-in's columns), their connections adding up to the
// rows there. A statement may not touch a row twice: one row per mailbox, day, mode and protocol.
std::string insert_connections_unnest_sql();
// The same into sign_in_day: one row per mailbox, day, mode, protocol, failure, professional
// and LPS.
std::string insert_sign_ins_unnest_sql();

// Rows of text values turned into one PostgreSQL array literal a column ("{"a","b\"c"}").
class ArrayLiterals {
 public:
  void add_row(const std::vector<std::string>& values);
  bool empty() const { return columns_.empty(); }
  // The arrays, one a column; the builder is empty again.
  std::vector<std::string> take();

 private:
  std::vector<std::string> columns_;
};
// One row of: seq, position, then the document's columns.
std::string insert_document_sql(std::string_view table);
// $1 the pending id, $2 its origin; RETURNING the event's seq, none when the key is there.
std::string promote_sql();
// $1 the pending id, $2 the event's seq.
std::string promote_documents_sql();
// seq, then the event's columns, WHERE `where`, ORDER BY seq.
std::string select_events_sql(std::string_view where);
// seq, then the document's columns, of the seqs in $1 (an array's text, "{1,2}").
std::string select_documents_sql();
// The sign-in's columns, then connections.
std::string select_connection_days_sql();
std::string select_sign_in_days_sql();

// A record's values as texts, in the order of the statements above (appended to `out`).
void event_values(const IndicatorEvent& event, std::vector<std::string>& out);
void document_values(const IndicatorDocument& document, std::vector<std::string>& out);
void connection_values(const ConnectionEvent& connection, int64_t connections,
                       std::vector<std::string>& out);
void sign_in_values(const ConnectionEvent& sign_in, int64_t sign_ins,
                    std::vector<std::string>& out);
// Read back from a row whose record starts at `first_column`; throw StorageError on a value
// outside the vocabulary.
void read_event(const PostgresqlResult& result, int row, int first_column, IndicatorEvent& out);
void read_document(const PostgresqlResult& result, int row, int first_column,
                   IndicatorDocument& out);
void read_connection_day(const PostgresqlResult& result, int row, ConnectionDay& out);
void read_sign_in_day(const PostgresqlResult& result, int row, ConnectionDay& out);

}  // namespace postgresql_journal

}  // namespace mssgate::storage
