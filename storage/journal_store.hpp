#pragma once
// What the indicator journal's writer asks of its database: one writing transaction per turn,
// the rows of that turn, and what the log's catch-up and a start after a crash read back. The
// writer (indicator_journal.hpp) keeps the order, the group commit, the pending events and the
// log; a store only keeps rows. Used by one thread at a time.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/indicator_event.hpp"

namespace mssgate::storage {

class JournalStore {
 public:
  virtual ~JournalStore() = default;

  // A writing transaction, and its end. roll_back() never throws.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void roll_back() noexcept = 0;

  // Inside a transaction. The new event's seq; nullopt when the journal already has its key.
  virtual std::optional<int64_t> add(const IndicatorEvent& event) = 0;
  // One more sign-in on the connection's mailbox, day, mode and protocol.
  virtual void add(const ConnectionEvent& connection) = 0;
  // A pending event (not counted until promoted); its id.
  virtual int64_t add_pending(const IndicatorEvent& event) = 0;
  // The pending event becomes an event: its seq; nullopt when the journal already has its key
  // (or there is no such pending event). The pending event is gone either way.
  virtual std::optional<int64_t> promote(int64_t pending_id) = 0;
  virtual void drop(int64_t pending_id) = 0;

  // Inside a transaction or on its own: the last event the log holds.
  virtual void save_log_position(int64_t seq) = 0;
  virtual int64_t log_position() = 0;
  // The ids of the pending events, in order.
  virtual std::vector<int64_t> pending_ids() = 0;
  // The events after `after_seq`, in seq order, at most `limit`, each with its seq.
  virtual std::vector<std::pair<int64_t, IndicatorEvent>> read_events(int64_t after_seq,
                                                                      int64_t limit) = 0;
  // The newest event's seq (0: none).
  virtual int64_t newest_seq() = 0;
};

// The SQLite journal at `path` (WAL, every commit synced), created or migrated. Throws
// StorageError.
std::unique_ptr<JournalStore> open_sqlite_journal(const std::string& path);

}  // namespace mssgate::storage
