#include "daemon/services/token_validator.hpp"

#include <openssl/evp.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <unordered_map>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "daemon/net/resolve.hpp"
#include "protocol/ascii.hpp"
#include "protocol/base64.hpp"
#include "protocol/http_url.hpp"
#include "protocol/jwt.hpp"
#include "protocol/professional_id.hpp"
#include "storage/indicator_journal.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxResponseBytes = 1 << 20;
constexpr size_t kMaxCacheEntries = 100000;
constexpr size_t kMaxIdleConnections = 4;

using Stream = beast::ssl_stream<beast::tcp_stream>;

using HttpsUrl = protocol::HttpUrl;

// Pro Santé Connect is only ever asked over TLS.
std::optional<HttpsUrl> parse_https_url(std::string_view url) {
  auto parsed = protocol::parse_http_url(url);
  if (!parsed || !parsed->tls) return std::nullopt;
  return parsed;
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

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return protocol::hex_lower({reinterpret_cast<const char*>(digest), size});
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

}  // namespace

class TokenValidator::Impl {
 public:
  explicit Impl(const config::PscConfig& config) : config_(config), tls_(ssl::context::tls_client) {
    tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls_.set_verify_mode(ssl::verify_peer);
    if (config.ca_file.empty()) {
      tls_.set_default_verify_paths();
    } else {
      tls_.load_verify_file(config.ca_file);
    }
    if (!config.client_certificate.empty()) {
      tls_.use_certificate_chain_file(config.client_certificate);
      tls_.use_private_key_file(config.client_key, ssl::context::pem);
    }
    introspection_ = parse_https_url(config.introspection_url).value_or(HttpsUrl{});
    jwks_ = parse_https_url(config.jwks_url).value_or(HttpsUrl{});
    userinfo_ = parse_https_url(config.userinfo_url).value_or(HttpsUrl{});
  }

  asio::awaitable<TokenValidation> validate(std::string token) {
    std::string key = sha256_hex(token);
    auto executor = co_await asio::this_coro::executor;
    std::shared_ptr<InFlight> flight;
    std::shared_ptr<asio::steady_timer> wake;
    {
      std::lock_guard lock(mutex_);
      auto cached = cache_.find(key);
      if (cached != cache_.end() && Clock::now() < cached->second.until) {
        metrics::gateway().token_cache.with({"hit"}).inc();
        co_return cached->second.validation;
      }
      auto running = in_flight_.find(key);
      if (running != in_flight_.end()) {
        flight = running->second;
        // The first validation has deadlines of its own; this one waits a little longer.
        wake = std::make_shared<asio::steady_timer>(executor, Clock::now() + 3 * config_.timeout);
        flight->waiters.emplace_back(executor, wake);
      } else {
        flight = std::make_shared<InFlight>();
        in_flight_[key] = flight;
      }
    }
    if (wake) {
      co_await wake->async_wait(kTuple);
      std::lock_guard lock(mutex_);
      if (!flight->done) co_return unavailable("issuer_timeout");
      metrics::gateway().token_cache.with({"hit"}).inc();
      co_return flight->result;
    }
    metrics::gateway().token_cache.with({"miss"}).inc();
    // Whatever happens below, the waiters are woken and the token is no longer in flight.
    FlightEnd end{this, key, flight};
    // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
    TokenValidation result;
    if (config_.mode == "jwt") {
      result = co_await validate_jwt(token);
    } else {
      result = co_await introspect(token);
    }
    end.finish(result);
    co_return result;
  }

  void close_connections() {
    std::lock_guard lock(pool_mutex_);
    idle_.clear();
  }

 private:
  struct InFlight {
    TokenValidation result;
    bool done = false;
    std::vector<std::pair<asio::any_io_executor, std::shared_ptr<asio::steady_timer>>> waiters;
  };

  // Ends a validation in flight: finish() keeps the result (cached and given to the waiters)
  // and wakes the waiters. Left without a result (an exception, or the io context going away),
  // the token is no longer in flight, and its waiters give up at their own deadline.
  struct FlightEnd {
    Impl* impl;
    std::string key;
    std::shared_ptr<InFlight> flight;
    bool finished = false;

    void finish(const TokenValidation& result) {
      finished = true;
      std::vector<std::pair<asio::any_io_executor, std::shared_ptr<asio::steady_timer>>> waiters;
      {
        std::lock_guard lock(impl->mutex_);
        impl->remember(key, result);
        flight->result = result;
        flight->done = true;
        waiters.swap(flight->waiters);
        impl->in_flight_.erase(key);
      }
      for (auto& [waiter_executor, timer] : waiters)
        asio::post(waiter_executor, [timer] { timer->cancel(); });
    }
    ~FlightEnd() {
      if (finished) return;
      std::lock_guard lock(impl->mutex_);
      auto it = impl->in_flight_.find(key);
      if (it != impl->in_flight_.end() && it->second == flight) impl->in_flight_.erase(it);
    }
  };
  struct CacheEntry {
    TokenValidation validation;
    Clock::time_point until;
  };

  void remember(const std::string& key, const TokenValidation& result) {
    Clock::duration lifetime{};
    if (result.result == TokenValidation::Result::kValid) {
      auto seconds_left =
          std::chrono::seconds(std::max<int64_t>(0, result.expires_at - unix_now()));
      lifetime = std::min<Clock::duration>(seconds_left, config_.cache_max_age);
    } else if (result.result == TokenValidation::Result::kInvalid) {
      lifetime = config_.negative_cache;
    }
    if (lifetime <= Clock::duration::zero()) return;  // an unavailable issuer is asked again
    if (cache_.size() >= kMaxCacheEntries) {
      auto now = Clock::now();
      std::erase_if(cache_, [&](const auto& entry) { return entry.second.until <= now; });
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    }
    cache_[key] = {result, Clock::now() + lifetime};
  }

  static TokenValidation unavailable(std::string reason) {
    TokenValidation v;
    v.result = TokenValidation::Result::kUnavailable;
    v.reason = std::move(reason);
    return v;
  }
  static TokenValidation invalid(std::string reason) {
    TokenValidation v;
    v.result = TokenValidation::Result::kInvalid;
    v.reason = std::move(reason);
    return v;
  }

  // The professional named by the claims, or an invalid verdict.
  TokenValidation from_claims(const protocol::TokenClaims& claims) const {
    auto subject = claims.strings.find(config_.subject_claim);
    if (subject == claims.strings.end()) return invalid("no_subject");
    auto id = protocol::normalize_professional_id(subject->second);
    if (!id) return invalid("subject_not_an_idnat");
    TokenValidation v;
    v.result = TokenValidation::Result::kValid;
    v.professional_id = *id;
    v.azp = claims.azp;
    v.expires_at = claims.exp.value_or(unix_now() + 60);
    v.reason = "ok";
    return v;
  }

  asio::awaitable<TokenValidation> introspect(const std::string& token) {
    std::string authorization;
    if (!config_.client_secret.empty()) {
      authorization = "Basic " + protocol::base64_encode(form_encode(config_.client_id) + ":" +
                                                         form_encode(config_.client_secret));
    }
    std::string body = "token=" + form_encode(token) + "&token_type_hint=access_token";
    if (config_.client_secret.empty()) body += "&client_id=" + form_encode(config_.client_id);
    auto response = co_await request(http::verb::post, introspection_, body,
                                     "application/x-www-form-urlencoded", authorization);
    if (!response) co_return unavailable("issuer_unreachable");
    if (response->status != 200)
      co_return unavailable("issuer_status_" + std::to_string(response->status));
    auto claims = protocol::parse_token_claims(response->body);
    if (!claims || !claims->active) co_return unavailable("issuer_answer_malformed");
    if (!*claims->active) co_return invalid("inactive");
    if (claims->exp && *claims->exp <= unix_now()) co_return invalid("expired");
    co_return from_claims(*claims);
  }

  asio::awaitable<std::shared_ptr<const JwtKeySet>> fetch_keys() {
    auto response = co_await request(http::verb::get, jwks_, "", "", "");
    if (!response || response->status != 200) co_return nullptr;
    auto jwks = protocol::parse_jwks(response->body);
    if (!jwks) co_return nullptr;
    auto keys = std::make_shared<JwtKeySet>();
    if (keys->load(*jwks) == 0) co_return nullptr;
    co_return keys;
  }

  // The issuer's keys, loaded on first use; `refresh` asks for a new copy (a key id was unknown).
  asio::awaitable<std::shared_ptr<const JwtKeySet>> keys(bool refresh) {
    std::shared_ptr<const JwtKeySet> current;
    bool fetch = false;
    {
      std::lock_guard lock(mutex_);
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
    std::lock_guard lock(mutex_);
    keys_ = fresh;
    co_return fresh;
  }

  asio::awaitable<TokenValidation> validate_jwt(const std::string& token) {
    auto key_set = co_await keys(false);
    if (!key_set) co_return unavailable("jwks_unavailable");
    JwtVerdict verdict = verify_jwt(token, *key_set, config_.issuer, unix_now());
    if (verdict.check == JwtCheck::kUnknownKey) {
      key_set = co_await keys(true);  // the issuer may have rotated its keys
      if (!key_set) co_return unavailable("jwks_unavailable");
      verdict = verify_jwt(token, *key_set, config_.issuer, unix_now());
    }
    if (verdict.check != JwtCheck::kValid) co_return invalid(std::string(describe(verdict.check)));
    if (verdict.claims.strings.count(config_.subject_claim)) co_return from_claims(verdict.claims);
    // The identifier is not in the token: ask userinfo with the token itself.
    auto response = co_await request(http::verb::get, userinfo_, "", "", "Bearer " + token);
    if (!response) co_return unavailable("issuer_unreachable");
    if (response->status == 401) co_return invalid("userinfo_refused");
    if (response->status != 200)
      co_return unavailable("issuer_status_" + std::to_string(response->status));
    auto info = protocol::parse_token_claims(response->body);
    if (!info) co_return unavailable("issuer_answer_malformed");
    info->azp = verdict.claims.azp;
    info->exp = verdict.claims.exp;
    co_return from_claims(*info);
  }

  // ---- HTTPS with kept connections --------------------------------------------------------
  using IdleKey = std::pair<const void*, std::string>;  // (io context, host:port)

  asio::awaitable<std::unique_ptr<Stream>> connect(const HttpsUrl& url,
                                                   Clock::time_point deadline) {
    auto executor = co_await asio::this_coro::executor;
    auto [rec, endpoints] = co_await resolve_before(url.host, url.port, deadline);
    if (rec) co_return nullptr;
    auto stream = std::make_unique<Stream>(executor, tls_);
    if (!SSL_set_tlsext_host_name(stream->native_handle(), url.host.c_str())) co_return nullptr;
    stream->set_verify_callback(ssl::host_name_verification(url.host));
    beast::get_lowest_layer(*stream).expires_at(deadline);
    auto [cec, endpoint] =
        co_await beast::get_lowest_layer(*stream).async_connect(endpoints, kTuple);
    if (cec) co_return nullptr;
    error_code ignored;
    beast::get_lowest_layer(*stream).socket().set_option(tcp::no_delay(true), ignored);
    auto [hec] = co_await stream->async_handshake(ssl::stream_base::client, kTuple);
    if (hec) co_return nullptr;
    co_return stream;
  }

  asio::awaitable<std::optional<HttpResponse>> request(http::verb verb, const HttpsUrl& url,
                                                       std::string body, std::string content_type,
                                                       std::string authorization) {
    auto executor = co_await asio::this_coro::executor;
    IdleKey key{&asio::query(executor, asio::execution::context), url.host + ":" + url.port};
    auto deadline = Clock::now() + config_.timeout;
    auto start = Clock::now();
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<Stream> stream = take_idle(key);
      bool reused = stream != nullptr;
      if (!stream) stream = co_await connect(url, deadline);
      if (!stream) break;
      http::request<http::string_body> req{verb, url.target, 11};
      req.set(http::field::host, url.host);
      req.set(http::field::user_agent, "mssgate");
      req.set(http::field::accept, "application/json");
      req.keep_alive(true);
      if (!authorization.empty()) req.set(http::field::authorization, authorization);
      if (!content_type.empty()) req.set(http::field::content_type, content_type);
      req.body() = body;
      req.prepare_payload();
      beast::get_lowest_layer(*stream).expires_at(deadline);
      auto [wec, written] = co_await http::async_write(*stream, req, kTuple);
      http::response_parser<http::string_body> parser;
      parser.body_limit(kMaxResponseBytes);
      beast::flat_buffer buffer;
      error_code rec;
      if (!wec)
        std::tie(rec, std::ignore) = co_await http::async_read(*stream, buffer, parser, kTuple);
      if (wec || rec) {
        // A kept connection the issuer closed meanwhile: once more on a new one.
        if (reused && Clock::now() < deadline) continue;
        break;
      }
      auto& res = parser.get();
      if (res.keep_alive()) give_back(key, std::move(stream));
      metrics::gateway()
          .issuer_latency.with({endpoint_name(url)})
          .observe(std::chrono::duration<double>(Clock::now() - start).count());
      last_issuer_answer_ms_ = storage::now_ms();
      Event("issuer_request")
          .add("url", url.target)
          .add("status", res.result_int())
          .add("duration_ms",
               static_cast<int64_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                       .count()))
          .debug();
      co_return HttpResponse{res.result_int(), std::move(res.body())};
    }
    metrics::gateway().issuer_failures.with({endpoint_name(url)}).inc();
    last_issuer_failure_ms_ = storage::now_ms();
    Event("issuer_request").add("url", url.target).add("result", "failed").warn();
    co_return std::nullopt;
  }

  using error_code = boost::system::error_code;

  std::string_view endpoint_name(const HttpsUrl& url) const {
    if (&url == &introspection_) return "introspection";
    if (&url == &jwks_) return "jwks";
    if (&url == &userinfo_) return "userinfo";
    return "other";
  }

 public:
  // Read by TokenValidator's accessors (readiness and metrics).
  std::pair<std::string, std::string> issuer_address() const {
    const HttpsUrl& url = config_.mode == "jwt" ? jwks_ : introspection_;
    return {url.host, url.port};
  }
  std::atomic<int64_t> last_issuer_answer_ms_{0};
  std::atomic<int64_t> last_issuer_failure_ms_{0};

 private:
  std::unique_ptr<Stream> take_idle(const IdleKey& key) {
    std::lock_guard lock(pool_mutex_);
    auto it = idle_.find(key);
    if (it == idle_.end() || it->second.empty()) return nullptr;
    auto stream = std::move(it->second.back());
    it->second.pop_back();
    return stream;
  }

  void give_back(const IdleKey& key, std::unique_ptr<Stream> stream) {
    std::lock_guard lock(pool_mutex_);
    auto& list = idle_[key];
    if (list.size() < kMaxIdleConnections) {
      beast::get_lowest_layer(*stream).expires_never();
      list.push_back(std::move(stream));
    }
  }

  const config::PscConfig config_;  // a copy: the validator outlives the snapshot it came with
  ssl::context tls_;
  HttpsUrl introspection_, jwks_, userinfo_;
  std::mutex mutex_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, std::shared_ptr<InFlight>> in_flight_;
  std::shared_ptr<const JwtKeySet> keys_;
  Clock::time_point keys_refreshed_{};
  std::mutex pool_mutex_;
  std::map<IdleKey, std::vector<std::unique_ptr<Stream>>> idle_;
};

TokenValidator::TokenValidator(const config::PscConfig& config)
    : impl_(std::make_unique<Impl>(config)) {}
TokenValidator::~TokenValidator() = default;

asio::awaitable<TokenValidation> TokenValidator::validate(std::string token) {
  TokenValidation result = co_await impl_->validate(std::move(token));
  co_return result;
}

void TokenValidator::close_connections() {
  impl_->close_connections();
}

int64_t TokenValidator::last_issuer_answer_ms() const {
  return impl_->last_issuer_answer_ms_.load();
}

int64_t TokenValidator::last_issuer_failure_ms() const {
  return impl_->last_issuer_failure_ms_.load();
}

std::pair<std::string, std::string> TokenValidator::issuer_address() const {
  return impl_->issuer_address();
}

}  // namespace mssgate::daemon
