#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/jwt.hpp"

namespace mssgate::daemon {

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// The issuer's signing keys, from its JWK Set: RSA keys (RS256) and P-256 keys (ES256).
class JwtKeySet {
 public:
  // Keys that cannot be used are skipped; returns how many were taken.
  size_t load(const std::vector<protocol::Jwk>& keys);
  const EVP_PKEY* find(const std::string& kid, std::string_view alg) const;
  size_t size() const { return keys_.size(); }

 private:
  struct Entry {
    std::string kid;
    std::string alg;  // "RS256" or "ES256"
    std::shared_ptr<EVP_PKEY> key;
  };
  std::vector<Entry> keys_;
};

enum class JwtCheck {
  kValid,
  kMalformed,
  kUnsupportedAlgorithm,  // "none", HS256, anything but RS256 and ES256
  kUnknownKey,            // no key with that kid: the key set may need a refresh
  kBadSignature,
  kWrongIssuer,
  kExpired,
  kNotYetValid,
};
std::string_view describe(JwtCheck check);

struct JwtVerdict {
  JwtCheck check = JwtCheck::kMalformed;
  protocol::TokenClaims claims;  // filled when the token parsed
};

// Verifies a compact JWS access token: RS256 or ES256 signature with a key of `keys`, `iss`
// equal to `issuer`, `exp` present and in the future, `nbf` (if any) in the past, with
// `leeway_seconds` of clock skew. `now` is seconds since the epoch.
JwtVerdict verify_jwt(std::string_view token, const JwtKeySet& keys, std::string_view issuer,
                      int64_t now, int64_t leeway_seconds = 30);

}  // namespace mssgate::daemon
