#include "daemon/net/client_certificate_policy.hpp"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>

#include "daemon/net/certificate_identity.hpp"
#include "daemon/net/certificate_verdicts.hpp"
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

constexpr size_t kVerdictCapacity = 10000;

// The context's verdicts, owned by the context (freed with it).
void free_verdicts(void* /*parent*/, void* verdicts, CRYPTO_EX_DATA* /*data*/, int /*index*/,
                   long /*argl*/, void* /*argp*/) {
  delete static_cast<CertificateVerdicts*>(verdicts);
}

int verdicts_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_verdicts);
  return index;
}

// The decodings a handshake gave up for its certificate's shared one (share_decoding), each
// freed once the handshake is over, or with the connection.
void free_replaced_decoding(void* /*parent*/, void* decoding, CRYPTO_EX_DATA* /*data*/,
                            int /*index*/, long /*argl*/, void* /*argp*/) {
  X509_free(static_cast<X509*>(decoding));
}

int replaced_decoding_index() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_replaced_decoding);
  return index;
}

// The client sent a certificate whose verdict stands: the connection keeps the verdict's
// decoding of it (the same DER) instead of its own. OpenSSL takes the session's certificate
// from the stack of those the client sent once this verification is over (the leaf first); the
// stack's reference to the handshake's own decoding becomes the connection's, and goes once the
// handshake is over (the verification context points at it until then).
void share_decoding(X509_STORE_CTX* context, CertificateVerdicts::X509Reference shared) {
  X509* decoded = X509_STORE_CTX_get0_cert(context);
  STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(context);
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(context, SSL_get_ex_data_X509_STORE_CTX_idx()));
  int index = replaced_decoding_index();
  if (!shared || !ssl || index < 0 || !sent || sk_X509_num(sent) == 0 ||
      sk_X509_value(sent, 0) != decoded || SSL_get_ex_data(ssl, index) != nullptr ||
      SSL_set_ex_data(ssl, index, decoded) != 1)
    return;
  sk_X509_set(sent, 0, shared.release());
}

// The verification of a full handshake's client certificate, in OpenSSL's place: a leaf whose
// verdict stands is taken as verified (its chain's validity does not depend on which
// intermediates this client sent: a leaf that verified once against the context's CAs, with
// whichever, still does), and the connection shares the verdict's decoding of it; any other is
// verified as OpenSSL would, and a success remembered, with this decoding to share.
int verify_with_verdicts(X509_STORE_CTX* context, void* argument) {
  auto& verdicts = *static_cast<CertificateVerdicts*>(argument);
  auto now = static_cast<int64_t>(std::time(nullptr));
  X509* leaf = X509_STORE_CTX_get0_cert(context);
  std::string key = verdict_key(leaf);
  // One look-up when the verdict stands with its decoding, as it does after its first handshake.
  auto shared = verdicts.standing_decoding(key, now);
  if (shared || verdicts.stands(key, now)) {
    share_decoding(context, std::move(shared));
    X509_STORE_CTX_set_error(context, X509_V_OK);
    return 1;
  }
  int verified = X509_verify_cert(context);
  if (verified == 1) {
    verdicts.remember(
        std::move(key), now,
        verdict_bound(X509_STORE_CTX_get0_chain(context), X509_STORE_CTX_get0_store(context)),
        leaf);
  }
  return verified;
}

// Asked before every resumption: the session's certificate must verify now, as a full handshake
// would verify it. A verdict of this context that stands makes the verification needless.
bool certificate_still_good(SSL* ssl, SSL_SESSION* session, CertificateVerdicts& verdicts) {
  X509* certificate = SSL_SESSION_get0_peer(session);
  if (!certificate) return true;
  auto now = static_cast<int64_t>(std::time(nullptr));
  std::string key = verdict_key(certificate);
  if (verdicts.stands(key, now)) return true;
  int64_t good_until = 0;
  long error = verify_resumed_certificate(ssl, certificate, &good_until);
  if (error == X509_V_OK) {
    verdicts.remember(std::move(key), now, good_until, certificate);
    return true;
  }
  // Not resumed: the handshake goes on as a full one, which verifies the certificate anew.
  Event("tls_ticket_refused")
      .add("certificate_error", X509_verify_cert_error_string(error))
      .add("certificate_sha256", identify_certificate(certificate).sha256)
      .add("action", "full handshake")
      .warn();
  return false;
}

}  // namespace

void release_replaced_decoding(SSL* ssl) {
  int index = replaced_decoding_index();
  if (!ssl || index < 0) return;
  auto* decoding = static_cast<X509*>(SSL_get_ex_data(ssl, index));
  if (!decoding) return;
  SSL_set_ex_data(ssl, index, nullptr);
  X509_free(decoding);
}

long verify_resumed_certificate(SSL* ssl, X509* certificate, int64_t* good_until) {
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
  if (X509_verify_cert(context.get()) == 1) {
    if (good_until) *good_until = verdict_bound(X509_STORE_CTX_get0_chain(context.get()), store);
    return X509_V_OK;
  }
  long error = X509_STORE_CTX_get_error(context.get());
  return error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error;
}

void apply_client_certificate_policy(SSL_CTX* context, const config::TlsConfig& tls) {
  SSL_CTX_set_purpose(context, X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE,
                     tls.require_client_auth_eku ? require_client_auth_eku : nullptr);
  SSL_CTX_set_verify_depth(context, kVerifyDepth);
  auto verdicts = std::make_unique<CertificateVerdicts>(kVerdictCapacity);
  if (SSL_CTX_set_ex_data(context, verdicts_index(), verdicts.get()) != 1)
    throw std::runtime_error("cannot attach the certificate verdicts to the TLS context");
  CertificateVerdicts* owned = verdicts.release();  // the context's now
  SSL_CTX_set_cert_verify_callback(context, verify_with_verdicts, owned);
  install_session_cache(context, tls.session_cache_size,
                        std::chrono::duration_cast<std::chrono::seconds>(tls.session_lifetime),
                        [owned](SSL* ssl, SSL_SESSION* session) {
                          return certificate_still_good(ssl, session, *owned);
                        });
}

}  // namespace mssgate::daemon
