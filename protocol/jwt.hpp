#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

// base64url without padding (RFC 7515 §2); nullopt on any character outside the alphabet.
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view bytes);

// The claims of a token, from a JWT payload or an RFC 7662 introspection answer.
struct TokenClaims {
  std::optional<bool> active;  // introspection only
  std::string iss;
  std::string sub;
  std::string azp;
  std::string client_id;  // RFC 7662 introspection's name of the client
  std::string jti;
  std::string typ;    // the token's type, "Bearer" for a PSC access token
  std::string scope;  // space-separated
  std::string acr;
  std::vector<std::string> aud;  // a string or an array of strings in the token
  std::vector<std::string> amr;
  std::optional<int64_t> exp;
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;
  std::map<std::string, std::string> strings;  // every string claim, SubjectNameID included
};

// Parses a JSON object of claims; nullopt when it is not a JSON object or a registered claim
// has the wrong type (aud: a string or an array of strings; amr: an array of strings).
std::optional<TokenClaims> parse_token_claims(std::string_view json);

// A compact JWS (RFC 7515) split and decoded; the signature is not checked here.
struct Jwt {
  std::string alg;
  std::string kid;
  std::string signing_input;  // "header.payload" as received
  std::string signature;      // raw bytes
  TokenClaims claims;
};
std::optional<Jwt> parse_jwt(std::string_view compact);

// A public key of a JWK Set (RFC 7517), with its big-endian numbers decoded.
struct Jwk {
  std::string kty;  // "RSA" or "EC"
  std::string kid;
  std::string alg;
  std::string use;
  std::string n, e;       // RSA
  std::string crv, x, y;  // EC
};
// The keys of a JWK Set; keys of other types are skipped. nullopt when the document is not a
// JWK Set.
std::optional<std::vector<Jwk>> parse_jwks(std::string_view json);

}  // namespace mssgate::protocol
