#include "daemon/tools/mssgatectl/indicator_commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "config/storage_settings.hpp"
#include "protocol/mailbox_address.hpp"
#include "storage/clock.hpp"
#include "storage/indicator_reports.hpp"

namespace mssgate::ctl {
namespace {

void print_table(const mssgate::storage::ReportTable& table) {
  std::vector<size_t> widths;
  for (const auto& c : table.columns)
    widths.push_back(c.size());
  for (const auto& row : table.rows)
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i)
      std::cout << std::left << std::setw(static_cast<int>(widths[i]) + 2) << cells[i];
    std::cout << "\n";
  };
  line(table.columns);
  for (const auto& row : table.rows)
    line(row);
}

using mssgate::storage::IndicatorReader;
using mssgate::storage::Report;

// The --month a command needs, as YYYY-MM.
std::string required_month(const Arguments& a, const std::string& command) {
  auto month = a.option("--month");
  if (!month) throw UsageError("indicators " + command + " needs --month YYYY-MM");
  std::string first, last;
  if (!mssgate::storage::month_days(*month, first, last))
    throw UsageError("'" + *month + "' is not a month (YYYY-MM)");
  return *month;
}

int export_reports(IndicatorReader& reader, const mssgate::config::IndicatorsConfig& settings,
                   const Arguments& a) {
  allow_only(a, {"--month", "--kind", "--format", "--out", "--overwrite"}, 0);
  auto month = required_month(a, "export");
  std::string format = a.option("--format").value_or("csv");
  if (format != "csv" && format != "json") throw UsageError("--format is csv or json");
  // The référentiel's three reports, or one report.
  std::string kind = a.option("--kind").value_or("all");
  std::vector<Report> reports;
  if (kind == "all") reports = {Report::kConnections, Report::kMessages, Report::kDocuments};
  for (Report report : {Report::kConnections, Report::kMessages, Report::kDocuments, Report::kLps,
                        Report::kAcknowledgements}) {
    if (kind == mssgate::storage::to_string(report)) reports = {report};
  }
  if (reports.empty())
    throw UsageError("--kind is all, connections, messages, documents, lps or acknowledgements");
  std::filesystem::path out = a.option("--out").value_or(".");
  std::filesystem::create_directories(out);
  const auto& x = settings.exports;
  // A file already there (last month's export sent on, an earlier run) is not replaced unless
  // asked: nothing is written then.
  if (!a.flag("--overwrite")) {
    for (Report report : reports) {
      auto path = out / mssgate::config::report_file(x, report, month, format).name;
      if (std::filesystem::exists(path))
        throw std::runtime_error("indicators export: " + path.string() +
                                 " exists; nothing was written (--overwrite replaces it)");
    }
  }
  for (Report report : reports) {
    auto file_spec = mssgate::config::report_file(x, report, month, format);
    auto table = reader.monthly(report, month, file_spec.columns);
    std::string text = format == "csv" ? mssgate::storage::to_csv(table, x.csv_separator[0])
                                       : mssgate::storage::to_json(table);
    auto path = out / file_spec.name;
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (!file)
      throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
    std::cout << mssgate::storage::to_string(report) << ": " << path.string() << " ("
              << table.rows.size() << " rows)\n";
  }
  return 0;
}

int show_mailbox(IndicatorReader& reader, const mssgate::config::IndicatorsConfig& settings,
                 const Arguments& a) {
  allow_only(a, {"--mailbox", "--from", "--to"}, 0);
  auto mailbox = a.option("--mailbox");
  if (!mailbox) throw UsageError("indicators show needs --mailbox ADDRESS");
  auto normalized = mssgate::protocol::normalize_mailbox_address(*mailbox);
  if (!normalized) throw UsageError("'" + *mailbox + "' is not a mailbox address");
  std::string today = mssgate::storage::day_of(mssgate::storage::now_ms(), settings.utc_days);
  std::string from = a.option("--from").value_or(today.substr(0, 8) + "01");
  std::string to = a.option("--to").value_or(today);
  for (const auto& day : {from, to}) {
    std::string first, last;
    if (day.size() != 10 || !mssgate::storage::month_days(day.substr(0, 7), first, last))
      throw UsageError("'" + day + "' is not a day (YYYY-MM-DD)");
  }
  std::cout << *normalized << ", " << from << " to " << to << "\n\n";
  print_table(reader.daily(*normalized, from, to));
  auto connections = reader.daily_connections(*normalized, from, to);
  std::cout << "\nsign-ins\n";
  if (connections.rows.empty()) {
    std::cout << "(none)\n";
  } else {
    print_table(connections);
  }
  auto documents = reader.daily_documents(*normalized, from, to);
  if (!documents.rows.empty()) {
    std::cout << "\n";
    print_table(documents);
  }
  return 0;
}

int show_lps(IndicatorReader& reader, const mssgate::config::IndicatorsConfig& settings,
             const Arguments& a) {
  // Per LPS, what it sent in the month: a table to read, or a file for its éditeur.
  allow_only(a, {"--month", "--format"}, 0);
  auto month = required_month(a, "lps");
  std::string format = a.option("--format").value_or("table");
  if (format != "table" && format != "csv" && format != "json")
    throw UsageError("--format is table, csv or json");
  auto table = reader.monthly(Report::kLps, month, {});
  if (format == "csv") {
    std::cout << mssgate::storage::to_csv(table, settings.exports.csv_separator[0]);
  } else if (format == "json") {
    std::cout << mssgate::storage::to_json(table) << "\n";
  } else {
    // Too many columns for one line: a block per LPS, a figure per line.
    std::cout << "Messages sent in " << month << ", per LPS (" << table.rows.size()
              << "): X-MSS-NIL and the token's client id (azp)\n";
    size_t width = 0;
    for (const auto& c : table.columns)
      width = std::max(width, c.size());
    for (const auto& row : table.rows) {
      std::cout << "\n";
      for (size_t i = 0; i < row.size(); ++i) {
        std::string value = row[i].empty() ? "(none)" : row[i];
        std::cout << "  " << std::left << std::setw(static_cast<int>(width) + 2) << table.columns[i]
                  << value << "\n";
      }
    }
  }
  return 0;
}

}  // namespace

int indicators(const std::string& verb, const Arguments& a, const std::string& config_path,
               const std::optional<std::string>& journal_option) {
  mssgate::config::IndicatorsConfig settings;
  std::optional<mssgate::storage::IndicatorReader> reader;
  if (journal_option) {
    reader.emplace(*journal_option);
  } else {
    auto config = mssgate::config::load_config(config_path);
    settings = config.indicators;
    if (settings.in_postgresql) {
      auto database = mssgate::config::postgresql_settings(config.storage, "mssgatectl");
      // A month's report over a large journal may take longer than the gateways' statements.
      database.statement_timeout = {};
      reader.emplace(database);
    } else if (!settings.journal.empty()) {
      reader.emplace(settings.journal);
    } else {
      throw std::runtime_error("indicators are off: " + config_path +
                               " sets no indicators.journal (or give --journal FILE)");
    }
  }
  if (verb == "export") return export_reports(*reader, settings, a);
  if (verb == "show") return show_mailbox(*reader, settings, a);
  if (verb == "lps") return show_lps(*reader, settings, a);
  throw UsageError("unknown command 'indicators " + verb + "'");
}

}  // namespace mssgate::ctl
