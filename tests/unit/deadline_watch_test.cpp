#include "daemon/net/deadline_watch.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

#include "daemon/telemetry/metrics.hpp"

namespace {

namespace asio = boost::asio;
using mssgate::daemon::DeadlineWatch;
using Slot = DeadlineWatch::Slot;
using namespace std::chrono_literals;

TEST(DeadlineWatch, APassedDeadlineIsToldOnceWithinATick) {
  asio::io_context io;
  DeadlineWatch watch(io.get_executor());
  std::vector<Slot> told;
  auto start = DeadlineWatch::Clock::now();
  DeadlineWatch::Clock::duration told_after{};
  watch.start(20ms, [&](Slot slot) {
    told.push_back(slot);
    told_after = DeadlineWatch::Clock::now() - start;
    return true;
  });
  watch.arm(Slot::kBackendWrite, 50ms);
  io.run_for(300ms);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0], Slot::kBackendWrite);
  EXPECT_GE(told_after, 50ms);
}

TEST(DeadlineWatch, ADisarmedDeadlineIsNeverTold) {
  asio::io_context io;
  DeadlineWatch watch(io.get_executor());
  int told = 0;
  watch.start(10ms, [&](Slot) { return ++told, true; });
  watch.arm(Slot::kClientRead, 30ms);
  watch.disarm(Slot::kClientRead);
  io.run_for(150ms);
  EXPECT_EQ(told, 0);
}

TEST(DeadlineWatch, TheOwnerIsHeldUntilTheWatchStops) {
  asio::io_context io;
  DeadlineWatch watch(io.get_executor());
  auto owner = std::make_shared<int>(1);
  std::weak_ptr<int> watched = owner;
  watch.start(
      1h, [](Slot) { return true; }, {}, std::move(owner));
  io.run_for(20ms);
  EXPECT_FALSE(watched.expired());
  watch.stop();
  io.restart();
  io.run();  // returns once the timer's last operation has ended
  EXPECT_TRUE(watched.expired());
}

TEST(DeadlineWatch, ReturningFalseEndsTheWatchAndLetsTheOwnerGo) {
  asio::io_context io;
  DeadlineWatch watch(io.get_executor());
  auto owner = std::make_shared<int>(1);
  std::weak_ptr<int> watched = owner;
  int told = 0;
  watch.start(
      10ms, [&](Slot) { return ++told, false; }, {}, std::move(owner));
  watch.arm(Slot::kClientRead, 0ms);
  watch.arm(Slot::kClientWrite, 0ms);
  io.run();
  EXPECT_EQ(told, 1);  // the watch ended at the first
  EXPECT_TRUE(watched.expired());
}

TEST(DeadlineWatch, AThrowIsReportedAndEndsTheWatchThroughItsFailureAction) {
  auto& failed = mssgate::daemon::metrics::gateway().tasks_failed.with({"deadline_watch"});
  uint64_t failed_before = failed.value();
  asio::io_context io;
  DeadlineWatch watch(io.get_executor());
  auto owner = std::make_shared<int>(1);
  std::weak_ptr<int> watched = owner;
  bool failure_action = false;
  watch.start(
      10ms, [](Slot) -> bool { throw std::runtime_error("broken"); },
      [&] { failure_action = true; }, std::move(owner));
  watch.arm(Slot::kSession, 0ms);
  io.run();
  EXPECT_TRUE(failure_action);
  EXPECT_EQ(failed.value(), failed_before + 1);
  EXPECT_TRUE(watched.expired());
}

}  // namespace
