// The directory snapshot answers as the SQLite store it was read from: every lookup, the
// normalisation left to the callers, an empty directory, repeated rows, and a directory of
// 10,000 mailboxes compared lookup by lookup.

#include "storage/directory_snapshot.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "daemon/services/access_policy.hpp"
#include "daemon/services/indicator_event.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"

using namespace mssgate;
using protocol::MailboxStatus;
using protocol::MailboxType;
using storage::CertificateMatch;
using storage::HolderRole;
namespace fs = std::filesystem;

namespace {

fs::path temporary_database(const std::string& name) {
  static int counter = 0;
  return fs::temp_directory_path() / ("mssgate-" + name + "-" + std::to_string(::getpid()) + "-" +
                                      std::to_string(++counter) + ".db");
}

void remove_database(const fs::path& path) {
  for (const char* suffix : {"", "-wal", "-shm"})
    fs::remove(path.string() + suffix);
}

std::shared_ptr<const storage::DirectorySnapshot> snapshot_of(const fs::path& path) {
  auto source = storage::open_sqlite_directory_source(path.string());
  return storage::load_snapshot(*source);
}

using Strings = std::vector<std::string>;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = temporary_database("snapshot-test");
    store_ = storage::open_sqlite_directory(path_.string());
    store_->add_mailbox({"app.hopital@test.fr", MailboxType::kApp, MailboxStatus::kActive});
    store_->add_mailbox({"app.second@test.fr", MailboxType::kApp, MailboxStatus::kActive});
    store_->add_mailbox({"app.off@test.fr", MailboxType::kApp, MailboxStatus::kSuspended});
    store_->add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
    store_->add_mailbox({"secretariat@test.fr", MailboxType::kOrg, MailboxStatus::kActive});
    store_->add_mailbox({"cabinet@autre.fr", MailboxType::kCab, MailboxStatus::kClosed});
    store_->add_mailbox({"secretariat@autre.fr", MailboxType::kOrg, MailboxStatus::kActive});
    store_->bind_certificate({CertificateMatch::kSpkiSha256, spki_, "app.hopital@test.fr", ""});
    store_->bind_certificate({CertificateMatch::kSpkiSha256, spki_, "app.off@test.fr", ""});
    store_->bind_certificate({CertificateMatch::kIssuerSerial, serial_, "app.second@test.fr", ""});
    store_->bind_certificate({CertificateMatch::kIssuerSerial, serial_, "app.hopital@test.fr", ""});
    store_->add_holder({"810001234567", "Dr Martin"});
    store_->add_holder({"810009999999", ""});
    store_->attach_holder({"810001234567", "dr.martin@test.fr", HolderRole::kOwner});
    store_->attach_holder({"810001234567", "secretariat@test.fr", HolderRole::kDelegate});
    store_->attach_holder({"810001234567", "cabinet@autre.fr", HolderRole::kCoHolder});
    store_->attach_holder({"810009999999", "cabinet@autre.fr", HolderRole::kCoHolder});
    store_->allow_sender("app.hopital@test.fr", "secretariat@test.fr");
    store_->allow_sender("app.hopital@test.fr", "accueil@test.fr");
    snapshot_ = snapshot_of(path_);
  }
  void TearDown() override {
    store_.reset();
    remove_database(path_);
  }

  fs::path path_;
  std::unique_ptr<storage::DirectoryStore> store_;
  std::shared_ptr<const storage::DirectorySnapshot> snapshot_;
  std::string spki_ = std::string(64, 'a');
  std::string serial_ = "CN=ORG CA,O=TEST,C=FR|1002";
};

}  // namespace

TEST_F(SnapshotTest, FindsEachMailboxWithItsTypeAndStatus) {
  auto found = snapshot_->find_mailbox("app.off@test.fr");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found.value);
  EXPECT_EQ(found.value->address, "app.off@test.fr");
  EXPECT_EQ(found.value->type, MailboxType::kApp);
  EXPECT_EQ(found.value->status, MailboxStatus::kSuspended);
  EXPECT_EQ(snapshot_->find_mailbox("dr.martin@test.fr").value->type, MailboxType::kPer);
  EXPECT_EQ(snapshot_->find_mailbox("cabinet@autre.fr").value->type, MailboxType::kCab);
  EXPECT_EQ(snapshot_->find_mailbox("cabinet@autre.fr").value->status, MailboxStatus::kClosed);
  EXPECT_EQ(snapshot_->find_mailbox("secretariat@autre.fr").value->type, MailboxType::kOrg);
  EXPECT_FALSE(snapshot_->find_mailbox("nobody@test.fr").value);
  EXPECT_FALSE(snapshot_->find_mailbox("cabinet@test.fr").value) << "same name, other domain";
  EXPECT_FALSE(snapshot_->find_mailbox("dr.martin@nowhere.fr").value) << "a domain nobody has";
  EXPECT_FALSE(snapshot_->find_mailbox("").value);
  EXPECT_EQ(snapshot_->counts().mailboxes, 7u);
}

TEST_F(SnapshotTest, ComparesAddressesByteForByteAndLeavesNormalisationToTheCallers) {
  for (const char* address : {"Dr.Martin@test.fr", "dr.martin@TEST.fr", " dr.martin@test.fr"}) {
    EXPECT_FALSE(store_->find_mailbox(address).value) << address;
    EXPECT_FALSE(snapshot_->find_mailbox(address).value) << address;
  }
  config::AuthConfig auth;
  auto decision =
      daemon::decide_token_access(*snapshot_, "810001234567", "Dr.Martin@Test.FR", auth);
  EXPECT_EQ(decision.outcome, daemon::AccessDecision::Outcome::kAllowed);
  EXPECT_EQ(decision.mailbox, "dr.martin@test.fr");
  config::IndicatorsConfig indicators;
  EXPECT_EQ(daemon::counterpart_of("Secretariat@Autre.FR", indicators, *snapshot_),
            daemon::Counterpart::kSameOperator)
      << "counterpart_of lower-cases before it asks";
  EXPECT_EQ(storage::to_string(daemon::mailbox_type_of("secretariat@autre.fr", *snapshot_)), "ORG");
  EXPECT_EQ(storage::to_string(daemon::mailbox_type_of("Secretariat@autre.fr", *snapshot_)),
            "unknown");
}

TEST_F(SnapshotTest, FindsTheMailboxesOfACertificateByEitherKeySortedAndOnce) {
  auto both = snapshot_->mailboxes_for_certificate({spki_, serial_});
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both.value, (Strings{"app.hopital@test.fr", "app.off@test.fr", "app.second@test.fr"}));
  EXPECT_EQ(both.value, store_->mailboxes_for_certificate({spki_, serial_}).value);
  EXPECT_EQ(snapshot_->mailboxes_for_certificate({spki_, "CN=ORG CA,O=TEST,C=FR|1003"}).value,
            (Strings{"app.hopital@test.fr", "app.off@test.fr"}));
  EXPECT_EQ(snapshot_->mailboxes_for_certificate({std::string(64, 'b'), serial_}).value,
            (Strings{"app.hopital@test.fr", "app.second@test.fr"}));
  EXPECT_TRUE(snapshot_->mailboxes_for_certificate({std::string(64, 'b'), "x|1"}).value.empty());
  EXPECT_TRUE(snapshot_->mailboxes_for_certificate({serial_, spki_}).value.empty())
      << "a key counts only in its own kind";
  EXPECT_EQ(snapshot_->counts().bindings, 4u);
}

TEST_F(SnapshotTest, ListsTheSendersOfAMailboxSorted) {
  EXPECT_EQ(snapshot_->allowed_senders("app.hopital@test.fr").value,
            (Strings{"accueil@test.fr", "secretariat@test.fr"}));
  EXPECT_TRUE(snapshot_->allowed_senders("app.second@test.fr").value.empty());
  EXPECT_TRUE(snapshot_->allowed_senders("nobody@test.fr").value.empty());
  EXPECT_EQ(snapshot_->counts().senders, 2u);
}

TEST_F(SnapshotTest, GivesTheRoleOfAProfessionalOnAMailbox) {
  EXPECT_EQ(snapshot_->holder_role("810001234567", "dr.martin@test.fr").value, HolderRole::kOwner);
  EXPECT_EQ(snapshot_->holder_role("810001234567", "secretariat@test.fr").value,
            HolderRole::kDelegate);
  EXPECT_EQ(snapshot_->holder_role("810001234567", "cabinet@autre.fr").value,
            HolderRole::kCoHolder);
  EXPECT_EQ(snapshot_->holder_role("810009999999", "cabinet@autre.fr").value,
            HolderRole::kCoHolder);
  EXPECT_FALSE(snapshot_->holder_role("810009999999", "dr.martin@test.fr").value);
  EXPECT_FALSE(snapshot_->holder_role("899999999999", "dr.martin@test.fr").value);
  EXPECT_FALSE(snapshot_->holder_role("810001234567", "nobody@test.fr").value);
  EXPECT_EQ(snapshot_->counts().holders, 2u);
  EXPECT_EQ(snapshot_->counts().attachments, 4u);
}

TEST_F(SnapshotTest, TheAccessPolicyDecidesAsWithTheStore) {
  config::AuthConfig auth;
  daemon::CertificateIdentity hopital;
  hopital.spki_sha256 = spki_;
  hopital.issuer = "CN=ORG CA,O=TEST,C=FR";
  hopital.serial_hex = "1002";
  daemon::CertificateIdentity stranger;
  stranger.spki_sha256 = std::string(64, 'e');
  for (const auto& certificate : {std::optional(hopital), std::optional(stranger),
                                  std::optional<daemon::CertificateIdentity>()}) {
    for (const char* authzid : {"", "app.hopital@test.fr", "APP.Second@test.fr", "app.off@test.fr",
                                "dr.martin@test.fr", "not an address"}) {
      auto expected = daemon::decide_certificate_access(
          *store_, certificate ? &*certificate : nullptr, authzid, auth);
      auto actual = daemon::decide_certificate_access(
          *snapshot_, certificate ? &*certificate : nullptr, authzid, auth);
      EXPECT_EQ(actual.outcome, expected.outcome) << authzid;
      EXPECT_EQ(actual.reason, expected.reason) << authzid;
      EXPECT_EQ(actual.mailbox, expected.mailbox) << authzid;
    }
  }
  for (const char* holder : {"810001234567", "810009999999", "800000000000"}) {
    for (const char* mailbox : {"", "dr.martin@test.fr", "secretariat@test.fr", "cabinet@autre.fr",
                                "app.hopital@test.fr", "nobody@test.fr"}) {
      auto expected = daemon::decide_token_access(*store_, holder, mailbox, auth);
      auto actual = daemon::decide_token_access(*snapshot_, holder, mailbox, auth);
      EXPECT_EQ(actual.outcome, expected.outcome) << holder << " " << mailbox;
      EXPECT_EQ(actual.reason, expected.reason) << holder << " " << mailbox;
    }
  }
}

TEST(DirectorySnapshot, AnEmptyDirectoryAnswersEveryLookupWithNothing) {
  auto path = temporary_database("snapshot-empty");
  auto snapshot = snapshot_of(path);
  remove_database(path);
  for (const auto& s : {snapshot, storage::DirectorySnapshotBuilder().build()}) {
    EXPECT_TRUE(s->find_mailbox("dr.martin@test.fr").ok());
    EXPECT_FALSE(s->find_mailbox("dr.martin@test.fr").value);
    EXPECT_TRUE(s->mailboxes_for_certificate({"aa", "CN=CA|01"}).value.empty());
    EXPECT_TRUE(s->allowed_senders("dr.martin@test.fr").value.empty());
    EXPECT_FALSE(s->holder_role("810001234567", "dr.martin@test.fr").value);
    EXPECT_EQ(s->counts().mailboxes, 0u);
    EXPECT_GT(s->memory_bytes(), 0u);
  }
}

TEST(DirectorySnapshot, KeepsRepeatedRowsOnce) {
  storage::DirectorySnapshotBuilder builder;
  builder.add_mailbox("a@test.fr", MailboxType::kApp, MailboxStatus::kActive);
  builder.add_mailbox("a@test.fr", MailboxType::kPer, MailboxStatus::kClosed);
  builder.add_binding(CertificateMatch::kSpkiSha256, "k1", "a@test.fr");
  builder.add_binding(CertificateMatch::kSpkiSha256, "k1", "a@test.fr");
  builder.add_binding(CertificateMatch::kIssuerSerial, "CN=CA|01", "a@test.fr");
  builder.add_sender("a@test.fr", "s@test.fr");
  builder.add_sender("a@test.fr", "s@test.fr");
  builder.add_attachment("810001234567", "a@test.fr", HolderRole::kCoHolder);
  builder.add_attachment("810001234567", "a@test.fr", HolderRole::kDelegate);
  auto snapshot = builder.build();
  EXPECT_EQ(snapshot->find_mailbox("a@test.fr").value->type, MailboxType::kApp) << "the first";
  EXPECT_EQ(snapshot->mailboxes_for_certificate({"k1", "CN=CA|01"}).value, Strings{"a@test.fr"});
  EXPECT_EQ(snapshot->allowed_senders("a@test.fr").value, Strings{"s@test.fr"});
  EXPECT_EQ(snapshot->holder_role("810001234567", "a@test.fr").value, HolderRole::kDelegate);
  const auto& counts = snapshot->counts();
  EXPECT_EQ(counts.mailboxes, 1u);
  EXPECT_EQ(counts.bindings, 2u);
  EXPECT_EQ(counts.senders, 1u);
  EXPECT_EQ(counts.attachments, 1u);
}

TEST(DirectorySnapshot, AnAddressOnlyReferredToIsBoundButIsNoMailbox) {
  // What the store answers for a binding left behind by an edit without foreign keys.
  storage::DirectorySnapshotBuilder builder;
  builder.add_binding(CertificateMatch::kSpkiSha256, "k1", "gone@test.fr");
  builder.add_attachment("810001234567", "gone@test.fr", HolderRole::kOwner);
  auto snapshot = builder.build();
  EXPECT_EQ(snapshot->mailboxes_for_certificate({"k1", ""}).value, Strings{"gone@test.fr"});
  EXPECT_EQ(snapshot->holder_role("810001234567", "gone@test.fr").value, HolderRole::kOwner);
  EXPECT_FALSE(snapshot->find_mailbox("gone@test.fr").value);
  EXPECT_EQ(snapshot->counts().mailboxes, 0u);
}

TEST(DirectorySnapshot, SplitsAddressesAndIssuersAtTheirLastSeparatorOnly) {
  storage::DirectorySnapshotBuilder builder;
  const Strings addresses = {"contact@a.fr", "contact@b.fr", "contact", "contact@", "@a.fr",
                             "x@y@a.fr",     "x@y",          "",        "é@ü.fr"};
  for (const auto& address : addresses)
    builder.add_mailbox(address, MailboxType::kOrg, MailboxStatus::kActive);
  builder.add_binding(CertificateMatch::kIssuerSerial, "CN=A|B,O=X|01", "contact@a.fr");
  builder.add_binding(CertificateMatch::kIssuerSerial, "01", "contact@b.fr");
  builder.add_binding(CertificateMatch::kIssuerSerial, "CN=A|", "contact");
  auto snapshot = builder.build();
  for (const auto& address : addresses)
    EXPECT_TRUE(snapshot->find_mailbox(address).value) << address;
  for (const char* absent : {"contact@c.fr", "contacts@a.fr", "contac@a.fr", "x@y@b.fr", "a.fr"})
    EXPECT_FALSE(snapshot->find_mailbox(absent).value) << absent;
  EXPECT_EQ(snapshot->mailboxes_for_certificate({"", "CN=A|B,O=X|01"}).value,
            Strings{"contact@a.fr"});
  EXPECT_EQ(snapshot->mailboxes_for_certificate({"", "01"}).value, Strings{"contact@b.fr"});
  EXPECT_EQ(snapshot->mailboxes_for_certificate({"", "CN=A|"}).value, Strings{"contact"});
  EXPECT_TRUE(snapshot->mailboxes_for_certificate({"", "CN=A|B,O=X|1"}).value.empty());
  EXPECT_TRUE(snapshot->mailboxes_for_certificate({"", "CN=A|B|01"}).value.empty());
}

TEST(StringTable, FindsEveryStringAfterGrowing) {
  storage::StringTable table;
  for (int i = 0; i < 50000; ++i)
    EXPECT_EQ(table.intern("s" + std::to_string(i)), static_cast<uint32_t>(i));
  EXPECT_EQ(table.intern("s123"), 123u) << "an existing string keeps its id";
  for (int i = 0; i < 50000; i += 7)
    ASSERT_EQ(table.find("s" + std::to_string(i)), static_cast<uint32_t>(i));
  EXPECT_EQ(table.find("s50000"), storage::kNoId);
  EXPECT_EQ(table.at(4999), "s4999");
}

namespace {

// A directory of `mailboxes` mailboxes written with one transaction (through the store's
// schema): bindings on every fifth, issuer-serial bindings on three neighbours every fiftieth,
// one professional for every third mailbox, senders on every hundredth.
void fill_directory(const fs::path& path, int mailboxes) {
  storage::open_sqlite_directory(path.string()).reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql = "BEGIN;";
  auto address = [](int i) {
    return "prenom" + std::to_string(i % 50) + ".nom" + std::to_string(i) + "@etab" +
           std::to_string(i % 20) + ".mssante.fr";
  };
  const char* types[] = {"PER", "ORG", "APP", "CAB"};
  const char* roles[] = {"owner", "delegate", "co-holder"};
  for (int i = 0; i < mailboxes; ++i) {
    const char* status = i % 7 == 0 ? "suspended" : i % 11 == 0 ? "closed" : "active";
    sql += "INSERT INTO mailbox VALUES ('" + address(i) + "', '" + types[i % 4] + "', '" + status +
           "', 0);";
    char key[65];
    std::snprintf(key, sizeof key, "%064x", i);
    if (i % 5 == 0) {
      sql += "INSERT INTO certificate_binding VALUES ('spki-sha256', '" + std::string(key) +
             "', '" + address(i) + "', '');";
    }
    if (i % 50 == 0) {
      for (int j = i; j < i + 3 && j < mailboxes; ++j) {
        sql += "INSERT INTO certificate_binding VALUES ('issuer-serial', 'CN=ORG CA " +
               std::to_string(i % 3) + "|" + std::to_string(i) + "', '" + address(j) + "', '');";
      }
    }
    if (i % 3 == 0) {
      std::string holder = "8100" + std::to_string(10000000 + i);
      sql += "INSERT INTO holder VALUES ('" + holder + "', '');";
      for (int j = i; j < i + 1 + i % 3 && j < mailboxes; ++j) {
        sql += "INSERT INTO mailbox_holder VALUES ('" + address(j) + "', '" + holder + "', '" +
               roles[j % 3] + "');";
      }
    }
    if (i % 100 == 0) {
      sql += "INSERT INTO mailbox_sender VALUES ('" + address(i) + "', 'a" + std::to_string(i) +
             "@test.fr'), ('" + address(i) + "', 'b@test.fr');";
    }
  }
  sql += "COMMIT;";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
}

}  // namespace

TEST(DirectorySnapshot, AnswersAsTheStoreOnTenThousandMailboxes) {
  auto path = temporary_database("snapshot-10k");
  fill_directory(path, 10000);
  auto store = storage::open_sqlite_directory(path.string());
  auto snapshot = snapshot_of(path);
  auto mailboxes = store->list_mailboxes();
  ASSERT_EQ(mailboxes.size(), 10000u);
  EXPECT_EQ(snapshot->counts().mailboxes, 10000u);
  for (const auto& m : mailboxes) {
    auto found = snapshot->find_mailbox(m.address);
    ASSERT_TRUE(found.value) << m.address;
    EXPECT_EQ(found.value->type, m.type) << m.address;
    EXPECT_EQ(found.value->status, m.status) << m.address;
    EXPECT_EQ(snapshot->allowed_senders(m.address).value, store->allowed_senders(m.address).value);
    std::string other_domain = m.address + ".example";
    EXPECT_FALSE(snapshot->find_mailbox(other_domain).value);
  }
  auto bindings = store->list_certificate_bindings();
  EXPECT_EQ(snapshot->counts().bindings, bindings.size());
  for (const auto& b : bindings) {
    storage::CertificateKeys keys;
    (b.match == CertificateMatch::kSpkiSha256 ? keys.spki_sha256 : keys.issuer_serial) = b.value;
    EXPECT_EQ(snapshot->mailboxes_for_certificate(keys).value,
              store->mailboxes_for_certificate(keys).value)
        << b.value;
  }
  auto attachments = store->list_attachments();
  EXPECT_EQ(snapshot->counts().attachments, attachments.size());
  EXPECT_EQ(snapshot->counts().holders, store->list_holders().size());
  for (const auto& a : attachments) {
    EXPECT_EQ(snapshot->holder_role(a.holder, a.mailbox).value, a.role);
    for (const auto& neighbour : {mailboxes[3].address, mailboxes[9999].address}) {
      EXPECT_EQ(snapshot->holder_role(a.holder, neighbour).value,
                store->holder_role(a.holder, neighbour).value);
    }
  }
  store.reset();
  remove_database(path);
}
