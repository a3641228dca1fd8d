#include "daemon/tls_policy.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <cstdio>
#include <stdexcept>

namespace mssgate::daemon {
namespace {

int protocol_version(const std::string& name) {
  return name == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + last_openssl_error());
}

int load_crls(X509_STORE* store, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) throw std::runtime_error("cannot open CRL file " + path);
  int count = 0;
  while (X509_CRL* crl = PEM_read_X509_CRL(f, nullptr, nullptr, nullptr)) {
    X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    ++count;
  }
  std::fclose(f);
  ERR_clear_error();  // the read loop ends on "no start line"
  if (count == 0) throw std::runtime_error("no CRL found in " + path);
  return count;
}

}  // namespace

std::string last_openssl_error() {
  unsigned long code = ERR_get_error();
  std::string text;
  while (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;  // keep the innermost reason
    code = ERR_get_error();
  }
  return text.empty() ? "unknown TLS error" : text;
}

SslCtxPtr build_server_tls_context(const config::TlsConfig& tls) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) fail("cannot create TLS context");
  SSL_CTX* c = ctx.get();

  SSL_CTX_set_min_proto_version(c, protocol_version(tls.min_version));
  SSL_CTX_set_max_proto_version(c, protocol_version(tls.max_version));
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
  // Idle sessions keep no TLS record buffers.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(c, tls.ciphers.c_str()) != 1)
    fail("tls.ciphers \"" + tls.ciphers + "\"");
  if (SSL_CTX_set_ciphersuites(c, tls.ciphersuites.c_str()) != 1) {
    fail("tls.ciphersuites \"" + tls.ciphersuites + "\"");
  }
  if (SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384") != 1) fail("cannot set ECDHE groups");

  if (SSL_CTX_use_certificate_chain_file(c, tls.certificate_chain.c_str()) != 1) {
    fail("cannot load tls.certificate_chain " + tls.certificate_chain);
  }
  if (SSL_CTX_use_PrivateKey_file(c, tls.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("cannot load tls.private_key " + tls.private_key);
  }
  if (SSL_CTX_check_private_key(c) != 1)
    fail("tls.private_key does not match tls.certificate_chain");

  // Session resumption across connections that verified a client certificate needs an id.
  static constexpr unsigned char kSessionContext[] = "mssgate";
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);

  if (tls.client_ca.empty()) {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  if (SSL_CTX_load_verify_locations(c, tls.client_ca.c_str(), nullptr) != 1) {
    fail("cannot load tls.client_ca " + tls.client_ca);
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca.c_str());
  if (!names) fail("no CA certificate in tls.client_ca " + tls.client_ca);
  SSL_CTX_set_client_CA_list(c, names);
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  if (tls.crl_check) {
    for (const auto& path : tls.crl_files)
      load_crls(store, path);
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  // Requested, not required: professionals signing in with a token have no certificate.
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, nullptr);
  SSL_CTX_set_verify_depth(c, 4);
  return ctx;
}

}  // namespace mssgate::daemon
