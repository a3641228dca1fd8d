#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/message_header.hpp"

namespace mssgate::core {

// Why a submitted message's author fields were refused: the field (header, from, sender,
// resent_from, resent_sender) and a detail word. Neither holds anything of the message.
struct AuthorRefusal {
  std::string_view field;
  std::string_view detail;
};

// Whether the mailbox signed in may send as this address (as the directory compares them).
using AddressAllowed = std::function<bool(std::string_view address)>;

// Checks the author fields of a header section (RFC 5322 §3.6.2, §3.6.6) so that what a mail
// reader shows as the author is the mailbox or one of its allowed senders, or refuses:
//  - the section must read the same for every reader (HeaderSectionReader::structure_problem);
//  - exactly one From field; a mailbox list (no group) read without any problem
//    (protocol::read_address_list), every mailbox allowed;
//  - several From mailboxes need a Sender; a Sender is one field of one allowed mailbox;
//  - every Resent-From and Resent-Sender, in every resent block, likewise; a block (a run of
//    adjacent Resent-* fields) has at most one of each, and a Resent-Sender needs a
//    Resent-From, several Resent-From mailboxes a Resent-Sender;
//  - no display name or comment of those fields shows an address that is not allowed, a
//    look-alike at-sign, a control or an invisible or direction-changing character.
// `utf8`: the transaction announced SMTPUTF8, so UTF-8 is allowed in those fields (RFC 6532).
std::optional<AuthorRefusal> check_authors(const protocol::HeaderSectionReader& headers,
                                           const AddressAllowed& allowed, bool utf8);

}  // namespace mssgate::core
