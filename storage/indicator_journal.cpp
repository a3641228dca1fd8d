#include "storage/indicator_journal.hpp"

#include <sqlite3.h>

#include <utility>

#include "storage/journal_columns.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

constexpr int kJournalSchemaVersion = 1;

void exec(sqlite3* db, const char* sql) {
  exec_sql(db, sql, "indicator journal");
}

// What the exception being handled says, whatever its type.
std::string current_failure() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an unknown error";
  }
}

}  // namespace

IndicatorJournal::IndicatorJournal(Options options) : options_(std::move(options)) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(options_.path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError("cannot open indicator journal " + options_.path + ": " + message);
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    exec(db_, "PRAGMA journal_mode = WAL");
    // In WAL mode, FULL syncs the log at every commit: a committed event survives a power cut.
    exec(db_, "PRAGMA synchronous = FULL");
    Statement version(db_, "PRAGMA user_version");
    int current = version.step() == SQLITE_ROW ? static_cast<int>(version.integer(0)) : 0;
    if (current > kJournalSchemaVersion) {
      throw StorageError("indicator journal " + options_.path + " has schema version " +
                         std::to_string(current) + ", newer than this mssgate knows (" +
                         std::to_string(kJournalSchemaVersion) + ")");
    }
    exec(db_, "BEGIN IMMEDIATE");
    exec(db_, journal_schema().c_str());
    exec(db_, ("PRAGMA user_version = " + std::to_string(kJournalSchemaVersion)).c_str());
    exec(db_, "COMMIT");
    Statement position(db_, "SELECT value FROM journal_meta WHERE name = 'log_position'");
    if (position.step() == SQLITE_ROW) log_position_ = position.integer(0);
    open_log();
    try_catch_up_log();
  } catch (...) {
    if (log_) std::fclose(log_);
    sqlite3_close(db_);
    throw;
  }
  thread_ = std::thread([this] { writer(); });
}

IndicatorJournal::~IndicatorJournal() {
  stop();
  if (log_) std::fclose(log_);
  sqlite3_close(db_);
}

void IndicatorJournal::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IndicatorJournal::record(IndicatorEvent event, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(event), std::move(done)});
  }
  wake_.notify_one();
}

void IndicatorJournal::note_connection(ConnectionEvent event) {
  {
    std::lock_guard lock(mutex_);
    connections_.push_back(std::move(event));
  }
  wake_.notify_one();
}

void IndicatorJournal::reopen_log() {
  {
    std::lock_guard lock(mutex_);
    reopen_ = true;
  }
  wake_.notify_one();
}

IndicatorJournal::Stats IndicatorJournal::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void IndicatorJournal::open_log() {
  if (options_.log_path.empty()) return;
  if (log_) std::fclose(log_);
  log_ = std::fopen(options_.log_path.c_str(), "ae");
  // Unwritable log: the journal still holds every event; the log catches up when reopened.
}

void IndicatorJournal::writer() {
  std::vector<Pending> batch;
  std::vector<ConnectionEvent> connections;
  for (;;) {
    bool reopen = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock,
                 [&] { return stop_ || reopen_ || !queue_.empty() || !connections_.empty(); });
      if (queue_.empty() && connections_.empty() && !reopen_ && stop_) return;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      connections.swap(connections_);
      reopen = reopen_;
      reopen_ = false;
    }
    take_turn(batch, connections, reopen);
    batch.clear();
    connections.clear();
  }
}

// Nothing leaves the writer thread: an exception there would end the process.
void IndicatorJournal::take_turn(std::vector<Pending>& batch,
                                 std::vector<ConnectionEvent>& connections, bool reopen) {
  try {
    if (reopen) {
      open_log();
      try_catch_up_log();
    }
    if (!batch.empty() || !connections.empty()) commit(batch, connections);
  } catch (...) {
    catch_up_pending_ = true;
    report("indicator journal writer: " + current_failure());
    answer(batch, false);
  }
}

void IndicatorJournal::commit(std::vector<Pending>& events,
                              std::vector<ConnectionEvent>& connections) {
  std::vector<std::pair<int64_t, const IndicatorEvent*>> written;
  uint64_t duplicates = 0;
  bool ok = true;
  try {
    exec(db_, "BEGIN IMMEDIATE");
    JournalInserts inserts(db_);
    for (const auto& p : events) {
      if (auto seq = inserts.add(p.event)) {
        written.emplace_back(*seq, &p.event);
      } else {
        ++duplicates;  // already counted: a redelivery, or a replay
      }
    }
    for (const auto& c : connections)
      inserts.add(c);
    if (log_position_dirty_) {
      Statement position(db_,
                         "INSERT INTO journal_meta (name, value) VALUES ('log_position', ?1) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
      position.bind(1, log_position_);
      if (position.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
    }
    exec(db_, "COMMIT");
    log_position_dirty_ = false;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ok = false;
    written.clear();
    report("could not commit " + std::to_string(events.size()) + " indicator events and " +
           std::to_string(connections.size()) + " sign-ins: " + current_failure());
  }
  {
    std::lock_guard lock(mutex_);
    if (ok) {
      stats_.recorded += written.size();
      stats_.duplicates += duplicates;
      stats_.connections += connections.size();
      ++stats_.commits;
    } else {
      stats_.failed += events.size();
    }
  }
  answer(events, ok);
  if (!ok) return;
  if (catch_up_pending_) {
    try_catch_up_log();  // reads the events just committed too
    return;
  }
  try {
    write_log(written);
  } catch (...) {
    catch_up_pending_ = true;
    report("could not append to the indicator log, caught up at the next commit: " +
           current_failure());
  }
}

// Each waiter is answered once, even when a turn fails after answering some.
void IndicatorJournal::answer(std::vector<Pending>& events, bool durable) {
  for (auto& p : events) {
    Done done = std::exchange(p.done, nullptr);
    if (!done) continue;
    try {
      done(durable);
    } catch (...) {
      report("an indicator event's waiter failed: " + current_failure());
    }
  }
}

void IndicatorJournal::report(std::string_view what) {
  {
    std::lock_guard lock(mutex_);
    ++stats_.errors;
  }
  if (!options_.on_error) return;
  try {
    options_.on_error(what);
  } catch (...) {
    // The report is lost; the count above still tells.
  }
}

void IndicatorJournal::write_log(
    const std::vector<std::pair<int64_t, const IndicatorEvent*>>& written) {
  if (!log_ || written.empty()) return;
  std::string lines;
  for (const auto& [seq, event] : written) {
    if (seq <= log_position_) continue;
    lines += json_line(seq, *event);
    lines += '\n';
  }
  if (std::fwrite(lines.data(), 1, lines.size(), log_) == lines.size() && std::fflush(log_) == 0) {
    log_position_ = written.back().first;
    log_position_dirty_ = true;  // saved with the next commit
  } else {
    // The log stops here; reopening it (SIGHUP, restart) writes everything from this point.
    std::fclose(log_);
    log_ = nullptr;
  }
}

void IndicatorJournal::try_catch_up_log() {
  try {
    catch_up_log();
    catch_up_pending_ = false;
  } catch (...) {
    catch_up_pending_ = true;
    report("could not catch up the indicator log, tried again at the next commit: " +
           current_failure());
  }
}

// Events committed but not in the log (a crash between the two, an unwritable log, a failed
// catch-up): written now, from the journal, a bounded batch at a time. A line may appear twice
// after a crash; its "key" tells.
void IndicatorJournal::catch_up_log() {
  if (options_.before_catch_up) options_.before_catch_up();
  constexpr int64_t kBatch = 500;
  while (log_) {
    auto events = read_events(db_, log_position_, kBatch);
    if (events.empty()) return;
    std::vector<std::pair<int64_t, const IndicatorEvent*>> written;
    written.reserve(events.size());
    for (const auto& [seq, e] : events)
      written.emplace_back(seq, &e);
    write_log(written);
    if (static_cast<int64_t>(events.size()) < kBatch) return;
  }
}

}  // namespace mssgate::storage
