#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/postgresql.hpp"

struct sqlite3;

namespace mssgate::storage {

// kLps: the messages sent, per LPS (X-MSS-NIL and the token's client id), for the éditeurs.
// kAcknowledgements: per mailbox and day, the reports that came back for the messages sent.
enum class Report { kConnections, kMessages, kDocuments, kLps, kAcknowledgements };
std::string_view to_string(Report report);

// A report as rows of text, in the order of its columns.
struct ReportTable {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> counts;  // per column: a count (a JSON number), else text
};

// The read side of the indicator journal, for mssgatectl: every figure is computed from the
// journal's events, so reading twice, or after a crash, gives the same counts.
class IndicatorReader {
 public:
  explicit IndicatorReader(const std::string& journal_path);  // read-only; throws StorageError
  // The journal in PostgreSQL, shared by the gateways; read-only.
  explicit IndicatorReader(const PostgresqlSettings& settings);
  ~IndicatorReader();
  IndicatorReader(const IndicatorReader&) = delete;
  IndicatorReader& operator=(const IndicatorReader&) = delete;

  // One month ("YYYY-MM"), with the given columns (empty: the default ones). Throws
  // StorageError on an unknown column.
  ReportTable monthly(Report report, const std::string& month,
                      const std::vector<std::string>& columns);
  // One mailbox, one row per day from `from` to `to` (YYYY-MM-DD, both included).
  ReportTable daily(const std::string& mailbox, const std::string& from, const std::string& to);
  // One month day by day over every mailbox (kDaysOfMonthFields), days without events left out.
  ReportTable days_of_month(const std::string& month);
  // The month's acknowledgements day by day over every mailbox (kAcknowledgementsFields but the
  // mailbox's), days without messages or reports left out.
  ReportTable acknowledgement_days(const std::string& month);
  // The month's sign-ins day by day: day, certificate, psc, imap, submission (successful
  // ones), failed (refusals).
  ReportTable sign_ins_by_day(const std::string& month);
  // The documents of one mailbox over the same days, by code.
  // The mailbox's sign-ins, day by day: by certificate and by token, to IMAP and to submission,
  // and the refused ones.
  ReportTable daily_connections(const std::string& mailbox, const std::string& from,
                                const std::string& to);
  ReportTable daily_documents(const std::string& mailbox, const std::string& from,
                              const std::string& to);

 private:
  ReportTable run(const std::string& sql, const std::vector<std::string>& parameters,
                  const std::vector<std::string>& columns);
  // kAcknowledgements, per mailbox and day or (`by_mailbox` false) per day.
  ReportTable acknowledgements(const std::string& month, const std::vector<std::string>& columns,
                               bool by_mailbox);
  const struct ReportDialect& dialect() const;
  // Throws StorageError when the journal predates the acknowledgement columns.
  void require_acknowledgement_columns();
  sqlite3* db_ = nullptr;
  std::unique_ptr<PostgresqlConnection> postgresql_;
};

// "YYYY-MM" → its first and last days; false when the text is no month.
bool month_days(const std::string& month, std::string& first, std::string& last);

// A CSV cell that a spreadsheet would take for a formula, one that starts with "=", "+", "-",
// "@", a tab or a carriage return, gets a single quote in front (OWASP's "CSV injection"
// rule): a sender's X-MSS-NIL "=HYPERLINK(...)" shows as text, never runs.
std::string csv_neutralised(const std::string& value);

// RFC 4180 text: every cell neutralised, then quoted when it holds a quote, the separator or a
// line break.
std::string to_csv(const ReportTable& table, char separator);
std::string to_json(const ReportTable& table);  // an array of objects, numbers as numbers

}  // namespace mssgate::storage
