#include "daemon/app/session_reviewer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "daemon/net/spawn.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
constexpr auto kReviewInterval = std::chrono::seconds(1);

}  // namespace

SessionReviewer::SessionReviewer(asio::io_context& context, EnvironmentSource environment,
                                 std::shared_ptr<GatewayCounters> counters)
    : context_(context),
      environment_(std::move(environment)),
      counters_(std::move(counters)),
      timer_(context) {}

void SessionReviewer::start() {
  // A review that throws is logged and the reviews go on.
  spawn_task(context_.get_executor(), loop(), "session_review", [this] {
    if (!stopped_) start();
  });
}

void SessionReviewer::stop() {
  stopped_ = true;
  timer_.cancel();
}

asio::awaitable<void> SessionReviewer::loop() {
  while (!stopped_) {
    timer_.expires_after(kReviewInterval);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopped_) co_return;
    review_once();
  }
}

void SessionReviewer::review_once() {
  auto environment = environment_();
  std::shared_ptr<const storage::DirectorySnapshot> snapshot;
  if (environment->directory) snapshot = environment->directory->snapshot();
  bool changed = environment != last_environment_ || snapshot != last_snapshot_;
  last_environment_ = environment;
  last_snapshot_ = snapshot;

  const auto& psc = environment->config.psc;
  ReviewRules rules{environment->config.auth, {}, {}};
  if (psc.enabled()) {
    rules.max_token_session_age = psc.max_session_age;
    rules.token_recheck_interval = psc.token_recheck_interval;
  }
  auto& registry = counters_->authorized;
  auto review = registry.review(rules, changed ? snapshot.get() : nullptr,
                                std::chrono::steady_clock::now(), unix_seconds());
  for (auto& withdrawal : review.withdrawals)
    withdrawal.end(withdrawal.reason);
  for (auto& check : review.token_checks) {
    if (!environment->validator) {
      registry.token_checked(check.key, TokenValidation::unavailable("no_validator"),
                             std::chrono::steady_clock::now());
      continue;
    }
    // An answer the validator got within half an interval is fresh enough: sessions sharing a
    // token share its checks, and a revoked token is seen within one and a half intervals.
    spawn_task(context_.get_executor(),
               recheck(environment->validator, std::move(check), psc.token_recheck_interval / 2),
               "token_recheck");
  }
}

asio::awaitable<void> SessionReviewer::recheck(std::shared_ptr<TokenValidator> validator,
                                               SessionRegistry::TokenCheck check,
                                               std::chrono::steady_clock::duration fresher_than) {
  auto& registry = counters_->authorized;
  TokenValidation answer = TokenValidation::unavailable("recheck_failed");
  try {
    answer = co_await validator->validate(std::move(check.token), fresher_than);
  } catch (...) {
    // Logged by spawn_task; the session is checked again at the next interval.
    registry.token_checked(check.key, answer, std::chrono::steady_clock::now());
    throw;
  }
  auto withdrawal =
      counters_->authorized.token_checked(check.key, answer, std::chrono::steady_clock::now());
  if (withdrawal) withdrawal->end(withdrawal->reason);
}

}  // namespace mssgate::daemon
