#include "daemon/services/token_policy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "daemon/services/issuer_budget.hpp"
#include "protocol/jwt.hpp"

using namespace mssgate;
using daemon::IssuerBudget;
using daemon::TokenPolicy;
using namespace std::chrono_literals;

namespace {

// The claims of a PSC access token issued to the LPS "lps-a", as introspection gives them.
protocol::TokenClaims psc_claims() {
  auto claims = protocol::parse_token_claims(R"({
    "active": true, "iss": "https://auth.test/realms/esante-wallet", "typ": "Bearer",
    "azp": "lps-a", "aud": ["mssante-api", "account"], "scope": "openid scope_all mss",
    "acr": "eidas2", "amr": ["card", "otp"], "exp": 4102444800,
    "SubjectNameID": "810001234567"})");
  EXPECT_TRUE(claims);
  return *claims;
}

TokenPolicy allowing(std::vector<std::string> clients) {
  TokenPolicy policy;
  policy.allowed_clients = std::move(clients);
  policy.token_types = {"Bearer"};
  return policy;
}

std::string verdict(const TokenPolicy& policy, const protocol::TokenClaims& claims) {
  auto broken = daemon::check_token_policy(policy, claims);
  return broken ? std::string(*broken) : "ok";
}

}  // namespace

TEST(TokenPolicy, TakesATokenOfAnAllowedClient) {
  EXPECT_EQ(verdict(allowing({"lps-b", "lps-a"}), psc_claims()), "ok");
  EXPECT_EQ(daemon::token_client(psc_claims()), "lps-a");
}

TEST(TokenPolicy, AnEmptyAllowListRefusesEveryClientAndAStarAllowsAny) {
  EXPECT_EQ(verdict(allowing({}), psc_claims()), "client_not_allowed");
  EXPECT_FALSE(allowing({}).any_client());
  EXPECT_EQ(verdict(allowing({"*"}), psc_claims()), "ok");
  EXPECT_TRUE(allowing({"lps-b", "*"}).any_client());
  auto nameless = psc_claims();
  nameless.azp.clear();
  EXPECT_EQ(verdict(allowing({"lps-a"}), nameless), "client_not_allowed")
      << "a token naming no client is taken only by \"*\"";
  EXPECT_EQ(verdict(allowing({"*"}), nameless), "ok");
}

TEST(TokenPolicy, RefusesATokenIssuedToAnotherClient) {
  auto other = psc_claims();
  other.azp = "lps-unknown";
  EXPECT_EQ(verdict(allowing({"lps-a"}), other), "client_not_allowed");
  // Client ids are compared exactly.
  other.azp = "LPS-A";
  EXPECT_EQ(verdict(allowing({"lps-a"}), other), "client_not_allowed");
}

TEST(TokenPolicy, ReadsTheClientFromClientIdWhenThereIsNoAzp) {
  auto claims = psc_claims();
  claims.azp.clear();
  claims.client_id = "lps-a";
  EXPECT_EQ(verdict(allowing({"lps-a"}), claims), "ok");
  EXPECT_EQ(daemon::token_client(claims), "lps-a");
  claims.client_id = "lps-z";
  EXPECT_EQ(verdict(allowing({"lps-a"}), claims), "client_not_allowed");
}

TEST(TokenPolicy, AzpAndClientIdMustBothBeAllowedWhenBothArePresent) {
  auto claims = psc_claims();
  claims.client_id = "lps-z";
  EXPECT_EQ(verdict(allowing({"lps-a"}), claims), "client_not_allowed");
  EXPECT_EQ(verdict(allowing({"lps-a", "lps-z"}), claims), "ok");
}

TEST(TokenPolicy, ChecksTheAudienceAsAStringOrAnArray) {
  auto policy = allowing({"lps-a"});
  policy.required_audience = "mssante-api";
  EXPECT_EQ(verdict(policy, psc_claims()), "ok");
  auto single =
      *protocol::parse_token_claims(R"({"azp":"lps-a","typ":"Bearer","aud":"mssante-api"})");
  EXPECT_EQ(verdict(policy, single), "ok");
  auto other = *protocol::parse_token_claims(R"({"azp":"lps-a","typ":"Bearer","aud":"account"})");
  EXPECT_EQ(verdict(policy, other), "audience");
  auto none = *protocol::parse_token_claims(R"({"azp":"lps-a","typ":"Bearer"})");
  EXPECT_EQ(verdict(policy, none), "audience");
  policy.required_audience.clear();
  EXPECT_EQ(verdict(policy, none), "ok") << "no audience required: aud is not looked at";
}

TEST(TokenPolicy, ChecksTheScopeWordByWord) {
  auto policy = allowing({"lps-a"});
  policy.required_scope = "mss";
  EXPECT_EQ(verdict(policy, psc_claims()), "ok");
  auto claims = psc_claims();
  claims.scope = "openid mss_read";  // a word that only starts like it
  EXPECT_EQ(verdict(policy, claims), "scope");
  claims.scope = "mssx";
  EXPECT_EQ(verdict(policy, claims), "scope");
  claims.scope = "mss";
  EXPECT_EQ(verdict(policy, claims), "ok");
  claims.scope.clear();
  EXPECT_EQ(verdict(policy, claims), "scope");
}

TEST(TokenPolicy, ChecksAcrAgainstTheAcceptedValues) {
  auto policy = allowing({"lps-a"});
  policy.accepted_acr = {"eidas2", "eidas3"};
  EXPECT_EQ(verdict(policy, psc_claims()), "ok");
  auto claims = psc_claims();
  claims.acr = "eidas1";
  EXPECT_EQ(verdict(policy, claims), "acr");
  claims.acr.clear();
  EXPECT_EQ(verdict(policy, claims), "acr") << "a token without acr is refused when one is asked";
}

TEST(TokenPolicy, TakesATokenWithAtLeastOneAcceptedAmr) {
  auto policy = allowing({"lps-a"});
  policy.accepted_amr = {"card"};
  EXPECT_EQ(verdict(policy, psc_claims()), "ok");
  auto claims = psc_claims();
  claims.amr = {"pwd", "idp_local"};
  EXPECT_EQ(verdict(policy, claims), "amr");
  claims.amr.clear();
  EXPECT_EQ(verdict(policy, claims), "amr");
}

TEST(TokenPolicy, ChecksTheTokenTypeInAnyCase) {
  auto policy = allowing({"lps-a"});
  auto claims = psc_claims();
  claims.typ = "bearer";
  EXPECT_EQ(verdict(policy, claims), "ok");
  claims.typ = "Refresh";  // a refresh token introspected is not an access token
  EXPECT_EQ(verdict(policy, claims), "type");
  claims.typ.clear();
  EXPECT_EQ(verdict(policy, claims), "type");
  policy.token_types.clear();
  EXPECT_EQ(verdict(policy, claims), "ok") << "no type listed: typ is not looked at";
}

TEST(TokenPolicy, NamesTheFirstRuleBrokenWhenSeveralAre) {
  TokenPolicy policy = allowing({"lps-a"});
  policy.required_audience = "mssante-api";
  policy.required_scope = "mss";
  policy.accepted_acr = {"eidas2"};
  policy.accepted_amr = {"card"};
  EXPECT_EQ(verdict(policy, psc_claims()), "ok") << "every rule kept at once";
  auto claims = psc_claims();
  claims.amr = {"pwd"};
  EXPECT_EQ(verdict(policy, claims), "amr");
  claims.acr = "eidas1";
  EXPECT_EQ(verdict(policy, claims), "acr");
  claims.scope = "openid";
  EXPECT_EQ(verdict(policy, claims), "scope");
  claims.aud = {"account"};
  EXPECT_EQ(verdict(policy, claims), "audience");
  claims.azp = "lps-z";
  EXPECT_EQ(verdict(policy, claims), "client_not_allowed");
  claims.typ = "ID";
  EXPECT_EQ(verdict(policy, claims), "type");
}

TEST(TokenPolicy, IsBuiltFromThePscSettings) {
  config::PscConfig psc;
  EXPECT_EQ(verdict(TokenPolicy::from(psc), psc_claims()), "client_not_allowed")
      << "by default no client is allowed";
  psc.allowed_clients = {"lps-a"};
  psc.required_audience = "mssante-api";
  psc.required_scope = "mss";
  psc.accepted_acr = {"eidas2"};
  psc.accepted_amr = {"otp"};
  EXPECT_EQ(verdict(TokenPolicy::from(psc), psc_claims()), "ok");
  psc.accepted_amr = {"pwd"};
  EXPECT_EQ(verdict(TokenPolicy::from(psc), psc_claims()), "amr");
}

TEST(TokenScreen, TakesASignedJwtAndRefusesAnythingElseBeforeAnyRequest) {
  std::string header = protocol::base64url_encode(R"({"alg":"RS256","kid":"k1"})");
  std::string payload = protocol::base64url_encode(R"({"azp":"lps-a"})");
  std::string jwt = header + "." + payload + "." + protocol::base64url_encode("signature");
  EXPECT_FALSE(daemon::screen_token(jwt, "jwt", 8192));
  std::string no_signature = jwt.substr(0, jwt.rfind('.') + 1);
  std::string not_json = header + ".bm90IGpzb24." + protocol::base64url_encode("signature");
  std::string no_alg = protocol::base64url_encode(R"({"kid":"k1"})") + "." + payload + ".c2ln";
  std::string four_parts = jwt + ".extra";
  for (const std::string& bad : {std::string("opaque-token"), std::string("a.b.c"), no_signature,
                                 not_json, no_alg, four_parts}) {
    auto refusal = daemon::screen_token(bad, "jwt", 8192);
    ASSERT_TRUE(refusal) << bad;
    EXPECT_EQ(*refusal, "malformed") << bad;
  }
  std::string unsigned_token =
      protocol::base64url_encode(R"({"alg":"none"})") + "." + payload + ".";
  EXPECT_EQ(daemon::screen_token(unsigned_token, "jwt", 8192).value_or("none"),
            "unsupported_algorithm");
  EXPECT_EQ(daemon::screen_token(jwt, "jwt", jwt.size() - 1).value_or("none"), "too_long");
  EXPECT_FALSE(daemon::screen_token(jwt, "jwt", jwt.size()));
  // "opaque": only the length is looked at (the SASL decoder already took b64token characters).
  EXPECT_FALSE(daemon::screen_token("opaque-token", "opaque", 8192));
  EXPECT_EQ(daemon::screen_token(std::string(300, 'a'), "opaque", 256).value_or("none"),
            "too_long");
}

TEST(IssuerBudget, TheBucketStartsFullAndRefillsAtTheRate) {
  auto start = IssuerBudget::Clock::time_point{} + 1h;
  IssuerBudget budget({100, 2, 3}, start);  // 2 per second, bursts of 3
  std::vector<IssuerBudget::Ticket> held;
  for (int i = 0; i < 3; ++i) {
    auto admission = budget.try_start(start);
    ASSERT_TRUE(std::holds_alternative<IssuerBudget::Ticket>(admission)) << i;
    held.push_back(std::get<IssuerBudget::Ticket>(std::move(admission)));
  }
  auto spent = budget.try_start(start);
  ASSERT_TRUE(std::holds_alternative<IssuerBudget::Spent>(spent));
  EXPECT_EQ(std::get<IssuerBudget::Spent>(spent), IssuerBudget::Spent::kRate);
  EXPECT_EQ(IssuerBudget::describe(IssuerBudget::Spent::kRate), "rate");
  held.clear();  // finished requests give back their slot, not their token
  EXPECT_TRUE(std::holds_alternative<IssuerBudget::Spent>(budget.try_start(start + 100ms)));
  EXPECT_TRUE(std::holds_alternative<IssuerBudget::Ticket>(budget.try_start(start + 600ms)));
  EXPECT_TRUE(std::holds_alternative<IssuerBudget::Spent>(budget.try_start(start + 700ms)));
  // A long pause refills the bucket to its burst, never more.
  int started = 0;
  while (std::holds_alternative<IssuerBudget::Ticket>(budget.try_start(start + 1h)))
    ++started;
  EXPECT_EQ(started, 3);
}

TEST(IssuerBudget, CapsTheRequestsInFlightAndFreesASlotWithEachTicket) {
  auto now = IssuerBudget::Clock::now();
  IssuerBudget budget({2, 1000, 1000}, now);
  auto first = budget.try_start(now);
  auto second = budget.try_start(now);
  EXPECT_EQ(budget.in_flight(), 2u);
  auto third = budget.try_start(now);
  ASSERT_TRUE(std::holds_alternative<IssuerBudget::Spent>(third));
  EXPECT_EQ(std::get<IssuerBudget::Spent>(third), IssuerBudget::Spent::kInFlight);
  EXPECT_EQ(IssuerBudget::describe(IssuerBudget::Spent::kInFlight), "in_flight");
  std::get<IssuerBudget::Ticket>(first).release();
  EXPECT_EQ(budget.in_flight(), 1u);
  {
    IssuerBudget::Ticket moved = std::get<IssuerBudget::Ticket>(std::move(second));
    EXPECT_EQ(budget.in_flight(), 1u) << "a moved ticket holds one slot";
  }
  EXPECT_EQ(budget.in_flight(), 0u);
  EXPECT_TRUE(std::holds_alternative<IssuerBudget::Ticket>(budget.try_start(now)));
  EXPECT_EQ(budget.in_flight(), 0u) << "the ticket not kept was released at once";
}

TEST(IssuerBudget, ARefusalTakesNothing) {
  auto now = IssuerBudget::Clock::now();
  IssuerBudget budget({1, 1000, 2}, now);
  auto held = budget.try_start(now);
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(std::holds_alternative<IssuerBudget::Spent>(budget.try_start(now)));
  std::get<IssuerBudget::Ticket>(held).release();
  EXPECT_TRUE(std::holds_alternative<IssuerBudget::Ticket>(budget.try_start(now)))
      << "the in-flight refusals did not spend the bucket's second token";
}
