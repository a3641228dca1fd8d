#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "config/config.hpp"

namespace mssgate::daemon {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// The server-side TLS context of the client listeners: protocol versions and suites of the
// policy, the server certificate chain and key, and, when a client CA is configured, client
// certificates requested (not required) and verified against that chain with CRLs for every
// CA in it. A presented certificate that fails verification ends the handshake.
// Throws std::runtime_error with a sentence for the operator.
SslCtxPtr build_server_tls_context(const config::TlsConfig& tls);

// The most recent OpenSSL error of this thread as text, and clears the queue.
std::string last_openssl_error();

}  // namespace mssgate::daemon
