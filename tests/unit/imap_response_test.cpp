#include "protocol/imap_response.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

using namespace mssgate::protocol;

TEST(ImapResponse, ParsesGreetingWithCapabilities) {
  auto r = parse_imap_response_line(
      "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] "
      "Dovecot ready.");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, ImapResponseLine::Kind::kUntagged);
  EXPECT_EQ(r->status, "OK");
  EXPECT_EQ(r->code, "CAPABILITY");
  EXPECT_EQ(r->text, "Dovecot ready.");
  auto caps = split_capabilities(r->code_args);
  EXPECT_EQ(caps.size(), 8u);
  EXPECT_EQ(caps.front(), "IMAP4rev1");
}

TEST(ImapResponse, ParsesTaggedAndContinuationLines) {
  auto tagged = parse_imap_response_line("M2 no [AUTHENTICATIONFAILED] Authentication failed.");
  ASSERT_TRUE(tagged);
  EXPECT_EQ(tagged->kind, ImapResponseLine::Kind::kTagged);
  EXPECT_EQ(tagged->tag, "M2");
  EXPECT_EQ(tagged->status, "NO");
  EXPECT_EQ(tagged->code, "AUTHENTICATIONFAILED");
  auto cont = parse_imap_response_line("+ ");
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->kind, ImapResponseLine::Kind::kContinuation);
  EXPECT_FALSE(parse_imap_response_line(""));
  EXPECT_FALSE(parse_imap_response_line("* OK [CAPABILITY unterminated"));
}

TEST(ImapResponse, PostLoginCapabilitiesDropAuthenticationOnes) {
  EXPECT_EQ(post_login_capabilities({"IMAP4rev1", "SASL-IR", "AUTH=PLAIN", "auth=login", "STARTTLS",
                                     "LOGINDISABLED", "IDLE", "MOVE"}),
            "IMAP4rev1 IDLE MOVE");
}

TEST(ImapResponse, QuotesValuesSafely) {
  EXPECT_EQ(imap_quote("127.0.0.1"), "\"127.0.0.1\"");
  EXPECT_EQ(imap_quote("a\"b\\c\r\nd"), "\"a\\\"b\\\\cd\"");
}

namespace {

// The points of `stream` (byte counts) where the framing says a response has just ended, when
// fed `step` bytes at a time.
std::vector<size_t> boundaries(std::string_view stream, size_t step) {
  ImapResponseFraming framing;
  std::vector<size_t> found;
  for (size_t at = 0; at < stream.size(); at += step) {
    framing.feed(stream.substr(at, step));
    if (framing.at_boundary()) found.push_back(std::min(at + step, stream.size()));
  }
  return found;
}

}  // namespace

TEST(ImapResponseFraming, FindsTheEndOfEachResponseLiteralsIncluded) {
  const std::string greeting = "* OK ready\r\n";
  const std::string fetch = "* 1 FETCH (UID 7 BODY[] {12}\r\nA\r\n* BYE x\r\n)\r\n";
  const std::string tagged = "f1 OK Fetch completed.\r\n";
  const std::string stream = greeting + fetch + tagged;
  const std::vector<size_t> expected{greeting.size(), greeting.size() + fetch.size(),
                                     stream.size()};
  EXPECT_EQ(boundaries(stream, 1), expected);  // one byte at a time
  ImapResponseFraming whole;
  EXPECT_TRUE(whole.at_boundary());
  whole.feed(stream);
  EXPECT_TRUE(whole.at_boundary());
  EXPECT_FALSE(whole.said_bye()) << "a BYE inside a literal is the message's text";
}

TEST(ImapResponseFraming, IsInsideAResponseWhereverItIsCut) {
  const std::string stream = "* 2 FETCH (BODY[HEADER] {6}\r\nab\r\n\r\n BODY[TEXT] {0}\r\n)\r\n";
  ImapResponseFraming framing;
  for (size_t i = 0; i + 1 < stream.size(); ++i) {
    framing.feed(stream.substr(i, 1));
    EXPECT_FALSE(framing.at_boundary()) << "after " << i + 1 << " bytes";
  }
  framing.feed(stream.substr(stream.size() - 1));
  EXPECT_TRUE(framing.at_boundary());
}

TEST(ImapResponseFraming, ReadsLiteralMarkersOnlyAtTheEndOfALine) {
  // Braces elsewhere (a quoted string, a mailbox name) announce nothing; "{n+}" and "~{n}" do.
  for (std::string line : {"* LIST () \"/\" \"a{3}b\"\r\n", "* OK {3} not a literal\r\n",
                           "* OK {}\r\n", "* OK {x}\r\n", "* OK {123456789012345678901}\r\n"}) {
    ImapResponseFraming framing;
    framing.feed(line);
    EXPECT_TRUE(framing.at_boundary()) << line;
  }
  for (std::string line : {"* 1 FETCH (BINARY[1] ~{2}\r\n", "* 1 FETCH (BODY[] {2+}\r\n"}) {
    ImapResponseFraming framing;
    framing.feed(line);
    EXPECT_FALSE(framing.at_boundary()) << line;
    framing.feed("\r\n");
    EXPECT_FALSE(framing.at_boundary()) << line;
    framing.feed(")\r\n");
    EXPECT_TRUE(framing.at_boundary()) << line;
  }
  // A line far longer than what is kept of it still ends where it ends.
  ImapResponseFraming framing;
  framing.feed("* SEARCH" + std::string(100000, '1') + " {3}\r\n");
  EXPECT_FALSE(framing.at_boundary());
  framing.feed("abc)\r\n");
  EXPECT_TRUE(framing.at_boundary());
}

TEST(ImapResponseFraming, NotesTheServersOwnBye) {
  for (auto [stream, bye] : std::vector<std::pair<std::string, bool>>{
           {"* BYE Logging out\r\na9 OK Logout completed.\r\n", true},
           {"* bye\r\n", true},
           {"* BYEBYE\r\n", false},
           {"a1 BYE\r\n", false},
           {"* OK [ALERT] BYE soon\r\n", false}}) {
    for (size_t step : {size_t{1}, size_t{3}, stream.size()}) {
      ImapResponseFraming framing;
      for (size_t at = 0; at < stream.size(); at += step)
        framing.feed(std::string_view(stream).substr(at, step));
      EXPECT_EQ(framing.said_bye(), bye) << stream << " by " << step;
      EXPECT_TRUE(framing.at_boundary());
    }
  }
}
