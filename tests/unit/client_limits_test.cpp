// The per-address limits, on a clock the tests move.
#include "daemon/services/client_limits.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace mssgate::daemon {
namespace {

using namespace std::chrono_literals;
using Admission = ClientLimits::Admission;
using Kind = ClientLimits::Kind;

constexpr ClientAddress kA = {0x7f000002, false};  // 127.0.0.2
constexpr ClientAddress kB = {0x7f000003, false};

config::LimitsConfig limits() {
  config::LimitsConfig l;
  l.max_connections_per_address = 3;
  l.connection_rate_per_address = 5;
  l.failed_sign_in_rate_per_address = 4;
  l.logged_events_per_address = 2;
  l.failure_delay = 500ms;
  l.max_failure_delay = 4s;
  l.rate_time_unit = 60s;
  l.tracked_addresses = 100;
  return l;
}

struct LimitsTest : testing::Test {
  ClientLimits limits_;
  config::LimitsConfig config_ = limits();
  ClientLimits::Clock::time_point now_{std::chrono::hours(1000)};
  bool tracked_ = false;

  Admission admit(const ClientAddress& address, bool exempt = false) {
    return limits_.admit(address, exempt, now_, config_, tracked_);
  }
};

TEST(ClientAddressTest, TextOfAnIpv4AddressAndAnIpv6Network) {
  EXPECT_EQ(ClientAddress::ipv4(0xc0000207).text(), "192.0.2.7");
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02,
                             0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11};
  EXPECT_EQ(ClientAddress::ipv6(v6).text(), "2001:db8:1:2::/64");
  // The host part is not part of the key: two hosts of one /64 are one client.
  auto other = v6;
  other[15] = 0x99;
  EXPECT_EQ(ClientAddress::ipv6(v6), ClientAddress::ipv6(other));
  EXPECT_FALSE(ClientAddress::ipv6(v6) == ClientAddress::ipv4(0x20010db8));
}

TEST_F(LimitsTest, ConnectionsOpenAtOnceAreCappedPerAddress) {
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(admit(kA), Admission::kAdmitted);
  EXPECT_TRUE(tracked_);
  EXPECT_EQ(admit(kA), Admission::kTooManyOpen);
  EXPECT_EQ(admit(kB), Admission::kAdmitted);  // another address is not concerned
  limits_.release(kA);
  EXPECT_EQ(admit(kA), Admission::kAdmitted);
}

TEST_F(LimitsTest, ConnectionsPerTimeUnitAreCappedPerAddress) {
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(admit(kA), Admission::kAdmitted) << i;
    limits_.release(kA);
    now_ += 1s;
  }
  EXPECT_EQ(admit(kA), Admission::kTooManyPerTimeUnit);
  EXPECT_EQ(admit(kB), Admission::kAdmitted);
  // The time unit started with the first connection: 60 s after it, the count starts again.
  now_ += 55s;
  EXPECT_EQ(admit(kA), Admission::kAdmitted);
}

TEST_F(LimitsTest, ExemptAddressesAreNotCapped) {
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(admit(kA, true), Admission::kAdmitted);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(limits_.failed_sign_in(kA, true, now_, config_), 0s);
  EXPECT_TRUE(limits_.sign_in_allowed(kA, true, now_, config_));
}

TEST_F(LimitsTest, FailedSignInsPerTimeUnitAreCappedPerAddress) {
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(limits_.sign_in_allowed(kA, false, now_, config_)) << i;
    limits_.failed_sign_in(kA, false, now_, config_);
  }
  EXPECT_FALSE(limits_.sign_in_allowed(kA, false, now_, config_));
  EXPECT_TRUE(limits_.sign_in_allowed(kB, false, now_, config_));
  now_ += 60s;
  EXPECT_TRUE(limits_.sign_in_allowed(kA, false, now_, config_));
}

TEST_F(LimitsTest, TheDelayAfterAFailedSignInGrowsAndIsCapped) {
  std::vector<ClientLimits::Clock::duration> delays;
  delays.reserve(7);
  for (int i = 0; i < 7; ++i)
    delays.push_back(limits_.failed_sign_in(kA, false, now_, config_));
  std::vector<ClientLimits::Clock::duration> expected{0s, 500ms, 1s, 2s, 4s, 4s, 4s};
  EXPECT_EQ(delays, expected);
  // Another address starts at no delay; a new time unit too.
  EXPECT_EQ(limits_.failed_sign_in(kB, false, now_, config_), 0s);
  now_ += 61s;
  EXPECT_EQ(limits_.failed_sign_in(kA, false, now_, config_), 0s);
  config_.failure_delay = 0ms;
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(limits_.failed_sign_in(kA, false, now_, config_), 0s);
}

TEST_F(LimitsTest, EventsBeyondTheRateAreCountedAndSummedUpWhenTheTimeUnitEnds) {
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(limits_.write_in_full(kA, Kind::kFailedSignIn, now_, config_), i < 2) << i;
  EXPECT_TRUE(limits_.write_in_full(kB, Kind::kFailedSignIn, now_, config_));
  EXPECT_TRUE(limits_.write_in_full(kA, Kind::kRefusedConnection, now_, config_));
  now_ += 59s;
  EXPECT_TRUE(limits_.take_summaries(now_).empty());  // the time unit goes on
  now_ += 1s;
  auto summaries = limits_.take_summaries(now_);
  ASSERT_EQ(summaries.size(), 1U);
  EXPECT_EQ(summaries[0].address, kA);
  EXPECT_EQ(summaries[0].kind, Kind::kFailedSignIn);
  EXPECT_EQ(summaries[0].written, 2U);
  EXPECT_EQ(summaries[0].left_out, 5U);
  EXPECT_TRUE(limits_.take_summaries(now_ + 120s).empty());  // once
  // The next time unit writes the first ones in full again.
  EXPECT_TRUE(limits_.write_in_full(kA, Kind::kFailedSignIn, now_, config_));
}

TEST_F(LimitsTest, AnAddressWhoseTimeUnitEndsOnItsNextEventIsSummedUpToo) {
  for (int i = 0; i < 3; ++i)
    limits_.write_in_full(kA, Kind::kRefusedConnection, now_, config_);
  now_ += 70s;
  EXPECT_TRUE(limits_.write_in_full(kA, Kind::kRefusedConnection, now_, config_));
  auto summaries = limits_.take_summaries(now_);
  ASSERT_EQ(summaries.size(), 1U);
  EXPECT_EQ(summaries[0].kind, Kind::kRefusedConnection);
  EXPECT_EQ(summaries[0].left_out, 1U);
}

TEST_F(LimitsTest, TheTableForgetsTheOldestIdleAddressAndNeverOneWithConnections) {
  config_.tracked_addresses = 3;
  ASSERT_EQ(admit(kA), Admission::kAdmitted);  // open: never forgotten
  ClientAddress c{0x7f000004, false};
  ClientAddress d{0x7f000005, false};
  ClientAddress e{0x7f000006, false};
  // Left-out events of b are summed up when b is forgotten.
  for (int i = 0; i < 3; ++i)
    limits_.write_in_full(kB, Kind::kFailedSignIn, now_, config_);
  now_ += 1s;
  limits_.failed_sign_in(c, false, now_, config_);
  EXPECT_EQ(limits_.tracked(), 3U);
  now_ += 1s;
  limits_.failed_sign_in(d, false, now_, config_);  // b, the least recently seen, goes
  EXPECT_EQ(limits_.tracked(), 3U);
  auto summaries = limits_.take_summaries(now_);
  ASSERT_EQ(summaries.size(), 1U);
  EXPECT_EQ(summaries[0].address, kB);
  limits_.failed_sign_in(e, false, now_, config_);  // then c
  EXPECT_EQ(admit(kA), Admission::kAdmitted);       // a is still known: two open
  EXPECT_EQ(admit(kA), Admission::kAdmitted);
  EXPECT_EQ(admit(kA), Admission::kTooManyOpen);
}

TEST_F(LimitsTest, AFullTableOfOpenAddressesAdmitsWithoutTracking) {
  config_.tracked_addresses = 2;
  EXPECT_EQ(admit(kA), Admission::kAdmitted);
  EXPECT_EQ(admit(kB), Admission::kAdmitted);
  ClientAddress c{0x7f000004, false};
  EXPECT_EQ(admit(c), Admission::kAdmitted);
  EXPECT_FALSE(tracked_);
  EXPECT_EQ(limits_.tracked(), 2U);
  limits_.release(c);  // nothing to release: c was not counted
  EXPECT_EQ(limits_.tracked(), 2U);
}

TEST_F(LimitsTest, ManyThreadsCountTheSameAddress) {
  config_.max_connections_per_address = 1000000;
  config_.connection_rate_per_address = 1000000;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      bool tracked = false;
      for (int i = 0; i < 1000; ++i) {
        limits_.admit(kA, false, now_, config_, tracked);
        limits_.failed_sign_in(kA, false, now_, config_);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  config_.max_connections_per_address = 4000;
  EXPECT_EQ(admit(kA), Admission::kTooManyOpen);
  config_.failed_sign_in_rate_per_address = 4000;
  EXPECT_FALSE(limits_.sign_in_allowed(kA, false, now_, config_));
}

}  // namespace
}  // namespace mssgate::daemon
