#include "daemon/net/tls_session_cache.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "daemon/net/client_certificate_policy.hpp"

using mssgate::daemon::apply_client_certificate_policy;
using mssgate::daemon::cached_sessions;
using mssgate::daemon::install_session_cache;

namespace {

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SessionFree {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

// A server context with a fresh P-256 key and a self-signed certificate.
CtxPtr server_context() {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* certificate = X509_new();
  X509_set_version(certificate, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
  X509_gmtime_adj(X509_getm_notBefore(certificate), 0);
  X509_gmtime_adj(X509_getm_notAfter(certificate), 3600);
  X509_NAME* name = X509_get_subject_name(certificate);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("cache.test"), -1, -1, 0);
  X509_set_issuer_name(certificate, name);
  X509_set_pubkey(certificate, key);
  X509_sign(certificate, key, EVP_sha256());
  SSL_CTX_use_certificate(ctx.get(), certificate);
  SSL_CTX_use_PrivateKey(ctx.get(), key);
  X509_free(certificate);
  EVP_PKEY_free(key);
  static constexpr unsigned char kContext[] = "test";
  SSL_CTX_set_session_id_context(ctx.get(), kContext, sizeof kContext - 1);
  return ctx;
}

CtxPtr client_context(int version) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);
  return ctx;
}

bool retry(SSL* ssl, int result) {
  int reason = SSL_get_error(ssl, result);
  return reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE;
}

// One connection over a pair of memory BIOs, offering `offered` to resume; the session the
// client can resume next time (after a byte of data, so that TLS 1.3's ticket is read), and
// whether this one was resumed.
struct Connection {
  SessionPtr next;
  bool resumed = false;
  bool ok = false;
  int sent_intermediates = -1;   // the server's view of the chain the client sent, after it
  bool client_verified = false;  // the server verified a client certificate
  const X509* peer = nullptr;  // the server's decoding of the client's certificate (compared only)
};

Connection connect(SSL_CTX* server_ctx, SSL_CTX* client_ctx, SSL_SESSION* offered) {
  Connection result;
  SslPtr server(SSL_new(server_ctx));
  SslPtr client(SSL_new(client_ctx));
  BIO* server_end = nullptr;
  BIO* client_end = nullptr;
  BIO_new_bio_pair(&server_end, 0, &client_end, 0);
  SSL_set_bio(server.get(), server_end, server_end);
  SSL_set_bio(client.get(), client_end, client_end);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  if (offered) SSL_set_session(client.get(), offered);
  bool server_done = false;
  bool client_done = false;
  for (int turn = 0; turn < 100 && !(server_done && client_done); ++turn) {
    if (!server_done) {
      int r = SSL_do_handshake(server.get());
      if (r == 1)
        server_done = true;
      else if (!retry(server.get(), r))
        return result;
    }
    if (!client_done) {
      int r = SSL_do_handshake(client.get());
      if (r == 1)
        client_done = true;
      else if (!retry(client.get(), r))
        return result;
    }
  }
  if (!server_done || !client_done) return result;
  char byte = 0;
  size_t n = 0;
  if (SSL_write_ex(server.get(), "x", 1, &n) != 1) return result;
  for (int turn = 0; turn < 100; ++turn) {
    if (SSL_read_ex(client.get(), &byte, 1, &n) == 1) break;
    if (!retry(client.get(), 0)) return result;
  }
  result.resumed = SSL_session_reused(server.get()) == 1;
  if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(server.get()))
    result.sent_intermediates = sk_X509_num(sent);
  result.peer = SSL_get0_peer_certificate(server.get());
  result.client_verified = SSL_get0_peer_certificate(server.get()) != nullptr &&
                           SSL_get_verify_result(server.get()) == X509_V_OK;
  result.next.reset(SSL_get1_session(client.get()));
  result.ok = byte == 'x';
  // As the client stream frees its connections: closed cleanly, or OpenSSL forgets the session
  // (and so would the client, for its end).
  SSL_set_shutdown(server.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_set_shutdown(client.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  return result;
}

// A certificate for `key`, named `name`, signed by `issuer_key` (issued by `issuer`; itself
// when null), a CA or not.
X509* issue(const char* name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
            long lifetime = 3600) {
  X509* certificate = X509_new();
  X509_set_version(certificate, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), ca ? 10 : 11);
  X509_gmtime_adj(X509_getm_notBefore(certificate), 0);
  X509_gmtime_adj(X509_getm_notAfter(certificate), lifetime);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(certificate), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
  X509_set_issuer_name(certificate, X509_get_subject_name(issuer ? issuer : certificate));
  X509_set_pubkey(certificate, key);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer ? issuer : certificate, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* constraints = X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints,
                                                    ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  X509_add_ext(certificate, constraints, -1);
  X509_EXTENSION_free(constraints);
  X509_sign(certificate, issuer_key, EVP_sha256());
  return certificate;
}

// A root and an intermediate CA in the server's store, verifying client certificates; the
// client sends its leaf and the intermediate, as IGC-Santé organisation certificates are sent.
struct ClientChain {
  CtxPtr server = server_context();
  CtxPtr client;

  explicit ClientChain(int version, long leaf_lifetime = 3600) : client(client_context(version)) {
    EVP_PKEY* root_key = EVP_EC_gen("P-256");
    EVP_PKEY* intermediate_key = EVP_EC_gen("P-256");
    EVP_PKEY* leaf_key = EVP_EC_gen("P-256");
    X509* root = issue("root.test", root_key, nullptr, root_key, true);
    X509* intermediate = issue("intermediate.test", intermediate_key, root, root_key, true);
    X509* leaf = issue("org.test", leaf_key, intermediate, intermediate_key, false, leaf_lifetime);
    X509_STORE* store = SSL_CTX_get_cert_store(server.get());
    X509_STORE_add_cert(store, root);
    X509_STORE_add_cert(store, intermediate);
    SSL_CTX_set_verify(server.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_use_certificate(client.get(), leaf);
    SSL_CTX_use_PrivateKey(client.get(), leaf_key);
    SSL_CTX_add1_chain_cert(client.get(), intermediate);
    for (X509* certificate : {root, intermediate, leaf})
      X509_free(certificate);
    for (EVP_PKEY* key : {root_key, intermediate_key, leaf_key})
      EVP_PKEY_free(key);
  }
};

class TlsSessionCache : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(TlsSessionCache, ResumesFromMemoryAfterTheCheck) {
  auto server = server_context();
  int checks = 0;
  install_session_cache(server.get(), 100, std::chrono::seconds(300), [&](SSL*, SSL_SESSION*) {
    ++checks;
    return true;
  });
  EXPECT_TRUE(SSL_CTX_get_options(server.get()) & SSL_OP_NO_TICKET);  // no stateless tickets
  auto client = client_context(GetParam());
  Connection first = connect(server.get(), client.get(), nullptr);
  ASSERT_TRUE(first.ok);
  EXPECT_FALSE(first.resumed);
  EXPECT_EQ(checks, 0);
  EXPECT_EQ(cached_sessions(server.get()), 1u);  // TLS 1.3: one ticket, one session
  ASSERT_TRUE(first.next);
  Connection second = connect(server.get(), client.get(), first.next.get());
  ASSERT_TRUE(second.ok);
  EXPECT_TRUE(second.resumed);
  EXPECT_EQ(checks, 1);
  ASSERT_TRUE(second.next);
  Connection third = connect(server.get(), client.get(), second.next.get());
  EXPECT_TRUE(third.resumed);
  EXPECT_EQ(checks, 2);
}

TEST_P(TlsSessionCache, ASessionTheCheckRefusesIsForgottenAndTheHandshakeIsFull) {
  auto server = server_context();
  bool accept = false;
  int checks = 0;
  install_session_cache(server.get(), 100, std::chrono::seconds(300), [&](SSL*, SSL_SESSION*) {
    ++checks;
    return accept;
  });
  auto client = client_context(GetParam());
  Connection first = connect(server.get(), client.get(), nullptr);
  ASSERT_TRUE(first.ok && first.next);
  size_t held = cached_sessions(server.get());
  Connection refused = connect(server.get(), client.get(), first.next.get());
  ASSERT_TRUE(refused.ok);
  EXPECT_FALSE(refused.resumed);
  EXPECT_EQ(checks, 1);
  // The refused one is gone; the full handshake left its own.
  EXPECT_EQ(cached_sessions(server.get()), held);
  accept = true;
  Connection again = connect(server.get(), client.get(), first.next.get());
  EXPECT_FALSE(again.resumed);  // forgotten: not even asked
  EXPECT_EQ(checks, 1);
}

TEST_P(TlsSessionCache, TheOldestSessionsGiveWayAtCapacity) {
  auto server = server_context();
  install_session_cache(server.get(), 2, std::chrono::seconds(300), nullptr);
  auto client = client_context(GetParam());
  Connection first = connect(server.get(), client.get(), nullptr);
  Connection second = connect(server.get(), client.get(), nullptr);
  Connection third = connect(server.get(), client.get(), nullptr);
  ASSERT_TRUE(first.ok && second.ok && third.ok);
  EXPECT_EQ(cached_sessions(server.get()), 2u);
  EXPECT_FALSE(connect(server.get(), client.get(), first.next.get()).resumed);
  EXPECT_TRUE(connect(server.get(), client.get(), third.next.get()).resumed);
}

TEST_P(TlsSessionCache, CapacityZeroResumesNothing) {
  auto server = server_context();
  install_session_cache(server.get(), 0, std::chrono::seconds(300), nullptr);
  auto client = client_context(GetParam());
  Connection first = connect(server.get(), client.get(), nullptr);
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(cached_sessions(server.get()), 0u);
  if (first.next) {
    EXPECT_FALSE(connect(server.get(), client.get(), first.next.get()).resumed);
  }
}

TEST_P(TlsSessionCache, TheIntermediatesAClientSentAreFreedOnceItsSessionIsMade) {
  {
    // Without a cache, nothing is freed: the check below can tell.
    ClientChain pki(GetParam());
    install_session_cache(pki.server.get(), 0, std::chrono::seconds(300), nullptr);
    Connection full = connect(pki.server.get(), pki.client.get(), nullptr);
    ASSERT_TRUE(full.ok);
    EXPECT_TRUE(full.client_verified);
    EXPECT_EQ(full.sent_intermediates, 1);
  }
  ClientChain pki(GetParam());
  int checks = 0;
  install_session_cache(pki.server.get(), 100, std::chrono::seconds(300),
                        [&](SSL*, SSL_SESSION* session) {
                          ++checks;
                          return SSL_SESSION_get0_peer(session) != nullptr;  // the leaf stays
                        });
  Connection full = connect(pki.server.get(), pki.client.get(), nullptr);
  ASSERT_TRUE(full.ok && full.next);
  EXPECT_TRUE(full.client_verified);
  EXPECT_EQ(full.sent_intermediates, 0);
  // The session resumes without them, its leaf still there for the check.
  Connection resumed = connect(pki.server.get(), pki.client.get(), full.next.get());
  ASSERT_TRUE(resumed.ok);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(checks, 1);
  EXPECT_TRUE(resumed.client_verified);
}

// The gateway's own check before a resumption, with its verdicts: a certificate resumed again and
// again while it is good, and not once it has expired, though its verdict was fresh before.
TEST_P(TlsSessionCache, ACertificateVerifiedOnceIsResumedUntilItExpires) {
  ClientChain pki(GetParam(), 3);
  mssgate::config::TlsConfig tls;
  tls.require_client_auth_eku = false;
  apply_client_certificate_policy(pki.server.get(), tls);
  Connection full = connect(pki.server.get(), pki.client.get(), nullptr);
  ASSERT_TRUE(full.ok && full.next);
  EXPECT_TRUE(full.client_verified);
  SessionPtr offered = std::move(full.next);
  for (int i = 0; i < 3; ++i) {  // verified at the first, its verdict standing for the others
    Connection resumed = connect(pki.server.get(), pki.client.get(), offered.get());
    ASSERT_TRUE(resumed.ok && resumed.next) << i;
    EXPECT_TRUE(resumed.resumed) << i;
    offered = std::move(resumed.next);
  }
  // Past the leaf's "not after" (3 s after its "not before", whole seconds apart).
  std::this_thread::sleep_for(std::chrono::milliseconds(4100));
  Connection expired = connect(pki.server.get(), pki.client.get(), offered.get());
  EXPECT_FALSE(expired.resumed);
  EXPECT_FALSE(expired.ok);  // the full handshake refuses the expired certificate
}

// Full handshakes presenting one certificate keep one decoding of it, the verdict's: the first
// connection's is still held (by the verdict) when the second is made, so the two are the same
// object only if the second took it.
TEST_P(TlsSessionCache, FullHandshakesOfOneCertificateShareItsDecoding) {
  ClientChain pki(GetParam());
  mssgate::config::TlsConfig tls;
  tls.require_client_auth_eku = false;
  apply_client_certificate_policy(pki.server.get(), tls);
  Connection first = connect(pki.server.get(), pki.client.get(), nullptr);
  ASSERT_TRUE(first.ok);
  EXPECT_TRUE(first.client_verified);
  Connection second = connect(pki.server.get(), pki.client.get(), nullptr);
  ASSERT_TRUE(second.ok);
  EXPECT_FALSE(second.resumed);
  EXPECT_TRUE(second.client_verified);
  ASSERT_NE(first.peer, nullptr);
  EXPECT_EQ(second.peer, first.peer);
}

// TLS 1.2 (0) and TLS 1.3 (1).
INSTANTIATE_TEST_SUITE_P(Versions, TlsSessionCache,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION));

TEST(TlsSessionCacheLifetime, AnExpiredSessionIsNotResumed) {
  auto server = server_context();
  install_session_cache(server.get(), 100, std::chrono::seconds(1), nullptr);
  auto client = client_context(TLS1_2_VERSION);
  Connection first = connect(server.get(), client.get(), nullptr);
  ASSERT_TRUE(first.ok && first.next);
  EXPECT_TRUE(connect(server.get(), client.get(), first.next.get()).resumed);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_FALSE(connect(server.get(), client.get(), first.next.get()).resumed);
}
