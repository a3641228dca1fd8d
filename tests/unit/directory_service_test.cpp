// The SQLite source notices changes (and only changes), and the directory service swaps in a
// new snapshot after each, keeping the one in force when the database cannot be read.

#include "daemon/services/directory_service.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/telemetry/metrics.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"

using namespace mssgate;
using namespace std::chrono_literals;
using protocol::MailboxStatus;
using protocol::MailboxType;
namespace fs = std::filesystem;

namespace {

// Bounded polling, the only waiting these tests do: true as soon as `condition` holds, false
// when `limit` passed first.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

class DirectoryRefreshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("mssgate-refresh-test-" + std::to_string(::getpid()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    path_ = (folder_ / "directory.db").string();
    store_ = storage::open_sqlite_directory(path_);
    add(*store_, "dr.martin@test.fr");
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(folder_);
  }

  static void add(storage::DirectoryStore& store, const std::string& address) {
    store.add_mailbox({address, MailboxType::kPer, MailboxStatus::kActive});
  }
  static bool has(const storage::DirectoryLookup& directory, const std::string& address) {
    return directory.find_mailbox(address).value.has_value();
  }
  // Puts `file` in the directory's place as a restore does: without the old -wal and -shm,
  // which SQLite would otherwise read as part of the new file.
  void replace_with(const std::string& file) {
    fs::remove(path_ + "-wal");
    fs::remove(path_ + "-shm");
    fs::rename(file, path_);
  }
  void replace_with_directory_of(const std::string& address) {
    std::string other = (folder_ / "other.db").string();
    add(*storage::open_sqlite_directory(other), address);
    replace_with(other);
  }
  void replace_with_garbage() {
    std::string other = (folder_ / "garbage.db").string();
    std::ofstream(other) << std::string(8192, 'x');
    replace_with(other);
  }

  fs::path folder_;
  std::string path_;
  std::unique_ptr<storage::DirectoryStore> store_;
};

}  // namespace

TEST_F(DirectoryRefreshTest, TheSqliteSourceSeesCommitsAndNothingElse) {
  auto source = storage::open_sqlite_directory_source(path_);
  EXPECT_TRUE(source->changed()) << "nothing read yet";
  auto snapshot = storage::load_snapshot(*source);
  EXPECT_TRUE(has(*snapshot, "dr.martin@test.fr"));
  EXPECT_FALSE(source->changed());
  // mssgatectl opens the store for every command: an open that migrates nothing writes nothing.
  storage::open_sqlite_directory(path_).reset();
  store_->find_mailbox("dr.martin@test.fr");
  store_->list_mailboxes();
  EXPECT_FALSE(source->changed());
  add(*store_, "secretariat@test.fr");
  EXPECT_TRUE(source->changed());
  EXPECT_TRUE(source->changed()) << "until it is read";
  EXPECT_TRUE(has(*storage::load_snapshot(*source), "secretariat@test.fr"));
  EXPECT_FALSE(source->changed());
}

TEST_F(DirectoryRefreshTest, TheSqliteSourceOpensAFileReplacedAtTheSamePath) {
  auto source = storage::open_sqlite_directory_source(path_);
  storage::load_snapshot(*source);
  store_.reset();
  replace_with_directory_of("restored@test.fr");
  EXPECT_TRUE(source->changed());
  auto snapshot = storage::load_snapshot(*source);
  EXPECT_TRUE(has(*snapshot, "restored@test.fr"));
  EXPECT_FALSE(has(*snapshot, "dr.martin@test.fr"));
  EXPECT_FALSE(source->changed());
}

TEST_F(DirectoryRefreshTest, AChangeMadeThroughTheStoreIsInForceWithinTheInterval) {
  daemon::DirectoryService service(storage::open_sqlite_directory_source(path_), 20ms);
  EXPECT_EQ(service.generation(), 1u);
  EXPECT_TRUE(has(*service.snapshot(), "dr.martin@test.fr"));
  EXPECT_FALSE(has(*service.snapshot(), "secretariat@test.fr"));
  add(*store_, "secretariat@test.fr");
  ASSERT_TRUE(eventually([&] { return has(*service.snapshot(), "secretariat@test.fr"); }));
  EXPECT_EQ(service.generation(), 2u);
  store_->set_mailbox_status("secretariat@test.fr", MailboxStatus::kSuspended);
  ASSERT_TRUE(eventually([&] {
    return service.snapshot()->find_mailbox("secretariat@test.fr").value->status ==
           MailboxStatus::kSuspended;
  }));
  EXPECT_EQ(service.failed_refreshes(), 0u);
}

TEST_F(DirectoryRefreshTest, AReaderKeepsTheSnapshotItTookAcrossARefresh) {
  daemon::DirectoryService service(storage::open_sqlite_directory_source(path_), 20ms);
  auto taken = service.snapshot();
  store_->remove_mailbox("dr.martin@test.fr");
  ASSERT_TRUE(eventually([&] { return service.generation() == 2; }));
  EXPECT_FALSE(has(*service.snapshot(), "dr.martin@test.fr"));
  EXPECT_TRUE(has(*taken, "dr.martin@test.fr"));
}

TEST_F(DirectoryRefreshTest, ACorruptDatabaseLeavesTheLastSnapshotInForce) {
  auto& failures = daemon::metrics::gateway().directory_refreshes.with({"failed"});
  uint64_t failures_before = failures.value();
  daemon::DirectoryService service(storage::open_sqlite_directory_source(path_), 20ms);
  store_.reset();
  replace_with_garbage();
  ASSERT_TRUE(eventually([&] { return service.failed_refreshes() >= 2; }))
      << "found, then tried again at the next interval";
  EXPECT_GE(failures.value(), failures_before + 2);
  EXPECT_EQ(service.generation(), 1u);
  EXPECT_TRUE(has(*service.snapshot(), "dr.martin@test.fr"));
  // Once a good file is back, it is read.
  replace_with_directory_of("restored@test.fr");
  ASSERT_TRUE(eventually([&] { return has(*service.snapshot(), "restored@test.fr"); }));
  EXPECT_FALSE(has(*service.snapshot(), "dr.martin@test.fr"));
}

TEST_F(DirectoryRefreshTest, ADatabaseThatWentAwayLeavesTheLastSnapshotInForce) {
  daemon::DirectoryService service(storage::open_sqlite_directory_source(path_), 20ms);
  store_.reset();
  fs::remove(path_);
  ASSERT_TRUE(eventually([&] { return service.failed_refreshes() >= 1; }));
  EXPECT_TRUE(has(*service.snapshot(), "dr.martin@test.fr"));
  EXPECT_FALSE(fs::exists(path_)) << "not created again empty";
}

TEST_F(DirectoryRefreshTest, ANewRefreshIntervalTakesEffectAtOnce) {
  daemon::DirectoryService service(storage::open_sqlite_directory_source(path_), 1h);
  service.set_refresh_interval(20ms);
  add(*store_, "secretariat@test.fr");
  ASSERT_TRUE(eventually([&] { return has(*service.snapshot(), "secretariat@test.fr"); }));
  service.set_refresh_interval(1h);
  // Stopping does not wait for the hour.
  auto begin = std::chrono::steady_clock::now();
  service.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
  EXPECT_TRUE(has(*service.snapshot(), "secretariat@test.fr")) << "readable after stop";
}

TEST(DirectoryService, DoesNotStartWithoutADirectory) {
  EXPECT_THROW(daemon::DirectoryService(
                   storage::open_sqlite_directory_source("/nonexistent/mssgate/directory.db"), 1s),
               storage::StorageError);
}
