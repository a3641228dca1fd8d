// The operator console's answers: its routes, the month and export asked for, the JSON it
// serves and the files it offers.
#include "daemon/services/console_documents.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

using namespace mssgate::daemon;
namespace json = boost::json;
using mssgate::storage::Report;
using mssgate::storage::ReportTable;

namespace {

std::string header(const AdminResponse& response, const std::string& name) {
  for (const auto& [n, v] : response.headers)
    if (n == name) return v;
  return {};
}

ReportTable table(std::vector<std::string> columns, std::vector<std::vector<std::string>> rows,
                  std::vector<bool> counts) {
  ReportTable t;
  t.columns = std::move(columns);
  t.rows = std::move(rows);
  t.counts = std::move(counts);
  return t;
}

}  // namespace

TEST(ConsoleRoutes, ThePageItsFilesAndTheApi) {
  EXPECT_EQ(admin_route("GET", "/console"), AdminRoute::kConsole);
  EXPECT_EQ(admin_route("GET", "/console/?month=2026-11"), AdminRoute::kConsole);
  EXPECT_EQ(admin_route("GET", "/console/console.js"), AdminRoute::kConsoleFile);
  EXPECT_EQ(admin_route("HEAD", "/console/console.css"), AdminRoute::kConsoleFile);
  EXPECT_EQ(admin_route("GET", "/console/other.js"), AdminRoute::kNotFound);
  EXPECT_EQ(admin_route("GET", "/api/status"), AdminRoute::kApiStatus);
  EXPECT_EQ(admin_route("GET", "/api/indicators?month=2026-11"), AdminRoute::kApiIndicators);
  EXPECT_EQ(admin_route("GET", "/api/export?kind=lps"), AdminRoute::kApiExport);
  EXPECT_EQ(admin_route("POST", "/api/export"), AdminRoute::kMethodNotAllowed);
  EXPECT_EQ(admin_route("GET", "/api/"), AdminRoute::kNotFound);
}

TEST(ConsoleRequests, TheMonthIsAMonthOrTheCurrentOne) {
  EXPECT_EQ(requested_month("/api/indicators", "2026-12"), "2026-12");
  EXPECT_EQ(requested_month("/api/indicators?month=2026-02", "2026-12"), "2026-02");
  EXPECT_EQ(requested_month("/api/indicators?month=", "2026-12"), "2026-12");
  for (const char* bad : {"2026-13", "2026-1", "26-01", "2026-01-01", "x", "2026%2D01x"})
    EXPECT_FALSE(requested_month(std::string("/console?month=") + bad, "2026-12")) << bad;
}

TEST(ConsoleRequests, AnExportNamesItsKindAndFormat) {
  std::string why;
  auto lps = export_request("/api/export?month=2026-11&kind=lps&format=json", "2026-12", why);
  ASSERT_TRUE(lps);
  EXPECT_EQ(lps->report, Report::kLps);
  EXPECT_EQ(lps->format, "json");
  EXPECT_EQ(lps->month, "2026-11");
  auto messages = export_request("/api/export?kind=messages", "2026-12", why);
  ASSERT_TRUE(messages);
  EXPECT_EQ(messages->format, "csv");
  EXPECT_EQ(messages->month, "2026-12");
  EXPECT_FALSE(export_request("/api/export?kind=Messages", "2026-12", why));
  EXPECT_EQ(why, "kind is connections, messages, documents, lps or acknowledgements");
  EXPECT_FALSE(export_request("/api/export?kind=documents&format=xlsx", "2026-12", why));
  EXPECT_EQ(why, "format is csv or json");
  EXPECT_FALSE(export_request("/api/export?kind=documents&month=2026", "2026-12", why));
  EXPECT_EQ(why, "month is YYYY-MM");
}

TEST(ConsoleDocuments, TheMonthAddsItsDaysUpAndKeepsNumbersAsNumbers) {
  ConsoleMonth month;
  month.month = "2026-11";
  month.days = table({"day", "sent", "received", "sent_with_xdm"},
                     {{"2026-11-02", "3", "1", "2"}, {"2026-11-05", "4", "0", "1"}},
                     {false, true, true, true});
  month.sign_ins = table({"day", "certificate", "psc", "imap", "submission"},
                         {{"2026-11-02", "5", "2", "4", "3"}}, {false, true, true, true, true});
  month.lps = table({"nil", "azp", "sent"}, {{"DEV1", "", "7"}}, {false, false, true});
  auto answer = indicators_document(month);
  EXPECT_EQ(answer.status, 200u);
  EXPECT_EQ(answer.content_type, "application/json; charset=utf-8");
  auto document = json::parse(answer.body).as_object();
  EXPECT_EQ(document["month"].as_string(), "2026-11");
  auto totals = document["totals"].as_object();
  EXPECT_EQ(totals["sent"].as_int64(), 7);
  EXPECT_EQ(totals["received"].as_int64(), 1);
  EXPECT_EQ(totals["sent_with_xdm"].as_int64(), 3);
  EXPECT_EQ(totals["certificate_sign_ins"].as_int64(), 5);
  EXPECT_EQ(totals["psc_sign_ins"].as_int64(), 2);
  EXPECT_FALSE(totals.contains("day"));
  EXPECT_EQ(document["days"].as_array().size(), 2u);
  EXPECT_EQ(document["days"].as_array()[1].as_object().at("sent").as_int64(), 4);
  EXPECT_EQ(document["lps"].as_array()[0].as_object().at("nil").as_string(), "DEV1");
}

TEST(ConsoleDocuments, TheStatusIs503WhenACheckFails) {
  ConsoleStatus status;
  status.instance = "gw-1";
  status.version = "0.1.0";
  status.checks = {{"serving", true, ""}, {"imap_backend", false, "127.0.0.1:143 refused"}};
  status.open_sessions = 12;
  auto unready = status_document(status);
  EXPECT_EQ(unready.status, 503u);
  auto document = json::parse(unready.body).as_object();
  EXPECT_FALSE(document["ready"].as_bool());
  EXPECT_EQ(document["sessions"].as_object()["open"].as_int64(), 12);
  EXPECT_EQ(document["checks"].as_array()[1].as_object()["detail"].as_string(),
            "127.0.0.1:143 refused");
  status.ready = true;
  EXPECT_EQ(status_document(status).status, 200u);
}

TEST(ConsoleDocuments, AnExportIsAFileUnderItsConfiguredName) {
  ExportRequest request;
  request.report = Report::kMessages;
  request.format = "csv";
  request.month = "2026-11";
  auto t = table({"mailbox", "sent"}, {{"=cmd", "3"}}, {false, true});
  auto file = export_document(t, request, "messages-2026-11.csv", ';');
  EXPECT_EQ(file.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(file.body, "mailbox;sent\r\n'=cmd;3\r\n");
  EXPECT_EQ(header(file, "Content-Disposition"), "attachment; filename=\"messages-2026-11.csv\"");
  // A name from the configuration cannot break out of its quotes or the header.
  auto odd = export_document(t, request, "a\"b\\c\r\nd.csv", ';');
  EXPECT_EQ(header(odd, "Content-Disposition"), "attachment; filename=\"abcd.csv\"");
  request.format = "json";
  EXPECT_EQ(export_document(t, request, "m.json", ';').body,
            "[{\"mailbox\":\"=cmd\",\"sent\":3}]\n");
}

TEST(ConsoleDocuments, ThePageCarriesItsMonthAndAStrictPolicy) {
  auto page = console_page("2026-11");
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find(R"(data-month="2026-11")"), std::string::npos);
  EXPECT_NE(page.body.find("/api/export?month=2026-11&amp;kind=messages&amp;format=csv"),
            std::string::npos);
  EXPECT_EQ(page.body.find("{{month}}"), std::string::npos);
  EXPECT_NE(header(page, "Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  auto script = console_file("/console/console.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(script->body.find("/api/indicators?month="), std::string::npos);
  EXPECT_TRUE(console_file("/console/console.css"));
  EXPECT_FALSE(console_file("/console/index.html"));
}
