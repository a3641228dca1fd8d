#pragma once

#include <string>
#include <string_view>

namespace mssgate::protocol {

// ASCII case helpers for protocol keywords (IMAP commands, SMTP verbs, header names).
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
bool ascii_iequals(std::string_view a, std::string_view b);
bool ascii_istarts_with(std::string_view s, std::string_view prefix);

// A word a message may claim or carry (a document code, a NIL): 1 to `max_bytes` bytes, none
// of them a space or a control character. What is kept from the content is never longer.
bool printable_word(std::string_view s, size_t max_bytes);

// A value a message gave, made fit for the indicator journal, its log and the exports: every
// control character (C0, DEL, C1) and every byte that is not part of valid UTF-8 replaced by
// "?", then cut to at most `max_bytes` bytes between two characters.
std::string sanitized_text(std::string_view value, size_t max_bytes);

// `s` without the spaces and tabs around it.
std::string_view trim_blanks(std::string_view s);

// `text` with every `what` replaced by `with` (file name patterns, page templates).
std::string replace_all(std::string text, std::string_view what, std::string_view with);

// Bytes as lower-case hexadecimal (digests, random identifiers).
std::string hex_lower(std::string_view bytes);
// The value of one hexadecimal digit (either case), or -1 when `c` is not one.
int hex_digit_value(char c);

}  // namespace mssgate::protocol
