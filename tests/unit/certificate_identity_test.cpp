#include "daemon/net/certificate_identity.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/parsed_certificate.hpp"

namespace {

using mssgate::daemon::shared_identity_entries;
using mssgate::daemon::shared_identity_of;
using mssgate::daemon::SharedCertificateIdentity;

using mssgate::test_certificates::parsed_again;
using mssgate::test_certificates::X509Ptr;

EVP_PKEY* test_key() {
  static EVP_PKEY* key = EVP_EC_gen("P-256");
  return key;
}

// A self-signed certificate named `common_name`, with serial `serial`.
X509Ptr certificate(const std::string& common_name, long serial) {
  X509Ptr made(X509_new());
  X509_set_version(made.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(made.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(made.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(made.get()), 3600);
  X509_NAME* name = X509_get_subject_name(made.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Hopital Test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(made.get(), name);
  X509_set_pubkey(made.get(), test_key());
  X509_sign(made.get(), test_key(), EVP_sha256());
  return made;
}

TEST(SharedCertificateIdentity, EverySessionOfOneCertificateHoldsTheSameObject) {
  X509Ptr labo = certificate("LPS_LABO", 1);
  X509Ptr labo_again = parsed_again(labo.get());
  X509Ptr other = certificate("LPS_HOPITAL", 2);
  SharedCertificateIdentity first = shared_identity_of(labo.get());
  SharedCertificateIdentity second = shared_identity_of(labo_again.get());
  SharedCertificateIdentity third = shared_identity_of(other.get());
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first.get(), second.get());
  EXPECT_NE(first.get(), third.get());
  EXPECT_EQ(first->subject, "CN=LPS_LABO,O=Hopital Test");
  EXPECT_EQ(first->organisation, "Hopital Test");
  EXPECT_EQ(third->serial_hex, "02");
  // As computed for one session alone.
  EXPECT_EQ(first->sha256, mssgate::daemon::identify_certificate(labo.get()).sha256);
}

TEST(SharedCertificateIdentity, AnIdentityNoSessionHoldsIsMadeAgain) {
  X509Ptr labo = certificate("LPS_RELEASED", 3);
  SharedCertificateIdentity held = shared_identity_of(labo.get());
  std::weak_ptr<const mssgate::daemon::CertificateIdentity> watched = held;
  std::string subject = held->subject;
  held.reset();
  EXPECT_TRUE(watched.expired());  // the sharing holds no identity alive
  SharedCertificateIdentity again = shared_identity_of(labo.get());
  EXPECT_EQ(again->subject, subject);
}

TEST(SharedCertificateIdentity, IdentitiesNoLongerHeldAreSweptAway) {
  std::vector<SharedCertificateIdentity> held;
  for (long i = 0; i < 100; ++i)
    held.push_back(shared_identity_of(certificate("LPS_HELD_" + std::to_string(i), 100 + i).get()));
  EXPECT_GE(shared_identity_entries(), 100u);
  held.clear();
  for (long i = 0; i < 70; ++i)
    shared_identity_of(certificate("LPS_PASSING_" + std::to_string(i), 300 + i).get());
  // A sweep has dropped the 100 released ones and the passing ones before it.
  EXPECT_LT(shared_identity_entries(), 64u);
}

}  // namespace
