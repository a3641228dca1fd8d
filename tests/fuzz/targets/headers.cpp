// Fuzz target "headers": a submitted message's header section as the client writes it. The
// section reader gives the same fields whole and in pieces; every field is read as an RFC 5322
// address list (with and without RFC 6532 UTF-8), its display names and comments as a mail
// reader shows them, its encoded words decoded; the MSSanté claims are read; and the author
// check (core::check_authors) accepts a section only when one From is there, the section reads
// the same for every reader, and every author mailbox is one the signed-in mailbox may use.
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/author_check.hpp"
#include "protocol/address_list.hpp"
#include "protocol/ascii.hpp"
#include "protocol/display_text.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/message_header.hpp"
#include "protocol/mss_headers.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::HeaderSectionReader;

constexpr size_t kMaxHeaderBytes = 8192;

bool allowed(std::string_view address) {
  auto normalized = mssgate::protocol::normalize_mailbox_address(address);
  return normalized && (*normalized == "me@mine.fr" || *normalized == "desk@mine.fr");
}

// The section fed in the pieces `how` cuts; the message ends with the input.
HeaderSectionReader read_section(std::string_view input, size_t how) {
  HeaderSectionReader reader(kMaxHeaderBytes);
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    auto r = reader.feed(piece);
    if (r.status != HeaderSectionReader::Status::kNeedMore) break;
  }
  if (!reader.complete()) reader.end_of_message();
  return reader;
}

std::vector<std::string> describe(std::string_view input, size_t how) {
  auto reader = read_section(input, how);
  std::vector<std::string> out{std::string(reader.structure_problem())};
  for (const auto& field : reader.fields())
    out.push_back(field.name + "\n" + field.value + "\n" + field.raw);
  return out;
}

bool lower_case(std::string_view s) {
  return mssgate::protocol::ascii_lower(s) == s;
}

void check_shown(std::string_view text) {
  auto shown = mssgate::protocol::read_shown_text(text);
  for (const auto& address : shown.addresses)
    check(lower_case(address), "headers: shown addresses are lower-cased");
}

void check_field(const mssgate::protocol::HeaderField& field) {
  for (const auto& address : mssgate::protocol::extract_addresses(field.value))
    check(lower_case(address), "headers: extracted addresses are lower-cased");
  for (bool utf8 : {false, true}) {
    auto list = mssgate::protocol::read_address_list(field.raw, {utf8});
    // A value that has no single reading gives no mailbox.
    check(list.readable() || list.mailboxes.empty(), "headers: an unreadable list is empty");
    for (const auto& mailbox : list.mailboxes) {
      check(mailbox.address.find('@') != std::string::npos, "headers: a mailbox has an at-sign");
      check(mssgate::protocol::valid_utf8(mailbox.display_name),
            "headers: a display name is shown as UTF-8");
      check_shown(mailbox.display_name);
    }
    check(list.comments.size() == list.decoded_comments.size() || list.decoded_comments.empty(),
          "headers: one decoded comment per comment");
    for (const auto& comment : list.decoded_comments)
      check_shown(comment);
  }
}

bool author_field(const mssgate::protocol::HeaderField& field) {
  using mssgate::protocol::ascii_iequals;
  return ascii_iequals(field.name, "From") || ascii_iequals(field.name, "Sender") ||
         ascii_iequals(field.name, "Resent-From") || ascii_iequals(field.name, "Resent-Sender");
}

// What an accepted section must be.
void check_accepted(const HeaderSectionReader& reader, bool utf8) {
  check(reader.structure_problem().empty(), "headers: accepted sections read the same everywhere");
  size_t from_fields = 0;
  for (const auto& field : reader.fields()) {
    if (!author_field(field)) continue;
    from_fields += mssgate::protocol::ascii_iequals(field.name, "From") ? 1 : 0;
    auto list = mssgate::protocol::read_address_list(field.raw, {utf8});
    check(list.readable() && !list.mailboxes.empty() && list.groups == 0,
          "headers: accepted author fields are plain mailbox lists");
    for (const auto& mailbox : list.mailboxes)
      check(allowed(mailbox.address), "headers: accepted authors are allowed");
  }
  check(from_fields == 1, "headers: an accepted section has one From");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::fuzz::same_whole_and_in_pieces(input, describe,
                                          "headers: same fields whole and in pieces");
  auto reader = read_section(input, mssgate::fuzz::kWhole);
  auto fields = reader.fields();
  for (const auto& field : fields)
    check_field(field);
  auto claims = mssgate::protocol::read_mss_headers(reader);
  check(claims.nil.size() <= 64, "headers: X-MSS-NIL within its cap");
  for (bool utf8 : {false, true}) {
    if (!mssgate::core::check_authors(reader, allowed, utf8)) check_accepted(reader, utf8);
  }
  std::string_view problem;
  if (auto word = mssgate::protocol::decode_encoded_word(input.substr(0, 256), problem))
    check(mssgate::protocol::valid_utf8(*word), "headers: an encoded word decodes to UTF-8");
  check_shown(input.substr(0, 1024));
  return 0;
}
