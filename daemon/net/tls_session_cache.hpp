#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <functional>

namespace mssgate::daemon {

// TLS sessions resumed from the server's memory rather than from session tickets.
//
// OpenSSL 3.0 decodes a whole session, the client's certificate and its public key included,
// to issue a ticket (once per ticket, at every full handshake) and again to resume from one:
// about a fifth of the CPU of a handshake with a client certificate. Kept in memory, a session
// is found by the id the client presents (a TLS 1.2 session id, or a TLS 1.3 ticket that is
// only that id) and costs no decoding.
//
// `accept` is asked before every resumption, outside the cache's lock: a session it refuses is
// forgotten and the handshake goes on as a full one.
using ResumptionCheck = std::function<bool(SSL* ssl, SSL_SESSION* session)>;

// Installs on `context` a cache of at most `capacity` sessions (the oldest give way), each
// resumable for `lifetime`, and turns session tickets off (TLS 1.3 issues one ticket, holding
// the id). Capacity 0: no resumption at all. The cache lives as long as the context.
void install_session_cache(SSL_CTX* context, size_t capacity, std::chrono::seconds lifetime,
                           ResumptionCheck accept);

// The sessions `context`'s cache holds now; 0 without a cache.
size_t cached_sessions(SSL_CTX* context);

}  // namespace mssgate::daemon
