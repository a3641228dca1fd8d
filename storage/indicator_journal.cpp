#include "storage/indicator_journal.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "storage/journal_columns.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

// 2: the tables of pending events.
constexpr int kJournalSchemaVersion = 2;

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

int64_t single_integer(sqlite3* db, const char* sql) {
  Statement statement(db, sql);
  return statement.step() == SQLITE_ROW ? statement.integer(0) : 0;
}

}  // namespace

bool IndicatorJournal::Turn::empty() const {
  return events.empty() && pending.empty() && settlements.empty() && connections.empty();
}

void IndicatorJournal::Turn::clear() {
  events.clear();
  pending.clear();
  settlements.clear();
  connections.clear();
}

IndicatorJournal::IndicatorJournal(Options options) : options_(std::move(options)) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(options_.path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError("cannot open indicator journal " + options_.path + ": " + message);
  }
  try {
    open_database();
    recover_pending();
    log_position_ =
        single_integer(db_, "SELECT value FROM journal_meta WHERE name = 'log_position'");
    open_log(true);
    try_catch_up_log();
  } catch (...) {
    log_.close();
    sqlite3_close(db_);
    throw;
  }
  thread_ = std::thread([this] { writer(); });
}

IndicatorJournal::~IndicatorJournal() {
  stop();
  log_.close();
  sqlite3_close(db_);
}

void IndicatorJournal::open_database() {
  sqlite3_busy_timeout(db_, 10000);
  exec(db_, "PRAGMA journal_mode = WAL");
  // In WAL mode, FULL syncs the log at every commit: a committed event survives a power cut.
  exec(db_, "PRAGMA synchronous = FULL");
  auto current = single_integer(db_, "PRAGMA user_version");
  if (current > kJournalSchemaVersion) {
    throw StorageError("indicator journal " + options_.path + " has schema version " +
                       std::to_string(current) + ", newer than this mssgate knows (" +
                       std::to_string(kJournalSchemaVersion) + ")");
  }
  exec(db_, "BEGIN IMMEDIATE");
  exec(db_, journal_schema().c_str());
  exec(db_, pending_schema().c_str());
  exec(db_, ("PRAGMA user_version = " + std::to_string(kJournalSchemaVersion)).c_str());
  exec(db_, "COMMIT");
}

// Pending events a stop or a crash left: their deliveries may have been answered for, so they
// count (a delivery made again has the same key). Before the log's catch-up, which writes them.
void IndicatorJournal::recover_pending() {
  exec(db_, "BEGIN IMMEDIATE");
  try {
    auto ids = pending_ids(db_);
    uint64_t recorded = 0;
    {
      JournalInserts inserts(db_);
      for (auto id : ids) {
        if (inserts.promote(id)) ++recorded;
      }
    }
    exec(db_, "COMMIT");
    stats_.recorded += recorded;
    stats_.duplicates += ids.size() - recorded;
    if (!ids.empty() && options_.on_pending_recovered) options_.on_pending_recovered(ids.size());
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
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

void IndicatorJournal::record_pending(std::vector<IndicatorEvent> events, PendingDone done) {
  {
    std::lock_guard lock(mutex_);
    pending_queue_.push_back({std::move(events), std::move(done)});
  }
  wake_.notify_one();
}

void IndicatorJournal::settle(std::vector<int64_t> delivered, std::vector<int64_t> dropped,
                              Done done) {
  {
    std::lock_guard lock(mutex_);
    settle_queue_.push_back({std::move(delivered), std::move(dropped), std::move(done)});
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

// The log resumes after its last complete line; a file without any line (new, or just rotated)
// after the position known before: the journal's, or the one the writer holds at a reopening.
void IndicatorJournal::open_log(bool at_start) {
  if (options_.log_path.empty()) return;
  IndicatorLogFile::Tail tail;
  try {
    tail = log_.open(options_.log_path);
  } catch (const StorageError&) {
    // Unwritable log: the journal still holds every event; the log catches up when reopened.
    return;
  }
  if (tail.last_seq) {
    auto newest = single_integer(db_, "SELECT COALESCE(MAX(seq), 0) FROM indicator_event");
    log_position_ = std::min(*tail.last_seq, newest);
    if (*tail.last_seq > newest) {
      report("the indicator log ends with seq " + std::to_string(*tail.last_seq) +
             ", after the journal's newest event (" + std::to_string(newest) +
             "): is it another journal's log? Events after " + std::to_string(newest) +
             " are appended to it");
    }
  }
  if (tail.unreadable) {
    report("the last line of the indicator log is not an event's: the log resumes after seq " +
           std::to_string(log_position_));
  }
  save_log_position();
  if (options_.on_log_opened)
    options_.on_log_opened(LogOpened{tail.truncated_bytes, log_position_, at_start});
}

// Saved at once, when the log is opened: a new file after a rotation has no line to resume
// after, and a crash before the next commit must not write into it again what the old one
// holds.
void IndicatorJournal::save_log_position() {
  try {
    Statement position(db_,
                       "INSERT INTO journal_meta (name, value) VALUES ('log_position', ?1) "
                       "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    position.bind(1, log_position_);
    if (position.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
    log_position_dirty_ = false;
  } catch (...) {
    log_position_dirty_ = true;  // saved with the next commit
    report("could not save the indicator log's position: " + current_failure());
  }
}

void IndicatorJournal::writer() {
  Turn turn;
  for (;;) {
    bool reopen = false;
    if (!take(turn, reopen)) return;
    take_turn(turn, reopen);
    turn.clear();
  }
}

// Waits for work and takes it; false once stopped with nothing left.
bool IndicatorJournal::take(Turn& turn, bool& reopen) {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] {
    return stop_ || reopen_ || !queue_.empty() || !pending_queue_.empty() ||
           !settle_queue_.empty() || !connections_.empty();
  });
  if (queue_.empty() && pending_queue_.empty() && settle_queue_.empty() && connections_.empty() &&
      !reopen_ && stop_)
    return false;
  while (!queue_.empty() && turn.events.size() < options_.max_batch) {
    turn.events.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  turn.pending.swap(pending_queue_);
  turn.settlements.swap(settle_queue_);
  turn.connections.swap(connections_);
  reopen = std::exchange(reopen_, false);
  return true;
}

// Nothing leaves the writer thread: an exception there would end the process.
void IndicatorJournal::take_turn(Turn& turn, bool reopen) {
  try {
    if (reopen) {
      open_log(false);
      try_catch_up_log();
    }
    if (!turn.empty()) commit(turn);
  } catch (...) {
    catch_up_pending_ = true;
    report("indicator journal writer: " + current_failure());
    answer(turn, false, nullptr);
  }
}

void IndicatorJournal::commit(Turn& turn) {
  Written written;
  Counts counts;
  bool ok = true;
  try {
    exec(db_, "BEGIN IMMEDIATE");
    insert(turn, written, counts);
    exec(db_, "COMMIT");
    log_position_dirty_ = false;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ok = false;
    written.clear();
    report("could not commit " + std::to_string(turn.events.size()) + " indicator events, " +
           std::to_string(turn.pending.size()) + " deliveries pending, " +
           std::to_string(turn.settlements.size()) + " settled and " +
           std::to_string(turn.connections.size()) + " sign-ins: " + current_failure());
  }
  {
    std::lock_guard lock(mutex_);
    if (ok) {
      stats_.recorded += written.size();
      stats_.duplicates += counts.duplicates;
      stats_.connections += turn.connections.size();
      for (const auto& batch : turn.pending)
        stats_.pending += batch.events.size();
      ++stats_.commits;
    } else {
      stats_.failed += turn.events.size();
    }
  }
  answer(turn, ok, ok ? &counts : nullptr);
  if (ok) after_commit(turn, counts, written);
}

// The turn's rows, in one transaction; `written` in seq order.
void IndicatorJournal::insert(Turn& turn, Written& written, Counts& counts) {
  JournalInserts inserts(db_);
  for (const auto& queued : turn.events) {
    if (auto seq = inserts.add(queued.event)) {
      written.emplace_back(*seq, &queued.event);
    } else {
      ++counts.duplicates;  // already counted: a redelivery, or a replay
    }
  }
  for (const auto& batch : turn.pending) {
    auto& ids = counts.pending_ids.emplace_back();
    for (const auto& event : batch.events)
      ids.push_back(inserts.add_pending(event));
  }
  for (const auto& settlement : turn.settlements)
    settle_in(settlement, inserts, written, counts);
  for (const auto& c : turn.connections)
    inserts.add(c);
  if (log_position_dirty_) {
    Statement position(db_,
                       "INSERT INTO journal_meta (name, value) VALUES ('log_position', ?1) "
                       "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    position.bind(1, log_position_);
    if (position.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
  }
}

void IndicatorJournal::settle_in(const Settlement& settlement, JournalInserts& inserts,
                                 Written& written, Counts& counts) {
  for (auto id : settlement.delivered) {
    auto seq = inserts.promote(id);
    if (!seq) {
      ++counts.duplicates;  // the message was counted already: a delivery made again
      continue;
    }
    auto kept = pending_events_.find(id);
    if (kept != pending_events_.end()) {
      written.emplace_back(*seq, &kept->second);
    } else {
      catch_up_pending_ = true;  // not held here: the log reads it from the journal
    }
  }
  for (auto id : settlement.dropped)
    inserts.drop(id);
}

// The log gets the new events; the pending events are kept until settled.
void IndicatorJournal::after_commit(Turn& turn, Counts& counts, const Written& written) {
  for (size_t b = 0; b < turn.pending.size(); ++b) {
    auto& events = turn.pending[b].events;
    const auto& ids = counts.pending_ids[b];
    for (size_t i = 0; i < events.size() && i < ids.size(); ++i)
      pending_events_.emplace(ids[i], std::move(events[i]));
  }
  if (catch_up_pending_) {
    try_catch_up_log();  // reads the events just committed too
  } else {
    try {
      write_log(written);
    } catch (...) {
      catch_up_pending_ = true;
      report("could not append to the indicator log, caught up at the next commit: " +
             current_failure());
    }
  }
  for (const auto& settlement : turn.settlements) {
    for (auto id : settlement.delivered)
      pending_events_.erase(id);
    for (auto id : settlement.dropped)
      pending_events_.erase(id);
  }
}

// Each waiter is answered once, even when a turn fails after answering some.
void IndicatorJournal::answer(Turn& turn, bool durable, Counts* counts) {
  auto call = [this](auto& done, auto&&... arguments) {
    auto callback = std::exchange(done, nullptr);
    if (!callback) return;
    try {
      callback(std::forward<decltype(arguments)>(arguments)...);
    } catch (...) {
      report("an indicator event's waiter failed: " + current_failure());
    }
  };
  for (auto& queued : turn.events)
    call(queued.done, durable);
  for (size_t b = 0; b < turn.pending.size(); ++b) {
    std::vector<int64_t> ids;
    if (counts && b < counts->pending_ids.size()) ids = counts->pending_ids[b];
    call(turn.pending[b].done, std::move(ids));
  }
  for (auto& settlement : turn.settlements)
    call(settlement.done, durable);
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

void IndicatorJournal::write_log(const Written& written) {
  if (!log_.is_open() || written.empty()) return;
  std::string lines;
  int64_t last = log_position_;
  for (const auto& [seq, event] : written) {
    if (seq <= log_position_) continue;
    lines += json_line(seq, *event);
    lines += '\n';
    last = seq;
  }
  if (lines.empty()) return;
  if (log_.append(lines)) {
    log_position_ = last;
    log_position_dirty_ = true;  // saved with the next commit
  } else {
    // The log stops here; reopening it (SIGHUP, restart) removes what was written of a line
    // and writes everything from this point.
    log_.close();
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
// catch-up): written now, from the journal, a bounded batch at a time.
void IndicatorJournal::catch_up_log() {
  if (options_.before_catch_up) options_.before_catch_up();
  constexpr int64_t kBatch = 500;
  while (log_.is_open()) {
    auto events = read_events(db_, log_position_, kBatch);
    if (events.empty()) return;
    Written written;
    written.reserve(events.size());
    for (const auto& [seq, e] : events)
      written.emplace_back(seq, &e);
    write_log(written);
    if (static_cast<int64_t>(events.size()) < kBatch) return;
  }
}

}  // namespace mssgate::storage
