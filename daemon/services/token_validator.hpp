#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "daemon/services/token_issuer.hpp"

namespace mssgate::daemon {

struct TokenCachePolicy {
  // A valid token is cached until its exp, at most this long.
  std::chrono::steady_clock::duration max_age = std::chrono::minutes(5);
  // An invalid token is remembered this long; an unavailable issuer is always asked again.
  std::chrono::steady_clock::duration negative = std::chrono::seconds(10);
  // How long a validation waits for the one of the same token already in flight.
  std::chrono::steady_clock::duration waiter_timeout = std::chrono::seconds(9);
  size_t max_entries = 100000;
};

// Validates access tokens with a TokenIssuer, remembering its answers: valid ones until the
// token's exp (at most max_age), refusals briefly; a token the issuer's screen() refuses is
// neither cached nor asked about. The answers depend on the issuer's policy: a new policy
// comes with a new validator (psc_validator_for), whose cache starts empty and to which the old
// one hands its validations (supersede). Concurrent validations of one token share one call to
// the issuer, the others waiting at most waiter_timeout. Tokens are kept only as SHA-256
// digests and never logged.
class TokenValidator {
 public:
  TokenValidator(std::shared_ptr<TokenIssuer> issuer, TokenCachePolicy policy);
  ~TokenValidator();
  TokenValidator(const TokenValidator&) = delete;
  TokenValidator& operator=(const TokenValidator&) = delete;

  // Runs on the calling coroutine's executor. A remembered answer older than `fresher_than`
  // is not used (a session's periodic re-check); by default any remembered answer is.
  boost::asio::awaitable<TokenValidation> validate(
      std::string token, std::chrono::steady_clock::duration fresher_than =
                             std::chrono::steady_clock::duration::max());

  // A reload put `next` in force (another policy, other files): from now on this validator
  // hands every validation to it, so that a session opened before the reload that signs in
  // after it gets the new policy, not this one's cache.
  void supersede(std::shared_ptr<TokenValidator> next);

  IssuerHealth issuer_health() const;

  class Impl;

 private:
  std::shared_ptr<TokenValidator> successor() const;

  std::unique_ptr<Impl> impl_;
  mutable std::mutex successor_mutex_;
  std::shared_ptr<TokenValidator> successor_;
};

}  // namespace mssgate::daemon
