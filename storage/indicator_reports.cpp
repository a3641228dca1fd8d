#include "storage/indicator_reports.hpp"

#include <sqlite3.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <map>

#include "config/indicator_fields.hpp"
#include "storage/directory_store.hpp"
#include "storage/sqlite_statement.hpp"

namespace mssgate::storage {
namespace {

namespace json = boost::json;

std::string count_if(std::string_view condition) {
  return "SUM(CASE WHEN " + std::string(condition) + " THEN 1 ELSE 0 END)";
}
std::string sum_if(std::string_view condition, std::string_view value) {
  return "SUM(CASE WHEN " + std::string(condition) + " THEN " + std::string(value) + " ELSE 0 END)";
}

constexpr std::string_view kSent = "direction = 'sent'";
constexpr std::string_view kReceived = "direction = 'received'";

std::string both(std::string_view direction, std::string_view condition) {
  return std::string(direction) + " AND " + std::string(condition);
}

// Each column of the messages report as an aggregate over indicator_event rows. ?3 is the
// month (or the day, in the daily view).
const std::map<std::string, std::string, std::less<>>& message_expressions() {
  static const std::map<std::string, std::string, std::less<>> expressions{
      {"month", "?3"},
      {"day", "day"},
      {"mailbox", "mailbox"},
      {"mailbox_type", "MAX(mailbox_type)"},
      {"sent", count_if(kSent)},
      {"received", count_if(kReceived)},
      {"sent_recipients", sum_if(kSent, "recipients")},
      {"recipients_same_operator", sum_if(kSent, "to_same_operator")},
      {"recipients_other_operator", sum_if(kSent, "to_other_operator")},
      {"recipients_patient", sum_if(kSent, "to_patient")},
      {"sent_to_patient", count_if(both(kSent, "to_patient > 0"))},
      {"received_from_same_operator", count_if(both(kReceived, "counterpart = 'same_operator'"))},
      {"received_from_other_operator", count_if(both(kReceived, "counterpart = 'other_operator'"))},
      {"received_from_patient", count_if(both(kReceived, "counterpart = 'patient'"))},
      {"sent_with_xdm", count_if(both(kSent, "xdm = 1"))},
      {"received_with_xdm", count_if(both(kReceived, "xdm = 1"))},
      {"sent_with_cda", count_if(both(kSent, "documents > 0"))},
      {"received_with_cda", count_if(both(kReceived, "documents > 0"))},
      {"sent_documents", sum_if(kSent, "documents")},
      {"received_documents", sum_if(kReceived, "documents")},
      {"sent_qualified_ins", count_if(both(kSent, "ins = 'qualified'"))},
      {"received_qualified_ins", count_if(both(kReceived, "ins = 'qualified'"))},
      {"sent_unqualified_ins", count_if(both(kSent, "ins = 'unqualified'"))},
      {"received_unqualified_ins", count_if(both(kReceived, "ins = 'unqualified'"))},
      {"sent_test_ins", count_if(both(kSent, "ins = 'test'"))},
      {"received_test_ins", count_if(both(kReceived, "ins = 'test'"))},
      {"sent_claimed_codecda", count_if(both(kSent, "claim_codecda <> ''"))},
      {"sent_claimed_ins_o", count_if(both(kSent, "claim_ins = 'O'"))},
      {"sent_claimed_ins_n", count_if(both(kSent, "claim_ins = 'N'"))},
      {"sent_with_mismatch", count_if(both(kSent, "mismatches <> ''"))},
      {"received_with_mismatch", count_if(both(kReceived, "mismatches <> ''"))},
      {"sent_uninspectable", count_if(both(kSent, "inspected = 0"))},
      {"received_uninspectable", count_if(both(kReceived, "inspected = 0"))},
      {"sent_mes_fin", count_if(both(kSent, "mes_fin = 1"))},
      {"sent_mdn", count_if(both(kSent, "mdn = 1"))},
      {"received_mdn", count_if(both(kReceived, "mdn = 1"))},
      {"sent_bytes", sum_if(kSent, "size")},
      {"received_bytes", sum_if(kReceived, "size")},
      {"nil", "COALESCE(GROUP_CONCAT(DISTINCT NULLIF(nil, '')), '')"},
      {"azp", "COALESCE(GROUP_CONCAT(DISTINCT NULLIF(azp, '')), '')"},
  };
  return expressions;
}

const std::map<std::string, std::string, std::less<>>& connection_expressions() {
  static const std::map<std::string, std::string, std::less<>> expressions{
      {"month", "?3"},
      {"mailbox", "c.mailbox"},
      {"mailbox_type", "MAX(c.mailbox_type)"},
      {"last_connection", "MAX(c.day)"},
      {"last_connection_time",
       "strftime('%Y-%m-%dT%H:%M:%SZ', MAX(c.last_at_ms) / 1000, 'unixepoch')"},
      {"auth_mode",
       "(SELECT l.auth_mode FROM connection_day l WHERE l.mailbox = c.mailbox AND l.day <= ?2 "
       "ORDER BY l.last_at_ms DESC LIMIT 1)"},
      {"auth_modes", "GROUP_CONCAT(DISTINCT c.auth_mode)"},
      {"protocols", "GROUP_CONCAT(DISTINCT c.protocol)"},
      {"connections", "SUM(CASE WHEN c.day >= ?1 THEN c.connections ELSE 0 END)"},
      {"psc_connections",
       "SUM(CASE WHEN c.day >= ?1 AND c.auth_mode = 'psc' THEN c.connections ELSE 0 END)"},
      {"certificate_connections",
       "SUM(CASE WHEN c.day >= ?1 AND c.auth_mode = 'certificate' THEN c.connections ELSE 0 "
       "END)"},
  };
  return expressions;
}

const std::map<std::string, std::string, std::less<>>& document_expressions() {
  static const std::map<std::string, std::string, std::less<>> expressions{
      {"month", "?3"},
      {"day", "e.day"},
      {"mailbox", "e.mailbox"},
      {"mailbox_type", "MAX(e.mailbox_type)"},
      {"direction", "e.direction"},
      {"code", "d.code"},
      {"code_system", "d.code_system"},
      {"documents", "COUNT(*)"},
      {"qualified_ins", "SUM(CASE WHEN d.ins = 'qualified' THEN 1 ELSE 0 END)"},
      {"unqualified_ins", "SUM(CASE WHEN d.ins = 'unqualified' THEN 1 ELSE 0 END)"},
      {"test_ins", "SUM(CASE WHEN d.ins = 'test' THEN 1 ELSE 0 END)"},
  };
  return expressions;
}

std::string select_list(const std::map<std::string, std::string, std::less<>>& expressions,
                        const std::vector<std::string>& columns) {
  std::string out;
  for (const auto& column : columns) {
    auto it = expressions.find(column);
    if (it == expressions.end()) throw StorageError("unknown report column \"" + column + "\"");
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
}

IndicatorReader::~IndicatorReader() {
  sqlite3_close(db_);
}

ReportTable IndicatorReader::run(const std::string& sql, const std::vector<std::string>& parameters,
                                 const std::vector<std::string>& columns) {
  ReportTable table;
  table.columns = columns;
  table.counts.assign(columns.size(), false);
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
  switch (report) {
    case Report::kMessages: {
      auto columns = or_default(requested, config::kMessagesDefault);
      return run("SELECT " + select_list(message_expressions(), columns) +
                     " FROM indicator_event WHERE day BETWEEN ?1 AND ?2 GROUP BY mailbox "
                     "ORDER BY mailbox",
                 {first, last, month}, columns);
    }
    case Report::kConnections: {
      auto columns = or_default(requested, config::kConnectionsDefault);
      return run(
          "SELECT " + select_list(connection_expressions(), columns) +
              " FROM connection_day c WHERE c.day <= ?2 GROUP BY c.mailbox ORDER BY c.mailbox",
          {first, last, month}, columns);
    }
    case Report::kDocuments: {
      auto columns = or_default(requested, config::kDocumentsDefault);
      return run("SELECT " + select_list(document_expressions(), columns) +
                     " FROM indicator_document d JOIN indicator_event e ON e.seq = d.seq "
                     "WHERE e.day BETWEEN ?1 AND ?2 "
                     "GROUP BY e.mailbox, e.direction, d.code, d.code_system "
                     "ORDER BY e.mailbox, e.direction, d.code",
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
  return run("SELECT " + select_list(message_expressions(), columns) +
                 " FROM indicator_event WHERE day BETWEEN ?1 AND ?2 AND mailbox = ?4 "
                 "GROUP BY day ORDER BY day",
             {from, to, "", mailbox}, columns);
}

ReportTable IndicatorReader::daily_documents(const std::string& mailbox, const std::string& from,
                                             const std::string& to) {
  std::vector<std::string> columns{"direction", "code",          "code_system",
                                   "documents", "qualified_ins", "test_ins"};
  return run("SELECT " + select_list(document_expressions(), columns) +
                 " FROM indicator_document d JOIN indicator_event e ON e.seq = d.seq "
                 "WHERE e.day BETWEEN ?1 AND ?2 AND e.mailbox = ?4 "
                 "GROUP BY e.direction, d.code, d.code_system ORDER BY e.direction, d.code",
             {from, to, "", mailbox}, columns);
}

std::string to_csv(const ReportTable& table, char separator) {
  auto field = [&](const std::string& value) {
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
