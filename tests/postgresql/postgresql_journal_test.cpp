// The indicator journal in PostgreSQL against a real PostgreSQL: gateways share events and
// sign-ins, a key counts once whichever gateway records it, each keeps its own deliveries under
// way and its own log, the reports read as they do from SQLite, a single host's journal moves
// whole, and a lost connection is opened again.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "storage/indicator_journal.hpp"
#include "storage/indicator_report_columns.hpp"
#include "storage/indicator_reports.hpp"
#include "storage/journal_store.hpp"
#include "storage/postgresql.hpp"
#include "tests/postgresql/postgres_database.hpp"
#include "tests/unit/journal_waits.hpp"

using namespace mssgate;
using namespace mssgate::storage;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Messages of a month, sent and received, with and without documents, INS, claims, mismatches.
std::vector<IndicatorEvent> month_of_events(const std::string& prefix) {
  std::vector<IndicatorEvent> events;
  const std::vector<std::string> mailboxes{"app.hopital@test.fr", "dr.martin@test.fr",
                                           "Cabinet-B@test.fr", "zoe@test.fr"};
  for (int i = 0; i < 40; ++i) {
    IndicatorEvent e;
    e.key = prefix + "-" + std::to_string(i);
    e.at_ms = 1795000000000 + int64_t{i} * 3600'000;
    e.day = "2026-11-" + std::string(i % 28 + 1 < 10 ? "0" : "") + std::to_string(i % 28 + 1);
    e.direction = i % 3 == 0 ? Direction::kReceived : Direction::kSent;
    e.mailbox = mailboxes[static_cast<size_t>(i) % mailboxes.size()];
    e.mailbox_type = i % 4 == 0 ? RecordedMailboxType{} : protocol::MailboxType::kPer;
    e.auth_mode = e.direction == Direction::kSent
                      ? (i % 2 ? AuthMode::kPsc : AuthMode::kCertificate)
                      : AuthMode::kNone;
    if (e.auth_mode == AuthMode::kPsc) e.azp = "lps-" + std::to_string(i % 2);
    e.nil = i % 5 == 0 ? "" : "NIL-" + std::to_string(i % 3);
    e.message_id = "<" + std::to_string(i) + "@test.fr>";
    e.queue_id = "Q" + std::to_string(i);
    e.size = 1000 + static_cast<uint64_t>(i) * 17;
    e.recipients = 1 + i % 3;
    if (e.direction == Direction::kSent) {
      e.to_same_operator = i % 2;
      e.to_other_operator = e.recipients - e.to_same_operator - (i % 7 == 0 ? 1 : 0);
      e.to_patient = i % 7 == 0 ? 1 : 0;
    } else {
      e.counterpart = i % 2 ? Counterpart::kOtherOperator : Counterpart::kPatient;
    }
    e.inspected = i % 11 != 0;
    if (!e.inspected) e.uninspectable_reason = "archive_too_large";
    e.xdm = i % 2 == 0;
    for (int d = 0; d < i % 3; ++d) {
      e.documents.push_back({d ? "11490-0" : "11488-4", "2.16.840.1.113883.6.1",
                             d ? InsClass::kTest : InsClass::kQualified});
    }
    e.ins = e.documents.empty() ? InsClass::kAbsent : InsClass::kQualified;
    e.claim_codecda = e.documents.empty() ? "" : "11488-4";
    e.claim_ins =
        i % 4 == 1 ? ClaimedIns::kYes : (i % 4 == 2 ? ClaimedIns::kNo : ClaimedIns::kAbsent);
    e.claim_xdm_subject = i % 6 == 0;
    if (i % 9 == 0)
      e.mismatches = {protocol::Mismatch::kCodecdaMissing, protocol::Mismatch::kInsMissing};
    e.mes_fin = i % 8 == 0;
    e.mdn = i % 10 == 0;
    e.mdn_requested = i % 5 == 1;
    // Reports for the message the same mailbox sent four events before: DSNs and MDNs, one
    // for a message the journal does not hold.
    if (e.direction == Direction::kReceived && i >= 4) {
      e.dsn = i % 2 == 0;
      e.mdn = !e.dsn;
      if (e.dsn) {
        e.dsn_actions = {DsnAction::kDelivered};
        if (i % 4 == 0) e.dsn_actions.push_back(DsnAction::kFailed);
        e.original_envelope_id = "env-" + std::to_string(i - 4);
      } else {
        e.disposition = i % 4 == 1 ? Disposition::kDisplayed : Disposition::kProcessed;
        e.integration_error = i % 9 == 0;
      }
      e.original_message_id =
          "<" + (i == 39 ? std::string("nope") : std::to_string(i - 4)) + "@test.fr>";
      // Some DSNs name the message by its envelope id alone (no header section returned).
      if (e.dsn && i % 8 == 4) e.original_message_id.clear();
    }
    if (e.direction == Direction::kSent) e.envelope_id = "env-" + std::to_string(i);
    events.push_back(std::move(e));
  }
  return events;
}

std::vector<ConnectionEvent> month_of_sign_ins() {
  std::vector<ConnectionEvent> sign_ins;
  for (int i = 0; i < 12; ++i) {
    ConnectionEvent c;
    c.at_ms = 1795000000000 + int64_t{i} * 7200'000;
    c.day = i % 2 ? "2026-11-03" : "2026-10-30";
    c.mailbox = i % 3 ? "dr.martin@test.fr" : "app.hopital@test.fr";
    c.mailbox_type = protocol::MailboxType::kPer;
    c.auth_mode = i % 2 ? AuthMode::kPsc : AuthMode::kCertificate;
    c.protocol = i % 4 ? SessionProtocol::kImap : SessionProtocol::kSubmission;
    if (c.auth_mode == AuthMode::kPsc) {
      c.professional = i % 3 == 1 ? "810001" : "810002";
      c.lps = "lps-" + std::to_string(i % 2);
    } else {
      c.lps = "HOPITAL TEST";
    }
    sign_ins.push_back(c);
  }
  // Refusals: of a known mailbox, and of one the directory did not know.
  for (int i = 0; i < 5; ++i) {
    ConnectionEvent c;
    c.at_ms = 1795000000000 + int64_t{i} * 60'000;
    c.day = "2026-11-0" + std::to_string(3 + i % 2);
    c.mailbox = i < 3 ? "dr.martin@test.fr" : "";
    c.mailbox_type = protocol::MailboxType::kPer;
    if (c.mailbox.empty()) c.mailbox_type.reset();
    c.auth_mode = i % 2 ? AuthMode::kPsc : AuthMode::kCertificate;
    c.failure = i % 2 ? "token_expired" : "mailbox_not_bound";
    if (c.auth_mode == AuthMode::kCertificate) c.lps = "HOPITAL TEST";
    sign_ins.push_back(c);
  }
  return sign_ins;
}

using test_journal::record_all;
using test_journal::record_pending;
using test_journal::settle;

// A report as text; lists of distinct values sorted (their order is the database's).
std::string text_of(const ReportTable& table) {
  std::string out;
  for (size_t i = 0; i < table.columns.size(); ++i)
    out += table.columns[i] + (table.counts[i] ? "#" : "") + "|";
  out += "\n";
  for (const auto& row : table.rows) {
    for (std::string cell : row) {
      std::vector<std::string> parts;
      std::stringstream in(cell);
      for (std::string part; std::getline(in, part, ',');)
        parts.push_back(part);
      std::sort(parts.begin(), parts.end());
      cell.clear();
      for (const auto& p : parts)
        cell += (cell.empty() ? "" : ",") + p;
      out += cell + "|";
    }
    out += "\n";
  }
  return out;
}

// Events read back, by key: their order is the commits'.
std::map<std::string, IndicatorEvent> events_by_key(
    const std::vector<std::pair<int64_t, IndicatorEvent>>& read) {
  std::map<std::string, IndicatorEvent> by_key;
  for (const auto& [seq, event] : read)
    by_key[event.key] = event;
  return by_key;
}

std::vector<std::string> all_of(const std::vector<std::string_view>& fields) {
  return {fields.begin(), fields.end()};
}

// Every report of the month, every column, and the daily views of each mailbox.
std::string every_report(IndicatorReader& reader) {
  std::string out;
  out += text_of(reader.monthly(Report::kMessages, "2026-11", all_of(kMessagesFields)));
  out += text_of(reader.monthly(Report::kConnections, "2026-11", all_of(kConnectionsFields)));
  out += text_of(reader.monthly(Report::kDocuments, "2026-11", all_of(kDocumentsFields)));
  out += text_of(reader.monthly(Report::kMessages, "2026-11", {}));
  out += text_of(reader.monthly(Report::kLps, "2026-11", all_of(kLpsFields)));
  out += text_of(reader.days_of_month("2026-11"));
  out += text_of(reader.sign_ins_by_day("2026-11"));
  out += text_of(
      reader.monthly(Report::kAcknowledgements, "2026-11", all_of(kAcknowledgementsFields)));
  out += text_of(reader.acknowledgement_days("2026-11"));
  for (const char* mailbox : {"app.hopital@test.fr", "dr.martin@test.fr", "Cabinet-B@test.fr"}) {
    out += text_of(reader.daily(mailbox, "2026-11-01", "2026-11-30"));
    out += text_of(reader.daily_documents(mailbox, "2026-11-01", "2026-11-30"));
  }
  return out;
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

class PostgresqlJournalTest : public testing_postgres::EmptyDatabaseTest {
 protected:
  IndicatorJournal::Options options(const std::string& origin) {
    IndicatorJournal::Options o{"", (dir_ / (origin + ".jsonl")).string()};
    o.on_error = [this](std::string_view what) {
      std::lock_guard lock(mutex_);
      errors_.emplace_back(what);
    };
    o.open_store = [settings = settings_, origin] {
      return open_postgresql_journal(settings, origin);
    };
    return o;
  }

  int64_t count(const std::string& sql) {
    PostgresqlConnection db(settings_);
    return db.exec("counting", sql).integer(0, 0);
  }

  std::mutex mutex_;
  std::vector<std::string> errors_;
};

}  // namespace

TEST_F(PostgresqlJournalTest, AKeyCountsOnceWhicheverGatewayRecordsIt) {
  IndicatorJournal first(options("gw-1"));
  IndicatorJournal second(options("gw-2"));
  auto events = month_of_events("m");
  std::vector<IndicatorEvent> half_one(events.begin(), events.begin() + 25);
  std::vector<IndicatorEvent> half_two(events.begin() + 15, events.end());  // 10 in both
  auto one = std::async(std::launch::async, [&] { return record_all(first, half_one); });
  auto two = std::async(std::launch::async, [&] { return record_all(second, half_two); });
  for (bool durable : one.get())
    EXPECT_TRUE(durable);
  for (bool durable : two.get())
    EXPECT_TRUE(durable);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_event"), 40);
  // Each event's documents once, under its seq, whichever gateway wrote it.
  int64_t documents = 0;
  for (const auto& e : events)
    documents += static_cast<int64_t>(e.documents.size());
  ASSERT_GT(documents, 0);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_document"), documents);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_document d LEFT JOIN indicator_event e "
                  "USING (seq) WHERE e.seq IS NULL"),
            0);
  auto a = first.stats();
  auto b = second.stats();
  EXPECT_EQ(a.recorded + b.recorded, 40u);
  EXPECT_EQ(a.duplicates + b.duplicates, 10u);
  first.stop();
  second.stop();
  // Each gateway's log has the events it recorded, each once: together, every event once.
  auto lines = lines_of(dir_ / "gw-1.jsonl");
  EXPECT_EQ(lines.size(), a.recorded);
  auto more = lines_of(dir_ / "gw-2.jsonl");
  EXPECT_EQ(more.size(), b.recorded);
  lines.insert(lines.end(), more.begin(), more.end());
  std::set<std::string> keys;
  for (const auto& line : lines) {
    auto at = line.find("\"key\":\"");
    ASSERT_NE(at, std::string::npos) << line;
    keys.insert(line.substr(at + 7, line.find('"', at + 7) - at - 7));
  }
  EXPECT_EQ(keys.size(), 40u);
  EXPECT_TRUE(errors_.empty()) << errors_.front();
}

TEST_F(PostgresqlJournalTest, EventsComeBackAsTheyWereRecorded) {
  auto events = month_of_events("b");
  // Texts PostgreSQL's array literals must carry as they are.
  events[3].nil = R"(a"b\c,{d} e)";
  events[3].message_id = R"(<"quoted"\\@x,{y}>)";
  events[3].claim_codecda = "11488-4,{x},\"y\"";
  events[3].queue_id = "";
  events[3].original_message_id = R"(<"q"\\,{z}@x>)";
  events[4].nil = "NULL";
  events[4].azp = "é-ü";
  // A key and a document the documents' arrays must carry as they are too.
  events[5].key = R"(b-"5"\,{x})";
  events[5].documents.push_back({R"(1"1,{4}\8)", "2.16.840.1.113883.6.1", InsClass::kQualified});
  {
    IndicatorJournal journal(options("gw-1"));
    for (bool durable : record_all(journal, events))
      ASSERT_TRUE(durable);
  }
  auto store = open_postgresql_journal(settings_, "gw-1");
  auto read = store->read_events(0, 1000);
  ASSERT_EQ(read.size(), events.size());
  auto by_key = events_by_key(read);
  for (const auto& event : events)
    EXPECT_EQ(by_key[event.key], event) << event.key;
  // Seqs follow one another in the log's order.
  for (size_t i = 1; i < read.size(); ++i)
    EXPECT_LT(read[i - 1].first, read[i].first);
}

TEST_F(PostgresqlJournalTest, ReportsReadAsFromSqlite) {
  auto events = month_of_events("r");
  auto sign_ins = month_of_sign_ins();
  {
    IndicatorJournal sqlite({(dir_ / "single.db").string(), ""});
    for (const auto& c : sign_ins)
      sqlite.note_connection(c);
    record_all(sqlite, events);
  }
  {
    // The same events and sign-ins, spread over two gateways.
    IndicatorJournal first(options("gw-1"));
    IndicatorJournal second(options("gw-2"));
    for (size_t i = 0; i < sign_ins.size(); ++i)
      (i % 2 ? first : second).note_connection(sign_ins[i]);
    std::vector<IndicatorEvent> odd, even;
    for (size_t i = 0; i < events.size(); ++i)
      (i % 2 ? odd : even).push_back(events[i]);
    record_all(first, odd);
    record_all(second, even);
  }
  IndicatorReader from_sqlite((dir_ / "single.db").string());
  IndicatorReader from_postgresql(settings_);
  std::string expected = every_report(from_sqlite);
  EXPECT_NE(expected.find("dr.martin@test.fr|PER|"), std::string::npos) << expected;
  EXPECT_EQ(every_report(from_postgresql), expected);
  // Counts are numbers in the JSON export, from either database.
  std::vector<std::string> counted{"mailbox", "sent", "received", "sent_bytes"};
  auto json = to_json(from_postgresql.monthly(Report::kMessages, "2026-11", counted));
  EXPECT_NE(json.find("\"sent\":7,"), std::string::npos) << json;
  EXPECT_EQ(json, to_json(from_sqlite.monthly(Report::kMessages, "2026-11", counted)));
}

TEST_F(PostgresqlJournalTest, SignInsAddUpAcrossGateways) {
  ConnectionEvent c;
  c.day = "2026-11-03";
  c.mailbox = "dr.martin@test.fr";
  c.mailbox_type = protocol::MailboxType::kPer;
  c.auth_mode = AuthMode::kPsc;
  c.protocol = SessionProtocol::kImap;
  {
    IndicatorJournal first(options("gw-1"));
    IndicatorJournal second(options("gw-2"));
    for (int i = 0; i < 5; ++i) {
      c.at_ms = 1795000000000 + i;
      first.note_connection(c);
      c.at_ms = 1795000001000 + i;
      second.note_connection(c);
    }
  }
  auto store = open_postgresql_journal(settings_, "reader");
  auto days = store->connection_days();
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(days[0].connections, 10);
  EXPECT_EQ(days[0].last.at_ms, 1795000001004);
  auto all = store->sign_in_days();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].connections, 10);
  EXPECT_EQ(all[0].last, days[0].last);
}

TEST_F(PostgresqlJournalTest, EachGatewayKeepsItsOwnDeliveriesUnderWay) {
  auto events = month_of_events("p");
  {
    IndicatorJournal first(options("gw-1"));
    auto ids = record_pending(first, {events[0], events[1], events[2]});
    ASSERT_EQ(ids.size(), 3u);
    ASSERT_TRUE(settle(first, {ids[0]}, {ids[1]}));
    // ids[2] is under way when gw-1 stops.
  }
  EXPECT_EQ(count("SELECT count(*) FROM indicator_pending"), 1);
  std::atomic<uint64_t> recovered{0};
  {
    // Another gateway leaves gw-1's delivery alone.
    auto o = options("gw-2");
    o.on_pending_recovered = [&](uint64_t n) { recovered += n; };
    IndicatorJournal second(std::move(o));
    auto ids = record_pending(second, {events[2]});  // Postfix tried it again through gw-2
    ASSERT_TRUE(settle(second, ids, {}));
  }
  EXPECT_EQ(recovered, 0u);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_pending"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_event"), 2);
  {
    // gw-1 back: its delivery under way counts, once (gw-2 already counted the same message).
    auto o = options("gw-1");
    o.on_pending_recovered = [&](uint64_t n) { recovered += n; };
    IndicatorJournal first(std::move(o));
    EXPECT_EQ(first.stats().duplicates, 1u);
  }
  EXPECT_EQ(recovered, 1u);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_pending"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_event"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_pending_document"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM indicator_document WHERE seq IN (SELECT seq FROM "
                  "indicator_event WHERE event_key = 'p-2')"),
            2);
  EXPECT_EQ(lines_of(dir_ / "gw-1.jsonl").size(), 1u);
  EXPECT_EQ(lines_of(dir_ / "gw-2.jsonl").size(), 1u);
}

TEST_F(PostgresqlJournalTest, ANameIsUsedByOneGatewayAtATime) {
  auto held = open_postgresql_journal(settings_, "gw-1");
  try {
    open_postgresql_journal(settings_, "gw-1");
    FAIL() << "a second gateway opened the journal as gw-1";
  } catch (const StorageError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("another gateway uses the indicator journal"), std::string::npos) << what;
    EXPECT_NE(what.find("each gateway needs its own server.instance"), std::string::npos);
  }
  EXPECT_NO_THROW(open_postgresql_journal(settings_, "gw-2"));
  held.reset();
  EXPECT_NO_THROW(open_postgresql_journal(settings_, "gw-1"));
}

TEST_F(PostgresqlJournalTest, ALostConnectionIsOpenedAgain) {
  auto events = month_of_events("l");
  IndicatorJournal journal(options("gw-1"));
  ASSERT_TRUE(record_all(journal, {events[0]})[0]);
  {
    PostgresqlConnection admin(settings_);
    auto ended = admin.exec("ending the journal's connection",
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                            "application_name = 'mssgate-tests' AND pid <> pg_backend_pid()");
    ASSERT_GE(ended.integer(0, 0), 1);
  }
  // The turn that finds the connection gone fails (its waiter is told, the failure reported,
  // nothing kept); the next one opens it again.
  EXPECT_FALSE(record_all(journal, {events[1]})[0]);
  {
    std::lock_guard lock(mutex_);
    ASSERT_EQ(errors_.size(), 1u);
    EXPECT_NE(errors_[0].find("could not commit 1 indicator events"), std::string::npos)
        << errors_[0];
  }
  EXPECT_TRUE(record_all(journal, {events[1]})[0]);
  ASSERT_TRUE(record_all(journal, {events[2]})[0]);
  journal.stop();
  EXPECT_EQ(count("SELECT count(*) FROM indicator_event"), 3);
  EXPECT_EQ(lines_of(dir_ / "gw-1.jsonl").size(), 3u);
}

TEST_F(PostgresqlJournalTest, ACommitHeldPastTheStatementTimeoutFailsAndTheNextOneGoesThrough) {
  settings_.statement_timeout = 300ms;
  auto events = month_of_events("t");
  IndicatorJournal journal(options("gw-1"));
  PostgresqlConnection blocker(settings_);
  blocker.exec("starting", "BEGIN");
  blocker.exec("locking the events", "LOCK TABLE indicator_event IN ACCESS EXCLUSIVE MODE");
  // The lock is held 3 s; the commit waits for it and is cancelled at the timeout, and its
  // waiter is told at once.
  std::thread release([&] {
    std::this_thread::sleep_for(3s);
    blocker.exec("ending", "ROLLBACK");
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(record_all(journal, {events[0]})[0]);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  release.join();
  {
    std::lock_guard lock(mutex_);
    ASSERT_EQ(errors_.size(), 1u);
    EXPECT_NE(errors_[0].find("statement timeout"), std::string::npos) << errors_[0];
  }
  EXPECT_TRUE(record_all(journal, {events[0]})[0]);
}

TEST_F(PostgresqlJournalTest, ASingleHostsJournalMovesWhole) {
  auto events = month_of_events("s");
  auto sign_ins = month_of_sign_ins();
  fs::path single = dir_ / "single.db";
  int64_t log_position = 0;
  {
    IndicatorJournal sqlite({single.string(), (dir_ / "single.jsonl").string()});
    for (const auto& c : sign_ins)
      sqlite.note_connection(c);
    record_all(sqlite, std::vector<IndicatorEvent>(events.begin(), events.end() - 2));
    // A delivery under way when the host stopped.
    record_pending(sqlite, {events[events.size() - 2]});
    log_position = static_cast<int64_t>(events.size()) - 2;
  }
  std::string expected;
  {
    // What the single host's reports say once its delivery under way counts (as at a start).
    fs::copy_file(single, dir_ / "copy.db");
    { IndicatorJournal reopened({(dir_ / "copy.db").string(), ""}); }
    IndicatorReader reader((dir_ / "copy.db").string());
    expected = every_report(reader);
  }
  auto source = open_sqlite_journal(single.string());
  auto counts = copy_journal_to_postgresql(*source, settings_, "gw-1");
  int64_t documents = 0;
  for (const auto& e : events)
    documents += static_cast<int64_t>(e.documents.size());
  documents -= static_cast<int64_t>(events.back().documents.size());
  EXPECT_EQ(counts.events, static_cast<int64_t>(events.size()) - 1);
  EXPECT_EQ(counts.documents, documents);
  EXPECT_EQ(counts.pending_recovered, 1);
  EXPECT_EQ(counts.connections, 12);  // the successful ones
  EXPECT_EQ(counts.connection_days, 6);
  EXPECT_GT(counts.sign_in_days, 6);
  IndicatorReader reader(settings_);
  EXPECT_EQ(every_report(reader), expected);
  {
    // The gateway goes on where the host was: its log's place kept, new events after the old.
    auto store = open_postgresql_journal(settings_, "gw-1");
    EXPECT_EQ(store->log_position(), log_position);
    EXPECT_EQ(store->newest_seq(), counts.events);
  }
  {
    IndicatorJournal journal(options("gw-1"));
    ASSERT_TRUE(record_all(journal, {events.back()})[0]);
  }
  auto lines = lines_of(dir_ / "gw-1.jsonl");
  ASSERT_EQ(lines.size(), 2u);  // the pending one the host's log never got, and the new one
  EXPECT_NE(lines[1].find("\"seq\":" + std::to_string(counts.events + 1)), std::string::npos)
      << lines[1];
  // A second move finds the journal not empty and keeps nothing.
  try {
    copy_journal_to_postgresql(*source, settings_, "gw-1");
    FAIL() << "moved into a journal that holds events";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("a move goes into an empty journal"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(count("SELECT count(*) FROM indicator_event"), counts.events + 1);
}

TEST_F(PostgresqlJournalTest,
       AJournalOfVersion1GainsTheAcknowledgementColumnsAndTheSignInTableAndLosesTheDocumentsKey) {
  auto events = month_of_events("v");
  std::vector<IndicatorEvent> before, after;
  for (auto& e : events) {
    // Version 1 held no acknowledgement: its events read back as no report.
    IndicatorEvent plain = e;
    plain.dsn = false;
    plain.dsn_actions.clear();
    plain.disposition = Disposition::kNone;
    plain.integration_error = false;
    plain.original_message_id.clear();
    plain.original_envelope_id.clear();
    plain.envelope_id.clear();
    (before.size() < 20 ? before : after).push_back(before.size() < 20 ? plain : e);
  }
  {
    IndicatorJournal journal(options("gw-1"));
    record_all(journal, before);
  }
  {
    PostgresqlConnection db(settings_);
    db.exec_script("back to version 1",
                   "DROP INDEX indicator_event_original;"
                   "DROP INDEX indicator_event_original_envelope;"
                   "ALTER TABLE indicator_event DROP COLUMN dsn, DROP COLUMN dsn_actions, "
                   "DROP COLUMN disposition, DROP COLUMN integration_error, "
                   "DROP COLUMN original_message_id, DROP COLUMN original_envelope_id, "
                   "DROP COLUMN envelope_id;"
                   "ALTER TABLE indicator_pending DROP COLUMN dsn, DROP COLUMN dsn_actions, "
                   "DROP COLUMN disposition, DROP COLUMN integration_error, "
                   "DROP COLUMN original_message_id, DROP COLUMN original_envelope_id, "
                   "DROP COLUMN envelope_id;"
                   "DROP TABLE sign_in_day;"
                   "ALTER TABLE indicator_document ADD CONSTRAINT indicator_document_seq_fkey "
                   "FOREIGN KEY (seq) REFERENCES indicator_event (seq);"
                   "UPDATE mssgate_schema SET version = 1 WHERE part = 'journal'");
  }
  {
    IndicatorJournal journal(options("gw-1"));
    for (bool durable : record_all(journal, after))
      ASSERT_TRUE(durable);
  }
  EXPECT_EQ(count("SELECT version FROM mssgate_schema WHERE part = 'journal'"), 5);
  EXPECT_EQ(count("SELECT COUNT(*) FROM sign_in_day"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pg_constraint WHERE conname = "
                  "'indicator_document_seq_fkey'"),
            0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'indicator_event_original'"),
            1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pg_indexes WHERE indexname = "
                  "'indicator_event_original_envelope'"),
            1);
  auto read = open_postgresql_journal(settings_, "gw-1")->read_events(0, 1000);
  ASSERT_EQ(read.size(), events.size());
  auto by_key = events_by_key(read);
  for (const auto& recorded : {before, after}) {
    for (const auto& event : recorded)
      EXPECT_EQ(by_key[event.key], event) << event.key;
  }
}

TEST_F(PostgresqlJournalTest, AJournalOfANewerMssgateIsRefused) {
  open_postgresql_journal(settings_, "gw-1");
  {
    PostgresqlConnection db(settings_);
    db.exec("aging the schema", "UPDATE mssgate_schema SET version = 99 WHERE part = 'journal'");
  }
  try {
    open_postgresql_journal(settings_, "gw-1");
    FAIL() << "opened";
  } catch (const StorageError& e) {
    EXPECT_STREQ(e.what(),
                 "the PostgreSQL indicator journal has schema version 99, newer than this "
                 "mssgate (5)");
  }
}
