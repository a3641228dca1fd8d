#pragma once
// The operator console's answers on the admin endpoint (docs/operator-guide.md, "The console"):
// its page and files, /api/status, /api/indicators?month= and /api/export. Built from report
// tables and counters, apart from the transport, so that they are tested without sockets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/services/admin_documents.hpp"
#include "storage/indicator_reports.hpp"

namespace mssgate::daemon {

// The console's page for a month ("YYYY-MM"): the export links work without JavaScript.
AdminResponse console_page(std::string_view month);
// /console/console.js and /console/console.css; nullopt for another path.
std::optional<AdminResponse> console_file(std::string_view path);

// What /api/status tells: the readiness checks and the sessions under way.
struct ConsoleStatus {
  std::string instance;
  std::string version;
  bool ready = false;
  std::vector<ReadinessCheck> checks;
  uint64_t open_sessions = 0;
  uint64_t client_connections = 0;
  uint64_t lmtp_connections = 0;
  uint64_t transactions = 0;
  bool draining = false;
  bool indicators = false;  // a journal is configured
};
AdminResponse status_document(const ConsoleStatus& status);

// A month of indicators: its days over every mailbox, its sign-ins by day, and its LPS.
struct ConsoleMonth {
  std::string month;
  storage::ReportTable days;              // IndicatorReader::days_of_month
  storage::ReportTable sign_ins;          // IndicatorReader::sign_ins_by_day
  storage::ReportTable lps;               // Report::kLps, its default columns
  storage::ReportTable acknowledgements;  // IndicatorReader::acknowledgement_days
};
// {"month", "totals", "days", "sign_ins", "lps", "acknowledgements"}: the tables as arrays of
// objects, numbers as numbers; the totals add the days up (the acknowledgements' counts, not
// their delays, as "acknowledgement_<column>").
AdminResponse indicators_document(const ConsoleMonth& month);

// The month asked for: "YYYY-MM" from ?month=, or `current` when absent; nullopt when it is
// something else.
std::optional<std::string> requested_month(std::string_view target, const std::string& current);

// What /api/export asks for: a report and a format, or why not.
struct ExportRequest {
  storage::Report report = storage::Report::kMessages;
  std::string format;  // csv or json
  std::string month;
};
std::optional<ExportRequest> export_request(std::string_view target, const std::string& current,
                                            std::string& why_not);
// The report as a file to download, named `file_name`.
AdminResponse export_document(const storage::ReportTable& table, const ExportRequest& request,
                              const std::string& file_name, char csv_separator);

// A JSON error: {"error": "..."} with its status.
AdminResponse json_error(unsigned status, std::string_view message);

}  // namespace mssgate::daemon
