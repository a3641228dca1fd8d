#pragma once

#include <openssl/ssl.h>

#include <cstdint>

#include "config/config.hpp"

namespace mssgate::daemon {

// What makes a client certificate acceptable to the client listeners, beyond its chain and
// CRLs (set up by build_server_tls_context):
// - it is verified for the purpose "TLS client", explicitly;
// - with tls.require_client_auth_eku, its extended key usage must name clientAuth (OpenSSL's
//   purpose check alone lets a certificate without the extension through);
// - a session is resumed (from the context's session cache, tls_session_cache.hpp) only if the
//   certificate it holds verifies now against the context's CAs and CRLs: a certificate revoked
//   or expired since it was first verified gets a full handshake (which refuses it), never a
//   resumed session. A verification that succeeded is not done again for the same certificate
//   while it is sure to succeed (certificate_verdicts.hpp).
// - the connections presenting a certificate whose verdict stands share one decoding of it (the
//   verdict's) instead of each keeping its own; release_replaced_decoding() frees a
//   connection's own once its handshake is over.
// Requests (does not require) a certificate: professionals signing in with a token have none.
void apply_client_certificate_policy(SSL_CTX* context, const config::TlsConfig& tls);

// Frees the decoding of the client's certificate that `ssl`'s handshake gave up for the shared
// one (nothing when it gave up none). To call once the handshake is over; the connection's end
// frees it otherwise.
void release_replaced_decoding(SSL* ssl);

// The verification of a resumed session's certificate, as the handshake would do it today:
// X509_V_OK or the X509_V_ERR_* code. On success, `good_until` (when given) is the instant until
// which the verification is sure to succeed again (verdict_bound). Exposed for the resumption
// check and for tests.
long verify_resumed_certificate(SSL* ssl, X509* certificate, int64_t* good_until = nullptr);

}  // namespace mssgate::daemon
