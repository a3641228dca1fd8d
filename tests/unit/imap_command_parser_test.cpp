#include "protocol/imap_command_parser.hpp"

#include <gtest/gtest.h>

using mssgate::protocol::ImapCommand;
using mssgate::protocol::ImapCommandParser;
using mssgate::protocol::ImapParseError;
using mssgate::protocol::ImapToken;
using Status = ImapCommandParser::Status;
using Kind = ImapToken::Kind;

namespace {

// Everything the parser reports for an input, in order, as comparable text.
struct Transcript {
  std::vector<std::string> events;
  bool operator==(const Transcript&) const = default;
};

std::string describe(const ImapCommand& c) {
  std::string out = "command tag=" + c.tag + " name=" + c.name;
  for (const auto& t : c.args) {
    switch (t.kind) {
      case Kind::kAtom:
        out += " atom:" + t.value;
        break;
      case Kind::kQuoted:
        out += " quoted:" + t.value;
        break;
      case Kind::kLiteral:
        out += " literal:" + std::to_string(t.value.size()) + ":" + t.value;
        break;
      case Kind::kListBegin:
        out += " (";
        break;
      case Kind::kListEnd:
        out += " )";
        break;
    }
  }
  return out;
}

// Feeds `input` in chunks of `chunk` bytes (0: all at once), resuming after each event.
Transcript parse(std::string_view input, size_t chunk, ImapCommandParser::Limits limits = {}) {
  ImapCommandParser parser(limits);
  Transcript t;
  size_t offset = 0;
  while (offset < input.size()) {
    size_t size = chunk == 0 ? input.size() - offset : std::min(chunk, input.size() - offset);
    std::string_view piece = input.substr(offset, size);
    while (!piece.empty()) {
      auto r = parser.feed(piece);
      piece.remove_prefix(r.consumed);
      offset += r.consumed;
      switch (r.status) {
        case Status::kNeedMore:
          break;
        case Status::kCommand:
          t.events.push_back(describe(parser.command()));
          break;
        case Status::kNeedLiteralContinuation:
          t.events.emplace_back("continue");
          break;
        case Status::kRawLine:
          t.events.push_back("raw:" + parser.raw_line());
          break;
        case Status::kError:
          t.events.push_back("error tag=" + parser.error().tag + " fatal=" +
                             (parser.error().fatal ? "1" : "0") + " " + parser.error().message);
          if (parser.error().fatal) return t;
          break;
      }
      if (r.consumed == 0 && r.status == Status::kNeedMore) break;
    }
  }
  return t;
}

void expect_same_whole_and_byte_by_byte(std::string_view input,
                                        const std::vector<std::string>& expected,
                                        ImapCommandParser::Limits limits = {}) {
  EXPECT_EQ(parse(input, 0, limits).events, expected) << "whole";
  EXPECT_EQ(parse(input, 1, limits).events, expected) << "one byte at a time";
  EXPECT_EQ(parse(input, 3, limits).events, expected) << "three bytes at a time";
}

}  // namespace

TEST(ImapCommandParser, ParsesSimpleCommands) {
  expect_same_whole_and_byte_by_byte(
      "a1 capability\r\nA2 NOOP\r\nx LOGOUT\n",
      {"command tag=a1 name=CAPABILITY", "command tag=A2 name=NOOP", "command tag=x name=LOGOUT"});
}

TEST(ImapCommandParser, ParsesQuotedStringsListsAndNil) {
  expect_same_whole_and_byte_by_byte(
      "t ID (\"name\" \"my \\\"client\\\"\" \"version\" NIL)\r\n",
      {"command tag=t name=ID ( quoted:name quoted:my \"client\" quoted:version atom:NIL )"});
}

TEST(ImapCommandParser, AsksForContinuationBeforeSynchronisingLiteral) {
  expect_same_whole_and_byte_by_byte(
      "a LOGIN {4}\r\nuser {6}\r\nsecret\r\n",
      {"continue", "continue", "command tag=a name=LOGIN literal:4:user literal:6:secret"});
}

TEST(ImapCommandParser, TakesNonSynchronisingLiteralsWithoutContinuation) {
  expect_same_whole_and_byte_by_byte("a LOGIN {4+}\r\nu\r\nx {0+}\r\n\r\n",
                                     {"command tag=a name=LOGIN literal:4:u\r\nx literal:0:"});
}

TEST(ImapCommandParser, LiteralBytesMayContainAnything) {
  std::string input = "a APPEND INBOX {5}\r\n";
  input += std::string("\0\r\n}{", 5);
  input += "\r\n";
  auto t = parse(input, 1);
  ASSERT_EQ(t.events.size(), 2u);
  EXPECT_EQ(t.events[0], "continue");
  EXPECT_EQ(t.events[1],
            "command tag=a name=APPEND atom:INBOX literal:5:" + std::string("\0\r\n}{", 5));
}

TEST(ImapCommandParser, ReportsSyntaxErrorsWithTheTagAndStaysInSync) {
  expect_same_whole_and_byte_by_byte(
      "a1 ID (\"unterminated)\r\na2 NOOP\r\n",
      {"error tag=a1 fatal=0 Unterminated quoted string", "command tag=a2 name=NOOP"});
  expect_same_whole_and_byte_by_byte(
      "\r\na3 NOOP\r\n", {"error tag=* fatal=0 Empty command", "command tag=a3 name=NOOP"});
  expect_same_whole_and_byte_by_byte("a4 X ((a)\r\n",
                                     {"error tag=a4 fatal=0 Unbalanced parentheses"});
  expect_same_whole_and_byte_by_byte("a5\r\n",
                                     {"error tag=a5 fatal=0 Missing tag or command name"});
  expect_same_whole_and_byte_by_byte("a6 X \"bad\\n\"\r\n",
                                     {"error tag=a6 fatal=0 Invalid escape in quoted string"});
  expect_same_whole_and_byte_by_byte("a7 X {3} y\r\n", {"error tag=a7 fatal=0 Misplaced literal"});
}

TEST(ImapCommandParser, LineOverTheCapIsFatal) {
  ImapCommandParser::Limits limits{1024, 4096};
  std::string input = "a1 NOOP " + std::string(2000, 'x') + "\r\n";
  expect_same_whole_and_byte_by_byte(input, {"error tag=a1 fatal=1 Line too long"}, limits);
  // Exactly at the cap is fine.
  std::string at_cap = "a1 NOOP " + std::string(1024 - 8, 'x') + "\r\n";
  EXPECT_EQ(parse(at_cap, 1, limits).events.size(), 1u);
  EXPECT_EQ(parse(at_cap, 1, limits).events[0].rfind("command", 0), 0u);
}

TEST(ImapCommandParser, LineCapCountsEveryLineOfACommand) {
  ImapCommandParser::Limits limits{1024, 1 << 20};
  std::string input = "a1 X";
  for (int i = 0; i < 300; ++i)
    input += " {1+}\r\nx";
  input += "\r\n";
  auto t = parse(input, 1, limits);
  ASSERT_FALSE(t.events.empty());
  EXPECT_EQ(t.events.back(), "error tag=a1 fatal=1 Line too long");
}

TEST(ImapCommandParser, SynchronisingLiteralOverTheCapIsRefusedAndTheStreamStaysUsable) {
  ImapCommandParser::Limits limits{1024, 1024};
  expect_same_whole_and_byte_by_byte(
      "a1 APPEND INBOX {999999}\r\na2 NOOP\r\n",
      {"error tag=a1 fatal=0 Literal too large", "command tag=a2 name=NOOP"}, limits);
}

TEST(ImapCommandParser, NonSynchronisingLiteralOverTheCapIsFatal) {
  ImapCommandParser::Limits limits{1024, 1024};
  expect_same_whole_and_byte_by_byte("a1 APPEND INBOX {999999+}\r\nxxxx",
                                     {"error tag=a1 fatal=1 Literal too large"}, limits);
}

TEST(ImapCommandParser, LiteralCapCountsEveryLiteralOfACommand) {
  ImapCommandParser::Limits limits{1024, 1024};
  std::string input = "a1 X {600+}\r\n" + std::string(600, 'a') + " {600}\r\n";
  EXPECT_EQ(parse(input, 1, limits).events,
            (std::vector<std::string>{"error tag=a1 fatal=0 Literal too large"}));
}

TEST(ImapCommandParser, ReturnsRawLinesWhenAsked) {
  for (size_t chunk : {0u, 1u}) {
    ImapCommandParser parser({});
    std::string input = "a AUTHENTICATE EXTERNAL\r\ndGVzdA==\r\nb NOOP\r\n";
    std::vector<std::string> events;
    std::string_view rest = input;
    while (!rest.empty()) {
      std::string_view piece = chunk ? rest.substr(0, chunk) : rest;
      auto r = parser.feed(piece);
      rest.remove_prefix(r.consumed);
      if (r.status == Status::kCommand) {
        events.push_back(parser.command().name);
        if (parser.command().name == "AUTHENTICATE") parser.expect_raw_line();
      } else if (r.status == Status::kRawLine) {
        events.push_back("raw:" + parser.raw_line());
      }
    }
    EXPECT_EQ(events, (std::vector<std::string>{"AUTHENTICATE", "raw:dGVzdA==", "NOOP"})) << chunk;
  }
}

TEST(ImapCommandParser, ReportsWhetherACommandIsUnderway) {
  ImapCommandParser parser({});
  EXPECT_FALSE(parser.mid_command());
  parser.feed("a NO");
  EXPECT_TRUE(parser.mid_command());
  parser.feed("OP\r\n");
  EXPECT_FALSE(parser.mid_command());
}

TEST(ImapCommandParser, AnAnnouncedLiteralReservesNothingBeforeItsBytesArrive) {
  ImapCommandParser::Limits limits{1024, 64 << 20};
  for (const char* line : {"a1 ID {60000000}\r\n", "a1 ID {60000000+}\r\n"}) {
    ImapCommandParser parser(limits);
    auto r = parser.feed(line);
    EXPECT_NE(r.status, Status::kError) << line;
    // The line itself, not the 60 MB it announces.
    EXPECT_LT(parser.held_capacity(), 4096u) << line;
    // Bytes that arrive are held, and only they.
    parser.feed(std::string(10000, 'x'));
    EXPECT_GE(parser.held_capacity(), 10000u) << line;
    EXPECT_LT(parser.held_capacity(), 64u << 10) << line;
  }
  // A size beyond the cap, up to the largest a client can write, is refused before anything.
  ImapCommandParser parser(limits);
  auto r = parser.feed("A LOGIN {4294967295}\r\n");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_FALSE(parser.error().fatal);
  EXPECT_EQ(parser.error().message, "Literal too large");
  EXPECT_LT(parser.held_capacity(), 4096u);
  r = parser.feed("B LOGIN {9999999999999999999+}\r\n");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_TRUE(parser.error().fatal);
}
