#include "daemon/net/client_certificate_policy.hpp"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>

#include "daemon/net/certificate_identity.hpp"
#include "daemon/net/tls_session_cache.hpp"
#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {
namespace {

constexpr int kVerifyDepth = 4;

// The verification callback with tls.require_client_auth_eku: the leaf (depth 0), once its
// chain verified, must carry an extended key usage that names clientAuth.
int require_client_auth_eku(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 1 || X509_STORE_CTX_get_error_depth(store) != 0) return preverify_ok;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  if (leaf && (X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) != 0 &&
      (X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT) != 0) {
    return 1;
  }
  X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
  return 0;
}

// Asked before every resumption: the session's certificate must verify again now.
bool certificate_still_good(SSL* ssl, SSL_SESSION* session) {
  X509* certificate = SSL_SESSION_get0_peer(session);
  if (!certificate) return true;
  long error = verify_resumed_certificate(ssl, certificate);
  if (error == X509_V_OK) return true;
  // Not resumed: the handshake goes on as a full one, which verifies the certificate anew.
  Event("tls_ticket_refused")
      .add("certificate_error", X509_verify_cert_error_string(error))
      .add("certificate_sha256", identify_certificate(certificate).sha256)
      .add("action", "full handshake")
      .warn();
  return false;
}

}  // namespace

long verify_resumed_certificate(SSL* ssl, X509* certificate) {
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> context(X509_STORE_CTX_new(),
                                                                          &X509_STORE_CTX_free);
  X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
  if (!context || X509_STORE_CTX_init(context.get(), store, certificate, nullptr) != 1)
    return X509_V_ERR_UNSPECIFIED;
  // As OpenSSL's handshake sets its verification up: purpose, then the connection's
  // parameters (depth, purpose), then its callback. The store's flags ask for the CRLs.
  X509_STORE_CTX_set_default(context.get(), "ssl_client");
  X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(context.get()), SSL_get0_param(ssl));
  if (SSL_verify_cb callback = SSL_get_verify_callback(ssl))
    X509_STORE_CTX_set_verify_cb(context.get(), callback);
  if (X509_verify_cert(context.get()) == 1) return X509_V_OK;
  long error = X509_STORE_CTX_get_error(context.get());
  return error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error;
}

void apply_client_certificate_policy(SSL_CTX* context, const config::TlsConfig& tls) {
  SSL_CTX_set_purpose(context, X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE,
                     tls.require_client_auth_eku ? require_client_auth_eku : nullptr);
  SSL_CTX_set_verify_depth(context, kVerifyDepth);
  install_session_cache(context, tls.session_cache_size,
                        std::chrono::duration_cast<std::chrono::seconds>(tls.session_lifetime),
                        certificate_still_good);
}

}  // namespace mssgate::daemon
