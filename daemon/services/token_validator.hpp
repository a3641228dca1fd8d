#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/services/jwt_verifier.hpp"

namespace mssgate::daemon {

struct TokenValidation {
  enum class Result { kValid, kInvalid, kUnavailable };
  Result result = Result::kUnavailable;
  std::string professional_id;  // normalised idNat, when valid
  std::string azp;              // the éditeur's client the token was issued to
  std::string reason;           // a short word for the log
  int64_t expires_at = 0;       // the token's exp (seconds since the epoch)
};

// Validates Pro Santé Connect access tokens, by RFC 7662 introspection or by checking the JWT
// against the issuer's JWKS (then userinfo when the identifier is not in the token). Results
// are cached until the token's exp (at most cache_max_age), refusals briefly; concurrent
// validations of one token share one request. The issuer unreachable, slow or answering
// garbage gives kUnavailable, never kValid. Connections to the issuer are kept and reused.
// Tokens are kept only as SHA-256 digests and never logged.
class TokenValidator {
 public:
  explicit TokenValidator(const config::PscConfig& config);
  ~TokenValidator();
  TokenValidator(const TokenValidator&) = delete;
  TokenValidator& operator=(const TokenValidator&) = delete;

  // Runs on the calling coroutine's executor.
  boost::asio::awaitable<TokenValidation> validate(std::string token);

  // Closes the kept connections; call before the io contexts are destroyed.
  void close_connections();

  // When the issuer last gave an answer, and last failed to (ms since the epoch; 0: never).
  int64_t last_issuer_answer_ms() const;
  int64_t last_issuer_failure_ms() const;
  // The issuer's host and port, for readiness probes.
  std::pair<std::string, std::string> issuer_address() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mssgate::daemon
