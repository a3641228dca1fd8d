#include "protocol/sasl_external.hpp"

#include <gtest/gtest.h>

#include "protocol/base64.hpp"
#include "protocol/imap_command_parser.hpp"

using namespace mssgate::protocol;

TEST(SaslExternal, EmptyResponseMeansTheCertificateIdentity) {
  for (const char* empty : {"", "="}) {
    auto r = decode_sasl_external(empty);
    ASSERT_TRUE(std::holds_alternative<SaslExternalRequest>(r)) << empty;
    EXPECT_EQ(std::get<SaslExternalRequest>(r).authzid, "");
  }
}

TEST(SaslExternal, DecodesTheAuthorizationIdentity) {
  auto r = decode_sasl_external(base64_encode("app.hopital@test.mssante.fr"));
  ASSERT_TRUE(std::holds_alternative<SaslExternalRequest>(r));
  EXPECT_EQ(std::get<SaslExternalRequest>(r).authzid, "app.hopital@test.mssante.fr");
}

TEST(SaslExternal, RefusesCancelGarbageAndHostileIdentities) {
  EXPECT_EQ(std::get<SaslExternalError>(decode_sasl_external("*")), SaslExternalError::kCancelled);
  EXPECT_EQ(std::get<SaslExternalError>(decode_sasl_external("not base64!")),
            SaslExternalError::kBadBase64);
  EXPECT_EQ(std::get<SaslExternalError>(decode_sasl_external("YQ")), SaslExternalError::kBadBase64);
  for (const std::string& bad :
       {std::string("a\0b@x.fr", 8), std::string("a\r\nb@x.fr"), std::string("\xff\xfe"),
        std::string("\xc3"), std::string(400, 'a')}) {
    EXPECT_EQ(std::get<SaslExternalError>(decode_sasl_external(base64_encode(bad))),
              SaslExternalError::kInvalidAuthzid);
  }
  auto utf8 = decode_sasl_external(base64_encode("h\xc3\xb4pital@test.fr"));
  EXPECT_TRUE(std::holds_alternative<SaslExternalRequest>(utf8));
  utf8 = decode_sasl_external(base64_encode("\xf0\x9f\x8f\xa5@test.fr"));  // U+1F3E5
  EXPECT_TRUE(std::holds_alternative<SaslExternalRequest>(utf8));
}

// Bytes of UTF-8's shape that are not UTF-8 (RFC 3629 §3), and C1 controls: first found by the
// sasl fuzz target (tests/fuzz/regressions/sasl/), which fed "F4 90 80 80" (above U+10FFFF).
TEST(SaslExternal, RefusesWhatIsNotUtf8AndC1Controls) {
  for (const std::string& bad : {std::string("\xf4\x90\x80\x80@x.fr"),  // U+110000
                                 std::string("\xed\xa0\x80@x.fr"),      // a surrogate, U+D800
                                 std::string("\xe0\x80\xaf@x.fr"),  // "/" written in three bytes
                                 std::string("\xf0\x80\x80\xaf@x.fr"),  // "/" written in four bytes
                                 std::string("a\xc2\x85@x.fr"),         // NEL, a C1 control
                                 std::string("a\xc2\x9b@x.fr")}) {      // CSI, a C1 control
    auto r = decode_sasl_external(base64_encode(bad));
    EXPECT_TRUE(std::holds_alternative<SaslExternalError>(r) &&
                std::get<SaslExternalError>(r) == SaslExternalError::kInvalidAuthzid)
        << "accepted: " << base64_encode(bad);
  }
  auto nbsp =
      decode_sasl_external(base64_encode("a\xc2\xa0"
                                         "b@x.fr"));  // U+00A0 is no control
  EXPECT_TRUE(std::holds_alternative<SaslExternalRequest>(nbsp));
}

// The exchange as the session sees it: command, "+", then the client's line, fed one byte at
// a time through the tokenizer and decoded.
TEST(SaslExternal, DecodesAContinuationResponseFedOneByteAtATime) {
  std::string wire =
      "a1 AUTHENTICATE EXTERNAL\r\n" + base64_encode("app.labo@test.mssante.fr") + "\r\n";
  ImapCommandParser parser({});
  std::optional<std::string> authzid;
  for (char c : wire) {
    auto r = parser.feed(std::string_view(&c, 1));
    ASSERT_EQ(r.consumed, 1u);
    if (r.status == ImapCommandParser::Status::kCommand) {
      ASSERT_EQ(parser.command().name, "AUTHENTICATE");
      ASSERT_EQ(parser.command().args.size(), 1u);
      parser.expect_raw_line();
    } else if (r.status == ImapCommandParser::Status::kRawLine) {
      auto decoded = decode_sasl_external(parser.raw_line());
      ASSERT_TRUE(std::holds_alternative<SaslExternalRequest>(decoded));
      authzid = std::get<SaslExternalRequest>(decoded).authzid;
    }
  }
  EXPECT_EQ(authzid, "app.labo@test.mssante.fr");
}

TEST(SaslExternal, DecodesAnInitialResponseFedOneByteAtATime) {
  std::string wire =
      "a1 AUTHENTICATE EXTERNAL " + base64_encode("app.labo@test.mssante.fr") + "\r\n";
  ImapCommandParser parser({});
  for (char c : wire) {
    auto r = parser.feed(std::string_view(&c, 1));
    if (r.status == ImapCommandParser::Status::kCommand) {
      ASSERT_EQ(parser.command().args.size(), 2u);
      auto decoded = decode_sasl_external(parser.command().args[1].value);
      ASSERT_TRUE(std::holds_alternative<SaslExternalRequest>(decoded));
      EXPECT_EQ(std::get<SaslExternalRequest>(decoded).authzid, "app.labo@test.mssante.fr");
      return;
    }
  }
  FAIL() << "no command parsed";
}
