#pragma once
// A thin RAII layer over SQLite's prepared statements, shared by the stores.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/directory_lookup.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {

// Runs statements without results (pragmas, schema, transactions); throws StorageError naming
// `store` ("directory database", "indicator journal") with SQLite's message.
inline void exec_sql(sqlite3* db, const char* sql, std::string_view store) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw StorageError(std::string(store) + ": " + message);
  }
}

// A prepared statement, reset after each use.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw StorageError(std::string("cannot prepare statement: ") + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // Text that stays where it is, unchanged, until the statement is stepped and reset: SQLite
  // reads it in place instead of copying it.
  Statement& bind_unchanged(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool integer_value(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_INTEGER;
  }
  std::string text(int column) const {
    const unsigned char* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  // Valid until the next step or reset: for reading many rows without a copy each.
  std::string_view text_view(int column) const {
    const unsigned char* p = sqlite3_column_text(stmt_, column);
    if (!p) return {};
    return {reinterpret_cast<const char*>(p),
            static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
  }
  // Ready to be stepped again, its parameters kept (every one is bound again before the next
  // step).
  void rewind() { sqlite3_reset(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class ResetGuard {
 public:
  explicit ResetGuard(Statement& s) : s_(s) {}
  ~ResetGuard() { s_.reset(); }

 private:
  Statement& s_;
};

}  // namespace mssgate::storage
