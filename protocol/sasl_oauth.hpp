#pragma once

#include <string>
#include <string_view>
#include <variant>

namespace mssgate::protocol {

// What a client sends with SASL XOAUTH2 or OAUTHBEARER (RFC 7628): the bearer token, and the
// mailbox it asks to open (XOAUTH2 "user=", OAUTHBEARER GS2 "a=").
struct OAuthCredentials {
  std::string user;   // may be empty for OAUTHBEARER without authzid
  std::string token;  // never to be logged
};
enum class SaslOAuthError { kCancelled, kBadBase64, kMalformed, kBadToken };

// `response` is the base64 SASL message (the initial response or the continuation line).
std::variant<OAuthCredentials, SaslOAuthError> decode_xoauth2(std::string_view response);
std::variant<OAuthCredentials, SaslOAuthError> decode_oauthbearer(std::string_view response);

std::string_view describe(SaslOAuthError error);

// The server's failure message (RFC 7628 §3.2.2), base64-encoded JSON, sent as a continuation
// before the final NO/535: {"status":"invalid_token","scope":"openid"}.
std::string oauth_error_challenge(std::string_view status, std::string_view scope);

}  // namespace mssgate::protocol
