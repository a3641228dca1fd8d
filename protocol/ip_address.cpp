#include "protocol/ip_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace mssgate::protocol {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool IpAddress::loopback() const {
  if (!v6) return bytes[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 1};
  return bytes == kLoopback6;
}

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  // inet_pton wants a terminated string; an address is never longer than this. It stops at
  // the first NUL: text with one is not an address (not "192.0.2.1" followed by anything).
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress address;
  if (inet_pton(AF_INET, buffer, address.bytes.data()) == 1) return address;
  if (inet_pton(AF_INET6, buffer, address.bytes.data()) != 1) return std::nullopt;
  address.v6 = true;
  if (std::memcmp(address.bytes.data(), kMappedPrefix.data(), kMappedPrefix.size()) == 0) {
    std::array<uint8_t, 16> v4{};
    std::memcpy(v4.data(), address.bytes.data() + 12, 4);
    address.bytes = v4;
    address.v6 = false;
  }
  return address;
}

std::string ip_address_text(const IpAddress& address) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), buffer, sizeof buffer);
  return buffer;
}

bool IpNetwork::contains(const IpAddress& other) const {
  if (other.v6 != address.v6) return false;
  unsigned full = prefix / 8;
  if (std::memcmp(other.bytes.data(), address.bytes.data(), full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (other.bytes[full] & mask) == address.bytes[full];
}

std::optional<IpNetwork> parse_ip_network(std::string_view text) {
  IpNetwork network;
  network.text = std::string(text);
  size_t slash = text.find('/');
  auto address = parse_ip_address(text.substr(0, slash));
  if (!address) return std::nullopt;
  unsigned bits = address->v6 ? 128 : 32;
  network.prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), network.prefix);
    if (ec != std::errc() || end != digits.data() + digits.size() || network.prefix > bits)
      return std::nullopt;
    // An IPv4-mapped address with a prefix: IPv6 bits or IPv4 bits? Refused, not guessed.
    if (!address->v6 && text.substr(0, slash).find(':') != std::string_view::npos)
      return std::nullopt;
  }
  // The bits past the prefix are cleared: 192.0.2.7/24 is 192.0.2.0/24.
  for (unsigned bit = network.prefix; bit < bits; ++bit)
    address->bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  network.address = *address;
  return network;
}

}  // namespace mssgate::protocol
