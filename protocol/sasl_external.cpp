#include "protocol/sasl_external.hpp"

#include "protocol/base64.hpp"

namespace mssgate::protocol {
namespace {

// Well-formed UTF-8 (RFC 3629), no NUL and no control characters.
bool is_printable_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || i + len > s.size() || c == 0xc0 || c == 0xc1 || c > 0xf4) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

std::variant<SaslExternalRequest, SaslExternalError> decode_sasl_external(
    std::string_view response) {
  if (response == "*") return SaslExternalError::kCancelled;
  if (response.empty() || response == "=") return SaslExternalRequest{};
  auto decoded = base64_decode(response);
  if (!decoded) return SaslExternalError::kBadBase64;
  if (decoded->size() > kMaxAuthzidBytes || !is_printable_utf8(*decoded)) {
    return SaslExternalError::kInvalidAuthzid;
  }
  return SaslExternalRequest{std::move(*decoded)};
}

std::string_view describe(SaslExternalError error) {
  switch (error) {
    case SaslExternalError::kCancelled:
      return "cancelled";
    case SaslExternalError::kBadBase64:
      return "bad_base64";
    case SaslExternalError::kInvalidAuthzid:
      return "invalid_authzid";
  }
  return "unknown";
}

}  // namespace mssgate::protocol
