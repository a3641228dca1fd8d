#include "daemon/net/proxy_protocol.hpp"

#include <gtest/gtest.h>

using mssgate::daemon::ConnectionEnds;
using mssgate::daemon::proxied_ends;
using mssgate::protocol::parse_ip_address;
using mssgate::protocol::ProxyEndpoint;
using mssgate::protocol::ProxyHeader;

namespace {

ConnectionEnds balancer() {
  return {"127.0.0.1", 40001, "127.0.0.1:40001", "127.0.0.1", 10993, ""};
}

ProxyEndpoint endpoint(const char* address, uint16_t port) {
  return {*parse_ip_address(address), port};
}

}  // namespace

TEST(ProxiedEnds, AreTheClientAndTheAddressItReached) {
  ProxyHeader header;
  header.command = ProxyHeader::Command::kProxy;
  header.source = endpoint("192.0.2.44", 50123);
  header.destination = endpoint("203.0.113.10", 993);
  auto ends = proxied_ends(balancer(), header);
  EXPECT_EQ(ends.peer_address, "192.0.2.44");
  EXPECT_EQ(ends.peer_port, 50123);
  EXPECT_EQ(ends.peer, "192.0.2.44:50123");
  EXPECT_EQ(ends.local_address, "203.0.113.10");
  EXPECT_EQ(ends.local_port, 993);
  EXPECT_EQ(ends.via, "127.0.0.1:40001");
}

TEST(ProxiedEnds, BracketAnIpv6Client) {
  ProxyHeader header;
  header.command = ProxyHeader::Command::kProxy;
  header.source = endpoint("2001:db8::44", 50123);
  header.destination = endpoint("2001:db8::1", 993);
  auto ends = proxied_ends(balancer(), header);
  EXPECT_EQ(ends.peer_address, "2001:db8::44");
  EXPECT_EQ(ends.peer, "[2001:db8::44]:50123");
  EXPECT_EQ(ends.local_address, "2001:db8::1");
}

TEST(ProxiedEnds, AreTheBalancersForAHealthCheckOrAnUnknownClient) {
  ProxyHeader local;  // LOCAL: the balancer's own connection
  auto ends = proxied_ends(balancer(), local);
  EXPECT_EQ(ends.peer, "127.0.0.1:40001");
  EXPECT_EQ(ends.local_port, 10993);
  EXPECT_EQ(ends.via, "127.0.0.1:40001");
  ProxyHeader unspec;  // PROXY, family UNSPEC: no address to take
  unspec.command = ProxyHeader::Command::kProxy;
  EXPECT_EQ(proxied_ends(balancer(), unspec).peer, "127.0.0.1:40001");
}
