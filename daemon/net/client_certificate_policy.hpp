#pragma once

#include <openssl/ssl.h>

#include "config/config.hpp"

namespace mssgate::daemon {

// What makes a client certificate acceptable to the client listeners, beyond its chain and
// CRLs (set up by build_server_tls_context):
// - it is verified for the purpose "TLS client", explicitly;
// - with tls.require_client_auth_eku, its extended key usage must name clientAuth (OpenSSL's
//   purpose check alone lets a certificate without the extension through);
// - a session is resumed only from a session ticket, and only after the certificate the ticket
//   carries has been verified again, now, against the context's CAs and CRLs: a certificate
//   revoked or expired since it was first verified gets a full handshake (which refuses it),
//   never a resumed session. There is no server-side session cache, whose resumptions no
//   callback could check.
// Requests (does not require) a certificate: professionals signing in with a token have none.
void apply_client_certificate_policy(SSL_CTX* context, const config::TlsConfig& tls);

// The verification of a resumed session's certificate, as the handshake would do it today:
// X509_V_OK or the X509_V_ERR_* code. Exposed for the ticket callback and for tests.
long verify_resumed_certificate(SSL* ssl, X509* certificate);

}  // namespace mssgate::daemon
