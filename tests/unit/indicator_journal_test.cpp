#include "storage/indicator_journal.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "daemon/services/indicator_event.hpp"
#include "protocol/ascii.hpp"
#include "storage/clock.hpp"
#include "storage/indicator_report_columns.hpp"
#include "storage/indicator_reports.hpp"
#include "storage/storage_error.hpp"
#include "tests/unit/journal_waits.hpp"

using namespace mssgate::storage;
namespace fs = std::filesystem;

namespace {

class IndicatorJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mssgate-journal-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  IndicatorJournal::Options options() const {
    return {(dir_ / "indicators.db").string(), (dir_ / "indicators.jsonl").string()};
  }

  static IndicatorEvent event(const std::string& key, const std::string& direction,
                              const std::string& mailbox, const std::string& day) {
    IndicatorEvent e;
    e.key = key;
    e.at_ms = 1795000000000;
    e.day = day;
    e.direction = *parse_direction(direction);
    e.mailbox = mailbox;
    e.mailbox_type = mssgate::protocol::MailboxType::kApp;
    e.auth_mode = direction == "sent" ? AuthMode::kCertificate : AuthMode::kNone;
    e.nil = "LPS-1";
    e.recipients = 1;
    e.xdm = true;
    e.documents = {{"11488-4", "2.16.840.1.113883.6.1", InsClass::kQualified}};
    e.ins = InsClass::kQualified;
    e.claim_codecda = "11488-4";
    e.claim_ins = ClaimedIns::kYes;
    return e;
  }

  static std::vector<bool> record_all(IndicatorJournal& journal,
                                      std::vector<IndicatorEvent> events) {
    return mssgate::test_journal::record_all(journal, std::move(events));
  }

  std::vector<std::string> log_lines() const {
    std::ifstream in(dir_ / "indicators.jsonl");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
      lines.push_back(line);
    return lines;
  }

  fs::path dir_;
};

}  // namespace

TEST_F(IndicatorJournalTest, EventsAreDurableCountedOnceAndReported) {
  {
    IndicatorJournal journal(options());
    auto results =
        record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02"),
                             event("received:b@x.fr:f00", "received", "b@x.fr", "2026-11-02"),
                             event("sent:2", "sent", "a@x.fr", "2026-11-03")});
    EXPECT_EQ(results, (std::vector<bool>{true, true, true}));
    // Postfix delivering the same message again: the same key, counted once.
    results =
        record_all(journal, {event("received:b@x.fr:f00", "received", "b@x.fr", "2026-11-04")});
    EXPECT_EQ(results, std::vector<bool>{true});
    journal.note_connection({1795000000000, "2026-11-03", "a@x.fr",
                             mssgate::protocol::MailboxType::kApp, AuthMode::kCertificate,
                             SessionProtocol::kImap, "", "", ""});
    journal.stop();
    auto stats = journal.stats();
    EXPECT_EQ(stats.recorded, 3u);
    EXPECT_EQ(stats.duplicates, 1u);
    EXPECT_EQ(stats.connections, 1u);
  }
  EXPECT_EQ(log_lines().size(), 3u);

  IndicatorReader reader((dir_ / "indicators.db").string());
  auto messages = reader.monthly(Report::kMessages, "2026-11",
                                 {"mailbox", "sent", "received", "sent_qualified_ins", "nil"});
  ASSERT_EQ(messages.rows.size(), 2u);
  EXPECT_EQ(messages.rows[0], (std::vector<std::string>{"a@x.fr", "2", "0", "2", "LPS-1"}));
  EXPECT_EQ(messages.rows[1], (std::vector<std::string>{"b@x.fr", "0", "1", "0", "LPS-1"}));
  auto documents = reader.monthly(Report::kDocuments, "2026-11", {});
  ASSERT_EQ(documents.rows.size(), 2u);
  auto connections = reader.monthly(Report::kConnections, "2026-11", {});
  ASSERT_EQ(connections.rows.size(), 1u);
  EXPECT_EQ(connections.rows[0],
            (std::vector<std::string>{"a@x.fr", "APP", "2026-11-03", "certificate"}));
  auto by_protocol = reader.monthly(
      Report::kConnections, "2026-11",
      {"connections", "imap_connections", "submission_connections", "days_connected"});
  EXPECT_EQ(by_protocol.rows[0], (std::vector<std::string>{"1", "1", "0", "1"}));
  EXPECT_TRUE(reader.monthly(Report::kMessages, "2026-10", {}).rows.empty());
  EXPECT_THROW(reader.monthly(Report::kMessages, "2026-13", {}), StorageError);
  EXPECT_THROW(reader.monthly(Report::kMessages, "2026-11", {"ins_value"}), StorageError);
  // Every column of the vocabulary is computable.
  for (auto [report, fields] : {std::pair{Report::kConnections, &kConnectionsFields},
                                std::pair{Report::kMessages, &kMessagesFields},
                                std::pair{Report::kDocuments, &kDocumentsFields}}) {
    std::vector<std::string> all(fields->begin(), fields->end());
    EXPECT_EQ(reader.monthly(report, "2026-11", all).columns.size(), all.size());
  }
}

TEST_F(IndicatorJournalTest, MalformedInsAreCountedApartInTheReports) {
  {
    IndicatorJournal journal(options());
    auto malformed = event("sent:m", "sent", "a@x.fr", "2026-11-02");
    malformed.ins = InsClass::kMalformed;
    malformed.documents = {{"11488-4", "2.16.840.1.113883.6.1", InsClass::kMalformed},
                           {"34133-9", "2.16.840.1.113883.6.1", InsClass::kTest}};
    auto qualified = event("sent:q", "sent", "a@x.fr", "2026-11-02");
    auto received = event("received:a@x.fr:r", "received", "a@x.fr", "2026-11-02");
    received.ins = InsClass::kMalformed;
    received.documents = {{"11488-4", "2.16.840.1.113883.6.1", InsClass::kMalformed}};
    EXPECT_EQ(record_all(journal, {malformed, qualified, received}),
              (std::vector<bool>{true, true, true}));
  }
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find(R"("ins":"malformed")"), std::string::npos) << lines[0];
  IndicatorReader reader((dir_ / "indicators.db").string());
  auto messages = reader.monthly(Report::kMessages, "2026-11",
                                 {"sent", "sent_qualified_ins", "sent_malformed_ins",
                                  "sent_unqualified_ins", "received_malformed_ins"});
  ASSERT_EQ(messages.rows.size(), 1u);
  EXPECT_EQ(messages.rows[0], (std::vector<std::string>{"2", "1", "1", "0", "1"}));
  auto documents = reader.monthly(
      Report::kDocuments, "2026-11",
      {"direction", "code", "documents", "qualified_ins", "malformed_ins", "test_ins"});
  ASSERT_EQ(documents.rows.size(), 3u);
  EXPECT_EQ(documents.rows[0],
            (std::vector<std::string>{"received", "11488-4", "1", "0", "1", "0"}));
  EXPECT_EQ(documents.rows[1], (std::vector<std::string>{"sent", "11488-4", "2", "1", "1", "0"}));
  EXPECT_EQ(documents.rows[2], (std::vector<std::string>{"sent", "34133-9", "1", "0", "0", "1"}));
}

TEST_F(IndicatorJournalTest, SignInsAreCountedWithTheirRefusalsProfessionalsAndLps) {
  using mssgate::protocol::MailboxType;
  auto sign_in = [](int64_t at_ms, const std::string& day, const std::string& mailbox,
                    AuthMode mode, SessionProtocol protocol, const std::string& failure,
                    const std::string& professional, const std::string& lps) {
    return ConnectionEvent{at_ms,   day,          mailbox, MailboxType::kOrg, mode, protocol,
                           failure, professional, lps};
  };
  constexpr int64_t t = 1795000000000;
  {
    IndicatorJournal journal(options());
    // The ORG mailbox: two professionals through one LPS, one of them twice, and one by an
    // organisation's certificate; refusals: a token expired twice, the backend once.
    for (const auto& c : {
             sign_in(t, "2026-11-03", "org@x.fr", AuthMode::kPsc, SessionProtocol::kImap, "",
                     "810001", "lps-cabinet"),
             sign_in(t + 1, "2026-11-03", "org@x.fr", AuthMode::kPsc, SessionProtocol::kImap, "",
                     "810001", "lps-cabinet"),
             sign_in(t + 2, "2026-11-04", "org@x.fr", AuthMode::kPsc, SessionProtocol::kSubmission,
                     "", "810002", "lps-cabinet"),
             sign_in(t + 3, "2026-11-04", "org@x.fr", AuthMode::kCertificate,
                     SessionProtocol::kImap, "", "", "HOPITAL TEST"),
             sign_in(t + 4, "2026-11-04", "org@x.fr", AuthMode::kPsc, SessionProtocol::kImap,
                     "token_expired", "", ""),
             sign_in(t + 5, "2026-11-05", "org@x.fr", AuthMode::kPsc, SessionProtocol::kImap,
                     "token_expired", "", ""),
             sign_in(t + 6, "2026-11-05", "org@x.fr", AuthMode::kCertificate,
                     SessionProtocol::kImap, "backend_unavailable", "", "HOPITAL TEST"),
             // A mailbox only ever refused, and a refusal for no mailbox the directory knows.
             sign_in(t + 7, "2026-11-05", "closed@x.fr", AuthMode::kCertificate,
                     SessionProtocol::kSubmission, "mailbox_not_active", "", "HOPITAL TEST"),
             sign_in(t + 8, "2026-11-05", "", AuthMode::kNone, SessionProtocol::kImap,
                     "unsupported_mechanism", "", ""),
             // Another month.
             sign_in(t + 9, "2026-12-01", "org@x.fr", AuthMode::kPsc, SessionProtocol::kImap,
                     "token_expired", "", ""),
         })
      journal.note_connection(c);
    journal.stop();
    EXPECT_EQ(journal.stats().connections, 10u);
  }
  IndicatorReader reader((dir_ / "indicators.db").string());
  auto report = reader.monthly(
      Report::kConnections, "2026-11",
      {"mailbox", "mailbox_type", "connections", "imap_connections", "submission_connections",
       "days_connected", "failed_sign_ins", "failure_reasons", "professionals", "lps"});
  ASSERT_EQ(report.rows.size(), 2u);
  // The LPS are listed in no set order.
  auto& lps = report.rows[1].back();
  if (lps == "lps-cabinet,HOPITAL TEST") lps = "HOPITAL TEST,lps-cabinet";
  EXPECT_EQ(report.rows[0], (std::vector<std::string>{"closed@x.fr", "ORG", "0", "0", "0", "0", "1",
                                                      "mailbox_not_active=1", "0", ""}));
  EXPECT_EQ(report.rows[1], (std::vector<std::string>{"org@x.fr", "ORG", "4", "3", "1", "2", "3",
                                                      "backend_unavailable=1,token_expired=2", "2",
                                                      "HOPITAL TEST,lps-cabinet"}));
  // Day by day over every mailbox: the refusals of the unknown mailbox too.
  auto days = reader.sign_ins_by_day("2026-11");
  ASSERT_EQ(days.rows.size(), 3u);
  EXPECT_EQ(days.columns, (std::vector<std::string>{"day", "certificate", "psc", "imap",
                                                    "submission", "failed"}));
  EXPECT_EQ(days.rows[0], (std::vector<std::string>{"2026-11-03", "0", "2", "2", "0", "0"}));
  EXPECT_EQ(days.rows[1], (std::vector<std::string>{"2026-11-04", "1", "1", "1", "1", "1"}));
  EXPECT_EQ(days.rows[2], (std::vector<std::string>{"2026-11-05", "0", "0", "0", "0", "4"}));
}

TEST_F(IndicatorJournalTest, ThePerLpsReportCountsWhatEachLpsSent) {
  using mssgate::protocol::Mismatch;
  {
    IndicatorJournal journal(options());
    // LPS-1 by certificate: a clean message and one with two mismatches.
    auto clean = event("sent:1", "sent", "a@x.fr", "2026-11-02");
    auto two = event("sent:2", "sent", "b@x.fr", "2026-11-03");
    two.mismatches = {Mismatch::kInsONotQualified, Mismatch::kCodecdaDiffers};
    two.ins = InsClass::kMalformed;
    // LPS-2 signed in with a token: one message, no X-MSS-NIL in another.
    auto token = event("sent:3", "sent", "a@x.fr", "2026-11-04");
    token.nil = "LPS-2";
    token.azp = "client-2";
    token.xdm = false;
    token.documents.clear();
    token.ins = InsClass::kAbsent;
    token.mismatches = {Mismatch::kCodecdaWithoutCda};
    auto without_nil = event("sent:4", "sent", "a@x.fr", "2026-11-04");
    without_nil.nil.clear();
    without_nil.azp = "client-2";
    // Neither a received message nor another month counts.
    auto received = event("received:a@x.fr:r", "received", "a@x.fr", "2026-11-04");
    auto december = event("sent:5", "sent", "a@x.fr", "2026-12-01");
    EXPECT_EQ(record_all(journal, {clean, two, token, without_nil, received, december}),
              std::vector<bool>(6, true));
  }
  IndicatorReader reader((dir_ / "indicators.db").string());
  auto lps = reader.monthly(
      Report::kLps, "2026-11",
      {"nil", "azp", "sent", "mailboxes", "sent_without_nil", "sent_with_xdm", "sent_qualified_ins",
       "sent_malformed_ins", "sent_with_mismatch", "mismatch_ins_o_not_qualified",
       "mismatch_codecda_differs", "mismatch_codecda_without_cda", "mismatch_ins_missing"});
  ASSERT_EQ(lps.rows.size(), 3u);
  EXPECT_EQ(lps.rows[0], (std::vector<std::string>{"", "client-2", "1", "1", "1", "1", "1", "0",
                                                   "0", "0", "0", "0", "0"}));
  EXPECT_EQ(lps.rows[1], (std::vector<std::string>{"LPS-1", "", "2", "2", "0", "2", "1", "1", "1",
                                                   "1", "1", "0", "0"}));
  EXPECT_EQ(lps.rows[2], (std::vector<std::string>{"LPS-2", "client-2", "1", "1", "0", "0", "0",
                                                   "0", "1", "0", "0", "1", "0"}));
  // Every column of its vocabulary is computable, and its default is a part of it.
  std::vector<std::string> all(kLpsFields.begin(), kLpsFields.end());
  EXPECT_EQ(reader.monthly(Report::kLps, "2026-11", all).columns.size(), all.size());
  for (auto name : kLpsDefault)
    EXPECT_NE(std::find(kLpsFields.begin(), kLpsFields.end(), name), kLpsFields.end()) << name;
}

TEST_F(IndicatorJournalTest, ReportsAreMatchedToTheMessagesTheyAcknowledge) {
  constexpr int64_t kSentAt = 1795000000000;
  auto sent = [&](const std::string& key, const std::string& mailbox, const std::string& day,
                  const std::string& message_id) {
    auto e = event(key, "sent", mailbox, day);
    e.message_id = message_id;
    e.at_ms = kSentAt;
    return e;
  };
  auto report = [&](const std::string& key, const std::string& mailbox, const std::string& day,
                    const std::string& original, int64_t seconds_later) {
    auto e = event("received:" + mailbox + ":" + key, "received", mailbox, day);
    e.original_message_id = original;
    e.at_ms = kSentAt + seconds_later * 1000;
    // What a report attaches again is not counted with it.
    e.xdm = false;
    e.documents.clear();
    e.ins = InsClass::kAbsent;
    return e;
  };
  auto dsn = [&](const std::string& key, const std::string& mailbox, const std::string& day,
                 const std::string& original, int64_t seconds_later,
                 std::vector<DsnAction> actions) {
    auto e = report(key, mailbox, day, original, seconds_later);
    e.dsn = true;
    e.dsn_actions = std::move(actions);
    return e;
  };
  auto mdn = [&](const std::string& key, const std::string& mailbox, const std::string& day,
                 const std::string& original, int64_t seconds_later, Disposition disposition,
                 bool ko = false) {
    auto e = report(key, mailbox, day, original, seconds_later);
    e.mdn = true;
    e.disposition = disposition;
    e.integration_error = ko;
    return e;
  };
  auto with_envelope_id = [](IndicatorEvent e, const std::string& id) {
    e.envelope_id = id;
    return e;
  };
  auto with_original_envelope_id = [](IndicatorEvent e, const std::string& id) {
    e.original_envelope_id = id;
    return e;
  };
  {
    IndicatorJournal journal(options());
    std::vector<IndicatorEvent> events{
        // a@x.fr sends three messages on the 2nd and one on the 3rd.
        sent("sent:1", "a@x.fr", "2026-11-02", "<m1@lps>"),
        sent("sent:2", "a@x.fr", "2026-11-02", "<m2@lps>"),
        sent("sent:3", "a@x.fr", "2026-11-02", "<m3@lps>"),
        sent("sent:4", "a@x.fr", "2026-11-03", "<m4@lps>"),
        // m1: delivered to two recipients in one DSN after 4 s, displayed after 60 s, then an
        // integration error after 120 s.
        dsn("d1", "a@x.fr", "2026-11-02", "<m1@lps>", 4,
            {DsnAction::kDelivered, DsnAction::kDelivered}),
        mdn("n1", "a@x.fr", "2026-11-02", "<m1@lps>", 60, Disposition::kDisplayed),
        mdn("n2", "a@x.fr", "2026-11-02", "<m1@lps>", 120, Disposition::kProcessed, true),
        // m2: delayed, then failed; its delays are 10 and 3,600 s.
        dsn("d2", "a@x.fr", "2026-11-02", "<m2@lps>", 10, {DsnAction::kDelayed}),
        dsn("d3", "a@x.fr", "2026-11-02", "<m2@lps>", 3600, {DsnAction::kFailed}),
        // m3: nothing came back. m4: displayed the next month, still counted with its day.
        mdn("n3", "a@x.fr", "2026-12-01", "<m4@lps>", 86400, Disposition::kDisplayed),
        // A report for another mailbox's message is not a@x.fr's, nor b@x.fr's: b sent no m1.
        dsn("d4", "b@x.fr", "2026-11-02", "<m1@lps>", 5, {DsnAction::kDelivered}),
        // A report for a message the journal does not hold, and one without an id.
        mdn("n4", "a@x.fr", "2026-11-03", "<unknown@lps>", 5, Disposition::kDisplayed),
        mdn("n5", "a@x.fr", "2026-11-03", "", 5, Disposition::kDisplayed),
        // c@x.fr's message gave an ENVID: a DSN that names it by that alone (no headers
        // returned) is its; one with an envelope id nobody sent is not.
        with_envelope_id(sent("sent:5", "c@x.fr", "2026-11-04", "<m5@lps>"), "env-5"),
        with_original_envelope_id(dsn("d5", "c@x.fr", "2026-11-04", "", 6, {DsnAction::kDelivered}),
                                  "env-5"),
        with_original_envelope_id(dsn("d6", "c@x.fr", "2026-11-04", "", 7, {DsnAction::kDelivered}),
                                  "env-6"),
    };
    EXPECT_EQ(record_all(journal, events), std::vector<bool>(events.size(), true));
  }
  IndicatorReader reader((dir_ / "indicators.db").string());
  std::vector<std::string> columns{"day",
                                   "mailbox",
                                   "sent",
                                   "acknowledged",
                                   "delivered",
                                   "delayed",
                                   "failed",
                                   "displayed",
                                   "processed",
                                   "integration_errors",
                                   "unmatched_reports",
                                   "delivered_p50_s",
                                   "delivered_p90_s",
                                   "failed_p50_s",
                                   "displayed_p50_s",
                                   "displayed_p90_s"};
  auto table = reader.monthly(Report::kAcknowledgements, "2026-11", columns);
  ASSERT_EQ(table.rows.size(), 4u);
  EXPECT_EQ(table.rows[0],
            (std::vector<std::string>{"2026-11-02", "a@x.fr", "3", "2", "2", "1", "1", "1", "1",
                                      "1", "0", "4", "4", "3600", "60", "60"}));
  EXPECT_EQ(table.rows[1],
            (std::vector<std::string>{"2026-11-03", "a@x.fr", "1", "1", "0", "0", "0", "1", "0",
                                      "0", "2", "", "", "", "86400", "86400"}));
  EXPECT_EQ(table.rows[2], (std::vector<std::string>{"2026-11-02", "b@x.fr", "0", "0", "0", "0",
                                                     "0", "0", "0", "0", "1", "", "", "", "", ""}));
  EXPECT_EQ(table.rows[3],
            (std::vector<std::string>{"2026-11-04", "c@x.fr", "1", "1", "1", "0", "0", "0", "0",
                                      "0", "1", "6", "6", "", "", ""}));
  // The console's days: every mailbox together.
  auto days = reader.acknowledgement_days("2026-11");
  ASSERT_EQ(days.rows.size(), 3u);
  auto at = [&](const ReportTable& t, size_t row, const std::string& name) {
    auto i = std::find(t.columns.begin(), t.columns.end(), name) - t.columns.begin();
    return t.rows[row][static_cast<size_t>(i)];
  };
  EXPECT_EQ(at(days, 0, "day"), "2026-11-02");
  EXPECT_EQ(at(days, 0, "sent"), "3");
  EXPECT_EQ(at(days, 0, "unmatched_reports"), "1");
  EXPECT_EQ(at(days, 1, "unmatched_reports"), "2");
  // The delays of the month's displays: 60 and 86,400 s.
  EXPECT_EQ(at(days, 0, "displayed_p90_s"), "60");
  // JSON numbers, an empty delay as an empty string.
  auto json = to_json(table);
  EXPECT_NE(json.find("\"delivered_p50_s\":4,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"delivered_p50_s\":\"\","), std::string::npos) << json;
  // Every column of its vocabulary is computable; an unknown one is refused.
  std::vector<std::string> all(kAcknowledgementsFields.begin(), kAcknowledgementsFields.end());
  EXPECT_EQ(reader.monthly(Report::kAcknowledgements, "2026-11", all).columns.size(), all.size());
  EXPECT_EQ(reader.monthly(Report::kAcknowledgements, "2026-11", {}).columns.size(),
            kAcknowledgementsDefault.size());
  EXPECT_THROW(reader.monthly(Report::kAcknowledgements, "2026-11", {"ins_value"}), StorageError);
}

TEST_F(IndicatorJournalTest, TheLogCatchesUpWithTheJournal) {
  {
    IndicatorJournal journal({(dir_ / "indicators.db").string(), ""});  // no log at first
    record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02"),
                         event("sent:2", "sent", "a@x.fr", "2026-11-02")});
  }
  EXPECT_TRUE(log_lines().empty());
  {
    IndicatorJournal journal(options());  // opened with a log: the two events are written
    EXPECT_EQ(log_lines().size(), 2u);
    record_all(journal, {event("sent:3", "sent", "a@x.fr", "2026-11-02")});
  }
  auto lines = log_lines();
  ASSERT_GE(lines.size(), 3u);
  EXPECT_NE(lines[0].find("\"key\":\"sent:1\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[2].find("\"key\":\"sent:3\""), std::string::npos) << lines[2];
}

// Group commit: events queued while the journal waits for the database are committed together.
// A second connection holds the write lock (BEGIN IMMEDIATE; the journal waits for it, up to its
// 10 s busy timeout) while eight writers queue 400 events, then lets go. The journal's writer
// took at most one batch before the lock stopped it; everything else was queued by the time that
// batch committed, and goes in the next one (max_batch is 1024): two commits at most, where a
// journal committing one event at a time makes 400.
TEST_F(IndicatorJournalTest, ManyWritersShareCommits) {
  constexpr int kWriters = 8;
  constexpr int kEventsPerWriter = 50;
  constexpr size_t kEvents = size_t{kWriters} * kEventsPerWriter;
  // Declared before the journal, whose writer thread runs the callbacks until it stops.
  std::mutex mutex;
  std::condition_variable done;
  size_t left = kEvents;
  size_t durable = 0;

  IndicatorJournal journal(options());
  sqlite3* lock_holder = nullptr;
  int opened = sqlite3_open((dir_ / "indicators.db").c_str(), &lock_holder);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> close_holder(lock_holder, &sqlite3_close);
  ASSERT_EQ(opened, SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock_holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(lock_holder);

  std::vector<std::thread> writers;
  writers.reserve(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kEventsPerWriter; ++i) {
        journal.record(event("sent:" + std::to_string(w) + "-" + std::to_string(i), "sent",
                             "a@x.fr", "2026-11-02"),
                       [&](bool ok) {
                         std::lock_guard lock(mutex);
                         if (ok) ++durable;
                         --left;
                         done.notify_all();
                       });
      }
    });
  }
  for (auto& t : writers)
    t.join();
  // Every event is queued, and none can be committed while the lock is held.
  EXPECT_EQ(journal.stats().commits, 0u);
  ASSERT_EQ(sqlite3_exec(lock_holder, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(lock_holder);
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(60), [&] { return left == 0; }))
        << left << " events not committed after 60 s";
  }
  journal.stop();
  auto stats = journal.stats();
  EXPECT_EQ(durable, kEvents);
  EXPECT_EQ(stats.recorded, kEvents);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_GE(stats.commits, 1u);
  EXPECT_LE(stats.commits, 2u) << "the queued events were not committed together";
}

// What the journal reported through on_error, and a fault to inject at the next catch-ups.
struct WriterFaults {
  std::mutex mutex;
  std::vector<std::string> reports;
  std::atomic<int> catch_ups_to_fail{0};

  void arm(IndicatorJournal::Options& options) {
    options.on_error = [this](std::string_view what) {
      std::lock_guard lock(mutex);
      reports.emplace_back(what);
    };
    options.before_catch_up = [this] {
      if (catch_ups_to_fail > 0) {
        --catch_ups_to_fail;
        throw StorageError("injected catch-up failure");
      }
    };
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex);
    return reports;
  }
};

TEST_F(IndicatorJournalTest, AFailedLogCatchUpIsReportedAndRecordingGoesOn) {
  WriterFaults faults;
  auto settings = options();
  faults.arm(settings);
  {
    IndicatorJournal journal(settings);
    EXPECT_EQ(record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
    faults.catch_ups_to_fail = 1;
    journal.reopen_log();  // its catch-up fails on the writer thread
    EXPECT_EQ(record_all(journal, {event("sent:2", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
    EXPECT_EQ(record_all(journal, {event("sent:3", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
    journal.stop();
    EXPECT_EQ(journal.stats().recorded, 3u);
    EXPECT_EQ(journal.stats().errors, 1u);
  }
  auto reports = faults.seen();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("injected catch-up failure"), std::string::npos) << reports[0];
  // The catch-up was tried again with the next commit: the log lacks nothing.
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string key = "\"key\":\"sent:" + std::to_string(i + 1) + "\"";
    EXPECT_NE(lines[i].find(key), std::string::npos) << lines[i];
  }
}

TEST_F(IndicatorJournalTest, AFailedCatchUpAtOpeningLeavesTheJournalOpen) {
  {
    IndicatorJournal journal({(dir_ / "indicators.db").string(), ""});
    record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02")});
  }
  WriterFaults faults;
  faults.catch_ups_to_fail = 1;
  auto settings = options();
  faults.arm(settings);
  {
    IndicatorJournal journal(settings);
    EXPECT_EQ(faults.seen().size(), 1u);
    EXPECT_TRUE(log_lines().empty());
    EXPECT_EQ(record_all(journal, {event("sent:2", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
  }
  EXPECT_EQ(log_lines().size(), 2u);
}

// The SQLite store, whose commits of events meet another writer's a given number of times (what
// a deadlock between two gateways on the same keys looks like to the writer).
class ConflictingStore final : public JournalStore {
 public:
  ConflictingStore(std::unique_ptr<JournalStore> store, int conflicts)
      : store_(std::move(store)), conflicts_(conflicts) {}
  void begin() override {
    store_->begin();
    events_ = false;
  }
  void commit() override {
    if (events_ && conflicts_ > 0) {
      --conflicts_;
      throw StorageConflict("deadlock detected (injected)");
    }
    store_->commit();
  }
  void roll_back() noexcept override { store_->roll_back(); }
  std::optional<int64_t> add(const IndicatorEvent& e) override {
    events_ = true;
    return store_->add(e);
  }
  void add(const ConnectionEvent& c) override {
    events_ = true;
    store_->add(c);
  }
  int64_t add_pending(const IndicatorEvent& e) override { return store_->add_pending(e); }
  std::optional<int64_t> promote(int64_t id) override { return store_->promote(id); }
  void drop(int64_t id) override { store_->drop(id); }
  void save_log_position(int64_t seq) override { store_->save_log_position(seq); }
  int64_t log_position() override { return store_->log_position(); }
  std::vector<int64_t> pending_ids() override { return store_->pending_ids(); }
  std::vector<std::pair<int64_t, IndicatorEvent>> read_events(int64_t after,
                                                              int64_t limit) override {
    return store_->read_events(after, limit);
  }
  int64_t newest_seq() override { return store_->newest_seq(); }
  std::vector<ConnectionDay> connection_days() override { return store_->connection_days(); }
  std::vector<ConnectionDay> sign_in_days() override { return store_->sign_in_days(); }

 private:
  std::unique_ptr<JournalStore> store_;
  int conflicts_;
  bool events_ = false;
};

TEST_F(IndicatorJournalTest, ATurnThatMetAnotherWritersIsRunAgain) {
  auto with_conflicts = [&](int conflicts) {
    auto o = options();
    o.open_store = [path = o.path, conflicts] {
      return std::make_unique<ConflictingStore>(open_sqlite_journal(path), conflicts);
    };
    return o;
  };
  {
    // Three conflicts: the fourth attempt commits, every event once, nothing reported.
    WriterFaults faults;
    auto settings = with_conflicts(3);
    faults.arm(settings);
    IndicatorJournal journal(settings);
    EXPECT_EQ(record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02"),
                                   event("sent:2", "sent", "a@x.fr", "2026-11-02")}),
              (std::vector<bool>{true, true}));
    journal.stop();
    EXPECT_EQ(journal.stats().recorded, 2u);
    EXPECT_EQ(journal.stats().duplicates, 0u);
    EXPECT_TRUE(faults.seen().empty());
  }
  EXPECT_EQ(log_lines().size(), 2u);
  {
    // Conflicts at every attempt: the waiters are told, the failure reported, nothing kept.
    WriterFaults faults;
    auto settings = with_conflicts(1000);
    faults.arm(settings);
    IndicatorJournal journal(settings);
    EXPECT_EQ(record_all(journal, {event("sent:3", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{false});
    journal.stop();
    ASSERT_EQ(faults.seen().size(), 1u);
    EXPECT_NE(faults.seen()[0].find("deadlock detected (injected)"), std::string::npos);
  }
  IndicatorReader reader((dir_ / "indicators.db").string());
  auto table = reader.monthly(Report::kMessages, "2026-11", {"mailbox", "sent"});
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_EQ(table.rows[0][1], "2");
}

// A session answers a sign-in only once the journal has it: its waiter hears after the commit,
// and hears false when the commit could not be made.
TEST_F(IndicatorJournalTest, ASignInsWaiterHearsOnceItIsCommittedOrCouldNotBe) {
  ConnectionEvent sign_in{1795000000000,
                          "2026-11-03",
                          "a@x.fr",
                          mssgate::protocol::MailboxType::kApp,
                          AuthMode::kCertificate,
                          SessionProtocol::kImap,
                          "",
                          "",
                          "HOPITAL TEST"};
  {
    std::promise<void> release;
    auto released = release.get_future().share();
    auto settings = options();
    settings.before_commit = [released] { released.wait(); };
    IndicatorJournal journal(settings);
    std::promise<bool> told;
    auto durable = told.get_future();
    journal.note_connection(sign_in, [&told](bool ok) { told.set_value(ok); });
    // The commit is held: no answer yet.
    EXPECT_EQ(durable.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
    release.set_value();
    EXPECT_TRUE(durable.get());
    journal.stop();
    EXPECT_EQ(journal.stats().connections, 1u);
  }
  {
    // Every commit fails: the waiter hears false, the failure is reported.
    WriterFaults faults;
    auto settings = options();
    settings.open_store = [path = settings.path] {
      return std::make_unique<ConflictingStore>(open_sqlite_journal(path), 1000);
    };
    faults.arm(settings);
    IndicatorJournal journal(settings);
    std::promise<bool> told;
    journal.note_connection(sign_in, [&told](bool ok) { told.set_value(ok); });
    EXPECT_FALSE(told.get_future().get());
    journal.stop();
    ASSERT_EQ(faults.seen().size(), 1u);
    EXPECT_NE(faults.seen()[0].find("1 sign-ins"), std::string::npos) << faults.seen()[0];
  }
  IndicatorReader reader((dir_ / "indicators.db").string());
  auto days = reader.sign_ins_by_day("2026-11");
  ASSERT_EQ(days.rows.size(), 1u);
  EXPECT_EQ(days.rows[0], (std::vector<std::string>{"2026-11-03", "1", "0", "1", "0", "0"}));
}

TEST_F(IndicatorJournalTest, AValueOutsideTheVocabularyIsReportedNotFatal) {
  {
    IndicatorJournal journal({(dir_ / "indicators.db").string(), ""});
    record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02")});
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "indicators.db").c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "UPDATE indicator_event SET auth_mode = 'kerberos'", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  WriterFaults faults;
  auto settings = options();
  faults.arm(settings);
  {
    IndicatorJournal journal(settings);
    EXPECT_EQ(record_all(journal, {event("sent:2", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
    journal.stop();
    EXPECT_EQ(journal.stats().recorded, 1u);
    EXPECT_EQ(journal.stats().errors, 2u);  // at opening, and again after the commit
  }
  auto reports = faults.seen();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_NE(reports[0].find("indicator_event.auth_mode"), std::string::npos) << reports[0];
  EXPECT_EQ(reports[0].find("kerberos"), std::string::npos) << reports[0];
}

TEST(IndicatorReports, CsvJsonAndMonths) {
  ReportTable table{{"mailbox", "sent", "nil"},
                    {{"a@x.fr", "3", "LPS;1"}, {"b\"@x.fr", "0", ""}},
                    {false, true, false}};
  EXPECT_EQ(to_csv(table, ';'), "mailbox;sent;nil\r\na@x.fr;3;\"LPS;1\"\r\n\"b\"\"@x.fr\";0;\r\n");
  EXPECT_EQ(to_json(table),
            "[{\"mailbox\":\"a@x.fr\",\"sent\":3,\"nil\":\"LPS;1\"},"
            "{\"mailbox\":\"b\\\"@x.fr\",\"sent\":0,\"nil\":\"\"}]\n");
  std::string first, last;
  ASSERT_TRUE(month_days("2028-02", first, last));
  EXPECT_EQ(last, "2028-02-29");
  ASSERT_TRUE(month_days("2026-11", first, last));
  EXPECT_EQ(first, "2026-11-01");
  EXPECT_EQ(last, "2026-11-30");
  EXPECT_FALSE(month_days("2026-1", first, last));
  EXPECT_FALSE(month_days("2026-00", first, last));
  EXPECT_EQ(day_of(0, true), "1970-01-01");
}

TEST(IndicatorReports, CsvCellsThatASpreadsheetWouldRunAreNeutralised) {
  ReportTable table{{"mailbox", "sent", "nil", "code"},
                    {{"=cmd@x.fr", "3", "=HYPERLINK(\"http://x\")", "+1"},
                     {"-2+3@x.fr", "0", "@SUM(A1)", "\tx"},
                     {"a@x.fr", "12", "\rA", "LPS-1=2"},
                     {"a@x.fr", "0", "", "'quoted"}},
                    {false, true, false, false}};
  EXPECT_EQ(to_csv(table, ';'),
            "mailbox;sent;nil;code\r\n"
            "'=cmd@x.fr;3;\"'=HYPERLINK(\"\"http://x\"\")\";'+1\r\n"
            "'-2+3@x.fr;0;'@SUM(A1);'\tx\r\n"
            "a@x.fr;12;\"'\rA\";LPS-1=2\r\n"
            "a@x.fr;0;;'quoted\r\n");
  EXPECT_EQ(csv_neutralised("=1+1"), "'=1+1");
  EXPECT_EQ(csv_neutralised("1=1"), "1=1");
  EXPECT_EQ(csv_neutralised(""), "");
  // JSON keeps the values as they are: no spreadsheet reads it.
  EXPECT_NE(to_json(table).find("\"nil\":\"=HYPERLINK("), std::string::npos);
}

TEST(IndicatorEvents, ValuesFromAMessageAreCappedAndFreeOfControlCharacters) {
  using mssgate::protocol::sanitized_text;
  EXPECT_EQ(sanitized_text("LPS-1.2", 64), "LPS-1.2");
  EXPECT_EQ(sanitized_text("a\tb\rc\nd\x7f" + std::string(1, '\0') + "e", 64), "a?b?c?d??e");
  EXPECT_EQ(sanitized_text("<id@x> (\xc2\x85) \xe9t\xc3\xa9", 64), "<id@x> (?) ?t\xc3\xa9");
  EXPECT_EQ(sanitized_text("\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82", 64),
            "??? ?? ???? ??");
  EXPECT_EQ(sanitized_text(std::string(300, 'x'), 250), std::string(250, 'x'));
  // Cut between two characters, never inside one.
  EXPECT_EQ(sanitized_text("ab\xc3\xa9", 3), "ab");
  EXPECT_EQ(sanitized_text("\xf0\x9f\x93\xa7mail", 64), "\xf0\x9f\x93\xa7mail");

  mssgate::protocol::MessageFacts facts;
  facts.claims.nil = "LPS\x1b[31m\xc2\x9b" + std::string(100, 'n');
  facts.claims.cda_codes = {"11488-4", "=1+1\x07"};
  facts.message_id = "<" + std::string(300, 'm') + "\r\n\t@x>";
  facts.documents.push_back({});
  facts.documents.back().code = "11488\x01-4";
  facts.documents.back().code_system = std::string(80, 'c');
  IndicatorEvent event;
  mssgate::daemon::fill_from_facts(event, facts);
  EXPECT_EQ(event.nil, "LPS?[31m?" + std::string(kMaxNilBytes - 9, 'n'));
  EXPECT_EQ(event.claim_codecda, "11488-4,=1+1?");
  EXPECT_EQ(event.message_id, "<" + std::string(kMaxMessageIdBytes - 1, 'm'));
  facts.message_id = "<a\tb\r@x>";
  mssgate::daemon::fill_from_facts(event = {}, facts);
  EXPECT_EQ(event.message_id, "<a?b?@x>");
  ASSERT_EQ(event.documents.size(), 1u);
  EXPECT_EQ(event.documents[0].code, "11488?-4");
  EXPECT_EQ(event.documents[0].code_system, std::string(kMaxCodeBytes, 'c'));
}

TEST_F(IndicatorJournalTest, TheWriteAheadLogIsCheckpointedAsItGrows) {
  // The log must be copied into the database as it grows (SQLite's automatic checkpoint, which
  // a writer that turned it off for a thread of its own would have to replace), or it would
  // grow for ever.
  IndicatorJournal journal(options());
  auto file_size = [&](const char* suffix) {
    std::error_code ec;
    auto size = fs::file_size(dir_ / (std::string("indicators.db") + suffix), ec);
    return ec ? uintmax_t{0} : size;
  };
  uintmax_t database_at_start = file_size("");
  uintmax_t largest_log = 0;
  for (int batch = 0; batch < 30; ++batch) {
    std::vector<IndicatorEvent> events;
    events.reserve(500);
    for (int i = 0; i < 500; ++i) {
      events.push_back(event("sent:" + std::to_string(batch) + "-" + std::to_string(i), "sent",
                             "a" + std::to_string(i % 50) + "@x.fr", "2026-11-02"));
    }
    auto durable = record_all(journal, std::move(events));
    ASSERT_TRUE(std::all_of(durable.begin(), durable.end(), [](bool ok) { return ok; }));
    largest_log = std::max(largest_log, file_size("-wal"));
  }
  // The pages reach the database file, within a few seconds of the last commit.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (file_size("") < database_at_start + (uintmax_t{2} << 20) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(file_size(""), database_at_start + (uintmax_t{2} << 20))
      << "largest log " << largest_log << ", log now " << file_size("-wal");
  // Unchecked, the log would have held every page written (about 12 MiB here); checkpointed
  // past 1,000 pages (4 MiB), it is reused from its start.
  EXPECT_LT(largest_log, uintmax_t{8} << 20) << "largest log " << largest_log;
}

namespace {

// The SQLite store behind the interface of a store that sends turns (PostgreSQL's): a turn sent
// is written when it is finished, in the order sent. It counts the turns out at once, fails
// the finishes it is told to, and counts the calls the writer may not make while a turn is out.
class TurnSendingStore final : public JournalStore {
 public:
  struct Shared {
    std::mutex mutex;
    size_t most_out = 0;
    int misuses = 0;
    // The finishes to fail, from the next: a conflict (met another gateway) or an error.
    std::vector<bool> failures_conflict;
    int sends_to_fail = 0;  // the next sends that throw (a connection lost while sending)
  };

  TurnSendingStore(std::unique_ptr<JournalStore> store, Shared& shared)
      : store_(std::move(store)), shared_(shared) {}

  bool sends_turns() const override { return true; }
  void send_turn(const std::vector<const IndicatorEvent*>& events,
                 const std::vector<ConnectionEvent>& connections,
                 std::optional<int64_t> log_position) override {
    {
      std::lock_guard lock(shared_.mutex);
      if (shared_.sends_to_fail > 0) {
        --shared_.sends_to_fail;
        throw StorageError("could not send (injected)");
      }
    }
    Sent turn;
    for (const auto* e : events)
      turn.events.push_back(*e);
    turn.connections = connections;
    turn.log_position = log_position;
    out_.push_back(std::move(turn));
    std::lock_guard lock(shared_.mutex);
    shared_.most_out = std::max(shared_.most_out, out_.size());
    if (out_.size() > static_cast<size_t>(kTurnsInFlight)) ++shared_.misuses;
  }
  std::vector<std::optional<int64_t>> finish_turn() override {
    if (out_.empty()) throw StorageError("no turn out");
    Sent turn = std::move(out_.front());
    out_.pop_front();
    {
      std::lock_guard lock(shared_.mutex);
      if (!shared_.failures_conflict.empty()) {
        bool conflict = shared_.failures_conflict.front();
        shared_.failures_conflict.erase(shared_.failures_conflict.begin());
        if (conflict) throw StorageConflict("deadlock detected (injected)");
        throw StorageError("connection lost (injected)");
      }
    }
    std::vector<const IndicatorEvent*> events;
    for (const auto& e : turn.events)
      events.push_back(&e);
    store_->begin();
    auto seqs = store_->add_all(events);
    store_->add_all(turn.connections);
    if (turn.log_position) store_->save_log_position(*turn.log_position);
    store_->commit();
    return seqs;
  }

  void begin() override {
    check_idle();
    store_->begin();
  }
  void commit() override { store_->commit(); }
  void roll_back() noexcept override { store_->roll_back(); }
  std::optional<int64_t> add(const IndicatorEvent& e) override { return store_->add(e); }
  void add(const ConnectionEvent& c) override { store_->add(c); }
  int64_t add_pending(const IndicatorEvent& e) override { return store_->add_pending(e); }
  std::optional<int64_t> promote(int64_t id) override { return store_->promote(id); }
  void drop(int64_t id) override { store_->drop(id); }
  void save_log_position(int64_t seq) override {
    check_idle();
    store_->save_log_position(seq);
  }
  int64_t log_position() override { return store_->log_position(); }
  std::vector<int64_t> pending_ids() override { return store_->pending_ids(); }
  std::vector<std::pair<int64_t, IndicatorEvent>> read_events(int64_t after,
                                                              int64_t limit) override {
    check_idle();
    return store_->read_events(after, limit);
  }
  int64_t newest_seq() override { return store_->newest_seq(); }
  std::vector<ConnectionDay> connection_days() override { return store_->connection_days(); }
  std::vector<ConnectionDay> sign_in_days() override { return store_->sign_in_days(); }

 private:
  struct Sent {
    std::vector<IndicatorEvent> events;
    std::vector<ConnectionEvent> connections;
    std::optional<int64_t> log_position;
  };
  void check_idle() {
    if (out_.empty()) return;
    std::lock_guard lock(shared_.mutex);
    ++shared_.misuses;
  }

  std::unique_ptr<JournalStore> store_;
  Shared& shared_;
  std::deque<Sent> out_;
};

// A journal over TurnSendingStore whose first turn is held (before_commit) until release():
// the events recorded meanwhile make a second turn, sent while the first is out.
struct HeldFirstTurn {
  TurnSendingStore::Shared shared;
  std::promise<void> release_first;
  std::shared_future<void> released = release_first.get_future().share();
  std::atomic<int> turns{0};

  IndicatorJournal::Options options(IndicatorJournal::Options o) {
    o.open_store = [this, path = o.path] {
      return std::make_unique<TurnSendingStore>(open_sqlite_journal(path), shared);
    };
    o.before_commit = [this] {
      if (turns++ == 0) released.wait();
    };
    return o;
  }
};

// Records `events` without waiting; `results` gets each answer (nullopt until it comes).
struct Answers {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::optional<bool>> results;

  void record(IndicatorJournal& journal, std::vector<IndicatorEvent> events) {
    for (auto& e : events) {
      size_t i;
      {
        std::lock_guard lock(mutex);
        i = results.size();
        results.emplace_back();
      }
      journal.record(std::move(e), [this, i](bool durable) {
        std::lock_guard lock(mutex);
        results[i] = durable;
        changed.notify_all();
      });
    }
  }
  std::vector<bool> wait_all() {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, std::chrono::seconds(30), [&] {
      return std::all_of(results.begin(), results.end(), [](const auto& r) { return r; });
    });
    std::vector<bool> out;
    for (const auto& r : results)
      out.push_back(r.value_or(false));
    return out;
  }
};

// What a journal over TurnSendingStore did with a first turn held and more events meanwhile.
struct HeldTurnRun {
  std::vector<bool> durable;
  IndicatorJournal::Stats stats;
  std::vector<std::string> reports;
  size_t most_out = 0;
  int misuses = 0;
};

// A journal whose finishes fail as `failures_conflict` says records `first`, which it takes
// and holds (HeldFirstTurn), then `then` meanwhile; the first turn released, every answer is
// waited for and the journal stopped.
HeldTurnRun record_behind_a_held_turn(IndicatorJournal::Options options,
                                      std::vector<bool> failures_conflict, IndicatorEvent first,
                                      std::vector<IndicatorEvent> then) {
  HeldFirstTurn held;
  held.shared.failures_conflict = std::move(failures_conflict);
  WriterFaults faults;
  auto settings = held.options(std::move(options));
  faults.arm(settings);
  HeldTurnRun run;
  {
    IndicatorJournal journal(settings);
    Answers answers;
    answers.record(journal, {std::move(first)});
    while (held.turns == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    answers.record(journal, std::move(then));
    held.release_first.set_value();
    run.durable = answers.wait_all();
    journal.stop();
    run.stats = journal.stats();
  }
  run.reports = faults.seen();
  run.most_out = held.shared.most_out;
  run.misuses = held.shared.misuses;
  return run;
}

}  // namespace

TEST_F(IndicatorJournalTest, ATurnIsSentWhileTheOneBeforeIsOutAndEveryEventIsLoggedInOrder) {
  std::vector<IndicatorEvent> more;
  for (int i = 1; i < 300; ++i)
    more.push_back(event("sent:" + std::to_string(i), "sent", "a@x.fr", "2026-11-02"));
  more.push_back(event("sent:7", "sent", "a@x.fr", "2026-11-02"));  // a key seen: counted once
  auto run = record_behind_a_held_turn(
      options(), {}, event("sent:0", "sent", "a@x.fr", "2026-11-02"), std::move(more));
  EXPECT_EQ(run.stats.recorded, 300u);
  EXPECT_EQ(run.stats.duplicates, 1u);
  EXPECT_EQ(run.stats.failed, 0u);
  EXPECT_TRUE(std::all_of(run.durable.begin(), run.durable.end(), [](bool ok) { return ok; }));
  EXPECT_EQ(run.most_out, 2u) << "no turn was sent while another was out";
  EXPECT_EQ(run.misuses, 0);
  EXPECT_TRUE(run.reports.empty()) << run.reports.front();
  // Each event once in the log, in seq order.
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 300u);
  std::set<std::string> keys;
  int64_t last_seq = 0;
  for (const auto& line : lines) {
    auto seq = std::stoll(line.substr(line.find("\"seq\":") + 6));
    EXPECT_GT(seq, last_seq) << line;
    last_seq = seq;
    auto at = line.find("\"key\":\"") + 7;
    keys.insert(line.substr(at, line.find('"', at) - at));
  }
  EXPECT_EQ(keys.size(), 300u);
}

TEST_F(IndicatorJournalTest, ASentTurnThatFailsIsAnsweredAndTheOneSentAfterItIsKept) {
  auto run =
      record_behind_a_held_turn(options(), {false}, event("sent:1", "sent", "a@x.fr", "2026-11-02"),
                                {event("sent:2", "sent", "a@x.fr", "2026-11-02"),
                                 event("sent:3", "sent", "a@x.fr", "2026-11-02")});
  EXPECT_EQ(run.stats.recorded, 2u);
  EXPECT_EQ(run.stats.failed, 1u);
  EXPECT_EQ(run.durable, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(run.most_out, 2u);
  EXPECT_EQ(run.misuses, 0);
  const auto& reports = run.reports;
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("could not commit 1 indicator events"), std::string::npos)
      << reports[0];
  EXPECT_NE(reports[0].find("connection lost (injected)"), std::string::npos) << reports[0];
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("\"key\":\"sent:2\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"key\":\"sent:3\""), std::string::npos) << lines[1];
}

TEST_F(IndicatorJournalTest, ASentTurnThatMetAnotherGatewaysRunsAgainOnItsOwn) {
  auto run =
      record_behind_a_held_turn(options(), {true}, event("sent:1", "sent", "a@x.fr", "2026-11-02"),
                                {event("sent:2", "sent", "a@x.fr", "2026-11-02")});
  EXPECT_EQ(run.stats.recorded, 2u);
  EXPECT_EQ(run.stats.failed, 0u);
  EXPECT_EQ(run.durable, (std::vector<bool>{true, true}));
  EXPECT_EQ(run.misuses, 0);
  EXPECT_TRUE(run.reports.empty()) << run.reports.front();
  // The turn run again came after the one sent behind it: the log has both, in seq order.
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("\"key\":\"sent:2\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"key\":\"sent:1\""), std::string::npos) << lines[1];
}

TEST_F(IndicatorJournalTest, ATurnThatCannotBeSentIsAnsweredAndTheNextIsSent) {
  TurnSendingStore::Shared shared;
  shared.sends_to_fail = 1;
  WriterFaults faults;
  auto settings = options();
  settings.open_store = [&shared, path = settings.path] {
    return std::make_unique<TurnSendingStore>(open_sqlite_journal(path), shared);
  };
  faults.arm(settings);
  {
    IndicatorJournal journal(settings);
    EXPECT_EQ(record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{false});
    EXPECT_EQ(record_all(journal, {event("sent:1", "sent", "a@x.fr", "2026-11-02")}),
              std::vector<bool>{true});
    journal.stop();
    EXPECT_EQ(journal.stats().recorded, 1u);
    EXPECT_EQ(journal.stats().failed, 1u);
  }
  EXPECT_EQ(shared.misuses, 0);
  auto reports = faults.seen();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("could not commit 1 indicator events"), std::string::npos)
      << reports[0];
  EXPECT_NE(reports[0].find("could not send (injected)"), std::string::npos) << reports[0];
  EXPECT_EQ(log_lines().size(), 1u);
}
