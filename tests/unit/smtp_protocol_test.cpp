#include <gtest/gtest.h>

#include <random>
#include <utility>

#include "protocol/ip_address.hpp"
#include "protocol/message_header.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_data.hpp"
#include "protocol/smtp_reply.hpp"

using namespace mssgate::protocol;

TEST(SmtpCommand, SplitsVerbAndArgument) {
  auto c = parse_smtp_command("mail FROM:<a@b.fr> SIZE=10");
  EXPECT_EQ(c.verb, "MAIL");
  EXPECT_EQ(c.argument, "FROM:<a@b.fr> SIZE=10");
  EXPECT_EQ(parse_smtp_command("QUIT").argument, "");
}

TEST(SmtpCommand, ParsesPathsAndParameters) {
  auto mail = parse_path_argument(
      "FROM:<App@Test.fr> SIZE=1024 BODY=8BITMIME RET=HDRS ENVID=abc+2Bd", "FROM");
  ASSERT_TRUE(mail);
  EXPECT_EQ(mail->address, "App@Test.fr");
  ASSERT_EQ(mail->parameters.size(), 4u);
  EXPECT_EQ(mail->parameters[0], (std::pair<std::string, std::string>{"SIZE", "1024"}));
  EXPECT_EQ(mail->parameters[3], (std::pair<std::string, std::string>{"ENVID", "abc+2Bd"}));
  EXPECT_EQ(mail->parameter_text, "SIZE=1024 BODY=8BITMIME RET=HDRS ENVID=abc+2Bd");

  auto null = parse_path_argument("from: <>", "FROM");
  ASSERT_TRUE(null);
  EXPECT_EQ(null->address, "");
  auto rcpt =
      parse_path_argument("TO:<@relay.fr:b@c.fr> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@c.fr", "TO");
  ASSERT_TRUE(rcpt);
  EXPECT_EQ(rcpt->address, "b@c.fr");
  EXPECT_EQ(rcpt->parameters[1].second, "rfc822;b@c.fr");
  EXPECT_TRUE(parse_path_argument("TO:<smtputf8.é@exemple.fr>", "TO"));
}

TEST(SmtpCommand, RefusesMalformedPaths) {
  for (const char* bad :
       {"FROM:a@b.fr", "FROM:<a@b.fr", "TO:<a@b.fr>", "FROM:<a b@c.fr>", "FROM:<nodomain>",
        "FROM:<a@b.fr>X=1", "FROM:<a@b.fr> =x", "FROM:<a@b.fr> K=a=b", "FROM:<@relay>"}) {
    EXPECT_FALSE(parse_path_argument(bad, "FROM")) << bad;
  }
  // Control characters, in the address or in a parameter, never reach the backend.
  using namespace std::string_literals;
  for (const std::string& bad :
       {"FROM:<a\0b@c.fr>"s, "FROM:<a@b.fr>\0"s, "FROM:<a@b.fr>\r XCLIENT"s, "FROM:<a\rb@c.fr>"s,
        "FROM:<a@b.fr> K=a\0b"s, "FROM:<a@b.fr> K=a\rXCLIENT"s, "FROM:<a@b.fr> K=a\x7f"s}) {
    EXPECT_FALSE(parse_path_argument(bad, "FROM")) << bad;
  }
}

TEST(SmtpCommand, EncodesXtext) {
  EXPECT_EQ(xtext_encode("mx.test+1=2 é"), "mx.test+2B1+3D2+20+C3+A9");
  EXPECT_EQ(xtext_decode("mx.test+2B1+3D2+20+C3+A9"), "mx.test+1=2 é");
  EXPECT_EQ(xtext_decode("QQ-1234"), "QQ-1234");
  EXPECT_EQ(xtext_decode(""), "");
  // A "+" without two upper-case hexadecimal digits after it is not xtext.
  for (std::string_view bad : {"a+", "a+2", "a+2b", "+G0", "a=b", "a b", "\x7f", "\xc3\xa9"})
    EXPECT_EQ(xtext_decode(bad), std::nullopt) << bad;
}

TEST(SmtpCommand, AnEhloArgumentIsADomainOrAnAddressLiteral) {
  for (const char* good :
       {"localhost", "lps.hopital.fr", "DESKTOP-4F2K9", "a", "x1.y-2.z3", "[192.0.2.1]",
        "[IPv6:2001:db8::1]", "[ipv6:::1]", "[IPv6:::ffff:192.0.2.1]"}) {
    EXPECT_TRUE(ehlo_domain_or_address_literal(good)) << good;
  }
  std::string label63(63, 'a');
  EXPECT_TRUE(ehlo_domain_or_address_literal(label63 + ".fr"));
  EXPECT_FALSE(ehlo_domain_or_address_literal(label63 + "a.fr"));
  std::string long_name;
  while (long_name.size() < 256)
    long_name += "abcdefghi.";
  EXPECT_FALSE(ehlo_domain_or_address_literal(long_name + "fr"));
  using namespace std::string_literals;
  for (const std::string& bad : {""s,
                                 "my_pc"s,
                                 "-lead.fr"s,
                                 "trail-.fr"s,
                                 "a..b"s,
                                 ".a"s,
                                 "a."s,
                                 "a b"s,
                                 "a\tb"s,
                                 "x\rRCPT TO:<a@b.fr>"s,
                                 "a\0b"s,
                                 "é.fr"s,
                                 "lps.fr>"s,
                                 "[192.0.2]"s,
                                 "[192.0.2.1"s,
                                 "[300.0.2.1]"s,
                                 "[2001:db8::1]"s,
                                 "[IPv6:192.0.2.1]"s,
                                 "[IPv6:2001:db8::g]"s,
                                 "[tag:content]"s,
                                 "[]"s,
                                 "LOGIN=other@b.fr"s}) {
    EXPECT_FALSE(ehlo_domain_or_address_literal(bad)) << bad;
  }
}

// inet_pton stops at a NUL: an address literal with NULs before its "]" passed for the address,
// and its NULs went to Postfix in the EHLO after XCLIENT (found by the smtp fuzz target,
// tests/fuzz/regressions/smtp/).
TEST(SmtpCommand, AnAddressLiteralWithANulIsNone) {
  using namespace std::string_literals;
  for (const std::string& bad :
       {"[IPv6:2001:db8::1\0\0]"s, "[192.0.2.1\0]"s, "[192.0.2.1\0x]"s, "[IPv6:::1\0:1]"s}) {
    EXPECT_FALSE(ehlo_domain_or_address_literal(bad)) << bad.size();
  }
  for (const std::string& bad : {"192.0.2.1\0"s, "2001:db8::1\0\0"s, "\0"s, "::1\0/64"s}) {
    EXPECT_FALSE(parse_ip_address(bad)) << bad.size();
    EXPECT_FALSE(parse_ip_network(bad)) << bad.size();
  }
}

TEST(IpAddress, ParsesAddressesAndNetworks) {
  auto v4 = parse_ip_address("192.0.2.7");
  ASSERT_TRUE(v4);
  EXPECT_FALSE(v4->v6);
  EXPECT_FALSE(v4->loopback());
  EXPECT_TRUE(parse_ip_address("127.0.0.2")->loopback());
  EXPECT_TRUE(parse_ip_address("::1")->loopback());
  // A dual-stack socket shows an IPv4 peer as a mapped address: it is that IPv4 address.
  EXPECT_EQ(parse_ip_address("::ffff:192.0.2.7"), v4);
  EXPECT_TRUE(parse_ip_address("::ffff:127.0.0.1")->loopback());
  for (const char* bad : {"", "192.0.2", "192.0.2.256", "[::1]", "fe80::1%eth0", "localhost",
                          "192.0.2.1 ", "1.2.3.4/32"}) {
    EXPECT_FALSE(parse_ip_address(bad)) << bad;
  }

  auto network = parse_ip_network("192.0.2.77/24");
  ASSERT_TRUE(network);
  EXPECT_EQ(network->prefix, 24u);
  EXPECT_EQ(network->text, "192.0.2.77/24");
  EXPECT_TRUE(network->contains(*parse_ip_address("192.0.2.1")));
  EXPECT_TRUE(network->contains(*parse_ip_address("::ffff:192.0.2.200")));
  EXPECT_FALSE(network->contains(*parse_ip_address("192.0.3.1")));
  EXPECT_FALSE(network->contains(*parse_ip_address("2001:db8::1")));
  auto one = parse_ip_network("127.0.0.1");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix, 32u);
  EXPECT_TRUE(one->contains(*parse_ip_address("127.0.0.1")));
  EXPECT_FALSE(one->contains(*parse_ip_address("127.0.0.2")));
  auto v6 = parse_ip_network("2001:db8:a::/45");  // 2001:db8:8:: to 2001:db8:f:ffff:...
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*parse_ip_address("2001:db8:8::1")));
  EXPECT_TRUE(v6->contains(*parse_ip_address("2001:db8:f:1::9")));
  EXPECT_FALSE(v6->contains(*parse_ip_address("2001:db8:7:ffff::1")));
  EXPECT_FALSE(v6->contains(*parse_ip_address("2001:db8:10::1")));
  EXPECT_TRUE(parse_ip_network("0.0.0.0/0")->contains(*parse_ip_address("198.51.100.1")));
  for (const char* bad : {"192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "192.0.2.0/-1",
                          "192.0.2.0/2x", "::ffff:192.0.2.0/120", "10.0.0.0/8/8", "10.0.0.0 /8"}) {
    EXPECT_FALSE(parse_ip_network(bad)) << bad;
  }
}

namespace {

std::vector<SmtpReply> parse_replies(std::string_view input, size_t chunk, bool& error) {
  SmtpReplyParser parser;
  std::vector<SmtpReply> replies;
  error = false;
  size_t offset = 0;
  while (offset < input.size()) {
    std::string_view piece = input.substr(offset, chunk ? chunk : input.size());
    auto r = parser.feed(piece);
    offset += r.consumed;
    if (r.status == SmtpReplyParser::Status::kReply) replies.push_back(parser.reply());
    if (r.status == SmtpReplyParser::Status::kError) {
      error = true;
      break;
    }
  }
  return replies;
}

}  // namespace

TEST(SmtpReply, ParsesMultiLineRepliesFedOneByteAtATime) {
  std::string input =
      "220 mx.test ESMTP\r\n250-mx.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250 DSN\r\n"
      "550 5.1.1 <x@test.fr>: Recipient address rejected\r\n250 2.0.0 Ok: queued as 4Hx9\r\n";
  for (size_t chunk : {0u, 1u, 5u}) {
    bool error;
    auto replies = parse_replies(input, chunk, error);
    EXPECT_FALSE(error);
    ASSERT_EQ(replies.size(), 4u) << chunk;
    EXPECT_EQ(replies[0].code, 220);
    EXPECT_EQ(replies[1].lines,
              (std::vector<std::string>{"mx.test", "PIPELINING", "SIZE 52428800", "DSN"}));
    EXPECT_EQ(replies[2].code, 550);
    EXPECT_EQ(replies[2].enhanced, "5.1.1");
    EXPECT_EQ(replies[2].lines[0], "<x@test.fr>: Recipient address rejected");
    EXPECT_EQ(replies[3].lines[0], "Ok: queued as 4Hx9");
  }
}

TEST(SmtpReply, RefusesGarbageAndMixedCodes) {
  for (const char* bad : {"hello\r\n", "25\r\n", "250-a\r\n251 b\r\n", "250xyz\r\n"}) {
    bool error;
    parse_replies(bad, 1, error);
    EXPECT_TRUE(error) << bad;
  }
}

namespace {

struct DataOutcome {
  std::string content;
  size_t consumed = 0;
  bool complete = false;
};

DataOutcome read_data(std::string_view input, size_t chunk) {
  SmtpDataReader reader;
  DataOutcome out;
  size_t offset = 0;
  while (offset < input.size() && !out.complete) {
    std::string_view piece = input.substr(offset, chunk ? chunk : input.size());
    auto r = reader.feed(piece, out.content);
    offset += r.consumed;
    out.complete = r.complete;
  }
  out.consumed = offset;
  EXPECT_EQ(reader.size(), out.content.size());
  return out;
}

}  // namespace

TEST(SmtpData, FindsTheTerminatorWhereverTheReadsSplitIt) {
  std::string message = "Subject: x\r\n\r\n..leading dot\r\n.\r\nNEXT";
  for (size_t chunk : {0u, 1u, 2u, 3u}) {
    auto out = read_data(message, chunk);
    EXPECT_TRUE(out.complete) << chunk;
    EXPECT_EQ(out.content, "Subject: x\r\n\r\n.leading dot\r\n") << chunk;
    EXPECT_EQ(out.consumed, message.size() - 4) << "the next command is left unread";
  }
}

TEST(SmtpData, OnlyCrLfDotCrLfEndsTheMessage) {
  for (const std::string& tricky :
       {std::string("a\n.\nb\r\n.\r\n"), std::string("a\r\n.\nb\r\n.\r\n"),
        std::string("a\n.\r\nb\r\n.\r\n"), std::string("a\r.\r\nb\r\n.\r\n")}) {
    for (size_t chunk : {0u, 1u}) {
      auto out = read_data(tricky, chunk);
      EXPECT_TRUE(out.complete);
      EXPECT_EQ(out.consumed, tricky.size())
          << "the first dot line is not a terminator: " << tricky;
    }
  }
  auto empty = read_data(".\r\n", 1);
  EXPECT_TRUE(empty.complete);
  EXPECT_EQ(empty.content, "");
}

TEST(SmtpData, UnstuffsAStuffedDotFollowedByABareCr) {
  auto out = read_data(".\rx\r\n.\r\n", 1);
  EXPECT_TRUE(out.complete);
  EXPECT_EQ(out.content, "\rx\r\n");
}

TEST(SmtpData, WriterStuffsDotsNormalisesBareLfAndTerminates) {
  SmtpDataWriter writer;
  std::string out;
  for (char c : std::string("a\n.b\r\n..c\r\nd"))
    writer.encode(std::string_view(&c, 1), out);
  writer.finish(out);
  EXPECT_EQ(out, "a\r\n..b\r\n...c\r\nd\r\n.\r\n");
  SmtpDataWriter ends_with_crlf;
  std::string out2;
  ends_with_crlf.encode("x\r\n", out2);
  ends_with_crlf.finish(out2);
  EXPECT_EQ(out2, "x\r\n.\r\n");
}

TEST(SmtpData, WriterWithoutStuffingOnlyEndsLines) {
  // A BDAT chunk's content: line ends made CRLF, dots left alone, no terminator.
  SmtpDataWriter writer(false);
  std::string out;
  for (char c : std::string("a\n.b\r\n..c\r\nd"))
    writer.encode(std::string_view(&c, 1), out);
  writer.end_line(out);
  EXPECT_EQ(out, "a\r\n.b\r\n..c\r\nd\r\n");
  writer.end_line(out);
  EXPECT_EQ(out, "a\r\n.b\r\n..c\r\nd\r\n") << "a line already ended is left as it is";
  SmtpDataWriter after_cr(false);
  std::string out2;
  after_cr.encode("x\r", out2);
  after_cr.end_line(out2);
  EXPECT_EQ(out2, "x\r\n");
}

TEST(SmtpData, ReaderAndWriterRoundTripAnyContent) {
  std::string content;
  for (int i = 0; i < 5000; ++i)
    content += static_cast<char>("a.\r\n.\r\n..x\r"[i % 11]);
  content += "\r\n";
  SmtpDataWriter writer;
  std::string wire;
  writer.encode(content, wire);
  writer.finish(wire);
  auto out = read_data(wire, 7);
  EXPECT_TRUE(out.complete);
  EXPECT_EQ(out.consumed, wire.size());
  // Bare LFs became CRLF; nothing else changed.
  std::string normalised;
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r')) normalised += '\r';
    normalised += content[i];
  }
  EXPECT_EQ(out.content, normalised);
}

namespace {

// RFC 5321 section 4.5.2 one byte at a time, as the reader and writer first did it: what the
// run-at-a-time reader and writer must give, whatever the bytes and wherever the reads split
// them.
struct ByteReader {
  enum class State { kLineStart, kMidLine, kCr, kDot, kDotCr } state = State::kLineStart;
  // The bytes of `input` used, and whether the terminator was among them.
  std::pair<size_t, bool> feed(std::string_view input, std::string& content) {
    for (size_t i = 0; i < input.size(); ++i) {
      char c = input[i];
      switch (state) {
        case State::kLineStart:
          if (c == '.') {
            state = State::kDot;
          } else {
            content += c;
            state = c == '\r' ? State::kCr : State::kMidLine;
          }
          break;
        case State::kMidLine:
          content += c;
          if (c == '\r') state = State::kCr;
          break;
        case State::kCr:
          content += c;
          state = c == '\n' ? State::kLineStart : c == '\r' ? State::kCr : State::kMidLine;
          break;
        case State::kDot:
          if (c == '\r') {
            state = State::kDotCr;
          } else {
            content += c;
            state = State::kMidLine;
          }
          break;
        case State::kDotCr:
          if (c == '\n') {
            state = State::kLineStart;
            return {i + 1, true};
          }
          content += '\r';
          content += c;
          state = c == '\r' ? State::kCr : State::kMidLine;
          break;
      }
    }
    return {input.size(), false};
  }
};

std::string byte_encode(std::string_view content, bool& at_line_start, bool& after_cr) {
  std::string out;
  for (char c : content) {
    if (c == '\n' && !after_cr) out += '\r';
    if (c == '.' && at_line_start) out += '.';
    out += c;
    at_line_start = c == '\n';
    after_cr = c == '\r';
  }
  return out;
}

// Bytes made mostly of what changes the reader's and the writer's state.
std::string tricky_bytes(std::mt19937& random, size_t length) {
  static constexpr std::string_view kAlphabet = "..\r\r\n\nab";
  std::string bytes;
  for (size_t i = 0; i < length; ++i)
    bytes += kAlphabet[random() % kAlphabet.size()];
  return bytes;
}

}  // namespace

TEST(SmtpData, ReaderCopyingRunsReadsWhatOneByteAtATimeReads) {
  std::mt19937 random(5321);
  for (int round = 0; round < 3000; ++round) {
    std::string input = tricky_bytes(random, random() % 200);
    if (round % 3 == 0) input += "\r\n.\r\nNEXT";
    SmtpDataReader reader;
    ByteReader expected_reader;
    std::string content, expected;
    size_t offset = 0;
    bool complete = false;
    while (offset < input.size() && !complete) {
      size_t piece = 1 + random() % 9;
      std::string_view bytes = std::string_view(input).substr(offset, piece);
      auto r = reader.feed(bytes, content);
      auto [used, done] = expected_reader.feed(bytes, expected);
      ASSERT_EQ(r.consumed, used) << "round " << round << " at " << offset;
      ASSERT_EQ(r.complete, done) << "round " << round << " at " << offset;
      offset += r.consumed;
      complete = r.complete;
    }
    ASSERT_EQ(content, expected) << "round " << round;
    ASSERT_EQ(reader.size(), content.size()) << "round " << round;
  }
}

TEST(SmtpData, WriterCopyingLinesWritesWhatOneByteAtATimeWrites) {
  std::mt19937 random(5322);
  for (int round = 0; round < 3000; ++round) {
    std::string content = tricky_bytes(random, random() % 200);
    SmtpDataWriter writer;
    std::string out, expected;
    bool at_line_start = true, after_cr = false;
    for (size_t offset = 0; offset < content.size();) {
      size_t piece = 1 + random() % 9;
      std::string_view bytes = std::string_view(content).substr(offset, piece);
      writer.encode(bytes, out);
      expected += byte_encode(bytes, at_line_start, after_cr);
      offset += bytes.size();
    }
    writer.finish(out);
    if (!at_line_start) expected += after_cr ? "\n" : "\r\n";
    expected += ".\r\n";
    ASSERT_EQ(out, expected) << "round " << round;
  }
}

TEST(HeaderSection, CollectsUnfoldedFieldsFedOneByteAtATime) {
  std::string message =
      "From: \"Hôpital, Test\" <App.Hopital@Test.fr>\r\nTo: a@b.fr,\r\n\tc@d.fr\r\nMessage-ID: "
      "<1@x>\r\n\r\nbody\r\n";
  HeaderSectionReader reader(1024);
  size_t consumed = 0;
  for (char c : message) {
    auto r = reader.feed(std::string_view(&c, 1));
    consumed += r.consumed;
    if (r.status == HeaderSectionReader::Status::kComplete) break;
  }
  ASSERT_TRUE(reader.complete());
  EXPECT_EQ(consumed, message.find("body"));
  auto fields = reader.fields();
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1].value, "a@b.fr, c@d.fr");
  EXPECT_EQ(reader.values("message-id"), (std::vector<std::string>{"<1@x>"}));
  EXPECT_EQ(extract_addresses(reader.values("FROM").at(0)),
            (std::vector<std::string>{"app.hopital@test.fr"}));
}

TEST(HeaderSection, StopsAtTheCap) {
  HeaderSectionReader reader(100);
  auto r = reader.feed(std::string(200, 'x'));
  EXPECT_EQ(r.status, HeaderSectionReader::Status::kTooLarge);
  EXPECT_FALSE(reader.complete());
}

TEST(HeaderSection, ExtractsAddressesFromAddressLists) {
  EXPECT_EQ(extract_addresses("a@b.fr"), (std::vector<std::string>{"a@b.fr"}));
  EXPECT_EQ(extract_addresses("Dr X (cabinet) <x@y.fr>, \"Evil <z@z.fr>\" <w@v.fr>"),
            (std::vector<std::string>{"x@y.fr", "w@v.fr"}));
  EXPECT_EQ(extract_addresses("a@b.fr (comment <q@q.fr>)"), (std::vector<std::string>{"a@b.fr"}));
  EXPECT_EQ(extract_addresses("Group: a@b.fr, c@d.fr;"),
            (std::vector<std::string>{"a@b.fr", "c@d.fr"}));
  EXPECT_TRUE(extract_addresses("undisclosed").empty());
}
