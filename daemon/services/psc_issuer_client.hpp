#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/services/issuer_budget.hpp"
#include "daemon/services/jwt_verifier.hpp"
#include "daemon/services/token_issuer.hpp"
#include "daemon/services/token_policy.hpp"
#include "daemon/services/token_validator.hpp"

namespace mssgate::daemon {

struct GatewayEnvironment;

// Pro Santé Connect asked on the process's HTTP client: RFC 7662 introspection, or the JWT's
// signature checked against the issuer's JWKS (then userinfo when the identifier is not in the
// token). A token is first screened (length, shape) without a request; a valid one must then
// keep the [psc] policy (token_policy.hpp), checked before userinfo. Every request takes its
// place in the issuer's budget (issuer_budget.hpp) or is not made: the validation is then
// unavailable ("issuer_budget"). Requests go over TLS only, with the [psc] CA and client
// certificate, each within psc.timeout; they are logged (`issuer_request`) and counted by
// endpoint. Nothing is cached here but the issuer's keys.
class PscIssuerClient : public TokenIssuer {
 public:
  // Loads the TLS files of `config`; throws with a sentence for the operator when one does not.
  PscIssuerClient(const config::PscConfig& config, std::shared_ptr<HttpClient> http,
                  std::shared_ptr<IssuerBudget> budget);
  ~PscIssuerClient() override;

  boost::asio::awaitable<TokenValidation> check(std::string token) override;
  std::optional<TokenValidation> screen(std::string_view token) const override;
  IssuerHealth health() const override;

 private:
  struct IssuerAnswer {
    unsigned status = 0;
    std::string body;
    std::string failure;  // no answer: "issuer_unreachable" or "issuer_budget"
  };

  boost::asio::awaitable<TokenValidation> introspect(std::string token);
  boost::asio::awaitable<TokenValidation> validate_jwt(std::string token);
  boost::asio::awaitable<std::shared_ptr<const JwtKeySet>> keys(bool refresh);
  boost::asio::awaitable<std::shared_ptr<const JwtKeySet>> fetch_keys();
  // The issuer's answer, or why there is none (logged and counted).
  boost::asio::awaitable<IssuerAnswer> ask(std::string_view endpoint, HttpRequest request);
  HttpRequest request_to(const protocol::HttpUrl& url) const;
  TokenValidation from_claims(const protocol::TokenClaims& claims) const;
  // A refusal when the claims of a genuine token break the policy.
  std::optional<TokenValidation> refused_by_policy(const protocol::TokenClaims& claims) const;

  const config::PscConfig config_;  // a copy: the client outlives the snapshot it came with
  const TokenPolicy policy_;
  const std::shared_ptr<HttpClient> http_;
  const std::shared_ptr<IssuerBudget> budget_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  protocol::HttpUrl introspection_, jwks_, userinfo_;
  std::mutex keys_mutex_;
  std::shared_ptr<const JwtKeySet> keys_;
  std::chrono::steady_clock::time_point keys_refreshed_{};
  std::atomic<int64_t> last_answer_ms_{0};
  std::atomic<int64_t> last_failure_ms_{0};
};

// A validator of Pro Santé Connect tokens for `config`, caching as [psc] says, spending
// `budget` (a new one of [psc]'s limits when null).
std::shared_ptr<TokenValidator> make_psc_token_validator(
    const config::PscConfig& config, std::shared_ptr<HttpClient> http,
    std::shared_ptr<IssuerBudget> budget = nullptr);

// The budget of requests to PSC for a configuration being loaded: the one of `running` when
// [psc]'s limits did not change (a reload does not refill it), else a new one; none without
// Pro Santé Connect.
std::shared_ptr<IssuerBudget> psc_budget_for(const config::PscConfig& config,
                                             const GatewayEnvironment* running);

// The validator of a configuration being loaded, whose [psc] files have the stamp `files_stamp`:
// the one of `running` (and its cache of tokens) when neither [psc] (its policy included) nor
// that stamp changed, else a new one spending `budget`, or none when Pro Santé Connect is not
// configured. A replaced validator lives on only in the snapshots that still hold it.
std::shared_ptr<TokenValidator> psc_validator_for(const config::PscConfig& config,
                                                  const std::string& files_stamp,
                                                  const GatewayEnvironment* running,
                                                  std::shared_ptr<HttpClient> http,
                                                  std::shared_ptr<IssuerBudget> budget = nullptr);

}  // namespace mssgate::daemon
