#include "protocol/mailbox_address.hpp"

namespace mssgate::protocol {

std::optional<std::string> normalize_mailbox_address(std::string_view text) {
  if (text.empty() || text.size() > 254) return std::nullopt;
  size_t at = text.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == text.size() ||
      text.find('@', at + 1) != std::string_view::npos || at > 64) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '\\' || c == '(' || c == ')' || c == '<' ||
        c == '>' || c == ',' || c == ';' || c == ':' || c == '[' || c == ']') {
      return std::nullopt;
    }
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

}  // namespace mssgate::protocol
