#include "daemon/services/psc_issuer_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>

#include "daemon/services/gateway_environment.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/jwt.hpp"
#include "tests/unit/loopback_http_server.hpp"

using namespace mssgate;
using daemon::TokenValidation;
using test_support::LoopbackHttpServer;
namespace asio = boost::asio;

namespace {

std::string json_response(unsigned status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Pro Santé Connect on loopback: a TLS server for "localhost" and a [psc] that trusts it.
struct LoopbackIssuer {
  LoopbackIssuer()
      : certificate(test_support::make_loopback_certificate("localhost")),
        server(certificate.server) {
    ca_file = std::filesystem::temp_directory_path() /
              ("mssgate-psc-ca-" + std::to_string(server.port()) + ".pem");
    std::ofstream(ca_file) << certificate.pem;
    std::string base = "https://localhost:" + std::to_string(server.port());
    psc.issuer = base + "/realms/test";
    psc.introspection_url = base + "/introspect";
    psc.client_id = "mssgate";
    psc.allowed_clients = {"lps"};
    psc.ca_file = ca_file.string();
    psc.timeout = std::chrono::seconds(5);
  }
  ~LoopbackIssuer() { std::filesystem::remove(ca_file); }

  test_support::LoopbackCertificate certificate;
  LoopbackHttpServer server;
  std::filesystem::path ca_file;
  config::PscConfig psc;
};

TokenValidation validate(asio::io_context& io, daemon::TokenValidator& validator,
                         const std::string& token) {
  std::optional<TokenValidation> result;
  asio::co_spawn(io, validator.validate(token),
                 [&](const std::exception_ptr& e, const TokenValidation& v) {
                   if (e) std::rethrow_exception(e);
                   result = v;
                   io.stop();  // kept connections leave work behind
                 });
  io.restart();
  io.run();
  return *result;
}

const std::string kActive =
    R"({"active":true,"SubjectNameID":"810001234567","azp":"lps","typ":"Bearer",)"
    R"("exp":4102444800})";

// A token of PSC's shape (a signed compact JWS), told apart by `name`; only the issuer knows
// whether it is valid.
std::string token(const std::string& name) {
  return protocol::base64url_encode(R"({"alg":"RS256","kid":"k1"})") + "." +
         protocol::base64url_encode(R"({"jti":")" + name + R"("})") + "." +
         protocol::base64url_encode("signature of " + name);
}

}  // namespace

TEST(PscIssuerClient, MapsTheIssuersAnswersToValidations) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.answer(json_response(200, kActive));
  TokenValidation valid = validate(io, *validator, token("t1"));
  EXPECT_EQ(valid.result, TokenValidation::Result::kValid);
  EXPECT_EQ(valid.professional_id, "810001234567");
  EXPECT_EQ(valid.azp, "lps");
  std::string sent = issuer.server.last_request();
  EXPECT_EQ(sent.rfind("POST /introspect HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(sent.find("token=" + token("t1") + "&token_type_hint=access_token&client_id=mssgate"),
            std::string::npos);
  EXPECT_EQ(issuer.server.server_name(), "localhost");

  issuer.server.answer(json_response(200, R"({"active":false})"));
  EXPECT_EQ(validate(io, *validator, token("t2")).reason, "inactive");
  issuer.server.answer(json_response(503, "{}"));
  EXPECT_EQ(validate(io, *validator, token("t3")).reason, "issuer_status_503");
  issuer.server.answer(json_response(200, "not json"));
  EXPECT_EQ(validate(io, *validator, token("t4")).reason, "issuer_answer_malformed");
  EXPECT_GT(validator->issuer_health().last_answer_ms, 0);
  EXPECT_EQ(validator->issuer_health().host, "localhost");
  http->close();
}

TEST(PscIssuerClient, AnUnreachableIssuerIsUnavailable) {
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  std::optional<LoopbackIssuer> issuer(std::in_place);
  config::PscConfig psc = issuer->psc;
  std::filesystem::path ca_copy = issuer->ca_file.string() + ".copy";
  std::filesystem::copy_file(issuer->ca_file, ca_copy);
  psc.ca_file = ca_copy.string();
  issuer.reset();  // nothing listens any more
  auto validator = daemon::make_psc_token_validator(psc, http);
  TokenValidation result = validate(io, *validator, token("t"));
  EXPECT_EQ(result.result, TokenValidation::Result::kUnavailable);
  EXPECT_EQ(result.reason, "issuer_unreachable");
  EXPECT_GT(validator->issuer_health().last_failure_ms, 0);
  std::filesystem::remove(ca_copy);
}

// A reload that changes [psc] replaces the validator: the old one is freed with the last
// snapshot that holds it, though the process's HTTP client still keeps its connection.
TEST(PscValidatorFor, AReplacedValidatorIsFreedWithTheLastSnapshotHoldingIt) {
  LoopbackIssuer issuer;
  issuer.server.answer(json_response(200, kActive));
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  auto first = std::make_shared<daemon::GatewayEnvironment>();
  first->config.psc = issuer.psc;
  first->psc_files_stamp = "stamp";
  first->validator = daemon::psc_validator_for(issuer.psc, "stamp", nullptr, http);
  ASSERT_TRUE(first->validator);
  EXPECT_EQ(validate(io, *first->validator, token("t")).result, TokenValidation::Result::kValid);
  EXPECT_EQ(http->idle_connections(), 1u);

  // Neither [psc] nor its files changed: the validator and its cache are kept.
  EXPECT_EQ(daemon::psc_validator_for(issuer.psc, "stamp", first.get(), http), first->validator);
  // The CA file was replaced at the same path: a new validator.
  EXPECT_NE(daemon::psc_validator_for(issuer.psc, "new stamp", first.get(), http),
            first->validator);

  config::PscConfig changed = issuer.psc;
  changed.negative_cache = std::chrono::seconds(20);
  auto second = std::make_shared<daemon::GatewayEnvironment>();
  second->config.psc = changed;
  second->validator = daemon::psc_validator_for(changed, "stamp", first.get(), http);
  ASSERT_TRUE(second->validator);
  EXPECT_NE(second->validator, first->validator);
  std::weak_ptr<daemon::TokenValidator> replaced = first->validator;
  first.reset();  // the last snapshot holding the old validator goes
  EXPECT_TRUE(replaced.expired());
  EXPECT_EQ(http->idle_connections(), 1u);

  // PSC switched off: no validator.
  config::PscConfig off;
  EXPECT_FALSE(daemon::psc_validator_for(off, "stamp", second.get(), http));
  http->close();
}

TEST(PscIssuerClient, RefusesAValidTokenOutsideThePolicyAndNamesItsClient) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.answer(json_response(
      200, R"({"active":true,"SubjectNameID":"810001234567","azp":"lps-other","typ":"Bearer",)"
           R"("exp":4102444800})"));
  uint64_t refusals =
      daemon::metrics::gateway().token_refusals.with({"client_not_allowed"}).value();
  TokenValidation other = validate(io, *validator, token("other"));
  EXPECT_EQ(other.result, TokenValidation::Result::kRefused);
  EXPECT_EQ(other.reason, "client_not_allowed");
  EXPECT_EQ(other.azp, "lps-other");
  EXPECT_TRUE(other.professional_id.empty());
  EXPECT_EQ(daemon::metrics::gateway().token_refusals.with({"client_not_allowed"}).value(),
            refusals + 1);
  // RFC 7662's client_id names the client when there is no azp.
  issuer.server.answer(json_response(
      200, R"({"active":true,"SubjectNameID":"810001234567","client_id":"lps","typ":"Bearer",)"
           R"("exp":4102444800})"));
  EXPECT_EQ(validate(io, *validator, token("by client_id")).result,
            TokenValidation::Result::kValid);
  // A refresh token introspected is not an access token.
  issuer.server.answer(json_response(
      200, R"({"active":true,"SubjectNameID":"810001234567","azp":"lps","typ":"Refresh",)"
           R"("exp":4102444800})"));
  EXPECT_EQ(validate(io, *validator, token("refresh")).reason, "type");
  http->close();
}

TEST(PscIssuerClient, RefusesAMalformedTokenWithoutAskingTheIssuer) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  issuer.psc.max_token_bytes = 1024;
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.answer(json_response(200, kActive));
  for (const std::string& bad : {std::string("opaque-random-string"), std::string("a.b.c"),
                                 token("x") + "." + "more", token(std::string(1024, 'x'))}) {
    TokenValidation result = validate(io, *validator, bad);
    EXPECT_EQ(result.result, TokenValidation::Result::kInvalid) << bad.substr(0, 40);
  }
  EXPECT_EQ(validate(io, *validator, token(std::string(1024, 'x'))).reason, "too_long");
  EXPECT_EQ(validate(io, *validator, "a.b.c").reason, "malformed");
  EXPECT_EQ(issuer.server.requests(), 0);
  // "opaque": any bearer token is worth a question.
  issuer.psc.token_format = "opaque";
  auto opaque = daemon::make_psc_token_validator(issuer.psc, http);
  EXPECT_EQ(validate(io, *opaque, "opaque-random-string").result, TokenValidation::Result::kValid);
  EXPECT_EQ(issuer.server.requests(), 1);
  http->close();
}

TEST(PscIssuerClient, ABudgetSpentMakesNoRequestAndIsATemporaryFailure) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  issuer.psc.issuer_burst = 3;
  issuer.psc.issuer_max_per_second = 1;
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.answer(json_response(200, R"({"active":false})"));
  auto& spent = daemon::metrics::gateway().issuer_budget_refusals.with({"introspection", "rate"});
  uint64_t before = spent.value();
  int refused = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    TokenValidation result = validate(io, *validator, token("random " + std::to_string(i)));
    if (result.reason == "issuer_budget") {
      EXPECT_EQ(result.result, TokenValidation::Result::kUnavailable);
      ++refused;
    }
  }
  // The bucket held 3 requests, and gained one per second while the test ran.
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LE(issuer.server.requests(), 3 + static_cast<int>(seconds) + 1);
  EXPECT_GE(issuer.server.requests(), 3);
  EXPECT_GE(refused, 1);
  EXPECT_EQ(refused, 10 - issuer.server.requests());
  EXPECT_EQ(spent.value() - before, static_cast<uint64_t>(refused));
  http->close();
}

TEST(PscIssuerClient, CapsTheRequestsInFlight) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  issuer.psc.issuer_max_in_flight = 1;
  issuer.psc.timeout = std::chrono::milliseconds(500);
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.behave(LoopbackHttpServer::Behaviour::kNeverAnswer);
  std::optional<TokenValidation> hanging, second;
  asio::co_spawn(io, validator->validate(token("hanging")),
                 [&](const std::exception_ptr&, const TokenValidation& v) {
                   hanging = v;
                   if (second) io.stop();
                 });
  asio::co_spawn(io, validator->validate(token("second")),
                 [&](const std::exception_ptr&, const TokenValidation& v) {
                   second = v;
                   EXPECT_FALSE(hanging) << "refused while the first request was in flight";
                   if (hanging) io.stop();
                 });
  io.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(second && hanging);
  EXPECT_EQ(second->reason, "issuer_budget");
  EXPECT_EQ(hanging->reason, "issuer_unreachable");
  // The slot came back with the first request's end.
  issuer.server.behave(LoopbackHttpServer::Behaviour::kAnswer);
  issuer.server.answer(json_response(200, kActive));
  EXPECT_EQ(validate(io, *validator, token("third")).result, TokenValidation::Result::kValid);
  http->close();
}

// A token cached as valid under one policy is not taken after a reload that changes it: the
// policy is part of [psc], so the new configuration gets a new validator with an empty cache.
TEST(PscValidatorFor, ANewPolicyComesWithANewCache) {
  LoopbackIssuer issuer;
  issuer.server.answer(json_response(200, kActive));
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  auto first = std::make_shared<daemon::GatewayEnvironment>();
  first->config.psc = issuer.psc;
  first->psc_files_stamp = "stamp";
  first->psc_budget = daemon::psc_budget_for(issuer.psc, nullptr);
  first->validator =
      daemon::psc_validator_for(issuer.psc, "stamp", nullptr, http, first->psc_budget);
  EXPECT_EQ(validate(io, *first->validator, token("t")).result, TokenValidation::Result::kValid);
  EXPECT_EQ(validate(io, *first->validator, token("t")).result, TokenValidation::Result::kValid);
  EXPECT_EQ(issuer.server.requests(), 1) << "cached";

  config::PscConfig narrower = issuer.psc;
  narrower.allowed_clients = {"lps-new"};
  // The budget is the same while its limits are.
  EXPECT_EQ(daemon::psc_budget_for(narrower, first.get()), first->psc_budget);
  auto second = daemon::psc_validator_for(narrower, "stamp", first.get(), http,
                                          daemon::psc_budget_for(narrower, first.get()));
  ASSERT_NE(second, first->validator);
  TokenValidation after = validate(io, *second, token("t"));
  EXPECT_EQ(after.result, TokenValidation::Result::kRefused);
  EXPECT_EQ(after.reason, "client_not_allowed");
  EXPECT_EQ(issuer.server.requests(), 2);

  for (auto change : {+[](config::PscConfig& c) { c.required_scope = "mss"; },
                      +[](config::PscConfig& c) { c.accepted_acr = {"eidas2"}; },
                      +[](config::PscConfig& c) { c.accepted_amr = {"card"}; },
                      +[](config::PscConfig& c) { c.required_audience = "mss"; },
                      +[](config::PscConfig& c) { c.token_types = {"at+jwt"}; }}) {
    config::PscConfig changed = issuer.psc;
    change(changed);
    EXPECT_NE(daemon::psc_validator_for(changed, "stamp", first.get(), http), first->validator);
  }
  config::PscConfig faster = issuer.psc;
  faster.issuer_max_per_second = 500;
  EXPECT_NE(daemon::psc_budget_for(faster, first.get()), first->psc_budget)
      << "new limits, a new budget";
  EXPECT_FALSE(daemon::psc_budget_for(config::PscConfig{}, first.get()));
  http->close();
}
