#include "protocol/proxy_header.hpp"

#include <algorithm>
#include <array>

namespace mssgate::protocol {
namespace {

constexpr std::string_view kSignature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t kIpv4Block = 12;  // source and destination addresses, then ports
constexpr size_t kIpv6Block = 36;
constexpr size_t kMaxUniqueIdBytes = 128;

constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyUnspec = 0x0;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kTransportStream = 0x1;
constexpr uint8_t kTlvAuthority = 0x02;
constexpr uint8_t kTlvCrc32c = 0x03;
constexpr uint8_t kTlvUniqueId = 0x05;

uint8_t byte_at(std::string_view bytes, size_t i) {
  return static_cast<uint8_t>(bytes[i]);
}

uint16_t u16_at(std::string_view bytes, size_t i) {
  return static_cast<uint16_t>(byte_at(bytes, i) << 8 | byte_at(bytes, i + 1));
}

// An address of the header as mssgate keeps addresses: an IPv4-mapped IPv6 address is IPv4.
IpAddress address_at(std::string_view bytes, size_t i, bool v6) {
  IpAddress address;
  if (!v6) {
    for (size_t k = 0; k < 4; ++k)
      address.bytes[k] = byte_at(bytes, i + k);
    return address;
  }
  for (size_t k = 0; k < 16; ++k)
    address.bytes[k] = byte_at(bytes, i + k);
  bool mapped = std::all_of(address.bytes.begin(), address.bytes.begin() + 10,
                            [](uint8_t b) { return b == 0; }) &&
                address.bytes[10] == 0xff && address.bytes[11] == 0xff;
  if (!mapped) {
    address.v6 = true;
    return address;
  }
  IpAddress v4;
  std::copy(address.bytes.begin() + 12, address.bytes.end(), v4.bytes.begin());
  return v4;
}

bool printable(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

void append_u16(std::string& out, uint16_t value) {
  out += static_cast<char>(value >> 8);
  out += static_cast<char>(value & 0xff);
}

void append_address(std::string& out, const IpAddress& address) {
  size_t length = address.v6 ? 16 : 4;
  for (size_t k = 0; k < length; ++k)
    out += static_cast<char>(address.bytes[k]);
}

}  // namespace

std::string_view describe(ProxyHeaderError error) {
  switch (error) {
    case ProxyHeaderError::kNotProxyV2:
      return "not a PROXY protocol v2 header";
    case ProxyHeaderError::kVersion:
      return "PROXY protocol version other than 2";
    case ProxyHeaderError::kCommand:
      return "PROXY command other than LOCAL or PROXY";
    case ProxyHeaderError::kFamily:
      return "address family other than IPv4, IPv6 or unspecified";
    case ProxyHeaderError::kTransport:
      return "transport other than TCP";
    case ProxyHeaderError::kTooLong:
      return "PROXY header longer than allowed";
    case ProxyHeaderError::kAddressesCut:
      return "PROXY header shorter than its addresses";
    case ProxyHeaderError::kTlvCut:
      return "PROXY header TLV past the header's end";
    case ProxyHeaderError::kChecksum:
      return "PROXY header CRC32C does not match";
    case ProxyHeaderError::kValueNotPrintable:
      return "PROXY header authority or unique id not printable";
  }
  return "PROXY header error";
}

ProxyHeaderReader::Result ProxyHeaderReader::fail(ProxyHeaderError error, size_t consumed) {
  state_ = Status::kError;
  error_ = error;
  return {Status::kError, consumed};
}

ProxyHeaderReader::Result ProxyHeaderReader::feed(std::string_view input) {
  if (state_ != Status::kNeedMore) return {state_, 0};
  size_t consumed = 0;
  // The signature, byte by byte: anything else fails at its first byte that differs.
  while (bytes_.size() < kSignature.size() && consumed < input.size()) {
    char c = input[consumed++];
    if (c != kSignature[bytes_.size()]) return fail(ProxyHeaderError::kNotProxyV2, consumed);
    bytes_ += c;
  }
  if (bytes_.size() < kFixedBytes) {
    size_t take = std::min(kFixedBytes - bytes_.size(), input.size() - consumed);
    bytes_.append(input.substr(consumed, take));
    consumed += take;
    if (bytes_.size() < kFixedBytes) return {Status::kNeedMore, consumed};
    if (auto error = check_fixed()) return fail(*error, consumed);
    total_ = kFixedBytes + u16_at(bytes_, 14);
  }
  size_t take = std::min(total_ - bytes_.size(), input.size() - consumed);
  bytes_.append(input.substr(consumed, take));
  consumed += take;
  if (bytes_.size() < total_) return {Status::kNeedMore, consumed};
  if (auto error = parse()) return fail(*error, consumed);
  state_ = Status::kDone;
  return {Status::kDone, consumed};
}

std::optional<ProxyHeaderError> ProxyHeaderReader::check_fixed() const {
  uint8_t version_command = byte_at(bytes_, 12);
  if (version_command >> 4 != 2) return ProxyHeaderError::kVersion;
  uint8_t command = version_command & 0x0f;
  if (command != kCommandLocal && command != kCommandProxy) return ProxyHeaderError::kCommand;
  if (u16_at(bytes_, 14) > max_variable_bytes_) return ProxyHeaderError::kTooLong;
  return std::nullopt;
}

std::optional<ProxyHeaderError> ProxyHeaderReader::parse() {
  std::string_view bytes = bytes_;
  bool proxy = (byte_at(bytes, 12) & 0x0f) == kCommandProxy;
  header_.command = proxy ? ProxyHeader::Command::kProxy : ProxyHeader::Command::kLocal;
  uint8_t family = byte_at(bytes, 13) >> 4;
  uint8_t transport = byte_at(bytes, 13) & 0x0f;
  // LOCAL: the addresses, whatever they are, do not count (the balancer's own connection).
  if (!proxy) return std::nullopt;
  size_t block = 0;
  if (family == kFamilyInet || family == kFamilyInet6) {
    if (transport != kTransportStream) return ProxyHeaderError::kTransport;
    block = family == kFamilyInet ? kIpv4Block : kIpv6Block;
  } else if (family != kFamilyUnspec) {
    return ProxyHeaderError::kFamily;
  }
  if (family == kFamilyUnspec) return std::nullopt;  // no address to read: the peer's stands
  if (total_ - kFixedBytes < block) return ProxyHeaderError::kAddressesCut;
  bool v6 = family == kFamilyInet6;
  size_t length = v6 ? 16 : 4;
  size_t at = kFixedBytes;
  header_.source = ProxyEndpoint{address_at(bytes, at, v6), u16_at(bytes, at + 2 * length)};
  header_.destination =
      ProxyEndpoint{address_at(bytes, at + length, v6), u16_at(bytes, at + 2 * length + 2)};
  // The TLVs that follow: each one type byte, a length of two, its value.
  for (size_t tlv = kFixedBytes + block; tlv < total_;) {
    if (total_ - tlv < 3) return ProxyHeaderError::kTlvCut;
    uint8_t type = byte_at(bytes, tlv);
    size_t value_length = u16_at(bytes, tlv + 1);
    if (total_ - tlv - 3 < value_length) return ProxyHeaderError::kTlvCut;
    std::string_view value = bytes.substr(tlv + 3, value_length);
    if (type == kTlvAuthority || type == kTlvUniqueId) {
      if (!printable(value) || (type == kTlvUniqueId && value.size() > kMaxUniqueIdBytes))
        return ProxyHeaderError::kValueNotPrintable;
      (type == kTlvAuthority ? header_.authority : header_.unique_id) = std::string(value);
    } else if (type == kTlvCrc32c) {
      if (value_length != 4) return ProxyHeaderError::kChecksum;
      uint32_t carried = static_cast<uint32_t>(u16_at(value, 0)) << 16 | u16_at(value, 2);
      std::string zeroed = bytes_;
      std::fill_n(zeroed.begin() + static_cast<std::ptrdiff_t>(tlv + 3), 4, '\0');
      if (crc32c(zeroed) != carried) return ProxyHeaderError::kChecksum;
    }
    tlv += 3 + value_length;
  }
  return std::nullopt;
}

std::string proxy_v2_header(const std::optional<ProxyEndpoint>& source,
                            const ProxyEndpoint& destination) {
  std::string out(kSignature);
  if (!source) {
    out += '\x20';  // version 2, LOCAL
    out += '\x00';  // UNSPEC
    append_u16(out, 0);
    return out;
  }
  bool v6 = source->address.v6;
  out += '\x21';                // version 2, PROXY
  out += v6 ? '\x21' : '\x11';  // IPv6 or IPv4, over TCP
  append_u16(out, v6 ? kIpv6Block : kIpv4Block);
  append_address(out, source->address);
  append_address(out, destination.address);
  append_u16(out, source->port);
  append_u16(out, destination.port);
  return out;
}

uint32_t crc32c(std::string_view bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (char c : bytes)
    crc = table[(crc ^ static_cast<uint8_t>(c)) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

}  // namespace mssgate::protocol
