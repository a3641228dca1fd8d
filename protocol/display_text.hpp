#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

// The text a mail reader shows of a header: RFC 2047 encoded words, UTF-8 (RFC 6532), and what
// in such text can make one address look like another.

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text);

// Decodes one RFC 2047 encoded word, "=?charset?Q?text?=" or "=?charset*lang?B?text?=", to
// UTF-8. Charsets: utf-8, us-ascii, iso-8859-1, iso-8859-15, windows-1252 (case-insensitive).
// On failure `problem` is set to "bad_encoded_word" (not the syntax of one, bad base64 or
// Q-encoding, bytes not of the charset) or "encoded_word_charset" (another charset).
std::optional<std::string> decode_encoded_word(std::string_view word, std::string_view& problem);

// Whether `word` has the outline of an encoded word: "=?" ... "?=" with four '?' in all.
bool encoded_word_outline(std::string_view word);

// What shown text (a display name or a comment, UTF-8) tells a reader: a problem word when it
// holds a control character ("control_character"), an invisible, joining or direction-changing
// character ("invisible_character"); and the addresses it shows: each run of text around an
// at-sign, lower-cased, trimmed of quotes, angle brackets and dots. An at-sign that is a
// look-alike of '@' (U+FF20, U+FE6B) gives its run with the look-alike kept, so that it never
// equals a real address.
struct ShownText {
  std::string_view problem;  // empty when none
  std::vector<std::string> addresses;
};
ShownText read_shown_text(std::string_view text);

}  // namespace mssgate::protocol
