#pragma once

#include <string>
#include <string_view>
#include <variant>

namespace mssgate::protocol {

// SASL EXTERNAL (RFC 4422 appendix A): the client's only message is an optional
// authorization identity. In IMAP it travels base64-encoded, "=" standing for an empty
// initial response (RFC 4959), and "*" cancels the exchange.
struct SaslExternalRequest {
  std::string authzid;  // empty: the identity bound to the credentials
};
enum class SaslExternalError { kCancelled, kBadBase64, kInvalidAuthzid };

constexpr size_t kMaxAuthzidBytes = 320;  // local part + "@" + domain, with room

// `response` is the SASL-IR argument or the client's continuation line.
std::variant<SaslExternalRequest, SaslExternalError> decode_sasl_external(
    std::string_view response);

std::string_view describe(SaslExternalError error);

}  // namespace mssgate::protocol
