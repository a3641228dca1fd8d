// The indicator log holds each event once whatever a crash left at its end, and pending events
// (the LMTP tap's) are counted once Dovecot has answered, or at the next opening after a crash.
#include "storage/indicator_log.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "storage/indicator_journal.hpp"

using namespace mssgate::storage;
namespace fs = std::filesystem;

namespace {

class IndicatorLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mssgate-log-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path log_path() const { return dir_ / "indicators.jsonl"; }

  // What the journal told about the log at each opening, and the pending events it recovered.
  struct Seen {
    std::mutex mutex;
    std::vector<IndicatorJournal::LogOpened> openings;
    std::vector<std::string> errors;
    uint64_t recovered = 0;
  };

  IndicatorJournal::Options options(Seen* seen = nullptr) const {
    IndicatorJournal::Options o{(dir_ / "indicators.db").string(), log_path().string()};
    if (seen) {
      o.on_log_opened = [seen](const IndicatorJournal::LogOpened& opened) {
        std::lock_guard lock(seen->mutex);
        seen->openings.push_back(opened);
      };
      o.on_error = [seen](std::string_view what) {
        std::lock_guard lock(seen->mutex);
        seen->errors.emplace_back(what);
      };
      o.on_pending_recovered = [seen](uint64_t n) { seen->recovered += n; };
    }
    return o;
  }

  static IndicatorEvent event(const std::string& key) {
    IndicatorEvent e;
    e.key = key;
    e.at_ms = 1795000000000;
    e.day = "2026-11-02";
    e.direction = Direction::kReceived;
    e.mailbox = "b@x.fr";
    e.recipients = 1;
    e.counterpart = Counterpart::kOtherOperator;
    e.documents = {{"11488-4", "2.16.840.1.113883.6.1", InsClass::kQualified}};
    return e;
  }

  static bool record(IndicatorJournal& journal, const std::string& key) {
    std::promise<bool> durable;
    journal.record(event(key), [&](bool ok) { durable.set_value(ok); });
    return durable.get_future().get();
  }
  static void record_many(IndicatorJournal& journal, int first, int count) {
    for (int i = first; i < first + count; ++i)
      ASSERT_TRUE(record(journal, "sent:" + std::to_string(i)));
  }
  static std::vector<int64_t> pending(IndicatorJournal& journal,
                                      const std::vector<std::string>& keys) {
    std::vector<IndicatorEvent> events;
    events.reserve(keys.size());
    for (const auto& key : keys)
      events.push_back(event(key));
    std::promise<std::vector<int64_t>> ids;
    journal.record_pending(std::move(events),
                           [&](std::vector<int64_t> got) { ids.set_value(std::move(got)); });
    return ids.get_future().get();
  }
  static bool settle(IndicatorJournal& journal, std::vector<int64_t> delivered,
                     std::vector<int64_t> dropped) {
    std::promise<bool> durable;
    journal.settle(std::move(delivered), std::move(dropped),
                   [&](bool ok) { durable.set_value(ok); });
    return durable.get_future().get();
  }

  std::string log_text() const {
    std::ifstream in(log_path(), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  // The seq of every line of a log file, in order (0 for a line that is not an event's).
  static std::vector<int64_t> seqs(const fs::path& path) {
    std::ifstream in(path);
    std::vector<int64_t> out;
    for (std::string line; std::getline(in, line);)
      out.push_back(log_line_seq(line).value_or(0));
    return out;
  }
  std::vector<int64_t> seqs() const { return seqs(log_path()); }

  // Changes the journal as a crash at a chosen moment would have left it.
  void sql(const std::string& statement) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "indicators.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }
  int64_t count(const std::string& query) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open((dir_ / "indicators.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, query.c_str(), -1, &statement, nullptr);
    int64_t n = sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return n;
  }
  // The log's length cut to `bytes`, as a write cut short would leave it.
  void cut_log(uintmax_t bytes) const { fs::resize_file(log_path(), bytes); }
  // The offset where line `n` (0-based) of the log begins.
  size_t line_start(size_t n) const {
    std::string text = log_text();
    size_t at = 0;
    for (size_t i = 0; i < n; ++i)
      at = text.find('\n', at) + 1;
    return at;
  }

  fs::path dir_;
};

std::vector<int64_t> range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t i = first; i <= last; ++i)
    out.push_back(i);
  return out;
}

}  // namespace

// Killed in the middle of a line: the part of the line is removed at the next opening, the
// event written again, whole, once; and the saved position lagging behind does not matter.
TEST_F(IndicatorLogTest, APartialLastLineIsRemovedAndItsEventWrittenOnce) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 4);
  }
  ASSERT_EQ(seqs(), range(1, 4));
  cut_log(line_start(3) + 20);  // the fourth line cut after 20 bytes
  sql("UPDATE journal_meta SET value = 2 WHERE name = 'log_position'");
  Seen seen;
  {
    IndicatorJournal journal(options(&seen));
    ASSERT_EQ(seen.openings.size(), 1u);
    EXPECT_EQ(seen.openings[0].truncated_bytes, 20u);
    EXPECT_EQ(seen.openings[0].resumed_after, 3);
    EXPECT_TRUE(seen.openings[0].at_start);
    EXPECT_EQ(seqs(), range(1, 4));
    record_many(journal, 5, 1);
  }
  EXPECT_EQ(seqs(), range(1, 5));
  EXPECT_TRUE(seen.errors.empty());
}

// Killed after a line was written whole but before its position was saved (the position is
// saved with the next commit): the log's own last line says where to resume.
TEST_F(IndicatorLogTest, ACompleteLineWhosePositionWasNotSavedIsNotWrittenAgain) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 3);
  }
  sql("UPDATE journal_meta SET value = 1 WHERE name = 'log_position'");
  Seen seen;
  { IndicatorJournal journal(options(&seen)); }
  EXPECT_EQ(seqs(), range(1, 3));
  ASSERT_EQ(seen.openings.size(), 1u);
  EXPECT_EQ(seen.openings[0].truncated_bytes, 0u);
  EXPECT_EQ(seen.openings[0].resumed_after, 3);
}

// Lines the file lost (written but never synced before a power cut) while the journal saved
// its position beyond them: they are written again, none is skipped.
TEST_F(IndicatorLogTest, LinesTheFileLostAreWrittenAgain) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 5);
  }
  cut_log(line_start(2));
  sql("UPDATE journal_meta SET value = 5 WHERE name = 'log_position'");
  { IndicatorJournal journal(options()); }
  EXPECT_EQ(seqs(), range(1, 5));
}

// A file that is nothing but a partial line, and one whose lines all went.
TEST_F(IndicatorLogTest, ALogWithoutAnyCompleteLine) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 2);
  }
  cut_log(10);
  sql("UPDATE journal_meta SET value = 0 WHERE name = 'log_position'");
  Seen seen;
  { IndicatorJournal journal(options(&seen)); }
  EXPECT_EQ(seqs(), range(1, 2));
  ASSERT_EQ(seen.openings.size(), 1u);
  EXPECT_EQ(seen.openings[0].truncated_bytes, 10u);
}

// logrotate renames the file and mssgate reopens it (SIGHUP): the new file gets the events
// after those of the old one, also when mssgate starts again on a new, empty file.
TEST_F(IndicatorLogTest, RotationKeepsEachEventOnce) {
  fs::path first = dir_ / "indicators.jsonl.1";
  fs::path second = dir_ / "indicators.jsonl.2";
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 2);
    fs::rename(log_path(), first);
    record_many(journal, 3, 1);  // still written to the renamed file, as before the signal
    journal.reopen_log();
    record_many(journal, 4, 2);
    fs::rename(log_path(), second);
    journal.reopen_log();
    // Stopped (or killed) before anything is written to the new file.
    journal.stop();
  }
  EXPECT_EQ(seqs(first), range(1, 3));
  EXPECT_EQ(seqs(second), range(4, 5));
  ASSERT_TRUE(fs::exists(log_path()));
  EXPECT_EQ(fs::file_size(log_path()), 0u);
  {
    IndicatorJournal journal(options());  // the new file is empty: the saved position counts
    record_many(journal, 6, 1);
  }
  EXPECT_EQ(seqs(), std::vector<int64_t>{6});
}

// A last line that is not an event's, and a log that runs ahead of its journal (another
// journal's log): reported, and the log goes on from what the journal knows.
TEST_F(IndicatorLogTest, ALogThatIsNotThisJournalsIsReported) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 2);
  }
  { std::ofstream(log_path(), std::ios::app) << "not json\n"; }
  Seen seen;
  { IndicatorJournal journal(options(&seen)); }
  ASSERT_EQ(seen.errors.size(), 1u);
  EXPECT_NE(seen.errors[0].find("not an event's"), std::string::npos) << seen.errors[0];
  EXPECT_EQ(seen.openings.at(0).resumed_after, 2);

  fs::remove(log_path());
  { std::ofstream(log_path()) << "{\"event\":\"indicator\",\"seq\":40,\"key\":\"x\"}\n"; }
  Seen ahead;
  {
    IndicatorJournal journal(options(&ahead));
    record_many(journal, 3, 1);
  }
  ASSERT_EQ(ahead.errors.size(), 1u);
  EXPECT_NE(ahead.errors[0].find("ends with seq 40"), std::string::npos) << ahead.errors[0];
  EXPECT_EQ(seqs(), (std::vector<int64_t>{40, 3}));
}

TEST(IndicatorLogLine, TheSeqOfALine) {
  EXPECT_EQ(log_line_seq(R"({"event":"indicator","seq":12,"key":"sent:1"})"), 12);
  EXPECT_EQ(log_line_seq(R"({"event":"other","seq":12})"), std::nullopt);
  EXPECT_EQ(log_line_seq(R"({"event":"indicator","seq":"12"})"), std::nullopt);
  EXPECT_EQ(log_line_seq(R"({"event":"indicator","seq":0})"), std::nullopt);
  EXPECT_EQ(log_line_seq(R"({"event":"indicator","seq":12)"), std::nullopt);
  EXPECT_EQ(log_line_seq(""), std::nullopt);
}

// Pending events count only once settled as delivered, each key once; dropped ones never.
TEST_F(IndicatorLogTest, PendingEventsCountOnceDelivered) {
  IndicatorJournal journal(options());
  auto ids = pending(journal, {"received:a@x.fr:f1", "received:b@x.fr:f1"});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_event"), 0);
  EXPECT_TRUE(log_text().empty());
  EXPECT_TRUE(settle(journal, {ids[0]}, {ids[1]}));
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_event"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_document"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_pending"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_pending_document"), 0);

  // Postfix delivers the same message again (its answer was lost): counted once.
  auto again = pending(journal, {"received:a@x.fr:f1"});
  EXPECT_TRUE(settle(journal, again, {}));
  journal.stop();
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_event"), 1);
  EXPECT_EQ(journal.stats().recorded, 1u);
  EXPECT_EQ(journal.stats().duplicates, 1u);
  EXPECT_EQ(journal.stats().pending, 3u);
  // (The log is written after the waiters are told: read once the writer has stopped.)
  EXPECT_EQ(seqs(), std::vector<int64_t>{1});
  EXPECT_NE(log_text().find("received:a@x.fr:f1"), std::string::npos);
}

// A crash between the pending commit and the settlement: at the next opening the pending
// events count (Postfix may have had its answer), in the journal and in the log, each once;
// Postfix's delivery made again has the same key.
TEST_F(IndicatorLogTest, PendingEventsACrashLeftCountAtTheNextOpening) {
  {
    IndicatorJournal journal(options());
    record_many(journal, 1, 1);
    pending(journal, {"received:a@x.fr:f1", "received:b@x.fr:f1"});
  }  // no settlement
  Seen seen;
  {
    IndicatorJournal journal(options(&seen));
    EXPECT_EQ(seen.recovered, 2u);
    EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_pending"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_event"), 3);
    EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_document"), 3);
    EXPECT_EQ(seqs(), range(1, 3));
    auto again = pending(journal, {"received:a@x.fr:f1"});
    EXPECT_TRUE(settle(journal, again, {}));
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM indicator_event"), 3);
  EXPECT_EQ(seqs(), range(1, 3));
}
