#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "daemon/services/access_policy.hpp"
#include "daemon/services/indicator_event.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"
#include "storage/sqlite_directory_schema.hpp"

using namespace mssgate;
using Outcome = daemon::AccessDecision::Outcome;
namespace fs = std::filesystem;

namespace {

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() /
            ("mssgate-directory-test-" + std::to_string(::getpid()) + ".db");
    fs::remove(path_);
    store_ = storage::open_sqlite_directory(path_.string());
    store_->add_mailbox(
        {"app.hopital@test.fr", protocol::MailboxType::kApp, protocol::MailboxStatus::kActive});
    store_->add_mailbox(
        {"app.second@test.fr", protocol::MailboxType::kApp, protocol::MailboxStatus::kActive});
    store_->add_mailbox(
        {"app.off@test.fr", protocol::MailboxType::kApp, protocol::MailboxStatus::kSuspended});
    store_->add_mailbox(
        {"dr.martin@test.fr", protocol::MailboxType::kPer, protocol::MailboxStatus::kActive});
    hopital_.spki_sha256 = std::string(64, 'a');
    hopital_.issuer = "CN=ORG CA";
    hopital_.serial_hex = "1001";
    labo_.spki_sha256 = std::string(64, 'b');
    labo_.issuer = "CN=ORG CA";
    labo_.serial_hex = "1002";
    store_->bind_certificate(
        {storage::CertificateMatch::kSpkiSha256, hopital_.spki_sha256, "app.hopital@test.fr", ""});
    store_->bind_certificate(
        {storage::CertificateMatch::kIssuerSerial, "CN=ORG CA|1002", "app.hopital@test.fr", ""});
    store_->bind_certificate(
        {storage::CertificateMatch::kIssuerSerial, "CN=ORG CA|1002", "app.second@test.fr", ""});
    store_->bind_certificate(
        {storage::CertificateMatch::kSpkiSha256, labo_.spki_sha256, "app.off@test.fr", ""});
    store_->bind_certificate(
        {storage::CertificateMatch::kSpkiSha256, labo_.spki_sha256, "dr.martin@test.fr", ""});
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(path_.string() + suffix);
  }

  daemon::AccessDecision decide(const std::optional<daemon::CertificateIdentity>& cert,
                                std::string_view authzid) {
    return daemon::decide_certificate_access(*store_, cert ? &*cert : nullptr, authzid,
                                             config::AuthConfig{});
  }

  fs::path path_;
  std::unique_ptr<storage::DirectoryStore> store_;
  daemon::CertificateIdentity hopital_, labo_;
};

}  // namespace

TEST_F(DirectoryTest, StoresAndListsMailboxesAndBindings) {
  auto mailboxes = store_->list_mailboxes();
  ASSERT_EQ(mailboxes.size(), 4u);
  EXPECT_EQ(mailboxes[0].address, "app.hopital@test.fr");
  EXPECT_EQ(store_->list_certificate_bindings().size(), 5u);
  EXPECT_THROW(store_->add_mailbox({"app.hopital@test.fr", protocol::MailboxType::kApp,
                                    protocol::MailboxStatus::kActive}),
               storage::StorageError);
  EXPECT_THROW(store_->bind_certificate(
                   {storage::CertificateMatch::kSpkiSha256, "cc", "nobody@test.fr", ""}),
               storage::StorageError);
  store_->set_mailbox_status("app.second@test.fr", protocol::MailboxStatus::kClosed);
  EXPECT_EQ(store_->find_mailbox("app.second@test.fr").value->status,
            protocol::MailboxStatus::kClosed);
  store_->remove_mailbox("app.second@test.fr");
  EXPECT_FALSE(store_->find_mailbox("app.second@test.fr").value.has_value());
  EXPECT_EQ(store_->list_certificate_bindings().size(), 4u) << "bindings go with their mailbox";
}

TEST(CertificateIdentity, TheOrganisationSelectorNamesTheIssuerAndTheChosenAttributes) {
  daemon::CertificateIdentity id;
  id.issuer = "CN=AC ORGANISATIONS,O=ANS,C=FR";
  id.subject_attributes = {
      {"C", "FR"}, {"O", "HOPITAL"}, {"OU", "330000000"}, {"CN", "LPS, radiologie+IRM"}};
  EXPECT_EQ(id.organisation_selector({"OU", "CN"}),
            "CN=AC ORGANISATIONS,O=ANS,C=FR|OU=330000000,CN=LPS\\, radiologie\\+IRM");
  EXPECT_EQ(id.organisation_selector({"CN", "OU"}),
            "CN=AC ORGANISATIONS,O=ANS,C=FR|CN=LPS\\, radiologie\\+IRM,OU=330000000")
      << "in the configuration's order";
  EXPECT_EQ(id.organisation_selector({"OU", "serialNumber"}), "") << "an attribute it lacks";
  EXPECT_EQ(id.organisation_selector({}), "");
  id.subject_attributes.emplace_back("OU", "330000001");
  EXPECT_EQ(id.organisation_selector({"OU", "CN"}), "") << "an attribute it has twice";
  id.subject_attributes = {{"OU", std::string("33\0", 3)}, {"CN", "LPS"}};
  EXPECT_EQ(id.organisation_selector({"OU", "CN"}), "") << "a NUL in a value";
  EXPECT_EQ(id.keys().organisation, "") << "no attributes, no organisation key";
}

TEST_F(DirectoryTest, AnOrganisationBindingOpensTheMailboxForARenewedCertificate) {
  daemon::CertificateIdentity renewed;  // a new key and serial, the same organisation and service
  renewed.spki_sha256 = std::string(64, 'e');
  renewed.issuer = "CN=ORG CA";
  renewed.serial_hex = "2001";
  renewed.subject_attributes = {{"O", "HOPITAL"}, {"OU", "330000000"}, {"CN", "LPS_RADIO"}};
  EXPECT_EQ(decide(renewed, "").reason, "certificate_not_registered");
  store_->bind_certificate({storage::CertificateMatch::kOrganisation,
                            "CN=ORG CA|OU=330000000,CN=LPS_RADIO", "app.second@test.fr", ""});
  auto allowed = decide(renewed, "");
  EXPECT_EQ(allowed.outcome, Outcome::kAllowed);
  EXPECT_EQ(allowed.mailbox, "app.second@test.fr");
  // Another service of the same organisation is not bound.
  daemon::CertificateIdentity other = renewed;
  other.subject_attributes.back().second = "LPS_ACCUEIL";
  EXPECT_EQ(decide(other, "").reason, "certificate_not_registered");
  // Its own key bound too: to the same mailboxes it is allowed, to others it is refused.
  store_->bind_certificate(
      {storage::CertificateMatch::kSpkiSha256, renewed.spki_sha256, "app.second@test.fr", ""});
  EXPECT_EQ(decide(renewed, "").outcome, Outcome::kAllowed);
  store_->bind_certificate(
      {storage::CertificateMatch::kSpkiSha256, renewed.spki_sha256, "app.hopital@test.fr", ""});
  auto differ = decide(renewed, "app.second@test.fr");
  EXPECT_EQ(differ.outcome, Outcome::kAuthenticationFailed);
  EXPECT_EQ(differ.reason, "certificate_bindings_differ");
  // The snapshot answers the same.
  auto snapshot = storage::load_snapshot(*storage::open_sqlite_directory_source(path_.string()));
  EXPECT_EQ(daemon::decide_certificate_access(*snapshot, &renewed, "", config::AuthConfig{}).reason,
            "certificate_bindings_differ");
  EXPECT_EQ(
      snapshot->mailboxes_for_certificate({"", "", "CN=ORG CA|OU=330000000,CN=LPS_RADIO"}).value,
      std::vector<std::string>{"app.second@test.fr"});
}

TEST_F(DirectoryTest, KeepsTheSendersAMailboxMayUse) {
  EXPECT_TRUE(store_->allowed_senders("app.hopital@test.fr").value.empty());
  store_->allow_sender("app.hopital@test.fr", "secretariat@test.fr");
  store_->allow_sender("app.hopital@test.fr", "accueil@test.fr");
  EXPECT_EQ(store_->allowed_senders("app.hopital@test.fr").value,
            (std::vector<std::string>{"accueil@test.fr", "secretariat@test.fr"}));
  EXPECT_THROW(store_->allow_sender("app.hopital@test.fr", "accueil@test.fr"),
               storage::StorageError);
  EXPECT_THROW(store_->allow_sender("nobody@test.fr", "x@test.fr"), storage::StorageError);
  EXPECT_TRUE(store_->disallow_sender("app.hopital@test.fr", "accueil@test.fr"));
  EXPECT_FALSE(store_->disallow_sender("app.hopital@test.fr", "accueil@test.fr"));
  store_->remove_mailbox("app.hopital@test.fr");
  EXPECT_TRUE(store_->allowed_senders("app.hopital@test.fr").value.empty())
      << "permissions go with their mailbox";
}

TEST_F(DirectoryTest, AttachesHoldersToMailboxesWithARole) {
  store_->add_mailbox(
      {"cabinet@test.fr", protocol::MailboxType::kCab, protocol::MailboxStatus::kActive});
  store_->add_holder({"810001234567", "Dr Martin"});
  store_->add_holder({"810009999999", ""});
  store_->attach_holder({"810001234567", "dr.martin@test.fr", storage::HolderRole::kOwner});
  store_->attach_holder({"810001234567", "cabinet@test.fr", storage::HolderRole::kCoHolder});
  store_->attach_holder({"810009999999", "cabinet@test.fr", storage::HolderRole::kCoHolder});
  EXPECT_EQ(store_->holder_role("810001234567", "dr.martin@test.fr").value,
            storage::HolderRole::kOwner);
  EXPECT_FALSE(store_->holder_role("810009999999", "dr.martin@test.fr").value.has_value());
  EXPECT_THROW(
      store_->attach_holder({"810001234567", "cabinet@test.fr", storage::HolderRole::kDelegate}),
      storage::StorageError);
  EXPECT_THROW(
      store_->attach_holder({"899999999999", "cabinet@test.fr", storage::HolderRole::kDelegate}),
      storage::StorageError);
  EXPECT_EQ(store_->list_attachments().size(), 3u);
  EXPECT_TRUE(store_->detach_holder("810009999999", "cabinet@test.fr"));
  EXPECT_FALSE(store_->detach_holder("810009999999", "cabinet@test.fr"));
  store_->remove_holder("810001234567");
  EXPECT_TRUE(store_->list_attachments().empty()) << "attachments go with their holder";
  EXPECT_EQ(store_->list_holders().size(), 1u);
}

TEST_F(DirectoryTest, TokenAccessFollowsTheAttachments) {
  store_->add_mailbox(
      {"secretariat@test.fr", protocol::MailboxType::kOrg, protocol::MailboxStatus::kActive});
  store_->add_mailbox(
      {"ancien@test.fr", protocol::MailboxType::kPer, protocol::MailboxStatus::kSuspended});
  store_->add_holder({"810001234567", ""});
  store_->attach_holder({"810001234567", "dr.martin@test.fr", storage::HolderRole::kOwner});
  store_->attach_holder({"810001234567", "secretariat@test.fr", storage::HolderRole::kDelegate});
  store_->attach_holder({"810001234567", "ancien@test.fr", storage::HolderRole::kOwner});
  store_->attach_holder({"810001234567", "app.hopital@test.fr", storage::HolderRole::kDelegate});
  auto decide_token = [&](std::string_view mailbox) {
    return daemon::decide_token_access(*store_, "810001234567", mailbox, config::AuthConfig{});
  };
  EXPECT_EQ(decide_token("Dr.Martin@test.fr").outcome, Outcome::kAllowed);
  EXPECT_EQ(decide_token("dr.martin@test.fr").mailbox, "dr.martin@test.fr");
  EXPECT_EQ(decide_token("secretariat@test.fr").outcome, Outcome::kAllowed);
  EXPECT_EQ(decide_token("app.second@test.fr").reason, "mailbox_not_attached");
  EXPECT_EQ(decide_token("ancien@test.fr").reason, "mailbox_suspended");
  EXPECT_EQ(decide_token("app.hopital@test.fr").reason, "mailbox_type_not_allowed");
  EXPECT_EQ(decide_token("").reason, "mailbox_not_named");
  EXPECT_EQ(daemon::decide_token_access(*store_, "810009999999", "dr.martin@test.fr",
                                        config::AuthConfig{})
                .reason,
            "mailbox_not_attached");
}

TEST_F(DirectoryTest, ReopensAnExistingDatabase) {
  store_.reset();
  store_ = storage::open_sqlite_directory(path_.string());
  EXPECT_EQ(store_->list_mailboxes().size(), 4u);
}

TEST_F(DirectoryTest, CertificateBoundToOneMailboxOpensItWithoutAuthzid) {
  auto d = decide(hopital_, "");
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.mailbox, "app.hopital@test.fr");
  d = decide(hopital_, "APP.Hopital@test.fr");
  EXPECT_EQ(d.outcome, Outcome::kAllowed) << "addresses compare case-insensitively";
  EXPECT_EQ(d.mailbox, "app.hopital@test.fr");
}

TEST_F(DirectoryTest, IssuerAndSerialBindingOpensEveryBoundMailboxByName) {
  daemon::CertificateIdentity by_serial;
  by_serial.spki_sha256 = std::string(64, 'f');
  by_serial.issuer = "CN=ORG CA";
  by_serial.serial_hex = "1002";
  EXPECT_EQ(decide(by_serial, "app.second@test.fr").outcome, Outcome::kAllowed);
  EXPECT_EQ(decide(by_serial, "app.hopital@test.fr").outcome, Outcome::kAllowed);
  auto d = decide(by_serial, "");
  EXPECT_EQ(d.outcome, Outcome::kAuthorizationFailed);
  EXPECT_EQ(d.reason, "mailbox_not_named");
}

TEST_F(DirectoryTest, RefusesWhatTheDirectoryDoesNotAllow) {
  EXPECT_EQ(decide(std::nullopt, "").reason, "no_client_certificate");
  daemon::CertificateIdentity stranger;
  stranger.spki_sha256 = std::string(64, 'e');
  EXPECT_EQ(decide(stranger, "").reason, "certificate_not_registered");
  EXPECT_EQ(decide(hopital_, "app.second@test.fr").reason, "mailbox_not_bound");
  EXPECT_EQ(decide(labo_, "app.off@test.fr").reason, "mailbox_suspended");
  EXPECT_EQ(decide(labo_, "dr.martin@test.fr").reason, "mailbox_type_not_allowed");
  EXPECT_EQ(decide(hopital_, "not an address").reason, "invalid_authzid");
}

TEST_F(DirectoryTest, CounterpartsAndMailboxTypesForTheIndicators) {
  config::IndicatorsConfig settings;
  settings.operator_domains = {"hopital.mssante.fr"};
  using daemon::Counterpart;
  EXPECT_EQ(daemon::counterpart_of("288091234567823@patient.mssante.fr", settings, *store_),
            Counterpart::kPatient);
  EXPECT_EQ(daemon::counterpart_of("Secretariat@Hopital.MSSante.fr", settings, *store_),
            Counterpart::kSameOperator);
  EXPECT_EQ(daemon::counterpart_of("app.second@test.fr", settings, *store_),
            Counterpart::kSameOperator)
      << "a mailbox of the directory";
  EXPECT_EQ(daemon::counterpart_of("labo@autre-operateur.mssante.fr", settings, *store_),
            Counterpart::kOtherOperator);
  EXPECT_EQ(storage::to_string(daemon::mailbox_type_of("dr.martin@test.fr", *store_)), "PER");
  EXPECT_EQ(storage::to_string(daemon::mailbox_type_of("nobody@test.fr", *store_)), "unknown");
}

namespace {

// A directory as an earlier mssgate left it: the schema steps up to `version`, one mailbox and
// its certificate binding (and, from version 2, an allowed sender).
void write_directory_of_version(const std::string& path, int version) {
  namespace schema = storage::sqlite_directory_schema;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql = schema::kVersion1;
  sql +=
      "INSERT INTO mailbox VALUES ('app.hopital@test.fr', 'APP', 'active', 0);"
      "INSERT INTO certificate_binding VALUES ('spki-sha256', '" +
      std::string(64, 'a') + "', 'app.hopital@test.fr', 'CN=hopital');";
  if (version >= 2) {
    sql += schema::kVersion2;
    sql += "INSERT INTO mailbox_sender VALUES ('app.hopital@test.fr', 'secretariat@test.fr');";
  }
  if (version >= 3) {
    sql += schema::kVersion3;
    sql += "INSERT INTO holder VALUES ('810001234567', 'Dr Martin');";
  }
  sql += "PRAGMA user_version = " + std::to_string(version) + ";";
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_free(error);
  sqlite3_close(db);
}

int user_version(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nullptr);
  int version = sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int(statement, 0) : -1;
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return version;
}

}  // namespace

TEST(DirectorySchema, EveryEarlierVersionIsMigratedWithItsRowsKept) {
  for (int version : {1, 2, 3}) {
    SCOPED_TRACE("from version " + std::to_string(version));
    fs::path path = fs::temp_directory_path() / ("mssgate-directory-v" + std::to_string(version) +
                                                 "-" + std::to_string(::getpid()) + ".db");
    fs::remove(path);
    write_directory_of_version(path.string(), version);
    {
      auto store = storage::open_sqlite_directory(path.string());
      EXPECT_EQ(user_version(path.string()), storage::sqlite_directory_schema::kVersion);
      auto mailbox = store->find_mailbox("app.hopital@test.fr");
      ASSERT_TRUE(mailbox.value.has_value());
      EXPECT_EQ(mailbox.value->type, protocol::MailboxType::kApp);
      EXPECT_EQ(store->mailboxes_for_certificate({std::string(64, 'a'), ""}).value,
                std::vector<std::string>{"app.hopital@test.fr"});
      EXPECT_EQ(store->allowed_senders("app.hopital@test.fr").value.size(), version >= 2 ? 1u : 0u);
      // The tables of the versions after it are there and usable.
      if (version < 3) store->add_holder({"810001234567", "Dr Martin"});
      store->attach_holder({"810001234567", "app.hopital@test.fr", storage::HolderRole::kOwner});
      store->allow_sender("app.hopital@test.fr", "cabinet@test.fr");
      EXPECT_EQ(store->holder_role("810001234567", "app.hopital@test.fr").value,
                storage::HolderRole::kOwner);
      // Version 4: bindings by organisation identity, the bindings before it kept.
      store->bind_certificate(
          {storage::CertificateMatch::kOrganisation, "CN=CA|OU=1,CN=S", "app.hopital@test.fr", ""});
      EXPECT_EQ(store->list_certificate_bindings().size(), 2u);
      EXPECT_EQ(store->mailboxes_for_certificate({"", "", "CN=CA|OU=1,CN=S"}).value,
                std::vector<std::string>{"app.hopital@test.fr"});
    }
    // The snapshot source reads the migrated file too.
    auto snapshot = storage::load_snapshot(*storage::open_sqlite_directory_source(path.string()));
    EXPECT_TRUE(snapshot->find_mailbox("app.hopital@test.fr").value.has_value());
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(path.string() + suffix);
  }
}

TEST(DirectorySchema, ADirectoryOfANewerMssgateIsRefused) {
  fs::path path =
      fs::temp_directory_path() / ("mssgate-directory-newer-" + std::to_string(::getpid()) + ".db");
  fs::remove(path);
  write_directory_of_version(path.string(), 2);
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version = 9", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  try {
    storage::open_sqlite_directory(path.string());
    FAIL() << "opened";
  } catch (const storage::StorageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "directory database has schema version 9, newer than this mssgate (" +
                  std::to_string(storage::sqlite_directory_schema::kVersion) + ")");
  }
  EXPECT_EQ(user_version(path.string()), 9) << "left as it was";
  for (const char* suffix : {"", "-wal", "-shm"})
    fs::remove(path.string() + suffix);
}
