#include "storage/indicator_reports.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <map>
#include <set>

#include "storage/indicator_event.hpp"
#include "storage/indicator_report_columns.hpp"
#include "storage/journal_columns.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {

// What the report queries write differently for SQLite and PostgreSQL. Parameters are written
// ?1, ?2... for both: the PostgreSQL reader numbers them its way.
struct ReportDialect {
  bool postgresql = false;

  // The distinct values of a group, comma-separated.
  std::string distinct_list(const std::string& expression) const {
    if (!postgresql) return "GROUP_CONCAT(DISTINCT " + expression + ")";
    return "string_agg(DISTINCT " + expression + ", ',' ORDER BY " + expression + ")";
  }
  // A time in milliseconds as "2026-01-31T09:15:00Z".
  std::string utc_time(const std::string& milliseconds) const {
    if (!postgresql)
      return "strftime('%Y-%m-%dT%H:%M:%SZ', " + milliseconds + " / 1000, 'unixepoch')";
    return "to_char(to_timestamp(" + milliseconds +
           " / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
  }
  // Sorted by bytes, as SQLite does, whatever the database's collation.
  std::string sorted(const std::string& expression) const {
    return postgresql ? expression + " COLLATE \"C\"" : expression;
  }
};
constexpr ReportDialect kSqlite{false};
constexpr ReportDialect kPostgresql{true};

namespace {

namespace json = boost::json;
using Expressions = std::map<std::string, std::string, std::less<>>;

std::string count_if(std::string_view condition) {
  return "SUM(CASE WHEN " + std::string(condition) + " THEN 1 ELSE 0 END)";
}
std::string sum_if(std::string_view condition, std::string_view value) {
  return "SUM(CASE WHEN " + std::string(condition) + " THEN " + std::string(value) + " ELSE 0 END)";
}
std::string both(std::string_view first, std::string_view second) {
  return std::string(first) + " AND " + std::string(second);
}

// The journal's columns, named by the column table, as `alias.column` when the query joins.
template <class Field>
std::string column(Field field, std::string_view alias = "") {
  return (alias.empty() ? "" : std::string(alias) + ".") + std::string(column_name(field));
}
// "column = 'word'": the word as the journal stores it.
template <class Field, class Word>
std::string is(Field field, Word word, std::string_view alias = "") {
  return column(field, alias) + " = '" + std::string(to_string(word)) + "'";
}
std::string flag_set(EventField field) {
  return column(field) + " = 1";
}
std::string not_empty(EventField field) {
  return column(field) + " <> ''";
}
std::string distinct_texts(const ReportDialect& d, EventField field) {
  return "COALESCE(" + d.distinct_list("NULLIF(" + column(field) + ", '')") + ", '')";
}

// The messages report's columns that depend on neither direction, or on one only.
void add_message_columns(const ReportDialect& d, Expressions& out, const std::string& sent,
                         const std::string& received) {
  using enum EventField;
  out.insert({
      {"month", "?3"},
      {"day", column(kDay)},
      {"mailbox", column(kMailbox)},
      {"mailbox_type", "MAX(" + column(kMailboxType) + ")"},
      {"sent", count_if(sent)},
      {"received", count_if(received)},
      {"sent_recipients", sum_if(sent, column(kRecipients))},
      {"recipients_same_operator", sum_if(sent, column(kToSameOperator))},
      {"recipients_other_operator", sum_if(sent, column(kToOtherOperator))},
      {"recipients_patient", sum_if(sent, column(kToPatient))},
      {"sent_to_patient", count_if(both(sent, column(kToPatient) + " > 0"))},
      {"received_from_same_operator",
       count_if(both(received, is(kCounterpart, Counterpart::kSameOperator)))},
      {"received_from_other_operator",
       count_if(both(received, is(kCounterpart, Counterpart::kOtherOperator)))},
      {"received_from_patient", count_if(both(received, is(kCounterpart, Counterpart::kPatient)))},
      {"sent_claimed_codecda", count_if(both(sent, not_empty(kClaimCodecda)))},
      {"sent_claimed_ins_o", count_if(both(sent, is(kClaimIns, ClaimedIns::kYes)))},
      {"sent_claimed_ins_n", count_if(both(sent, is(kClaimIns, ClaimedIns::kNo)))},
      {"sent_mes_fin", count_if(both(sent, flag_set(kMesFin)))},
      {"nil", distinct_texts(d, kNil)},
      {"azp", distinct_texts(d, kAzp)},
  });
}

// The columns counted alike in both directions: "sent_…" and "received_…".
void add_per_direction_columns(Expressions& out, const std::string& prefix,
                               const std::string& direction) {
  using enum EventField;
  auto where = [&](const std::string& condition) { return count_if(both(direction, condition)); };
  out.insert({
      {prefix + "_with_xdm", where(flag_set(kXdm))},
      {prefix + "_with_cda", where(column(kDocuments) + " > 0")},
      {prefix + "_documents", sum_if(direction, column(kDocuments))},
      {prefix + "_qualified_ins", where(is(kIns, InsClass::kQualified))},
      {prefix + "_unqualified_ins", where(is(kIns, InsClass::kUnqualified))},
      {prefix + "_malformed_ins", where(is(kIns, InsClass::kMalformed))},
      {prefix + "_test_ins", where(is(kIns, InsClass::kTest))},
      {prefix + "_with_mismatch", where(not_empty(kMismatches))},
      {prefix + "_uninspectable", where(column(kInspected) + " = 0")},
      {prefix + "_mdn", where(flag_set(kMdn))},
      {prefix + "_bytes", sum_if(direction, column(kSize))},
  });
}

// Each column of the messages report as an aggregate over indicator_event rows. ?3 is the
// month (or the day, in the daily view).
Expressions build_message_expressions(const ReportDialect& d) {
  std::string sent = is(EventField::kDirection, Direction::kSent);
  std::string received = is(EventField::kDirection, Direction::kReceived);
  Expressions out;
  add_message_columns(d, out, sent, received);
  add_per_direction_columns(out, "sent", sent);
  add_per_direction_columns(out, "received", received);
  return out;
}

const Expressions& message_expressions(const ReportDialect& d) {
  static const Expressions sqlite = build_message_expressions(kSqlite);
  static const Expressions postgresql = build_message_expressions(kPostgresql);
  return d.postgresql ? postgresql : sqlite;
}

// The sign-ins of the row's mailbox (m.mailbox) in the month, from sign_in_day: `what` over
// its rows, or over those where `condition` holds.
std::string month_sign_ins(std::string_view what, std::string_view condition = {}) {
  using enum SignInField;
  auto s = [](SignInField field) { return column(field, "s"); };
  return "(SELECT " + std::string(what) + " FROM sign_in_day s WHERE " + s(kMailbox) +
         " = m.mailbox AND " + s(kDay) + " BETWEEN ?1 AND ?2" +
         (condition.empty() ? "" : " AND " + std::string(condition)) + ")";
}

// The refusals of the row's mailbox in the month, "reason=count" in the reasons' order.
std::string failure_reasons(const ReportDialect& d) {
  using enum SignInField;
  std::string failure = column(kFailure, "s");
  std::string by_reason = "SELECT " + failure + " AS reason, SUM(" + column(kSignIns, "s") +
                          ") AS refusals FROM sign_in_day s WHERE " + column(kMailbox, "s") +
                          " = m.mailbox AND " + column(kDay, "s") + " BETWEEN ?1 AND ?2 AND " +
                          failure + " <> '' GROUP BY " + failure;
  std::string item = "reason || '=' || refusals";
  std::string list = d.postgresql
                         ? "string_agg(" + item + ", ',' ORDER BY " + d.sorted("reason") + ")"
                         : "GROUP_CONCAT(" + item + ", ',')";
  return "COALESCE((SELECT " + list + " FROM (" + by_reason +
         (d.postgresql ? "" : " ORDER BY reason") + ") f), '')";
}

// ?1 and ?2 are the month's first and last days: a mailbox's last sign-in may be older. The
// rows are the mailboxes that signed in up to the month's end, or were refused in the month
// (m.mailbox), each joined with its connection_day rows (c, none for a mailbox only refused).
Expressions build_connection_expressions(const ReportDialect& d) {
  {
    using enum ConnectionField;
    auto c = [](ConnectionField field) { return column(field, "c"); };
    std::string failed = column(SignInField::kFailure, "s") + " <> ''";
    std::string succeeded = column(SignInField::kFailure, "s") + " = ''";
    auto in_month = [&](const std::string& condition) {
      return "SUM(CASE WHEN " + both(c(kDay) + " >= ?1", condition) + " THEN " + c(kConnections) +
             " ELSE 0 END)";
    };
    return Expressions{
        {"month", "?3"},
        {"mailbox", "m.mailbox"},
        {"mailbox_type", "COALESCE(MAX(" + c(kMailboxType) + "), " +
                             month_sign_ins("MAX(" + column(SignInField::kMailboxType, "s") + ")") +
                             ")"},
        {"last_connection", "MAX(" + c(kDay) + ")"},
        {"last_connection_time", d.utc_time("MAX(" + c(kLastAtMs) + ")")},
        {"auth_mode", "(SELECT " + column(kAuthMode, "l") + " FROM connection_day l WHERE " +
                          column(kMailbox, "l") + " = m.mailbox AND " + column(kDay, "l") +
                          " <= ?2 ORDER BY " + column(kLastAtMs, "l") + " DESC LIMIT 1)"},
        {"auth_modes", d.distinct_list(c(kAuthMode))},
        {"protocols", d.distinct_list(c(kProtocol))},
        {"connections",
         "SUM(CASE WHEN " + c(kDay) + " >= ?1 THEN " + c(kConnections) + " ELSE 0 END)"},
        {"psc_connections", in_month(is(kAuthMode, AuthMode::kPsc, "c"))},
        {"certificate_connections", in_month(is(kAuthMode, AuthMode::kCertificate, "c"))},
        {"imap_connections", in_month(is(kProtocol, SessionProtocol::kImap, "c"))},
        {"submission_connections", in_month(is(kProtocol, SessionProtocol::kSubmission, "c"))},
        {"days_connected",
         "COUNT(DISTINCT CASE WHEN " + c(kDay) + " >= ?1 THEN " + c(kDay) + " END)"},
        {"failed_sign_ins",
         "COALESCE(" + month_sign_ins("SUM(" + column(SignInField::kSignIns, "s") + ")", failed) +
             ", 0)"},
        {"failure_reasons", failure_reasons(d)},
        {"professionals",
         month_sign_ins("COUNT(DISTINCT " + column(SignInField::kProfessional, "s") + ")",
                        succeeded + " AND " + column(SignInField::kProfessional, "s") + " <> ''")},
        {"lps",
         "COALESCE(" +
             month_sign_ins(d.distinct_list(column(SignInField::kLps, "s")),
                            succeeded + " AND " + column(SignInField::kLps, "s") + " <> ''") +
             ", '')"},
    };
  }
}

const Expressions& connection_expressions(const ReportDialect& d) {
  static const Expressions sqlite = build_connection_expressions(kSqlite);
  static const Expressions postgresql = build_connection_expressions(kPostgresql);
  return d.postgresql ? postgresql : sqlite;
}

// The per-LPS report: the messages sent in a month, grouped by the LPS that sent them (its
// X-MSS-NIL and its token's client id), with each mismatch word counted apart.
Expressions build_lps_expressions() {
  using enum EventField;
  std::string sent = is(kDirection, Direction::kSent);
  Expressions out{
      {"month", "?3"},
      {"nil", column(kNil)},
      {"azp", column(kAzp)},
      {"sent", count_if(sent)},
      {"mailboxes", "COUNT(DISTINCT " + column(kMailbox) + ")"},
      {"sent_without_nil", count_if(both(sent, column(kNil) + " = ''"))},
  };
  add_per_direction_columns(out, "sent", sent);
  for (auto m : protocol::kAllMismatches) {
    std::string word(protocol::to_string(m));
    // The words are kept comma-separated: a word is found whole, never inside another.
    out.emplace("mismatch_" + word, count_if(both(sent, "(',' || " + column(kMismatches) +
                                                            " || ',') LIKE '%," + word + ",%'")));
  }
  return out;
}

const Expressions& lps_expressions() {
  static const Expressions expressions = build_lps_expressions();
  return expressions;
}

const Expressions& document_expressions() {
  static const Expressions expressions = [] {
    auto e = [](EventField field) { return column(field, "e"); };
    auto d = [](DocumentField field) { return column(field, "d"); };
    auto documents_with = [&](InsClass ins) { return count_if(is(DocumentField::kIns, ins, "d")); };
    return Expressions{
        {"month", "?3"},
        {"day", e(EventField::kDay)},
        {"mailbox", e(EventField::kMailbox)},
        {"mailbox_type", "MAX(" + e(EventField::kMailboxType) + ")"},
        {"direction", e(EventField::kDirection)},
        {"code", d(DocumentField::kCode)},
        {"code_system", d(DocumentField::kCodeSystem)},
        {"documents", "COUNT(*)"},
        {"qualified_ins", documents_with(InsClass::kQualified)},
        {"unqualified_ins", documents_with(InsClass::kUnqualified)},
        {"malformed_ins", documents_with(InsClass::kMalformed)},
        {"test_ins", documents_with(InsClass::kTest)},
    };
  }();
  return expressions;
}

std::string by_direction_and_code(const ReportDialect& d) {
  return d.sorted(column(EventField::kDirection, "e")) + ", " +
         d.sorted(column(DocumentField::kCode, "d"));
}

// The documents joined with their events.
std::string documents_of_events() {
  return " FROM indicator_document d JOIN indicator_event e ON e.seq = d.seq WHERE " +
         column(EventField::kDay, "e") + " BETWEEN ?1 AND ?2";
}

std::string select_list(const std::map<std::string, std::string, std::less<>>& expressions,
                        const std::vector<std::string>& columns) {
  std::string out;
  for (const auto& name : columns) {
    auto it = expressions.find(name);
    if (it == expressions.end()) throw StorageError("unknown report column \"" + name + "\"");
    out += (out.empty() ? "" : ", ") + it->second;
  }
  return out;
}

std::vector<std::string> or_default(const std::vector<std::string>& columns,
                                    const std::vector<std::string_view>& defaults) {
  if (!columns.empty()) return columns;
  return {defaults.begin(), defaults.end()};
}

bool numeric(const std::string& s) {
  return !s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

std::string_view to_string(Report report) {
  switch (report) {
    case Report::kConnections:
      return "connections";
    case Report::kMessages:
      return "messages";
    case Report::kDocuments:
      return "documents";
    case Report::kLps:
      return "lps";
    case Report::kAcknowledgements:
      return "acknowledgements";
  }
  return "?";
}

bool month_days(const std::string& month, std::string& first, std::string& last) {
  if (month.size() != 7 || month[4] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6})
    if (month[i] < '0' || month[i] > '9') return false;
  int year = std::stoi(month.substr(0, 4));
  int number = std::stoi(month.substr(5, 2));
  if (number < 1 || number > 12) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int days = kDays[number - 1];
  if (number == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) days = 29;
  first = month + "-01";
  last = month + "-" + std::to_string(days);
  return true;
}

IndicatorReader::IndicatorReader(const std::string& journal_path) {
  if (sqlite3_open_v2(journal_path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError("cannot open indicator journal " + journal_path + ": " + message);
  }
  sqlite3_busy_timeout(db_, 10000);
  Statement check(db_, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'indicator_event'");
  if (check.step() != SQLITE_ROW || check.integer(0) == 0) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError(journal_path + " is not an indicator journal (no events table)");
  }
  // A journal no gateway of this version has opened yet has no sign_in_day: it recorded no
  // refusal, professional or LPS, and reads as such from an empty temporary table.
  Statement sign_ins(db_, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sign_in_day'");
  if (sign_ins.step() == SQLITE_ROW && sign_ins.integer(0) == 0) {
    std::string temporary = sign_in_day_schema();
    temporary.replace(0, std::string_view("CREATE TABLE").size(), "CREATE TEMP TABLE");
    exec_sql(db_, temporary.c_str(), "indicator journal");
  }
}

IndicatorReader::IndicatorReader(const PostgresqlSettings& settings)
    : postgresql_(std::make_unique<PostgresqlConnection>(settings)) {
  postgresql_->exec("opening the journal for reading", "SET default_transaction_read_only = on");
  auto found =
      postgresql_->exec("finding the journal", "SELECT to_regclass('indicator_event') IS NOT NULL");
  if (found.text(0, 0) != "t") {
    throw StorageError(postgresql_->name() +
                       " holds no indicator journal yet: no gateway has recorded to it");
  }
}

IndicatorReader::~IndicatorReader() {
  sqlite3_close(db_);
}

namespace {

// ?1, ?2... as PostgreSQL's $1::text, $2::text..., numbered in the order they first appear, and
// the values they take: PostgreSQL refuses a parameter a statement does not use.
std::string numbered_for_postgresql(const std::string& sql, const std::vector<std::string>& given,
                                    std::vector<std::string>& values) {
  std::string out;
  std::vector<size_t> numbers;  // the ?N of each $k
  for (size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] != '?' || i + 1 >= sql.size() || sql[i + 1] < '1' || sql[i + 1] > '9') {
      out += sql[i];
      continue;
    }
    size_t n = static_cast<size_t>(sql[i + 1] - '0');
    ++i;
    auto at = std::find(numbers.begin(), numbers.end(), n);
    if (at == numbers.end()) {
      if (n > given.size()) throw StorageError("report query: no value for ?" + std::to_string(n));
      numbers.push_back(n);
      values.push_back(given[n - 1]);
      at = numbers.end() - 1;
    }
    out += "$" + std::to_string(at - numbers.begin() + 1) + "::text";
  }
  return out;
}

}  // namespace

const ReportDialect& IndicatorReader::dialect() const {
  return postgresql_ ? kPostgresql : kSqlite;
}

ReportTable IndicatorReader::run(const std::string& sql, const std::vector<std::string>& parameters,
                                 const std::vector<std::string>& columns) {
  ReportTable table;
  table.columns = columns;
  table.counts.assign(columns.size(), false);
  if (postgresql_) {
    std::vector<std::string> values;
    auto result = postgresql_->exec_values(
        "report query", numbered_for_postgresql(sql, parameters, values), values);
    for (size_t i = 0; i < columns.size(); ++i)
      table.counts[i] = result.number(static_cast<int>(i));
    for (int r = 0; r < result.rows(); ++r) {
      std::vector<std::string> row;
      for (size_t i = 0; i < columns.size(); ++i)
        row.emplace_back(result.text(r, static_cast<int>(i)));
      table.rows.push_back(std::move(row));
    }
    return table;
  }
  Statement s(db_, sql.c_str());
  for (size_t i = 0; i < parameters.size(); ++i)
    s.bind(static_cast<int>(i + 1), parameters[i]);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (size_t i = 0; i < columns.size(); ++i) {
      // SQLite says what a value is: the aggregates are integers, the rest text.
      if (s.integer_value(static_cast<int>(i))) table.counts[i] = true;
      row.push_back(s.text(static_cast<int>(i)));
    }
    table.rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) throw StorageError(std::string("report query: ") + sqlite3_errmsg(db_));
  return table;
}

ReportTable IndicatorReader::monthly(Report report, const std::string& month,
                                     const std::vector<std::string>& requested) {
  std::string first, last;
  if (!month_days(month, first, last)) throw StorageError("\"" + month + "\" is not YYYY-MM");
  const ReportDialect& d = dialect();
  switch (report) {
    case Report::kMessages: {
      auto columns = or_default(requested, kMessagesDefault);
      std::string mailbox = column(EventField::kMailbox);
      return run("SELECT " + select_list(message_expressions(d), columns) +
                     " FROM indicator_event WHERE " + column(EventField::kDay) +
                     " BETWEEN ?1 AND ?2 GROUP BY " + mailbox + " ORDER BY " + d.sorted(mailbox),
                 {first, last, month}, columns);
    }
    case Report::kConnections: {
      auto columns = or_default(requested, kConnectionsDefault);
      using enum ConnectionField;
      std::string mailboxes = "(SELECT " + column(kMailbox) +
                              " AS mailbox FROM connection_day WHERE " + column(kDay) +
                              " <= ?2 UNION SELECT " + column(SignInField::kMailbox) +
                              " FROM sign_in_day WHERE " + column(SignInField::kDay) +
                              " BETWEEN ?1 AND ?2 AND " + column(SignInField::kMailbox) + " <> '')";
      return run("SELECT " + select_list(connection_expressions(d), columns) + " FROM " +
                     mailboxes + " m LEFT JOIN connection_day c ON " + column(kMailbox, "c") +
                     " = m.mailbox AND " + column(kDay, "c") + " <= ?2 GROUP BY m.mailbox" +
                     " ORDER BY " + d.sorted("m.mailbox"),
                 {first, last, month}, columns);
    }
    case Report::kLps: {
      auto columns = or_default(requested, kLpsDefault);
      std::string nil = column(EventField::kNil);
      std::string azp = column(EventField::kAzp);
      return run("SELECT " + select_list(lps_expressions(), columns) +
                     " FROM indicator_event WHERE " + column(EventField::kDay) +
                     " BETWEEN ?1 AND ?2 AND " + is(EventField::kDirection, Direction::kSent) +
                     " GROUP BY " + nil + ", " + azp + " ORDER BY " + d.sorted(nil) + ", " +
                     d.sorted(azp),
                 {first, last, month}, columns);
    }
    case Report::kAcknowledgements:
      return acknowledgements(month, or_default(requested, kAcknowledgementsDefault), true);
    case Report::kDocuments: {
      auto columns = or_default(requested, kDocumentsDefault);
      std::string mailbox = column(EventField::kMailbox, "e");
      return run("SELECT " + select_list(document_expressions(), columns) + documents_of_events() +
                     " GROUP BY " + mailbox + ", " + by_direction_and_code(kSqlite) + ", " +
                     column(DocumentField::kCodeSystem, "d") + " ORDER BY " + d.sorted(mailbox) +
                     ", " + by_direction_and_code(d),
                 {first, last, month}, columns);
    }
  }
  return {};
}

ReportTable IndicatorReader::daily(const std::string& mailbox, const std::string& from,
                                   const std::string& to) {
  std::vector<std::string> columns{"day",
                                   "sent",
                                   "received",
                                   "recipients_patient",
                                   "sent_with_xdm",
                                   "sent_documents",
                                   "sent_qualified_ins",
                                   "sent_test_ins",
                                   "sent_with_mismatch",
                                   "received_with_xdm",
                                   "received_documents",
                                   "received_qualified_ins",
                                   "received_test_ins",
                                   "sent_uninspectable",
                                   "received_uninspectable",
                                   "sent_mes_fin",
                                   "sent_mdn",
                                   "received_mdn",
                                   "nil"};
  std::string day = column(EventField::kDay);
  return run("SELECT " + select_list(message_expressions(dialect()), columns) +
                 " FROM indicator_event WHERE " + day + " BETWEEN ?1 AND ?2 AND " +
                 column(EventField::kMailbox) + " = ?4 GROUP BY " + day + " ORDER BY " + day,
             {from, to, "", mailbox}, columns);
}

ReportTable IndicatorReader::daily_documents(const std::string& mailbox, const std::string& from,
                                             const std::string& to) {
  std::vector<std::string> columns{"direction", "code",          "code_system",
                                   "documents", "qualified_ins", "test_ins"};
  return run("SELECT " + select_list(document_expressions(), columns) + documents_of_events() +
                 " AND " + column(EventField::kMailbox, "e") + " = ?4 GROUP BY " +
                 by_direction_and_code(kSqlite) + ", " + column(DocumentField::kCodeSystem, "d") +
                 " ORDER BY " + by_direction_and_code(dialect()),
             {from, to, "", mailbox}, columns);
}

ReportTable IndicatorReader::days_of_month(const std::string& month) {
  std::string first, last;
  if (!month_days(month, first, last)) throw StorageError("\"" + month + "\" is not YYYY-MM");
  std::vector<std::string> columns(kDaysOfMonthFields.begin(), kDaysOfMonthFields.end());
  std::string day = column(EventField::kDay);
  return run("SELECT " + select_list(message_expressions(dialect()), columns) +
                 " FROM indicator_event WHERE " + day + " BETWEEN ?1 AND ?2 GROUP BY " + day +
                 " ORDER BY " + day,
             {first, last, month}, columns);
}

namespace {

// What came back for the messages of one mailbox (or of all) and day.
struct AcknowledgementDay {
  std::string mailbox_type;
  int64_t sent = 0;
  int64_t acknowledged = 0;
  int64_t unmatched_reports = 0;
  int64_t integration_errors = 0;
  // Per kind of acknowledgement ("delivered", "displayed"...): its delays in seconds, one per
  // acknowledgement, so that their number is the count.
  std::map<std::string, std::vector<int64_t>, std::less<>> delays;
};

// The nearest-rank percentile (p in 1..100) of `values`, sorted in place; "" when there are none.
std::string percentile(std::vector<int64_t>& values, int p) {
  if (values.empty()) return "";
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(
      std::ceil(static_cast<double>(p) / 100.0 * static_cast<double>(values.size())));
  return std::to_string(values[std::max<size_t>(rank, 1) - 1]);
}

// The words of a comma-separated list.
std::vector<std::string_view> words_of(std::string_view list) {
  std::vector<std::string_view> out;
  while (!list.empty()) {
    size_t comma = std::min(list.find(','), list.size());
    out.push_back(list.substr(0, comma));
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return out;
}

// The first day of the month before `month` ("YYYY-MM").
std::string previous_month_first_day(const std::string& month) {
  int year = std::stoi(month.substr(0, 4));
  int number = std::stoi(month.substr(5, 2)) - 1;
  if (number == 0) {
    number = 12;
    --year;
  }
  std::string text = std::to_string(year) + (number < 10 ? "-0" : "-") + std::to_string(number);
  return text + "-01";
}

// The acknowledgements report's rows, per mailbox (or not) and day, from the rows of its two
// queries.
class AcknowledgementTally {
 public:
  explicit AcknowledgementTally(bool by_mailbox) : by_mailbox_(by_mailbox) {}

  // Rows of: mailbox, mailbox_type, day, sent_at, report_at (-1: none), actions, disposition,
  // integration_error, seq; a sent message's rows one after the other.
  void add_sent(const ReportTable& sent) {
    std::string previous_seq;
    bool previous_acknowledged = false;
    for (const auto& row : sent.rows) {
      auto& day = day_of(row);
      if (row[8] != previous_seq) {
        ++day.sent;
        previous_seq = row[8];
        previous_acknowledged = false;
      }
      if (row[4] == "-1") continue;  // nothing came back
      if (!previous_acknowledged) ++day.acknowledged;
      previous_acknowledged = true;
      int64_t delay = std::max<int64_t>(0, (std::stoll(row[4]) - std::stoll(row[3])) / 1000);
      for (auto action : words_of(row[5]))
        day.delays[std::string(action)].push_back(delay);
      if (!row[6].empty()) day.delays[row[6]].push_back(delay);
      if (row[7] == "1") ++day.integration_errors;
    }
  }
  // Rows of: mailbox, mailbox_type, day, reports.
  void add_unmatched(const ReportTable& unmatched) {
    for (const auto& row : unmatched.rows)
      day_of(row).unmatched_reports += std::stoll(row[3]);
  }

  ReportTable table(const std::string& month, const std::vector<std::string>& columns) {
    ReportTable table;
    table.columns = columns;
    for (const auto& name : columns)
      table.counts.push_back(name != "month" && name != "day" && name != "mailbox" &&
                             name != "mailbox_type");
    for (auto& [where, day] : days_) {
      std::vector<std::string> row;
      for (const auto& name : columns) {
        if (name == "month") {
          row.push_back(month);
        } else if (name == "day") {
          row.push_back(where.second);
        } else if (name == "mailbox") {
          row.push_back(where.first);
        } else {
          row.push_back(cell(day, name));
        }
      }
      table.rows.push_back(std::move(row));
    }
    return table;
  }

 private:
  static std::string cell(AcknowledgementDay& day, const std::string& name) {
    if (name == "mailbox_type") return day.mailbox_type;
    if (name == "sent") return std::to_string(day.sent);
    if (name == "acknowledged") return std::to_string(day.acknowledged);
    if (name == "integration_errors") return std::to_string(day.integration_errors);
    if (name == "unmatched_reports") return std::to_string(day.unmatched_reports);
    bool p50 = name.ends_with("_p50_s");
    if (p50 || name.ends_with("_p90_s")) {
      auto kind = day.delays.find(std::string_view(name).substr(0, name.size() - 6));
      return kind == day.delays.end() ? std::string() : percentile(kind->second, p50 ? 50 : 90);
    }
    auto kind = day.delays.find(name);
    return std::to_string(kind == day.delays.end() ? 0 : kind->second.size());
  }

  AcknowledgementDay& day_of(const std::vector<std::string>& row) {
    auto& day = days_[{by_mailbox_ ? row[0] : std::string(), row[2]}];
    if (by_mailbox_ && (day.mailbox_type.empty() || row[1] > day.mailbox_type))
      day.mailbox_type = row[1];
    return day;
  }

  bool by_mailbox_;
  std::map<std::pair<std::string, std::string>, AcknowledgementDay> days_;
};

}  // namespace

void IndicatorReader::require_acknowledgement_columns() {
  // The last column added: a journal that has it has the others.
  std::string name(column_name(EventField::kEnvelopeId));
  bool present;
  if (postgresql_) {
    auto found = postgresql_->exec(
        "finding the acknowledgement columns",
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'indicator_event' "
        "AND column_name = $1",
        {name});
    present = found.integer(0, 0) > 0;
  } else {
    Statement found(db_,
                    "SELECT COUNT(*) FROM pragma_table_info('indicator_event') WHERE name = ?1");
    found.bind(1, name);
    present = found.step() == SQLITE_ROW && found.integer(0) > 0;
  }
  if (!present) {
    throw StorageError(
        "this indicator journal was written by an earlier mssgate and has not all the "
        "acknowledgement columns yet: the gateway adds them when it next opens the journal");
  }
}

ReportTable IndicatorReader::acknowledgements(const std::string& month,
                                              const std::vector<std::string>& columns,
                                              bool by_mailbox) {
  std::string first, last;
  if (!month_days(month, first, last)) throw StorageError("\"" + month + "\" is not YYYY-MM");
  for (const auto& name : columns) {
    if (std::find(kAcknowledgementsFields.begin(), kAcknowledgementsFields.end(), name) ==
        kAcknowledgementsFields.end())
      throw StorageError("unknown report column \"" + name + "\"");
  }
  require_acknowledgement_columns();
  using enum EventField;
  auto s = [](EventField field) { return column(field, "s"); };
  auto r = [](EventField field) { return column(field, "r"); };
  // A report names the sent message by its Message-ID, or by its envelope id (ENVID).
  std::string names_it = "((" + r(kOriginalMessageId) + " = " + s(kMessageId) + " AND " +
                         r(kOriginalMessageId) + " <> '') OR (" + r(kOriginalEnvelopeId) + " = " +
                         s(kEnvelopeId) + " AND " + r(kOriginalEnvelopeId) + " <> ''))";
  // Each message sent in the month, once per report found for it (or once, without).
  auto sent = run(
      "SELECT " + s(kMailbox) + ", " + s(kMailboxType) + ", " + s(kDay) + ", " + s(kAtMs) +
          ", COALESCE(" + r(kAtMs) + ", -1), COALESCE(" + r(kDsnActions) + ", ''), COALESCE(" +
          r(kDisposition) + ", ''), COALESCE(" + r(kIntegrationError) + ", 0), s.seq" +
          " FROM indicator_event s LEFT JOIN indicator_event r ON " + names_it + " AND " +
          r(kMailbox) + " = " + s(kMailbox) + " AND " + is(kDirection, Direction::kReceived, "r") +
          " WHERE " + is(kDirection, Direction::kSent, "s") + " AND " + s(kDay) +
          " BETWEEN ?1 AND ?2 ORDER BY s.seq",
      {first, last},
      {"mailbox", "mailbox_type", "day", "sent_at", "report_at", "actions", "disposition",
       "integration_error", "seq"});
  // The reports received in the month for no message sent since the month before.
  auto unmatched = run(
      "SELECT " + r(kMailbox) + ", MAX(" + r(kMailboxType) + "), " + r(kDay) +
          ", COUNT(*) FROM indicator_event r WHERE " + is(kDirection, Direction::kReceived, "r") +
          " AND (" + r(kMdn) + " = 1 OR " + r(kDsn) + " = 1) AND " + r(kDay) +
          " BETWEEN ?1 AND ?2 AND NOT EXISTS (SELECT 1 FROM indicator_event s WHERE " + s(kDay) +
          " BETWEEN ?3 AND " + r(kDay) + " AND " + s(kMailbox) + " = " + r(kMailbox) + " AND " +
          is(kDirection, Direction::kSent, "s") + " AND " + names_it + ") GROUP BY " + r(kMailbox) +
          ", " + r(kDay),
      {first, last, previous_month_first_day(month)},
      {"mailbox", "mailbox_type", "day", "reports"});

  AcknowledgementTally tally(by_mailbox);
  tally.add_sent(sent);
  tally.add_unmatched(unmatched);
  return tally.table(month, columns);
}

ReportTable IndicatorReader::acknowledgement_days(const std::string& month) {
  std::vector<std::string> columns;
  for (auto name : kAcknowledgementsFields) {
    if (name != "mailbox" && name != "mailbox_type" && name != "month") columns.emplace_back(name);
  }
  return acknowledgements(month, columns, false);
}

namespace {

// Successful sign-ins of connection_day rows "c" in one mode, or to one protocol, summed.
std::string sign_ins_of(AuthMode mode) {
  using enum ConnectionField;
  return "COALESCE(SUM(CASE WHEN " + is(kAuthMode, mode, "c") + " THEN " +
         column(kConnections, "c") + " ELSE 0 END), 0)";
}
std::string sign_ins_of(SessionProtocol protocol) {
  using enum ConnectionField;
  return "COALESCE(SUM(CASE WHEN " + is(kProtocol, protocol, "c") + " THEN " +
         column(kConnections, "c") + " ELSE 0 END), 0)";
}

}  // namespace

ReportTable IndicatorReader::sign_ins_by_day(const std::string& month) {
  std::string first, last;
  if (!month_days(month, first, last)) throw StorageError("\"" + month + "\" is not YYYY-MM");
  using enum ConnectionField;
  using S = SignInField;
  // The days with sign-ins or refusals, each joined with its successful sign-ins.
  std::string days = "(SELECT " + column(kDay) + " AS day FROM connection_day WHERE " +
                     column(kDay) + " BETWEEN ?1 AND ?2 UNION SELECT " + column(S::kDay) +
                     " FROM sign_in_day WHERE " + column(S::kDay) + " BETWEEN ?1 AND ?2)";
  std::string failed = "COALESCE((SELECT SUM(" + column(S::kSignIns, "s") +
                       ") FROM sign_in_day s WHERE " + column(S::kDay, "s") + " = d.day AND " +
                       column(S::kFailure, "s") + " <> ''), 0)";
  return run("SELECT d.day, " + sign_ins_of(AuthMode::kCertificate) + ", " +
                 sign_ins_of(AuthMode::kPsc) + ", " + sign_ins_of(SessionProtocol::kImap) + ", " +
                 sign_ins_of(SessionProtocol::kSubmission) + ", " + failed + " FROM " + days +
                 " d LEFT JOIN connection_day c ON " + column(kDay, "c") +
                 " = d.day GROUP BY d.day ORDER BY d.day",
             {first, last}, {"day", "certificate", "psc", "imap", "submission", "failed"});
}

ReportTable IndicatorReader::daily_connections(const std::string& mailbox, const std::string& from,
                                               const std::string& to) {
  using enum ConnectionField;
  using S = SignInField;
  // The mailbox's days with sign-ins or refusals, each joined with its successful sign-ins.
  std::string days = "(SELECT " + column(kDay) + " AS day FROM connection_day WHERE " +
                     column(kDay) + " BETWEEN ?1 AND ?2 AND " + column(kMailbox) +
                     " = ?3 UNION SELECT " + column(S::kDay) + " FROM sign_in_day WHERE " +
                     column(S::kDay) + " BETWEEN ?1 AND ?2 AND " + column(S::kMailbox) + " = ?3)";
  std::string failed = "COALESCE((SELECT SUM(" + column(S::kSignIns, "s") +
                       ") FROM sign_in_day s WHERE " + column(S::kDay, "s") + " = d.day AND " +
                       column(S::kMailbox, "s") + " = ?3 AND " + column(S::kFailure, "s") +
                       " <> ''), 0)";
  return run("SELECT d.day, " + sign_ins_of(AuthMode::kCertificate) + ", " +
                 sign_ins_of(AuthMode::kPsc) + ", " + sign_ins_of(SessionProtocol::kImap) + ", " +
                 sign_ins_of(SessionProtocol::kSubmission) + ", " + failed + " FROM " + days +
                 " d LEFT JOIN connection_day c ON " + column(kDay, "c") + " = d.day AND " +
                 column(kMailbox, "c") + " = ?3 GROUP BY d.day ORDER BY d.day",
             {from, to, mailbox},
             {"day", "signed_in_certificate", "signed_in_psc", "imap", "submission", "refused"});
}

std::string csv_neutralised(const std::string& value) {
  static constexpr std::string_view kFormulaStarts = "=+-@\t\r";
  if (value.empty() || kFormulaStarts.find(value.front()) == std::string_view::npos) return value;
  return "'" + value;
}

std::string to_csv(const ReportTable& table, char separator) {
  auto field = [&](const std::string& text) {
    std::string value = csv_neutralised(text);
    if (value.find_first_of(std::string("\"\r\n") + separator) == std::string::npos) return value;
    std::string quoted = "\"";
    for (char c : value) {
      if (c == '"') quoted += '"';
      quoted += c;
    }
    return quoted + "\"";
  };
  std::string out;
  for (size_t i = 0; i < table.columns.size(); ++i)
    out += (i ? std::string(1, separator) : "") + field(table.columns[i]);
  out += "\r\n";
  for (const auto& row : table.rows) {
    for (size_t i = 0; i < row.size(); ++i)
      out += (i ? std::string(1, separator) : "") + field(row[i]);
    out += "\r\n";
  }
  return out;
}

std::string to_json(const ReportTable& table) {
  json::array rows;
  for (const auto& row : table.rows) {
    json::object o;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string& column = table.columns[i];
      if (i < table.counts.size() && table.counts[i] && numeric(row[i])) {
        o[column] = std::stoll(row[i]);
      } else {
        o[column] = row[i];
      }
    }
    rows.push_back(std::move(o));
  }
  return json::serialize(rows) + "\n";
}

}  // namespace mssgate::storage
