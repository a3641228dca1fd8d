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
    R"({"active":true,"SubjectNameID":"810001234567","azp":"lps","exp":4102444800})";

}  // namespace

TEST(PscIssuerClient, MapsTheIssuersAnswersToValidations) {
  LoopbackIssuer issuer;
  asio::io_context io;
  auto http = std::make_shared<daemon::HttpClient>();
  auto validator = daemon::make_psc_token_validator(issuer.psc, http);
  issuer.server.answer(json_response(200, kActive));
  TokenValidation valid = validate(io, *validator, "t1");
  EXPECT_EQ(valid.result, TokenValidation::Result::kValid);
  EXPECT_EQ(valid.professional_id, "810001234567");
  EXPECT_EQ(valid.azp, "lps");
  std::string sent = issuer.server.last_request();
  EXPECT_EQ(sent.rfind("POST /introspect HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(sent.find("token=t1&token_type_hint=access_token&client_id=mssgate"),
            std::string::npos);
  EXPECT_EQ(issuer.server.server_name(), "localhost");

  issuer.server.answer(json_response(200, R"({"active":false})"));
  EXPECT_EQ(validate(io, *validator, "t2").reason, "inactive");
  issuer.server.answer(json_response(503, "{}"));
  EXPECT_EQ(validate(io, *validator, "t3").reason, "issuer_status_503");
  issuer.server.answer(json_response(200, "not json"));
  EXPECT_EQ(validate(io, *validator, "t4").reason, "issuer_answer_malformed");
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
  TokenValidation result = validate(io, *validator, "token");
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
  EXPECT_EQ(validate(io, *first->validator, "token").result, TokenValidation::Result::kValid);
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
