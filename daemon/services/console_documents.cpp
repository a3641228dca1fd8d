#include "daemon/services/console_documents.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <map>

#include "daemon/services/console_assets.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

namespace json = boost::json;

constexpr std::string_view kJson = "application/json; charset=utf-8";
// The console's page and files come from the gateway only: no inline script, no other origin.
constexpr std::string_view kPagePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

std::vector<std::pair<std::string, std::string>> page_headers() {
  return {{"Content-Security-Policy", std::string(kPagePolicy)},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"}};
}

json::value table_value(const storage::ReportTable& table) {
  return json::parse(storage::to_json(table));
}

// The sum of a count column over a table's rows (its JSON numbers).
int64_t column_sum(const json::array& rows, std::string_view column) {
  int64_t sum = 0;
  for (const auto& row : rows) {
    const auto* value = row.as_object().if_contains(column);
    if (value && value->is_int64()) sum += value->as_int64();
  }
  return sum;
}

bool is_month(std::string_view text) {
  std::string first, last;
  return storage::month_days(std::string(text), first, last);
}

const std::map<std::string_view, storage::Report>& report_kinds() {
  static const std::map<std::string_view, storage::Report> kinds{
      {"connections", storage::Report::kConnections},
      {"messages", storage::Report::kMessages},
      {"documents", storage::Report::kDocuments},
      {"lps", storage::Report::kLps},
      {"acknowledgements", storage::Report::kAcknowledgements}};
  return kinds;
}

}  // namespace

AdminResponse json_error(unsigned status, std::string_view message) {
  json::object body{{"error", message}};
  return {status, std::string(kJson), json::serialize(body) + "\n", {}};
}

AdminResponse console_page(std::string_view month) {
  AdminResponse page{
      200, "text/html; charset=utf-8",
      protocol::replace_all(std::string(console_page_template()), "{{month}}", month),
      page_headers()};
  return page;
}

std::optional<AdminResponse> console_file(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (path == "/console/console.js")
    return AdminResponse{200, "text/javascript; charset=utf-8", std::string(console_script()),
                         page_headers()};
  if (path == "/console/console.css")
    return AdminResponse{200, "text/css; charset=utf-8", std::string(console_style()),
                         page_headers()};
  return std::nullopt;
}

AdminResponse status_document(const ConsoleStatus& status) {
  json::array checks;
  for (const auto& check : status.checks)
    checks.push_back(
        json::object{{"name", check.name}, {"ok", check.ok}, {"detail", check.detail}});
  json::object body{
      {"instance", status.instance},
      {"version", status.version},
      {"ready", status.ready},
      {"draining", status.draining},
      {"indicators", status.indicators},
      {"checks", std::move(checks)},
      {"sessions", json::object{{"open", status.open_sessions},
                                {"client_connections", status.client_connections},
                                {"lmtp_connections", status.lmtp_connections},
                                {"transactions", status.transactions}}},
  };
  return {status.ready ? 200U : 503U, std::string(kJson), json::serialize(body) + "\n", {}};
}

AdminResponse indicators_document(const ConsoleMonth& month) {
  json::value days = table_value(month.days);
  json::value sign_ins = table_value(month.sign_ins);
  json::object totals;
  for (const auto& name : month.days.columns) {
    if (name != "day") totals[name] = column_sum(days.as_array(), name);
  }
  totals["certificate_sign_ins"] = column_sum(sign_ins.as_array(), "certificate");
  totals["psc_sign_ins"] = column_sum(sign_ins.as_array(), "psc");
  totals["failed_sign_ins"] = column_sum(sign_ins.as_array(), "failed");
  json::value acknowledgements = table_value(month.acknowledgements);
  for (const auto& name : month.acknowledgements.columns) {
    if (name != "day" && name != "sent" && !name.ends_with("_s"))
      totals["acknowledgement_" + name] = column_sum(acknowledgements.as_array(), name);
  }
  json::object body{
      {"month", month.month},          {"totals", std::move(totals)},
      {"days", std::move(days)},       {"sign_ins", std::move(sign_ins)},
      {"lps", table_value(month.lps)}, {"acknowledgements", std::move(acknowledgements)}};
  return {200, std::string(kJson), json::serialize(body) + "\n", {}};
}

std::optional<std::string> requested_month(std::string_view target, const std::string& current) {
  std::string month = query_parameter(target, "month");
  if (month.empty()) return current;
  if (!is_month(month)) return std::nullopt;
  return month;
}

std::optional<ExportRequest> export_request(std::string_view target, const std::string& current,
                                            std::string& why_not) {
  ExportRequest request;
  auto month = requested_month(target, current);
  if (!month) {
    why_not = "month is YYYY-MM";
    return std::nullopt;
  }
  request.month = *month;
  auto kind = report_kinds().find(query_parameter(target, "kind"));
  if (kind == report_kinds().end()) {
    why_not = "kind is connections, messages, documents, lps or acknowledgements";
    return std::nullopt;
  }
  request.report = kind->second;
  request.format = query_parameter(target, "format");
  if (request.format.empty()) request.format = "csv";
  if (request.format != "csv" && request.format != "json") {
    why_not = "format is csv or json";
    return std::nullopt;
  }
  return request;
}

AdminResponse export_document(const storage::ReportTable& table, const ExportRequest& request,
                              const std::string& file_name, char csv_separator) {
  bool csv = request.format == "csv";
  AdminResponse file{200,
                     csv ? "text/csv; charset=utf-8" : std::string(kJson),
                     csv ? storage::to_csv(table, csv_separator) : storage::to_json(table),
                     {}};
  // The name is the configuration's (printable, no quote): the file saves under it.
  std::string name;
  for (char c : file_name) {
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) name += c;
  }
  file.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + name + "\"");
  return file;
}

}  // namespace mssgate::daemon
