#include "storage/postgresql.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

namespace mssgate::storage {
namespace {

// libpq's message without its trailing newline.
std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

// The keywords a connection string gives, as libpq reads them.
struct ParsedConninfo {
  std::vector<std::pair<std::string, std::string>> values;
  std::string error;
};

ParsedConninfo parse_conninfo(const std::string& conninfo) {
  ParsedConninfo parsed;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (!options) {
    parsed.error = trimmed(error ? error : "out of memory");
    PQfreemem(error);
    return parsed;
  }
  for (PQconninfoOption* option = options; option->keyword; ++option) {
    if (option->val && *option->val) parsed.values.emplace_back(option->keyword, option->val);
  }
  PQconninfoFree(options);
  return parsed;
}

}  // namespace

std::string postgresql_location(const std::string& conninfo) {
  auto parsed = parse_conninfo(conninfo);
  if (!parsed.error.empty()) return conninfo;
  std::string host = "localhost", port = "5432", dbname;
  for (const auto& [key, value] : parsed.values) {
    if (key == "host" || key == "hostaddr") host = value;
    if (key == "port") port = value;
    if (key == "dbname") dbname = value;
  }
  return "postgresql://" + host + ":" + port + "/" + dbname;
}

PostgresqlResult::~PostgresqlResult() {
  PQclear(result_);
}

int PostgresqlResult::rows() const {
  return PQntuples(result_);
}

std::string_view PostgresqlResult::text(int row, int column) const {
  return {PQgetvalue(result_, row, column), static_cast<size_t>(PQgetlength(result_, row, column))};
}

int64_t PostgresqlResult::integer(int row, int column) const {
  std::string_view digits = text(row, column);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size())
    throw PostgresqlError("not an integer: " + std::string(digits), "");
  return value;
}

bool PostgresqlResult::null(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

bool PostgresqlResult::number(int column) const {
  // pg_type's OIDs: int8, int2, int4, numeric.
  switch (PQftype(result_, column)) {
    case 20:
    case 21:
    case 23:
    case 1700:
      return true;
    default:
      return false;
  }
}

int64_t PostgresqlResult::affected() const {
  const char* count = PQcmdTuples(result_);
  return count && *count ? std::stoll(count) : 0;
}

PostgresqlConnection::PostgresqlConnection(const PostgresqlSettings& settings) {
  auto parsed = parse_conninfo(settings.conninfo);
  if (!parsed.error.empty())
    throw PostgresqlError("not a PostgreSQL connection string: " + parsed.error, "");
  for (const auto& [key, value] : parsed.values) {
    if (key == "password")
      throw PostgresqlError(
          "the PostgreSQL connection string holds a password: put it in its file instead", "");
  }
  // The connection string's keywords, then the password, the timeout and the name: the last
  // value of a keyword is the one libpq keeps.
  std::vector<const char*> keywords;
  std::vector<const char*> values;
  for (const auto& [key, value] : parsed.values) {
    keywords.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  std::string timeout = std::to_string(std::max<int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(settings.connect_timeout).count()));
  if (!settings.password.empty()) {
    keywords.push_back("password");
    values.push_back(settings.password.c_str());
  }
  keywords.push_back("connect_timeout");
  values.push_back(timeout.c_str());
  keywords.push_back("application_name");
  values.push_back(settings.application_name.c_str());
  // A server gone silent (a host down, a network cut) is found by TCP keepalives within about
  // 25 s, unless the connection string sets its own.
  const std::pair<const char*, const char*> keepalives[] = {
      {"keepalives_idle", "10"}, {"keepalives_interval", "5"}, {"keepalives_count", "3"}};
  for (const auto& keepalive : keepalives) {
    bool given = std::any_of(parsed.values.begin(), parsed.values.end(),
                             [&](const auto& kv) { return kv.first == keepalive.first; });
    if (given) continue;
    keywords.push_back(keepalive.first);
    values.push_back(keepalive.second);
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  connection_ = PQconnectdbParams(keywords.data(), values.data(), 0);
  if (connection_) {
    // The server's notices (a table that already exists, skipped) are not errors: libpq would
    // print them on standard error.
    PQsetNoticeProcessor(
        connection_, [](void*, const char*) {}, nullptr);
  }
  if (!connection_ || PQstatus(connection_) != CONNECTION_OK) {
    std::string reason = connection_ ? trimmed(PQerrorMessage(connection_)) : "out of memory";
    PQfinish(connection_);
    connection_ = nullptr;
    throw PostgresqlError(
        "cannot connect to PostgreSQL " + postgresql_location(settings.conninfo) + ": " + reason,
        "");
  }
  if (settings.statement_timeout.count() > 0) {
    exec("setting the statement timeout",
         "SET statement_timeout = " + std::to_string(settings.statement_timeout.count()));
  }
}

PostgresqlConnection::~PostgresqlConnection() {
  PQfinish(connection_);
}

void PostgresqlConnection::roll_back_quietly() noexcept {
  if (!usable()) return;
  PQclear(PQexec(connection_, "ROLLBACK"));
}

bool PostgresqlConnection::usable() const {
  return connection_ && PQstatus(connection_) == CONNECTION_OK;
}

std::string PostgresqlConnection::name() const {
  return std::string("postgresql://") + PQhost(connection_) + ":" + PQport(connection_) + "/" +
         PQdb(connection_);
}

PostgresqlResult PostgresqlConnection::exec(std::string_view what, const std::string& sql,
                                            std::initializer_list<Parameter> parameters) {
  std::vector<std::string> texts;
  texts.reserve(parameters.size());
  std::vector<const char*> values;
  for (const auto& parameter : parameters) {
    if (parameter) {
      texts.emplace_back(*parameter);
      values.push_back(texts.back().c_str());
    } else {
      values.push_back(nullptr);
    }
  }
  PostgresqlResult result(PQexecParams(connection_, sql.c_str(), static_cast<int>(values.size()),
                                       nullptr, values.data(), nullptr, nullptr, 0));
  check(what, result);
  return result;
}

PostgresqlResult PostgresqlConnection::exec_values(std::string_view what, const std::string& sql,
                                                   const std::vector<std::string>& values) {
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values)
    pointers.push_back(value.c_str());
  PostgresqlResult result(PQexecParams(connection_, sql.c_str(), static_cast<int>(pointers.size()),
                                       nullptr, pointers.data(), nullptr, nullptr, 0));
  check(what, result);
  return result;
}

PostgresqlResult PostgresqlConnection::exec_prepared(std::string_view what, const std::string& name,
                                                     const std::string& sql,
                                                     const std::vector<std::string>& values) {
  if (!prepared_.contains(name)) {
    PostgresqlResult prepared(PQprepare(connection_, name.c_str(), sql.c_str(),
                                        static_cast<int>(values.size()), nullptr));
    check(what, prepared);
    prepared_.insert(name);
  }
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values)
    pointers.push_back(value.c_str());
  PostgresqlResult result(PQexecPrepared(connection_, name.c_str(),
                                         static_cast<int>(pointers.size()), pointers.data(),
                                         nullptr, nullptr, 0));
  check(what, result);
  return result;
}

void PostgresqlConnection::check(std::string_view what, const PostgresqlResult& result) const {
  pg_result* raw = result.result_;
  ExecStatusType status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = trimmed(raw ? PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY) : nullptr);
  if (message.empty()) message = trimmed(PQerrorMessage(connection_));
  throw PostgresqlError(std::string(what) + ": " + message, state ? state : "");
}

void PostgresqlConnection::fail(std::string_view what) const {
  throw PostgresqlError(std::string(what) + ": " + trimmed(PQerrorMessage(connection_)), "");
}

void PostgresqlConnection::prepare(std::string_view what, const std::string& name,
                                   const std::string& sql) {
  if (prepared_.contains(name)) return;
  // The parameters' number and types are the ones the statement implies.
  PostgresqlResult prepared(PQprepare(connection_, name.c_str(), sql.c_str(), 0, nullptr));
  check(what, prepared);
  prepared_.insert(name);
}

void PostgresqlConnection::enter_pipeline(std::string_view what) {
  if (PQpipelineStatus(connection_) != PQ_PIPELINE_OFF) return;
  if (PQenterPipelineMode(connection_) != 1 || PQsetnonblocking(connection_, 1) != 0) fail(what);
}

void PostgresqlConnection::leave_pipeline() {
  PQsetnonblocking(connection_, 0);
  PQexitPipelineMode(connection_);
}

void PostgresqlConnection::send_prepared(std::string_view what, const std::string& name,
                                         const std::vector<std::string>& values) {
  if (!prepared_.contains(name))
    throw PostgresqlError(std::string(what) + ": the statement " + name + " is not prepared", "");
  enter_pipeline(what);
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values)
    pointers.push_back(value.c_str());
  if (PQsendQueryPrepared(connection_, name.c_str(), static_cast<int>(pointers.size()),
                          pointers.data(), nullptr, nullptr, 0) != 1)
    fail(what);
}

void PostgresqlConnection::send_sync(std::string_view what) {
  enter_pipeline(what);
  if (PQpipelineSync(connection_) != 1) fail(what);
  ++unread_syncs_;
  // The server may be sending the results of an earlier transaction while this one is sent:
  // reading them into libpq's buffer keeps both sides going.
  for (;;) {
    int flushed = PQflush(connection_);
    if (flushed == 0) return;
    if (flushed < 0) fail(what);
    pollfd socket{PQsocket(connection_), POLLIN | POLLOUT, 0};
    if (poll(&socket, 1, -1) < 0 && errno != EINTR) fail(what);
    if ((socket.revents & POLLIN) && PQconsumeInput(connection_) != 1) fail(what);
  }
}

std::vector<PostgresqlResult> PostgresqlConnection::read_to_sync(std::string_view what) {
  if (unread_syncs_ == 0)
    throw PostgresqlError(std::string(what) + ": no transaction was sent", "");
  std::vector<PostgresqlResult> results;
  std::optional<PostgresqlError> failure;
  for (int nulls = 0;;) {
    // PQgetResult waits for the server; a null result ends one statement's results (two in a
    // row: nothing more is coming, the connection failed).
    pg_result* raw = PQgetResult(connection_);
    if (!raw) {
      if (!usable() || ++nulls > 1) {
        unread_syncs_ = 0;
        if (failure) throw *failure;
        fail(what);
      }
      continue;
    }
    nulls = 0;
    PostgresqlResult result(raw);
    ExecStatusType status = PQresultStatus(raw);
    if (status == PGRES_PIPELINE_SYNC) break;
    if (status == PGRES_PIPELINE_ABORTED) continue;  // skipped after a failure
    try {
      check(what, result);
      results.push_back(std::move(result));
    } catch (const PostgresqlError& e) {
      if (!failure) failure = e;
    }
  }
  if (--unread_syncs_ == 0) leave_pipeline();
  if (failure) throw *failure;
  return results;
}

void PostgresqlConnection::exec_script(std::string_view what, const char* sql) {
  // PQexec runs every statement and returns the last result, or the first error's.
  PostgresqlResult result(PQexec(connection_, sql));
  check(what, result);
}

}  // namespace mssgate::storage
