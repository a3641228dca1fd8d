// Fuzz target "proxy_header": the PROXY protocol v2 header a load balancer sends first on each
// connection. The reader gives the same answer whole and in pieces, takes exactly the header's
// bytes (never one of what follows: the client's TLS or IMAP), holds no more than its cap, and
// a client address it reads writes back, as a balancer would, into a header that reads the same.
#include "protocol/proxy_header.hpp"

#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::ProxyHeaderReader;

constexpr size_t kCap = 256;

struct Outcome {
  ProxyHeaderReader::Status status = ProxyHeaderReader::Status::kNeedMore;
  size_t consumed = 0;
  mssgate::protocol::ProxyHeader header;
  mssgate::protocol::ProxyHeaderError error = mssgate::protocol::ProxyHeaderError::kNotProxyV2;
  bool operator==(const Outcome&) const = default;
};

Outcome read(std::string_view input, size_t how) {
  ProxyHeaderReader reader(kCap);
  Outcome out;
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    auto r = reader.feed(piece);
    check(r.consumed <= piece.size(), "proxy_header: takes at most what it is given");
    check(reader.held() <= ProxyHeaderReader::kFixedBytes + kCap, "proxy_header: holds its cap");
    out.consumed += r.consumed;
    out.status = r.status;
    if (r.status != ProxyHeaderReader::Status::kNeedMore) {
      check(r.consumed < piece.size() || r.consumed == piece.size(),
            "proxy_header: an answer within the piece");
      break;
    }
    check(r.consumed == piece.size(), "proxy_header: needing more, it takes every byte");
  }
  if (out.status == ProxyHeaderReader::Status::kDone) out.header = reader.header();
  if (out.status == ProxyHeaderReader::Status::kError) out.error = reader.error();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  Outcome whole = mssgate::fuzz::same_whole_and_in_pieces(input, read,
                                                          "proxy_header: same whole and in pieces");
  if (whole.status == ProxyHeaderReader::Status::kDone) {
    size_t length =
        static_cast<unsigned char>(input[14]) << 8 | static_cast<unsigned char>(input[15]);
    check(whole.consumed == ProxyHeaderReader::kFixedBytes + length,
          "proxy_header: takes the header's bytes and no more");
    const auto& h = whole.header;
    check(h.source.has_value() == h.destination.has_value(), "proxy_header: both ends or none");
    if (h.source && h.source->address.v6 == h.destination->address.v6) {
      std::string again = mssgate::protocol::proxy_v2_header(h.source, *h.destination);
      ProxyHeaderReader reader;
      check(reader.feed(again).status == ProxyHeaderReader::Status::kDone &&
                reader.header().source == h.source && reader.header().destination == h.destination,
            "proxy_header: an address read writes back the same");
    }
    for (char c : h.authority + h.unique_id)
      check(c > 0x20 && c < 0x7f, "proxy_header: authority and unique id printable");
  }
  return 0;
}
