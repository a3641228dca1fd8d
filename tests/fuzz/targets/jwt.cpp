// Fuzz target "jwt": what Pro Santé Connect and clients send about tokens. The input is read as
// a compact JWT (what a client presents), as JSON claims (an introspection or userinfo answer,
// and the payload of a JWT this target signs itself, so that verify_jwt's claim checks are
// reached), and as a JWK Set (the issuer's keys, loaded into OpenSSL keys). Properties: base64url
// reads back; a token nobody signed never verifies; a token that verifies has the issuer and
// is in its validity window; the token screen calls malformed what the parser refuses; a
// professional identifier that normalizes is an idNat.
#include "protocol/jwt.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "daemon/services/jwt_verifier.hpp"
#include "daemon/services/token_policy.hpp"
#include "protocol/professional_id.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::daemon::JwtCheck;
using mssgate::fuzz::check;
using mssgate::protocol::base64url_encode;

constexpr std::string_view kIssuer = "https://auth.esante.gouv.fr/auth/realms/esante-wallet";
constexpr int64_t kNow = 1780000000;

std::string bignum_bytes(const EVP_PKEY* key, const char* name, int width) {
  BIGNUM* n = nullptr;
  EVP_PKEY_get_bn_param(key, name, &n);
  std::string out(static_cast<size_t>(width), '\0');
  BN_bn2binpad(n, reinterpret_cast<unsigned char*>(out.data()), width);
  BN_free(n);
  return out;
}

// The key this target signs with, and the key set that holds its public half (and an RSA key
// whose private half is dropped: nothing can sign for it).
struct Signer {
  mssgate::daemon::EvpPkeyPtr key{EVP_EC_gen("P-256")};
  mssgate::daemon::JwtKeySet keys;
  Signer() {
    mssgate::protocol::Jwk ec;
    ec.kty = "EC";
    ec.kid = "es";
    ec.crv = "P-256";
    ec.x = bignum_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32);
    ec.y = bignum_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    mssgate::daemon::EvpPkeyPtr rsa_key(EVP_RSA_gen(2048));
    mssgate::protocol::Jwk rsa;
    rsa.kty = "RSA";
    rsa.kid = "rs";
    rsa.n = bignum_bytes(rsa_key.get(), OSSL_PKEY_PARAM_RSA_N, 256);
    rsa.e = bignum_bytes(rsa_key.get(), OSSL_PKEY_PARAM_RSA_E, 3);
    check(keys.load({ec, rsa}) == 2, "jwt: the target's keys load");
  }

  // header.payload.signature, ES256 (r || s).
  std::string sign(std::string_view payload) const {
    std::string input = base64url_encode(R"({"alg":"ES256","kid":"es","typ":"JWT"})") + "." +
                        base64url_encode(payload);
    std::string der(128, '\0');
    size_t size = der.size();
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get());
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &size,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    EVP_MD_CTX_free(ctx);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(size));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return input + "." + base64url_encode(raw);
  }
};

const Signer& signer() {
  static const Signer instance;
  return instance;
}

mssgate::daemon::TokenPolicy policy() {
  mssgate::config::PscConfig psc;
  psc.allowed_clients = {"lps-test"};
  psc.required_audience = "mssante";
  psc.required_scope = "openid";
  return mssgate::daemon::TokenPolicy::from(psc);
}

void check_base64url(std::string_view input) {
  using mssgate::protocol::base64url_decode;
  check(base64url_decode(base64url_encode(input)) == std::string(input),
        "jwt: base64url decodes what it encodes");
  if (auto decoded = base64url_decode(input)) {
    std::string_view unpadded = input;
    while (!unpadded.empty() && unpadded.back() == '=')
      unpadded.remove_suffix(1);
    check(base64url_encode(*decoded) == unpadded, "jwt: base64url is read canonically");
  }
}

void check_professional_id(std::string_view text) {
  auto id = mssgate::protocol::normalize_professional_id(text);
  if (!id) return;
  check((id->size() == 12 && id->front() == '8') || (id->size() == 10 && id->front() == '0'),
        "jwt: a professional identifier is an idNat");
  check(mssgate::protocol::normalize_professional_id(*id) == id, "jwt: an idNat stays itself");
}

// The input as a token presented by a client: nobody signed it.
void check_presented(std::string_view input) {
  auto verdict = mssgate::daemon::verify_jwt(input, signer().keys, kIssuer, kNow);
  check(verdict.check != JwtCheck::kValid, "jwt: a token nobody signed never verifies");
  auto jwt = mssgate::protocol::parse_jwt(input);
  auto screened = mssgate::daemon::screen_token(input, "jwt", 16384);
  if (!jwt) check(screened == "malformed" || screened == "too_long", "jwt: the screen refuses");
  if (jwt) check(input.starts_with(jwt->signing_input), "jwt: the signing input is the token's");
}

// The input as claims: an introspection answer, and the payload of a token signed here.
void check_claims(std::string_view input) {
  auto claims = mssgate::protocol::parse_token_claims(input);
  if (claims) {
    mssgate::daemon::check_token_policy(policy(), *claims);
    mssgate::daemon::token_client(*claims);
    auto subject = claims->strings.find("SubjectNameID");
    if (subject != claims->strings.end()) check_professional_id(subject->second);
  }
  if (input.size() > 4096) return;
  std::string token = signer().sign(input);
  auto verdict = mssgate::daemon::verify_jwt(token, signer().keys, kIssuer, kNow);
  check((verdict.check == JwtCheck::kMalformed) == !claims.has_value(),
        "jwt: a signed token is malformed exactly when its claims are");
  if (claims) check(verdict.check != JwtCheck::kBadSignature, "jwt: the target's signature holds");
  if (verdict.check == JwtCheck::kValid) {
    check(verdict.claims.iss == kIssuer, "jwt: a valid token has the issuer");
    check(verdict.claims.exp && *verdict.claims.exp > kNow - 30,
          "jwt: a valid token is not expired");
    check(!verdict.claims.nbf || *verdict.claims.nbf <= kNow + 30, "jwt: a valid token has begun");
  }
}

void check_key_set(std::string_view input) {
  auto jwks = mssgate::protocol::parse_jwks(input);
  if (!jwks) return;
  mssgate::daemon::JwtKeySet keys;
  check(keys.load(*jwks) <= jwks->size(), "jwt: no more keys than the set has");
  // Keys the input chose still verify no unsigned token.
  std::string unsigned_token = base64url_encode(R"({"alg":"ES256"})") + "." +
                               base64url_encode(R"({"iss":"x","exp":1})") + "." +
                               base64url_encode(std::string(64, '\x01'));
  check(mssgate::daemon::verify_jwt(unsigned_token, keys, "x", 0).check != JwtCheck::kValid,
        "jwt: a forged signature never verifies");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  check_base64url(input);
  check_professional_id(input);
  check_presented(input);
  check_claims(input);
  check_key_set(input);
  return 0;
}
