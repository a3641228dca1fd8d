#include "daemon/services/token_validator.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/telemetry/metrics.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return protocol::hex_lower({reinterpret_cast<const char*>(digest), size});
}

}  // namespace

class TokenValidator::Impl {
 public:
  Impl(std::shared_ptr<TokenIssuer> issuer, TokenCachePolicy policy)
      : issuer_(std::move(issuer)), policy_(policy) {}

  asio::awaitable<TokenValidation> validate(std::string token, Clock::duration fresher_than) {
    if (auto refusal = issuer_->screen(token)) co_return *refusal;
    std::string key = sha256_hex(token);
    auto executor = co_await asio::this_coro::executor;
    std::shared_ptr<InFlight> flight;
    std::shared_ptr<asio::steady_timer> wake;
    {
      std::lock_guard lock(mutex_);
      if (auto cached = cached_answer(key, fresher_than)) {
        metrics::gateway().token_cache.with({"hit"}).inc();
        co_return *cached;
      }
      auto running = in_flight_.find(key);
      if (running != in_flight_.end()) {
        flight = running->second;
        wake =
            std::make_shared<asio::steady_timer>(executor, Clock::now() + policy_.waiter_timeout);
        flight->waiters.emplace_back(executor, wake);
      } else {
        flight = std::make_shared<InFlight>();
        in_flight_[key] = flight;
      }
    }
    if (wake) {
      TokenValidation shared = co_await wait_for(*flight, *wake);
      co_return shared;
    }
    metrics::gateway().token_cache.with({"miss"}).inc();
    // Whatever happens below, the waiters are woken and the token is no longer in flight.
    FlightEnd end{this, key, flight};
    TokenValidation result = co_await issuer_->check(std::move(token));
    end.finish(result);
    co_return result;
  }

  IssuerHealth issuer_health() const { return issuer_->health(); }

 private:
  using Waiter = std::pair<asio::any_io_executor, std::shared_ptr<asio::steady_timer>>;

  struct InFlight {
    TokenValidation result;
    bool done = false;
    std::vector<Waiter> waiters;
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
      std::vector<Waiter> waiters;
      {
        std::lock_guard lock(impl->mutex_);
        impl->remember(key, result);
        flight->result = result;
        flight->done = true;
        waiters.swap(flight->waiters);
        impl->in_flight_.erase(key);
      }
      // The timer copied by an init-capture: clang 14 cannot capture a structured binding.
      for (auto& [waiter_executor, timer] : waiters)
        asio::post(waiter_executor, [timer = timer] { timer->cancel(); });
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
    Clock::time_point stored_at;
  };

  // The answer of the validation in flight, or unavailable once `wake` expires first.
  asio::awaitable<TokenValidation> wait_for(const InFlight& flight, asio::steady_timer& wake) {
    co_await wake.async_wait(kTuple);
    std::lock_guard lock(mutex_);
    if (!flight.done) co_return TokenValidation::unavailable("issuer_timeout");
    metrics::gateway().token_cache.with({"hit"}).inc();
    co_return flight.result;
  }

  // Under mutex_.
  std::optional<TokenValidation> cached_answer(const std::string& key,
                                               Clock::duration fresher_than) const {
    auto cached = cache_.find(key);
    auto now = Clock::now();
    if (cached == cache_.end() || now >= cached->second.until) return std::nullopt;
    if (now - cached->second.stored_at > fresher_than) return std::nullopt;
    return cached->second.validation;
  }

  // Under mutex_.
  void remember(const std::string& key, const TokenValidation& result) {
    Clock::duration lifetime{};
    if (result.result == TokenValidation::Result::kValid) {
      // In seconds, capped by max_age before it becomes the clock's duration: an exp centuries
      // away (or at the end of int64) overflows neither the subtraction nor the conversion.
      int64_t now = unix_seconds();
      int64_t left = result.expires_at > now ? result.expires_at - now : 0;
      auto max_age = std::chrono::ceil<std::chrono::seconds>(policy_.max_age).count();
      lifetime = left >= max_age ? Clock::duration(policy_.max_age)
                                 : Clock::duration(std::chrono::seconds(left));
    } else if (result.result == TokenValidation::Result::kInvalid ||
               result.result == TokenValidation::Result::kRefused) {
      lifetime = policy_.negative;
    }
    if (lifetime <= Clock::duration::zero()) return;  // an unavailable issuer is asked again
    if (cache_.size() >= policy_.max_entries) {
      auto now = Clock::now();
      std::erase_if(cache_, [&](const auto& entry) { return entry.second.until <= now; });
      if (cache_.size() >= policy_.max_entries) cache_.clear();
    }
    auto now = Clock::now();
    cache_[key] = {result, now + lifetime, now};
  }

  const std::shared_ptr<TokenIssuer> issuer_;
  const TokenCachePolicy policy_;
  std::mutex mutex_;
  std::unordered_map<std::string, CacheEntry> cache_;  // by SHA-256 of the token
  std::unordered_map<std::string, std::shared_ptr<InFlight>> in_flight_;
};

TokenValidator::TokenValidator(std::shared_ptr<TokenIssuer> issuer, TokenCachePolicy policy)
    : impl_(std::make_unique<Impl>(std::move(issuer), policy)) {}
TokenValidator::~TokenValidator() = default;

asio::awaitable<TokenValidation> TokenValidator::validate(std::string token,
                                                          Clock::duration fresher_than) {
  std::shared_ptr<TokenValidator> next = successor();
  if (next) {
    TokenValidation forwarded = co_await next->validate(std::move(token), fresher_than);
    co_return forwarded;
  }
  TokenValidation result = co_await impl_->validate(std::move(token), fresher_than);
  co_return result;
}

void TokenValidator::supersede(std::shared_ptr<TokenValidator> next) {
  if (next.get() == this) return;
  std::lock_guard lock(successor_mutex_);
  successor_ = std::move(next);
}

std::shared_ptr<TokenValidator> TokenValidator::successor() const {
  std::lock_guard lock(successor_mutex_);
  return successor_;
}

IssuerHealth TokenValidator::issuer_health() const {
  return impl_->issuer_health();
}

}  // namespace mssgate::daemon
