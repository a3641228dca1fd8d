// Fuzz target "smtp": what submission clients and Postfix send. Command lines and their MAIL /
// RCPT paths (what is relayed holds no control character), EHLO names, xtext (what mssgate
// writes decodes back); Postfix's replies read the same whole and in pieces; the DATA stream
// (dot-stuffing, the terminator wherever the reads cut it) and core::MessageStream, which
// stuffs it again for the backend, give the same message whatever the pieces, and the backend
// reads back what was inspected; core::PostfixDialogue writes one line per command whatever the
// client's EHLO name and Postfix's replies.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/message_stream.hpp"
#include "daemon/core/postfix_dialogue.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_data.hpp"
#include "protocol/smtp_reply.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::SmtpReplyParser;

bool has_control(std::string_view text) {
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

void check_command_line(std::string_view line) {
  auto command = mssgate::protocol::parse_smtp_command(line);
  for (std::string_view keyword : {"FROM", "TO"}) {
    auto path = mssgate::protocol::parse_path_argument(command.argument, keyword);
    if (!path) continue;
    check(!has_control(path->address) && path->address.find_first_of(" <>") == std::string::npos,
          "smtp: a path address holds no control, space or angle bracket");
    check(!has_control(path->parameter_text), "smtp: relayed parameters hold no control");
  }
  if (mssgate::protocol::ehlo_domain_or_address_literal(command.argument))
    check(!has_control(command.argument) && command.argument.find(' ') == std::string::npos,
          "smtp: an EHLO name taken holds no control or space");
  auto decoded = mssgate::protocol::xtext_decode(mssgate::protocol::xtext_encode(line));
  check(decoded && *decoded == line, "smtp: xtext decodes back");
  // What a client sends as an ENVID: decoded or refused, never more bytes than it had.
  auto envid = mssgate::protocol::xtext_decode(line);
  check(!envid || envid->size() <= line.size(), "smtp: decoded xtext is no longer than its text");
}

// One command line written to Postfix: CRLF at its end and nowhere else.
bool one_line(std::string_view text) {
  return text.size() >= 2 && text.substr(text.size() - 2) == "\r\n" &&
         text.find_first_of("\r\n") == text.size() - 2;
}

std::vector<std::string> replies(std::string_view input, size_t how) {
  SmtpReplyParser parser(512, 20);
  std::vector<std::string> out;
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    while (!piece.empty()) {
      auto r = parser.feed(piece);
      piece.remove_prefix(r.consumed);
      if (r.status == SmtpReplyParser::Status::kError) {
        out.emplace_back("error");
        return out;
      }
      if (r.status == SmtpReplyParser::Status::kReply) {
        const auto& reply = parser.reply();
        check(reply.lines.size() <= 20, "smtp: reply lines capped");
        std::string e = std::to_string(reply.code) + " " + reply.enhanced;
        for (const auto& l : reply.lines)
          e += "|" + l;
        out.push_back(e);
      } else {
        check(r.consumed > 0 || piece.empty(), "smtp: the reply parser moves on");
      }
    }
  }
  return out;
}

// The Postfix dialogue of a session whose client named itself `helo`, against these replies.
void check_dialogue(std::string_view helo, std::string_view wire) {
  std::vector<std::optional<mssgate::protocol::SmtpReply>> answers;
  SmtpReplyParser parser(512, 20);
  while (!wire.empty()) {
    auto r = parser.feed(wire);
    wire.remove_prefix(r.consumed);
    if (r.status != SmtpReplyParser::Status::kReply) break;
    answers.emplace_back(parser.reply());
  }
  using mssgate::core::PostfixDialogue;
  mssgate::core::XclientIdentity identity{"2001:db8::1", 4321, std::string(helo),
                                          "cabinet@test.mssante.fr"};
  check(one_line(PostfixDialogue::xclient_command(identity)), "smtp: XCLIENT is one line");
  for (auto dialogue : {PostfixDialogue::greet("gw.test"),
                        PostfixDialogue::introduce(identity, {true, true, true}, "gw.test")}) {
    size_t next = 0;
    for (int step = 0; step < 16; ++step) {
      auto action = dialogue.next();
      if (action.kind == PostfixDialogue::Kind::kWrite) {
        check(one_line(action.text), "smtp: every command to Postfix is one line");
      } else if (action.kind == PostfixDialogue::Kind::kReadReply) {
        dialogue.on_reply(next < answers.size() ? answers[next++] : std::nullopt);
      } else {
        break;
      }
    }
  }
}

// The DATA stream through core::MessageStream, as the submission core and the LMTP tap use it.
struct StreamOutcome {
  bool complete = false;
  size_t consumed = 0;
  bool header_too_large = false;
  std::string backend;
  std::string inspected;
  std::string fingerprint;
  bool operator==(const StreamOutcome&) const = default;
};

StreamOutcome stream(std::string_view input, size_t how) {
  mssgate::core::MessageStream::Settings settings;
  settings.hold_header = true;
  settings.max_header_bytes = 2048;
  settings.inspect = true;
  settings.fingerprint = true;
  mssgate::core::MessageStream message(settings);
  StreamOutcome out;
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    while (!piece.empty() && !out.complete) {
      auto fed = message.feed_data(piece);
      piece.remove_prefix(fed.consumed);
      out.consumed += fed.consumed;
      out.complete = fed.complete;
      if (fed.fed == mssgate::core::MessageStream::Fed::kHeaderReady) message.release_header();
      out.backend += message.take_backend_bytes();
      out.inspected += message.take_inspection_bytes();
      check(fed.consumed > 0 || fed.complete, "smtp: DATA moves on");
    }
  }
  out.header_too_large = message.header_too_large();
  // What went to the inspection before the message was discarded (a header section past its
  // cap) depends on where the pieces ended; the session never asks for a discarded message's
  // inspection to end, and the next message's start drops it: it is left out of the comparison.
  if (message.discarded()) out.inspected.clear();
  if (out.complete && !message.discarded()) out.backend += message.backend_terminator();
  out.fingerprint = message.fingerprint();
  return out;
}

// The content as the writer sends it: bare LFs made CRLF.
std::string with_crlf(std::string_view content) {
  std::string out;
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r')) out += '\r';
    out += content[i];
  }
  return out;
}

void check_data(std::string_view input) {
  auto outcome =
      mssgate::fuzz::same_whole_and_in_pieces(input, stream, "smtp: same DATA in pieces");
  if (!outcome.complete || outcome.header_too_large) return;
  // What the backend reads of the stuffed bytes is what was inspected.
  mssgate::protocol::SmtpDataReader reader;
  std::string again;
  auto r = reader.feed(outcome.backend, again);
  check(r.complete && r.consumed == outcome.backend.size(), "smtp: the backend reads one message");
  check(again == with_crlf(outcome.inspected), "smtp: the backend reads what was inspected");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::protocol::LineSplitter lines(1024);
  std::string_view rest = input;
  std::string first_line;
  while (!rest.empty()) {
    auto r = lines.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.status == mssgate::protocol::LineSplitter::Status::kTooLong) break;
    if (r.status != mssgate::protocol::LineSplitter::Status::kLine) continue;
    check_command_line(lines.line());
    if (first_line.empty()) first_line = lines.line();
  }
  mssgate::fuzz::same_whole_and_in_pieces(input, replies, "smtp: same replies in pieces");
  auto ehlo = mssgate::protocol::parse_smtp_command(first_line);
  check_dialogue(ehlo.argument, input);
  check_data(input);
  return 0;
}
