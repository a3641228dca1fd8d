// The PostgreSQL directory against a real PostgreSQL (scripts/postgres, started by the ctest
// fixture; its postgres.env is named by MSSGATE_PG_ENV): the store answers as the SQLite store
// does, the snapshot source sees commits and nothing else, the schema is migrated once, and a
// lost connection is opened again.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

#include "daemon/services/directory_service.hpp"
#include "daemon/services/provisioning_api.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"
#include "storage/postgresql.hpp"
#include "storage/postgresql_directory_schema.hpp"
#include "tests/postgresql/postgres_database.hpp"

using namespace mssgate;
using namespace std::chrono_literals;
using protocol::MailboxStatus;
using protocol::MailboxType;
namespace fs = std::filesystem;

namespace {

class PostgresqlDirectoryTest : public testing_postgres::EmptyDatabaseTest {
 protected:
  void SetUp() override {
    EmptyDatabaseTest::SetUp();
    sqlite_path_ = dir_ / "compare.db";
  }

  fs::path sqlite_path_;
};

// What a store says, every list and lookup, for comparing two stores.
std::string describe(storage::DirectoryStore& store) {
  std::string out;
  for (const auto& m : store.list_mailboxes()) {
    out += "mailbox " + m.address + " " + std::string(protocol::to_string(m.type)) + " " +
           std::string(protocol::to_string(m.status)) + "\n";
    for (const auto& s : store.allowed_senders(m.address).value)
      out += "  sender " + s + "\n";
  }
  for (const auto& h : store.list_holders())
    out += "holder " + h.id + " " + h.label + "\n";
  for (const auto& a : store.list_attachments()) {
    out += "attachment " + a.holder + " " + a.mailbox + " " + std::string(to_string(a.role)) + "\n";
    out += "  role " + std::string(to_string(*store.holder_role(a.holder, a.mailbox).value)) + "\n";
  }
  for (const auto& b : store.list_certificate_bindings()) {
    out += "binding " + std::string(to_string(b.match)) + " " + b.value + " " + b.mailbox + " " +
           b.label + "\n";
  }
  storage::CertificateKeys keys{std::string(64, 'a'), "CN=ORG CA|1002"};
  for (const auto& m : store.mailboxes_for_certificate(keys).value)
    out += "certificate opens " + m + "\n";
  auto missing = store.find_mailbox("nobody@test.fr");
  out += std::string("nobody: ") + (missing.ok() && !missing.value ? "none" : "?") + "\n";
  return out;
}

// The same administration on a store; each refusal's sentence is written down.
std::string administer(storage::DirectoryStore& store) {
  std::string refusals;
  auto attempt = [&](auto&& action) {
    try {
      action();
      refusals += "ok\n";
    } catch (const storage::StorageError& e) {
      refusals += std::string(e.what()) + "\n";
    }
  };
  attempt([&] {
    store.add_mailbox({"app.hopital@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  });
  attempt([&] {
    store.add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
  });
  attempt([&] {
    store.add_mailbox({"cabinet@test.fr", MailboxType::kCab, MailboxStatus::kSuspended});
  });
  attempt([&] {
    store.add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
  });
  attempt([&] { store.set_mailbox_status("cabinet@test.fr", MailboxStatus::kActive); });
  attempt([&] { store.set_mailbox_status("nobody@test.fr", MailboxStatus::kActive); });
  attempt([&] { store.allow_sender("dr.martin@test.fr", "secretariat@test.fr"); });
  attempt([&] { store.allow_sender("dr.martin@test.fr", "secretariat@test.fr"); });
  attempt([&] { store.allow_sender("nobody@test.fr", "x@test.fr"); });
  attempt([&] { store.add_holder({"810001234567", "Dr Martin"}); });
  attempt([&] { store.add_holder({"810001234567", "again"}); });
  attempt([&] {
    store.attach_holder({"810001234567", "dr.martin@test.fr", storage::HolderRole::kOwner});
  });
  attempt([&] {
    store.attach_holder({"810001234567", "cabinet@test.fr", storage::HolderRole::kCoHolder});
  });
  attempt([&] {
    store.attach_holder({"810001234567", "dr.martin@test.fr", storage::HolderRole::kDelegate});
  });
  attempt([&] {
    store.attach_holder({"899999999999", "dr.martin@test.fr", storage::HolderRole::kDelegate});
  });
  attempt([&] {
    store.bind_certificate({storage::CertificateMatch::kSpkiSha256, std::string(64, 'a'),
                            "app.hopital@test.fr", "CN=hopital"});
  });
  attempt([&] {
    store.bind_certificate(
        {storage::CertificateMatch::kIssuerSerial, "CN=ORG CA|1002", "cabinet@test.fr", ""});
  });
  attempt([&] {
    store.bind_certificate({storage::CertificateMatch::kSpkiSha256, std::string(64, 'a'),
                            "app.hopital@test.fr", "again"});
  });
  attempt([&] {
    store.bind_certificate(
        {storage::CertificateMatch::kSpkiSha256, std::string(64, 'b'), "nobody@test.fr", ""});
  });
  refusals += "disallow " +
              std::to_string(store.disallow_sender("dr.martin@test.fr", "none@test.fr")) + "\n";
  refusals +=
      "detach " + std::to_string(store.detach_holder("810001234567", "cabinet@test.fr")) + "\n";
  refusals += "unbind " +
              std::to_string(store.unbind_certificate({storage::CertificateMatch::kIssuerSerial,
                                                       "CN=ORG CA|1002", "cabinet@test.fr", ""})) +
              "\n";
  attempt([&] { store.remove_holder("899999999999"); });
  attempt([&] { store.remove_mailbox("nobody@test.fr"); });
  return refusals;
}

}  // namespace

TEST_F(PostgresqlDirectoryTest, TheStoreAnswersAndRefusesAsTheSqliteStore) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  auto postgresql = storage::open_postgresql_directory(settings_);
  std::string sqlite_refusals = administer(*sqlite);
  EXPECT_EQ(administer(*postgresql), sqlite_refusals);
  EXPECT_NE(sqlite_refusals.find("mailbox dr.martin@test.fr already exists"), std::string::npos);
  EXPECT_NE(sqlite_refusals.find("no mailbox nobody@test.fr"), std::string::npos);
  std::string described = describe(*sqlite);
  EXPECT_EQ(describe(*postgresql), described);
  EXPECT_NE(described.find("certificate opens app.hopital@test.fr"), std::string::npos)
      << described;
  // Removing a mailbox takes its senders, attachments and bindings with it, in both.
  sqlite->remove_mailbox("dr.martin@test.fr");
  postgresql->remove_mailbox("dr.martin@test.fr");
  EXPECT_EQ(describe(*postgresql), describe(*sqlite));
}

TEST_F(PostgresqlDirectoryTest, TheSnapshotSourceSeesCommitsAndNothingElse) {
  auto store = storage::open_postgresql_directory(settings_);
  store->add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
  auto source = storage::open_postgresql_directory_source(settings_);
  EXPECT_TRUE(source->changed()) << "nothing read yet";
  auto snapshot = storage::load_snapshot(*source);
  EXPECT_TRUE(snapshot->find_mailbox("dr.martin@test.fr").value.has_value());
  EXPECT_FALSE(source->changed());
  // Reading, and opening the store again (mssgatectl does at each command), change nothing.
  storage::open_postgresql_directory(settings_).reset();
  store->list_mailboxes();
  EXPECT_FALSE(source->changed());
  // A refused write changes nothing either.
  EXPECT_THROW(store->allow_sender("nobody@test.fr", "x@test.fr"), storage::StorageError);
  EXPECT_FALSE(source->changed());
  store->set_mailbox_status("dr.martin@test.fr", MailboxStatus::kSuspended);
  EXPECT_TRUE(source->changed());
  EXPECT_TRUE(source->changed()) << "until it is read";
  snapshot = storage::load_snapshot(*source);
  EXPECT_EQ(snapshot->find_mailbox("dr.martin@test.fr").value->status, MailboxStatus::kSuspended);
  EXPECT_FALSE(source->changed());
  EXPECT_EQ(source->name(),
            "postgresql://127.0.0.1:" + testing_postgres::postgres_env()["PG_PORT"] + "/mssgate");
}

TEST_F(PostgresqlDirectoryTest, TheSnapshotAnswersAsTheSqliteOne) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  auto postgresql = storage::open_postgresql_directory(settings_);
  administer(*sqlite);
  administer(*postgresql);
  auto from_sqlite =
      storage::load_snapshot(*storage::open_sqlite_directory_source(sqlite_path_.string()));
  auto from_postgresql =
      storage::load_snapshot(*storage::open_postgresql_directory_source(settings_));
  for (const char* address :
       {"app.hopital@test.fr", "dr.martin@test.fr", "cabinet@test.fr", "nobody@test.fr"}) {
    auto a = from_sqlite->find_mailbox(address).value;
    auto b = from_postgresql->find_mailbox(address).value;
    ASSERT_EQ(a.has_value(), b.has_value()) << address;
    if (a) {
      EXPECT_EQ(a->type, b->type) << address;
      EXPECT_EQ(a->status, b->status) << address;
    }
    EXPECT_EQ(from_sqlite->allowed_senders(address).value,
              from_postgresql->allowed_senders(address).value);
    EXPECT_EQ(from_sqlite->holder_role("810001234567", address).value,
              from_postgresql->holder_role("810001234567", address).value);
  }
  storage::CertificateKeys keys{std::string(64, 'a'), "CN=ORG CA|1002"};
  EXPECT_EQ(from_sqlite->mailboxes_for_certificate(keys).value,
            from_postgresql->mailboxes_for_certificate(keys).value);
  EXPECT_EQ(from_postgresql->mailboxes_for_certificate(keys).value,
            std::vector<std::string>{"app.hopital@test.fr"});
}

TEST_F(PostgresqlDirectoryTest, GatewaysStartingTogetherMigrateOnce) {
  std::vector<std::thread> starters;
  std::atomic<int> failures = 0;
  starters.reserve(4);
  for (int i = 0; i < 4; ++i) {
    starters.emplace_back([&] {
      try {
        storage::open_postgresql_directory_source(settings_);
      } catch (const storage::StorageError&) {
        ++failures;
      }
    });
  }
  for (auto& t : starters)
    t.join();
  EXPECT_EQ(failures, 0);
  storage::PostgresqlConnection db(settings_);
  auto version = db.exec("reading", "SELECT version FROM mssgate_schema WHERE part = 'directory'");
  ASSERT_EQ(version.rows(), 1);
  EXPECT_EQ(version.integer(0, 0), storage::postgresql_directory_schema::kVersion);
}

TEST_F(PostgresqlDirectoryTest, ADirectoryOfVersion1TakesOrganisationBindingsOnceMigrated) {
  auto store = storage::open_postgresql_directory(settings_);
  store->add_mailbox({"app@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  store->bind_certificate(
      {storage::CertificateMatch::kSpkiSha256, std::string(64, 'a'), "app@test.fr", ""});
  store.reset();
  {
    // The directory as version 1 made it.
    storage::PostgresqlConnection db(settings_);
    db.exec_script("going back to version 1",
                   "ALTER TABLE certificate_binding DROP CONSTRAINT "
                   "certificate_binding_match_kind_check; "
                   "ALTER TABLE certificate_binding ADD CONSTRAINT "
                   "certificate_binding_match_kind_check CHECK (match_kind IN ('spki-sha256', "
                   "'issuer-serial')); "
                   "UPDATE mssgate_schema SET version = 1 WHERE part = 'directory'");
    EXPECT_THROW(db.exec("an organisation binding in version 1",
                         "INSERT INTO certificate_binding (match_kind, match_value, mailbox) "
                         "VALUES ('organisation', 'CN=CA|OU=1,CN=S', 'app@test.fr')"),
                 storage::StorageError);
  }
  store = storage::open_postgresql_directory(settings_);
  store->bind_certificate(
      {storage::CertificateMatch::kOrganisation, "CN=CA|OU=1,CN=S", "app@test.fr", ""});
  EXPECT_EQ(store->list_certificate_bindings().size(), 2u);
  EXPECT_EQ(store->mailboxes_for_certificate({"", "", "CN=CA|OU=1,CN=S"}).value,
            std::vector<std::string>{"app@test.fr"});
}

TEST_F(PostgresqlDirectoryTest, ADirectoryOfANewerMssgateIsRefused) {
  storage::open_postgresql_directory(settings_).reset();
  storage::PostgresqlConnection db(settings_);
  db.exec("moving on", "UPDATE mssgate_schema SET version = 99 WHERE part = 'directory'");
  try {
    storage::open_postgresql_directory(settings_);
    FAIL() << "opened";
  } catch (const storage::StorageError& e) {
    EXPECT_STREQ(e.what(),
                 ("the PostgreSQL directory has schema version 99, newer than this mssgate (" +
                  std::to_string(storage::postgresql_directory_schema::kVersion) + ")")
                     .c_str());
  }
}

TEST_F(PostgresqlDirectoryTest, ALostConnectionIsOpenedAgain) {
  auto store = storage::open_postgresql_directory(settings_);
  store->add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
  auto source = storage::open_postgresql_directory_source(settings_);
  storage::load_snapshot(*source);
  // The server ends the source's connection (as a restart would).
  storage::PostgresqlConnection db(settings_);
  db.exec("ending the source's connection",
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE application_name = 'mssgate-tests' AND pid <> pg_backend_pid()");
  store.reset();  // its connection was ended too
  EXPECT_THROW(source->changed(), storage::StorageError);
  EXPECT_TRUE(source->changed()) << "connected again: read again";
  EXPECT_TRUE(storage::load_snapshot(*source)->find_mailbox("dr.martin@test.fr").value.has_value());
  EXPECT_FALSE(source->changed());
}

TEST_F(PostgresqlDirectoryTest, ADirectoryServiceHasAChangeInForceWithinItsInterval) {
  auto store = storage::open_postgresql_directory(settings_);
  store->add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
  daemon::DirectoryService service(storage::open_postgresql_directory_source(settings_), 20ms);
  store->add_mailbox({"secretariat@test.fr", MailboxType::kOrg, MailboxStatus::kActive});
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!service.snapshot()->find_mailbox("secretariat@test.fr").value &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(service.snapshot()->find_mailbox("secretariat@test.fr").value.has_value())
      << "a change is in force within the refresh interval";
}

TEST(PostgresqlConnection, RefusesAPasswordInTheConnectionStringAndSaysWhyItCannotConnect) {
  storage::PostgresqlSettings with_password{"host=127.0.0.1 dbname=x user=y password=secret", "",
                                            1s, "t"};
  try {
    storage::PostgresqlConnection db(with_password);
    FAIL() << "connected";
  } catch (const storage::StorageError& e) {
    EXPECT_STREQ(e.what(),
                 "the PostgreSQL connection string holds a password: put it in its file instead");
  }
  storage::PostgresqlSettings garbage{"host='unterminated", "", 1s, "t"};
  EXPECT_THROW(storage::PostgresqlConnection{garbage}, storage::StorageError);
  auto env = testing_postgres::postgres_env();
  storage::PostgresqlSettings wrong{env["PG_URL"], "not-the-password", 2s, "t"};
  try {
    storage::PostgresqlConnection db(wrong);
    FAIL() << "connected";
  } catch (const storage::StorageError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind("cannot connect to PostgreSQL postgresql://127.0.0.1:" + env["PG_PORT"] +
                             "/mssgate: ",
                         0),
              0u)
        << what;
    EXPECT_NE(what.find("password authentication failed"), std::string::npos) << what;
    EXPECT_EQ(what.find("not-the-password"), std::string::npos) << what;
  }
  storage::PostgresqlSettings nobody{"host=127.0.0.1 port=1 dbname=x user=y", "", 1s, "t"};
  try {
    storage::PostgresqlConnection db(nobody);
    FAIL() << "connected";
  } catch (const storage::StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("postgresql://127.0.0.1:1/x"), std::string::npos)
        << e.what();
  }
}

TEST_F(PostgresqlDirectoryTest, ASingleHostsDirectoryMovesWholeOrNotAtAll) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  administer(*sqlite);
  // More rows than one batch of the copy.
  for (int i = 0; i < 1200; ++i) {
    sqlite->add_mailbox(
        {"bal." + std::to_string(i) + "@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  }
  auto counts = storage::copy_directory_to_postgresql(*sqlite, settings_);
  EXPECT_EQ(counts.mailboxes, 1203u);
  EXPECT_EQ(counts.senders, 1u);
  EXPECT_EQ(counts.holders, 1u);
  EXPECT_EQ(counts.attachments, 1u);  // the other was detached
  EXPECT_EQ(counts.bindings, 1u);     // the other was unbound
  auto postgresql = storage::open_postgresql_directory(settings_);
  EXPECT_EQ(describe(*postgresql), describe(*sqlite));
  // Into a directory that is not empty: refused, and nothing changes.
  sqlite->add_mailbox({"late@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  try {
    storage::copy_directory_to_postgresql(*sqlite, settings_);
    FAIL() << "copied twice";
  } catch (const storage::StorageError& e) {
    EXPECT_STREQ(e.what(),
                 "the PostgreSQL directory already holds 1203 mailboxes: a move goes into an "
                 "empty directory");
  }
  EXPECT_FALSE(postgresql->find_mailbox("late@test.fr").value.has_value());
}

TEST_F(PostgresqlDirectoryTest, AMoveThatFailsHalfWayLeavesNothing) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  administer(*sqlite);
  // PostgreSQL refuses a row SQLite took (its table was changed by hand): the move stops there.
  storage::open_postgresql_directory(settings_).reset();
  storage::PostgresqlConnection db(settings_);
  db.exec("narrowing a column",
          "ALTER TABLE holder ADD CONSTRAINT short_label CHECK (length(label) < 3)");
  EXPECT_THROW(storage::copy_directory_to_postgresql(*sqlite, settings_), storage::StorageError);
  EXPECT_EQ(db.exec("counting", "SELECT count(*) FROM mailbox").integer(0, 0), 0);
}

namespace {

// A directory of `mailboxes` mailboxes, each kind of row in it, big enough that every batched
// statement runs more than once.
storage::DirectoryContents generated_directory(size_t mailboxes) {
  storage::DirectoryContents c;
  for (size_t i = 0; i < mailboxes; ++i) {
    std::string address = "bal" + std::to_string(i) + "@test.fr";
    c.mailboxes.push_back({address, i % 3 ? MailboxType::kPer : MailboxType::kApp,
                           i % 7 ? MailboxStatus::kActive : MailboxStatus::kSuspended});
    if (i % 3 == 0) {
      char hex[65];
      std::snprintf(hex, sizeof hex, "%064zx", i);
      c.bindings.push_back({storage::CertificateMatch::kSpkiSha256, hex, address, "CN=" + address});
      c.senders.push_back({address, "alias" + std::to_string(i) + "@test.fr"});
    } else {
      std::string id = "8" + std::string(11 - std::to_string(i).size(), '0') + std::to_string(i);
      c.holders.push_back({id, "Dr " + std::to_string(i)});
      c.attachments.push_back({id, address, storage::HolderRole::kOwner});
    }
  }
  storage::sort_contents(c);
  return c;
}

void import_into(storage::DirectoryStore& store, const storage::DirectoryContents& wanted,
                 storage::AbsentMailboxes absent) {
  storage::ImportRows rows;
  rows.contents = wanted;
  rows.lines.mailboxes.assign(wanted.mailboxes.size(), 1);
  rows.lines.senders.assign(wanted.senders.size(), 1);
  rows.lines.holders.assign(wanted.holders.size(), 1);
  rows.lines.attachments.assign(wanted.attachments.size(), 1);
  rows.lines.bindings.assign(wanted.bindings.size(), 1);
  std::vector<storage::ImportError> errors;
  store.change_whole([&](const storage::DirectoryContents& current) {
    return std::optional(storage::plan_changes(current, rows, absent, errors));
  });
  ASSERT_TRUE(errors.empty()) << errors.front().message;
}

}  // namespace

TEST_F(PostgresqlDirectoryTest, ABulkImportAndSyncEndAsInSqlite) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  auto postgresql = storage::open_postgresql_directory(settings_);
  auto source = storage::open_postgresql_directory_source(settings_);
  storage::load_snapshot(*source);
  storage::DirectoryContents wanted = generated_directory(12000);
  import_into(*postgresql, wanted, storage::AbsentMailboxes::kKeep);
  import_into(*sqlite, wanted, storage::AbsentMailboxes::kKeep);
  EXPECT_EQ(postgresql->read_whole(), wanted);
  EXPECT_TRUE(source->changed()) << "the gateways' snapshots see the import";
  auto snapshot = storage::load_snapshot(*source);
  EXPECT_EQ(snapshot->counts().mailboxes, 12000u);

  // A sync from a file that changed a little of everything and lacks a quarter of it.
  storage::DirectoryContents next = generated_directory(9000);
  for (auto& m : next.mailboxes)
    if (m.address.ends_with("5@test.fr")) m.status = MailboxStatus::kClosed;
  for (auto& h : next.holders)
    h.label += " (renamed)";
  for (auto& a : next.attachments)
    a.role = storage::HolderRole::kDelegate;
  for (auto& b : next.bindings)
    b.label = "renewed";
  import_into(*postgresql, next, storage::AbsentMailboxes::kRemove);
  import_into(*sqlite, next, storage::AbsentMailboxes::kRemove);
  EXPECT_EQ(postgresql->read_whole(), next);
  EXPECT_EQ(describe(*postgresql), describe(*sqlite));

  import_into(*postgresql, generated_directory(100), storage::AbsentMailboxes::kSuspend);
  auto after = postgresql->read_whole();
  EXPECT_EQ(after.mailboxes.size(), 9000u);
  // The file's mailboxes are as it says; every other one is suspended, or stays closed.
  auto in_file = generated_directory(100).mailboxes;
  for (const auto& m : after.mailboxes) {
    auto named = std::find_if(in_file.begin(), in_file.end(),
                              [&](const auto& f) { return f.address == m.address; });
    if (named != in_file.end()) {
      EXPECT_EQ(m, *named);
    } else {
      EXPECT_TRUE(m.status == MailboxStatus::kSuspended || m.status == MailboxStatus::kClosed)
          << m.address;
    }
  }
}

TEST_F(PostgresqlDirectoryTest, ABulkChangeThatFailsLeavesNothing) {
  auto postgresql = storage::open_postgresql_directory(settings_);
  import_into(*postgresql, generated_directory(50), storage::AbsentMailboxes::kKeep);
  storage::DirectoryChanges bad;
  bad.mailboxes.added = {{"fresh@test.fr", MailboxType::kPer, MailboxStatus::kActive},
                         {"bal1@test.fr", MailboxType::kPer, MailboxStatus::kActive}};
  EXPECT_THROW(postgresql->change_whole([&](const auto&) { return std::optional(bad); }),
               storage::StorageError);
  EXPECT_EQ(postgresql->read_whole(), generated_directory(50));
}

namespace {

// Every row of every table, read a page of `limit` at a time (with the filters given).
std::string paged(storage::DirectoryStore& store, size_t limit, const std::string& mailbox = "",
                  const std::string& holder = "") {
  std::string out;
  for (auto table : {storage::DirectoryTable::kMailboxes, storage::DirectoryTable::kSenders,
                     storage::DirectoryTable::kHolders, storage::DirectoryTable::kAttachments,
                     storage::DirectoryTable::kBindings}) {
    storage::DirectoryPageQuery query;
    query.table = table;
    query.limit = limit;
    query.mailbox = mailbox;
    query.holder = holder;
    for (int pages = 0; pages < 100; ++pages) {
      storage::DirectoryContents page = store.read_page(query);
      std::vector<std::string> last;
      auto take = [&](const auto& rows) {
        for (const auto& row : rows) {
          last = storage::page_key(row);
          for (const auto& column : last)
            out += column + " ";
          out += "\n";
        }
        return rows.size();
      };
      size_t got = take(page.mailboxes) + take(page.senders) + take(page.holders) +
                   take(page.attachments) + take(page.bindings);
      out += "--\n";
      if (got < limit) break;
      query.after = last;
    }
  }
  return out;
}

}  // namespace

TEST_F(PostgresqlDirectoryTest, PagesAndChangesOfTheProvisioningApiAreAsInSqlite) {
  auto sqlite = storage::open_sqlite_directory(sqlite_path_.string());
  auto postgresql = storage::open_postgresql_directory(settings_);
  administer(*sqlite);
  administer(*postgresql);
  storage::DirectoryChanges more;
  for (int i = 0; i < 7; ++i) {
    std::string address = "app." + std::to_string(i) + "@test.fr";
    more.mailboxes.added.push_back({address, MailboxType::kApp, MailboxStatus::kActive});
    more.senders.added.push_back({address, "envoi." + std::to_string(i) + "@test.fr"});
    more.bindings.added.push_back(
        {storage::CertificateMatch::kSpkiSha256, std::string(64, 'c'), address, ""});
  }
  sqlite->apply_changes(more);
  postgresql->apply_changes(more);
  for (size_t limit : {1, 2, 3, 100}) {
    std::string expected = paged(*sqlite, limit);
    EXPECT_EQ(paged(*postgresql, limit), expected) << limit;
    EXPECT_NE(expected.find("app.6@test.fr"), std::string::npos);
  }
  EXPECT_EQ(paged(*postgresql, 2, "app.3@test.fr"), paged(*sqlite, 2, "app.3@test.fr"));
  EXPECT_EQ(paged(*postgresql, 2, "", "810001234567"), paged(*sqlite, 2, "", "810001234567"));

  // A change that breaks a rule is refused whole, as StorageRefusal, in both.
  storage::DirectoryChanges bad;
  bad.mailboxes.added.push_back({"new@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  bad.senders.added.push_back({"nobody@test.fr", "x@test.fr"});
  EXPECT_THROW(sqlite->apply_changes(bad), storage::StorageRefusal);
  EXPECT_THROW(postgresql->apply_changes(bad), storage::StorageRefusal);
  storage::DirectoryChanges twice;
  twice.mailboxes.added.push_back({"app.1@test.fr", MailboxType::kApp, MailboxStatus::kActive});
  EXPECT_THROW(sqlite->apply_changes(twice), storage::StorageRefusal);
  EXPECT_THROW(postgresql->apply_changes(twice), storage::StorageRefusal);
  EXPECT_FALSE(postgresql->find_mailbox("new@test.fr").value);
  EXPECT_EQ(describe(*postgresql), describe(*sqlite));

  // The API answers the same over both.
  daemon::ProvisioningRequest request;
  request.client.may_write = true;
  request.client.spki_sha256 = std::string(64, 'd');
  for (auto [method, target, body] :
       {std::tuple{"POST", "/api/directory/mailboxes",
                   R"({"mailbox": "api@test.fr", "type": "ORG"})"},
        std::tuple{"POST", "/api/directory/mailboxes",
                   R"({"mailbox": "api@test.fr", "type": "ORG"})"},
        std::tuple{"PUT", "/api/directory/holders/810001234567", R"({"label": "Dr Martin"})"},
        std::tuple{"GET", "/api/directory/attachments?holder=810001234567&limit=1", ""},
        std::tuple{"DELETE", "/api/directory/senders/app.2@test.fr/envoi.2@test.fr", ""},
        std::tuple{"GET", "/api/directory/senders?mailbox=app.2@test.fr", ""},
        std::tuple{"POST", "/api/directory/import?sync=true&absent=close",
                   "kind,mailbox,type\nmailbox,api@test.fr,ORG\n"},
        std::tuple{"GET", "/api/directory/export?format=jsonl", ""}}) {
    request.method = method;
    request.target = target;
    request.body = body;
    request.content_type = std::string_view(target).find("import") != std::string_view::npos
                               ? "text/csv"
                               : "application/json";
    daemon::AdminResponse from_sqlite = daemon::handle_provisioning(request, *sqlite);
    daemon::AdminResponse from_postgresql = daemon::handle_provisioning(request, *postgresql);
    EXPECT_EQ(from_postgresql.status, from_sqlite.status) << method << " " << target;
    EXPECT_EQ(from_postgresql.body, from_sqlite.body) << method << " " << target;
    EXPECT_LT(from_sqlite.status, 500u) << from_sqlite.body;
  }
}
