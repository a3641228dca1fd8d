#include "daemon/net/certificate_verdicts.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>

using mssgate::daemon::CertificateVerdicts;
using mssgate::daemon::verdict_bound;
using mssgate::daemon::verdict_key;

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;

// A self-signed certificate valid from now for `seconds`, serial `serial`.
X509Ptr certificate(long seconds, long serial) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), seconds);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("verdict.test"), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  X509_set_pubkey(x.get(), key);
  X509_sign(x.get(), key, EVP_sha256());
  EVP_PKEY_free(key);
  return x;
}

// A CRL of `issuer` in `store`, due in `seconds` (none: no next update).
void add_crl(X509_STORE* store, const char* issuer, long seconds, bool with_next_update = true) {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(issuer), -1, -1, 0);
  X509_CRL_set_issuer_name(crl, name);
  X509_NAME_free(name);
  ASN1_TIME* last = X509_gmtime_adj(nullptr, 0);
  X509_CRL_set1_lastUpdate(crl, last);
  ASN1_TIME_free(last);
  if (with_next_update) {
    ASN1_TIME* next = X509_gmtime_adj(nullptr, seconds);
    X509_CRL_set1_nextUpdate(crl, next);
    ASN1_TIME_free(next);
  }
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509_CRL_sign(crl, key, EVP_sha256());
  EVP_PKEY_free(key);
  ASSERT_EQ(X509_STORE_add_crl(store, crl), 1);
  X509_CRL_free(crl);
}

// Another decoding of the same certificate: its DER, decoded anew.
X509Ptr decoded_again(X509* certificate) {
  unsigned char* der = nullptr;
  int length = i2d_X509(certificate, &der);
  if (length <= 0) return nullptr;
  const unsigned char* in = der;
  X509Ptr again(d2i_X509(nullptr, &in, length));
  OPENSSL_free(der);
  return again;
}

int64_t now() {
  return static_cast<int64_t>(std::time(nullptr));
}

}  // namespace

TEST(CertificateVerdicts, AVerdictStandsFromItsCheckUntilItsBoundOnly) {
  CertificateVerdicts verdicts(10);
  EXPECT_FALSE(verdicts.stands("a", 100));
  verdicts.remember("a", 100, 200);
  EXPECT_TRUE(verdicts.stands("a", 100));
  EXPECT_TRUE(verdicts.stands("a", 199));
  EXPECT_FALSE(verdicts.stands("a", 200));  // the bound itself: verified again
  EXPECT_FALSE(verdicts.stands("a", 99));   // a clock set back before the check
  EXPECT_FALSE(verdicts.stands("b", 150));
  EXPECT_FALSE(verdicts.stands("", 150));
}

TEST(CertificateVerdicts, NothingIsRememberedWithoutAKeyOrATimeAhead) {
  CertificateVerdicts verdicts(10);
  verdicts.remember("", 100, 200);
  verdicts.remember("a", 100, 100);
  verdicts.remember("b", 100, 0);  // no bound could be read
  EXPECT_EQ(verdicts.size(), 0u);
  EXPECT_FALSE(verdicts.stands("a", 100));
  EXPECT_FALSE(verdicts.stands("b", 50));
  CertificateVerdicts none(0);
  none.remember("a", 100, 200);
  EXPECT_FALSE(none.stands("a", 150));
}

TEST(CertificateVerdicts, WhenFullThosePastTheirTimeGoThenAll) {
  CertificateVerdicts verdicts(2);
  verdicts.remember("a", 100, 140);
  verdicts.remember("b", 100, 300);
  verdicts.remember("c", 150, 300);  // a is past its time: it goes
  EXPECT_EQ(verdicts.size(), 2u);
  EXPECT_TRUE(verdicts.stands("b", 150));
  EXPECT_TRUE(verdicts.stands("c", 150));
  verdicts.remember("c", 160, 310);  // known: replaced, nothing goes
  EXPECT_EQ(verdicts.size(), 2u);
  verdicts.remember("d", 170, 300);  // none past its time: all go
  EXPECT_EQ(verdicts.size(), 1u);
  EXPECT_FALSE(verdicts.stands("b", 170));
  EXPECT_TRUE(verdicts.stands("d", 170));
}

TEST(CertificateVerdicts, TheKeyIsTheCertificateNotItsDecoding) {
  X509Ptr one = certificate(3600, 1);
  X509Ptr again = decoded_again(one.get());
  ASSERT_TRUE(again);
  std::string key = verdict_key(one.get());
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(key, verdict_key(again.get()));
  EXPECT_NE(key, verdict_key(certificate(3600, 2).get()));
  EXPECT_EQ(verdict_key(nullptr), "");
}

TEST(CertificateVerdicts, AStandingVerdictSharesOneDecodingOfItsCertificate) {
  X509Ptr first = certificate(3600, 1);
  X509Ptr second = decoded_again(first.get());
  ASSERT_TRUE(second);

  CertificateVerdicts verdicts(4);
  verdicts.remember("a", 100, 200, first.get());
  auto shared = verdicts.standing_decoding("a", 150);
  EXPECT_EQ(shared.get(), first.get());
  EXPECT_EQ(verdicts.standing_decoding("a", 200), nullptr);  // past its bound: verified again
  EXPECT_EQ(verdicts.standing_decoding("a", 99), nullptr);
  EXPECT_EQ(verdicts.standing_decoding("b", 150), nullptr);
  EXPECT_EQ(verdicts.standing_decoding("", 150), nullptr);
  // Verified again with another decoding of the same certificate: the first stays the shared one.
  verdicts.remember("a", 190, 300, second.get());
  EXPECT_EQ(verdicts.standing_decoding("a", 250).get(), first.get());
  // A verdict without a decoding stands all the same, with nothing to share.
  verdicts.remember("b", 100, 200);
  EXPECT_TRUE(verdicts.stands("b", 150));
  EXPECT_EQ(verdicts.standing_decoding("b", 150), nullptr);
  // The verdicts hold a reference of their own: the decoding outlives its first holder, and the
  // one handed out outlives the verdicts (the sanitizers' leak check counts the references).
  first.reset();
  EXPECT_EQ(verdict_key(verdicts.standing_decoding("a", 250).get()), verdict_key(second.get()));
  verdicts.remember("c", 400, 500);
  verdicts.remember("d", 400, 500);
  verdicts.remember("e", 400, 500);  // full, a and b past their time: they go
  EXPECT_EQ(verdicts.standing_decoding("a", 250), nullptr);
  EXPECT_EQ(verdict_key(shared.get()), verdict_key(second.get()));
}

TEST(CertificateVerdicts, TheBoundIsTheFirstExpiryOfTheChainOrDueCrl) {
  X509Ptr leaf = certificate(7200, 1);
  X509Ptr root = certificate(3600, 2);
  STACK_OF(X509)* chain = sk_X509_new_null();
  sk_X509_push(chain, leaf.get());
  sk_X509_push(chain, root.get());
  StorePtr store(X509_STORE_new());
  int64_t start = now();
  int64_t bound = verdict_bound(chain, store.get());
  EXPECT_GE(bound, start + 3600);  // the root expires first
  EXPECT_LE(bound, now() + 3600);
  add_crl(store.get(), "never due", 0, false);  // no next update: no bound
  EXPECT_EQ(verdict_bound(chain, store.get()), bound);
  add_crl(store.get(), "due first", 1800);
  bound = verdict_bound(chain, store.get());
  EXPECT_GE(bound, start + 1800);  // the CRL is due first
  EXPECT_LE(bound, now() + 1800);
  EXPECT_EQ(verdict_bound(nullptr, store.get()), 0);
  EXPECT_EQ(verdict_bound(chain, nullptr), 0);
  sk_X509_free(chain);
}
