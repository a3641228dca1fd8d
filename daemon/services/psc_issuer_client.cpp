#include "daemon/services/psc_issuer_client.hpp"

#include <boost/asio/ssl/context.hpp>
#include <cctype>

#include "daemon/services/gateway_environment.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/base64.hpp"
#include "protocol/jwt.hpp"
#include "protocol/professional_id.hpp"
#include "storage/clock.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;
constexpr size_t kMaxResponseBytes = 1 << 20;

// Pro Santé Connect is only ever asked over TLS.
protocol::HttpUrl parse_https_url(std::string_view url) {
  auto parsed = protocol::parse_http_url(url);
  if (!parsed || !parsed->tls) return {};  // no host: every request fails, unresolved
  return *parsed;
}

std::string form_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::shared_ptr<ssl::context> psc_tls_context(const config::PscConfig& config) {
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls->set_verify_mode(ssl::verify_peer);
  if (config.ca_file.empty()) {
    tls->set_default_verify_paths();
  } else {
    tls->load_verify_file(config.ca_file);
  }
  if (!config.client_certificate.empty()) {
    tls->use_certificate_chain_file(config.client_certificate);
    tls->use_private_key_file(config.client_key, ssl::context::pem);
  }
  return tls;
}

IssuerBudget::Limits budget_limits(const config::PscConfig& config) {
  return {config.issuer_max_in_flight, config.issuer_max_per_second, config.issuer_burst};
}

}  // namespace

PscIssuerClient::PscIssuerClient(const config::PscConfig& config, std::shared_ptr<HttpClient> http,
                                 std::shared_ptr<IssuerBudget> budget)
    : config_(config),
      policy_(TokenPolicy::from(config)),
      http_(std::move(http)),
      budget_(budget ? std::move(budget) : std::make_shared<IssuerBudget>(budget_limits(config))),
      tls_(psc_tls_context(config)),
      introspection_(parse_https_url(config.introspection_url)),
      jwks_(parse_https_url(config.jwks_url)),
      userinfo_(parse_https_url(config.userinfo_url)) {}

PscIssuerClient::~PscIssuerClient() = default;

asio::awaitable<TokenValidation> PscIssuerClient::check(std::string token) {
  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  TokenValidation result;
  if (config_.mode == "jwt") {
    result = co_await validate_jwt(std::move(token));
  } else {
    result = co_await introspect(std::move(token));
  }
  co_return result;
}

std::optional<TokenValidation> PscIssuerClient::screen(std::string_view token) const {
  auto refusal = screen_token(token, config_.token_format, config_.max_token_bytes);
  if (!refusal) return std::nullopt;
  metrics::gateway().token_refusals.with({*refusal}).inc();
  return TokenValidation::invalid(std::string(*refusal));
}

std::optional<TokenValidation> PscIssuerClient::refused_by_policy(
    const protocol::TokenClaims& claims) const {
  auto broken = check_token_policy(policy_, claims);
  if (!broken) return std::nullopt;
  metrics::gateway().token_refusals.with({*broken}).inc();
  return TokenValidation::refused(std::string(*broken), token_client(claims));
}

IssuerHealth PscIssuerClient::health() const {
  const protocol::HttpUrl& url = config_.mode == "jwt" ? jwks_ : introspection_;
  return IssuerHealth{url.host, url.port, last_answer_ms_.load(), last_failure_ms_.load()};
}

HttpRequest PscIssuerClient::request_to(const protocol::HttpUrl& url) const {
  HttpRequest request;
  request.url = url;
  request.headers = {{"Accept", "application/json"}};
  request.max_response_bytes = kMaxResponseBytes;
  request.timeout = config_.timeout;
  return request;
}

// The professional named by the claims, or an invalid verdict.
TokenValidation PscIssuerClient::from_claims(const protocol::TokenClaims& claims) const {
  auto subject = claims.strings.find(config_.subject_claim);
  if (subject == claims.strings.end()) return TokenValidation::invalid("no_subject");
  auto id = protocol::normalize_professional_id(subject->second);
  if (!id) return TokenValidation::invalid("subject_not_an_idnat");
  TokenValidation v;
  v.result = TokenValidation::Result::kValid;
  v.professional_id = *id;
  v.azp = claims.azp;
  v.expires_at = claims.exp.value_or(unix_seconds() + 60);
  v.reason = "ok";
  return v;
}

asio::awaitable<TokenValidation> PscIssuerClient::introspect(std::string token) {
  HttpRequest request = request_to(introspection_);
  request.method = HttpMethod::kPost;
  request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  if (!config_.client_secret.empty()) {
    request.headers.emplace_back(
        "Authorization", "Basic " + protocol::base64_encode(form_encode(config_.client_id) + ":" +
                                                            form_encode(config_.client_secret)));
  }
  request.body = "token=" + form_encode(token) + "&token_type_hint=access_token";
  if (config_.client_secret.empty()) request.body += "&client_id=" + form_encode(config_.client_id);
  IssuerAnswer response = co_await ask("introspection", std::move(request));
  if (!response.failure.empty()) co_return TokenValidation::unavailable(response.failure);
  if (response.status != 200)
    co_return TokenValidation::unavailable("issuer_status_" + std::to_string(response.status));
  auto claims = protocol::parse_token_claims(response.body);
  if (!claims || !claims->active) co_return TokenValidation::unavailable("issuer_answer_malformed");
  if (!*claims->active) co_return TokenValidation::invalid("inactive");
  if (claims->exp && *claims->exp <= unix_seconds()) co_return TokenValidation::invalid("expired");
  if (auto refusal = refused_by_policy(*claims)) co_return *refusal;
  co_return from_claims(*claims);
}

asio::awaitable<std::shared_ptr<const JwtKeySet>> PscIssuerClient::fetch_keys() {
  IssuerAnswer response = co_await ask("jwks", request_to(jwks_));
  if (!response.failure.empty() || response.status != 200) co_return nullptr;
  auto jwks = protocol::parse_jwks(response.body);
  if (!jwks) co_return nullptr;
  auto keys = std::make_shared<JwtKeySet>();
  if (keys->load(*jwks) == 0) co_return nullptr;
  co_return keys;
}

// The issuer's keys, loaded on first use; `refresh` asks for a new copy (a key id was unknown).
asio::awaitable<std::shared_ptr<const JwtKeySet>> PscIssuerClient::keys(bool refresh) {
  std::shared_ptr<const JwtKeySet> current;
  bool fetch = false;
  {
    std::lock_guard lock(keys_mutex_);
    current = keys_;
    // A refresh for an unknown key id happens at most once per jwks_min_refresh, whatever
    // its outcome; the first load does not count.
    bool refresh_due = refresh && Clock::now() - keys_refreshed_ >= config_.jwks_min_refresh;
    fetch = !current || refresh_due;
    if (refresh_due) keys_refreshed_ = Clock::now();
  }
  if (!fetch) co_return current;
  auto fresh = co_await fetch_keys();
  if (!fresh) {
    Event("jwks_refresh").add("result", "failed").warn();
    co_return current;
  }
  Event("jwks_refresh")
      .add("result", "ok")
      .add("keys", static_cast<uint64_t>(fresh->size()))
      .info();
  std::lock_guard lock(keys_mutex_);
  keys_ = fresh;
  co_return fresh;
}

asio::awaitable<TokenValidation> PscIssuerClient::validate_jwt(std::string token) {
  auto key_set = co_await keys(false);
  if (!key_set) co_return TokenValidation::unavailable("jwks_unavailable");
  JwtVerdict verdict = verify_jwt(token, *key_set, config_.issuer, unix_seconds());
  if (verdict.check == JwtCheck::kUnknownKey) {
    key_set = co_await keys(true);  // the issuer may have rotated its keys
    if (!key_set) co_return TokenValidation::unavailable("jwks_unavailable");
    verdict = verify_jwt(token, *key_set, config_.issuer, unix_seconds());
  }
  if (verdict.check != JwtCheck::kValid)
    co_return TokenValidation::invalid(std::string(describe(verdict.check)));
  // The signature is good: the policy is checked before anything more is asked.
  if (auto refusal = refused_by_policy(verdict.claims)) co_return *refusal;
  if (verdict.claims.strings.count(config_.subject_claim)) co_return from_claims(verdict.claims);
  // The identifier is not in the token: ask userinfo with the token itself.
  HttpRequest request = request_to(userinfo_);
  request.headers.emplace_back("Authorization", "Bearer " + token);
  IssuerAnswer response = co_await ask("userinfo", std::move(request));
  if (!response.failure.empty()) co_return TokenValidation::unavailable(response.failure);
  if (response.status == 401) co_return TokenValidation::invalid("userinfo_refused");
  if (response.status != 200)
    co_return TokenValidation::unavailable("issuer_status_" + std::to_string(response.status));
  auto info = protocol::parse_token_claims(response.body);
  if (!info) co_return TokenValidation::unavailable("issuer_answer_malformed");
  info->azp = verdict.claims.azp;
  info->exp = verdict.claims.exp;
  co_return from_claims(*info);
}

asio::awaitable<PscIssuerClient::IssuerAnswer> PscIssuerClient::ask(std::string_view endpoint,
                                                                    HttpRequest request) {
  auto start = Clock::now();
  auto admission = budget_->try_start(start);
  if (const auto* spent = std::get_if<IssuerBudget::Spent>(&admission)) {
    std::string_view limit = IssuerBudget::describe(*spent);
    metrics::gateway().issuer_budget_refusals.with({endpoint, limit}).inc();
    Event("issuer_budget_spent").add("endpoint", endpoint).add("limit", limit).warn();
    co_return IssuerAnswer{0, {}, "issuer_budget"};
  }
  // Held until the answer is read: a request in flight counts against the budget.
  IssuerBudget::Ticket ticket = std::get<IssuerBudget::Ticket>(std::move(admission));
  std::string target = request.url.target;
  HttpResponse response = co_await http_->send(std::move(request), tls_);
  ticket.release();
  if (response.failure != HttpFailure::kNone) {
    metrics::gateway().issuer_failures.with({endpoint}).inc();
    last_failure_ms_ = storage::now_ms();
    Event("issuer_request").add("url", target).add("result", "failed").warn();
    co_return IssuerAnswer{0, {}, "issuer_unreachable"};
  }
  auto duration = Clock::now() - start;
  metrics::gateway()
      .issuer_latency.with({endpoint})
      .observe(std::chrono::duration<double>(duration).count());
  last_answer_ms_ = storage::now_ms();
  Event("issuer_request")
      .add("url", target)
      .add("status", response.status)
      .add("duration_ms",
           static_cast<int64_t>(
               std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()))
      .debug();
  co_return IssuerAnswer{response.status, std::move(response.body), {}};
}

std::shared_ptr<TokenValidator> make_psc_token_validator(const config::PscConfig& config,
                                                         std::shared_ptr<HttpClient> http,
                                                         std::shared_ptr<IssuerBudget> budget) {
  TokenCachePolicy policy;
  policy.max_age = config.cache_max_age;
  policy.negative = config.negative_cache;
  // The call in flight has deadlines of its own; a validation waiting for it, a little longer.
  policy.waiter_timeout = 3 * config.timeout;
  return std::make_shared<TokenValidator>(
      std::make_shared<PscIssuerClient>(config, std::move(http), std::move(budget)), policy);
}

std::shared_ptr<IssuerBudget> psc_budget_for(const config::PscConfig& config,
                                             const GatewayEnvironment* running) {
  if (!config.enabled()) return nullptr;
  if (running && running->psc_budget && running->psc_budget->limits() == budget_limits(config))
    return running->psc_budget;
  return std::make_shared<IssuerBudget>(budget_limits(config));
}

std::shared_ptr<TokenValidator> psc_validator_for(const config::PscConfig& config,
                                                  const std::string& files_stamp,
                                                  const GatewayEnvironment* running,
                                                  std::shared_ptr<HttpClient> http,
                                                  std::shared_ptr<IssuerBudget> budget) {
  if (running && running->validator && running->config.psc == config &&
      running->psc_files_stamp == files_stamp) {
    return running->validator;
  }
  if (!config.enabled()) return nullptr;
  return make_psc_token_validator(config, std::move(http), std::move(budget));
}

}  // namespace mssgate::daemon
