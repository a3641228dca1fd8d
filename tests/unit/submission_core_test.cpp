// The submission core, without sockets: each scenario is played with the client's bytes whole
// and one byte at a time, and must give the same answers, backend traffic and reports.
#include "daemon/core/submission_core.hpp"

#include <gtest/gtest.h>

#include <deque>

#include "core_script.hpp"

namespace mssgate::test_core {
namespace {

using core::SignInFailure;
using core::SubmissionCore;
using Kind = SubmissionCore::Kind;
using testing::HasSubstr;

constexpr const char* kMailbox = "app@test.fr";

// The world around one submission session.
struct Submission : ReportLog<core::SubmissionEvents> {
  // What the outside answers.
  bool tls_ok = true;
  core::SignInVerdict verdict{{}, "ok", "", kMailbox};
  std::vector<std::string> allowed_senders;
  core::PostfixFeatures features{true, true, false};
  bool backend_ready = true;
  std::function<std::optional<protocol::SmtpReply>(const std::string&)> backend =
      [](const std::string& line) -> std::optional<protocol::SmtpReply> {
    if (line.starts_with("DATA")) return reply(354, "", "go ahead");
    return reply(250, "2.0.0", "Ok");
  };
  std::optional<protocol::SmtpReply> end_reply = reply(250, "2.0.0", "Ok: queued as 4XyZ");
  bool written = true;
  bool stopping = false;

  // What happened.
  std::string client;
  std::vector<std::string> backend_commands;
  std::vector<std::string> backend_writes;  // each write of commands, as it went
  std::deque<std::optional<protocol::SmtpReply>> unread_replies;
  std::string backend_data;
  std::string backend_at_end_of_inspection;  // backend_data when the inspection was ended
  std::vector<core::SentMessage> recorded;
  Inspection inspection;
  std::vector<std::string> authorized;  // the credentials' authzid / user
  int drops = 0;
  bool closed = false;
  bool tls_shutdown = false;
  bool dropping_input = false;  // closed while the client may still be sending
  std::vector<size_t> pauses;   // where in `client` the core paused (after a failed sign-in)

  void sender_refused(std::string_view where, std::string_view field,
                      std::string_view detail) override {
    std::string line = "sender_refused " + std::string(where);
    if (!field.empty()) line += " " + std::string(field) + " " + std::string(detail);
    events.push_back(line);
  }
  void message_finished(const core::MessageOutcome& o) override {
    events.push_back("message " + std::string(o.result) + " " + std::string(o.reason) +
                     " size=" + std::to_string(o.size) + " rcpt=" + std::to_string(o.recipients) +
                     " id=" + o.message_id + " queue=" + o.queue_id);
  }
  void transaction(bool open) override {
    if (open) events.emplace_back("transaction open");
  }
  bool draining() const override { return stopping; }

  void play(SubmissionCore& core, ClientInput& input) {
    for (int steps = 0; steps < 100000; ++steps) {
      auto action = core.next();
      switch (action.kind) {
        case Kind::kRead:
          if (input.exhausted()) return core.on_client_gone();
          core.on_client_bytes(input.take());
          break;
        case Kind::kWrite:
          client += action.text;
          break;
        case Kind::kStartTls:
          core.on_tls(tls_ok);
          break;
        case Kind::kAuthorize:
          authorized.push_back(credentials_text(core.credentials()));
          core.on_verdict(verdict, verdict.failure ? std::vector<std::string>() : allowed_senders);
          break;
        case Kind::kLearnFeatures:
          core.on_features(features);
          break;
        case Kind::kBackendReady:
          unread_replies.clear();  // a new connection, if it was lost
          core.on_backend_ready(backend_ready, features);
          break;
        case Kind::kBackendCommand:
          send_commands(action.text);
          core.on_backend_reply(next_reply());
          break;
        case Kind::kBackendReply:
          if (unread_replies.empty()) {
            ADD_FAILURE() << "a reply read that no command asked for";
            return;
          }
          core.on_backend_reply(next_reply());
          break;
        case Kind::kBackendData:
          backend_data += action.text;
          core.on_backend_written(written);
          break;
        case Kind::kBackendEndData:
          backend_data += action.text;
          core.on_backend_reply(end_reply);
          break;
        case Kind::kBackendDrop:
          unread_replies.clear();
          ++drops;
          break;
        case Kind::kInspect:
          if (action.option) inspection.begin();
          inspection.feed(action.text);
          break;
        case Kind::kEndInspection:
          inspection.end();
          backend_at_end_of_inspection = backend_data;
          break;
        case Kind::kInspectEnd:
          core.on_inspected(inspection.finish());
          break;
        case Kind::kRecord:
          recorded.push_back(core.take_sent_message());
          core.on_recorded(true);
          break;
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

  // Lines sent together (pipelined) are answered in order.
  void send_commands(const std::string& text) {
    backend_writes.push_back(text);
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t end = rest.find("\r\n");
      end = end == std::string_view::npos ? rest.size() : end + 2;
      std::string line(rest.substr(0, end));
      backend_commands.push_back(line);
      unread_replies.push_back(backend(line));
      rest.remove_prefix(end);
    }
  }
  std::optional<protocol::SmtpReply> next_reply() {
    auto next = std::move(unread_replies.front());
    unread_replies.pop_front();
    return next;
  }

  static std::string credentials_text(const core::SaslCredentials& credentials) {
    if (auto* token = std::get_if<protocol::OAuthCredentials>(&credentials))
      return "token " + token->user;
    return "external " + std::get<protocol::SaslExternalRequest>(credentials).authzid;
  }
};

SubmissionCore::Settings settings() {
  SubmissionCore::Settings s;
  s.hostname = "mx.test";
  s.max_line_bytes = 200;
  s.max_message_bytes = 4000;
  s.max_header_bytes = 1000;
  s.max_recipients = 3;
  s.max_bad_commands = 4;
  s.tokens_offered = true;
  s.inspect = true;
  return s;
}

using Setup = std::function<void(Submission&)>;

// Plays the client's segments with each read size of `plays`; every run must agree. Returns
// the first run.
Submission play(const std::vector<std::string>& segments, const Setup& setup = {}, bool tls = true,
                Plays plays = {}, const SubmissionCore::Settings& s = settings()) {
  std::vector<Submission> runs(plays.chunks.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    if (setup) setup(runs[i]);
    SubmissionCore core(s, runs[i], tls);
    ClientInput client(segments, plays.chunks[i]);
    runs[i].play(core, client);
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    SCOPED_TRACE("read size " + std::to_string(plays.chunks[i]));
    EXPECT_EQ(runs[0].client, runs[i].client);
    EXPECT_EQ(runs[0].events, runs[i].events);
    EXPECT_EQ(runs[0].commands, runs[i].commands);
    EXPECT_EQ(runs[0].recorded.size(), runs[i].recorded.size());
    EXPECT_EQ(runs[0].inspection.finished, runs[i].inspection.finished);
    EXPECT_EQ(runs[0].pauses, runs[i].pauses);
    if (!plays.same_backend) continue;
    EXPECT_EQ(runs[0].backend_commands, runs[i].backend_commands);
    EXPECT_EQ(runs[0].backend_data, runs[i].backend_data);
  }
  return runs[0];
}

Submission play(const std::string& input, const Setup& setup = {}, bool tls = true,
                const Plays& plays = {}) {
  return play(std::vector<std::string>{input}, setup, tls, plays);
}

const std::string kSignIn = "EHLO lps.test\r\nAUTH EXTERNAL =\r\n";
const std::string kMessage =
    "From: App <app@test.fr>\r\nTo: a@b.fr\r\nMessage-ID: <m1@test>\r\nSubject: x\r\n\r\n"
    "hello\r\n..dotted\r\n";

// The ENVID a sender gives (RFC 3461) is relayed as it came and kept, decoded, with the
// message's event: a DSN names the message by it. The next transaction starts without it.
TEST(SubmissionCore, TheEnvelopeIdOfAMessageIsKeptForItsEvent) {
  auto s =
      play(kSignIn +
           "MAIL FROM:<app@test.fr> ENVID=QQ+2B314159 RET=HDRS\r\nRCPT TO:<a@b.fr>\r\n"
           "DATA\r\n" +
           kMessage + ".\r\nMAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + kMessage +
           ".\r\nMAIL FROM:<app@test.fr> ENVID=a+2\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + kMessage +
           ".\r\nQUIT\r\n");
  EXPECT_EQ(s.backend_commands[0], "MAIL FROM:<app@test.fr> ENVID=QQ+2B314159 RET=HDRS\r\n");
  ASSERT_EQ(s.recorded.size(), 3u);
  EXPECT_EQ(s.recorded[0].envelope_id, "QQ+314159");
  EXPECT_EQ(s.recorded[1].envelope_id, "");
  // One that is not xtext names nothing (Postfix refuses it; this one's test backend did not).
  EXPECT_EQ(s.recorded[2].envelope_id, "");
}

TEST(SubmissionCore, SendsAMessageAndAnswersOnlyAfterTheBackendAndTheJournal) {
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr> BODY=8BITMIME\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" +
                kMessage + ".\r\nQUIT\r\n");
  EXPECT_EQ(s.client,
            "220 mx.test ESMTP mssgate\r\n"
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 4000\r\n250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n"
            "250 AUTH EXTERNAL XOAUTH2 OAUTHBEARER\r\n"
            "235 2.7.0 Authentication successful\r\n"
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued as 4XyZ\r\n221 2.0.0 Bye\r\n");
  EXPECT_EQ(s.backend_commands,
            (std::vector<std::string>{"MAIL FROM:<app@test.fr> BODY=8BITMIME\r\n",
                                      "RCPT TO:<a@b.fr>\r\n", "DATA\r\n"}));
  // Stuffed again for Postfix: the dotted line keeps its two dots.
  EXPECT_EQ(s.backend_data, kMessage + ".\r\n");
  ASSERT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.recorded[0].queue_id, "4XyZ");
  EXPECT_EQ(s.recorded[0].recipients, std::vector<std::string>{"a@b.fr"});
  EXPECT_EQ(s.recorded[0].facts.message_id, "<m1@test>");
  // The inspection got the message unstuffed, from its first byte, begun before it.
  std::string unstuffed = kMessage;
  unstuffed.replace(unstuffed.find("..dotted"), 8, ".dotted");
  EXPECT_EQ(s.inspection.finished, "|" + unstuffed);
  EXPECT_EQ(s.inspection.orphan_bytes, 0);
  // Its inspection was ended with the whole message, before Postfix got the end of the data (its
  // facts are made while Postfix answers).
  EXPECT_EQ(s.inspection.ended, "|" + unstuffed);
  EXPECT_EQ(s.backend_at_end_of_inspection + ".\r\n", s.backend_data);
  EXPECT_EQ(s.events, (std::vector<std::string>{
                          "auth EXTERNAL ok ok app@test.fr", "transaction open",
                          "message accepted  size=" + std::to_string(kMessage.size() - 1) +
                              " rcpt=1 id=<m1@test> queue=4XyZ",
                          "closing quit"}));
  EXPECT_TRUE(s.tls_shutdown);
  EXPECT_FALSE(s.dropping_input);
  EXPECT_EQ(s.commands, (std::vector<std::string>{"EHLO", "/", "AUTH", "/", "MAIL", "/", "RCPT",
                                                  "/", "DATA", "/", "QUIT"}));
}

TEST(SubmissionCore, BeforeTlsOffersStartTlsAndRefusesTheRest) {
  // The handshake takes the bytes after STARTTLS: they come in a packet of their own.
  auto s = play(std::vector<std::string>{"EHLO lps\r\nAUTH EXTERNAL =\r\nMAIL FROM:<a@b.fr>\r\n"
                                         "STARTTLS\r\n",
                                         "EHLO lps\r\n"},
                {}, false);
  EXPECT_THAT(s.client, HasSubstr("250 STARTTLS\r\n"));
  EXPECT_THAT(s.client, HasSubstr("530 5.7.0 Must issue a STARTTLS command first\r\n"
                                  "530 5.7.0 Must issue a STARTTLS command first\r\n"
                                  "220 2.0.0 Ready to start TLS\r\n"));
  EXPECT_THAT(s.client, HasSubstr("250 AUTH EXTERNAL XOAUTH2 OAUTHBEARER\r\n"));
}

TEST(SubmissionCore, RefusesBytesPipelinedAfterStartTls) {
  Submission world;
  SubmissionCore core(settings(), world, false);
  ClientInput input({"EHLO lps\r\nSTARTTLS\r\nEHLO evil\r\n"}, 0);
  world.play(core, input);
  EXPECT_THAT(world.client, HasSubstr("421 4.5.0 STARTTLS must be the last command before the "
                                      "TLS handshake\r\n"));
  EXPECT_EQ(world.events, (std::vector<std::string>{"protocol_error pipelined_starttls",
                                                    "closing pipelined_after_starttls"}));
  EXPECT_TRUE(world.dropping_input);
}

TEST(SubmissionCore, AFailedHandshakeEndsTheSession) {
  auto s = play(
      "STARTTLS\r\n", [](Submission& w) { w.tls_ok = false; }, false);
  EXPECT_TRUE(s.closed);
  EXPECT_THAT(s.client, HasSubstr("220 2.0.0 Ready to start TLS\r\n"));
}

TEST(SubmissionCore, SignInRefusalsMapToTheirReplies) {
  struct Case {
    SignInFailure failure;
    std::string text;
    std::string expected;
  };
  std::vector<Case> cases{
      {SignInFailure::kAuthenticationFailed, "No verified client certificate was presented",
       "535 5.7.8 No verified client certificate was presented\r\n"},
      {SignInFailure::kAuthorizationFailed, "This certificate may not open that mailbox",
       "535 5.7.8 This certificate may not open that mailbox\r\n"},
      {SignInFailure::kTemporaryFailure, "The directory is temporarily unavailable",
       "454 4.7.0 Mail service temporarily unavailable, try again later\r\n"},
      {SignInFailure::kLimitReached, "Too many sessions for this professional",
       "454 4.7.0 Too many sessions for this professional\r\n"},
  };
  for (const auto& c : cases) {
    auto s = play("AUTH EXTERNAL =\r\n", [&](Submission& w) {
      w.verdict = {c.failure, "why", c.text, kMailbox};
    });
    EXPECT_THAT(s.client, HasSubstr(c.expected)) << c.text;
    EXPECT_EQ(s.events.front(), "auth EXTERNAL failed why app@test.fr");
  }
}

TEST(SubmissionCore, TokenRefusalSendsTheOAuthErrorChallengeFirst) {
  std::string ir = "dXNlcj1hcHBAdGVzdC5mcgFhdXRoPUJlYXJlciB0b2sBAQ==";  // user=app@test.fr
  auto s = play("AUTH XOAUTH2 " + ir + "\r\n\r\n", [](Submission& w) {
    w.verdict = {SignInFailure::kAuthenticationFailed, "token_inactive", "The token is not valid",
                 ""};
  });
  EXPECT_THAT(s.client, HasSubstr("334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJvcGVuaWQifQ"
                                  "==\r\n535 5.7.8 The token is not valid\r\n"));
  EXPECT_EQ(s.authorized, std::vector<std::string>{"token app@test.fr"});
}

TEST(SubmissionCore, SaslMistakesAndTheFailureLimit) {
  auto s =
      play("AUTH PLAIN AGEAYg==\r\nAUTH EXTERNAL\r\n*\r\nAUTH EXTERNAL !!!\r\nAUTH EXTERNAL =\r\n",
           [](Submission& w) {
             w.verdict = {SignInFailure::kAuthenticationFailed, "no_client_certificate",
                          "No verified client certificate was presented", ""};
           });
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2),
            "504 5.5.4 Unrecognized authentication type\r\n"
            "334 \r\n501 5.7.0 Authentication cancelled\r\n"
            "501 5.5.2 Invalid SASL EXTERNAL response\r\n"
            "535 5.7.8 No verified client certificate was presented\r\n"
            "421 4.7.0 Too many authentication failures\r\n");
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.events.back(), "closing too_many_auth_failures");
}

TEST(SubmissionCore, ABackendThatCannotTakeTheMailboxFailsTheSignIn) {
  auto s = play("AUTH EXTERNAL =\r\nMAIL FROM:<app@test.fr>\r\n",
                [](Submission& w) { w.backend_ready = false; });
  EXPECT_THAT(s.client, HasSubstr("454 4.7.0 Mail service temporarily unavailable, try again "
                                  "later\r\n530 5.7.0 Authentication required\r\n"));
  EXPECT_EQ(s.events.front(), "auth EXTERNAL failed backend_unavailable app@test.fr");
}

TEST(SubmissionCore, SenderRulesOnTheEnvelope) {
  auto s = play(kSignIn +
                    "MAIL FROM:<other@test.fr>\r\nMAIL FROM:<>\r\nMAIL FROM:<app@test.fr> X=1\r\n"
                    "MAIL FROM:<app@test.fr> SIZE=99999\r\nMAIL FROM:app@test.fr\r\n"
                    "MAIL FROM:<Alias@Test.fr>\r\nMAIL FROM:<app@test.fr>\r\n",
                [](Submission& w) { w.allowed_senders = {"alias@test.fr"}; });
  std::string answers = s.client.substr(s.client.find("235 2.7.0"));
  EXPECT_EQ(answers,
            "235 2.7.0 Authentication successful\r\n"
            "550 5.7.1 Sender address not allowed for this mailbox\r\n"
            "550 5.7.1 Sender address not allowed for this mailbox\r\n"
            "555 5.5.4 Unsupported MAIL parameter X\r\n"
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
            "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
            "250 2.1.0 Sender OK\r\n503 5.5.1 Sender already specified\r\n");
  EXPECT_EQ(s.backend_commands, std::vector<std::string>{"MAIL FROM:<Alias@Test.fr>\r\n"});
}

TEST(SubmissionCore, BackendRefusalsAreRelayedWithOurOwnText) {
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<x@y.fr>\r\nRCPT TO:<z@y.fr>\r\n",
                [](Submission& w) {
                  w.backend = [](const std::string& line) -> std::optional<protocol::SmtpReply> {
                    if (line.starts_with("RCPT TO:<x")) return reply(550, "5.1.1", "no such user");
                    if (line.starts_with("RCPT")) return reply(450, "", "later");
                    return reply(250);
                  };
                });
  EXPECT_THAT(s.client, HasSubstr("550 5.1.1 Recipient refused by the mail system\r\n"
                                  "450 4.0.0 Recipient temporarily refused, try again later\r\n"));
  EXPECT_THAT(s.client, testing::Not(HasSubstr("no such user")));
}

TEST(SubmissionCore, MailIsTriedOnceMoreWhenTheBackendWentAway) {
  int mails = 0;
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\n", [&](Submission& w) {
    w.backend = [&](const std::string& line) -> std::optional<protocol::SmtpReply> {
      if (line.starts_with("MAIL") && ++mails % 2 == 1) return std::nullopt;
      return reply(250);
    };
  });
  EXPECT_THAT(s.client, HasSubstr("250 2.1.0 Sender OK\r\n"));
  EXPECT_EQ(s.backend_commands.size(), 2u);
}

TEST(SubmissionCore, RecipientRules) {
  auto s = play(kSignIn +
                "RCPT TO:<a@b.fr>\r\nMAIL FROM:<app@test.fr>\r\nRCPT TO:<>\r\n"
                "RCPT TO:<a@b.fr> FOO=1\r\nRCPT TO:<1@b.fr>\r\nRCPT TO:<2@b.fr>\r\n"
                "RCPT TO:<3@b.fr> NOTIFY=NEVER\r\nRCPT TO:<4@b.fr>\r\n");
  std::string answers = s.client.substr(s.client.find("235 2.7.0"));
  EXPECT_EQ(answers,
            "235 2.7.0 Authentication successful\r\n503 5.5.1 Need MAIL command\r\n"
            "250 2.1.0 Sender OK\r\n501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n"
            "555 5.5.4 Unsupported RCPT parameter FOO\r\n"
            "250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
            "452 4.5.3 Too many recipients\r\n");
}

TEST(SubmissionCore, TheAuthorFieldsMustBeTheMailbox) {
  const std::string up_to_headers =
      kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n";
  const std::string from = "550 5.7.1 From header must be the authenticated mailbox\r\n";
  struct Case {
    std::string headers;
    std::string event;  // field and detail
    std::string reply;
  };
  const Case cases[] = {
      {"From: other@test.fr\r\n", "from not_allowed", from},
      {"From: app@test.fr, b@c.fr\r\nSender: app@test.fr\r\n", "from not_allowed", from},
      {"From: app@test.fr\r\nFrom: app@test.fr\r\n", "from several_fields", from},
      {"", "from missing", from},
      // The three forms that passed for another author.
      {"From: <victim@other.fr> <app@test.fr>\r\n", "from text_after_address", from},
      {"From: victim@other.fr <app@test.fr>\r\n", "from text_after_address", from},
      {"From: victim@other.fr: app@test.fr;\r\n", "from text_after_address", from},
      {"From: \"victim@other.fr\" <app@test.fr>\r\n", "from display_name_address", from},
      {"From: App\xc3\xa9 <app@test.fr>\r\n", "from eight_bit", from},
      {"From: app@test.fr, desk@test.fr\r\n", "sender missing",
       "550 5.7.1 Sender header must be the authenticated mailbox\r\n"},
      {"From: app@test.fr\r\nResent-From: v@o.fr\r\n", "resent_from not_allowed",
       "550 5.7.1 Resent-From header must be the authenticated mailbox\r\n"},
      {"From: app@test.fr\r\nResent-From: app@test.fr\r\nResent-Sender: v@o.fr\r\n",
       "resent_sender not_allowed",
       "550 5.7.1 Resent-Sender header must be the authenticated mailbox\r\n"},
      {"X: a\rFrom: v@o.fr\r\nFrom: app@test.fr\r\n", "header bare_cr",
       "550 5.7.1 Message header cannot be read unambiguously\r\n"},
  };
  for (const auto& c : cases) {
    auto s = play(up_to_headers + c.headers + "Subject: x\r\n\r\nbody\r\n.\r\n",
                  [](Submission& w) { w.allowed_senders = {"desk@test.fr"}; });
    EXPECT_THAT(s.client, HasSubstr(c.reply)) << c.headers;
    EXPECT_EQ(s.backend_data, "") << c.headers;
    // The backend's open transaction is reset.
    EXPECT_EQ(s.backend_commands.back(), "RSET\r\n");
    EXPECT_THAT(s.events, testing::Contains("sender_refused from_header " + c.event)) << c.headers;
    EXPECT_THAT(s.events, testing::Contains(HasSubstr("message refused from_header ")));
  }
}

TEST(SubmissionCore, AuthorFieldsThatPass) {
  const std::string mail = kSignIn + "MAIL FROM:<app@test.fr>";
  const std::string rest = "\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n";
  const std::string transaction = mail + rest;
  for (std::string headers :
       {"From: \"app\"@TEST.FR\r\n", "From: =?utf-8?q?H=C3=B4pital?=\r\n <app@test.fr>\r\n",
        "From: app@test.fr, desk@test.fr\r\nSender: app@test.fr\r\n",
        "From: desk@test.fr (app@test.fr)\r\nResent-From: app@test.fr\r\n"}) {
    auto s = play(transaction + headers + "\r\nbody\r\n.\r\n",
                  [](Submission& w) { w.allowed_senders = {"desk@test.fr"}; });
    EXPECT_THAT(s.client, HasSubstr("250 2.0.0 Ok: queued as 4XyZ\r\n")) << headers;
    EXPECT_EQ(s.backend_data, headers + "\r\nbody\r\n.\r\n");
  }
  // UTF-8 in the From header only in a transaction that announced SMTPUTF8 (RFC 6531), which
  // lasts until its end.
  const std::string utf8 = "From: H\xc3\xb4pital <app@test.fr>\r\n\r\nbody\r\n.\r\n";
  auto s = play(mail + " SMTPUTF8" + rest + utf8 + "MAIL FROM:<app@test.fr>" + rest + utf8,
                [](Submission& w) { w.features.smtputf8 = true; });
  EXPECT_THAT(s.client, HasSubstr("250 2.0.0 Ok: queued as 4XyZ\r\n"));
  EXPECT_THAT(s.client, HasSubstr("550 5.7.1 From header must be the authenticated mailbox\r\n"));
  EXPECT_THAT(s.events, testing::Contains("sender_refused from_header from eight_bit"));
}

TEST(SubmissionCore, DataRefusals) {
  auto s = play(kSignIn +
                "DATA\r\nMAIL FROM:<app@test.fr>\r\nDATA\r\nRCPT TO:<a@b.fr>\r\n"
                "DATA now\r\nBDAT 5\r\nhello");
  EXPECT_THAT(s.client, HasSubstr("503 5.5.1 Need MAIL command\r\n250 2.1.0 Sender OK\r\n"
                                  "554 5.5.1 No valid recipients\r\n250 2.1.5 Recipient OK\r\n"
                                  "501 5.5.4 Syntax: DATA\r\n250 2.0.0 5 octets received\r\n"));
  auto after_bdat = play(kSignIn +
                         "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nBDAT 3\r\n"
                         "abcDATA\r\n");
  EXPECT_THAT(after_bdat.client,
              HasSubstr("503 5.5.1 DATA after BDAT in the same transaction\r\n"));
}

TEST(SubmissionCore, AMessageOverTheCapIsReadToItsEndAndRefused) {
  std::string body(5000, 'x');
  std::vector<std::string> segments{
      kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\nFrom: app@test.fr\r\n\r\n",
      body + "\r\n.\r\nNOOP\r\n"};
  auto s = play(segments, {}, true, Plays{{0, 1}, false});
  EXPECT_THAT(s.client, HasSubstr("552 5.3.4 Message size exceeds fixed maximum message size\r\n"
                                  "250 2.0.0 Ok\r\n"));
  // It was streaming when the cap was passed: the backend connection is closed to abort DATA.
  EXPECT_EQ(s.drops, 1);
  EXPECT_EQ(s.backend_commands.back(), "DATA\r\n");
  EXPECT_TRUE(s.recorded.empty());
  // Passed before the header section was complete: Postfix never saw it.
  auto early = play(segments[0] + segments[1], {}, true, Plays{{0}, false});
  EXPECT_EQ(early.drops, 0);
  EXPECT_EQ(early.backend_data, "");
}

TEST(SubmissionCore, AMessageFarOverTheCapEndsTheSession) {
  // Twice the cap and a mebibyte: no longer worth reading to the end.
  std::string body((2 << 20), 'x');
  auto s = play(kSignIn +
                    "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n"
                    "From: app@test.fr\r\n\r\n" +
                    body,
                {}, true, Plays{{16384}, false});
  EXPECT_THAT(s.client, HasSubstr("552 5.3.4 Message size exceeds fixed maximum message size; "
                                  "closing the connection\r\n"));
  EXPECT_EQ(s.events.back(), "closing message_too_large");
  EXPECT_TRUE(s.dropping_input);
  // Read no further than the drain limit and one read.
  EXPECT_THAT(s.events,
              testing::Contains(testing::StartsWith("message refused too_large size=106")));
  auto bdat = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nBDAT 2000000\r\n");
  EXPECT_THAT(bdat.client, HasSubstr("closing the connection\r\n"));
}

TEST(SubmissionCore, AHeaderSectionOverItsCapIsRefused) {
  std::string header = "X-Long: " + std::string(1200, 'h') + "\r\n";
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + header +
                "\r\nbody\r\n.\r\n");
  EXPECT_THAT(s.client, HasSubstr("552 5.3.4 Message header too large\r\n"));
  EXPECT_EQ(s.backend_data, "");
}

TEST(SubmissionCore, AQueueIdIsLettersAndDigitsOrNone) {
  std::string send =
      kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + kMessage + ".\r\n";
  // Postfix's reply with one byte altered on its way (seen in a soak with a corrupting gate):
  // the message was accepted, but the id is no id; it reaches neither the client nor the record.
  for (std::string text :
       {std::string("Ok: queued as ED11\xcdX"), std::string("Ok: queued as 4X\x01"),
        "Ok: queued as " + std::string(33, 'A'), std::string("Ok: queued as ")}) {
    auto s = play(send, [&](Submission& w) { w.end_reply = reply(250, "2.0.0", text); });
    EXPECT_THAT(s.client, HasSubstr("250 2.0.0 Ok: queued as (unknown)\r\n")) << text;
    ASSERT_EQ(s.recorded.size(), 1u);
    EXPECT_EQ(s.recorded[0].queue_id, "") << text;
  }
  auto long_id = play(send, [](Submission& w) {
    w.end_reply = reply(250, "2.0.0", "Ok: queued as 4Hx9mz3Wq1zRbKpT");
  });
  ASSERT_EQ(long_id.recorded.size(), 1u);
  EXPECT_EQ(long_id.recorded[0].queue_id, "4Hx9mz3Wq1zRbKpT");
  EXPECT_THAT(long_id.client, HasSubstr("250 2.0.0 Ok: queued as 4Hx9mz3Wq1zRbKpT\r\n"));
  // Postfix's answer to a last BDAT names the bytes first.
  auto bdat = play(send, [](Submission& w) {
    w.end_reply = reply(250, "2.0.0", "Ok: 2345 bytes queued as 99FF251CD72");
  });
  EXPECT_EQ(bdat.recorded[0].queue_id, "99FF251CD72");
}

TEST(SubmissionCore, BackendAnswersToTheMessage) {
  std::string send =
      kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + kMessage + ".\r\n";
  auto refused = play(send, [](Submission& w) { w.end_reply = reply(554, "5.7.1", "spam"); });
  EXPECT_THAT(refused.client, HasSubstr("554 5.7.1 Message refused by the mail system\r\n"));
  EXPECT_TRUE(refused.recorded.empty());
  auto lost = play(send, [](Submission& w) { w.end_reply = std::nullopt; });
  EXPECT_THAT(lost.client, HasSubstr("451 4.4.2 Connection to the mail system lost, message not "
                                     "accepted: try again\r\n"));
  auto write_failed = play(
      send, [](Submission& w) { w.written = false; }, true, Plays{{0, 1}, false});
  EXPECT_THAT(write_failed.client, HasSubstr("451 4.4.2"));
  auto data_refused = play(send, [](Submission& w) {
    w.backend = [](const std::string& line) -> std::optional<protocol::SmtpReply> {
      if (line.starts_with("DATA")) return reply(451, "4.3.0", "busy");
      return reply(250);
    };
  });
  EXPECT_THAT(data_refused.client,
              HasSubstr("451 4.3.0 Message temporarily refused, try again later\r\n"));
  EXPECT_THAT(data_refused.events,
              testing::Contains(testing::StartsWith("message refused backend_refused_data")));
}

TEST(SubmissionCore, BdatChunksMakeOneMessage) {
  std::string first = kMessage.substr(0, 30);
  std::string second = kMessage.substr(30);
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nBDAT " +
                std::to_string(first.size()) + "\r\n" + first + "BDAT " +
                std::to_string(second.size()) + " LAST\r\n" + second + "QUIT\r\n");
  EXPECT_THAT(s.client, HasSubstr("250 2.0.0 30 octets received\r\n"
                                  "250 2.0.0 Ok: queued as 4XyZ\r\n"));
  // Postfix gets DATA: BDAT bytes are the message as it is, a leading dot doubled on the way.
  std::string stuffed = kMessage;
  stuffed.replace(stuffed.find("..dotted"), 8, "...dotted");
  EXPECT_EQ(s.backend_data, stuffed + ".\r\n");
  EXPECT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.inspection.finished, "|" + kMessage) << "one message, inspected as it is";
}

TEST(SubmissionCore, BdatZeroLastEndsTheMessage) {
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nBDAT " +
                std::to_string(kMessage.size()) + "\r\n" + kMessage + "BDAT 0 LAST\r\n");
  EXPECT_THAT(s.client, HasSubstr(" octets received\r\n250 2.0.0 Ok: queued as 4XyZ\r\n"));
}

TEST(SubmissionCore, BdatRefusals) {
  auto syntax = play(kSignIn + "BDAT many\r\n");
  EXPECT_THAT(syntax.client, HasSubstr("501 5.5.4 Syntax: BDAT size [LAST]; closing the "
                                       "connection\r\n"));
  EXPECT_TRUE(syntax.dropping_input);  // the chunk whose size it could not read is on its way
  // Without a transaction the chunk is read all the same, then refused.
  auto no_mail = play(kSignIn + "BDAT 4 LAST\r\nQUITNOOP\r\n");
  EXPECT_THAT(no_mail.client, HasSubstr("503 5.5.1 Need MAIL command\r\n250 2.0.0 Ok\r\n"));
}

TEST(SubmissionCore, ALineOverTheCapIsSkippedAndBadCommandsAreCounted) {
  auto s = play("NOOP " + std::string(400, 'n') + "\r\nNOOP\r\nFOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
  EXPECT_EQ(s.client.substr(s.client.find("\r\n") + 2),
            "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n500 5.5.2 Command unrecognized\r\n"
            "500 5.5.2 Command unrecognized\r\n500 5.5.2 Command unrecognized\r\n"
            "421 4.7.0 Too many errors, closing the connection\r\n");
  EXPECT_EQ(s.events.front(), "protocol_error line_too_long");
  EXPECT_EQ(s.events.back(), "closing too_many_bad_commands");
  EXPECT_TRUE(s.dropping_input);
}

TEST(SubmissionCore, NoNewTransactionWhileStopping) {
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\n", [](Submission& w) { w.stopping = true; });
  EXPECT_THAT(s.client, HasSubstr("421 4.3.2 Service shutting down, try again later\r\n"));
  EXPECT_EQ(s.events.back(), "closing stopping");
}

TEST(SubmissionCore, AClientGoneDuringDataAbortsTheMessage) {
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" + kMessage);
  EXPECT_THAT(s.events, testing::Contains(testing::StartsWith("message aborted client_gone")));
  EXPECT_TRUE(s.recorded.empty());
}

TEST(SubmissionCore, RsetAndEhloResetTheBackendTransaction) {
  auto s = play(kSignIn +
                "MAIL FROM:<app@test.fr>\r\nRSET\r\nMAIL FROM:<app@test.fr>\r\n"
                "EHLO again\r\n");
  EXPECT_EQ(s.backend_commands,
            (std::vector<std::string>{"MAIL FROM:<app@test.fr>\r\n", "RSET\r\n",
                                      "MAIL FROM:<app@test.fr>\r\n", "RSET\r\n"}));
  // Signed in: AUTH is no longer offered.
  EXPECT_THAT(s.client.substr(s.client.rfind("250-mx.test")), testing::Not(HasSubstr("AUTH")));
}

// ---- round trips spared when Postfix offers PIPELINING and CHUNKING ----------------------

void pipelining(Submission& w) {
  w.features.pipelining = true;
}

void chunking(Submission& w) {
  w.features.pipelining = true;
  w.features.chunking = true;
}

TEST(SubmissionCore, MailGoesToThePipeliningBackendWithTheFirstRecipient) {
  auto s =
      play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nRCPT TO:<c@b.fr>\r\nDATA\r\n" +
               kMessage + ".\r\nQUIT\r\n",
           pipelining);
  EXPECT_THAT(s.client, HasSubstr("235 2.7.0 Authentication successful\r\n"
                                  "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
                                  "250 2.1.5 Recipient OK\r\n"
                                  "354 End data with <CR><LF>.<CR><LF>\r\n"
                                  "250 2.0.0 Ok: queued as 4XyZ\r\n221 2.0.0 Bye\r\n"));
  EXPECT_EQ(s.backend_writes,
            (std::vector<std::string>{"MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n",
                                      "RCPT TO:<c@b.fr>\r\n", "DATA\r\n"}));
  ASSERT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.recorded[0].recipients, (std::vector<std::string>{"a@b.fr", "c@b.fr"}));
  EXPECT_TRUE(s.unread_replies.empty());
}

TEST(SubmissionCore, ASenderThePipeliningBackendRefusesIsAnsweredAtTheRecipient) {
  // Postfix refuses the first MAIL and, without a sender, answers the RCPT after it with 503.
  auto backend = [](int* mails, bool* sender) {
    return [=](const std::string& line) -> std::optional<protocol::SmtpReply> {
      if (line.starts_with("MAIL")) {
        *sender = ++*mails > 1;
        return *sender ? reply(250) : reply(553, "5.7.1", "sender not owned");
      }
      if (line.starts_with("RCPT") && !*sender) return reply(503, "5.5.1", "need MAIL command");
      if (line.starts_with("DATA")) return reply(354);
      return reply(250);
    };
  };
  int mails = 0;
  bool sender = false;
  auto s =
      play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nRCPT TO:<c@b.fr>\r\nDATA\r\n" +
               kMessage + ".\r\n",
           [&](Submission& w) {
             pipelining(w);
             mails = 0;
             sender = false;
             w.backend = backend(&mails, &sender);
           });
  EXPECT_THAT(s.client, HasSubstr("250 2.1.0 Sender OK\r\n"
                                  "553 5.7.1 Sender refused by the mail system\r\n"
                                  "250 2.1.5 Recipient OK\r\n"));
  EXPECT_THAT(s.client, testing::Not(HasSubstr("not owned")));
  EXPECT_THAT(s.client, testing::Not(HasSubstr("503")));
  // MAIL went again with the next recipient; the message went to that one only.
  EXPECT_EQ(s.backend_writes, (std::vector<std::string>{
                                  "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n",
                                  "MAIL FROM:<app@test.fr>\r\nRCPT TO:<c@b.fr>\r\n", "DATA\r\n"}));
  ASSERT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.recorded[0].recipients, std::vector<std::string>{"c@b.fr"});

  // A sender always refused: every recipient hears it, DATA finds none, RSET tells Postfix
  // nothing (it has no transaction).
  auto refused =
      play(kSignIn +
               "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nRCPT TO:<c@b.fr>\r\n"
               "DATA\r\nRSET\r\n",
           [&](Submission& w) {
             pipelining(w);
             w.backend = [](const std::string& line) -> std::optional<protocol::SmtpReply> {
               if (line.starts_with("MAIL")) return reply(451, "4.3.0", "busy");
               return reply(503, "5.5.1", "need MAIL command");
             };
           });
  EXPECT_THAT(refused.client, HasSubstr("250 2.1.0 Sender OK\r\n"
                                        "451 4.3.0 Sender temporarily refused, try again later\r\n"
                                        "451 4.3.0 Sender temporarily refused, try again later\r\n"
                                        "554 5.5.1 No valid recipients\r\n250 2.0.0 Ok\r\n"));
  EXPECT_EQ(refused.backend_commands.size(), 4u);
  EXPECT_EQ(refused.backend_commands.back(), "RCPT TO:<c@b.fr>\r\n") << "no RSET";
  EXPECT_TRUE(refused.recorded.empty());
}

TEST(SubmissionCore, APipelinedMailIsTriedOnceMoreOnANewConnection) {
  int writes = 0;
  auto once = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n", [&](Submission& w) {
    pipelining(w);
    writes = 0;
    w.backend = [&](const std::string& line) -> std::optional<protocol::SmtpReply> {
      // Postfix closed the idle connection: nothing comes back to the first write.
      if (line.starts_with("MAIL") && ++writes == 1) return std::nullopt;
      return reply(250);
    };
  });
  EXPECT_THAT(once.client, HasSubstr("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"));
  EXPECT_EQ(once.backend_writes.size(), 2u);
  EXPECT_EQ(once.backend_writes[0], once.backend_writes[1]);

  auto twice =
      play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nRCPT TO:<a@b.fr>\r\n",
           [&](Submission& w) {
             pipelining(w);
             writes = 0;
             w.backend = [&](const std::string& line) -> std::optional<protocol::SmtpReply> {
               if (line.starts_with("MAIL") && ++writes <= 2) return std::nullopt;
               return reply(250);
             };
           });
  // Twice lost: the recipient is refused for now; the next one opens the transaction anew.
  EXPECT_THAT(twice.client, HasSubstr("250 2.1.0 Sender OK\r\n"
                                      "451 4.4.1 Mail service temporarily unavailable, try again "
                                      "later\r\n250 2.1.5 Recipient OK\r\n"));
  EXPECT_EQ(twice.backend_writes.size(), 3u);
}

TEST(SubmissionCore, ALostRecipientReplyLeavesTheTransactionToStartAgain) {
  int rcpts = 0;
  auto s = play(kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nRCPT TO:<a@b.fr>\r\n",
                [&](Submission& w) {
                  pipelining(w);
                  rcpts = 0;
                  w.backend = [&](const std::string& line) -> std::optional<protocol::SmtpReply> {
                    if (line.starts_with("RCPT") && ++rcpts == 1) return std::nullopt;
                    return reply(250);
                  };
                });
  EXPECT_THAT(s.client, HasSubstr("250 2.1.0 Sender OK\r\n"
                                  "451 4.4.1 Mail service temporarily unavailable, try again "
                                  "later\r\n250 2.1.5 Recipient OK\r\n"));
  // The connection that lost the reply is gone with its transaction: MAIL goes again.
  EXPECT_EQ(s.backend_writes,
            (std::vector<std::string>{"MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n",
                                      "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n"}));
}

TEST(SubmissionCore, RsetBeforeAnyRecipientTellsThePipeliningBackendNothing) {
  auto s = play(kSignIn +
                    "MAIL FROM:<app@test.fr>\r\nRSET\r\nMAIL FROM:<app@test.fr>\r\n"
                    "RCPT TO:<a@b.fr>\r\nRSET\r\n",
                pipelining);
  EXPECT_EQ(s.backend_writes, (std::vector<std::string>{
                                  "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n", "RSET\r\n"}));
  EXPECT_THAT(s.client, HasSubstr("250 2.1.0 Sender OK\r\n250 2.0.0 Ok\r\n250 2.1.0 Sender OK\r\n"
                                  "250 2.1.5 Recipient OK\r\n250 2.0.0 Ok\r\n"));
}

TEST(SubmissionCore, AMessageWholeWhenItsHeaderIsCheckedGoesAsOneBdat) {
  std::string send = kSignIn + "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\nDATA\r\n" +
                     kMessage + ".\r\nQUIT\r\n";
  // Read whole, the message is in hand when its header is checked; a byte at a time it is not,
  // and goes as DATA: the client hears the same either way (play compares them).
  auto s = play(std::vector<std::string>{send}, chunking, true, Plays{{0, 1}, false});
  std::string unstuffed = kMessage;
  unstuffed.replace(unstuffed.find("..dotted"), 8, ".dotted");
  EXPECT_EQ(s.backend_data, "BDAT " + std::to_string(unstuffed.size()) + " LAST\r\n" + unstuffed);
  EXPECT_EQ(s.backend_writes,
            (std::vector<std::string>{"MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n"}));
  EXPECT_THAT(s.client, HasSubstr("354 End data with <CR><LF>.<CR><LF>\r\n"
                                  "250 2.0.0 Ok: queued as 4XyZ\r\n221 2.0.0 Bye\r\n"));
  ASSERT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.recorded[0].queue_id, "4XyZ");
  EXPECT_EQ(s.recorded[0].facts.message_id, "<m1@test>");
  // Its inspection was ended before Postfix got it.
  EXPECT_EQ(s.inspection.ended, "|" + unstuffed);
  EXPECT_EQ(s.backend_at_end_of_inspection, "");

  Submission bytewise;
  SubmissionCore core(settings(), bytewise, true);
  chunking(bytewise);
  ClientInput input({send}, 1);
  bytewise.play(core, input);
  EXPECT_EQ(bytewise.backend_data, kMessage + ".\r\n");
  EXPECT_EQ(bytewise.client, s.client);
}

TEST(SubmissionCore, ABdatMessageGoesAsOneBdatWithItsLinesEnded) {
  // Bare LFs become CRLF and a last line without its end gets one, as DATA would have them.
  std::string content = "From: App <app@test.fr>\nSubject: x\n\n.hello\nworld";
  auto s = play(std::vector<std::string>{kSignIn +
                                         "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n"
                                         "BDAT " +
                                         std::to_string(content.size()) + " LAST\r\n" + content},
                chunking, true, Plays{{0}, false});
  std::string sent = "From: App <app@test.fr>\r\nSubject: x\r\n\r\n.hello\r\nworld\r\n";
  EXPECT_EQ(s.backend_data, "BDAT " + std::to_string(sent.size()) + " LAST\r\n" + sent);
  EXPECT_THAT(s.client, HasSubstr("250 2.0.0 Ok: queued as 4XyZ\r\n"));
  EXPECT_EQ(s.inspection.finished, "|" + content) << "inspected as the client sent it";

  auto refused = play(
      std::vector<std::string>{kSignIn +
                               "MAIL FROM:<app@test.fr>\r\nRCPT TO:<a@b.fr>\r\n"
                               "BDAT " +
                               std::to_string(content.size()) + " LAST\r\n" + content + "NOOP\r\n"},
      [](Submission& w) {
        chunking(w);
        w.end_reply = reply(552, "5.3.4", "too big");
      },
      true, Plays{{0}, false});
  EXPECT_THAT(refused.client,
              HasSubstr("552 5.3.4 Message refused by the mail system\r\n250 2.0.0 Ok\r\n"));
  EXPECT_TRUE(refused.recorded.empty());
  EXPECT_THAT(refused.events,
              testing::Contains(testing::StartsWith("message refused backend_refused ")));
}

TEST(SubmissionCore, AuthRules) {
  auto s = play(kSignIn + "AUTH EXTERNAL =\r\n");
  EXPECT_THAT(s.client, HasSubstr("503 5.5.1 Already authenticated\r\n"));
  auto helo = play("HELO\r\nHELO a b\r\nHELO lps\r\nVRFY x\r\nHELP\r\n");
  EXPECT_THAT(helo.client,
              HasSubstr("501 5.5.4 Syntax: HELO hostname\r\n"
                        "501 5.5.4 Syntax: HELO hostname\r\n250 mx.test\r\n252 2.5.2"));
}

}  // namespace
}  // namespace mssgate::test_core

namespace mssgate::test_core {
namespace {

TEST(SubmissionCore, EachFailedSignInPausesBeforeItsAnswer) {
  auto s = play("AUTH PLAIN AGEAYg==\r\nAUTH EXTERNAL =\r\n", [](Submission& w) {
    w.verdict = {SignInFailure::kAuthorizationFailed, "why", "no", kMailbox};
  });
  ASSERT_EQ(s.pauses.size(), 2u);
  EXPECT_EQ(s.client.substr(s.pauses[0]).rfind("504 5.5.4 Unrecognized", 0), 0u);
  EXPECT_EQ(s.client.substr(s.pauses[1]).rfind("535 5.7.8 no\r\n", 0), 0u);
  EXPECT_TRUE(play(kSignIn).pauses.empty());
}

TEST(SubmissionCore, CommandsBeforeAuthenticationAreCapped) {
  std::string noops;
  for (int i = 0; i < 29; ++i)
    noops += i % 2 ? "RSET\r\n" : "NOOP\r\n";
  // EHLO and 29 more are taken; the 31st command before AUTH ends the session.
  auto over = play("EHLO lps\r\n" + noops + "NOOP\r\nAUTH EXTERNAL =\r\n");
  EXPECT_THAT(over.client, HasSubstr("250 2.0.0 Ok\r\n421 4.7.0 Too many commands before "
                                     "authentication\r\n"));
  EXPECT_THAT(over.client, testing::Not(HasSubstr("235")));
  EXPECT_TRUE(over.dropping_input);
  EXPECT_EQ(over.events.back(), "closing too_many_pre_auth_commands");
  // After AUTH, commands are not counted.
  std::string many;
  for (int i = 0; i < 40; ++i)
    many += "NOOP\r\n";
  auto signed_in = play(kSignIn + many + "QUIT\r\n");
  EXPECT_THAT(signed_in.client, HasSubstr("221 2.0.0 Bye\r\n"));
}

}  // namespace
}  // namespace mssgate::test_core
