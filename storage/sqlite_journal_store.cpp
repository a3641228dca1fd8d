#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "storage/journal_columns.hpp"
#include "storage/journal_store.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

// 2: the tables of pending events. 3: the acknowledgement columns (added_event_columns()).
// 4: sign_in_day. 5: a sent message's envelope_id (added_event_columns()).
constexpr int kJournalSchemaVersion = 5;
constexpr const char* kWhat = "indicator journal";

class SqliteJournalStore final : public JournalStore {
 public:
  explicit SqliteJournalStore(const std::string& path) : path_(path) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw StorageError("cannot open indicator journal " + path + ": " + message);
    }
    try {
      open_database();
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~SqliteJournalStore() override {
    inserts_.reset();
    save_position_.reset();
    sqlite3_close(db_);
  }

  void begin() override {
    exec_sql(db_, "BEGIN IMMEDIATE", kWhat);
    try {
      // Prepared at the first transaction, kept for the next ones.
      if (!inserts_) inserts_.emplace(db_);
    } catch (...) {
      roll_back();
      throw;
    }
    in_transaction_ = true;
  }
  void commit() override {
    in_transaction_ = false;
    exec_sql(db_, "COMMIT", kWhat);
  }
  void roll_back() noexcept override {
    in_transaction_ = false;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  std::optional<int64_t> add(const IndicatorEvent& event) override { return inserts().add(event); }
  void add(const ConnectionEvent& connection) override { inserts().add(connection); }
  int64_t add_pending(const IndicatorEvent& event) override { return inserts().add_pending(event); }
  std::optional<int64_t> promote(int64_t pending_id) override {
    return inserts().promote(pending_id);
  }
  void drop(int64_t pending_id) override { inserts().drop(pending_id); }

  // Saved at most once a commit: prepared once.
  void save_log_position(int64_t seq) override {
    if (!save_position_) {
      save_position_.emplace(db_,
                             "INSERT INTO journal_meta (name, value) VALUES ('log_position', ?1) "
                             "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    }
    save_position_->bind(1, seq);
    int rc = save_position_->step();
    save_position_->reset();
    if (rc != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
  }
  int64_t log_position() override {
    return single_integer("SELECT value FROM journal_meta WHERE name = 'log_position'");
  }
  std::vector<int64_t> pending_ids() override { return storage::pending_ids(db_); }
  std::vector<std::pair<int64_t, IndicatorEvent>> read_events(int64_t after_seq,
                                                              int64_t limit) override {
    return storage::read_events(db_, after_seq, limit);
  }
  int64_t newest_seq() override {
    return single_integer("SELECT COALESCE(MAX(seq), 0) FROM indicator_event");
  }
  std::vector<ConnectionDay> connection_days() override {
    return storage::read_connection_days(db_);
  }
  std::vector<ConnectionDay> sign_in_days() override { return storage::read_sign_in_days(db_); }

 private:
  // The INSERTs, prepared once.
  JournalInserts& inserts() {
    if (!in_transaction_) throw StorageError("indicator journal: a row outside a transaction");
    return *inserts_;
  }

  int64_t single_integer(const char* sql) {
    Statement statement(db_, sql);
    return statement.step() == SQLITE_ROW ? statement.integer(0) : 0;
  }

  void open_database() {
    sqlite3_busy_timeout(db_, 10000);
    exec_sql(db_, "PRAGMA journal_mode = WAL", kWhat);
    // In WAL mode, FULL syncs the log at every commit: a committed event survives a power cut.
    exec_sql(db_, "PRAGMA synchronous = FULL", kWhat);
    // 16 MiB of pages (SQLite's default is 2): the keys' index of a month of events stays in
    // memory, and an insert does not wait for its pages to be read again.
    exec_sql(db_, "PRAGMA cache_size = -16384", kWhat);
    auto current = single_integer("PRAGMA user_version");
    if (current > kJournalSchemaVersion) {
      throw StorageError("indicator journal " + path_ + " has schema version " +
                         std::to_string(current) + ", newer than this mssgate knows (" +
                         std::to_string(kJournalSchemaVersion) + ")");
    }
    exec_sql(db_, "BEGIN IMMEDIATE", kWhat);
    try {
      // Before the schema, whose indexes name the added columns.
      add_missing_columns("indicator_event");
      add_missing_columns("indicator_pending");
      exec_sql(db_, journal_schema().c_str(), kWhat);
      exec_sql(db_, pending_schema().c_str(), kWhat);
      exec_sql(db_, ("PRAGMA user_version = " + std::to_string(kJournalSchemaVersion)).c_str(),
               kWhat);
      exec_sql(db_, "COMMIT", kWhat);
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  // A table of an earlier journal gains the columns added since, with their defaults.
  void add_missing_columns(const std::string& table) {
    Statement info(db_, ("SELECT name FROM pragma_table_info('" + table + "')").c_str());
    std::vector<std::string> present;
    while (info.step() == SQLITE_ROW)
      present.push_back(info.text(0));
    if (present.empty()) return;  // a new journal: the schema makes the table whole
    for (const auto& [name, type] : added_event_columns()) {
      if (std::find(present.begin(), present.end(), name) != present.end()) continue;
      exec_sql(
          db_,
          ("ALTER TABLE " + table + " ADD COLUMN " + std::string(name) + " " + std::string(type))
              .c_str(),
          kWhat);
    }
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::optional<JournalInserts> inserts_;
  std::optional<Statement> save_position_;
  bool in_transaction_ = false;
};

}  // namespace

std::unique_ptr<JournalStore> open_sqlite_journal(const std::string& path) {
  return std::make_unique<SqliteJournalStore>(path);
}

}  // namespace mssgate::storage
