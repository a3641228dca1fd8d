#include "daemon/core/author_check.hpp"

#include <string>

#include "protocol/address_list.hpp"
#include "protocol/ascii.hpp"
#include "protocol/display_text.hpp"

namespace mssgate::core {
namespace {

using protocol::HeaderField;

bool named(const HeaderField& field, std::string_view name) {
  return protocol::ascii_iequals(field.name, name);
}

// What one author field says, and the first reason to refuse it.
class AuthorField {
 public:
  AuthorField(const AddressAllowed& allowed, bool utf8) : allowed_(allowed), utf8_(utf8) {}

  // The mailboxes of the field, or the refusal's detail word.
  std::string_view read(const HeaderField& field) {
    list_ = protocol::read_address_list(field.raw, {utf8_});
    if (!list_.readable()) return list_.problem;
    if (list_.groups > 0) return "group";
    if (list_.mailboxes.empty()) return "empty";
    for (const auto& mailbox : list_.mailboxes) {
      if (!allowed_(mailbox.address)) return "not_allowed";
    }
    for (const auto& mailbox : list_.mailboxes) {
      if (auto problem = shown(mailbox.display_name, "display_name_address"); !problem.empty())
        return problem;
    }
    for (size_t k = 0; k < list_.comments.size(); ++k) {
      for (const auto* text : {&list_.comments[k], &list_.decoded_comments[k]}) {
        if (auto problem = shown(*text, "comment_address"); !problem.empty()) return problem;
      }
    }
    return {};
  }

  size_t mailboxes() const { return list_.mailboxes.size(); }

 private:
  // A display name or comment may show only the addresses the mailbox may send as.
  std::string_view shown(std::string_view text, std::string_view address_word) const {
    auto reading = protocol::read_shown_text(text);
    if (!reading.problem.empty()) return reading.problem;
    for (const auto& address : reading.addresses) {
      if (!allowed_(address)) return address_word;
    }
    return {};
  }

  const AddressAllowed& allowed_;
  bool utf8_;
  protocol::AddressList list_;
};

// A From or Resent-From field and its Sender or Resent-Sender, of the message or of one
// resent block. Names are the fields' words in refusals.
struct Originator {
  std::vector<const HeaderField*> from;
  std::vector<const HeaderField*> sender;
};

std::optional<AuthorRefusal> check_originator(const Originator& o, std::string_view from_word,
                                              std::string_view sender_word,
                                              const AddressAllowed& allowed, bool utf8) {
  if (o.from.empty()) return AuthorRefusal{from_word, "missing"};
  if (o.from.size() > 1) return AuthorRefusal{from_word, "several_fields"};
  AuthorField from(allowed, utf8);
  if (auto detail = from.read(*o.from.front()); !detail.empty())
    return AuthorRefusal{from_word, detail};
  if (o.sender.size() > 1) return AuthorRefusal{sender_word, "several_fields"};
  if (o.sender.empty()) {
    // RFC 5322 §3.6.2: several authors name the one who sent.
    if (from.mailboxes() > 1) return AuthorRefusal{sender_word, "missing"};
    return std::nullopt;
  }
  AuthorField sender(allowed, utf8);
  if (auto detail = sender.read(*o.sender.front()); !detail.empty())
    return AuthorRefusal{sender_word, detail};
  if (sender.mailboxes() != 1) return AuthorRefusal{sender_word, "several_mailboxes"};
  return std::nullopt;
}

// The resent blocks: each run of adjacent Resent-* fields.
std::vector<Originator> resent_blocks(const std::vector<HeaderField>& fields) {
  std::vector<Originator> blocks;
  bool in_block = false;
  for (const auto& field : fields) {
    bool resent = protocol::ascii_istarts_with(field.name, "Resent-");
    if (resent && !in_block) blocks.emplace_back();
    in_block = resent;
    if (named(field, "Resent-From")) blocks.back().from.push_back(&field);
    if (named(field, "Resent-Sender")) blocks.back().sender.push_back(&field);
  }
  std::erase_if(blocks, [](const Originator& b) { return b.from.empty() && b.sender.empty(); });
  return blocks;
}

}  // namespace

std::optional<AuthorRefusal> check_authors(const protocol::HeaderSectionReader& headers,
                                           const AddressAllowed& allowed, bool utf8) {
  if (auto problem = headers.structure_problem(); !problem.empty())
    return AuthorRefusal{"header", problem};
  auto fields = headers.fields();
  Originator message;
  for (const auto& field : fields) {
    if (named(field, "From")) message.from.push_back(&field);
    if (named(field, "Sender")) message.sender.push_back(&field);
  }
  if (auto refusal = check_originator(message, "from", "sender", allowed, utf8)) return refusal;
  for (const auto& block : resent_blocks(fields)) {
    if (auto refusal = check_originator(block, "resent_from", "resent_sender", allowed, utf8))
      return refusal;
  }
  return std::nullopt;
}

}  // namespace mssgate::core
