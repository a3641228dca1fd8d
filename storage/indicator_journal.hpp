#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;

namespace mssgate::storage {

// One CDA document of a message: its type code and what its patient identity is.
struct IndicatorDocument {
  std::string code;
  std::string code_system;
  std::string ins;  // absent | test | unqualified | qualified
};

// The indicator event of one message for one mailbox (docs/indicators.md defines each field).
// Nothing here is content: no body, no INS value, no name.
struct IndicatorEvent {
  std::string key;  // unique: recording the same key twice counts once
  int64_t at_ms = 0;
  std::string day;        // YYYY-MM-DD, in the configured time zone
  std::string direction;  // sent | received
  std::string mailbox;
  std::string mailbox_type;  // PER ORG APP CAB, or "unknown"
  std::string auth_mode;     // certificate | psc | none (received)
  std::string azp;           // the LPS's OAuth client, when a PSC token opened the session
  std::string nil;           // X-MSS-NIL
  std::string message_id;
  std::string queue_id;
  uint64_t size = 0;
  unsigned recipients = 0;
  unsigned to_same_operator = 0;  // sent: recipients of this operator
  unsigned to_other_operator = 0;
  unsigned to_patient = 0;  // sent: recipients at a patient domain (Mon Espace Santé)
  std::string counterpart;  // received: same_operator | other_operator | patient
  bool inspected = true;
  std::string uninspectable_reason;
  bool xdm = false;
  std::vector<IndicatorDocument> documents;
  std::string ins = "absent";  // the message's best: absent | test | unqualified | qualified
  std::string claim_codecda;   // X-MSS-CODECDA as claimed, comma-separated
  std::string claim_ins;       // O | N | invalid | "" (absent)
  bool claim_xdm_subject = false;
  std::vector<std::string> mismatches;
  bool mes_fin = false;
  bool mdn = false;  // the message is a disposition notification
  bool mdn_requested = false;
};

// A successful sign-in, for the "connections" report.
struct ConnectionEvent {
  int64_t at_ms = 0;
  std::string day;
  std::string mailbox;
  std::string mailbox_type;
  std::string auth_mode;  // certificate | psc
  std::string protocol;   // imap | submission
};

// The indicator journal: a SQLite database in WAL mode, written by one thread that commits the
// events waiting at that moment in one transaction (group commit: one sync for many messages),
// then tells each waiter. A message's event is durable when its callback says true.
// Then the JSON-lines log gets the events, in journal order.
class IndicatorJournal {
 public:
  struct Options {
    std::string path;      // the SQLite database
    std::string log_path;  // the JSON-lines log; empty: none
    size_t max_batch = 1024;
  };
  struct Stats {
    uint64_t recorded = 0;    // new events committed
    uint64_t duplicates = 0;  // keys already there
    uint64_t failed = 0;
    uint64_t commits = 0;
    uint64_t connections = 0;
  };
  using Done = std::function<void(bool durable)>;

  // Opens (creating when needed) the journal and starts the writer. The log is caught up with
  // events a crash left unwritten there. Throws StorageError.
  explicit IndicatorJournal(Options options);
  ~IndicatorJournal();  // stop()
  // Commits what is queued, tells its waiters, then stops the writer. Idempotent.
  void stop();
  IndicatorJournal(const IndicatorJournal&) = delete;
  IndicatorJournal& operator=(const IndicatorJournal&) = delete;

  // `done` runs on the writer thread once the event is committed (true) or could not be (false).
  void record(IndicatorEvent event, Done done);
  void note_connection(ConnectionEvent event);
  // Reopens the JSON-lines log (after a rotation), on the writer thread.
  void reopen_log();
  Stats stats() const;

 private:
  struct Pending {
    IndicatorEvent event;
    Done done;
  };
  void writer();
  void commit(std::vector<Pending>& events, std::vector<ConnectionEvent>& connections);
  void write_log(const std::vector<std::pair<int64_t, const IndicatorEvent*>>& written);
  void catch_up_log();
  void open_log();

  Options options_;
  sqlite3* db_ = nullptr;
  std::FILE* log_ = nullptr;
  int64_t log_position_ = 0;  // the last event sequence written to the log
  bool log_position_dirty_ = false;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::vector<ConnectionEvent> connections_;
  bool reopen_ = false;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;
};

// The day of a time, "YYYY-MM-DD", in UTC or in the machine's local time.
std::string day_of(int64_t at_ms, bool utc);
int64_t now_ms();

}  // namespace mssgate::storage
