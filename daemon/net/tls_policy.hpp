#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace mssgate::daemon {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// The server-side TLS context of the client listeners: protocol versions and suites of the
// policy, the server certificate chain and key, and, when a client CA is configured, client
// certificates requested (not required) and verified against that chain with CRLs for every
// CA in it, for the purpose of a TLS client (client_certificate_policy.hpp). A presented
// certificate that fails verification ends the handshake.
// Throws std::runtime_error with a sentence for the operator.
SslCtxPtr build_server_tls_context(const config::TlsConfig& tls);

// Where the last good CRL downloaded from `url` is kept.
std::string crl_cache_file(const std::string& cache_dir, const std::string& url);

// A downloaded CRL (PEM or DER), checked before it is used: it must parse, be issued and signed
// by a CA of the `client_ca` file, and be current at `now` (seconds since the epoch).
struct DownloadedCrl {
  std::string refusal;  // empty when good; else not_a_crl, unknown_issuer, bad_signature,
                        // expired, not_yet_valid, client_ca_unreadable
  std::string issuer;
  int64_t last_update = 0;
  int64_t next_update = 0;  // 0: none given
  std::string pem;          // the CRL re-encoded in PEM, when good
};
DownloadedCrl check_downloaded_crl(std::string_view bytes, const std::string& client_ca,
                                   int64_t now);

// The lastUpdate of the first CRL of a PEM file; 0 when there is none.
int64_t crl_file_last_update(const std::string& path);

// The most recent OpenSSL error of this thread as text, and clears the queue.
std::string last_openssl_error();

}  // namespace mssgate::daemon
