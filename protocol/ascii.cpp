#include "protocol/ascii.hpp"

#include <algorithm>

namespace mssgate::protocol {
namespace {

char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// The length of the valid UTF-8 character at the start of `s`, 0 when it is none (an invalid
// byte, an overlong form, a surrogate, beyond U+10FFFF).
size_t utf8_character(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(0);
  size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  if (lead < 0xc2 || lead > 0xf4 || s.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
  }
  unsigned char second = byte(1);
  if (lead == 0xe0 && second < 0xa0) return 0;  // overlong
  if (lead == 0xed && second > 0x9f) return 0;  // surrogates
  if (lead == 0xf0 && second < 0x90) return 0;  // overlong
  if (lead == 0xf4 && second > 0x8f) return 0;  // beyond U+10FFFF
  return length;
}

}  // namespace

std::string sanitized_text(std::string_view value, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(value.size(), max_bytes));
  size_t i = 0;
  while (i < value.size()) {
    auto c = static_cast<unsigned char>(value[i]);
    size_t length = 1;
    std::string_view piece = "?";
    if (c >= 0x20 && c < 0x7f) {
      piece = value.substr(i, 1);
    } else if (c >= 0x80) {
      length = std::max<size_t>(utf8_character(value.substr(i)), 1);
      // U+0080 to U+009F, the C1 controls, are replaced whole.
      bool c1 = c == 0xc2 && length == 2 && static_cast<unsigned char>(value[i + 1]) < 0xa0;
      if (length > 1 && !c1) piece = value.substr(i, length);
    }
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += length;
  }
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = upper(c);
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = lower(c);
  return out;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string replace_all(std::string text, std::string_view what, std::string_view with) {
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size()))
    text.replace(at, what.size(), with);
  return text;
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string hex_lower(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

bool printable_word(std::string_view s, size_t max_bytes) {
  if (s.empty() || s.size() > max_bytes) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ascii_istarts_with(a, b);
}

bool ascii_istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (upper(s[i]) != upper(prefix[i])) return false;
  }
  return true;
}

}  // namespace mssgate::protocol
