#include "daemon/core/delivery_id.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include "protocol/ascii.hpp"

namespace mssgate::core {
namespace {

bool blank(char c) {
  return c == ' ' || c == '\t';
}

// The name of the field a line starts, as the header readers take it (blanks before the colon
// removed); empty for a continuation line or a line that is not a field.
std::string_view field_name(std::string_view line) {
  if (line.empty() || blank(line.front())) return {};
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return {};
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && blank(name.back()))
    name.remove_suffix(1);
  return name;
}

}  // namespace

std::string delivery_id(std::string_view header_section) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(header_section.data(), header_section.size(), digest, &size, EVP_sha256(), nullptr);
  size = std::min(size, 16u);
  return protocol::hex_lower({reinterpret_cast<const char*>(digest), size});
}

std::string stamp_delivery_id(std::string_view held, size_t header_bytes, std::string_view name,
                              std::string_view id) {
  header_bytes = std::min(header_bytes, held.size());
  std::string out;
  out.reserve(held.size() + name.size() + id.size() + 4);
  out.append(name).append(": ").append(id).append("\r\n");
  std::string_view header = held.substr(0, header_bytes);
  bool dropping = false;  // inside a field of that name: its continuation lines go too
  while (!header.empty()) {
    size_t end = header.find('\n');
    std::string_view line =
        header.substr(0, end == std::string_view::npos ? header.size() : end + 1);
    header.remove_prefix(line.size());
    if (!blank(line.front())) dropping = protocol::ascii_iequals(field_name(line), name);
    if (!dropping) out.append(line);
  }
  out.append(held.substr(header_bytes));
  return out;
}

}  // namespace mssgate::core
