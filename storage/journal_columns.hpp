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

std::string_view column_name(EventField field);
std::string_view column_name(DocumentField field);
std::string_view column_name(ConnectionField field);

// Every CREATE TABLE and CREATE INDEX of the journal, IF NOT EXISTS.
std::string journal_schema();
// The tables of pending events (IndicatorJournal::record_pending), IF NOT EXISTS: the columns
// of indicator_event and indicator_document, their seq a pending id, their key not unique.
std::string pending_schema();

// The event's line in the indicator log (docs/indicators.md, "The event"), without newline.
std::string json_line(int64_t seq, const IndicatorEvent& event);

// The INSERTs of one commit, prepared once for it. Throw StorageError.
class JournalInserts {
 public:
  explicit JournalInserts(sqlite3* db);

  // The new event's seq; nullopt when the journal already has its key.
  std::optional<int64_t> add(const IndicatorEvent& event);
  // One more sign-in on the connection's mailbox, day, mode and protocol.
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

  sqlite3* db_;
  Statement event_;
  Statement document_;
  Statement connection_;
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

// The events after `after_seq`, in seq order, at most `limit`, each with its seq and its
// documents. Throws StorageError, also on a value outside the vocabulary.
std::vector<std::pair<int64_t, IndicatorEvent>> read_events(sqlite3* db, int64_t after_seq,
                                                            int64_t limit);

}  // namespace mssgate::storage
