#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mssgate::daemon {

struct TokenValidation {
  enum class Result {
    kValid,
    kInvalid,      // not a token PSC vouches for
    kRefused,      // a valid token outside the policy (psc.allowed_clients, audience, scope...)
    kUnavailable,  // the issuer could not say, or the budget of requests to it is spent
  };
  Result result = Result::kUnavailable;
  std::string professional_id;  // normalised idNat, when valid
  std::string azp;              // the éditeur's client the token was issued to (also refused)
  std::string reason;           // a short word for the log
  int64_t expires_at = 0;       // the token's exp (seconds since the epoch)

  static TokenValidation unavailable(std::string reason) {
    return {Result::kUnavailable, {}, {}, std::move(reason), 0};
  }
  static TokenValidation invalid(std::string reason) {
    return {Result::kInvalid, {}, {}, std::move(reason), 0};
  }
  static TokenValidation refused(std::string reason, std::string azp) {
    return {Result::kRefused, {}, std::move(azp), std::move(reason), 0};
  }
};

// Seconds since the epoch: the unit of a token's exp.
inline int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the operator is shown of the issuer (/readyz).
struct IssuerHealth {
  std::string host;
  std::string port;
  int64_t last_answer_ms = 0;  // when the issuer last gave an answer (ms since the epoch; 0: never)
  int64_t last_failure_ms = 0;  // when a request to it last failed
};

// Who says whether an access token is valid: the issuer asked over the network, with no cache.
class TokenIssuer {
 public:
  virtual ~TokenIssuer() = default;

  // Asks about `token` on the calling coroutine's executor. An issuer that is unreachable, slow
  // or answers garbage gives kUnavailable, never kValid.
  virtual boost::asio::awaitable<TokenValidation> check(std::string token) = 0;

  // A refusal reached by looking at `token` alone (too long, not of the expected shape), or
  // nullopt. Asked before the cache, never cached, costs no request.
  virtual std::optional<TokenValidation> screen(std::string_view /*token*/) const {
    return std::nullopt;
  }

  virtual IssuerHealth health() const = 0;
};

}  // namespace mssgate::daemon
