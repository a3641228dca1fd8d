// The indicator journal in PostgreSQL (journal_store.hpp): one connection, used by the journal's
// writer thread, or by mssgatectl for a move.

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "storage/journal_columns.hpp"
#include "storage/journal_store.hpp"
#include "storage/postgresql.hpp"

namespace mssgate::storage {
namespace {

namespace pj = postgresql_journal;

constexpr const char* kPart = "journal";
// 2: the acknowledgement columns (added_event_columns()). 3: sign_in_day. 4: a sent message's
// envelope_id (added_event_columns() too). 5: indicator_document without its foreign key
// (postgresql_journal::schema()).
constexpr int kVersion = 5;
// The same migration lock as the directory's: one migration at a time, whichever part.
constexpr long long kMigrationLock = 0x6d7373676174;  // "mssgat"
// pg_try_advisory_lock's first key for an origin in use (the second is the origin's hash).
constexpr int kOriginLockClass = 0x6d6a;  // "mj"

void migrate_journal(PostgresqlConnection& db) {
  db.in_transaction("the journal's migration", [&] {
    db.exec("locking the schema", "SELECT pg_advisory_xact_lock($1)",
            {std::to_string(kMigrationLock)});
    db.exec_script("creating the schema table",
                   "CREATE TABLE IF NOT EXISTS mssgate_schema (part text PRIMARY KEY, "
                   "version integer NOT NULL)");
    auto found = db.exec("reading the journal's schema version",
                         "SELECT version FROM mssgate_schema WHERE part = $1", {kPart});
    int64_t version = found.rows() ? found.integer(0, 0) : 0;
    if (version > kVersion) {
      throw StorageError("the PostgreSQL indicator journal has schema version " +
                         std::to_string(version) + ", newer than this mssgate (" +
                         std::to_string(kVersion) + ")");
    }
    if (version < 1) {
      db.exec_script("creating the journal's tables", pj::schema().c_str());
    } else {
      if (version < 4) {
        db.exec_script("adding the columns of versions 2 and 4", pj::add_event_columns().c_str());
      }
      // Version 3's table, and any other a later version adds: the schema is all IF NOT EXISTS.
      db.exec_script("creating the tables added since", pj::schema().c_str());
      if (version < 5) {
        db.exec_script("dropping the documents' foreign key",
                       "ALTER TABLE indicator_document "
                       "DROP CONSTRAINT IF EXISTS indicator_document_seq_fkey");
      }
    }
    if (version < kVersion) {
      db.exec("recording the journal's schema version",
              "INSERT INTO mssgate_schema (part, version) VALUES ($1, $2) "
              "ON CONFLICT (part) DO UPDATE SET version = EXCLUDED.version",
              {kPart, std::to_string(kVersion)});
    }
  });
}

// A row of sign-ins for insert_connections_unnest_sql, or insert_sign_ins_unnest_sql.
void add_row(pj::ArrayLiterals& columns, const ConnectionDay& day) {
  std::vector<std::string> row;
  pj::connection_values(day.last, day.connections, row);
  columns.add_row(row);
}
void add_sign_in_row(pj::ArrayLiterals& columns, const ConnectionDay& day) {
  std::vector<std::string> row;
  pj::sign_in_values(day.last, day.connections, row);
  columns.add_row(row);
}

// One more sign-in in a row's total, the latest kept.
void count_into(ConnectionDay& total, const ConnectionEvent& c) {
  if (total.connections == 0 || c.at_ms >= total.last.at_ms) total.last = c;
  ++total.connections;
}

bool conflict(const PostgresqlError& e) {
  return e.sqlstate() == kDeadlockDetected || e.sqlstate() == kSerializationFailure;
}

class PostgresqlJournalStore final : public JournalStore {
 public:
  PostgresqlJournalStore(PostgresqlSettings settings, std::string origin)
      : settings_(std::move(settings)), origin_(std::move(origin)) {
    if (origin_.empty())
      throw StorageError("a PostgreSQL indicator journal needs this gateway's name (an origin)");
    connect();
  }

  void begin() override {
    ensure_connected();
    run("starting a journal transaction", "begin", "BEGIN", {});
  }
  void commit() override { run("committing indicator events", "commit", "COMMIT", {}); }
  void roll_back() noexcept override {
    if (db_) db_->roll_back_quietly();
  }

  // One at a time: the same statements as many.
  std::optional<int64_t> add(const IndicatorEvent& event) override { return add_all({&event})[0]; }
  void add(const ConnectionEvent& connection) override { add_all({connection}); }

  std::vector<std::optional<int64_t>> add_all(
      const std::vector<const IndicatorEvent*>& events) override {
    EventRows rows;
    auto statement = events_statement(events, rows);
    if (!statement) return std::vector<std::optional<int64_t>>(events.size());
    return seqs_of(run(*statement), rows);
  }

  void add_all(const std::vector<ConnectionEvent>& connections) override {
    for (auto& statement : sign_in_statements(connections))
      run(statement);
  }

  bool sends_turns() const override { return true; }

  // The turn's statements, sent with no BEGIN: what comes before the sync is one transaction.
  void send_turn(const std::vector<const IndicatorEvent*>& events,
                 const std::vector<ConnectionEvent>& connections,
                 std::optional<int64_t> log_position) override {
    if (static_cast<int>(sent_.size()) >= kTurnsInFlight)
      throw StorageError("the PostgreSQL journal has " + std::to_string(sent_.size()) +
                         " turns unfinished already");
    if (sent_.empty()) {
      ensure_connected();
      prepare_turn_statements();
    } else if (!db_ || !db_->usable()) {
      // The turns out on the lost connection fail with their finish; a new one waits for them.
      throw StorageError("the connection to PostgreSQL was lost");
    }
    SentTurn turn;
    std::vector<Statement> statements;
    if (auto statement = events_statement(events, turn.rows)) {
      statements.push_back(std::move(*statement));
      turn.has_events = true;
    }
    for (auto& statement : sign_in_statements(connections))
      statements.push_back(std::move(statement));
    if (log_position) statements.push_back(position_statement(*log_position));
    try {
      for (const auto& statement : statements)
        db_->send_prepared(statement.what, statement.name, statement.values);
      db_->send_sync("committing indicator events");
    } catch (const PostgresqlError&) {
      // What was sent of this turn without its sync must never be committed with a later one:
      // the connection is closed, at once or once the turns before it are finished.
      if (sent_.empty()) {
        db_.reset();
      } else {
        broken_ = true;
      }
      throw;
    }
    sent_.push_back(std::move(turn));
  }

  std::vector<std::optional<int64_t>> finish_turn() override {
    if (sent_.empty()) throw StorageError("no turn of the PostgreSQL journal is unfinished");
    SentTurn turn = std::move(sent_.front());
    sent_.pop_front();
    struct CloseWhenDone {
      PostgresqlJournalStore& store;
      ~CloseWhenDone() {
        if (store.sent_.empty() && store.broken_) {
          store.db_.reset();
          store.broken_ = false;
        }
      }
    } close_when_done{*this};
    if (!db_ || (!db_->usable() && db_->unread_syncs() == 0))
      throw StorageError("the connection to PostgreSQL was lost before the commit was known");
    std::vector<PostgresqlResult> results;
    try {
      results = db_->read_to_sync("committing indicator events");
    } catch (const PostgresqlError& e) {
      if (conflict(e)) throw StorageConflict(e.what());
      throw;
    }
    if (!turn.has_events) return std::vector<std::optional<int64_t>>(turn.rows.events);
    return seqs_of(results.front(), turn.rows);
  }

  int64_t add_pending(const IndicatorEvent& event) override {
    std::vector<std::string> values{origin_};
    pj::event_values(event, values);
    auto r = run("recording a pending event", "pending",
                 pj::insert_event_sql("indicator_pending", false), values);
    int64_t id = r.integer(0, 0);
    add_documents("indicator_pending_document", id, event);
    return id;
  }

  std::optional<int64_t> promote(int64_t pending_id) override {
    std::string id = std::to_string(pending_id);
    auto r = run("counting a pending event", "promote", pj::promote_sql(), {id, origin_});
    std::optional<int64_t> seq;
    if (r.rows() > 0) {
      seq = r.integer(0, 0);
      run("counting a pending event's documents", "promote_documents", pj::promote_documents_sql(),
          {id, std::to_string(*seq)});
    }
    drop(pending_id);
    return seq;
  }

  void drop(int64_t pending_id) override {
    std::string id = std::to_string(pending_id);
    run("forgetting a pending event's documents", "drop_documents",
        "DELETE FROM indicator_pending_document WHERE seq = $1", {id});
    run("forgetting a pending event", "drop",
        "DELETE FROM indicator_pending WHERE seq = $1 AND origin = $2", {id, origin_});
  }

  void save_log_position(int64_t seq) override {
    ensure_connected();
    run(position_statement(seq));
  }

  int64_t log_position() override {
    ensure_connected();
    auto r = run("reading the log's position", "position",
                 "SELECT log_position FROM journal_position WHERE origin = $1", {origin_});
    return r.rows() ? r.integer(0, 0) : 0;
  }

  std::vector<int64_t> pending_ids() override {
    ensure_connected();
    auto r = run("reading the pending events", "pending_ids",
                 "SELECT seq FROM indicator_pending WHERE origin = $1 ORDER BY seq", {origin_});
    std::vector<int64_t> ids(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      ids[static_cast<size_t>(i)] = r.integer(i, 0);
    return ids;
  }

  std::vector<std::pair<int64_t, IndicatorEvent>> read_events(int64_t after_seq,
                                                              int64_t limit) override {
    ensure_connected();
    auto rows = run("reading indicator events", "read_events",
                    pj::select_events_sql("origin = $1 AND seq > $2") + " LIMIT $3",
                    {origin_, std::to_string(after_seq), std::to_string(limit)});
    return events_with_documents(*db_, rows);
  }

  int64_t newest_seq() override {
    ensure_connected();
    auto r = run("reading the newest event", "newest",
                 "SELECT COALESCE(MAX(seq), 0) FROM indicator_event WHERE origin = $1", {origin_});
    return r.integer(0, 0);
  }

  std::vector<ConnectionDay> connection_days() override {
    return read_days("connection_days", pj::select_connection_days_sql(), &pj::read_connection_day);
  }
  std::vector<ConnectionDay> sign_in_days() override {
    return read_days("sign_in_days", pj::select_sign_in_days_sql(), &pj::read_sign_in_day);
  }

 private:
  // Every row of a table of counted sign-ins.
  std::vector<ConnectionDay> read_days(const char* statement, const std::string& sql,
                                       void (*read)(const PostgresqlResult&, int, ConnectionDay&)) {
    ensure_connected();
    auto r = run("reading the sign-ins", statement, sql, {});
    std::vector<ConnectionDay> days(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      read(r, i, days[static_cast<size_t>(i)]);
    return days;
  }

  // The events of `rows` (seq, then the event's columns), with their documents: one query for
  // all of them.
  static std::vector<std::pair<int64_t, IndicatorEvent>> events_with_documents(
      PostgresqlConnection& db, const PostgresqlResult& rows) {
    std::vector<std::pair<int64_t, IndicatorEvent>> events;
    events.reserve(static_cast<size_t>(rows.rows()));
    std::string seqs;
    for (int i = 0; i < rows.rows(); ++i) {
      auto& [seq, event] = events.emplace_back(rows.integer(i, 0), IndicatorEvent{});
      pj::read_event(rows, i, 1, event);
      seqs += (seqs.empty() ? "" : ",") + std::to_string(seq);
    }
    if (seqs.empty()) return events;
    auto documents = db.exec_prepared("reading the events' documents", "read_documents",
                                      pj::select_documents_sql(), {"{" + seqs + "}"});
    size_t at = 0;
    for (int i = 0; i < documents.rows(); ++i) {
      int64_t seq = documents.integer(i, 0);
      while (at < events.size() && events[at].first < seq)
        ++at;
      if (at == events.size()) break;
      pj::read_document(documents, i, 1, events[at].second.documents.emplace_back());
    }
    return events;
  }

  // A statement of the writer's turns: prepared once per connection under its name.
  struct Statement {
    std::string_view what;
    const char* name;
    const std::string& sql;
    std::vector<std::string> values;
  };
  // A turn's events by key, each key at its first event: a returned row's seq goes there.
  struct EventRows {
    std::unordered_map<std::string, size_t> first_of_key;
    size_t events = 0;
  };
  struct SentTurn {
    EventRows rows;
    bool has_events = false;  // an events' statement was sent (its result comes first)
  };

  static const std::string& events_sql() {
    static const std::string sql = pj::insert_events_and_documents_sql();
    return sql;
  }
  static const std::string& connections_sql() {
    static const std::string sql = pj::insert_connections_unnest_sql();
    return sql;
  }
  static const std::string& sign_ins_sql() {
    static const std::string sql = pj::insert_sign_ins_unnest_sql();
    return sql;
  }
  static const std::string& position_sql() {
    static const std::string sql =
        "INSERT INTO journal_position (origin, log_position) VALUES ($1, $2) "
        "ON CONFLICT (origin) DO UPDATE SET log_position = EXCLUDED.log_position";
    return sql;
  }

  void prepare_turn_statements() {
    constexpr std::string_view what = "preparing the journal's statements";
    db_->prepare(what, "events", events_sql());
    db_->prepare(what, "connections", connections_sql());
    db_->prepare(what, "sign_ins", sign_ins_sql());
    db_->prepare(what, "save_position", position_sql());
  }

  // One statement for many events and their documents (one array a column: one prepared
  // statement whatever the number of rows), a round trip per turn, not per event. Rows go in
  // the order of their keys, as every gateway sends them: two gateways recording the same keys
  // take the keys' locks in the same order, and do not deadlock. None when there are no events.
  std::optional<Statement> events_statement(const std::vector<const IndicatorEvent*>& events,
                                            EventRows& rows) const {
    rows.events = events.size();
    std::vector<size_t> order;
    for (size_t i = 0; i < events.size(); ++i) {
      if (rows.first_of_key.emplace(events[i]->key, i).second) order.push_back(i);
    }
    if (order.empty()) return std::nullopt;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return events[a]->key < events[b]->key; });
    pj::ArrayLiterals columns;
    pj::ArrayLiterals documents;
    std::vector<std::string> row;
    for (size_t i : order) {
      row.clear();
      pj::event_values(*events[i], row);
      columns.add_row(row);
      for (size_t position = 0; position < events[i]->documents.size(); ++position) {
        row = {events[i]->key, std::to_string(position)};
        pj::document_values(events[i]->documents[position], row);
        documents.add_row(row);
      }
    }
    Statement statement{"recording indicator events", "events", events_sql(), {origin_}};
    for (auto& column : columns.take())
      statement.values.push_back(std::move(column));
    auto document_arrays = documents.take();
    document_arrays.resize(static_cast<size_t>(pj::document_array_count()), "{}");
    for (auto& column : document_arrays)
      statement.values.push_back(std::move(column));
    return statement;
  }

  // Each event's seq, from the rows the events' statement returned; none for a key there.
  static std::vector<std::optional<int64_t>> seqs_of(const PostgresqlResult& r,
                                                     const EventRows& rows) {
    std::vector<std::optional<int64_t>> seqs(rows.events);
    for (int n = 0; n < r.rows(); ++n) {
      auto found = rows.first_of_key.find(std::string(r.text(n, 1)));
      if (found != rows.first_of_key.end()) seqs[found->second] = r.integer(n, 0);
    }
    return seqs;
  }

  // The sign-ins of a turn added up per row first: the successful ones in connection_day, all
  // in sign_in_day.
  static std::vector<Statement> sign_in_statements(
      const std::vector<ConnectionEvent>& connections) {
    using ConnectionKey = std::tuple<std::string, std::string, AuthMode, SessionProtocol>;
    std::map<ConnectionKey, ConnectionDay> successes;
    std::map<std::tuple<ConnectionKey, std::string, std::string, std::string>, ConnectionDay> all;
    for (const auto& c : connections) {
      ConnectionKey key{c.mailbox, c.day, c.auth_mode, c.protocol};
      if (c.failure.empty()) count_into(successes[key], c);
      count_into(all[{key, c.failure, c.professional, c.lps}], c);
    }
    std::vector<Statement> statements;
    if (!successes.empty()) {
      pj::ArrayLiterals columns;
      for (const auto& [key, day] : successes)
        add_row(columns, day);
      statements.push_back({"counting sign-ins", "connections", connections_sql(), columns.take()});
    }
    if (!all.empty()) {
      pj::ArrayLiterals columns;
      for (const auto& [key, day] : all)
        add_sign_in_row(columns, day);
      statements.push_back({"counting sign-ins", "sign_ins", sign_ins_sql(), columns.take()});
    }
    return statements;
  }

  Statement position_statement(int64_t seq) const {
    return {"saving the log's position",
            "save_position",
            position_sql(),
            {origin_, std::to_string(seq)}};
  }

  PostgresqlResult run(const Statement& statement) {
    return run(statement.what, statement.name, statement.sql, statement.values);
  }

  void ensure_connected() {
    if (!db_ || !db_->usable()) connect();
  }

  void connect() {
    db_.reset();
    auto db = std::make_unique<PostgresqlConnection>(settings_);
    migrate_journal(*db);
    auto locked = db->exec("claiming this gateway's origin",
                           "SELECT pg_try_advisory_lock($1::integer, hashtext($2))",
                           {std::to_string(kOriginLockClass), origin_});
    if (locked.text(0, 0) != "t") {
      throw StorageError("another gateway uses the indicator journal " + db->name() + " as \"" +
                         origin_ + "\": each gateway needs its own server.instance");
    }
    db_ = std::move(db);
  }

  void add_documents(const char* table, int64_t seq, const IndicatorEvent& event) {
    std::string sql = pj::insert_document_sql(table);
    for (size_t position = 0; position < event.documents.size(); ++position) {
      std::vector<std::string> values{std::to_string(seq), std::to_string(position)};
      pj::document_values(event.documents[position], values);
      run("recording a document", table, sql, values);
    }
  }

  // A prepared statement; a conflict with another gateway's transaction becomes
  // StorageConflict (the writer runs its turn again).
  PostgresqlResult run(std::string_view what, const std::string& name, const std::string& sql,
                       const std::vector<std::string>& values) {
    if (!db_) connect();
    try {
      return db_->exec_prepared(what, name, sql, values);
    } catch (const PostgresqlError& e) {
      if (conflict(e)) throw StorageConflict(e.what());
      throw;
    }
  }

  PostgresqlSettings settings_;
  std::string origin_;
  std::unique_ptr<PostgresqlConnection> db_;
  std::deque<SentTurn> sent_;  // oldest first
  bool broken_ = false;        // a turn was sent in part: the connection goes once sent_ is empty
};

std::string counts_text(const JournalCopyCounts& c) {
  return std::to_string(c.events) + " events, " + std::to_string(c.documents) + " documents, " +
         std::to_string(c.connections) + " sign-ins in " + std::to_string(c.connection_days) +
         " rows, " + std::to_string(c.sign_in_days) + " rows by failure, professional and LPS";
}

// Pending deliveries a stop left count, as at a gateway's start (IndicatorJournal).
int64_t count_pending(JournalStore& from) {
  from.begin();
  try {
    auto ids = from.pending_ids();
    for (auto id : ids)
      from.promote(id);
    from.commit();
    return static_cast<int64_t>(ids.size());
  } catch (...) {
    from.roll_back();
    throw;
  }
}

}  // namespace

JournalCopyCounts copy_journal_to_postgresql(JournalStore& from, const PostgresqlSettings& to,
                                             const std::string& origin) {
  if (origin.empty()) throw StorageError("a move of the journal needs the gateway's name");
  PostgresqlConnection db(to);
  migrate_journal(db);
  JournalCopyCounts source;
  db.in_transaction("the copy", [&] {
    auto already = db.exec("counting",
                           "SELECT (SELECT count(*) FROM indicator_event), "
                           "(SELECT count(*) FROM connection_day)");
    if (already.integer(0, 0) > 0 || already.integer(0, 1) > 0) {
      throw StorageError("the PostgreSQL journal already holds " +
                         std::to_string(already.integer(0, 0)) + " events and " +
                         std::to_string(already.integer(0, 1)) +
                         " rows of sign-ins: a move goes into an empty journal");
    }
    source.pending_recovered = count_pending(from);
    const std::string event_sql = pj::insert_event_sql("indicator_event", true);
    const std::string document_sql = pj::insert_document_sql("indicator_document");
    constexpr int64_t kBatch = 500;
    for (int64_t after = 0;;) {
      auto events = from.read_events(after, kBatch);
      for (const auto& [seq, event] : events) {
        std::vector<std::string> values{std::to_string(seq), origin};
        pj::event_values(event, values);
        if (db.exec_prepared("copying an event", "copy_event", event_sql, values).rows() != 1)
          throw StorageError("the event of seq " + std::to_string(seq) + " has a key seen before");
        for (size_t position = 0; position < event.documents.size(); ++position) {
          std::vector<std::string> document{std::to_string(seq), std::to_string(position)};
          pj::document_values(event.documents[position], document);
          db.exec_prepared("copying a document", "copy_document", document_sql, document);
          ++source.documents;
        }
        ++source.events;
        after = seq;
      }
      if (static_cast<int64_t>(events.size()) < kBatch) break;
    }
    pj::ArrayLiterals connection_columns;
    for (const auto& day : from.connection_days()) {
      add_row(connection_columns, day);
      ++source.connection_days;
      source.connections += day.connections;
    }
    if (!connection_columns.empty()) {
      db.exec_values("copying the sign-ins", pj::insert_connections_unnest_sql(),
                     connection_columns.take());
    }
    pj::ArrayLiterals sign_in_columns;
    for (const auto& day : from.sign_in_days()) {
      add_sign_in_row(sign_in_columns, day);
      ++source.sign_in_days;
    }
    if (!sign_in_columns.empty()) {
      db.exec_values("copying the sign-ins by failure, professional and LPS",
                     pj::insert_sign_ins_unnest_sql(), sign_in_columns.take());
    }
    // New events go on after the ones moved.
    db.exec("moving the events' sequence on",
            "SELECT setval(pg_get_serial_sequence('indicator_event', 'seq'), "
            "GREATEST((SELECT MAX(seq) FROM indicator_event), 1))");
    db.exec("saving the log's position",
            "INSERT INTO journal_position (origin, log_position) VALUES ($1, $2) "
            "ON CONFLICT (origin) DO UPDATE SET log_position = EXCLUDED.log_position",
            {origin, std::to_string(from.log_position())});
    auto counted = db.exec("counting what was copied",
                           "SELECT (SELECT count(*) FROM indicator_event), "
                           "(SELECT count(*) FROM indicator_document), "
                           "(SELECT count(*) FROM connection_day), "
                           "(SELECT COALESCE(SUM(connections), 0) FROM connection_day), "
                           "(SELECT count(*) FROM sign_in_day)");
    JournalCopyCounts copied{counted.integer(0, 0), counted.integer(0, 1),
                             counted.integer(0, 2), counted.integer(0, 3),
                             counted.integer(0, 4), source.pending_recovered};
    if (!(copied == source)) {
      throw StorageError("the copy does not match its source (source: " + counts_text(source) +
                         "; PostgreSQL: " + counts_text(copied) + "): nothing was kept");
    }
  });
  return source;
}

std::unique_ptr<JournalStore> open_postgresql_journal(const PostgresqlSettings& settings,
                                                      const std::string& origin) {
  return std::make_unique<PostgresqlJournalStore>(settings, origin);
}

}  // namespace mssgate::storage
