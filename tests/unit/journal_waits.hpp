#pragma once
// Recording into an IndicatorJournal and waiting for its answers, as a session does: shared by
// the journal's tests (SQLite's and PostgreSQL's).

#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <vector>

#include "storage/indicator_journal.hpp"

namespace mssgate::test_journal {

// Records and waits until the journal says whether each event is durable.
inline std::vector<bool> record_all(storage::IndicatorJournal& journal,
                                    std::vector<storage::IndicatorEvent> events) {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<bool> results(events.size());
  size_t left = events.size();
  for (size_t i = 0; i < events.size(); ++i) {
    journal.record(std::move(events[i]), [&, i](bool durable) {
      std::lock_guard lock(mutex);
      results[i] = durable;
      --left;
      done.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return left == 0; });
  return results;
}

// A delivery's pending events; their ids (empty when they could not be committed).
inline std::vector<int64_t> record_pending(storage::IndicatorJournal& journal,
                                           std::vector<storage::IndicatorEvent> events) {
  std::promise<std::vector<int64_t>> ids;
  journal.record_pending(std::move(events),
                         [&](std::vector<int64_t> got) { ids.set_value(std::move(got)); });
  return ids.get_future().get();
}

// Settles pending events; whether that was committed.
inline bool settle(storage::IndicatorJournal& journal, std::vector<int64_t> delivered,
                   std::vector<int64_t> dropped) {
  std::promise<bool> durable;
  journal.settle(std::move(delivered), std::move(dropped), [&](bool ok) { durable.set_value(ok); });
  return durable.get_future().get();
}

}  // namespace mssgate::test_journal
