#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

// One mailbox of an address list, as a mail reader shows it.
struct ListedMailbox {
  // local-part@domain. A quoted local part whose content is a dot-atom is given unquoted
  // ("a.b"@x is a.b@x, RFC 5321 §4.1.2), any other one quoted as written; the domain as written
  // (a domain literal with its brackets).
  std::string address;
  // The display name: its words joined by one space, quoted pairs undone, encoded words
  // (RFC 2047) decoded to UTF-8. Empty when there is none.
  std::string display_name;
};

// What an address-list header value (RFC 5322 §3.4: From, Sender, Reply-To, Resent-*...) says.
struct AddressList {
  std::vector<ListedMailbox> mailboxes;  // those of groups included
  size_t groups = 0;                     // groups read ("name: a, b;" and "name:;")
  // The text of every comment of the value, outermost ones whole (nested parentheses kept),
  // quoted pairs undone; and the same with its encoded words decoded (RFC 2047 allows them in
  // comments), or empty when it has none.
  std::vector<std::string> comments;
  std::vector<std::string> decoded_comments;
  // Empty when the value has one reading in the current syntax (RFC 5322 §3, with RFC 2047
  // encoded words and, when asked, RFC 6532 UTF-8). Otherwise the first reason it has not:
  //   control_character  a control character (NUL, a bare CR or LF, DEL...) outside a fold
  //   eight_bit          a byte above 127 where UTF-8 was not announced
  //   bad_utf8           bytes that are not UTF-8 where it was
  //   unterminated_quote, unterminated_comment, unterminated_angle, unterminated_literal,
  //   unterminated_group
  //   unbalanced_comment a ')' that closes nothing
  //   empty              no address at all
  //   empty_address      "<>"
  //   text_after_address anything but ',' (or ';' closing a group) after a mailbox
  //   no_domain          a local part without "@domain", or words that are not an address
  //   empty_local_part, empty_domain
  //   bad_dot            a leading, trailing or doubled dot in a local part or domain
  //   nested_group       a group inside a group
  //   unreadable         any other break of the syntax
  //   obsolete_route, obsolete_local_part, obsolete_domain, obsolete_phrase,
  //   obsolete_empty_element, obsolete_quoted_pair  the obsolete forms of RFC 5322 §4
  //   bad_encoded_word, encoded_word_charset  an encoded word that cannot be decoded
  //   encoded_word_in_quotes   "=?...?=" inside a quoted string (readers decode it anyway)
  //   encoded_word_in_address  "=?" in a local part or domain (readers may decode it)
  std::string_view problem;
  bool readable() const { return problem.empty(); }
};

struct AddressListOptions {
  bool utf8 = false;  // UTF-8 allowed in words, quoted strings and comments (RFC 6532)
};

// Reads a header field's value as it came, folds (CRLF or LF followed by a space or tab)
// included; a field value of at most a header section's cap. Never throws on any input.
AddressList read_address_list(std::string_view value, const AddressListOptions& options = {});

}  // namespace mssgate::protocol
