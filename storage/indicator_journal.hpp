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
#include <string_view>
#include <thread>
#include <vector>

#include "storage/indicator_event.hpp"

struct sqlite3;

namespace mssgate::storage {

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
    // A failure of the writer (a commit, a log catch-up), as a sentence without message
    // content; called on the writer thread, or in the constructor for its own catch-up.
    std::function<void(std::string_view what)> on_error = nullptr;
    // Called at the start of every log catch-up: a seam for fault-injection tests.
    std::function<void()> before_catch_up = nullptr;
  };
  struct Stats {
    uint64_t recorded = 0;    // new events committed
    uint64_t duplicates = 0;  // keys already there
    uint64_t failed = 0;
    uint64_t commits = 0;
    uint64_t connections = 0;
    uint64_t errors = 0;  // failures reported through on_error
  };
  using Done = std::function<void(bool durable)>;

  // Opens (creating when needed) the journal and starts the writer. The log is caught up with
  // events a crash left unwritten there (a failed catch-up is reported and tried again with the
  // next commit). Throws StorageError when the journal cannot be opened.
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
  void take_turn(std::vector<Pending>& batch, std::vector<ConnectionEvent>& connections,
                 bool reopen);
  void answer(std::vector<Pending>& events, bool durable);
  void catch_up_log();
  // Catches the log up; on a failure, reports it and leaves the catch-up pending.
  void try_catch_up_log();
  void report(std::string_view what);
  void open_log();

  Options options_;
  sqlite3* db_ = nullptr;
  std::FILE* log_ = nullptr;
  int64_t log_position_ = 0;  // the last event sequence written to the log
  bool log_position_dirty_ = false;
  bool catch_up_pending_ = false;  // the log may lag the journal: catch up, not just append

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::vector<ConnectionEvent> connections_;
  bool reopen_ = false;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace mssgate::storage
