#include "protocol/proxy_header.hpp"

#include <gtest/gtest.h>

#include <string>

using mssgate::protocol::IpAddress;
using mssgate::protocol::parse_ip_address;
using mssgate::protocol::proxy_v2_header;
using mssgate::protocol::ProxyEndpoint;
using mssgate::protocol::ProxyHeader;
using mssgate::protocol::ProxyHeaderError;
using mssgate::protocol::ProxyHeaderReader;
using Status = ProxyHeaderReader::Status;

namespace {

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

ProxyEndpoint endpoint(const char* address, uint16_t port) {
  return {*parse_ip_address(address), port};
}

// What the reader makes of `input` fed whole, and fed one byte at a time: the same status, the
// same bytes taken, the same header or error, or the test fails.
struct Read {
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  ProxyHeader header;
  ProxyHeaderError error = ProxyHeaderError::kNotProxyV2;
};

Read read(const std::string& input, size_t cap = ProxyHeaderReader::kDefaultMaxVariableBytes) {
  ProxyHeaderReader whole(cap);
  auto r = whole.feed(input);
  Read out{r.status, r.consumed, whole.header(), whole.error()};
  ProxyHeaderReader bytewise(cap);
  size_t consumed = 0;
  Status status = Status::kNeedMore;
  for (size_t i = 0; i < input.size() && status == Status::kNeedMore; ++i) {
    auto step = bytewise.feed(input.substr(i, 1));
    consumed += step.consumed;
    status = step.status;
    EXPECT_LE(bytewise.held(), ProxyHeaderReader::kFixedBytes + cap);
  }
  EXPECT_EQ(status, out.status) << "byte by byte";
  EXPECT_EQ(consumed, out.consumed) << "byte by byte";
  if (status == Status::kDone) {
    EXPECT_EQ(bytewise.header(), out.header);
  }
  if (status == Status::kError) {
    EXPECT_EQ(bytewise.error(), out.error);
  }
  return out;
}

std::string with_length(std::string header, uint16_t length) {
  header[14] = static_cast<char>(length >> 8);
  header[15] = static_cast<char>(length & 0xff);
  return header;
}

std::string tlv(uint8_t type, const std::string& value) {
  std::string out(1, static_cast<char>(type));
  out += static_cast<char>(value.size() >> 8);
  out += static_cast<char>(value.size() & 0xff);
  return out + value;
}

// An IPv4 header with TLVs appended (its length grown to hold them).
std::string ipv4_with(const std::string& tlvs) {
  std::string header = proxy_v2_header(endpoint("192.0.2.10", 51234), endpoint("127.0.0.1", 993));
  return with_length(header + tlvs, static_cast<uint16_t>(12 + tlvs.size()));
}

}  // namespace

TEST(ProxyHeader, ReadsAnIpv4ClientAndTakesNothingOfWhatFollows) {
  std::string header = proxy_v2_header(endpoint("192.0.2.10", 51234), endpoint("127.0.0.1", 993));
  ASSERT_EQ(header.size(), 28u);
  // A TLS ClientHello follows: it is the client's, not the header's.
  auto r = read(header + std::string("\x16\x03\x01\x02\x00", 5));
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.consumed, 28u);
  EXPECT_EQ(r.header.command, ProxyHeader::Command::kProxy);
  EXPECT_EQ(r.header.source, endpoint("192.0.2.10", 51234));
  EXPECT_EQ(r.header.destination, endpoint("127.0.0.1", 993));
}

TEST(ProxyHeader, ReadsAnIpv6ClientAndAMappedIpv4OneAsIpv4) {
  auto v6 = read(proxy_v2_header(endpoint("2001:db8::7", 40000), endpoint("2001:db8::1", 143)));
  ASSERT_EQ(v6.status, Status::kDone);
  EXPECT_EQ(v6.consumed, 52u);
  EXPECT_EQ(v6.header.source, endpoint("2001:db8::7", 40000));
  EXPECT_TRUE(v6.header.source->address.v6);
  // HAProxy on a dual-stack socket may write an IPv4 client as ::ffff:a.b.c.d.
  ProxyEndpoint mapped{IpAddress{true, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7}},
                       1234};
  auto m = read(proxy_v2_header(mapped, endpoint("2001:db8::1", 143)));
  ASSERT_EQ(m.status, Status::kDone);
  EXPECT_EQ(m.header.source, endpoint("198.51.100.7", 1234));
  EXPECT_FALSE(m.header.source->address.v6);
}

TEST(ProxyHeader, LocalAndUnspecifiedLeaveThePeersAddress) {
  auto local = read(proxy_v2_header(std::nullopt, endpoint("127.0.0.1", 143)));
  ASSERT_EQ(local.status, Status::kDone);
  EXPECT_EQ(local.consumed, 16u);
  EXPECT_EQ(local.header.command, ProxyHeader::Command::kLocal);
  EXPECT_FALSE(local.header.source);
  // LOCAL with addresses (a health check that wrote them): they do not count.
  std::string local_with = proxy_v2_header(endpoint("192.0.2.10", 1), endpoint("127.0.0.1", 2));
  local_with[12] = '\x20';
  auto l = read(local_with);
  ASSERT_EQ(l.status, Status::kDone);
  EXPECT_EQ(l.consumed, 28u);
  EXPECT_FALSE(l.header.source);
  // PROXY over an unspecified family: the balancer does not know the client.
  auto unspec = read(kSignature + std::string("\x21\x00\x00\x03xyz", 7));
  ASSERT_EQ(unspec.status, Status::kDone);
  EXPECT_EQ(unspec.consumed, 19u);
  EXPECT_EQ(unspec.header.command, ProxyHeader::Command::kProxy);
  EXPECT_FALSE(unspec.header.source);
}

TEST(ProxyHeader, AnythingButTheV2SignatureFailsAtItsFirstDifferentByte) {
  // A client that connected straight to a listener that expects the balancer's header.
  for (const std::string& input :
       {std::string("\x16\x03\x01\x02\x00", 5), std::string("a1 CAPABILITY\r\n"),
        std::string("PROXY TCP4 192.0.2.10 127.0.0.1 51234 993\r\n"),
        std::string("EHLO lps.example\r\n")}) {
    auto r = read(input);
    EXPECT_EQ(r.status, Status::kError) << input;
    EXPECT_EQ(r.error, ProxyHeaderError::kNotProxyV2) << input;
    EXPECT_EQ(r.consumed, 1u) << input;
  }
  auto late = read(kSignature.substr(0, 11) + "X");
  EXPECT_EQ(late.error, ProxyHeaderError::kNotProxyV2);
  EXPECT_EQ(late.consumed, 12u);
}

TEST(ProxyHeader, RefusesOtherVersionsCommandsFamiliesAndTransports) {
  std::string good = proxy_v2_header(endpoint("192.0.2.10", 1), endpoint("127.0.0.1", 2));
  auto with_byte = [&](size_t at, char value) {
    std::string h = good;
    h[at] = value;
    return read(h);
  };
  EXPECT_EQ(with_byte(12, '\x11').error, ProxyHeaderError::kVersion);
  EXPECT_EQ(with_byte(12, '\x31').error, ProxyHeaderError::kVersion);
  EXPECT_EQ(with_byte(12, '\x22').error, ProxyHeaderError::kCommand);
  EXPECT_EQ(with_byte(13, '\x31').error, ProxyHeaderError::kFamily);  // UNIX stream
  EXPECT_EQ(with_byte(13, '\x41').error, ProxyHeaderError::kFamily);
  EXPECT_EQ(with_byte(13, '\x12').error, ProxyHeaderError::kTransport);  // UDP
  EXPECT_EQ(with_byte(13, '\x10').error, ProxyHeaderError::kTransport);
  // The fixed part's errors come as soon as it is read, before any address.
  EXPECT_EQ(with_byte(12, '\x11').consumed, 16u);
}

TEST(ProxyHeader, ALengthPastTheCapFailsBeforeItsBytesAreWaitedFor) {
  std::string header = with_length(kSignature + std::string("\x21\x11\x00\x00", 4), 65535);
  auto r = read(header);
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error, ProxyHeaderError::kTooLong);
  EXPECT_EQ(r.consumed, 16u);
  // At the cap exactly, the header is read.
  auto at_cap = read(ipv4_with(tlv(0x04, std::string(100 - 3, 'x'))), 112);
  EXPECT_EQ(at_cap.status, Status::kDone);
  EXPECT_EQ(read(ipv4_with(tlv(0x04, std::string(101 - 3, 'x'))), 112).error,
            ProxyHeaderError::kTooLong);
}

TEST(ProxyHeader, AddressesAndTlvsMustFitTheLength) {
  std::string good = proxy_v2_header(endpoint("192.0.2.10", 1), endpoint("127.0.0.1", 2));
  EXPECT_EQ(read(with_length(good.substr(0, 16 + 8), 8)).error, ProxyHeaderError::kAddressesCut);
  std::string v6 = proxy_v2_header(endpoint("2001:db8::7", 1), endpoint("2001:db8::1", 2));
  EXPECT_EQ(read(with_length(v6.substr(0, 16 + 12), 12)).error, ProxyHeaderError::kAddressesCut);
  // A TLV whose length runs past the header, or a header ending inside a TLV's own fields.
  std::string cut = tlv(0x04, "abcdef");
  cut[2] = 9;
  EXPECT_EQ(read(ipv4_with(cut)).error, ProxyHeaderError::kTlvCut);
  EXPECT_EQ(read(ipv4_with(std::string("\x04\x00", 2))).error, ProxyHeaderError::kTlvCut);
  // Unknown TLVs and NOOP are skipped.
  auto skipped = read(ipv4_with(tlv(0x04, "") + tlv(0xe0, "anything") + tlv(0x20, "ssl")));
  EXPECT_EQ(skipped.status, Status::kDone);
  EXPECT_EQ(skipped.header.source, endpoint("192.0.2.10", 51234));
}

TEST(ProxyHeader, KeepsAPrintableAuthorityAndUniqueIdOnly) {
  auto r = read(ipv4_with(tlv(0x02, "mail.example.fr") + tlv(0x05, "haproxy-7f3a-0001")));
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.header.authority, "mail.example.fr");
  EXPECT_EQ(r.header.unique_id, "haproxy-7f3a-0001");
  EXPECT_EQ(read(ipv4_with(tlv(0x02, "mail\nexample"))).error,
            ProxyHeaderError::kValueNotPrintable);
  EXPECT_EQ(read(ipv4_with(tlv(0x05, std::string("id\0x", 4)))).error,
            ProxyHeaderError::kValueNotPrintable);
  EXPECT_EQ(read(ipv4_with(tlv(0x05, std::string(129, 'u')))).error,
            ProxyHeaderError::kValueNotPrintable);
}

TEST(ProxyHeader, ACrc32cTlvMustMatchTheHeader) {
  EXPECT_EQ(mssgate::protocol::crc32c("123456789"), 0xe3069283u);  // RFC 3720's check value
  std::string header = ipv4_with(tlv(0x03, std::string(4, '\0')));
  uint32_t crc = mssgate::protocol::crc32c(header);
  for (int k = 0; k < 4; ++k)
    header[header.size() - 4 + k] = static_cast<char>(crc >> (24 - 8 * k));
  EXPECT_EQ(read(header).status, Status::kDone);
  std::string altered = header;
  altered[20] ^= 1;  // the source address changed on its way
  EXPECT_EQ(read(altered).error, ProxyHeaderError::kChecksum);
  EXPECT_EQ(read(ipv4_with(tlv(0x03, "abc"))).error, ProxyHeaderError::kChecksum);
}

TEST(ProxyHeader, AfterItsAnswerTheReaderTakesNothingMore) {
  ProxyHeaderReader reader;
  std::string header = proxy_v2_header(endpoint("192.0.2.10", 1), endpoint("127.0.0.1", 2));
  EXPECT_EQ(reader.feed(header).status, Status::kDone);
  auto again = reader.feed("more");
  EXPECT_EQ(again.status, Status::kDone);
  EXPECT_EQ(again.consumed, 0u);
  ProxyHeaderReader refused;
  EXPECT_EQ(refused.feed("x").status, Status::kError);
  EXPECT_EQ(refused.feed(header).consumed, 0u);
}

TEST(ProxyHeader, WantsExactlyTheBytesStillMissing) {
  std::string header = proxy_v2_header(endpoint("192.0.2.10", 51234), endpoint("203.0.113.5", 993));
  ProxyHeaderReader reader;
  EXPECT_EQ(reader.wanted(), ProxyHeaderReader::kFixedBytes);
  reader.feed(header.substr(0, 5));
  EXPECT_EQ(reader.wanted(), ProxyHeaderReader::kFixedBytes - 5);
  reader.feed(header.substr(5, 11));
  EXPECT_EQ(reader.wanted(), header.size() - ProxyHeaderReader::kFixedBytes);  // the 12 of IPv4
  reader.feed(header.substr(16, 3));
  EXPECT_EQ(reader.wanted(), header.size() - 19);
  EXPECT_EQ(reader.feed(header.substr(19)).status, Status::kDone);
}

TEST(IpAddressText, WritesWhatItReads) {
  for (const char* text : {"192.0.2.10", "2001:db8::7", "::1", "0.0.0.0"})
    EXPECT_EQ(mssgate::protocol::ip_address_text(*parse_ip_address(text)), text);
  EXPECT_EQ(mssgate::protocol::ip_address_text(*parse_ip_address("::ffff:192.0.2.10")),
            "192.0.2.10");
}
