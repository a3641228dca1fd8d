// When the memory freed by a burst of connections goes back to the system: the policy's
// bookkeeping, and the connection moments the io threads note.
#include "daemon/app/heap_return.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace mssgate::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = HeapReturnPolicy::Clock;

ConnectionChurn churn_of(uint64_t count, Clock::time_point last) {
  ConnectionChurn churn;
  churn.count = count;
  churn.last = last;
  return churn;
}

HeapReturnPolicy::Settings settings() {
  HeapReturnPolicy::Settings s;
  s.min_churn = 100;
  s.quiet = 1s;
  s.min_interval = 30s;
  return s;
}

TEST(HeapReturnPolicy, GivesBackOnlyOnceABurstIsOverAndQuiet) {
  HeapReturnPolicy policy(settings());
  auto t0 = Clock::now();
  // Too few moments, however quiet.
  EXPECT_FALSE(policy.due(churn_of(99, t0), t0 + 10s));
  // Enough, but the last one too recent.
  EXPECT_FALSE(policy.due(churn_of(100, t0), t0 + 999ms));
  EXPECT_TRUE(policy.due(churn_of(100, t0), t0 + 1s));
  EXPECT_EQ(policy.churn_since(churn_of(100, t0)), 100u);
}

TEST(HeapReturnPolicy, CountsTheMomentsSinceTheLastTimeAndWaitsItsInterval) {
  HeapReturnPolicy policy(settings());
  auto t0 = Clock::now();
  policy.returned(churn_of(150, t0), t0 + 2s);
  EXPECT_EQ(policy.churn_since(churn_of(150, t0)), 0u);
  // A second burst of 100 moments, quiet since t0 + 5 s.
  auto burst_end = t0 + 5s;
  EXPECT_FALSE(policy.due(churn_of(249, burst_end), t0 + 40s));  // 99 since the last time
  EXPECT_EQ(policy.churn_since(churn_of(250, burst_end)), 100u);
  // Quiet, but within the interval after the last time (t0 + 2 s).
  EXPECT_FALSE(policy.due(churn_of(250, burst_end), t0 + 31s));
  EXPECT_TRUE(policy.due(churn_of(250, burst_end), t0 + 32s));
}

TEST(ConnectionChurn, CountsTheMomentsOfEveryThreadAndTheLatest) {
  ConnectionChurn before = connection_churn();
  auto started = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([] {
      for (int i = 0; i < 1000; ++i)
        note_connection_churn();
    });
  for (auto& thread : threads)
    thread.join();
  ConnectionChurn after = connection_churn();
  EXPECT_EQ(after.count - before.count, 4000u);
  EXPECT_GE(after.last, started);
  EXPECT_LE(after.last, Clock::now());
}

}  // namespace
}  // namespace mssgate::daemon
