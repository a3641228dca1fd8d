// The smaller pieces of the session cores: the SASL exchange, the Dovecot login, the Postfix
// dialogue and the message stream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core_script.hpp"
#include "daemon/core/dovecot_login.hpp"
#include "daemon/core/message_stream.hpp"
#include "daemon/core/postfix_dialogue.hpp"
#include "daemon/core/sasl_exchange.hpp"
#include "protocol/base64.hpp"

namespace mssgate::test_core {
namespace {

using core::SaslExchange;
using core::SignInFailure;
using Step = SaslExchange::Step;

// ---- SASL --------------------------------------------------------------------------------

TEST(SaslExchange, GatesTheMechanisms) {
  EXPECT_EQ(SaslExchange("PLAIN", true).start(std::nullopt), Step::kDone);
  SaslExchange no_tokens("XOAUTH2", false);
  EXPECT_EQ(no_tokens.start("x"), Step::kDone);
  EXPECT_EQ(no_tokens.outcome().failure, SignInFailure::kUnsupportedMechanism);
  EXPECT_EQ(no_tokens.outcome().reason, "unsupported_mechanism");
  SaslExchange lower("external", false);
  EXPECT_EQ(lower.mechanism(), "EXTERNAL");
  EXPECT_EQ(lower.start("="), Step::kAuthorize);
}

TEST(SaslExchange, ChallengesWhenThereIsNoInitialResponse) {
  SaslExchange exchange("EXTERNAL", false);
  EXPECT_EQ(exchange.start(std::nullopt), Step::kChallenge);
  EXPECT_EQ(exchange.challenge(), "");
  EXPECT_EQ(exchange.on_response(protocol::base64_encode("app@test.fr")), Step::kAuthorize);
  EXPECT_EQ(std::get<protocol::SaslExternalRequest>(exchange.credentials()).authzid, "app@test.fr");
  EXPECT_EQ(exchange.on_verdict({{}, "ok", "", "app@test.fr"}), Step::kDone);
  EXPECT_FALSE(exchange.outcome().failure);
}

TEST(SaslExchange, MalformedAndCancelled) {
  SaslExchange cancelled("OAUTHBEARER", true);
  EXPECT_EQ(cancelled.start("*"), Step::kDone);
  EXPECT_EQ(cancelled.outcome().failure, SignInFailure::kCancelled);
  SaslExchange garbage("XOAUTH2", true);
  EXPECT_EQ(garbage.start("!!!"), Step::kDone);
  EXPECT_EQ(garbage.outcome().failure, SignInFailure::kMalformedResponse);
  EXPECT_EQ(garbage.outcome().reason, "bad_base64");
}

TEST(SaslExchange, TokenRefusalsGoThroughTheErrorChallenge) {
  for (auto failure : {SignInFailure::kAuthenticationFailed, SignInFailure::kAuthorizationFailed}) {
    SaslExchange exchange("XOAUTH2", true);
    auto token = protocol::base64_encode(
        "user=a@b.fr\x01"
        "auth=Bearer t\x01\x01");
    ASSERT_EQ(exchange.start(token), Step::kAuthorize);
    EXPECT_EQ(std::get<protocol::OAuthCredentials>(exchange.credentials()).token, "t");
    ASSERT_EQ(exchange.on_verdict({failure, "token_inactive", "The token is not valid", ""}),
              Step::kChallenge);
    EXPECT_EQ(exchange.challenge(), protocol::oauth_error_challenge("invalid_token", "openid"));
    ASSERT_EQ(exchange.on_response(""), Step::kDone);
    EXPECT_EQ(exchange.outcome().failure, failure);
    EXPECT_EQ(exchange.outcome().reason, "token_inactive");
  }
  // A temporary failure is no verdict on the token: no challenge.
  SaslExchange exchange("XOAUTH2", true);
  exchange.start(
      protocol::base64_encode("user=a@b.fr\x01"
                              "auth=Bearer t\x01\x01"));
  EXPECT_EQ(exchange.on_verdict({SignInFailure::kTemporaryFailure, "x", "", ""}), Step::kDone);
  // Certificates have no such challenge.
  SaslExchange external("EXTERNAL", true);
  external.start("=");
  EXPECT_EQ(external.on_verdict({SignInFailure::kAuthenticationFailed, "x", "", ""}), Step::kDone);
}

// ---- Dovecot login ----------------------------------------------------------------------

struct LoginRun {
  std::vector<std::string> written;
  std::optional<std::string> capabilities;
  std::string failed_step;
  std::string failure;
};

// Plays Dovecot's lines (nothing left: the connection is lost).
LoginRun login(std::vector<std::string> lines, bool write_fails = false) {
  core::DovecotLogin login({"app@test.fr", "master", "secret", "192.0.2.1", 40000, "127.0.0.1", 143,
                            "0123456789abcdef"});
  LoginRun run;
  size_t next = 0;
  for (int steps = 0; steps < 100; ++steps) {
    auto action = login.next();
    switch (action.kind) {
      case core::DovecotLogin::Kind::kReadLine:
        if (next < lines.size()) {
          login.on_line(lines[next++]);
        } else {
          login.on_connection_lost(false);
        }
        break;
      case core::DovecotLogin::Kind::kWrite:
        run.written.push_back(action.text);
        if (write_fails) login.on_connection_lost(true);
        break;
      case core::DovecotLogin::Kind::kDone:
        run.capabilities = action.text;
        return run;
      case core::DovecotLogin::Kind::kFailed:
        run.failed_step = login.step();
        run.failure = action.text;
        return run;
    }
  }
  ADD_FAILURE() << "the login did not end";
  return run;
}

const std::string kPlain = protocol::base64_encode(std::string("app@test.fr\0master\0secret", 25));

TEST(DovecotLogin, LogsInWithSaslIrAndTakesTheCapabilitiesOfTheAnswer) {
  auto run = login({"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready", "M1 OK ID done",
                    "M2 OK [CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN MOVE] Logged in"});
  ASSERT_EQ(run.written.size(), 1u);
  EXPECT_EQ(run.written[0],
            "M1 ID (\"x-originating-ip\" \"192.0.2.1\" \"x-originating-port\" \"40000\" "
            "\"x-connected-ip\" \"127.0.0.1\" \"x-connected-port\" \"143\" \"x-session-ext-id\" "
            "\"0123456789abcdef\")\r\nM2 AUTHENTICATE PLAIN " +
                kPlain + "\r\n");
  // The authentication capabilities are the gateway's business.
  EXPECT_EQ(run.capabilities, "IMAP4rev1 IDLE MOVE");
}

TEST(DovecotLogin, WithoutSaslIrAnswersTheContinuationAndAsksTheCapabilities) {
  auto run = login(
      {"* OK ready", "M1 OK", "+ ", "M2 OK Logged in", "* CAPABILITY IMAP4rev1 ID", "M3 OK done"});
  ASSERT_EQ(run.written.size(), 3u);
  EXPECT_THAT(run.written[0], testing::EndsWith("M2 AUTHENTICATE PLAIN\r\n"));
  EXPECT_EQ(run.written[1], kPlain + "\r\n");
  EXPECT_EQ(run.written[2], "M3 CAPABILITY\r\n");
  EXPECT_EQ(run.capabilities, "IMAP4rev1 ID");
  EXPECT_EQ(login({"* OK ready", "M2 OK", "M3 OK"}).capabilities, "IMAP4rev1");
  EXPECT_EQ(login({"* OK ready", "* CAPABILITY IMAP4rev1 X", "M2 OK"}).capabilities, "IMAP4rev1 X");
}

TEST(DovecotLogin, FailuresNameTheirStep) {
  auto no_greeting = login({});
  EXPECT_EQ(no_greeting.failed_step + ": " + no_greeting.failure, "greeting: no greeting");
  auto bye = login({"* BYE go away"});
  EXPECT_EQ(bye.failed_step + ": " + bye.failure, "greeting: unexpected greeting");
  auto refused = login({"* OK ready", "M2 NO [AUTHENTICATIONFAILED] no"});
  EXPECT_EQ(refused.failed_step + ": " + refused.failure,
            "login: refused: NO AUTHENTICATIONFAILED");
  auto lost = login({"* OK ready", "M1 OK"});
  EXPECT_EQ(lost.failed_step + ": " + lost.failure, "login: connection lost");
  auto unwritable = login({"* OK ready"}, true);
  EXPECT_EQ(unwritable.failed_step + ": " + unwritable.failure, "login: write failed");
  auto no_caps = login({"* OK ready", "M2 OK"});
  EXPECT_EQ(no_caps.failed_step + ": " + no_caps.failure, "capability: connection lost");
}

// ---- Postfix dialogue -------------------------------------------------------------------

struct DialogueRun {
  std::vector<std::string> written;
  bool done = false;
  std::string failed;
  core::PostfixFeatures features;
};

DialogueRun converse(core::PostfixDialogue dialogue,
                     std::vector<std::optional<protocol::SmtpReply>> replies) {
  DialogueRun run;
  size_t next = 0;
  for (int steps = 0; steps < 20; ++steps) {
    auto action = dialogue.next();
    switch (action.kind) {
      case core::PostfixDialogue::Kind::kWrite:
        run.written.push_back(action.text);
        break;
      case core::PostfixDialogue::Kind::kReadReply:
        dialogue.on_reply(next < replies.size() ? replies[next++] : std::nullopt);
        break;
      case core::PostfixDialogue::Kind::kDone:
        run.done = true;
        run.features = dialogue.features();
        return run;
      case core::PostfixDialogue::Kind::kFailed:
        run.failed = std::string(dialogue.step()) + ": " + action.text;
        return run;
    }
  }
  ADD_FAILURE() << "the dialogue did not end";
  return run;
}

protocol::SmtpReply ehlo(std::vector<std::string> lines) {
  protocol::SmtpReply r = reply(250);
  r.lines = std::move(lines);
  return r;
}

TEST(PostfixDialogue, GreetsAndLearnsTheFeatures) {
  auto run = converse(core::PostfixDialogue::greet("gw.test"),
                      {reply(220), ehlo({"mx", "PIPELINING", "XCLIENT NAME ADDR", "dsn"})});
  EXPECT_TRUE(run.done);
  EXPECT_EQ(run.written, std::vector<std::string>{"EHLO gw.test\r\n"});
  EXPECT_TRUE(run.features.xclient);
  EXPECT_TRUE(run.features.dsn);
  EXPECT_FALSE(run.features.smtputf8);
  EXPECT_EQ(converse(core::PostfixDialogue::greet("g"), {reply(554)}).failed,
            "greeting: unexpected greeting");
  EXPECT_EQ(converse(core::PostfixDialogue::greet("g"), {}).failed, "greeting: no greeting");
  EXPECT_EQ(converse(core::PostfixDialogue::greet("g"), {reply(220), reply(502)}).failed,
            "ehlo: refused");
  EXPECT_EQ(converse(core::PostfixDialogue::greet("g"), {reply(220)}).failed, "ehlo: no answer");
}

TEST(PostfixDialogue, IntroducesTheClientWithXclient) {
  core::XclientIdentity identity{"2001:db8::1", 50000, "lps.hopital.fr", "app@test.fr"};
  core::PostfixFeatures features{true, false, false};
  auto run = converse(core::PostfixDialogue::introduce(identity, features, "gw.test"),
                      {reply(220), ehlo({"mx"})});
  EXPECT_TRUE(run.done);
  EXPECT_EQ(run.written,
            (std::vector<std::string>{"XCLIENT ADDR=IPV6:2001:db8::1 PORT=50000 PROTO=ESMTP "
                                      "HELO=lps.hopital.fr LOGIN=app@test.fr\r\n",
                                      "EHLO lps.hopital.fr\r\n"}));
  identity.helo.clear();
  auto anonymous = converse(core::PostfixDialogue::introduce(identity, features, "gw.test"),
                            {reply(220), ehlo({"mx"})});
  EXPECT_THAT(anonymous.written[0], testing::HasSubstr("HELO=unknown"));
  EXPECT_EQ(anonymous.written[1], "EHLO gw.test\r\n");
  EXPECT_EQ(converse(core::PostfixDialogue::introduce(identity, {}, "g"), {}).failed,
            "xclient: the backend does not offer XCLIENT to this host");
  EXPECT_EQ(
      converse(core::PostfixDialogue::introduce(identity, features, "g"), {reply(550)}).failed,
      "xclient: refused");
}

TEST(PostfixDialogue, PostfixHearsADomainOrAnAddressLiteralForTheClientsName) {
  core::PostfixFeatures features{true, false, false};
  auto written = [&](const core::XclientIdentity& identity) {
    return converse(core::PostfixDialogue::introduce(identity, features, "gw.test"),
                    {reply(220), ehlo({"mx"})})
        .written;
  };
  using namespace std::string_literals;
  // Anything else than a domain or an address literal: the client's address as a literal.
  for (const std::string& helo : {"lps host"s, "my_pc"s, "a\rRCPT TO:<x@y.fr>"s, "x\0y"s,
                                  "lps LOGIN=other@test.fr"s, std::string(300, 'a')}) {
    auto v4 = written({"192.0.2.7", 40000, helo, "app@test.fr"});
    EXPECT_EQ(v4, (std::vector<std::string>{"XCLIENT ADDR=192.0.2.7 PORT=40000 PROTO=ESMTP "
                                            "HELO=[192.0.2.7] LOGIN=app@test.fr\r\n",
                                            "EHLO [192.0.2.7]\r\n"}))
        << helo;
    auto v6 = written({"2001:db8::1", 40000, helo, "app@test.fr"});
    EXPECT_EQ(v6.at(1), "EHLO [IPv6:2001:db8::1]\r\n") << helo;
    EXPECT_THAT(v6.at(0), testing::HasSubstr(" HELO=[IPv6:2001:db8::1] ")) << helo;
  }
  for (const std::string& helo : {"[198.51.100.4]"s, "[IPv6:2001:db8::5]"s, "DESKTOP-4F2K9"s}) {
    auto kept = written({"192.0.2.7", 40000, helo, "app@test.fr"});
    EXPECT_EQ(kept.at(1), "EHLO " + helo + "\r\n");
    EXPECT_THAT(kept.at(0), testing::HasSubstr(" HELO=" + helo + " "));
  }
}

// ---- message stream ---------------------------------------------------------------------

struct Streamed {
  std::string backend;
  std::vector<std::string> fed;  // the non-kMore results, in order
  std::string fingerprint;
  uint64_t size = 0;
  std::string message_id;
};

std::string_view fed_name(core::MessageStream::Fed fed) {
  switch (fed) {
    case core::MessageStream::Fed::kMore:
      return "more";
    case core::MessageStream::Fed::kHeaderReady:
      return "header_ready";
    case core::MessageStream::Fed::kTooLarge:
      return "too_large";
    case core::MessageStream::Fed::kHeaderTooLarge:
      return "header_too_large";
  }
  return "?";
}

// Streams `wire` as DATA in pieces of `chunk` bytes; the header is released when ready.
Streamed stream_data(std::string_view wire, size_t chunk, core::MessageStream::Settings settings) {
  core::MessageStream stream(settings);
  Streamed out;
  size_t offset = 0;
  bool complete = false;
  std::string inspected;
  while (!complete && offset < wire.size()) {
    auto fed = stream.feed_data(wire.substr(offset, chunk));
    inspected += stream.take_inspection_bytes();
    offset += fed.consumed;
    complete = fed.complete;
    if (fed.fed != core::MessageStream::Fed::kMore) out.fed.emplace_back(fed_name(fed.fed));
    if (fed.fed == core::MessageStream::Fed::kHeaderReady) stream.release_header();
    out.backend += stream.take_backend_bytes();
  }
  if (complete && stream.streaming()) out.backend += stream.backend_terminator();
  if (settings.fingerprint) out.fingerprint = stream.fingerprint();
  if (stream.inspecting()) {
    protocol::MessageInspector inspector;
    inspector.feed(inspected);
    out.message_id = inspector.finish().message_id;
  }
  out.size = stream.size();
  return out;
}

TEST(MessageStream, FedWholeOrByteByByteGivesTheSameMessage) {
  std::string wire = "From: a@b.fr\r\nMessage-ID: <x@y>\r\n\r\n..dot\nbare lf\r\nend\r\n.\r\nNEXT";
  core::MessageStream::Settings settings;
  settings.hold_header = true;
  settings.fingerprint = true;
  settings.inspect = true;
  auto whole = stream_data(wire, wire.size(), settings);
  auto bytes = stream_data(wire, 1, settings);
  EXPECT_EQ(whole.backend,
            "From: a@b.fr\r\nMessage-ID: <x@y>\r\n\r\n..dot\r\nbare lf\r\nend\r\n.\r\n");
  EXPECT_EQ(whole.backend, bytes.backend);
  EXPECT_EQ(whole.fingerprint, bytes.fingerprint);
  EXPECT_EQ(whole.fingerprint.size(), 64u);
  EXPECT_EQ(whole.size, bytes.size);
  EXPECT_EQ(whole.size, 54u);
  EXPECT_EQ(whole.message_id, "<x@y>");
  EXPECT_EQ(bytes.message_id, "<x@y>");
  EXPECT_EQ(whole.fed, std::vector<std::string>{"header_ready"});
  EXPECT_EQ(bytes.fed, std::vector<std::string>{"header_ready"});
}

TEST(MessageStream, HoldsTheHeaderUntilReleasedAndDiscardsWhenTold) {
  core::MessageStream::Settings settings;
  settings.hold_header = true;
  core::MessageStream stream(settings);
  EXPECT_EQ(stream.feed_content("From: a@b.fr\r\n", false), core::MessageStream::Fed::kMore);
  EXPECT_EQ(stream.take_backend_bytes(), "");
  EXPECT_EQ(stream.feed_content("\r\nbody", false), core::MessageStream::Fed::kHeaderReady);
  EXPECT_EQ(stream.headers().values("From"), std::vector<std::string>{"a@b.fr"});
  EXPECT_EQ(stream.take_backend_bytes(), "");
  stream.discard();
  stream.feed_content(" more\r\n", true);
  EXPECT_EQ(stream.take_backend_bytes(), "");
  EXPECT_TRUE(stream.discarded());
  EXPECT_EQ(stream.size(), 27u);
}

TEST(MessageStream, CapsTheMessageAndItsHeader) {
  core::MessageStream::Settings settings;
  settings.hold_header = true;
  settings.max_message_bytes = 20;
  settings.max_header_bytes = 10;
  core::MessageStream header(settings);
  EXPECT_EQ(header.feed_content("Subject: a long one\r\n", false),
            core::MessageStream::Fed::kTooLarge);
  settings.max_message_bytes = 0;
  core::MessageStream only_header(settings);
  EXPECT_EQ(only_header.feed_content("Subject: a long one\r\n", false),
            core::MessageStream::Fed::kHeaderTooLarge);
  EXPECT_TRUE(only_header.header_too_large());
  settings.hold_header = false;
  settings.max_message_bytes = 10;
  core::MessageStream streaming(settings);
  EXPECT_EQ(streaming.feed_content("0123456789", false), core::MessageStream::Fed::kMore);
  EXPECT_EQ(streaming.take_backend_bytes(), "0123456789");
  EXPECT_EQ(streaming.feed_content("!", false), core::MessageStream::Fed::kTooLarge);
  EXPECT_TRUE(streaming.too_large());
  EXPECT_EQ(streaming.take_backend_bytes(), "");
}

}  // namespace
}  // namespace mssgate::test_core
