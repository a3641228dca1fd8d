// The registry of signed-in sessions: what a review withdraws (a suspended mailbox, a removed
// certificate binding, a detached holder, a session too old, an expired certificate), when a
// token is asked about again (once per interval, never while a check is in flight, never after
// its exp), what the issuer's answer withdraws, and that a session leaves with its registration.

#include "daemon/services/session_registry.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/directory_snapshot.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"

using namespace mssgate;
using daemon::AuthorizedSession;
using daemon::ReviewRules;
using daemon::SessionRegistry;
using daemon::TokenValidation;
using protocol::MailboxStatus;
using protocol::MailboxType;
using storage::CertificateMatch;
using storage::HolderRole;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kNow = 1'800'000'000;  // seconds since the epoch, for expiry times

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        fs::temp_directory_path() / ("mssgate-registry-test-" + std::to_string(::getpid()) + ".db");
    store_ = storage::open_sqlite_directory(path_.string());
    store_->add_mailbox({"app.hopital@test.fr", MailboxType::kApp, MailboxStatus::kActive});
    store_->add_mailbox({"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive});
    store_->bind_certificate({CertificateMatch::kSpkiSha256, spki_, "app.hopital@test.fr", ""});
    store_->add_holder({"810001234567", "Dr Martin"});
    store_->attach_holder({"810001234567", "dr.martin@test.fr", HolderRole::kOwner});
    rules_.auth.external_mailbox_types = {MailboxType::kApp};
    rules_.auth.token_mailbox_types = {MailboxType::kPer, MailboxType::kOrg, MailboxType::kCab};
    rules_.max_token_session_age = 4h;
    rules_.token_recheck_interval = 60s;
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(path_.string() + suffix);
  }

  std::shared_ptr<const storage::DirectorySnapshot> snapshot() {
    auto source = storage::open_sqlite_directory_source(path_.string());
    return storage::load_snapshot(*source);
  }

  AuthorizedSession certificate_session(std::string id) {
    AuthorizedSession session;
    session.id = std::move(id);
    session.identity.mailbox = "app.hopital@test.fr";
    session.identity.auth_mode = storage::AuthMode::kCertificate;
    daemon::CertificateIdentity certificate;
    certificate.spki_sha256 = spki_;
    certificate.issuer = "CN=ORG CA,O=TEST,C=FR";
    certificate.serial_hex = "1002";
    certificate.not_after = kNow + 3600;
    session.identity.certificate =
        std::make_shared<const daemon::CertificateIdentity>(std::move(certificate));
    session.signed_in_at = start_;
    session.end = [this, id = session.id](const std::string& reason) {
      ended_.push_back(id + ":" + reason);
    };
    return session;
  }

  AuthorizedSession token_session(std::string id, int64_t expires_at = kNow + 300) {
    AuthorizedSession session;
    session.id = std::move(id);
    session.identity.mailbox = "dr.martin@test.fr";
    session.identity.auth_mode = storage::AuthMode::kPsc;
    session.identity.professional_id = "810001234567";
    session.token = "token-of-" + session.id;
    session.token_expires_at = expires_at;
    session.signed_in_at = start_;
    session.end = [this, id = session.id](const std::string& reason) {
      ended_.push_back(id + ":" + reason);
    };
    return session;
  }

  // Runs a review and ends what it withdraws; the token checks it asks for.
  std::vector<SessionRegistry::TokenCheck> review(const storage::DirectoryLookup* directory,
                                                  Clock::duration after, int64_t now_unix = kNow) {
    auto result = registry_.review(rules_, directory, start_ + after, now_unix);
    for (auto& withdrawal : result.withdrawals)
      withdrawal.end(withdrawal.reason);
    return result.token_checks;
  }

  fs::path path_;
  std::unique_ptr<storage::DirectoryStore> store_;
  std::string spki_ = std::string(64, 'a');
  ReviewRules rules_;
  SessionRegistry registry_;
  Clock::time_point start_ = Clock::now();
  std::vector<std::string> ended_;
};

TEST_F(RegistryTest, SessionsStayWhileTheDirectoryStillAllowsThem) {
  auto a = registry_.add(certificate_session("cert"));
  auto b = registry_.add(token_session("psc"));
  auto directory = snapshot();
  review(directory.get(), 1s);
  EXPECT_TRUE(ended_.empty());
  EXPECT_EQ(registry_.size(), 2u);
}

TEST_F(RegistryTest, ASuspendedMailboxEndsItsSessionsOnce) {
  auto a = registry_.add(certificate_session("cert"));
  auto b = registry_.add(token_session("psc"));
  store_->set_mailbox_status("app.hopital@test.fr", MailboxStatus::kSuspended);
  auto directory = snapshot();
  review(directory.get(), 1s);
  EXPECT_EQ(ended_, std::vector<std::string>{"cert:mailbox_suspended"});
  review(directory.get(), 2s);
  EXPECT_EQ(ended_.size(), 1u) << "a withdrawn session is ended once";
}

TEST_F(RegistryTest, ARemovedBindingEndsTheCertificateSession) {
  auto a = registry_.add(certificate_session("cert"));
  store_->unbind_certificate({CertificateMatch::kSpkiSha256, spki_, "app.hopital@test.fr", ""});
  auto directory = snapshot();
  review(directory.get(), 1s);
  EXPECT_EQ(ended_, std::vector<std::string>{"cert:certificate_not_registered"});
}

TEST_F(RegistryTest, ADetachedHolderEndsTheTokenSession) {
  auto b = registry_.add(token_session("psc"));
  store_->detach_holder("810001234567", "dr.martin@test.fr");
  auto directory = snapshot();
  review(nullptr, 1s);
  EXPECT_TRUE(ended_.empty()) << "without a directory change, the directory is not asked";
  review(directory.get(), 2s);
  EXPECT_EQ(ended_, std::vector<std::string>{"psc:mailbox_not_attached"});
}

TEST_F(RegistryTest, ATokenSessionEndsAtItsMaximumAgeACertificateSessionDoesNot) {
  auto a = registry_.add(certificate_session("cert"));
  auto b = registry_.add(token_session("psc"));
  review(nullptr, 4h - 1s, kNow + 100);
  EXPECT_TRUE(ended_.empty());
  review(nullptr, 4h, kNow + 100);
  EXPECT_EQ(ended_, std::vector<std::string>{"psc:session_age"});
  rules_.max_token_session_age = {};
  auto c = registry_.add(token_session("forever"));
  review(nullptr, 100h, kNow + 100);
  EXPECT_EQ(ended_.size(), 1u) << "a maximum age of 0 is none";
}

TEST_F(RegistryTest, ACertificateSessionEndsWhenItsCertificateExpires) {
  auto a = registry_.add(certificate_session("cert"));
  review(nullptr, 1s, kNow + 3599);
  EXPECT_TRUE(ended_.empty());
  review(nullptr, 2s, kNow + 3600);
  EXPECT_EQ(ended_, std::vector<std::string>{"cert:certificate_expired"});
}

TEST_F(RegistryTest, ATokenIsCheckedEachIntervalNeverTwiceAtOnce) {
  auto b = registry_.add(token_session("psc"));
  EXPECT_TRUE(review(nullptr, 59s).empty());
  auto checks = review(nullptr, 60s);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].token, "token-of-psc");
  EXPECT_TRUE(review(nullptr, 61s).empty()) << "a check in flight is not asked again";
  TokenValidation valid;
  valid.result = TokenValidation::Result::kValid;
  EXPECT_FALSE(registry_.token_checked(checks[0].key, valid, start_ + 62s));
  EXPECT_TRUE(review(nullptr, 121s).empty()) << "the interval counts from the answer";
  EXPECT_EQ(review(nullptr, 122s).size(), 1u);
  EXPECT_TRUE(ended_.empty());
}

TEST_F(RegistryTest, AnUnavailableIssuerWithdrawsNothingAndIsAskedAgain) {
  auto b = registry_.add(token_session("psc"));
  auto checks = review(nullptr, 60s);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_FALSE(registry_.token_checked(checks[0].key, TokenValidation::unavailable("timeout"),
                                       start_ + 61s));
  EXPECT_EQ(review(nullptr, 62s).size(), 1u);
  EXPECT_TRUE(ended_.empty());
}

TEST_F(RegistryTest, ARevokedTokenEndsItsSession) {
  auto b = registry_.add(token_session("psc"));
  auto checks = review(nullptr, 60s);
  ASSERT_EQ(checks.size(), 1u);
  auto withdrawal =
      registry_.token_checked(checks[0].key, TokenValidation::invalid("inactive"), start_ + 61s);
  ASSERT_TRUE(withdrawal);
  EXPECT_EQ(withdrawal->reason, "token_inactive");
  EXPECT_EQ(withdrawal->session_id, "psc");
  withdrawal->end(withdrawal->reason);
  EXPECT_EQ(ended_, std::vector<std::string>{"psc:token_inactive"});
  EXPECT_TRUE(review(nullptr, 200s).empty()) << "a withdrawn session is not checked again";
}

TEST_F(RegistryTest, AnExpiredTokenIsNotAskedAbout) {
  // Introspection cannot tell an expired token from a revoked one.
  auto b = registry_.add(token_session("psc", kNow - 1));
  EXPECT_TRUE(review(nullptr, 60s).empty());
  rules_.token_recheck_interval = {};
  auto c = registry_.add(token_session("live"));
  EXPECT_TRUE(review(nullptr, 600s).empty()) << "an interval of 0 is never";
}

TEST_F(RegistryTest, ASessionLeavesWithItsRegistration) {
  auto a = registry_.add(certificate_session("cert"));
  auto b = registry_.add(token_session("psc"));
  EXPECT_EQ(registry_.size(), 2u);
  b.reset();
  EXPECT_EQ(registry_.size(), 1u);
  store_->set_mailbox_status("dr.martin@test.fr", MailboxStatus::kSuspended);
  auto directory = snapshot();
  review(directory.get(), 1s);
  EXPECT_TRUE(ended_.empty());
}

}  // namespace
