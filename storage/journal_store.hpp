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
#include "storage/postgresql.hpp"
#include "storage/storage_error.hpp"

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
  // The same for many, in one go where the database allows: each event's seq, in order, nullopt
  // for a key the journal has (or an earlier event of the list has).
  virtual std::vector<std::optional<int64_t>> add_all(
      const std::vector<const IndicatorEvent*>& events) {
    std::vector<std::optional<int64_t>> seqs;
    seqs.reserve(events.size());
    for (const auto* event : events)
      seqs.push_back(add(*event));
    return seqs;
  }
  virtual void add_all(const std::vector<ConnectionEvent>& connections) {
    for (const auto& connection : connections)
      add(connection);
  }
  // A turn of events and sign-ins sent without waiting for it, so that the database writes it
  // while the writer answers for the turn before (PostgreSQL; a store that cannot says false to
  // sends_turns()). send_turn() sends what begin(), add_all() of both, save_log_position() when
  // given and commit() would do, as one transaction; finish_turn() waits for the oldest turn
  // sent and gives its events' seqs as add_all() does, or throws as commit() would, nothing of
  // that turn kept. No other call while a turn is unfinished; at most kTurnsInFlight of them.
  static constexpr int kTurnsInFlight = 2;
  virtual bool sends_turns() const { return false; }
  virtual void send_turn(const std::vector<const IndicatorEvent*>& events,
                         const std::vector<ConnectionEvent>& connections,
                         std::optional<int64_t> log_position) {
    (void)events, (void)connections, (void)log_position;
    throw StorageError("this indicator journal does not send turns");
  }
  virtual std::vector<std::optional<int64_t>> finish_turn() {
    throw StorageError("this indicator journal does not send turns");
  }

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
  // Every row of the sign-in counts: the successful ones per mailbox, day, mode and protocol
  // (connection_day), and all of them by failure, professional and LPS too (sign_in_day).
  virtual std::vector<ConnectionDay> connection_days() = 0;
  virtual std::vector<ConnectionDay> sign_in_days() = 0;
};

// The SQLite journal at `path` (WAL, every commit synced), created or migrated. Throws
// StorageError.
std::unique_ptr<JournalStore> open_sqlite_journal(const std::string& path);

// The journal in PostgreSQL, shared by the gateways: the same key counts once whichever gateway
// records it, each sign-in adds to the shared counts. `origin` (server.instance) names this
// gateway's pending events, its log's position and the events it recorded (the ones its log
// gets); one gateway at a time may use an origin. Tables are created or migrated. A lost
// connection is opened again at the next transaction. Throws StorageError (StorageConflict when
// a transaction met another gateway's and may be run again).
std::unique_ptr<JournalStore> open_postgresql_journal(const PostgresqlSettings& settings,
                                                      const std::string& origin);

struct JournalCopyCounts {
  int64_t events = 0;
  int64_t documents = 0;
  int64_t connection_days = 0;
  int64_t connections = 0;
  int64_t sign_in_days = 0;       // rows of sign_in_day
  int64_t pending_recovered = 0;  // pending deliveries a stop left, counted as at a start

  bool operator==(const JournalCopyCounts&) const = default;
};

// Moves a single host's journal into an empty PostgreSQL journal, in one transaction: the
// events keep their seq, recorded under `origin`, with the log's position. Pending deliveries
// are first counted in `from`, as a gateway's start would. Each count is checked before the
// commit. Throws StorageError.
JournalCopyCounts copy_journal_to_postgresql(JournalStore& from, const PostgresqlSettings& to,
                                             const std::string& origin);

}  // namespace mssgate::storage
