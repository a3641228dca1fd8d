// Fuzz target for the parsers that read what clients and peers send: whatever the bytes, the
// IMAP command tokenizer, the SMTP reply parser and the DATA reader must give the same answers
// whole and in pieces, never read out of bounds and never hold more than their caps; SASL
// (EXTERNAL, XOAUTH2, OAUTHBEARER), base64, JWT, header and address parsing must not crash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/address_list.hpp"
#include "protocol/base64.hpp"
#include "protocol/cda_document.hpp"
#include "protocol/display_text.hpp"
#include "protocol/imap_command_parser.hpp"
#include "protocol/imap_response.hpp"
#include "protocol/jwt.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/message_header.hpp"
#include "protocol/message_inspector.hpp"
#include "protocol/sasl_external.hpp"
#include "protocol/sasl_oauth.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_data.hpp"
#include "protocol/smtp_reply.hpp"
#include "protocol/xdm_archive.hpp"

namespace {

using mssgate::protocol::ImapCommandParser;

constexpr ImapCommandParser::Limits kLimits{1024, 2048};

std::vector<std::string> transcript(std::string_view input, size_t chunk) {
  ImapCommandParser parser(kLimits);
  std::vector<std::string> events;
  size_t offset = 0;
  while (offset < input.size()) {
    std::string_view piece = input.substr(offset, chunk ? chunk : input.size());
    auto r = parser.feed(piece);
    if (r.consumed == 0 || r.consumed > piece.size()) std::abort();
    offset += r.consumed;
    using Status = ImapCommandParser::Status;
    if (r.status == Status::kCommand) {
      const auto& c = parser.command();
      std::string e = "C" + c.tag + " " + c.name;
      size_t literal_bytes = 0;
      for (const auto& t : c.args) {
        e += " " + std::to_string(static_cast<int>(t.kind)) + ":" + t.value;
        if (t.kind == mssgate::protocol::ImapToken::Kind::kLiteral) literal_bytes += t.value.size();
      }
      if (literal_bytes > kLimits.max_literal_bytes) std::abort();
      if (c.name == "AUTHENTICATE") {
        parser.expect_raw_line();
        if (c.args.size() > 1) mssgate::protocol::decode_sasl_external(c.args[1].value);
      }
      events.push_back(e);
    } else if (r.status == Status::kRawLine) {
      if (parser.raw_line().size() > kLimits.max_line_bytes + 1) std::abort();
      mssgate::protocol::decode_sasl_external(parser.raw_line());
      events.push_back("R" + parser.raw_line());
    } else if (r.status == Status::kNeedLiteralContinuation) {
      events.emplace_back("+");
    } else if (r.status == Status::kError) {
      events.push_back("E" + parser.error().tag + parser.error().message);
      if (parser.error().fatal) break;
    }
  }
  return events;
}

// The SMTP DATA reader: same content and end whatever the piece size; re-encoding the content
// with the writer reads back to the same content.
void check_smtp_data(std::string_view input) {
  auto read = [&](size_t chunk, std::string& content) {
    mssgate::protocol::SmtpDataReader reader;
    size_t offset = 0;
    while (offset < input.size()) {
      auto r = reader.feed(input.substr(offset, chunk ? chunk : input.size()), content);
      offset += r.consumed;
      if (r.complete) return offset;
    }
    return size_t{0};
  };
  std::string whole, bytewise;
  size_t end = read(0, whole);
  if (read(1, bytewise) != end || bytewise != whole) std::abort();
  if (end == 0) return;
  mssgate::protocol::SmtpDataWriter writer;
  std::string wire, again;
  writer.encode(whole, wire);
  writer.finish(wire);
  mssgate::protocol::SmtpDataReader reader;
  auto r = reader.feed(wire, again);
  if (!r.complete || r.consumed != wire.size()) std::abort();
}

std::vector<std::string> smtp_replies(std::string_view input, size_t chunk) {
  mssgate::protocol::SmtpReplyParser parser(512, 20);
  std::vector<std::string> out;
  size_t offset = 0;
  while (offset < input.size()) {
    auto r = parser.feed(input.substr(offset, chunk ? chunk : input.size()));
    offset += r.consumed;
    if (r.status == mssgate::protocol::SmtpReplyParser::Status::kError) {
      out.emplace_back("error");
      break;
    }
    if (r.status == mssgate::protocol::SmtpReplyParser::Status::kReply) {
      out.push_back(std::to_string(parser.reply().code) + parser.reply().enhanced);
    }
    if (r.consumed == 0) break;
  }
  return out;
}

}  // namespace

// The message inspector must reach the same facts whatever the pieces it is fed.
// The IMAP response framing gives the same verdicts fed one byte or seven at a time (at every
// seventh byte and at the end), and whole (at the end).
static void check_imap_framing(std::string_view input) {
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
  if (input.empty()) return;
  std::string by_byte = verdicts(1);
  if (verdicts(7) != by_byte) std::abort();
  std::string whole = verdicts(input.size());
  auto final_of = [](const std::string& v) {
    size_t bye = v.find('+');
    return v.substr(bye == std::string::npos ? v.size() - 1 : bye - 1);
  };
  if (final_of(whole) != final_of(by_byte)) std::abort();
}

static void check_inspector(std::string_view input) {
  auto facts_of = [&](size_t piece) {
    mssgate::protocol::MessageInspector inspector;
    for (size_t i = 0; i < input.size(); i += piece)
      inspector.feed(input.substr(i, piece));
    auto facts = inspector.finish();
    std::string out = facts.uninspectable_reason + "|" + std::to_string(facts.parts) + "|" +
                      std::to_string(facts.xdm_archives) + "|" + std::to_string(facts.mdn);
    for (auto m : facts.mismatches)
      out += to_string(m);
    for (const auto& c : facts.codes())
      out += c;
    return out;
  };
  if (facts_of(input.size() + 1) != facts_of(1)) std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto whole = transcript(input, 0);
  if (transcript(input, 1) != whole) std::abort();
  if (transcript(input, 7) != whole) std::abort();

  mssgate::protocol::LineSplitter lines(512);
  std::string_view rest = input;
  while (!rest.empty()) {
    auto r = lines.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.status == mssgate::protocol::LineSplitter::Status::kTooLong) break;
    if (r.status == mssgate::protocol::LineSplitter::Status::kLine) {
      if (lines.line().size() > 513) std::abort();
      if (auto response = mssgate::protocol::parse_imap_response_line(lines.line())) {
        mssgate::protocol::split_capabilities(response->code_args);
      }
    }
  }
  if (auto decoded = mssgate::protocol::base64_decode(input)) {
    if (mssgate::protocol::base64_encode(*decoded) != input) std::abort();
  }

  check_imap_framing(input);
  check_smtp_data(input);
  if (smtp_replies(input, 0) != smtp_replies(input, 1)) std::abort();
  mssgate::protocol::parse_path_argument(input, "FROM");
  mssgate::protocol::parse_path_argument(input, "TO");
  std::string encoded = mssgate::protocol::base64_encode(input);
  mssgate::protocol::decode_xoauth2(encoded);
  mssgate::protocol::decode_oauthbearer(encoded);
  mssgate::protocol::parse_jwt(input);
  mssgate::protocol::parse_jwks(input);
  mssgate::protocol::HeaderSectionReader headers(2048);
  headers.feed(input);
  headers.end_of_message();
  headers.structure_problem();
  for (const auto& field : headers.fields()) {
    mssgate::protocol::extract_addresses(field.value);
    for (bool utf8 : {false, true}) {
      auto list = mssgate::protocol::read_address_list(field.raw, {utf8});
      // A value that has no single reading gives no mailbox.
      if (!list.readable() && !list.mailboxes.empty()) std::abort();
      for (const auto& mailbox : list.mailboxes)
        mssgate::protocol::read_shown_text(mailbox.display_name);
    }
  }
  mssgate::protocol::read_address_list(input, {true});
  mssgate::protocol::read_shown_text(input);
  std::string_view problem;
  mssgate::protocol::decode_encoded_word(input, problem);
  check_inspector(input);
  return 0;
}
