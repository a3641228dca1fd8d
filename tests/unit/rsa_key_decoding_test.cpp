#include "daemon/net/rsa_key_decoding.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "tests/unit/parsed_certificate.hpp"

namespace {

using mssgate::test_certificates::parsed_again;
using mssgate::test_certificates::X509Ptr;

// Every unit test runs as the gateway does: with certificates' RSA keys decoded by OpenSSL's
// RSA code (registered before the first test, as the gateway does before its first certificate).
class DirectRsaKeys : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(mssgate::daemon::decode_certificate_rsa_keys_directly()); }
};
const auto* const kDirectRsaKeys = ::testing::AddGlobalTestEnvironment(new DirectRsaKeys);

struct Free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  void operator()(SSL* s) const { SSL_free(s); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using ContextPtr = std::unique_ptr<SSL_CTX, Free>;
using SslPtr = std::unique_ptr<SSL, Free>;

struct Issued {
  KeyPtr key;
  X509Ptr certificate;
};

// A certificate for `name` with a new key (RSA 2048 unless `ec`), signed by `issuer` (itself
// when null), a CA when `ca`.
Issued issue(const char* name, const Issued* issuer, bool ca, bool ec = false) {
  Issued out{KeyPtr(ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048)), X509Ptr(X509_new())};
  X509* x = out.certificate.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer->certificate.get() : x));
  X509_set_pubkey(x, out.key.get());
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer ? issuer->certificate.get() : x, x, nullptr, nullptr, 0);
  X509_EXTENSION* constraints = X509V3_EXT_conf_nid(nullptr, &context, NID_basic_constraints,
                                                    ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(x, constraints, -1);
  X509_EXTENSION_free(constraints);
  X509_sign(x, issuer ? issuer->key.get() : out.key.get(), EVP_sha256());
  return out;
}

TEST(RsaKeyDecoding, ACertificatesRsaKeyIsDecodedByOpenSslsRsaCode) {
  Issued ca = issue("ca.test", nullptr, true);
  Issued leaf = issue("leaf.test", &ca, false);
  X509Ptr read = parsed_again(leaf.certificate.get());
  ASSERT_TRUE(read);
  EVP_PKEY* key = X509_get0_pubkey(read.get());
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_get0_provider(key), nullptr);  // not a provider's key
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 2048);
  EXPECT_EQ(EVP_PKEY_eq(key, leaf.key.get()), 1);
}

TEST(RsaKeyDecoding, OtherKeyTypesStayWithTheProviders) {
  Issued ec = issue("ec.test", nullptr, true, true);
  X509Ptr read = parsed_again(ec.certificate.get());
  ASSERT_TRUE(read);
  EXPECT_NE(EVP_PKEY_get0_provider(X509_get0_pubkey(read.get())), nullptr);
}

TEST(RsaKeyDecoding, SignaturesAreCheckedWithTheDecodedKey) {
  Issued ca = issue("ca.test", nullptr, true);
  Issued other = issue("other-ca.test", nullptr, true);
  Issued leaf = issue("leaf.test", &ca, false);
  X509Ptr read_ca = parsed_again(ca.certificate.get());
  X509Ptr read_other = parsed_again(other.certificate.get());
  X509Ptr read_leaf = parsed_again(leaf.certificate.get());
  EXPECT_EQ(X509_verify(read_leaf.get(), X509_get0_pubkey(read_ca.get())), 1);
  EXPECT_EQ(X509_verify(read_leaf.get(), X509_get0_pubkey(read_other.get())), 0);
  // One bit of the leaf's signature changed.
  unsigned char* der = nullptr;
  int length = i2d_X509(leaf.certificate.get(), &der);
  der[length - 10] ^= 0x01;
  const unsigned char* read = der;
  X509Ptr tampered(d2i_X509(nullptr, &read, length));
  OPENSSL_free(der);
  ASSERT_TRUE(tampered);
  EXPECT_EQ(X509_verify(tampered.get(), X509_get0_pubkey(read_ca.get())), 0);
}

// Server and client ends of a handshake in memory; true when both ends completed it.
bool handshake(SSL* server, SSL* client) {
  BIO* server_end = nullptr;
  BIO* client_end = nullptr;
  BIO_new_bio_pair(&server_end, 0, &client_end, 0);
  SSL_set_bio(server, server_end, server_end);
  SSL_set_bio(client, client_end, client_end);
  SSL_set_accept_state(server);
  SSL_set_connect_state(client);
  for (int round = 0; round < 20; ++round) {
    int at_server = SSL_do_handshake(server);
    int at_client = SSL_do_handshake(client);
    if (at_server == 1 && at_client == 1) return true;
    bool server_waits = at_server == 1 || SSL_get_error(server, at_server) == SSL_ERROR_WANT_READ;
    bool client_waits = at_client == 1 || SSL_get_error(client, at_client) == SSL_ERROR_WANT_READ;
    if (!server_waits || !client_waits) return false;
  }
  return false;
}

struct Handshake {
  bool completed = false;
  long verify_result = X509_V_ERR_UNSPECIFIED;
};

// A TLS handshake of `version` where the server requires a client certificate issued by
// `trusted`; the client presents `client`.
Handshake client_certificate_handshake(int version, const Issued& trusted, const Issued& server,
                                       const Issued& client) {
  ContextPtr server_context(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_set_min_proto_version(server_context.get(), version);
  SSL_CTX_set_max_proto_version(server_context.get(), version);
  SSL_CTX_use_certificate(server_context.get(), server.certificate.get());
  SSL_CTX_use_PrivateKey(server_context.get(), server.key.get());
  X509_STORE* store = X509_STORE_new();
  X509Ptr trusted_read = parsed_again(trusted.certificate.get());
  X509_STORE_add_cert(store, trusted_read.get());
  SSL_CTX_set_cert_store(server_context.get(), store);
  SSL_CTX_set_verify(server_context.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  ContextPtr client_context(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(client_context.get(), version);
  SSL_CTX_set_max_proto_version(client_context.get(), version);
  SSL_CTX_use_certificate(client_context.get(), client.certificate.get());
  SSL_CTX_use_PrivateKey(client_context.get(), client.key.get());
  SslPtr server_ssl(SSL_new(server_context.get()));
  SslPtr client_ssl(SSL_new(client_context.get()));
  Handshake out;
  out.completed = handshake(server_ssl.get(), client_ssl.get());
  out.verify_result = SSL_get_verify_result(server_ssl.get());
  return out;
}

TEST(RsaKeyDecoding, HandshakesAcceptAClientCertificateOfTheTrustedCaAndRefuseAnother) {
  Issued ca = issue("ca.test", nullptr, true);
  Issued other_ca = issue("other-ca.test", nullptr, true);
  Issued server = issue("server.test", &ca, false);
  Issued client = issue("client.test", &ca, false);
  Issued stranger = issue("stranger.test", &other_ca, false);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    Handshake accepted = client_certificate_handshake(version, ca, server, client);
    EXPECT_TRUE(accepted.completed);
    EXPECT_EQ(accepted.verify_result, X509_V_OK);
    Handshake refused = client_certificate_handshake(version, ca, server, stranger);
    EXPECT_FALSE(refused.completed);
    EXPECT_NE(refused.verify_result, X509_V_OK);
  }
}

}  // namespace
