#include "storage/indicator_journal.hpp"

#include <algorithm>
#include <utility>

#include "storage/journal_columns.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

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

bool IndicatorJournal::Turn::empty() const {
  return events.empty() && pending.empty() && settlements.empty() && connections.empty();
}

IndicatorJournal::IndicatorJournal(Options options) : options_(std::move(options)) {
  store_ = options_.open_store ? options_.open_store() : open_sqlite_journal(options_.path);
  try {
    recover_pending();
    log_position_ = store_->log_position();
    open_log(true);
    try_catch_up_log();
  } catch (...) {
    log_.close();
    throw;
  }
  thread_ = std::thread([this] { writer(); });
}

IndicatorJournal::~IndicatorJournal() {
  stop();
  log_.close();
}

// Pending events a stop or a crash left: their deliveries may have been answered for, so they
// count (a delivery made again has the same key). Before the log's catch-up, which writes them.
void IndicatorJournal::recover_pending() {
  store_->begin();
  try {
    auto ids = store_->pending_ids();
    uint64_t recorded = 0;
    for (auto id : ids) {
      if (store_->promote(id)) ++recorded;
    }
    store_->commit();
    stats_.recorded += recorded;
    stats_.duplicates += ids.size() - recorded;
    if (!ids.empty() && options_.on_pending_recovered) options_.on_pending_recovered(ids.size());
  } catch (...) {
    store_->roll_back();
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

void IndicatorJournal::note_connection(ConnectionEvent event, Done done) {
  {
    std::lock_guard lock(mutex_);
    connections_.push_back(std::move(event));
    if (done) connections_done_.push_back(std::move(done));
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
    auto newest = store_->newest_seq();
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
    store_->save_log_position(log_position_);
    log_position_dirty_ = false;
  } catch (...) {
    log_position_dirty_ = true;  // saved with the next commit
    report("could not save the indicator log's position: " + current_failure());
  }
}

// Turns of events and sign-ins go to a store that sends turns (PostgreSQL) without waiting
// for their commit: the database writes one while the writer answers for the one before and
// takes the next. Other turns (deliveries pending or settled, a log reopened) first wait for
// the turns sent, then are committed here, one transaction at a time.
void IndicatorJournal::writer() {
  std::deque<Turn> sent;  // sent to the store and not finished, oldest first
  for (;;) {
    if (!sent.empty() &&
        (static_cast<int>(sent.size()) >= JournalStore::kTurnsInFlight || !work_waiting())) {
      finish_oldest(sent);
      continue;
    }
    Turn turn;
    bool reopen = false;
    if (!take(turn, reopen, sent.empty() && store_->sends_turns()))
      return;  // stopped, nothing waiting and nothing sent
    if (sendable(turn, reopen)) {
      send(turn, sent);
      continue;
    }
    while (!sent.empty())
      finish_oldest(sent);
    take_turn(turn, reopen);
  }
}

bool IndicatorJournal::work_waiting() const {
  std::lock_guard lock(mutex_);
  return reopen_ || !queue_.empty() || !pending_queue_.empty() || !settle_queue_.empty() ||
         !connections_.empty();
}

bool IndicatorJournal::sendable(const Turn& turn, bool reopen) const {
  return !reopen && store_->sends_turns() && turn.pending.empty() && turn.settlements.empty() &&
         !turn.empty();
}

void IndicatorJournal::send(Turn& turn, std::deque<Turn>& sent) {
  try {
    if (options_.before_commit) options_.before_commit();
    std::vector<const IndicatorEvent*> events;
    events.reserve(turn.events.size());
    for (const auto& queued : turn.events)
      events.push_back(&queued.event);
    std::optional<int64_t> position;
    if (log_position_dirty_) position = log_position_;
    store_->send_turn(events, turn.connections, position);
    turn.saves_log_position = position.has_value();
    log_position_dirty_ = false;
    sent.push_back(std::move(turn));
  } catch (...) {
    report_not_committed(turn);
    failed(turn);
  }
}

void IndicatorJournal::finish_oldest(std::deque<Turn>& sent) {
  Turn turn = std::move(sent.front());
  sent.pop_front();
  Written written;
  Counts counts;
  try {
    add_written(turn, store_->finish_turn(), written, counts);
  } catch (const StorageConflict&) {
    // It met another gateway's transaction and kept nothing: it runs again on its own, with
    // the retries of a committed turn, once the turns sent after it are finished.
    if (turn.saves_log_position) log_position_dirty_ = true;
    while (!sent.empty())
      finish_oldest(sent);
    take_turn(turn, false);
    return;
  } catch (...) {
    if (turn.saves_log_position) log_position_dirty_ = true;
    report_not_committed(turn);
    failed(turn);
    return;
  }
  committed(turn, counts, written, sent.empty());
}

// Waits for work and takes it; false once stopped with nothing left.
// `split`: a long queue is taken half at a time, so that a store that sends turns writes one half
// while the other's commit is answered for (else the producers of a single turn all wait on it,
// and nothing overlaps).
bool IndicatorJournal::take(Turn& turn, bool& reopen, bool split) {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] {
    return stop_ || reopen_ || !queue_.empty() || !pending_queue_.empty() ||
           !settle_queue_.empty() || !connections_.empty();
  });
  if (queue_.empty() && pending_queue_.empty() && settle_queue_.empty() && connections_.empty() &&
      !reopen_ && stop_)
    return false;
  constexpr size_t kSplitFrom = 64;
  size_t limit = options_.max_batch;
  if (split && queue_.size() >= kSplitFrom) limit = std::min(limit, (queue_.size() + 1) / 2);
  while (!queue_.empty() && turn.events.size() < limit) {
    turn.events.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  turn.pending.swap(pending_queue_);
  turn.settlements.swap(settle_queue_);
  turn.connections.swap(connections_);
  turn.connections_done.swap(connections_done_);
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
  try {
    // A transaction that met another gateway's (a deadlock on the same keys) kept nothing: it
    // runs again, a few times.
    constexpr int kAttempts = 4;
    for (int attempt = 1;; ++attempt) {
      try {
        if (options_.before_commit) options_.before_commit();
        store_->begin();
        insert(turn, written, counts);
        store_->commit();
        break;
      } catch (const StorageConflict&) {
        store_->roll_back();
        if (attempt == kAttempts) throw;
        written.clear();
        counts = Counts{};
      }
    }
    log_position_dirty_ = false;
  } catch (...) {
    store_->roll_back();
    report_not_committed(turn);
    failed(turn);
    return;
  }
  committed(turn, counts, written, true);
}

// Called while the failure is being handled.
void IndicatorJournal::report_not_committed(const Turn& turn) {
  report("could not commit " + std::to_string(turn.events.size()) + " indicator events, " +
         std::to_string(turn.pending.size()) + " deliveries pending, " +
         std::to_string(turn.settlements.size()) + " settled and " +
         std::to_string(turn.connections.size()) + " sign-ins: " + current_failure());
}

void IndicatorJournal::failed(Turn& turn) {
  {
    std::lock_guard lock(mutex_);
    stats_.failed += turn.events.size();
  }
  answer(turn, false, nullptr);
}

// `store_idle`: no turn is out, the store may be read (a log catch-up).
void IndicatorJournal::committed(Turn& turn, Counts& counts, const Written& written,
                                 bool store_idle) {
  {
    std::lock_guard lock(mutex_);
    stats_.recorded += written.size();
    stats_.duplicates += counts.duplicates;
    stats_.connections += turn.connections.size();
    for (const auto& batch : turn.pending)
      stats_.pending += batch.events.size();
    ++stats_.commits;
  }
  answer(turn, true, &counts);
  after_commit(turn, counts, written, store_idle);
}

// The turn's rows, in one transaction; `written` in seq order.
void IndicatorJournal::insert(Turn& turn, Written& written, Counts& counts) {
  std::vector<const IndicatorEvent*> events;
  events.reserve(turn.events.size());
  for (const auto& queued : turn.events)
    events.push_back(&queued.event);
  add_written(turn, store_->add_all(events), written, counts);
  for (const auto& batch : turn.pending) {
    auto& ids = counts.pending_ids.emplace_back();
    for (const auto& event : batch.events)
      ids.push_back(store_->add_pending(event));
  }
  for (const auto& settlement : turn.settlements)
    settle_in(settlement, written, counts);
  store_->add_all(turn.connections);
  if (log_position_dirty_) store_->save_log_position(log_position_);
}

// The turn's new events with their seqs, in seq order: a store may number a turn's events in
// another order than they came (PostgreSQL's, by key).
void IndicatorJournal::add_written(const Turn& turn,
                                   const std::vector<std::optional<int64_t>>& seqs,
                                   Written& written, Counts& counts) {
  for (size_t i = 0; i < turn.events.size() && i < seqs.size(); ++i) {
    if (seqs[i]) {
      written.emplace_back(*seqs[i], &turn.events[i].event);
    } else {
      ++counts.duplicates;  // already counted: a redelivery, or a replay
    }
  }
  std::sort(written.begin(), written.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
}

void IndicatorJournal::settle_in(const Settlement& settlement, Written& written, Counts& counts) {
  for (auto id : settlement.delivered) {
    auto seq = store_->promote(id);
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
    store_->drop(id);
}

// The log gets the new events; the pending events are kept until settled. A catch-up waits
// until the store is idle (`store_idle`), and writes these events then.
void IndicatorJournal::after_commit(Turn& turn, Counts& counts, const Written& written,
                                    bool store_idle) {
  for (size_t b = 0; b < turn.pending.size(); ++b) {
    auto& events = turn.pending[b].events;
    const auto& ids = counts.pending_ids[b];
    for (size_t i = 0; i < events.size() && i < ids.size(); ++i)
      pending_events_.emplace(ids[i], std::move(events[i]));
  }
  if (catch_up_pending_) {
    if (store_idle) try_catch_up_log();  // reads the events just committed too
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
  for (auto& done : turn.connections_done)
    call(done, durable);
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
    auto events = store_->read_events(log_position_, kBatch);
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
