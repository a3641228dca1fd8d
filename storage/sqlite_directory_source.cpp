#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"
#include "storage/sqlite_directory_schema.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {

std::shared_ptr<const DirectorySnapshot> load_snapshot(DirectorySource& source) {
  DirectorySnapshotBuilder builder;
  source.read_all(builder);
  return builder.build();
}

namespace {

constexpr const char* kWhat = "directory database";

// Which file a path names: a file replaced at the same path is another file.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw StorageError("cannot read the directory database " + path + ": " + std::strerror(errno));
  }
  return {st.st_dev, st.st_ino};
}

class SqliteDirectorySource final : public DirectorySource {
 public:
  explicit SqliteDirectorySource(const std::string& path) : path_(path) {
    open_sqlite_directory(path).reset();  // creates or migrates it, as a start always did
    open();
  }
  ~SqliteDirectorySource() override { sqlite3_close(db_); }

  void read_all(DirectorySnapshotBuilder& builder) override {
    if (!db_) open();
    // A deferred transaction: every SELECT below reads the same state of the database, while
    // writers go on (WAL).
    exec_sql(db_, "BEGIN", kWhat);
    try {
      check_schema();
      // Inside the transaction: the version of exactly what is read.
      int64_t version = data_version();
      builder.reserve(count_rows());
      read_mailboxes(builder);
      read_bindings(builder);
      read_senders(builder);
      read_attachments(builder);
      exec_sql(db_, "COMMIT", kWhat);
      read_version_ = version;
    } catch (const StorageError& e) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StorageError("cannot read the directory database " + path_ + ": " + e.what());
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  bool changed() override {
    if (!db_ || identify(path_) != identity_) {
      open();
      return true;
    }
    if (!read_version_) return true;
    try {
      return data_version() != *read_version_;
    } catch (const StorageError& e) {
      throw StorageError("cannot read the directory database " + path_ + ": " + e.what());
    }
  }

  std::string name() const override { return "sqlite:" + path_; }

 private:
  // Without SQLITE_OPEN_CREATE: a database that went away is an error, not an empty directory.
  // (Re)opens the connection; on failure there is none, and the next call tries again.
  void open() {
    sqlite3_close(db_);
    db_ = nullptr;
    read_version_.reset();
    FileIdentity identity = identify(path_);
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path_.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      std::string message = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw StorageError("cannot open the directory database " + path_ + ": " + message);
    }
    sqlite3_busy_timeout(db, 5000);
    try {
      exec_sql(db, "PRAGMA query_only = ON", kWhat);
    } catch (...) {
      sqlite3_close(db);
      throw;
    }
    db_ = db;
    identity_ = identity;
  }

  [[noreturn]] void fail(const char* doing) const {
    throw StorageError(std::string(doing) + ": " + sqlite3_errmsg(db_));
  }

  int64_t single_integer(const char* sql, const char* doing) {
    Statement s(db_, sql);
    if (s.step() != SQLITE_ROW) fail(doing);
    return s.integer(0);
  }

  int64_t data_version() {
    return single_integer("PRAGMA data_version", "asking whether it changed");
  }

  void check_schema() {
    int64_t version = single_integer("PRAGMA user_version", "reading the schema version");
    if (version != sqlite_directory_schema::kVersion) {
      throw StorageError("schema version " + std::to_string(version) + ", this mssgate reads " +
                         std::to_string(sqlite_directory_schema::kVersion) +
                         " (mssgatectl or a restart migrates it)");
    }
  }

  // Sizes to reserve: cheap counts (every professional, not only those attached: counting
  // distinct ones would cost more than it saves).
  DirectoryCounts count_rows() {
    Statement s(db_,
                "SELECT (SELECT count(*) FROM mailbox), (SELECT count(*) FROM certificate_binding),"
                " (SELECT count(*) FROM holder),"
                " (SELECT count(*) FROM mailbox_holder), (SELECT count(*) FROM mailbox_sender)");
    if (s.step() != SQLITE_ROW) fail("counting the rows");
    auto count = [&](int column) { return static_cast<size_t>(s.integer(column)); };
    return {count(0), count(1), count(2), count(3), count(4)};
  }

  // Runs `sql` and hands each row to `row`.
  template <class Row>
  void each_row(const char* sql, const char* doing, Row&& row) {
    Statement s(db_, sql);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      row(s);
    if (rc != SQLITE_DONE) fail(doing);
  }

  // Unknown types and statuses are read as the store reads them (APP, closed); unknown match
  // kinds and roles are left out, as the store's queries never return them.
  void read_mailboxes(DirectorySnapshotBuilder& builder) {
    each_row(
        "SELECT address, type, status FROM mailbox", "reading the mailboxes",
        [&](const Statement& s) {
          builder.add_mailbox(
              s.text_view(0),
              protocol::parse_mailbox_type(s.text_view(1)).value_or(protocol::MailboxType::kApp),
              protocol::parse_mailbox_status(s.text_view(2))
                  .value_or(protocol::MailboxStatus::kClosed));
        });
  }

  void read_bindings(DirectorySnapshotBuilder& builder) {
    each_row("SELECT match_kind, match_value, mailbox FROM certificate_binding",
             "reading the certificate bindings", [&](const Statement& s) {
               if (auto match = parse_certificate_match(s.text_view(0)))
                 builder.add_binding(*match, s.text_view(1), s.text_view(2));
             });
  }

  void read_senders(DirectorySnapshotBuilder& builder) {
    each_row("SELECT mailbox, sender FROM mailbox_sender", "reading the allowed senders",
             [&](const Statement& s) { builder.add_sender(s.text_view(0), s.text_view(1)); });
  }

  void read_attachments(DirectorySnapshotBuilder& builder) {
    each_row("SELECT holder, mailbox, role FROM mailbox_holder", "reading the holders",
             [&](const Statement& s) {
               if (auto role = parse_holder_role(s.text_view(2)))
                 builder.add_attachment(s.text_view(0), s.text_view(1), *role);
             });
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  FileIdentity identity_;
  std::optional<int64_t> read_version_;  // data_version of the last read_all
};

}  // namespace

std::unique_ptr<DirectorySource> open_sqlite_directory_source(const std::string& path) {
  return std::make_unique<SqliteDirectorySource>(path);
}

}  // namespace mssgate::storage
