#include "protocol/sasl_external.hpp"

#include "protocol/base64.hpp"
#include "protocol/display_text.hpp"

namespace mssgate::protocol {
namespace {

// Well-formed UTF-8 (RFC 3629: no overlong form, no surrogate, nothing above U+10FFFF), and no
// control character: C0 (NUL included), DEL, or C1 (U+0080 to U+009F, written C2 80 to C2 9F).
bool is_printable_utf8(std::string_view s) {
  if (!valid_utf8(s)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0) return false;
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
