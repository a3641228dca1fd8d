#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// A numeric IP address, IPv4 or IPv6. An IPv4-mapped IPv6 address (::ffff:192.0.2.1, as a
// dual-stack socket shows an IPv4 peer) is the IPv4 address.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4

  bool loopback() const;
  bool operator==(const IpAddress&) const = default;
};

// "192.0.2.1", "2001:db8::1" (no brackets, no zone); nullopt for anything else.
std::optional<IpAddress> parse_ip_address(std::string_view text);
// The address as parse_ip_address reads it ("192.0.2.1", "2001:db8::1").
std::string ip_address_text(const IpAddress& address);

// An address or a network: "192.0.2.1", "192.0.2.0/24", "2001:db8::/32".
struct IpNetwork {
  IpAddress address;  // the bits past the prefix are zero
  unsigned prefix = 0;
  std::string text;  // as configured

  bool contains(const IpAddress& address) const;
  bool operator==(const IpNetwork& other) const {
    return address == other.address && prefix == other.prefix;
  }
};

// nullopt when the text is not an address, or the prefix is too long for its family.
std::optional<IpNetwork> parse_ip_network(std::string_view text);

}  // namespace mssgate::protocol
