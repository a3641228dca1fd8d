// IMAP before login, without sockets: each scenario played whole and one byte at a time.
#include "daemon/core/imap_login_core.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core_script.hpp"

namespace mssgate::test_core {
namespace {

using core::ImapLoginCore;
using core::SignInFailure;
using Kind = ImapLoginCore::Kind;
using testing::HasSubstr;

struct Imap : ReportLog<core::SessionEvents> {
  bool tls_ok = true;
  core::SignInVerdict verdict{{}, "ok", "", "app@test.fr"};
  std::optional<std::string> capabilities = "IMAP4rev1 IDLE";

  std::string client;
  std::vector<std::string> authorized;
  std::string login_mailbox;
  std::string relayed;  // the client's bytes left for the backend
  bool relaying = false;
  bool closed = false;
  bool tls_shutdown = false;
  bool dropping_input = false;  // closed while the client may still be sending
  std::vector<size_t> pauses;   // where in `client` the core paused (after a failed sign-in)

  void play(ImapLoginCore& core, ClientInput& input) {
    for (int steps = 0; steps < 100000; ++steps) {
      auto action = core.next();
      switch (action.kind) {
        case Kind::kRead:
          if (input.exhausted()) return;
          core.on_client_bytes(input.take());
          break;
        case Kind::kWrite:
          client += action.text;
          break;
        case Kind::kStartTls:
          core.on_tls(tls_ok);
          break;
        case Kind::kAuthorize:
          if (auto* token = std::get_if<protocol::OAuthCredentials>(&core.credentials())) {
            authorized.push_back("token " + token->user);
          } else {
            authorized.push_back(
                "external " + std::get<protocol::SaslExternalRequest>(core.credentials()).authzid);
          }
          core.on_verdict(verdict);
          break;
        case Kind::kLoginBackend:
          login_mailbox = action.text;
          core.on_backend_login(capabilities);
          break;
        case Kind::kRelay:
          client += action.text;
          relaying = true;
          relayed = core.take_unread();
          while (!input.exhausted())
            relayed += input.take();
          return;
        case Kind::kPause:
          pauses.push_back(client.size());
          break;
        case Kind::kClose:
          closed = true;
          tls_shutdown = action.option;
          return;
        case Kind::kCloseDroppingInput:
          closed = true;
          dropping_input = true;
          return;
      }
    }
    FAIL() << "the core did not end";
  }
};

ImapLoginCore::Settings settings() {
  return {{200, 1000}, 4, 3, true};
}

using Setup = std::function<void(Imap&)>;

Imap play(const std::vector<std::string>& segments, const Setup& setup = {}, bool tls = true,
          Plays plays = {}) {
  std::vector<Imap> runs(plays.chunks.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    if (setup) setup(runs[i]);
    ImapLoginCore core(settings(), runs[i], tls);
    ClientInput client(segments, plays.chunks[i]);
    runs[i].play(core, client);
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_EQ(runs[0].client, runs[i].client);
    EXPECT_EQ(runs[0].events, runs[i].events);
    EXPECT_EQ(runs[0].commands, runs[i].commands);
    EXPECT_EQ(runs[0].relayed, runs[i].relayed);
    EXPECT_EQ(runs[0].closed, runs[i].closed);
    EXPECT_EQ(runs[0].pauses, runs[i].pauses);
  }
  return runs[0];
}

Imap play(const std::string& input, const Setup& setup = {}, bool tls = true) {
  return play(std::vector<std::string>{input}, setup, tls);
}

TEST(ImapLoginCore, GreetsWithCapabilitiesThatFollowTls) {
  auto plain = play("a CAPABILITY\r\n", {}, false);
  EXPECT_EQ(plain.client,
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED] mssgate "
            "ready.\r\n* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED\r\n"
            "a OK Capability completed.\r\n");
  auto tls = play("a CAPABILITY\r\n");
  EXPECT_THAT(tls.client, HasSubstr("* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=EXTERNAL "
                                    "AUTH=XOAUTH2 AUTH=OAUTHBEARER LOGINDISABLED\r\n"));
}

TEST(ImapLoginCore, SignsInWithExternalThenRelays) {
  auto s = play(
      "a1 ID (\"name\" \"lps\")\r\na2 AUTHENTICATE EXTERNAL YXBwQHRlc3QuZnI=\r\n"
      "b1 SELECT INBOX\r\n");
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2),
            "* ID (\"name\" \"mssgate\")\r\na1 OK ID completed.\r\n"
            "a2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
  EXPECT_EQ(s.authorized, std::vector<std::string>{"external app@test.fr"});
  EXPECT_EQ(s.login_mailbox, "app@test.fr");
  EXPECT_TRUE(s.relaying);
  EXPECT_EQ(s.relayed, "b1 SELECT INBOX\r\n");
  EXPECT_EQ(s.events, std::vector<std::string>{"auth EXTERNAL ok ok app@test.fr"});
}

TEST(ImapLoginCore, AuthenticateWithAContinuation) {
  auto s = play("a AUTHENTICATE external\r\n=\r\n");
  EXPECT_THAT(s.client, HasSubstr("+ \r\na OK [CAPABILITY"));
  EXPECT_EQ(s.authorized, std::vector<std::string>{"external "});
}

TEST(ImapLoginCore, StartTlsThenSignIn) {
  auto s =
      play(std::vector<std::string>{"s STARTTLS\r\n", "a AUTHENTICATE EXTERNAL =\r\n"}, {}, false);
  EXPECT_THAT(s.client, HasSubstr("s OK Begin TLS negotiation now.\r\na OK [CAPABILITY"));
  auto pipelined =
      play(std::vector<std::string>{"s STARTTLS\r\na NOOP\r\n"}, {}, false, Plays{{0}});
  EXPECT_THAT(pipelined.client, HasSubstr("s BAD STARTTLS must be the last command before the "
                                          "TLS handshake\r\n* BYE Closing\r\n"));
  EXPECT_EQ(pipelined.events, (std::vector<std::string>{"protocol_error pipelined_starttls",
                                                        "closing pipelined_after_starttls"}));
  EXPECT_TRUE(pipelined.dropping_input);
  auto failed = play(
      "s STARTTLS\r\n", [](Imap& w) { w.tls_ok = false; }, false);
  EXPECT_TRUE(failed.closed);
  auto twice = play("s STARTTLS\r\n");
  EXPECT_THAT(twice.client, HasSubstr("s BAD TLS is already active\r\n"));
}

TEST(ImapLoginCore, RefusalsOfTheSignIn) {
  struct Case {
    SignInFailure failure;
    std::string expected;
  };
  std::vector<Case> cases{
      {SignInFailure::kAuthenticationFailed, "a NO [AUTHENTICATIONFAILED] text\r\n"},
      {SignInFailure::kAuthorizationFailed, "a NO [AUTHORIZATIONFAILED] text\r\n"},
      {SignInFailure::kTemporaryFailure, "a NO [UNAVAILABLE] text\r\n"},
      {SignInFailure::kLimitReached, "a NO [LIMIT] text\r\n"},
  };
  for (const auto& c : cases) {
    auto s = play("a AUTHENTICATE EXTERNAL =\r\n", [&](Imap& w) {
      w.verdict = {c.failure, "why", "text", "m@test.fr"};
    });
    EXPECT_THAT(s.client, HasSubstr(c.expected));
    EXPECT_EQ(s.events, std::vector<std::string>{"auth EXTERNAL failed why m@test.fr"});
    EXPECT_FALSE(s.relaying);
  }
  auto backend = play("a AUTHENTICATE EXTERNAL =\r\n", [](Imap& w) { w.capabilities = {}; });
  EXPECT_THAT(backend.client, HasSubstr("a NO [UNAVAILABLE] The mailbox service is temporarily "
                                        "unavailable, try again later\r\n"));
  EXPECT_EQ(backend.events,
            std::vector<std::string>{"auth EXTERNAL failed backend_unavailable app@test.fr"});
}

TEST(ImapLoginCore, TokenRefusalSendsTheOAuthErrorChallengeFirst) {
  auto s = play("a AUTHENTICATE XOAUTH2 dXNlcj1hcHBAdGVzdC5mcgFhdXRoPUJlYXJlciB0b2sBAQ==\r\n\r\n",
                [](Imap& w) {
                  w.verdict = {SignInFailure::kAuthenticationFailed, "token_expired",
                               "The token is not valid", ""};
                });
  EXPECT_THAT(s.client, HasSubstr("+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJvcGVuaWQifQ=="
                                  "\r\na NO [AUTHENTICATIONFAILED] The token is not valid\r\n"));
  EXPECT_EQ(s.authorized, std::vector<std::string>{"token app@test.fr"});
}

TEST(ImapLoginCore, SaslMistakesCountAsFailedSignIns) {
  auto s = play(
      "a AUTHENTICATE CRAM-MD5\r\nb AUTHENTICATE EXTERNAL\r\n*\r\n"
      "c AUTHENTICATE EXTERNAL !!\r\nd NOOP\r\n");
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2),
            "a NO [CANNOT] Unsupported authentication mechanism\r\n+ \r\n"
            "b BAD Authentication cancelled\r\nc BAD Invalid SASL EXTERNAL response\r\n"
            "* BYE Too many authentication failures\r\n");
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.events.back(), "closing too_many_auth_failures");
  EXPECT_FALSE(s.dropping_input);  // the client waits for each answer: nothing is on its way
  auto no_tls = play("a AUTHENTICATE EXTERNAL =\r\n", {}, false);
  EXPECT_THAT(no_tls.client, HasSubstr("a NO [PRIVACYREQUIRED] Authentication requires TLS: use "
                                       "STARTTLS first\r\n"));
  EXPECT_EQ(no_tls.events, std::vector<std::string>{"auth EXTERNAL failed no_tls "});
}

TEST(ImapLoginCore, LoginIsDisabled) {
  auto s = play("l LOGIN a b\r\n", {}, false);
  EXPECT_THAT(s.client, HasSubstr("l NO [PRIVACYREQUIRED] LOGIN is disabled: use STARTTLS, then "
                                  "AUTHENTICATE\r\n"));
  auto tls = play("l LOGIN a b\r\n");
  EXPECT_THAT(tls.client, HasSubstr("l NO [CANNOT] LOGIN is disabled"));
  EXPECT_EQ(tls.events, std::vector<std::string>{"auth LOGIN failed login_disabled "});
}

TEST(ImapLoginCore, BadCommandsAndParseErrors) {
  auto s = play("a SELECT x\r\nb AUTHENTICATE\r\nc NOOP {5000}\r\nd (\r\ne FOO\r\n");
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2),
            "a BAD Command unknown or not available before authentication\r\n"
            "b BAD Usage: AUTHENTICATE mechanism [initial-response]\r\n"
            "c NO [TOOBIG] Literal too large\r\n"
            "d BAD Error in IMAP command: Unbalanced parentheses\r\n"
            "* BYE Too many invalid commands\r\n");
  EXPECT_EQ(s.events.back(), "closing too_many_bad_commands");
  EXPECT_TRUE(s.dropping_input);
}

TEST(ImapLoginCore, ALineOverTheCapEndsTheSession) {
  auto s = play("a NOOP " + std::string(300, 'x') + "\r\n");
  EXPECT_THAT(s.client, HasSubstr("* BYE Line too long\r\n"));
  EXPECT_EQ(s.events,
            (std::vector<std::string>{"protocol_error line_too_long", "closing line_too_long"}));
  EXPECT_TRUE(s.dropping_input);
  auto sasl = play("a AUTHENTICATE EXTERNAL\r\n" + std::string(300, 'x') + "\r\n");
  EXPECT_THAT(sasl.client, HasSubstr("+ \r\n* BYE Line too long\r\n"));
  EXPECT_TRUE(sasl.dropping_input);
}

// The rest of a non-synchronising literal over the cap is on its way: the session ends, and
// the client's bytes are read and dropped before the connection closes, so that the BYE is read.
TEST(ImapLoginCore, ANonSynchronisingLiteralOverTheCapEndsTheSession) {
  auto s = play("a ID {5000+}\r\n" + std::string(100, 'y'));
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2), "* BYE [TOOBIG] Literal too large\r\n");
  EXPECT_EQ(s.events, (std::vector<std::string>{"protocol_error literal_too_large",
                                                "closing literal_too_large"}));
  EXPECT_TRUE(s.dropping_input);
}

TEST(ImapLoginCore, LiteralsAskForAContinuation) {
  auto s = play(std::vector<std::string>{"a ID ({4}\r\n", "name \"x\")\r\n"});
  EXPECT_THAT(s.client, HasSubstr("+ Ready for literal data\r\n* ID"));
}

TEST(ImapLoginCore, LogoutClosesTls) {
  auto s = play("z LOGOUT\r\n");
  EXPECT_THAT(s.client, HasSubstr("* BYE Logging out\r\nz OK Logout completed.\r\n"));
  EXPECT_TRUE(s.tls_shutdown);
  EXPECT_FALSE(s.dropping_input);
  EXPECT_EQ(s.events, std::vector<std::string>{"closing logout"});
  EXPECT_EQ(s.commands, std::vector<std::string>{"LOGOUT"});
}

}  // namespace
}  // namespace mssgate::test_core

namespace mssgate::test_core {
namespace {

TEST(ImapLoginCore, EachFailedSignInPausesBeforeItsAnswer) {
  auto s = play("a AUTHENTICATE EXTERNAL =\r\nb LOGIN x y\r\nc AUTHENTICATE EXTERNAL !!\r\n",
                [](Imap& w) {
                  w.verdict = {SignInFailure::kAuthorizationFailed, "why", "no", ""};
                });
  // Each pause comes right before the answer of its attempt, nothing of it written yet.
  ASSERT_EQ(s.pauses.size(), 3u);
  EXPECT_EQ(s.client.substr(s.pauses[0]).rfind("a NO [AUTHORIZATIONFAILED] no\r\n", 0), 0u);
  EXPECT_EQ(s.client.substr(s.pauses[1]).rfind("b NO [CANNOT] LOGIN is disabled", 0), 0u);
  EXPECT_EQ(s.client.substr(s.pauses[2]).rfind("c BAD Invalid SASL EXTERNAL response", 0), 0u);
  // A sign-in that succeeds does not pause.
  EXPECT_TRUE(play("a AUTHENTICATE EXTERNAL =\r\n").pauses.empty());
}

TEST(ImapLoginCore, CommandsBeforeAuthenticationAreCapped) {
  std::string input;
  for (int i = 0; i < 30; ++i)
    input += "n" + std::to_string(i) + (i % 2 ? " CAPABILITY\r\n" : " NOOP\r\n");
  auto at_cap = play(input);
  EXPECT_FALSE(at_cap.closed);
  auto over = play(input + "x ID NIL\r\ny NOOP\r\n");
  EXPECT_THAT(over.client, HasSubstr("n29 OK Capability completed.\r\n"
                                     "* BYE Too many commands before authentication\r\n"));
  EXPECT_THAT(over.client, testing::Not(HasSubstr("x OK")));
  EXPECT_TRUE(over.dropping_input);
  EXPECT_EQ(over.events.back(), "closing too_many_pre_auth_commands");
}

}  // namespace
}  // namespace mssgate::test_core
