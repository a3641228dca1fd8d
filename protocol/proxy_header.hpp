#pragma once
// The PROXY protocol, version 2 (HAProxy's "The PROXY protocol", section 2.2): the binary header
// a TCP load balancer sends first on each connection it forwards, carrying the client's address.
// Only version 2 is read; a version 1 (text) header, or anything else, is an error. The reader is
// incremental and never takes a byte past the header: what follows is the client's own (a TLS
// ClientHello, an IMAP command).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/ip_address.hpp"

namespace mssgate::protocol {

struct ProxyEndpoint {
  IpAddress address;
  uint16_t port = 0;
  bool operator==(const ProxyEndpoint&) const = default;
};

struct ProxyHeader {
  // LOCAL: the balancer's own connection (a health check); the peer's address stands.
  // PROXY: a client's connection, relayed; `source` is the client when it is set.
  enum class Command { kLocal, kProxy };
  Command command = Command::kLocal;
  // Set for PROXY over TCP/IPv4 or TCP/IPv6; unset for an UNSPEC family (the balancer does not
  // know the client: the peer's address stands, as for LOCAL).
  std::optional<ProxyEndpoint> source;
  std::optional<ProxyEndpoint> destination;
  std::string authority;  // PP2_TYPE_AUTHORITY (the TLS SNI the balancer saw), or empty
  std::string unique_id;  // PP2_TYPE_UNIQUE_ID, or empty
  bool operator==(const ProxyHeader&) const = default;
};

enum class ProxyHeaderError {
  kNotProxyV2,        // the first 12 bytes are not the version 2 signature
  kVersion,           // a version other than 2
  kCommand,           // a command other than LOCAL and PROXY
  kFamily,            // UNIX sockets, or an unknown family
  kTransport,         // not STREAM (TCP) for an address family
  kTooLong,           // longer than the reader's cap
  kAddressesCut,      // the length is shorter than the family's address block
  kTlvCut,            // a TLV runs past the header's end
  kChecksum,          // a PP2_TYPE_CRC32C that does not match
  kValueNotPrintable  // an authority or unique id with bytes outside printable ASCII
};

std::string_view describe(ProxyHeaderError error);

class ProxyHeaderReader {
 public:
  // The 16 fixed bytes, then at most this many bytes of addresses and TLVs. HAProxy sends 12
  // (IPv4) or 36 (IPv6) bytes of addresses and, unless told otherwise, no TLV.
  static constexpr size_t kFixedBytes = 16;
  static constexpr size_t kDefaultMaxVariableBytes = 512;

  explicit ProxyHeaderReader(size_t max_variable_bytes = kDefaultMaxVariableBytes)
      : max_variable_bytes_(max_variable_bytes) {}

  enum class Status { kNeedMore, kDone, kError };
  struct Result {
    Status status = Status::kNeedMore;
    size_t consumed = 0;  // bytes of `input` taken; never past the header's end
  };

  // Takes bytes until the header is complete (kDone, then header()) or cannot be one (kError,
  // then error()). After either, feed() takes nothing more.
  Result feed(std::string_view input);

  const ProxyHeader& header() const { return header_; }
  ProxyHeaderError error() const { return error_; }
  // Bytes held so far: at most kFixedBytes + the cap.
  size_t held() const { return bytes_.size(); }
  // While kNeedMore, the bytes still missing before the reader can answer: a reader of a socket
  // asks for exactly these and never takes a byte of what follows the header.
  size_t wanted() const { return (total_ == 0 ? kFixedBytes : total_) - bytes_.size(); }

 private:
  Result fail(ProxyHeaderError error, size_t consumed);
  std::optional<ProxyHeaderError> check_fixed() const;
  std::optional<ProxyHeaderError> parse();

  size_t max_variable_bytes_;
  std::string bytes_;
  size_t total_ = 0;  // the whole header's length, once the fixed part is read
  Status state_ = Status::kNeedMore;
  ProxyHeader header_;
  ProxyHeaderError error_ = ProxyHeaderError::kNotProxyV2;
};

// A version 2 header, as a balancer writes it (for the tests and the benchmarks): PROXY from
// `source` to `destination` (both IPv4 or both IPv6), or LOCAL when `source` is unset.
std::string proxy_v2_header(const std::optional<ProxyEndpoint>& source,
                            const ProxyEndpoint& destination);

// CRC-32C (Castagnoli), as PP2_TYPE_CRC32C carries it.
uint32_t crc32c(std::string_view bytes);

}  // namespace mssgate::protocol
