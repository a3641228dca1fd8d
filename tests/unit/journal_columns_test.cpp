// The journal's column table: what it writes, reads back and shows, and that journals written
// by the first version open as they are.
#include "storage/journal_columns.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "storage/indicator_journal.hpp"
#include "storage/indicator_reports.hpp"

using namespace mssgate::storage;
using mssgate::protocol::MailboxType;
using mssgate::protocol::Mismatch;
namespace fs = std::filesystem;

namespace {

// The schema of the first journals (user_version 1), kept as they wrote it: the reference for
// compatibility. Never change it; a new schema version gets a migration instead.
constexpr const char* kFirstJournalSchema = R"sql(
CREATE TABLE IF NOT EXISTS indicator_event (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  event_key            TEXT NOT NULL UNIQUE,
  at_ms                INTEGER NOT NULL,
  day                  TEXT NOT NULL,
  direction            TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
  mailbox              TEXT NOT NULL,
  mailbox_type         TEXT NOT NULL,
  auth_mode            TEXT NOT NULL,
  azp                  TEXT NOT NULL,
  nil                  TEXT NOT NULL,
  message_id           TEXT NOT NULL,
  queue_id             TEXT NOT NULL,
  size                 INTEGER NOT NULL,
  recipients           INTEGER NOT NULL,
  to_same_operator     INTEGER NOT NULL,
  to_other_operator    INTEGER NOT NULL,
  to_patient           INTEGER NOT NULL,
  counterpart          TEXT NOT NULL,
  inspected            INTEGER NOT NULL,
  uninspectable_reason TEXT NOT NULL,
  xdm                  INTEGER NOT NULL,
  documents            INTEGER NOT NULL,
  ins                  TEXT NOT NULL,
  claim_codecda        TEXT NOT NULL,
  claim_ins            TEXT NOT NULL,
  claim_xdm_subject    INTEGER NOT NULL,
  mismatches           TEXT NOT NULL,
  mes_fin              INTEGER NOT NULL,
  mdn                  INTEGER NOT NULL,
  mdn_requested        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS indicator_event_day ON indicator_event (day, mailbox);
CREATE TABLE IF NOT EXISTS indicator_document (
  seq         INTEGER NOT NULL REFERENCES indicator_event (seq),
  position    INTEGER NOT NULL,
  code        TEXT NOT NULL,
  code_system TEXT NOT NULL,
  ins         TEXT NOT NULL,
  PRIMARY KEY (seq, position)
);
CREATE TABLE IF NOT EXISTS connection_day (
  mailbox      TEXT NOT NULL,
  day          TEXT NOT NULL,
  auth_mode    TEXT NOT NULL,
  protocol     TEXT NOT NULL,
  mailbox_type TEXT NOT NULL,
  connections  INTEGER NOT NULL,
  last_at_ms   INTEGER NOT NULL,
  PRIMARY KEY (mailbox, day, auth_mode, protocol)
);
CREATE TABLE IF NOT EXISTS journal_meta (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
)sql";

// The two example events of docs/indicators.md, as the first version stored them.
constexpr const char* kFirstVersionRows = R"sql(
INSERT INTO indicator_event VALUES (1842, 'sent:9f2c4e1a7b3d5f60a1c2e3d4f5a6b7c8', 1772442847512,
  '2026-03-02', 'sent', 'dr.martin@example.mssante.fr', 'PER', 'psc', 'lps-cabinet-exemple',
  'DEV000001', '<a1b2c3d4@lps.example>', '4QxYz12LmBz9', 48213, 2, 0, 1, 1, '', 1, '', 1, 1,
  'qualified', '11488-4', 'O', 1, '', 0, 0, 1);
INSERT INTO indicator_document VALUES (1842, 0, '11488-4', '2.16.840.1.113883.6.1', 'qualified');
INSERT INTO indicator_event VALUES (1843,
  'received:secretariat@example.mssante.fr:3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b',
  1772442941003, '2026-03-02', 'received', 'secretariat@example.mssante.fr', 'ORG', 'none', '',
  'DEV000002', '<e5f6a7b8@other-operator.example>', '', 1203998, 1, 0, 0, 0, 'other_operator', 0,
  'cda_unreadable', 1, 0, 'absent', '34133-9', 'N', 0, 'xdm_without_subject', 0, 0, 0);
PRAGMA user_version = 1;
)sql";

// Their lines, as docs/indicators.md shows them.
const std::vector<std::string> kDocumentedLines{
    R"({"event":"indicator","seq":1842,"key":"sent:9f2c4e1a7b3d5f60a1c2e3d4f5a6b7c8","time":"2026-03-02T09:14:07.512Z","day":"2026-03-02","direction":"sent","mailbox":"dr.martin@example.mssante.fr","mailbox_type":"PER","auth_mode":"psc","azp":"lps-cabinet-exemple","nil":"DEV000001","message_id":"<a1b2c3d4@lps.example>","queue_id":"4QxYz12LmBz9","size":48213,"recipients":2,"to_same_operator":0,"to_other_operator":1,"to_patient":1,"inspected":true,"xdm":true,"documents":[{"code":"11488-4","code_system":"2.16.840.1.113883.6.1","ins":"qualified"}],"ins":"qualified","claims":{"codecda":"11488-4","ins":"O","xdm_subject":true},"mismatches":[],"mes_fin":false,"mdn":false,"mdn_requested":true})",
    R"({"event":"indicator","seq":1843,"key":"received:secretariat@example.mssante.fr:3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b","time":"2026-03-02T09:15:41.003Z","day":"2026-03-02","direction":"received","mailbox":"secretariat@example.mssante.fr","mailbox_type":"ORG","auth_mode":"none","nil":"DEV000002","message_id":"<e5f6a7b8@other-operator.example>","size":1203998,"recipients":1,"counterpart":"other_operator","inspected":false,"uninspectable_reason":"cda_unreadable","xdm":true,"documents":[],"ins":"absent","claims":{"codecda":"34133-9","ins":"N","xdm_subject":false},"mismatches":["xdm_without_subject"],"mes_fin":false,"mdn":false,"mdn_requested":false})",
};

// Every field away from its default.
IndicatorEvent every_field_set() {
  IndicatorEvent e;
  e.key = "received:b@x.fr:f00";
  e.at_ms = 1795000000123;
  e.day = "2026-11-18";
  e.direction = Direction::kReceived;
  e.mailbox = "b@x.fr";
  e.mailbox_type = MailboxType::kCab;
  e.auth_mode = AuthMode::kCertificate;
  e.azp = "lps-1";
  e.nil = "DEV1";
  e.message_id = "<m@x>";
  e.queue_id = "Q1";
  e.size = 4096;
  e.recipients = 3;
  e.to_same_operator = 1;
  e.to_other_operator = 1;
  e.to_patient = 1;
  e.counterpart = Counterpart::kPatient;
  e.inspected = false;
  e.uninspectable_reason = "zip_ratio";
  e.xdm = true;
  e.documents = {{"11488-4", "2.16.840.1.113883.6.1", InsClass::kQualified},
                 {"34133-9", "2.16.840.1.113883.6.1", InsClass::kTest}};
  e.ins = InsClass::kQualified;
  e.claim_codecda = "11488-4,34133-9";
  e.claim_ins = ClaimedIns::kInvalid;
  e.claim_xdm_subject = true;
  e.mismatches = {Mismatch::kCodecdaDiffers, Mismatch::kInsMissing};
  e.mes_fin = true;
  e.mdn = true;
  e.mdn_requested = true;
  e.dsn = true;
  e.dsn_actions = {DsnAction::kDelivered, DsnAction::kFailed};
  e.disposition = Disposition::kDisplayed;
  e.integration_error = true;
  e.original_message_id = "<original@x>";
  e.original_envelope_id = "envelope-1";
  e.envelope_id = "envelope-0";
  return e;
}

constexpr const char* kEveryFieldLine =
    R"({"event":"indicator","seq":1,"key":"received:b@x.fr:f00","time":"2026-11-18T11:06:40.123Z","day":"2026-11-18","direction":"received","mailbox":"b@x.fr","mailbox_type":"CAB","auth_mode":"certificate","azp":"lps-1","nil":"DEV1","message_id":"<m@x>","queue_id":"Q1","size":4096,"recipients":3,"counterpart":"patient","inspected":false,"uninspectable_reason":"zip_ratio","xdm":true,"documents":[{"code":"11488-4","code_system":"2.16.840.1.113883.6.1","ins":"qualified"},{"code":"34133-9","code_system":"2.16.840.1.113883.6.1","ins":"test"}],"ins":"qualified","claims":{"codecda":"11488-4,34133-9","ins":"invalid","xdm_subject":true},"mismatches":["codecda_differs","ins_missing"],"mes_fin":true,"mdn":true,"mdn_requested":true,"dsn":true,"dsn_actions":["delivered","failed"],"disposition":"displayed","integration_error":true,"original_message_id":"<original@x>","original_envelope_id":"envelope-1","envelope_id":"envelope-0"})";

// The columns added after the first journals (schema version 3), in the order a migrated
// journal and a new one both have them: pragma_table_info's cid, name, type, notnull, default.
const std::vector<std::string> kAddedColumns{
    "30|dsn|INTEGER|1|0",
    "31|dsn_actions|TEXT|1|''",
    "32|disposition|TEXT|1|''",
    "33|integration_error|INTEGER|1|0",
    "34|original_message_id|TEXT|1|''",
    "35|original_envelope_id|TEXT|1|''",
    "36|envelope_id|TEXT|1|''",
};

class Database {
 public:
  explicit Database(const fs::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw StorageError(sqlite3_errmsg(db_));
  }
  ~Database() { sqlite3_close(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql) { exec_sql(db_, sql.c_str(), "test database"); }
  // Every row of a query, its first `columns` values as text, separated by '|'.
  std::vector<std::string> rows(const std::string& sql, int columns) {
    Statement s(db_, sql.c_str());
    std::vector<std::string> out;
    while (s.step() == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < columns; ++i)
        row += (i ? "|" : "") + s.text(i);
      out.push_back(row);
    }
    return out;
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class JournalColumnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mssgate-columns-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path journal_path() const { return dir_ / "indicators.db"; }
  fs::path log_path() const { return dir_ / "indicators.jsonl"; }

  static bool record(IndicatorJournal& journal, IndicatorEvent event) {
    std::promise<bool> durable;
    journal.record(std::move(event), [&](bool ok) { durable.set_value(ok); });
    return durable.get_future().get();
  }

  std::vector<std::string> log_lines() const {
    std::ifstream in(log_path());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
      lines.push_back(line);
    return lines;
  }

  fs::path dir_;
};

}  // namespace

TEST_F(JournalColumnsTest, AnEventWithEveryFieldSetComesBackAsItWasRecorded) {
  {
    IndicatorJournal journal({journal_path().string(), ""});
    ASSERT_TRUE(record(journal, every_field_set()));
  }
  Database db(journal_path());
  auto events = read_events(db.get(), 0, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, 1);
  EXPECT_EQ(events[0].second, every_field_set());

  // And the values that stand for "none" come back as none.
  IndicatorEvent sparse;
  sparse.key = "sent:1";
  sparse.day = "2026-11-18";
  {
    IndicatorJournal journal({journal_path().string(), ""});
    ASSERT_TRUE(record(journal, sparse));
  }
  events = read_events(db.get(), 1, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].second, sparse);
  EXPECT_EQ(db.rows("SELECT mailbox_type, auth_mode, counterpart, ins, claim_ins, mismatches "
                    "FROM indicator_event WHERE seq = 2",
                    6),
            std::vector<std::string>{"unknown|none||absent||"});
}

TEST_F(JournalColumnsTest, TheJsonLineIsTheSameWrittenAtCommitAndCaughtUpFromTheJournal) {
  EXPECT_EQ(json_line(1, every_field_set()), kEveryFieldLine);
  {
    IndicatorJournal journal({journal_path().string(), log_path().string()});
    ASSERT_TRUE(record(journal, every_field_set()));
  }
  EXPECT_EQ(log_lines(), std::vector<std::string>{kEveryFieldLine});
  fs::remove(log_path());
  Database db(journal_path());
  db.exec("DELETE FROM journal_meta");  // the log's position: the whole journal is caught up
  IndicatorJournal reopened({journal_path().string(), log_path().string()});
  EXPECT_EQ(log_lines(), std::vector<std::string>{kEveryFieldLine});
}

TEST_F(JournalColumnsTest, TheSchemaIsTheFirstJournalsOneAndTheColumnsAddedSince) {
  fs::path first_path = dir_ / "first.db";
  { Database(first_path).exec(kFirstJournalSchema); }
  auto columns_of = [](const fs::path& path, const std::string& table) {
    return Database(path).rows("SELECT * FROM pragma_table_info('" + table + "')", 5);
  };
  auto first_events = columns_of(first_path, "indicator_event");
  ASSERT_EQ(first_events.size(), 30u);
  { IndicatorJournal journal({journal_path().string(), ""}); }
  { IndicatorJournal migrated({first_path.string(), ""}); }
  // A new journal and a migrated first one have the same tables, columns and indexes: the
  // first columns as they were, then the added ones with their defaults.
  for (const char* table :
       {"indicator_event", "indicator_document", "connection_day", "indicator_pending",
        "indicator_pending_document", "journal_meta", "sign_in_day"}) {
    EXPECT_EQ(columns_of(first_path, table), columns_of(journal_path(), table)) << table;
  }
  auto events = columns_of(journal_path(), "indicator_event");
  std::vector<std::string> expected = first_events;
  expected.insert(expected.end(), kAddedColumns.begin(), kAddedColumns.end());
  EXPECT_EQ(events, expected);
  auto indexes = [](const fs::path& path) {
    return Database(path).rows(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' ORDER BY name", 2);
  };
  EXPECT_EQ(indexes(first_path), indexes(journal_path()));
  EXPECT_EQ(Database(first_path).rows("PRAGMA user_version", 1), std::vector<std::string>{"5"});
  // The first journals' CREATE statements are the start of today's, which only adds to them.
  std::string first_schema = std::string(kFirstJournalSchema).substr(1);
  std::string schema = journal_schema();
  std::string first_events_table = first_schema.substr(0, first_schema.find("\n);\n"));
  EXPECT_EQ(schema.substr(0, first_events_table.size()), first_events_table);
  EXPECT_NE(schema.find("  envelope_id          TEXT NOT NULL DEFAULT ''\n);\n"
                        "CREATE INDEX IF NOT EXISTS indicator_event_day ON indicator_event (day, "
                        "mailbox);\n"),
            std::string::npos)
      << schema;
  size_t documents = first_schema.find("CREATE TABLE IF NOT EXISTS indicator_document");
  size_t meta = first_schema.find("CREATE TABLE IF NOT EXISTS journal_meta");
  EXPECT_NE(schema.find(first_schema.substr(documents, meta - documents)), std::string::npos);
  EXPECT_NE(schema.find(first_schema.substr(meta)), std::string::npos);
  // Version 4's table of every sign-in, failed ones too.
  EXPECT_NE(
      schema.find("CREATE TABLE IF NOT EXISTS sign_in_day (\n"
                  "  mailbox      TEXT NOT NULL,\n"
                  "  day          TEXT NOT NULL,\n"
                  "  auth_mode    TEXT NOT NULL,\n"
                  "  protocol     TEXT NOT NULL,\n"
                  "  failure      TEXT NOT NULL,\n"
                  "  professional TEXT NOT NULL,\n"
                  "  lps          TEXT NOT NULL,\n"
                  "  mailbox_type TEXT NOT NULL,\n"
                  "  sign_ins     INTEGER NOT NULL,\n"
                  "  last_at_ms   INTEGER NOT NULL,\n"
                  "  PRIMARY KEY (mailbox, day, auth_mode, protocol, failure, professional, lps)\n"
                  ");\n"),
      std::string::npos)
      << schema;
  // A pending event has an event's columns, and a pending document a document's.
  Database db(journal_path());
  auto names_and_types = [&](const std::string& table) {
    return db.rows("SELECT name, type FROM pragma_table_info('" + table + "')", 2);
  };
  EXPECT_EQ(names_and_types("indicator_pending"), names_and_types("indicator_event"));
  EXPECT_EQ(names_and_types("indicator_pending_document"), names_and_types("indicator_document"));
  EXPECT_EQ(db.rows("PRAGMA user_version", 1), std::vector<std::string>{"5"});
}

TEST_F(JournalColumnsTest, AJournalOfVersion2GainsTheAddedColumnsAndKeepsItsPendingEvents) {
  IndicatorEvent event = every_field_set();
  event.dsn = false;
  event.dsn_actions.clear();
  event.disposition = Disposition::kNone;
  event.integration_error = false;
  event.original_message_id.clear();
  event.original_envelope_id.clear();
  event.envelope_id.clear();
  {
    IndicatorJournal journal({journal_path().string(), ""});
    std::promise<bool> durable;
    journal.record_pending(
        {event}, [&](const std::vector<int64_t>& ids) { durable.set_value(ids.size() == 1); });
    ASSERT_TRUE(durable.get_future().get());
  }  // stopped with the event pending, as a crash leaves it
  {
    // Back to version 2: the added columns and their index were not there.
    Database db(journal_path());
    db.exec("DROP INDEX indicator_event_original");
    db.exec("DROP INDEX indicator_event_original_envelope");
    for (const char* table : {"indicator_event", "indicator_pending"}) {
      for (const auto& [name, type] : added_event_columns())
        db.exec("ALTER TABLE " + std::string(table) + " DROP COLUMN " + std::string(name));
    }
    db.exec("PRAGMA user_version = 2");
    EXPECT_EQ(db.rows("SELECT COUNT(*) FROM pragma_table_info('indicator_pending')", 1),
              std::vector<std::string>{"30"});
  }
  uint64_t recovered = 0;
  {
    IndicatorJournal::Options options{journal_path().string(), ""};
    options.on_pending_recovered = [&](uint64_t events) { recovered = events; };
    IndicatorJournal journal(options);
  }
  EXPECT_EQ(recovered, 1u);
  Database db(journal_path());
  EXPECT_EQ(db.rows("PRAGMA user_version", 1), std::vector<std::string>{"5"});
  auto events = read_events(db.get(), 0, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].second, event);  // the added columns read as no report
  EXPECT_EQ(db.rows("SELECT COUNT(*) FROM pragma_table_info('indicator_pending')", 1),
            std::vector<std::string>{"37"});
  EXPECT_EQ(db.rows("SELECT name FROM sqlite_master WHERE name = 'indicator_event_original'", 1),
            std::vector<std::string>{"indicator_event_original"});
}

TEST_F(JournalColumnsTest, AJournalOfTheFirstVersionOpensAsItIs) {
  {
    Database first(journal_path());
    first.exec(kFirstJournalSchema);
    first.exec(kFirstVersionRows);
  }
  IndicatorEvent sent = every_field_set();
  sent.key = "sent:2";
  sent.day = "2026-03-03";
  sent.direction = Direction::kSent;
  sent.mailbox = "dr.martin@example.mssante.fr";
  {
    IndicatorJournal journal({journal_path().string(), log_path().string()});
    EXPECT_EQ(log_lines(), kDocumentedLines);  // caught up from the first version's rows
    ASSERT_TRUE(record(journal, sent));
    journal.note_connection({1772442847512, "2026-03-02", "dr.martin@example.mssante.fr",
                             MailboxType::kPer, AuthMode::kPsc, SessionProtocol::kSubmission, "",
                             "", ""});
    journal.note_connection({1772442847999, "2026-03-02", "dr.martin@example.mssante.fr",
                             MailboxType::kPer, AuthMode::kPsc, SessionProtocol::kSubmission, "",
                             "", ""});
  }
  Database db(journal_path());
  EXPECT_EQ(db.rows("SELECT direction, mailbox_type, auth_mode, counterpart, ins, claim_ins, "
                    "mismatches FROM indicator_event WHERE event_key = 'sent:2'",
                    7),
            std::vector<std::string>{"sent|CAB|certificate|patient|qualified|invalid|"
                                     "codecda_differs,ins_missing"});
  EXPECT_EQ(db.rows("SELECT * FROM connection_day", 7),
            std::vector<std::string>{
                "dr.martin@example.mssante.fr|2026-03-02|psc|submission|PER|2|1772442847999"});
  IndicatorReader reader(journal_path().string());
  auto messages = reader.monthly(Report::kMessages, "2026-03",
                                 {"mailbox", "sent", "received", "sent_qualified_ins"});
  EXPECT_EQ(messages.rows, (std::vector<std::vector<std::string>>{
                               {"dr.martin@example.mssante.fr", "2", "0", "2"},
                               {"secretariat@example.mssante.fr", "0", "1", "0"}}));
}

TEST(JournalColumns, ArrayLiteralsCarryEveryTextAsItIs) {
  postgresql_journal::ArrayLiterals arrays;
  EXPECT_TRUE(arrays.empty());
  arrays.add_row({"plain", "", "1"});
  arrays.add_row({R"(a"b\c)", "{,}", "NULL"});
  EXPECT_FALSE(arrays.empty());
  EXPECT_EQ(arrays.take(), (std::vector<std::string>{R"({"plain","a\"b\\c"})", R"({"","{,}"})",
                                                     R"({"1","NULL"})"}));
  EXPECT_TRUE(arrays.empty());
}

TEST(JournalColumns, ReportsNameTheColumnsOfTheTable) {
  EXPECT_EQ(column_name(EventField::kKey), "event_key");
  EXPECT_EQ(column_name(EventField::kAtMs), "at_ms");
  EXPECT_EQ(column_name(EventField::kDocuments), "documents");
  EXPECT_EQ(column_name(EventField::kMdnRequested), "mdn_requested");
  EXPECT_EQ(column_name(DocumentField::kCodeSystem), "code_system");
  EXPECT_EQ(column_name(ConnectionField::kLastAtMs), "last_at_ms");
}

TEST(IndicatorVocabulary, EveryWordReadsBackAsItsValue) {
  for (auto d : {Direction::kSent, Direction::kReceived})
    EXPECT_EQ(parse_direction(to_string(d)), d);
  for (auto m : {AuthMode::kCertificate, AuthMode::kPsc, AuthMode::kNone})
    EXPECT_EQ(parse_auth_mode(to_string(m)), m);
  for (auto c : {Counterpart::kSameOperator, Counterpart::kOtherOperator, Counterpart::kPatient})
    EXPECT_EQ(parse_counterpart(to_string(c)), c);
  for (auto c : {ClaimedIns::kAbsent, ClaimedIns::kYes, ClaimedIns::kNo, ClaimedIns::kInvalid})
    EXPECT_EQ(parse_claimed_ins(to_string(c)), c);
  for (auto i : {InsClass::kAbsent, InsClass::kTest, InsClass::kMalformed, InsClass::kUnqualified,
                 InsClass::kQualified})
    EXPECT_EQ(parse_ins_class(to_string(i)), i);
  auto unknown = parse_recorded_mailbox_type("unknown");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  auto organisation = parse_recorded_mailbox_type("ORG");
  ASSERT_TRUE(organisation);
  EXPECT_EQ(*organisation, MailboxType::kOrg);
  EXPECT_EQ(parse_session_protocol("submission"), SessionProtocol::kSubmission);
  EXPECT_EQ(mssgate::protocol::parse_mismatch("xdm_without_subject"), Mismatch::kXdmWithoutSubject);
  EXPECT_FALSE(parse_direction("SENT"));
  EXPECT_FALSE(parse_recorded_mailbox_type(""));
  EXPECT_FALSE(mssgate::protocol::parse_mismatch("ins_value"));
}
