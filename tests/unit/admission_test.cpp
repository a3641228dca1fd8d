// The connection budgets at accept, within what the process's open file limit allows.
#include "daemon/services/admission.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace mssgate::daemon {
namespace {

config::Config with_budgets(size_t clients, bool lmtp, size_t lmtp_connections = 500) {
  config::Config config;
  config.server.max_connections = clients;
  if (lmtp) config.lmtp.listen.push_back(config::Endpoint{"127.0.0.1", 0});
  config.lmtp.max_connections = lmtp_connections;
  return config;
}

// The limit is the process's: each test leaves it unknown, as it found it.
struct AdmissionTest : testing::Test {
  void TearDown() override { set_open_file_limit(0); }
};

TEST_F(AdmissionTest, TwoDescriptorsASessionWithinTheOpenFileLimit) {
  auto config = with_budgets(20000, false);
  // Unknown limit, or one large enough: the configured budget.
  EXPECT_EQ(client_connections_allowed(config, 0), 20000u);
  EXPECT_EQ(client_connections_allowed(config, 65536), 20000u);
  EXPECT_EQ(descriptors_needed(config), 40000 + kReservedDescriptors);
  EXPECT_EQ(client_connections_allowed(config, descriptors_needed(config)), 20000u);
  EXPECT_EQ(client_connections_allowed(config, descriptors_needed(config) - 1), 19999u);
  // A hard limit of 20,000 (a shell's): under 10,000 sessions, not 20,000.
  EXPECT_EQ(client_connections_allowed(config, 20000), (20000u - kReservedDescriptors) / 2);
  // The LMTP tap's budget is set aside only when the tap listens.
  auto tapped = with_budgets(20000, true, 10);
  EXPECT_EQ(descriptors_needed(tapped), 40020 + kReservedDescriptors);
  EXPECT_EQ(client_connections_allowed(tapped, 400), (400u - kReservedDescriptors - 20u) / 2);
  // Not even the reserve: no client connection at all.
  EXPECT_EQ(client_connections_allowed(config, kReservedDescriptors), 0u);
  EXPECT_EQ(client_connections_allowed(tapped, kReservedDescriptors + 20), 0u);
}

TEST_F(AdmissionTest, ConnectionsPastWhatTheDescriptorsAllowAreRefusedAtAccept) {
  auto counters = std::make_shared<GatewayCounters>();
  auto config = with_budgets(20000, false);
  set_open_file_limit(kReservedDescriptors + 10);  // two descriptors each for 5
  std::vector<Admission> held;
  for (int i = 0; i < 5; ++i) {
    auto decision = admit(counters, Budget::kClients, std::nullopt, false, config, {});
    ASSERT_TRUE(decision.admission) << i;
    held.push_back(std::move(*decision.admission));
  }
  auto refused = admit(counters, Budget::kClients, std::nullopt, false, config, {});
  EXPECT_FALSE(refused.admission);
  EXPECT_EQ(refused.refusal, "max_connections");
  EXPECT_EQ(counters->client_connections.load(), 5u);
  // One ends: the next is admitted. The LMTP tap keeps its own budget.
  held.pop_back();
  EXPECT_TRUE(admit(counters, Budget::kClients, std::nullopt, false, config, {}).admission);
  EXPECT_TRUE(admit(counters, Budget::kLmtp, std::nullopt, false, config, {}).admission);
  // Once the limit is not known, the configured budget alone.
  set_open_file_limit(0);
  EXPECT_TRUE(admit(counters, Budget::kClients, std::nullopt, false, config, {}).admission);
}

}  // namespace
}  // namespace mssgate::daemon
