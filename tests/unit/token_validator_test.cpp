#include "daemon/services/token_validator.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

#include "daemon/telemetry/metrics.hpp"

using namespace mssgate;
using daemon::TokenCachePolicy;
using daemon::TokenValidation;
using daemon::TokenValidator;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TokenValidation answer(TokenValidation::Result result, int64_t expires_at = 0) {
  TokenValidation v;
  v.result = result;
  v.professional_id = result == TokenValidation::Result::kValid ? "810001234567" : "";
  v.reason = result == TokenValidation::Result::kValid ? "ok" : "scripted";
  v.expires_at = expires_at ? expires_at : unix_now() + 300;
  return v;
}

// An issuer that answers as the test says, after a delay, or only when released, or throws.
class ScriptedIssuer : public daemon::TokenIssuer {
 public:
  TokenValidation next = answer(TokenValidation::Result::kValid);
  std::chrono::milliseconds delay{0};
  bool hang = false;  // until release()
  bool fail = false;  // throws
  int calls = 0;

  asio::awaitable<TokenValidation> check(std::string) override {
    ++calls;
    if (fail) throw std::runtime_error("scripted issuer failure");
    if (hang || delay.count() > 0) {
      auto executor = co_await asio::this_coro::executor;
      gate_ = std::make_shared<asio::steady_timer>(executor);
      if (hang) {
        gate_->expires_at(Clock::time_point::max());
      } else {
        gate_->expires_after(delay);
      }
      auto gate = gate_;  // the frame keeps its timer
      co_await gate->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return next;
  }
  daemon::IssuerHealth health() const override { return {"issuer.test", "443", 0, 0}; }
  // Tokens starting with "garbage" are refused at sight.
  std::optional<TokenValidation> screen(std::string_view token) const override {
    if (token.starts_with("garbage")) return TokenValidation::invalid("malformed");
    return std::nullopt;
  }

  void release() {
    if (gate_) gate_->cancel();
  }

 private:
  std::shared_ptr<asio::steady_timer> gate_;
};

struct Fixture {
  explicit Fixture(TokenCachePolicy policy = {})
      : issuer(std::make_shared<ScriptedIssuer>()), validator(issuer, policy) {}

  TokenValidation validate(const std::string& token,
                           Clock::duration fresher_than = Clock::duration::max()) {
    std::optional<TokenValidation> result;
    asio::co_spawn(io, validator.validate(token, fresher_than),
                   [&](const std::exception_ptr& e, const TokenValidation& v) {
                     if (e) std::rethrow_exception(e);
                     result = v;
                   });
    io.restart();
    io.run();
    return *result;
  }
  void wait(std::chrono::milliseconds duration) {
    asio::steady_timer timer(io, duration);
    timer.async_wait([](auto) {});
    io.restart();
    io.run();
  }

  asio::io_context io;
  std::shared_ptr<ScriptedIssuer> issuer;
  TokenValidator validator;
};

uint64_t cache_count(const char* result) {
  return daemon::metrics::gateway().token_cache.with({result}).value();
}

}  // namespace

TEST(TokenValidator, CachesAValidTokenUntilItsCacheTimeEnds) {
  TokenCachePolicy policy;
  policy.max_age = 100ms;
  Fixture f(policy);
  uint64_t hits = cache_count("hit"), misses = cache_count("miss");
  EXPECT_EQ(f.validate("token-a").professional_id, "810001234567");
  EXPECT_EQ(f.validate("token-a").result, TokenValidation::Result::kValid);
  EXPECT_EQ(f.issuer->calls, 1);
  EXPECT_EQ(cache_count("hit") - hits, 1u);
  EXPECT_EQ(cache_count("miss") - misses, 1u);
  EXPECT_EQ(f.validate("token-b").result, TokenValidation::Result::kValid);
  EXPECT_EQ(f.issuer->calls, 2);
  f.wait(150ms);
  EXPECT_EQ(f.validate("token-a").result, TokenValidation::Result::kValid);
  EXPECT_EQ(f.issuer->calls, 3);
}

TEST(TokenValidator, ARecheckUsesOnlyAnAnswerFresherThanItAsks) {
  Fixture f;  // valid answers are kept 5 minutes
  f.validate("token");
  f.wait(60ms);
  f.validate("token", 1s);
  EXPECT_EQ(f.issuer->calls, 1) << "an answer 60 ms old is fresh enough for 1 s";
  f.issuer->next = answer(TokenValidation::Result::kInvalid);
  EXPECT_EQ(f.validate("token", 50ms).result, TokenValidation::Result::kInvalid);
  EXPECT_EQ(f.issuer->calls, 2) << "an answer older than 50 ms is not used";
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kInvalid)
      << "the fresh answer replaces the remembered one";
  EXPECT_EQ(f.issuer->calls, 2);
}

TEST(TokenValidator, DoesNotCacheATokenPastItsExp) {
  Fixture f;
  f.issuer->next = answer(TokenValidation::Result::kValid, unix_now() - 1);
  f.validate("token");
  f.validate("token");
  EXPECT_EQ(f.issuer->calls, 2);
}

// An exp centuries away, or at the end of int64: the cache time is the policy's, with no
// overflow converting the seconds left to the clock's nanoseconds.
TEST(TokenValidator, AnExpFarAwayIsCachedForTheCacheTimeOnly) {
  TokenCachePolicy policy;
  policy.max_age = 100ms;
  Fixture f(policy);
  f.issuer->next = answer(TokenValidation::Result::kValid, std::numeric_limits<int64_t>::max());
  f.validate("token");
  f.validate("token");
  EXPECT_EQ(f.issuer->calls, 1) << "cached";
  f.wait(150ms);
  f.validate("token");
  EXPECT_EQ(f.issuer->calls, 2) << "for max_age only";
  f.issuer->next = answer(TokenValidation::Result::kValid, unix_now() + 20'000'000'000);
  f.validate("token-b");
  f.validate("token-b");
  EXPECT_EQ(f.issuer->calls, 3) << "an exp 600 years away is cached too";
}

TEST(TokenValidator, RemembersARefusalForTheNegativeCacheTime) {
  TokenCachePolicy policy;
  policy.negative = 100ms;
  Fixture f(policy);
  f.issuer->next = answer(TokenValidation::Result::kInvalid);
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kInvalid);
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kInvalid);
  EXPECT_EQ(f.issuer->calls, 1);
  f.wait(150ms);
  f.validate("token");
  EXPECT_EQ(f.issuer->calls, 2);
}

TEST(TokenValidator, AsksAgainWhenTheIssuerWasUnavailable) {
  Fixture f;
  f.issuer->next = answer(TokenValidation::Result::kUnavailable);
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kUnavailable);
  f.issuer->next = answer(TokenValidation::Result::kValid);
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kValid);
  EXPECT_EQ(f.issuer->calls, 2);
}

TEST(TokenValidator, FiftyConcurrentValidationsOfOneTokenMakeOneIssuerCall) {
  Fixture f;
  f.issuer->delay = 50ms;
  uint64_t hits = cache_count("hit"), misses = cache_count("miss");
  std::vector<TokenValidation> results;
  for (int i = 0; i < 50; ++i) {
    asio::co_spawn(f.io, f.validator.validate("one token"),
                   [&](const std::exception_ptr& e, const TokenValidation& v) {
                     EXPECT_FALSE(e);
                     results.push_back(v);
                   });
  }
  f.io.run();
  ASSERT_EQ(results.size(), 50u);
  for (const auto& result : results)
    EXPECT_EQ(result.professional_id, "810001234567");
  EXPECT_EQ(f.issuer->calls, 1);
  EXPECT_EQ(cache_count("miss") - misses, 1u);
  EXPECT_EQ(cache_count("hit") - hits, 49u);
}

TEST(TokenValidator, AWaiterGivesUpAtItsDeadlineWhenTheIssuerHangs) {
  TokenCachePolicy policy;
  policy.waiter_timeout = 100ms;
  Fixture f(policy);
  f.issuer->hang = true;
  std::optional<TokenValidation> first, waiter;
  Clock::duration waited{};
  asio::co_spawn(f.io, f.validator.validate("token"),
                 [&](const std::exception_ptr&, const TokenValidation& v) { first = v; });
  auto start = Clock::now();
  asio::co_spawn(f.io, f.validator.validate("token"),
                 [&](const std::exception_ptr&, const TokenValidation& v) {
                   waiter = v;
                   waited = Clock::now() - start;
                   f.issuer->release();  // now the first validation may end too
                 });
  f.io.run();
  ASSERT_TRUE(waiter);
  EXPECT_EQ(waiter->result, TokenValidation::Result::kUnavailable);
  EXPECT_EQ(waiter->reason, "issuer_timeout");
  EXPECT_GE(waited, 95ms);
  EXPECT_LT(waited, 2s);
  ASSERT_TRUE(first);
  EXPECT_EQ(f.issuer->calls, 1);
}

TEST(TokenValidator, AnIssuerCallThatThrowsReleasesTheTokenInFlight) {
  Fixture f;
  f.issuer->fail = true;
  EXPECT_THROW(f.validate("token"), std::runtime_error);
  f.issuer->fail = false;
  // Not left waiting for the call that failed: asked again at once.
  auto start = Clock::now();
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kValid);
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(f.issuer->calls, 2);
}

TEST(TokenValidator, TellsTheIssuersHealth) {
  Fixture f;
  EXPECT_EQ(f.validator.issuer_health().host, "issuer.test");
}

TEST(TokenValidator, ATokenRefusedAtSightIsNeitherAskedAboutNorCached) {
  Fixture f;
  uint64_t hits = cache_count("hit"), misses = cache_count("miss");
  for (int i = 0; i < 3; ++i) {
    TokenValidation result = f.validate("garbage");
    EXPECT_EQ(result.result, TokenValidation::Result::kInvalid);
    EXPECT_EQ(result.reason, "malformed");
  }
  EXPECT_EQ(f.issuer->calls, 0);
  EXPECT_EQ(cache_count("hit") - hits, 0u);
  EXPECT_EQ(cache_count("miss") - misses, 0u);
}

TEST(TokenValidator, RemembersAPolicyRefusalForTheNegativeCacheTime) {
  TokenCachePolicy policy;
  policy.negative = 100ms;
  Fixture f(policy);
  f.issuer->next = TokenValidation::refused("client_not_allowed", "lps-other");
  TokenValidation first = f.validate("token");
  EXPECT_EQ(first.result, TokenValidation::Result::kRefused);
  EXPECT_EQ(first.azp, "lps-other");
  EXPECT_EQ(f.validate("token").reason, "client_not_allowed");
  EXPECT_EQ(f.issuer->calls, 1);
  f.wait(150ms);
  f.validate("token");
  EXPECT_EQ(f.issuer->calls, 2);
}

TEST(TokenValidator, ASupersededValidatorHandsEveryValidationToItsSuccessor) {
  Fixture f;
  EXPECT_EQ(f.validate("token").result, TokenValidation::Result::kValid);  // cached here
  auto next_issuer = std::make_shared<ScriptedIssuer>();
  next_issuer->next = TokenValidation::refused("client_not_allowed", "lps-other");
  auto next = std::make_shared<TokenValidator>(next_issuer, TokenCachePolicy{});
  f.validator.supersede(next);
  TokenValidation after = f.validate("token");
  EXPECT_EQ(after.result, TokenValidation::Result::kRefused) << "not the old cache's answer";
  EXPECT_EQ(f.issuer->calls, 1);
  EXPECT_EQ(next_issuer->calls, 1);
  EXPECT_EQ(f.validate("garbage").reason, "malformed") << "the successor screens too";
  EXPECT_EQ(next_issuer->calls, 1);
}
