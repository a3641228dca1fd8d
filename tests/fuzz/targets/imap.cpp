// Fuzz target "imap": what IMAP clients and Dovecot send. The command tokenizer must give the
// same commands whole and in pieces, keep its caps (line text, literal bytes, the memory it
// holds), and read back every quoted string mssgate writes (imap_quote). The response-line
// parser, the capability filter and the master-user login to Dovecot (core::DovecotLogin) read
// the same bytes as server lines: the capabilities a client is shown never offer
// authentication again.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/dovecot_login.hpp"
#include "protocol/ascii.hpp"
#include "protocol/imap_command_parser.hpp"
#include "protocol/imap_response.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/sasl_external.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::ImapCommandParser;
using mssgate::protocol::ImapToken;

constexpr ImapCommandParser::Limits kLimits{1024, 2048};

std::string describe_command(const mssgate::protocol::ImapCommand& c) {
  std::string e = "C" + c.tag + " " + c.name;
  size_t literal_bytes = 0;
  for (const auto& t : c.args) {
    e += " " + std::to_string(static_cast<int>(t.kind)) + ":" + t.value;
    if (t.kind == ImapToken::Kind::kLiteral) literal_bytes += t.value.size();
  }
  check(literal_bytes <= kLimits.max_literal_bytes, "imap: literal bytes within their cap");
  return e;
}

// What the tokenizer makes of the client's bytes fed in the pieces `how` cuts; AUTHENTICATE
// switches it to raw lines, as the IMAP core does for the SASL exchange.
std::vector<std::string> transcript(std::string_view input, size_t how) {
  ImapCommandParser parser(kLimits);
  std::vector<std::string> events;
  size_t fed = 0;
  using Status = ImapCommandParser::Status;
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    while (!piece.empty()) {
      auto r = parser.feed(piece);
      check(r.consumed > 0 && r.consumed <= piece.size(), "imap: feed consumes 1..n bytes");
      piece.remove_prefix(r.consumed);
      fed += r.consumed;
      // Its memory grows with the bytes fed, never with a size the client announces (a string
      // grows to twice what it holds; an empty literal, "{0}\r\n", costs two short strings).
      check(parser.held_capacity() <= 8 * fed + 4096, "imap: held memory follows the bytes fed");
      if (r.status == Status::kCommand) {
        const auto& c = parser.command();
        events.push_back(describe_command(c));
        if (c.name == "AUTHENTICATE") {
          parser.expect_raw_line();
          if (c.args.size() > 1) mssgate::protocol::decode_sasl_external(c.args[1].value);
        }
      } else if (r.status == Status::kRawLine) {
        check(parser.raw_line().size() <= kLimits.max_line_bytes + 1, "imap: raw line capped");
        mssgate::protocol::decode_sasl_external(parser.raw_line());
        events.push_back("R" + parser.raw_line());
      } else if (r.status == Status::kNeedLiteralContinuation) {
        events.emplace_back("+");
      } else if (r.status == Status::kError) {
        events.push_back("E" + parser.error().tag + parser.error().message);
        if (parser.error().fatal) return events;
      }
    }
  }
  events.emplace_back(parser.mid_command() ? "mid" : "idle");
  return events;
}

bool offers_authentication(const std::vector<std::string>& caps) {
  using mssgate::protocol::ascii_istarts_with;
  for (const auto& cap : caps) {
    if (ascii_istarts_with(cap, "AUTH=") || ascii_istarts_with(cap, "STARTTLS") ||
        ascii_istarts_with(cap, "LOGINDISABLED") || ascii_istarts_with(cap, "SASL-IR"))
      return true;
  }
  return false;
}

// A value mssgate quotes for Dovecot (ID parameters) reads back as itself, less CR, LF, NUL.
void check_quoting(std::string_view value) {
  std::string expected;
  for (char c : value) {
    if (c != '\r' && c != '\n' && c != '\0') expected += c;
  }
  ImapCommandParser parser({1 << 20, 1 << 20});
  std::string line = "a ID (" + mssgate::protocol::imap_quote(value) + ")\r\n";
  auto r = parser.feed(line);
  check(r.status == ImapCommandParser::Status::kCommand && r.consumed == line.size(),
        "imap: a quoted value is one command");
  const auto& args = parser.command().args;
  check(args.size() == 3 && args[1].kind == ImapToken::Kind::kQuoted && args[1].value == expected,
        "imap: imap_quote reads back as the value");
}

// The server's lines: response lines, capabilities, and the login to Dovecot they drive.
void check_server_lines(std::string_view input) {
  std::vector<std::string> lines;
  mssgate::protocol::LineSplitter splitter(512);
  std::string_view rest = input;
  while (!rest.empty()) {
    auto r = splitter.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.status == mssgate::protocol::LineSplitter::Status::kTooLong) break;
    if (r.status != mssgate::protocol::LineSplitter::Status::kLine) continue;
    check(splitter.line().size() <= 513, "imap: server line capped");
    lines.push_back(splitter.line());
    if (auto response = mssgate::protocol::parse_imap_response_line(splitter.line())) {
      auto caps = mssgate::protocol::split_capabilities(response->code_args);
      auto shown = mssgate::protocol::post_login_capabilities(caps);
      check(!offers_authentication(mssgate::protocol::split_capabilities(shown)),
            "imap: post-login capabilities offer no authentication");
    }
  }
  using mssgate::core::DovecotLogin;
  DovecotLogin login(
      {"cabinet@test.mssante.fr", "master", "secret", "192.0.2.1", 1234, "127.0.0.1", 143, "s1"});
  size_t next_line = 0;
  int password_writes = 0;
  for (size_t step = 0; step < lines.size() + 64; ++step) {
    auto action = login.next();
    if (action.kind == DovecotLogin::Kind::kReadLine) {
      if (next_line < lines.size()) {
        login.on_line(lines[next_line++]);
      } else {
        login.on_connection_lost(false);
      }
    } else if (action.kind == DovecotLogin::Kind::kWrite) {
      password_writes +=
          static_cast<int>(action.text.find("Y2FiaW5ldEB0ZXN0") != std::string::npos);
      check(password_writes <= 1, "imap: the master login is sent once");
    } else {
      if (action.kind == DovecotLogin::Kind::kDone)
        check(!offers_authentication(mssgate::protocol::split_capabilities(action.text)),
              "imap: the capabilities after login offer no authentication");
      return;
    }
  }
  mssgate::fuzz::fail("imap: the Dovecot login ends");
}

// The response framing (where a BYE of mssgate's own may go) gives the same verdicts fed one
// byte or seven at a time (at every seventh byte and at the end), and whole (at the end).
void check_response_framing(std::string_view input) {
  if (input.empty()) return;
  auto verdicts = [&](size_t piece) {
    mssgate::protocol::ImapResponseFraming framing;
    std::string out;
    for (size_t i = 0; i < input.size(); i += piece) {
      framing.feed(input.substr(i, piece));
      size_t end = std::min(i + piece, input.size());
      if (end % 7 == 0 || end == input.size()) out += framing.at_boundary() ? 'B' : '-';
    }
    return out + (framing.said_bye() ? "+bye" : "");
  };
  std::string by_byte = verdicts(1);
  check(verdicts(7) == by_byte, "imap: same response framing by one byte and by seven");
  auto final_of = [](const std::string& v) {
    size_t bye = v.find('+');
    return v.substr(bye == std::string::npos ? v.size() - 1 : bye - 1);
  };
  check(final_of(verdicts(input.size())) == final_of(by_byte),
        "imap: same response framing whole and by one byte");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::fuzz::same_whole_and_in_pieces(input, transcript,
                                          "imap: same commands whole and in pieces");
  check_server_lines(input);
  check_response_framing(input);
  check_quoting(input.substr(0, 512));
  return 0;
}
