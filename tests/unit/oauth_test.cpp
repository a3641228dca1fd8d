#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <limits>

#include "daemon/services/jwt_verifier.hpp"
#include "daemon/services/token_policy.hpp"
#include "protocol/base64.hpp"
#include "protocol/imap_command_parser.hpp"
#include "protocol/jwt.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/professional_id.hpp"
#include "protocol/sasl_oauth.hpp"

using namespace mssgate;
using protocol::OAuthCredentials;
using protocol::SaslOAuthError;

namespace {

const std::string kToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

std::string xoauth2(std::string_view user, std::string_view token) {
  return protocol::base64_encode("user=" + std::string(user) + "\x01" + "auth=Bearer " +
                                 std::string(token) + "\x01\x01");
}

OAuthCredentials ok(const std::variant<OAuthCredentials, SaslOAuthError>& r) {
  EXPECT_TRUE(std::holds_alternative<OAuthCredentials>(r));
  return std::holds_alternative<OAuthCredentials>(r) ? std::get<OAuthCredentials>(r)
                                                     : OAuthCredentials{};
}

SaslOAuthError error(const std::variant<OAuthCredentials, SaslOAuthError>& r) {
  EXPECT_TRUE(std::holds_alternative<SaslOAuthError>(r));
  return std::holds_alternative<SaslOAuthError>(r) ? std::get<SaslOAuthError>(r)
                                                   : SaslOAuthError::kCancelled;
}

}  // namespace

TEST(SaslOAuth, DecodesXoauth2) {
  auto c = ok(protocol::decode_xoauth2(xoauth2("dr.martin@test.fr", kToken)));
  EXPECT_EQ(c.user, "dr.martin@test.fr");
  EXPECT_EQ(c.token, kToken);
}

TEST(SaslOAuth, DecodesXoauth2FromAnImapLineFedOneByteAtATime) {
  std::string wire = "a1 AUTHENTICATE XOAUTH2 " + xoauth2("dr.martin@test.fr", kToken) + "\r\n";
  protocol::ImapCommandParser parser({});
  int commands = 0;
  for (char c : wire) {
    auto r = parser.feed(std::string_view(&c, 1));
    if (r.status == protocol::ImapCommandParser::Status::kCommand) {
      ++commands;
      ASSERT_EQ(parser.command().args.size(), 2u);
      EXPECT_EQ(ok(protocol::decode_xoauth2(parser.command().args[1].value)).token, kToken);
    }
  }
  EXPECT_EQ(commands, 1);
}

TEST(SaslOAuth, DecodesOauthbearerFromAnSmtpLineFedOneByteAtATime) {
  std::string message = std::string("n,a=cab=2Cinet@test.fr,\x01") +
                        "host=mssgate\x01port=587\x01" + "auth=Bearer " + kToken + "\x01\x01";
  std::string wire = "AUTH OAUTHBEARER " + protocol::base64_encode(message) + "\r\n";
  protocol::LineSplitter lines(8192);
  int seen = 0;
  for (char c : wire) {
    auto r = lines.feed(std::string_view(&c, 1));
    if (r.status == protocol::LineSplitter::Status::kLine) {
      ++seen;
      auto c2 = ok(protocol::decode_oauthbearer(
          lines.line().substr(std::string("AUTH OAUTHBEARER ").size())));
      EXPECT_EQ(c2.user, "cab,inet@test.fr");
      EXPECT_EQ(c2.token, kToken);
    }
  }
  EXPECT_EQ(seen, 1);
  auto no_authzid =
      ok(protocol::decode_oauthbearer(protocol::base64_encode("n,,\x01"
                                                              "auth=bearer " +
                                                              kToken + "\x01\x01")));
  EXPECT_EQ(no_authzid.user, "");
  EXPECT_EQ(no_authzid.token, kToken);
}

TEST(SaslOAuth, RefusesMalformedPayloads) {
  using E = SaslOAuthError;
  EXPECT_EQ(error(protocol::decode_xoauth2("*")), E::kCancelled);
  EXPECT_EQ(error(protocol::decode_xoauth2("not base64")), E::kBadBase64);
  EXPECT_EQ(error(protocol::decode_xoauth2(protocol::base64_encode("user=a@b.fr\x01"
                                                                   "auth=Bearer x"))),
            E::kMalformed);
  EXPECT_EQ(error(protocol::decode_xoauth2(protocol::base64_encode("auth=Bearer x\x01\x01"))),
            E::kMalformed);
  EXPECT_EQ(error(protocol::decode_xoauth2(xoauth2("", kToken))), E::kMalformed);
  EXPECT_EQ(error(protocol::decode_xoauth2(xoauth2("a@b.fr", "tok en"))), E::kBadToken);
  EXPECT_EQ(error(protocol::decode_xoauth2(xoauth2("a@b.fr", ""))), E::kBadToken);
  EXPECT_EQ(error(protocol::decode_xoauth2(protocol::base64_encode("user=a@b.fr\x01"
                                                                   "auth=Basic abc\x01\x01"))),
            E::kMalformed);
  auto bearer = [](const std::string& s) {
    return protocol::decode_oauthbearer(protocol::base64_encode(s));
  };
  EXPECT_EQ(error(bearer("p=tls-unique,,\x01"
                         "auth=Bearer x\x01\x01")),
            E::kMalformed);
  EXPECT_EQ(error(bearer("n,a=x=41,\x01"
                         "auth=Bearer x\x01\x01")),
            E::kMalformed);
  EXPECT_EQ(error(bearer("n,,\x01host=x\x01\x01")), E::kMalformed);
  EXPECT_EQ(error(bearer("n,,\x01"
                         "auth=Bearer x\x01"
                         "auth=Bearer y\x01\x01")),
            E::kMalformed);
  EXPECT_EQ(error(bearer("n,,auth=Bearer x\x01\x01")), E::kMalformed);
}

TEST(SaslOAuth, FailureChallengeIsBase64Json) {
  auto json = protocol::base64_decode(protocol::oauth_error_challenge("invalid_token", "openid"));
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, "{\"status\":\"invalid_token\",\"scope\":\"openid\"}");
}

TEST(SaslOAuth, NormalisesProfessionalIdentifiers) {
  EXPECT_EQ(protocol::normalize_professional_id("10001234567"), "810001234567");
  EXPECT_EQ(protocol::normalize_professional_id("810001234567"), "810001234567");
  EXPECT_EQ(protocol::normalize_professional_id("751234567"), "0751234567");
  EXPECT_EQ(protocol::normalize_professional_id("0751234567"), "0751234567");
  for (const char* bad :
       {"", "12345", "910001234567", "1751234567", "8100012345678", "81000123456a"}) {
    EXPECT_FALSE(protocol::normalize_professional_id(bad)) << bad;
  }
}

// ---- JWT ---------------------------------------------------------------------------------

namespace {

struct KeyPair {
  daemon::EvpPkeyPtr key;
  std::string jwk_json;  // {"kty":...} of the public key
};

std::string bn_bytes(const EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key, name, &bn);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

KeyPair rsa_pair(const std::string& kid) {
  KeyPair pair{daemon::EvpPkeyPtr(EVP_RSA_gen(2048)), ""};
  pair.jwk_json =
      R"({"kty":"RSA","use":"sig","alg":"RS256","kid":")" + kid + R"(","n":")" +
      protocol::base64url_encode(bn_bytes(pair.key.get(), OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
      protocol::base64url_encode(bn_bytes(pair.key.get(), OSSL_PKEY_PARAM_RSA_E)) + R"("})";
  return pair;
}

KeyPair ec_pair(const std::string& kid) {
  KeyPair pair{daemon::EvpPkeyPtr(EVP_EC_gen("P-256")), ""};
  unsigned char point[65];
  size_t size = 0;
  EVP_PKEY_get_octet_string_param(pair.key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point,
                                  &size);
  std::string p(reinterpret_cast<char*>(point), size);
  pair.jwk_json = R"({"kty":"EC","crv":"P-256","kid":")" + kid + R"(","x":")" +
                  protocol::base64url_encode(p.substr(1, 32)) + R"(","y":")" +
                  protocol::base64url_encode(p.substr(33, 32)) + R"("})";
  return pair;
}

// A token whose header is `header` (JSON, as written), signed with `pair` as `alg` does.
std::string sign_with_header(const KeyPair& pair, const std::string& alg, const std::string& header,
                             const std::string& claims) {
  std::string input = protocol::base64url_encode(header) + "." + protocol::base64url_encode(claims);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t size = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pair.key.get());
  EVP_DigestSign(ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string signature(size, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  signature.resize(size);
  EVP_MD_CTX_free(ctx);
  if (alg == "ES256") {  // DER to r || s
    const unsigned char* p = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    signature = raw;
  }
  return input + "." + protocol::base64url_encode(signature);
}

std::string sign(const KeyPair& pair, const std::string& alg, const std::string& kid,
                 const std::string& claims) {
  return sign_with_header(pair, alg,
                          R"({"alg":")" + alg + R"(","typ":"JWT","kid":")" + kid + R"("})", claims);
}

constexpr int64_t kNow = 1'800'000'000;
const std::string kIssuer = "https://auth.test/realms/esante-wallet";

std::string claims(int64_t exp, const std::string& issuer = kIssuer,
                   const std::string& extra = "") {
  return R"({"iss":")" + issuer + R"(","exp":)" + std::to_string(exp) + R"(,"iat":)" +
         std::to_string(kNow - 10) + R"(,"azp":"lps-editeur","SubjectNameID":"810001234567")" +
         extra + "}";
}

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto jwks = protocol::parse_jwks(R"({"keys":[)" + rsa_.jwk_json + "," + ec_.jwk_json +
                                     R"(,{"kty":"oct","k":"c2VjcmV0"}]})");
    ASSERT_TRUE(jwks);
    ASSERT_EQ(keys_.load(*jwks), 2u);
  }
  daemon::JwtCheck check(const std::string& token) {
    return daemon::verify_jwt(token, keys_, kIssuer, kNow).check;
  }

  KeyPair rsa_ = rsa_pair("rsa-1");
  KeyPair ec_ = ec_pair("ec-1");
  daemon::JwtKeySet keys_;
};

}  // namespace

TEST_F(JwtTest, AcceptsGoodRs256AndEs256Tokens) {
  auto verdict =
      daemon::verify_jwt(sign(rsa_, "RS256", "rsa-1", claims(kNow + 300)), keys_, kIssuer, kNow);
  EXPECT_EQ(verdict.check, daemon::JwtCheck::kValid);
  EXPECT_EQ(verdict.claims.strings["SubjectNameID"], "810001234567");
  EXPECT_EQ(verdict.claims.azp, "lps-editeur");
  EXPECT_EQ(check(sign(ec_, "ES256", "ec-1", claims(kNow + 300))), daemon::JwtCheck::kValid);
}

TEST_F(JwtTest, RefusesAWrongSignature) {
  std::string token = sign(rsa_, "RS256", "rsa-1", claims(kNow + 300));
  std::string forged =
      sign(rsa_pair("rsa-1"), "RS256", "rsa-1", claims(kNow + 300));  // another key, same kid
  EXPECT_EQ(check(forged), daemon::JwtCheck::kBadSignature);
  // The payload changed after signing.
  size_t dot = token.find('.');
  std::string tampered = token.substr(0, dot + 1) +
                         protocol::base64url_encode(claims(kNow + 9999)) +
                         token.substr(token.rfind('.'));
  EXPECT_EQ(check(tampered), daemon::JwtCheck::kBadSignature);
  EXPECT_EQ(check(sign(ec_, "ES256", "rsa-1", claims(kNow + 300))), daemon::JwtCheck::kUnknownKey)
      << "an RS256 key never checks an ES256 signature";
}

TEST_F(JwtTest, RefusesAlgNoneAndSymmetricAlgorithms) {
  std::string unsigned_token = protocol::base64url_encode(R"({"alg":"none"})") + "." +
                               protocol::base64url_encode(claims(kNow + 300)) + ".";
  EXPECT_EQ(check(unsigned_token), daemon::JwtCheck::kUnsupportedAlgorithm);
  std::string hs = protocol::base64url_encode(R"({"alg":"HS256","kid":"rsa-1"})") + "." +
                   protocol::base64url_encode(claims(kNow + 300)) + "." +
                   protocol::base64url_encode("mac");
  EXPECT_EQ(check(hs), daemon::JwtCheck::kUnsupportedAlgorithm);
}

TEST_F(JwtTest, RefusesWrongIssuerExpiryAndNotBefore) {
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", claims(kNow + 300, "https://evil.test"))),
            daemon::JwtCheck::kWrongIssuer);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", claims(kNow - 60))), daemon::JwtCheck::kExpired);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", R"({"iss":")" + kIssuer + R"("})")),
            daemon::JwtCheck::kExpired)
      << "a token without exp never validates";
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1",
                       claims(kNow + 300, kIssuer, R"(,"nbf":)" + std::to_string(kNow + 120)))),
            daemon::JwtCheck::kNotYetValid);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1",
                       claims(kNow + 300, kIssuer, R"(,"nbf":)" + std::to_string(kNow + 10)))),
            daemon::JwtCheck::kValid)
      << "within the clock-skew leeway";
}

// The ends of int64 in exp and nbf: no overflow in the leeway (found by the jwt fuzz target,
// which signs tokens of any claims; UBSan: "30 + 9223372036854775807 cannot be represented").
TEST_F(JwtTest, TimeClaimsAtTheEndsOfTheIntegersNeedNoArithmeticOverflow) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", claims(kMax))), daemon::JwtCheck::kValid);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1",
                       claims(kNow + 300, kIssuer, R"(,"nbf":-9223372036854775808)"))),
            daemon::JwtCheck::kValid);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", claims(-kMax - 1))), daemon::JwtCheck::kExpired);
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1",
                       claims(kNow + 300, kIssuer, R"(,"nbf":)" + std::to_string(kMax)))),
            daemon::JwtCheck::kNotYetValid);
}

TEST_F(JwtTest, ReportsAnUnknownKeyIdSoThatTheKeySetCanBeRefreshed) {
  EXPECT_EQ(check(sign(rsa_, "RS256", "rotated-2", claims(kNow + 300))),
            daemon::JwtCheck::kUnknownKey);
}

TEST_F(JwtTest, RefusesMalformedTokens) {
  for (const std::string& bad :
       {std::string(""), std::string("a.b"), std::string("a.b.c.d"), std::string("!!!.e30.e30"),
        protocol::base64url_encode("[1]") + "." + protocol::base64url_encode("{}") + ".",
        protocol::base64url_encode(R"({"alg":"RS256","crit":["x"]})") + "." +
            protocol::base64url_encode("{}") + ".",
        protocol::base64url_encode(R"({"alg":"RS256"})") + "." +
            protocol::base64url_encode(R"({"exp":"soon"})") + ".",
        std::string(20000, 'a')}) {
    EXPECT_EQ(check(bad), daemon::JwtCheck::kMalformed) << bad.substr(0, 60);
  }
}

TEST_F(JwtTest, DuplicateMembersAreReadAsTheLastOneAsRfc7515Allows) {
  // RFC 7515 §4: a parser either refuses duplicate names or reads the last one. Both the
  // screening and the verification read the same, last, one.
  std::string last_none = sign_with_header(
      rsa_, "RS256", R"({"alg":"RS256","kid":"rsa-1","alg":"none"})", claims(kNow + 300));
  EXPECT_EQ(check(last_none), daemon::JwtCheck::kUnsupportedAlgorithm);
  EXPECT_EQ(daemon::screen_token(last_none, "jwt", 8192).value_or("taken"),
            "unsupported_algorithm");
  std::string last_rs256 = sign_with_header(
      rsa_, "RS256", R"({"alg":"none","kid":"rsa-1","alg":"RS256"})", claims(kNow + 300));
  EXPECT_EQ(check(last_rs256), daemon::JwtCheck::kValid);
  std::string claims_twice = R"({"iss":")" + kIssuer + R"(","exp":)" + std::to_string(kNow + 300) +
                             R"(,"iss":"https://evil.test"})";
  EXPECT_EQ(check(sign(rsa_, "RS256", "rsa-1", claims_twice)), daemon::JwtCheck::kWrongIssuer);
}

TEST_F(JwtTest, RefusesAHeaderTooDeepOrTooLarge) {
  // Nested past Boost.JSON's depth cap (32): not read, whatever the signature.
  std::string deep = std::string(40, '[') + std::string(40, ']');
  EXPECT_EQ(
      check(sign_with_header(rsa_, "RS256", R"({"alg":"RS256","kid":"rsa-1","x":)" + deep + "}",
                             claims(kNow + 300))),
      daemon::JwtCheck::kMalformed);
  // A header that makes the token longer than any token mssgate reads (16 KiB).
  std::string large = R"({"alg":"RS256","kid":"rsa-1","x":")" + std::string(13000, 'a') + R"("})";
  std::string token = sign_with_header(rsa_, "RS256", large, claims(kNow + 300));
  ASSERT_GT(token.size(), 16384u);
  EXPECT_EQ(check(token), daemon::JwtCheck::kMalformed);
  EXPECT_EQ(daemon::screen_token(token, "jwt", 8192).value_or("taken"), "too_long");
}

TEST(Jwt, ParsesIntrospectionAnswers) {
  auto active = protocol::parse_token_claims(
      R"({"active":true,"exp":1800000300,"azp":"lps","SubjectNameID":"810001234567","typ":"Bearer","scope":"openid"})");
  ASSERT_TRUE(active);
  EXPECT_EQ(active->active, true);
  EXPECT_EQ(active->exp, 1800000300);
  EXPECT_EQ(active->strings.at("SubjectNameID"), "810001234567");
  EXPECT_EQ(protocol::parse_token_claims(R"({"active":false})")->active, false);
  EXPECT_FALSE(protocol::parse_token_claims(R"({"active":"yes"})"));
  EXPECT_FALSE(protocol::parse_token_claims("<html>"));
}

// A time claim written as a number no int64 holds (1e300, NaN is not JSON) makes the answer
// unreadable instead of being converted: the conversion was undefined behaviour, found by the
// jwt fuzz target (tests/fuzz/regressions/jwt/: "exp" 9.22337e+19).
TEST(Jwt, RefusesTimeClaimsNoIntegerHolds) {
  for (const char* bad : {R"({"exp":1e300})", R"({"exp":-1e300})", R"({"nbf":9.3e18})",
                          R"({"iat":-9.3e18})", R"({"exp":92233720368547758070})"}) {
    EXPECT_FALSE(protocol::parse_token_claims(bad)) << bad;
  }
  auto decimal = protocol::parse_token_claims(R"({"exp":1.8e9,"nbf":-1.5,"iat":1800000000.9})");
  ASSERT_TRUE(decimal);
  EXPECT_EQ(decimal->exp, 1800000000);
  EXPECT_EQ(decimal->nbf, -1);
  EXPECT_EQ(decimal->iat, 1800000000);
}

TEST(Jwt, ReadsThePolicyClaimsOfAToken) {
  auto claims = protocol::parse_token_claims(
      R"({"azp":"lps","client_id":"lps","typ":"Bearer","scope":"openid mss","acr":"eidas2",)"
      R"("aud":["mssante-api","account"],"amr":["card"],"jti":7})");
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->client_id, "lps");
  EXPECT_EQ(claims->typ, "Bearer");
  EXPECT_EQ(claims->scope, "openid mss");
  EXPECT_EQ(claims->acr, "eidas2");
  EXPECT_EQ(claims->aud, (std::vector<std::string>{"mssante-api", "account"}));
  EXPECT_EQ(claims->amr, (std::vector<std::string>{"card"}));
  EXPECT_EQ(protocol::parse_token_claims(R"({"aud":"one"})")->aud,
            (std::vector<std::string>{"one"}));
  // A claim the policy reads with the wrong type makes the whole answer unreadable.
  for (const char* bad :
       {R"({"aud":7})", R"({"aud":["a",7]})", R"({"amr":"card"})", R"({"scope":["mss"]})",
        R"({"acr":2})", R"({"typ":true})", R"({"client_id":{}})"}) {
    EXPECT_FALSE(protocol::parse_token_claims(bad)) << bad;
  }
}
