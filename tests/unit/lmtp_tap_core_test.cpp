// The LMTP tap, without sockets: each scenario played whole and one byte at a time.
#include "daemon/core/lmtp_tap_core.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core_script.hpp"
#include "daemon/core/delivery_id.hpp"

namespace mssgate::test_core {
namespace {

using core::LmtpTapCore;
using core::RawReply;
using Kind = LmtpTapCore::Kind;
using testing::HasSubstr;

RawReply raw(const std::vector<std::string>& lines) {
  RawReply r;
  r.lines = lines;
  protocol::SmtpReplyParser parser;
  for (const auto& line : lines)
    parser.feed(line + "\r\n");
  r.reply = parser.reply();
  return r;
}

struct Tap : ReportLog<core::LmtpEvents> {
  bool connected = true;
  std::optional<RawReply> greeting = raw({"220 dovecot ready"});
  // Dovecot's answers to the relayed commands, then one per recipient after DATA.
  std::function<std::optional<RawReply>(const std::string&)> dovecot =
      [](const std::string& line) -> std::optional<RawReply> {
    if (line.starts_with("LHLO"))
      return raw({"250-dovecot", "250-PIPELINING", "250-CHUNKING", "250-STARTTLS", "250 8BITMIME"});
    if (line.starts_with("DATA")) return raw({"354 go"});
    return raw({"250 2.1.0 ok"});
  };
  std::vector<std::optional<RawReply>> per_recipient;
  bool written = true;

  std::string client;
  std::vector<std::string> relayed;
  std::string data;
  std::vector<core::ReceivedMessage> recorded;
  bool record_durable = true;
  std::vector<std::string> settled;  // "1,0" (delivered or not, per recipient), " wait" after
  // What reached Dovecot and Postfix around the end of each message, in order: "record",
  // "end" (the terminator to Dovecot), "settle", "answer" (the replies to Postfix).
  std::vector<std::string> steps;
  Inspection inspection;
  std::vector<std::string> deliveries;
  bool closed = false;
  size_t replies_read = 0;
  bool greeted = false;

  void backend_failed(std::string_view step, std::string_view detail) override {
    events.push_back("backend_failed " + std::string(step) + " " + std::string(detail));
  }
  void delivery_finished(const core::DeliveryOutcome& o) override {
    deliveries.push_back(
        std::string(o.result) + " " + std::string(o.reason) + " size=" + std::to_string(o.size) +
        " rcpt=" + std::to_string(o.recipients) + " delivered=" + std::to_string(o.delivered));
  }
  void transaction(bool open) override { events.emplace_back(open ? "open" : "close"); }
  bool stopping = false;
  bool draining() const override { return stopping; }

  void play(LmtpTapCore& core, ClientInput& input) {
    for (int turns = 0; turns < 100000; ++turns) {
      auto action = core.next();
      switch (action.kind) {
        case Kind::kConnectBackend:
          core.on_backend_connected(connected);
          break;
        case Kind::kReadReply:
          if (!greeted) {
            greeted = true;
            core.on_backend_reply(greeting);
          } else {
            core.on_backend_reply(
                replies_read < per_recipient.size() ? per_recipient[replies_read++] : std::nullopt);
          }
          break;
        case Kind::kRelay:
          relayed.push_back(action.text);
          core.on_backend_reply(dovecot(action.text));
          break;
        case Kind::kBackendData:
          data += action.text;
          if (action.text.ends_with(".\r\n") && data.ends_with("\r\n.\r\n"))
            steps.emplace_back("end");
          core.on_backend_written(written);
          break;
        case Kind::kRead:
          if (input.exhausted()) return core.on_client_gone();
          core.on_client_bytes(input.take());
          break;
        case Kind::kWrite:
          client += action.text;
          if (action.option) steps.emplace_back("answer");
          break;
        case Kind::kInspect:
          if (action.option) inspection.begin();
          inspection.feed(action.text);
          break;
        case Kind::kInspectEnd:
          core.on_inspected(inspection.finish());
          break;
        case Kind::kRecord:
          recorded.push_back(core.take_received());
          steps.emplace_back("record");
          core.on_recorded(record_durable);
          break;
        case Kind::kEnter:
          steps.push_back("enter " + core.recipients().front());
          core.on_entered();
          break;
        case Kind::kLeave:
          steps.emplace_back("leave");
          break;
        case Kind::kSettle: {
          std::string line;
          for (bool delivered : core.take_settlement())
            line += std::string(line.empty() ? "" : ",") + (delivered ? "1" : "0");
          settled.push_back(line + (action.option ? " wait" : ""));
          steps.emplace_back("settle");
          core.on_settled();
          break;
        }
        case Kind::kClose:
          closed = true;
          return;
      }
    }
    FAIL() << "the core did not end";
  }
};

using Setup = std::function<void(Tap&)>;

Tap play(const std::string& input, const Setup& setup = {}, bool inspect = true,
         bool same_backend = true, const std::string& delivery_id_header = "",
         bool serial = false) {
  std::vector<Tap> runs(2);
  for (size_t i = 0; i < runs.size(); ++i) {
    if (setup) setup(runs[i]);
    LmtpTapCore::Settings settings{"mx.test", 200, inspect, delivery_id_header, serial};
    LmtpTapCore core(settings, runs[i]);
    ClientInput client({input}, i == 0 ? 0 : 1);
    runs[i].play(core, client);
  }
  EXPECT_EQ(runs[0].client, runs[1].client);
  EXPECT_EQ(runs[0].relayed, runs[1].relayed);
  if (same_backend) {
    EXPECT_EQ(runs[0].data, runs[1].data);
  }
  EXPECT_EQ(runs[0].events, runs[1].events);
  EXPECT_EQ(runs[0].deliveries, runs[1].deliveries);
  EXPECT_EQ(runs[0].steps, runs[1].steps);
  EXPECT_EQ(runs[0].settled, runs[1].settled);
  EXPECT_EQ(runs[0].commands, runs[1].commands);
  EXPECT_EQ(runs[0].inspection.finished, runs[1].inspection.finished);
  return runs[0];
}

const std::string kMessage = "From: a@other.fr\r\nSubject: x\r\n\r\n.hello\r\n";
const std::string kTransaction =
    "LHLO postfix\r\nMAIL FROM:<A@Other.fr>\r\nRCPT TO:<Cab@Test.fr>\r\nRCPT TO:<lab@test.fr>\r\n"
    "DATA\r\n..hello\r\n.\r\nQUIT\r\n";

TEST(LmtpTapCore, RelaysADeliveryAndRecordsWhatDovecotAccepted) {
  auto s = play(kTransaction, [](Tap& t) {
    t.per_recipient = {raw({"250 2.0.0 <cab@test.fr> saved"}), raw({"550 5.1.1 <lab> unknown"})};
  });
  EXPECT_EQ(s.client,
            "220 mx.test LMTP mssgate\r\n250-dovecot\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            "250 2.1.0 ok\r\n250 2.1.0 ok\r\n250 2.1.0 ok\r\n354 go\r\n"
            "250 2.0.0 <cab@test.fr> saved\r\n550 5.1.1 <lab> unknown\r\n250 2.1.0 ok\r\n");
  EXPECT_EQ(s.data, "..hello\r\n.\r\n");
  ASSERT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.recorded[0].sender, "a@other.fr");
  // Pending for every recipient Dovecot took at RCPT; settled by its reply to each.
  EXPECT_EQ(s.recorded[0].recipients, (std::vector<std::string>{"cab@test.fr", "lab@test.fr"}));
  EXPECT_EQ(s.recorded[0].fingerprint.size(), 64u);
  // The refused recipient's event is dropped durably before Postfix hears the refusal.
  EXPECT_EQ(s.settled, std::vector<std::string>{"1,0 wait"});
  EXPECT_EQ(s.steps, (std::vector<std::string>{"record", "end", "settle", "answer"}));
  // The inspection got the content unstuffed, begun before it.
  EXPECT_EQ(s.inspection.finished, "|.hello\r\n");
  EXPECT_EQ(s.deliveries, std::vector<std::string>{"relayed  size=8 rcpt=2 delivered=1"});
  EXPECT_TRUE(s.closed);
}

// While the gateway stops, a new delivery on a connection Postfix kept is deferred with 421, so
// that the stop waits only for the transactions under way; nothing of it reaches Dovecot.
TEST(LmtpTapCore, WhileStoppingANewDeliveryIsDeferred) {
  auto s = play("LHLO mx\r\nMAIL FROM:<a@other.fr>\r\nRCPT TO:<cab@test.fr>\r\n",
                [](Tap& t) { t.stopping = true; });
  EXPECT_EQ(s.client,
            "220 mx.test LMTP mssgate\r\n250-dovecot\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            "421 4.3.2 Service shutting down, try again later\r\n");
  EXPECT_EQ(s.relayed, std::vector<std::string>{"LHLO mx\r\n"});
  EXPECT_TRUE(s.recorded.empty());
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.events.back(), "closing stopping");
}

// The events are durable before Dovecot has the end of the message (before it can deliver it),
// and Postfix hears Dovecot's replies with nothing waited for in between when every recipient
// was delivered: a crash then leaves no delivery uncounted, and hardly any unanswered.
TEST(LmtpTapCore, TheEventsArePendingBeforeDovecotHasTheEndOfTheMessage) {
  auto s = play(kTransaction, [](Tap& t) {
    t.per_recipient = {raw({"250 2.0.0 <cab@test.fr> saved"}), raw({"250 2.0.0 <lab> saved"})};
  });
  EXPECT_EQ(s.steps, (std::vector<std::string>{"record", "end", "answer", "settle"}));
  EXPECT_EQ(s.settled, std::vector<std::string>{"1,1"});  // no wait
  EXPECT_EQ(s.inspection.finished, "|.hello\r\n");
  EXPECT_EQ(s.deliveries, std::vector<std::string>{"relayed  size=8 rcpt=2 delivered=2"});

  // A journal that cannot take them does not hold the message back, and there is nothing to
  // settle.
  auto failed = play(kTransaction, [](Tap& t) {
    t.per_recipient = {raw({"250 saved"}), raw({"250 saved"})};
    t.record_durable = false;
  });
  EXPECT_EQ(failed.steps, (std::vector<std::string>{"record", "end", "answer"}));
  EXPECT_THAT(failed.client, HasSubstr("250 saved\r\n250 saved\r\n"));

  // Dovecot lost after the end of the message: its events are dropped (durably), Postfix told
  // to try again.
  auto lost = play(kTransaction, [](Tap& t) { t.per_recipient = {}; });
  EXPECT_EQ(lost.settled, std::vector<std::string>{"0,0 wait"});
  EXPECT_EQ(lost.steps, (std::vector<std::string>{"record", "end", "settle", "answer"}));
}

// Dovecot gets the delivery id first in the header section, and none the sender wrote; the
// journal's fingerprint and the inspection see the message as Postfix sent it.
TEST(LmtpTapCore, DovecotGetsTheDeliveryIdFirstAndOnlyThatOne) {
  const std::string header =
      "Received: from mx (mx [192.0.2.1]) by mx.test (Postfix) with ESMTP id 4Xa1\r\n"
      "x-delivery-id: forged\r\n\tcontinued\r\nSubject: hello\r\n\r\n";
  const std::string input =
      "MAIL FROM:<a@b.fr>\r\nRCPT TO:<c@d.fr>\r\nDATA\r\n" + header + "body\r\n.\r\nQUIT\r\n";
  auto setup = [](Tap& t) { t.per_recipient = {raw({"250 saved"})}; };
  auto s = play(input, setup, true, true, "X-Delivery-Id", true);
  std::string id = core::delivery_id(header);
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(s.data, "X-Delivery-Id: " + id +
                        "\r\nReceived: from mx (mx [192.0.2.1]) by mx.test (Postfix) with ESMTP id "
                        "4Xa1\r\nSubject: hello\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(s.inspection.finished, "|" + header + "body\r\n");
  ASSERT_EQ(s.recorded.size(), 1u);
  auto plain = play(input, setup);
  EXPECT_EQ(plain.data, header + "body\r\n.\r\n");
  EXPECT_EQ(s.recorded[0].fingerprint, plain.recorded[0].fingerprint);
  // One message at a time per mailbox: its turn before Dovecot has the end of the message.
  EXPECT_EQ(s.steps, (std::vector<std::string>{"record", "enter c@d.fr", "end", "answer", "leave",
                                               "settle"}));
  EXPECT_EQ(plain.steps, (std::vector<std::string>{"record", "end", "answer", "settle"}));

  // A message that ends inside its header section, and one without a header.
  auto short_one = play("MAIL FROM:<a@b.fr>\r\nRCPT TO:<c@d.fr>\r\nDATA\r\nSubject: x\r\n.\r\n",
                        setup, true, true, "X-Delivery-Id");
  EXPECT_EQ(short_one.data,
            "X-Delivery-Id: " + core::delivery_id("Subject: x\r\n") + "\r\nSubject: x\r\n.\r\n");
  auto bare = play("MAIL FROM:<a@b.fr>\r\nRCPT TO:<c@d.fr>\r\nDATA\r\n\r\nbody\r\n.\r\n", setup,
                   true, true, "X-Delivery-Id");
  EXPECT_EQ(bare.data, "X-Delivery-Id: " + core::delivery_id("\r\n") + "\r\n\r\nbody\r\n.\r\n");
}

TEST(DeliveryId, TheSameHeaderTheSameIdAndOnlyTheTapsFieldSurvives) {
  EXPECT_EQ(core::delivery_id("Received: id A\r\n\r\n"),
            core::delivery_id("Received: id A\r\n\r\n"));
  EXPECT_NE(core::delivery_id("Received: id A\r\n\r\n"),
            core::delivery_id("Received: id B\r\n\r\n"));
  EXPECT_THAT(core::delivery_id(""), testing::MatchesRegex("[0-9a-f]{32}"));
  // Case, blanks before the colon, folded lines, bare line feeds: every form of the field goes.
  std::string held =
      "X-ID: 1\r\nA: a\r\nx-id :2\n  folded\nB: b\nX-Idx: kept\n\nX-Id: in the body\r\n";
  size_t header = held.find("\n\n") + 2;
  EXPECT_EQ(core::stamp_delivery_id(held, header, "X-Id", "abc"),
            "X-Id: abc\r\nA: a\r\nB: b\nX-Idx: kept\n\nX-Id: in the body\r\n");
}

// A refusal through the gate: the mailboxes are let go, the drop made durable, then Postfix
// hears Dovecot's replies.
TEST(LmtpTapCore, ARefusalWaitsForItsEventsDrop) {
  auto s = play(
      kTransaction,
      [](Tap& t) {
        t.per_recipient = {raw({"250 saved"}), raw({"452 4.2.2 over quota"})};
      },
      true, true, "X-Delivery-Id", true);
  EXPECT_EQ(s.steps, (std::vector<std::string>{"record", "enter cab@test.fr", "end", "leave",
                                               "settle", "answer"}));
  EXPECT_EQ(s.settled, std::vector<std::string>{"1,0 wait"});
  EXPECT_THAT(s.client, HasSubstr("250 saved\r\n452 4.2.2 over quota\r\n"));
}

TEST(LmtpTapCore, WhatTheTapCannotRelayIsRefused) {
  auto s = play("BDAT 4\r\nSTARTTLS\r\nAUTH PLAIN\r\nXCLIENT ADDR=1\r\nNOOP\r\n");
  std::string refused = "502 5.5.1 Command not implemented\r\n";
  EXPECT_EQ(s.client, "220 mx.test LMTP mssgate\r\n" + refused + refused + refused + refused +
                          "250 2.1.0 ok\r\n");
  EXPECT_EQ(s.relayed, std::vector<std::string>{"NOOP\r\n"});
}

TEST(LmtpTapCore, OnlyTheCommandsOfADeliveryReachDovecot) {
  const std::vector<std::string> refused{"XCLIENT ADDR=192.0.2.1",
                                         "XFORWARD NAME=x",
                                         "AUTH PLAIN AGFAAGI=",
                                         "VRFY root",
                                         "EXPN staff",
                                         "ETRN example.fr",
                                         "HELO postfix",
                                         "EHLO postfix",
                                         "HELP",
                                         "TURN",
                                         "BDAT 10 LAST",
                                         "STARTTLS",
                                         "xclient login=a",
                                         "X",
                                         "",
                                         " NOOP"};
  std::string input;
  std::string expected = "220 mx.test LMTP mssgate\r\n";
  for (const auto& line : refused) {
    input += line + "\r\n";
    expected += "502 5.5.1 Command not implemented\r\n";
  }
  auto s = play(input + "LHLO mx\r\nRSET\r\nNOOP\r\nQUIT\r\n");
  EXPECT_EQ(s.relayed,
            (std::vector<std::string>{"LHLO mx\r\n", "RSET\r\n", "NOOP\r\n", "QUIT\r\n"}));
  EXPECT_EQ(s.client.substr(0, expected.size()), expected);
}

TEST(LmtpTapCore, TheVerbEndsAtAnyBlankAndDovecotGetsOneSpace) {
  // A tab does not hide XCLIENT; a tab after MAIL is read as the space it stands for.
  auto s = play(
      "XCLIENT\tADDR=192.0.2.1\r\nauth\tPLAIN\r\nlhlo \t mx\r\n"
      "MAIL\tFROM:<A@b.fr>\r\nrcpt  TO:<c@d.fr> NOTIFY=NEVER\r\nNOOP \r\n");
  EXPECT_EQ(s.relayed, (std::vector<std::string>{"LHLO mx\r\n", "MAIL FROM:<A@b.fr>\r\n",
                                                 "RCPT TO:<c@d.fr> NOTIFY=NEVER\r\n", "NOOP\r\n"}));
  EXPECT_THAT(s.client, testing::StartsWith("220 mx.test LMTP mssgate\r\n"
                                            "502 5.5.1 Command not implemented\r\n"
                                            "502 5.5.1 Command not implemented\r\n"));
  EXPECT_EQ(s.events, (std::vector<std::string>{"open"}));
}

TEST(LmtpTapCore, ACommandWithAControlCharacterIsRefused) {
  using namespace std::string_literals;
  auto s = play("NOOP\rRSET\r\nMAIL FROM:<a@b.fr>\x7f\r\nRCPT TO:<a\0b@c.fr>\r\nNOOP\r\n"s);
  std::string refused = "501 5.5.2 Control character in the command line\r\n";
  EXPECT_EQ(s.client,
            "220 mx.test LMTP mssgate\r\n" + refused + refused + refused + "250 2.1.0 ok\r\n");
  EXPECT_EQ(s.relayed, std::vector<std::string>{"NOOP\r\n"});
}

TEST(LmtpTapCore, TheLhloAnswerOffersOnlyWhatTheTapRelays) {
  auto s = play("LHLO mx\r\n", [](Tap& t) {
    t.dovecot = [](const std::string&) -> std::optional<RawReply> {
      return raw({"250-dovecot", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-PIPELINING",
                  "250-XCLIENT ADDR PORT TTL TIMEOUT HELO LOGIN", "250-XFORWARD NAME ADDR",
                  "250-AUTH PLAIN", "250-VRFY", "250-BINARYMIME", "250-CHUNKING", "250-STARTTLS",
                  "250-size 10240000", "250-DSN", "250 SMTPUTF8"});
    };
  });
  EXPECT_EQ(s.client,
            "220 mx.test LMTP mssgate\r\n250-dovecot\r\n250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-size 10240000\r\n250-DSN\r\n"
            "250 SMTPUTF8\r\n");
}

TEST(LmtpTapCore, DovecotUnavailable) {
  auto down = play("LHLO x\r\n", [](Tap& t) { t.connected = false; });
  EXPECT_EQ(down.client, "421 4.3.0 Mail store unavailable, try again later\r\n");
  EXPECT_EQ(down.events, std::vector<std::string>{"closing backend_unavailable"});
  auto silent = play("LHLO x\r\n", [](Tap& t) { t.greeting = std::nullopt; });
  EXPECT_EQ(silent.events, (std::vector<std::string>{"backend_failed greeting no greeting",
                                                     "closing backend_unavailable"}));
  auto rude = play("LHLO x\r\n", [](Tap& t) { t.greeting = raw({"554 go away"}); });
  EXPECT_EQ(rude.events.front(), "backend_failed greeting unexpected greeting");
}

TEST(LmtpTapCore, DovecotLostDuringTheDelivery) {
  auto s = play(kTransaction, [](Tap& t) { t.per_recipient = {raw({"250 2.0.0 saved"})}; });
  // The second recipient has no answer: Postfix will try it again.
  EXPECT_THAT(s.client, HasSubstr("250 2.0.0 saved\r\n451 4.4.2 Mail store connection lost, try "
                                  "again later\r\n"));
  EXPECT_EQ(s.recorded.size(), 1u);
  EXPECT_EQ(s.settled, std::vector<std::string>{"1,0 wait"});
  EXPECT_EQ(s.deliveries, std::vector<std::string>{"backend_lost  size=8 rcpt=2 delivered=1"});
  EXPECT_EQ(s.events.back(), "closing backend_lost");
  // (Where the first write fails depends on the reads: the backend's bytes differ.)
  auto unwritable = play(
      kTransaction, [](Tap& t) { t.written = false; }, true, false);
  EXPECT_THAT(unwritable.client,
              HasSubstr("354 go\r\n451 4.4.2 Mail store connection lost, try again later\r\n"
                        "451 4.4.2 Mail store connection lost, try again later\r\n"));
  EXPECT_TRUE(unwritable.recorded.empty());
  EXPECT_TRUE(unwritable.settled.empty());
  auto gone = play("MAIL FROM:<a@b.fr>\r\n", [](Tap& t) {
    t.dovecot = [](const std::string&) -> std::optional<RawReply> { return std::nullopt; };
  });
  EXPECT_THAT(gone.client, HasSubstr("421 4.4.2 Mail store connection lost, try again later\r\n"));
}

TEST(LmtpTapCore, DataRefusedByDovecotIsRelayed) {
  auto s = play("MAIL FROM:<a@b.fr>\r\nRCPT TO:<c@d.fr>\r\nDATA\r\nNOOP\r\n", [](Tap& t) {
    t.dovecot = [](const std::string& line) -> std::optional<RawReply> {
      if (line.starts_with("DATA")) return raw({"503 5.5.1 no valid recipients"});
      return raw({"250 ok"});
    };
  });
  EXPECT_THAT(s.client, HasSubstr("503 5.5.1 no valid recipients\r\n250 ok\r\n"));
}

TEST(LmtpTapCore, APostfixGoneDuringDataAbortsTheDelivery) {
  auto s = play("MAIL FROM:<a@b.fr>\r\nRCPT TO:<c@d.fr>\r\nDATA\r\nhalf a message");
  EXPECT_EQ(s.deliveries,
            std::vector<std::string>{"aborted client_gone size=14 rcpt=1 delivered=0"});
  EXPECT_TRUE(s.recorded.empty());
}

TEST(LmtpTapCore, ALineOverTheCapEndsTheSession) {
  auto s = play("NOOP " + std::string(300, 'x') + "\r\n");
  EXPECT_THAT(s.client, HasSubstr("500 5.5.2 Line too long; closing the connection\r\n"));
  EXPECT_EQ(s.events, std::vector<std::string>{"closing line_too_long"});
}

TEST(LmtpTapCore, WithoutIndicatorsNothingIsRecorded) {
  auto s = play(
      kTransaction,
      [](Tap& t) {
        t.per_recipient = {raw({"250 saved"}), raw({"250 saved"})};
      },
      false);
  EXPECT_TRUE(s.recorded.empty());
  EXPECT_TRUE(s.settled.empty());
  EXPECT_EQ(s.steps, (std::vector<std::string>{"end", "answer"}));
  EXPECT_EQ(s.deliveries, std::vector<std::string>{"relayed  size=8 rcpt=2 delivered=2"});
}

}  // namespace
}  // namespace mssgate::test_core
