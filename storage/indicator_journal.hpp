#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/indicator_event.hpp"
#include "storage/indicator_log.hpp"
#include "storage/journal_store.hpp"

namespace mssgate::storage {

// The indicator journal: a database (journal_store.hpp; SQLite in WAL mode by default), written
// by one thread that commits the events waiting at that moment in one transaction (group
// commit: one sync for many messages), then tells each waiter. A message's event is durable when
// its callback says true. Then the JSON-lines log gets the events, in journal order, each once
// (indicator_log.hpp).
class IndicatorJournal {
 public:
  // The log's end as found when it was opened (at start, at each reopening).
  struct LogOpened {
    uint64_t truncated_bytes = 0;  // a last line a crash cut short, removed
    int64_t resumed_after = 0;     // the log goes on with the first event after this seq
    bool at_start = false;
  };
  struct Options {
    std::string path;      // the SQLite database, unless open_store is given
    std::string log_path;  // the JSON-lines log; empty: none
    size_t max_batch = 1024;
    // A failure of the writer (a commit, a log catch-up), as a sentence without message
    // content; called on the writer thread, or in the constructor for its own catch-up.
    std::function<void(std::string_view what)> on_error = nullptr;
    // Called at the start of every log catch-up, and before every commit: seams for
    // fault-injection tests.
    std::function<void()> before_catch_up = nullptr;
    std::function<void()> before_commit = nullptr;
    // Each time the log is opened; on the thread that opens it (the constructor's, the
    // writer's for a reopening).
    std::function<void(const LogOpened&)> on_log_opened = nullptr;
    // Pending events a stop left (see record_pending), taken as delivered at the opening.
    std::function<void(uint64_t events)> on_pending_recovered = nullptr;
    // Opens the journal's database (default: open_sqlite_journal(path)); called once, in the
    // constructor.
    std::function<std::unique_ptr<JournalStore>()> open_store = nullptr;
  };
  struct Stats {
    uint64_t recorded = 0;    // new events committed
    uint64_t duplicates = 0;  // keys already there
    uint64_t failed = 0;
    uint64_t commits = 0;
    uint64_t connections = 0;
    uint64_t errors = 0;   // failures reported through on_error
    uint64_t pending = 0;  // pending events committed (record_pending)
  };
  using Done = std::function<void(bool durable)>;
  // The ids of the pending events, in order; empty when they could not be committed.
  using PendingDone = std::function<void(std::vector<int64_t> ids)>;

  // Opens (creating when needed) the journal and starts the writer. Pending events a stop left
  // become events. The log is repaired (a partial last line removed) and caught up with the
  // events a crash left unwritten there (a failed catch-up is reported and tried again with
  // the next commit). Throws StorageError when the journal cannot be opened.
  explicit IndicatorJournal(Options options);
  ~IndicatorJournal();  // stop()
  // Commits what is queued, tells its waiters, then stops the writer. Idempotent.
  void stop();
  IndicatorJournal(const IndicatorJournal&) = delete;
  IndicatorJournal& operator=(const IndicatorJournal&) = delete;

  // `done` runs on the writer thread once the event is committed (true) or could not be (false).
  void record(IndicatorEvent event, Done done);
  // The events of one delivery, made durable before the message is handed over (the LMTP tap
  // sends the end of the message to Dovecot only then). Each is pending, not counted nor
  // logged, until settle(). A pending event a stop or a crash left is taken as delivered at
  // the next opening: its message may have been answered for (and then Postfix never delivers
  // it again), and when it was not, the next delivery of the message has the same key.
  void record_pending(std::vector<IndicatorEvent> events, PendingDone done);
  // Delivered pending events become events (a key already there counts once), written to the
  // log; dropped ones are forgotten. `done` (may be null) runs once that is committed.
  void settle(std::vector<int64_t> delivered, std::vector<int64_t> dropped, Done done);
  // A sign-in, refused or not, for sign_in_day (an upsert: counted once). `done` (may be null)
  // runs once it is committed, or could not be.
  void note_connection(ConnectionEvent event, Done done = nullptr);
  // Reopens the JSON-lines log (after a rotation), on the writer thread.
  void reopen_log();
  Stats stats() const;

 private:
  struct Queued {
    IndicatorEvent event;
    Done done;
  };
  struct PendingBatch {
    std::vector<IndicatorEvent> events;
    PendingDone done;
  };
  struct Settlement {
    std::vector<int64_t> delivered;
    std::vector<int64_t> dropped;
    Done done;
  };
  // What one turn of the writer commits.
  struct Turn {
    std::vector<Queued> events;
    std::vector<PendingBatch> pending;
    std::vector<Settlement> settlements;
    std::vector<ConnectionEvent> connections;
    std::vector<Done> connections_done;  // their waiters (the null ones left out)
    bool saves_log_position = false;     // sent with the log's position (send())
    bool empty() const;
  };
  // Events committed and their seqs, in seq order, for the log.
  using Written = std::vector<std::pair<int64_t, const IndicatorEvent*>>;
  struct Counts {
    uint64_t duplicates = 0;
    std::vector<std::vector<int64_t>> pending_ids;  // per pending batch
  };

  void writer();
  bool take(Turn& turn, bool& reopen, bool split);
  bool work_waiting() const;
  bool sendable(const Turn& turn, bool reopen) const;
  void send(Turn& turn, std::deque<Turn>& sent);
  void finish_oldest(std::deque<Turn>& sent);
  void commit(Turn& turn);
  void insert(Turn& turn, Written& written, Counts& counts);
  static void add_written(const Turn& turn, const std::vector<std::optional<int64_t>>& seqs,
                          Written& written, Counts& counts);
  void failed(Turn& turn);
  void report_not_committed(const Turn& turn);
  void committed(Turn& turn, Counts& counts, const Written& written, bool store_idle);
  void settle_in(const Settlement& settlement, Written& written, Counts& counts);
  void after_commit(Turn& turn, Counts& counts, const Written& written, bool store_idle);
  void write_log(const Written& written);
  void take_turn(Turn& turn, bool reopen);
  void answer(Turn& turn, bool durable, Counts* counts);
  void catch_up_log();
  // Catches the log up; on a failure, reports it and leaves the catch-up pending.
  void try_catch_up_log();
  void report(std::string_view what);
  void open_log(bool at_start);
  void save_log_position();
  void recover_pending();

  Options options_;
  std::unique_ptr<JournalStore> store_;
  IndicatorLogFile log_;
  int64_t log_position_ = 0;  // the last event sequence written to the log
  bool log_position_dirty_ = false;
  bool catch_up_pending_ = false;  // the log may lag the journal: catch up, not just append
  // The pending events this process committed, by id, until settled (writer thread only).
  std::unordered_map<int64_t, IndicatorEvent> pending_events_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  std::vector<PendingBatch> pending_queue_;
  std::vector<Settlement> settle_queue_;
  std::vector<ConnectionEvent> connections_;
  std::vector<Done> connections_done_;
  bool reopen_ = false;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace mssgate::storage
