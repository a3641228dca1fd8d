#include "protocol/display_text.hpp"

#include <array>
#include <cstdint>

#include "protocol/ascii.hpp"
#include "protocol/base64.hpp"

namespace mssgate::protocol {
namespace {

constexpr char32_t kBad = 0xFFFFFFFF;

// The code point starting at text[i], advancing i; kBad when the bytes are not UTF-8.
char32_t next_code_point(std::string_view text, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
  if (length == 0 || lead > 0xF4 || i + length > text.size()) return kBad;
  char32_t cp = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return kBad;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr std::array<char32_t, 5> kSmallest{0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kBad;
  i += length;
  return cp;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// windows-1252's 0x80-0x9F (0: not assigned).
constexpr std::array<char16_t, 32> kWindows1252High{
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

char32_t latin9(unsigned char b) {
  switch (b) {
    case 0xA4:
      return 0x20AC;
    case 0xA6:
      return 0x0160;
    case 0xA8:
      return 0x0161;
    case 0xB4:
      return 0x017D;
    case 0xB8:
      return 0x017E;
    case 0xBC:
      return 0x0152;
    case 0xBD:
      return 0x0153;
    case 0xBE:
      return 0x0178;
    default:
      return b;
  }
}

enum class Charset { kUtf8, kAscii, kLatin1, kLatin9, kWindows1252, kOther };

Charset charset_of(std::string_view name) {
  std::string n = ascii_lower(name);
  if (n == "utf-8" || n == "utf8") return Charset::kUtf8;
  if (n == "us-ascii" || n == "ascii") return Charset::kAscii;
  if (n == "iso-8859-1" || n == "iso8859-1" || n == "latin1") return Charset::kLatin1;
  if (n == "iso-8859-15" || n == "iso8859-15") return Charset::kLatin9;
  if (n == "windows-1252" || n == "cp1252") return Charset::kWindows1252;
  return Charset::kOther;
}

// The bytes of an encoded word's text in `charset`, as UTF-8.
std::optional<std::string> to_utf8(std::string_view bytes, Charset charset) {
  if (charset == Charset::kUtf8) {
    if (!valid_utf8(bytes)) return std::nullopt;
    return std::string(bytes);
  }
  std::string out;
  for (char c : bytes) {
    auto b = static_cast<unsigned char>(c);
    char32_t cp = b;
    if (b >= 0x80) {
      if (charset == Charset::kAscii) return std::nullopt;
      if (charset == Charset::kLatin9) cp = latin9(b);
      if (charset == Charset::kWindows1252 && b < 0xA0) cp = kWindows1252High[b - 0x80];
      if (cp == 0) return std::nullopt;
    }
    append_utf8(cp, out);
  }
  return out;
}

std::optional<std::string> decode_q(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '=') {
      if (i + 2 >= text.size()) return std::nullopt;
      int high = hex_digit_value(text[i + 1]);
      int low = hex_digit_value(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c > 0x20 && c < 0x7F) {
      out += c;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

bool token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7F &&
         std::string_view("()<>@,;:\\\"/[]?.=").find(c) == std::string_view::npos;
}

bool control(char32_t cp) {
  return (cp < 0x20 && cp != '\t') || (cp >= 0x7F && cp <= 0x9F);
}

// Characters that show nothing, join, or change the direction of what follows.
bool invisible(char32_t cp) {
  return cp == 0x00AD || cp == 0x034F || cp == 0x061C || cp == 0x115F || cp == 0x1160 ||
         cp == 0x17B4 || cp == 0x17B5 || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0x3164 ||
         cp == 0xFEFF || cp == 0xFFA0 || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
         (cp >= 0x1D173 && cp <= 0x1D17A) || (cp >= 0xE0000 && cp <= 0xE007F);
}

bool at_sign(char32_t cp) {
  return cp == '@' || cp == 0xFF20 || cp == 0xFE6B;
}

bool space(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == 0x00A0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Where a shown address ends: a space, or what surrounds addresses in text.
bool address_boundary(char32_t cp) {
  return space(cp) || (cp < 0x80 && std::string_view("<>()[]\",;:").find(static_cast<char>(cp)) !=
                                        std::string_view::npos);
}

bool trimmed(char32_t cp) {
  return cp == '\'' || cp == '.' || cp == '`';
}

}  // namespace

bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (next_code_point(text, i) == kBad) return false;
  }
  return true;
}

bool encoded_word_outline(std::string_view word) {
  if (word.size() < 8 || !word.starts_with("=?") || !word.ends_with("?=")) return false;
  size_t marks = 0;
  for (char c : word)
    marks += c == '?' ? 1 : 0;
  return marks == 4;
}

std::optional<std::string> decode_encoded_word(std::string_view word, std::string_view& problem) {
  problem = "bad_encoded_word";
  if (!encoded_word_outline(word)) return std::nullopt;
  std::string_view inner = word.substr(2, word.size() - 4);  // charset?E?text
  size_t first = inner.find('?');
  size_t second = inner.find('?', first + 1);
  std::string_view charset = inner.substr(0, first);
  std::string_view encoding = inner.substr(first + 1, second - first - 1);
  std::string_view text = inner.substr(second + 1);
  charset = charset.substr(0, charset.find('*'));  // RFC 2231 language
  if (charset.empty() || encoding.size() != 1) return std::nullopt;
  for (char c : charset) {
    if (!token_char(c)) return std::nullopt;
  }
  for (char c : text) {
    if (c == ' ' || c == '?') return std::nullopt;
  }
  std::optional<std::string> bytes;
  if (encoding == "Q" || encoding == "q") {
    bytes = decode_q(text);
  } else if (encoding == "B" || encoding == "b") {
    bytes = base64_decode(text);
  }
  if (!bytes) return std::nullopt;
  Charset set = charset_of(charset);
  if (set == Charset::kOther) {
    problem = "encoded_word_charset";
    return std::nullopt;
  }
  auto out = to_utf8(*bytes, set);
  if (out) problem = {};
  return out;
}

ShownText read_shown_text(std::string_view text) {
  ShownText shown;
  std::vector<char32_t> points;
  std::vector<size_t> offsets;  // of each code point, and the end
  for (size_t i = 0; i < text.size();) {
    offsets.push_back(i);
    char32_t cp = next_code_point(text, i);
    if (cp == kBad || control(cp)) {
      shown.problem = "control_character";
      return shown;
    }
    if (invisible(cp)) {
      shown.problem = "invisible_character";
      return shown;
    }
    points.push_back(cp);
  }
  offsets.push_back(text.size());
  for (size_t k = 0; k < points.size(); ++k) {
    if (!at_sign(points[k])) continue;
    size_t begin = k;
    size_t end = k + 1;
    while (begin > 0 && !address_boundary(points[begin - 1]))
      --begin;
    while (end < points.size() && !address_boundary(points[end]))
      ++end;
    while (begin < k && trimmed(points[begin]))
      ++begin;
    while (end > k + 1 && trimmed(points[end - 1]))
      --end;
    // An at-sign with nothing on one side shows no address.
    if (begin < k && end > k + 1)
      shown.addresses.push_back(
          ascii_lower(text.substr(offsets[begin], offsets[end] - offsets[begin])));
    k = end;
  }
  return shown;
}

}  // namespace mssgate::protocol
