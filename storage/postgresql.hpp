#pragma once
// PostgreSQL through libpq: one connection, its statements with text parameters and results,
// and its errors as StorageError sentences carrying the SQLSTATE. Used by one thread at a time.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage_error.hpp"

struct pg_conn;
struct pg_result;

namespace mssgate::storage {

// Where the database is and how to sign in: a libpq connection string without the password
// ("host=10.0.0.7 port=5432 dbname=mssgate user=mssgate sslmode=verify-full"), and the
// password read from its file (empty: libpq's other ways, such as a client certificate).
struct PostgresqlSettings {
  std::string conninfo;
  std::string password;
  std::chrono::milliseconds connect_timeout{5000};
  std::string application_name = "mssgate";
  // Past it the server cancels a statement (SQLSTATE 57014); zero: no limit.
  std::chrono::milliseconds statement_timeout{10000};
};

// A failed statement or connection; `sqlstate` is PostgreSQL's error code ("23505"), or empty
// when the connection failed.
class PostgresqlError : public StorageError {
 public:
  PostgresqlError(const std::string& what, std::string sqlstate)
      : StorageError(what), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// SQLSTATEs the stores turn into sentences of their own.
inline constexpr std::string_view kUniqueViolation = "23505";
inline constexpr std::string_view kForeignKeyViolation = "23503";
// Two transactions met: running the same one again may succeed.
inline constexpr std::string_view kSerializationFailure = "40001";
inline constexpr std::string_view kDeadlockDetected = "40P01";

class PostgresqlResult {
 public:
  explicit PostgresqlResult(pg_result* result) : result_(result) {}
  ~PostgresqlResult();
  PostgresqlResult(PostgresqlResult&& other) noexcept : result_(other.result_) {
    other.result_ = nullptr;
  }
  PostgresqlResult& operator=(PostgresqlResult&&) = delete;
  PostgresqlResult(const PostgresqlResult&) = delete;

  int rows() const;
  // The value at (row, column) as text; "" for NULL.
  std::string_view text(int row, int column) const;
  int64_t integer(int row, int column) const;
  bool null(int row, int column) const;
  // Whether the column holds numbers (an integer or numeric type).
  bool number(int column) const;
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t affected() const;

 private:
  friend class PostgresqlConnection;
  pg_result* result_;
};

class PostgresqlConnection {
 public:
  using Parameter = std::optional<std::string_view>;  // nullopt: NULL

  // Connects; throws PostgresqlError with libpq's reason. A connection string that carries a
  // password is refused: passwords live in their file.
  explicit PostgresqlConnection(const PostgresqlSettings& settings);
  ~PostgresqlConnection();
  PostgresqlConnection(const PostgresqlConnection&) = delete;
  PostgresqlConnection& operator=(const PostgresqlConnection&) = delete;

  // One statement with $1, $2... parameters, as text. Throws PostgresqlError ("what": what the
  // caller was doing, then the server's message).
  PostgresqlResult exec(std::string_view what, const std::string& sql,
                        std::initializer_list<Parameter> parameters = {});
  // The same with the parameters in a vector (statements built for many rows).
  PostgresqlResult exec_values(std::string_view what, const std::string& sql,
                               const std::vector<std::string>& values);
  // The same, the statement prepared once per connection under `name` (a statement run many
  // times: the server parses and plans it once).
  PostgresqlResult exec_prepared(std::string_view what, const std::string& name,
                                 const std::string& sql, const std::vector<std::string>& values);
  // Several statements, no parameters (a schema step).
  void exec_script(std::string_view what, const char* sql);

  // Statements sent without waiting for their results (libpq's pipeline mode), so that the
  // server runs them while the caller does something else. The statements sent between two
  // syncs are one transaction: they commit at the sync, or none of them does. prepare() first:
  // a statement is sent by its name. No other statement runs while a sync is unread.
  void prepare(std::string_view what, const std::string& name, const std::string& sql);
  void send_prepared(std::string_view what, const std::string& name,
                     const std::vector<std::string>& values);
  // Ends the transaction sent so far and sends everything (reading what the server answers
  // meanwhile, so that neither side waits on the other).
  void send_sync(std::string_view what);
  // The results of the statements of the oldest unread sync, in order. When one failed, the
  // others are read up to the sync (nothing of that transaction was kept) and its error is
  // thrown.
  std::vector<PostgresqlResult> read_to_sync(std::string_view what);
  // Syncs sent and not yet read.
  int unread_syncs() const { return unread_syncs_; }
  // Ends the transaction under way after a failure; never throws (the failure that led here is
  // the one worth telling).
  void roll_back_quietly() noexcept;
  // Runs `body` in one transaction: committed when it returns, rolled back when it throws (and
  // the exception goes on). `what` names it in errors ("the directory's migration").
  template <class Body>
  void in_transaction(std::string_view what, Body&& body) {
    exec("starting " + std::string(what), "BEGIN");
    try {
      body();
      exec("ending " + std::string(what), "COMMIT");
    } catch (...) {
      roll_back_quietly();
      throw;
    }
  }
  // Whether the connection is still usable (false once the server went away).
  bool usable() const;
  // Where it is connected, for the log: "postgresql://host:port/dbname".
  std::string name() const;

 private:
  void check(std::string_view what, const PostgresqlResult& result) const;
  [[noreturn]] void fail(std::string_view what) const;
  void enter_pipeline(std::string_view what);
  void leave_pipeline();

  pg_conn* connection_ = nullptr;
  int unread_syncs_ = 0;
  std::set<std::string, std::less<>> prepared_;
};

// "postgresql://host:port/dbname" for a connection string (no user, no password), or the string
// itself when libpq cannot read it.
std::string postgresql_location(const std::string& conninfo);

}  // namespace mssgate::storage
