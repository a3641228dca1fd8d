#include "protocol/imap_response.hpp"

#include <gtest/gtest.h>

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
