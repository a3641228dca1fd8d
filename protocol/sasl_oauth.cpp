#include "protocol/sasl_oauth.hpp"

#include "protocol/ascii.hpp"
#include "protocol/base64.hpp"

namespace mssgate::protocol {
namespace {

constexpr char kSeparator = '\x01';
constexpr size_t kMaxTokenBytes = 16384;

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool valid_bearer_token(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  size_t i = 0;
  for (; i < token.size(); ++i) {
    char c = token[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    if (!ok) break;
  }
  if (i == 0) return false;
  for (; i < token.size(); ++i) {
    if (token[i] != '=') return false;
  }
  return true;
}

bool printable(std::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// "auth=Bearer <token>" (the scheme is case-insensitive, RFC 7628 §3.1).
std::variant<OAuthCredentials, SaslOAuthError> read_auth(std::string_view value,
                                                         OAuthCredentials out) {
  if (!ascii_istarts_with(value, "Bearer ")) return SaslOAuthError::kMalformed;
  std::string_view token = value.substr(7);
  if (!valid_bearer_token(token)) return SaslOAuthError::kBadToken;
  out.token = std::string(token);
  return out;
}

std::optional<std::string> decode(std::string_view response) {
  return base64_decode(response);
}

}  // namespace

std::variant<OAuthCredentials, SaslOAuthError> decode_xoauth2(std::string_view response) {
  if (response == "*") return SaslOAuthError::kCancelled;
  auto decoded = decode(response);
  if (!decoded) return SaslOAuthError::kBadBase64;
  // user=<mailbox> ^A auth=Bearer <token> ^A ^A
  std::string_view rest = *decoded;
  if (rest.size() < 2 || rest.substr(rest.size() - 2) != "\x01\x01")
    return SaslOAuthError::kMalformed;
  rest.remove_suffix(2);
  size_t sep = rest.find(kSeparator);
  if (sep == std::string_view::npos) return SaslOAuthError::kMalformed;
  std::string_view user_field = rest.substr(0, sep);
  std::string_view auth_field = rest.substr(sep + 1);
  if (!user_field.starts_with("user=") || !auth_field.starts_with("auth=") ||
      auth_field.find(kSeparator) != std::string_view::npos) {
    return SaslOAuthError::kMalformed;
  }
  OAuthCredentials out;
  out.user = std::string(user_field.substr(5));
  if (out.user.empty() || !printable(out.user)) return SaslOAuthError::kMalformed;
  return read_auth(auth_field.substr(5), std::move(out));
}

std::variant<OAuthCredentials, SaslOAuthError> decode_oauthbearer(std::string_view response) {
  if (response == "*") return SaslOAuthError::kCancelled;
  auto decoded = decode(response);
  if (!decoded) return SaslOAuthError::kBadBase64;
  std::string_view rest = *decoded;
  // gs2-header: cbind-flag "," [ "a=" saslname ] ","  then ^A key=value ^A ... ^A ^A
  if (rest.size() < 3 || (rest[0] != 'n' && rest[0] != 'y') || rest[1] != ',')
    return SaslOAuthError::kMalformed;
  rest.remove_prefix(2);
  size_t comma = rest.find(',');
  if (comma == std::string_view::npos) return SaslOAuthError::kMalformed;
  OAuthCredentials out;
  std::string_view authzid = rest.substr(0, comma);
  if (!authzid.empty()) {
    if (!authzid.starts_with("a=")) return SaslOAuthError::kMalformed;
    authzid.remove_prefix(2);
    // saslname: "," is written "=2C" and "=" is written "=3D" (RFC 5801).
    for (size_t i = 0; i < authzid.size(); ++i) {
      if (authzid[i] != '=') {
        out.user += authzid[i];
      } else if (authzid.substr(i, 3) == "=2C") {
        out.user += ',';
        i += 2;
      } else if (authzid.substr(i, 3) == "=3D") {
        out.user += '=';
        i += 2;
      } else {
        return SaslOAuthError::kMalformed;
      }
    }
    if (!printable(out.user)) return SaslOAuthError::kMalformed;
  }
  rest.remove_prefix(comma + 1);
  if (rest.size() < 2 || rest.front() != kSeparator || rest.substr(rest.size() - 2) != "\x01\x01") {
    return SaslOAuthError::kMalformed;
  }
  rest = rest.substr(1, rest.size() - 3);
  std::optional<std::variant<OAuthCredentials, SaslOAuthError>> result;
  while (true) {
    size_t sep = rest.find(kSeparator);
    std::string_view pair = rest.substr(0, sep);
    size_t equals = pair.find('=');
    if (equals == std::string_view::npos || equals == 0) return SaslOAuthError::kMalformed;
    if (pair.substr(0, equals) == "auth") {
      if (result) return SaslOAuthError::kMalformed;  // one auth only
      result = read_auth(pair.substr(equals + 1), out);
    }
    if (sep == std::string_view::npos) break;
    rest.remove_prefix(sep + 1);
  }
  if (!result) return SaslOAuthError::kMalformed;
  return *result;
}

std::string_view describe(SaslOAuthError error) {
  switch (error) {
    case SaslOAuthError::kCancelled:
      return "cancelled";
    case SaslOAuthError::kBadBase64:
      return "bad_base64";
    case SaslOAuthError::kMalformed:
      return "malformed";
    case SaslOAuthError::kBadToken:
      return "bad_token_syntax";
  }
  return "unknown";
}

std::string oauth_error_challenge(std::string_view status, std::string_view scope) {
  std::string json =
      "{\"status\":\"" + std::string(status) + "\",\"scope\":\"" + std::string(scope) + "\"}";
  return base64_encode(json);
}

}  // namespace mssgate::protocol
