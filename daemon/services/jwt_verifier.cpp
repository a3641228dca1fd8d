#include "daemon/services/jwt_verifier.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>

namespace mssgate::daemon {
namespace {

EvpPkeyPtr key_from_params(const char* type, OSSL_PARAM* params) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  return EvpPkeyPtr(key);
}

EvpPkeyPtr rsa_key(const protocol::Jwk& jwk) {
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  BIGNUM* n = BN_bin2bn(reinterpret_cast<const unsigned char*>(jwk.n.data()),
                        static_cast<int>(jwk.n.size()), nullptr);
  BIGNUM* e = BN_bin2bn(reinterpret_cast<const unsigned char*>(jwk.e.data()),
                        static_cast<int>(jwk.e.size()), nullptr);
  EvpPkeyPtr key;
  if (builder && n && e && OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
      OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) == 1) {
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
    // RSA's keys by their OID, not by "RSA": OpenSSL finds an ENGINE for the name's key type
    // (rsa_key_decoding.hpp registers one for certificates' keys), whose context cannot build a
    // key from parameters; the OID names only the provider's implementation.
    if (params) key = key_from_params("1.2.840.113549.1.1.1", params);
    OSSL_PARAM_free(params);
  }
  BN_free(n);
  BN_free(e);
  OSSL_PARAM_BLD_free(builder);
  // Keys under 2048 bits are refused.
  if (key && EVP_PKEY_get_bits(key.get()) < 2048) key.reset();
  return key;
}

EvpPkeyPtr p256_key(const protocol::Jwk& jwk) {
  if (jwk.crv != "P-256" || jwk.x.size() != 32 || jwk.y.size() != 32) return nullptr;
  std::string point = "\x04" + jwk.x + jwk.y;  // uncompressed point
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  EvpPkeyPtr key;
  if (builder &&
      OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) == 1) {
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
    if (params) key = key_from_params("EC", params);
    OSSL_PARAM_free(params);
  }
  OSSL_PARAM_BLD_free(builder);
  return key;
}

// ES256 signatures are r || s (RFC 7518 §3.4); OpenSSL verifies DER.
std::string es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return "";
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  std::string der;
  if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr;  // owned by sig now
    unsigned char* out = nullptr;
    int size = i2d_ECDSA_SIG(sig, &out);
    if (size > 0) der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(size));
    OPENSSL_free(out);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return der;
}

bool signature_valid(const EVP_PKEY* key, std::string_view alg, const std::string& input,
                     const std::string& signature) {
  std::string der = alg == "ES256" ? es256_to_der(signature) : signature;
  if (der.empty()) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, const_cast<EVP_PKEY*>(key)) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace

size_t JwtKeySet::load(const std::vector<protocol::Jwk>& keys) {
  keys_.clear();
  for (const auto& jwk : keys) {
    if (!jwk.use.empty() && jwk.use != "sig") continue;
    EvpPkeyPtr key;
    std::string alg;
    if (jwk.kty == "RSA" && (jwk.alg.empty() || jwk.alg == "RS256")) {
      key = rsa_key(jwk);
      alg = "RS256";
    } else if (jwk.kty == "EC" && (jwk.alg.empty() || jwk.alg == "ES256")) {
      key = p256_key(jwk);
      alg = "ES256";
    }
    if (key)
      keys_.push_back({jwk.kid, alg, std::shared_ptr<EVP_PKEY>(key.release(), EvpPkeyDeleter{})});
  }
  return keys_.size();
}

const EVP_PKEY* JwtKeySet::find(const std::string& kid, std::string_view alg) const {
  for (const auto& entry : keys_) {
    if (entry.alg == alg && (entry.kid == kid || (kid.empty() && keys_.size() == 1)))
      return entry.key.get();
  }
  return nullptr;
}

std::string_view describe(JwtCheck check) {
  switch (check) {
    case JwtCheck::kValid:
      return "valid";
    case JwtCheck::kMalformed:
      return "malformed_token";
    case JwtCheck::kUnsupportedAlgorithm:
      return "unsupported_algorithm";
    case JwtCheck::kUnknownKey:
      return "unknown_key";
    case JwtCheck::kBadSignature:
      return "bad_signature";
    case JwtCheck::kWrongIssuer:
      return "wrong_issuer";
    case JwtCheck::kExpired:
      return "expired";
    case JwtCheck::kNotYetValid:
      return "not_yet_valid";
  }
  return "unknown";
}

JwtVerdict verify_jwt(std::string_view token, const JwtKeySet& keys, std::string_view issuer,
                      int64_t now, int64_t leeway_seconds) {
  JwtVerdict verdict;
  auto jwt = protocol::parse_jwt(token);
  if (!jwt) return verdict;
  verdict.claims = jwt->claims;
  if (jwt->alg != "RS256" && jwt->alg != "ES256") {
    verdict.check = JwtCheck::kUnsupportedAlgorithm;
    return verdict;
  }
  const EVP_PKEY* key = keys.find(jwt->kid, jwt->alg);
  // The leeway moves `now`, never the claims: exp and nbf may be at the ends of int64.
  if (!key) {
    verdict.check = JwtCheck::kUnknownKey;
  } else if (!signature_valid(key, jwt->alg, jwt->signing_input, jwt->signature)) {
    verdict.check = JwtCheck::kBadSignature;
  } else if (jwt->claims.iss != issuer) {
    verdict.check = JwtCheck::kWrongIssuer;
  } else if (!jwt->claims.exp || *jwt->claims.exp <= now - leeway_seconds) {
    verdict.check = JwtCheck::kExpired;
  } else if (jwt->claims.nbf && *jwt->claims.nbf > now + leeway_seconds) {
    verdict.check = JwtCheck::kNotYetValid;
  } else {
    verdict.check = JwtCheck::kValid;
  }
  return verdict;
}

}  // namespace mssgate::daemon
