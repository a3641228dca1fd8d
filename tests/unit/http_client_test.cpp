#include "daemon/net/http_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <exception>
#include <optional>

#include "tests/unit/loopback_http_server.hpp"

using namespace mssgate;
using daemon::HttpClient;
using daemon::HttpFailure;
using daemon::HttpRequest;
using daemon::HttpResponse;
using test_support::LoopbackHttpServer;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `task` on `io` until it ends (kept connections leave work behind: timers).
template <class T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = std::move(e);
    result = std::move(value);
    io.stop();
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

void run_for(asio::io_context& io, std::chrono::milliseconds duration) {
  io.restart();
  io.run_for(duration);
}

HttpRequest get(const std::string& url) {
  HttpRequest request;
  request.url = *protocol::parse_http_url(url);
  request.timeout = std::chrono::seconds(5);
  return request;
}

std::string local_url(const LoopbackHttpServer& server, const char* scheme = "http",
                      const char* host = "127.0.0.1") {
  return std::string(scheme) + "://" + host + ":" + std::to_string(server.port()) + "/path";
}

// A loopback port where nothing listens.
unsigned short closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

}  // namespace

TEST(HttpClient, ReusesAKeptConnectionForTheNextRequests) {
  LoopbackHttpServer server;
  asio::io_context io;
  HttpClient client;
  for (int i = 0; i < 3; ++i) {
    HttpResponse response = run(io, client.send(get(local_url(server))));
    EXPECT_EQ(response.failure, HttpFailure::kNone);
    EXPECT_EQ(response.status, 200u);
    EXPECT_EQ(response.body, "hello");
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(client.idle_connections(), 1u);
  client.close();
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpClient, SendsTheMethodHeadersAndBodyAsked) {
  LoopbackHttpServer server;
  asio::io_context io;
  HttpClient client;
  HttpRequest request = get(local_url(server));
  request.method = daemon::HttpMethod::kPost;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  request.body = "token=abc";
  EXPECT_EQ(run(io, client.send(request)).status, 200u);
  std::string sent = server.last_request();
  EXPECT_EQ(sent.rfind("POST /path HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_NE(sent.find("Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(sent.find("Content-Type: application/x-www-form-urlencoded\r\n"), std::string::npos);
  EXPECT_EQ(sent.substr(sent.size() - 9), "token=abc");
  client.close();
}

TEST(HttpClient, RefusesABodyOverTheCap) {
  LoopbackHttpServer server;
  server.answer("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + std::string(4096, 'x'));
  asio::io_context io;
  HttpClient client;
  HttpRequest request = get(local_url(server));
  request.max_response_bytes = 1024;
  EXPECT_EQ(run(io, client.send(request)).failure, HttpFailure::kTooLarge);
  request.max_response_bytes = 4096;
  EXPECT_EQ(run(io, client.send(request)).body.size(), 4096u);
  client.close();
}

TEST(HttpClient, GivesUpAtTheDeadlineWhenTheServerNeverAnswers) {
  LoopbackHttpServer server;
  server.behave(LoopbackHttpServer::Behaviour::kNeverAnswer);
  asio::io_context io;
  HttpClient client;
  HttpRequest request = get(local_url(server));
  request.timeout = std::chrono::milliseconds(200);
  auto start = Clock::now();
  EXPECT_EQ(run(io, client.send(request)).failure, HttpFailure::kTimeout);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(190));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpClient, ReportsARefusedConnectionAsUnreachable) {
  asio::io_context io;
  HttpClient client;
  auto url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/";
  EXPECT_EQ(run(io, client.send(get(url))).failure, HttpFailure::kUnreachable);
}

TEST(HttpClient, ReplacesAKeptConnectionTheServerClosedMeanwhile) {
  LoopbackHttpServer server;
  server.behave(LoopbackHttpServer::Behaviour::kAnswerThenClose);
  asio::io_context io;
  HttpClient client;
  EXPECT_EQ(run(io, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(client.idle_connections(), 1u);  // the server did not say it would close
  EXPECT_EQ(run(io, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  client.close();
}

TEST(HttpClient, ClosesKeptConnectionsAfterTheIdleTimeout) {
  LoopbackHttpServer server;
  asio::io_context io;
  HttpClient client(HttpClient::Limits{4, 64, std::chrono::milliseconds(50)});
  EXPECT_EQ(run(io, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(client.idle_connections(), 1u);
  run_for(io, std::chrono::milliseconds(200));
  EXPECT_EQ(client.idle_connections(), 0u);
  EXPECT_EQ(run(io, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  client.close();
}

TEST(HttpClient, KeepsNoConnectionWhenAskedNotTo) {
  LoopbackHttpServer server;
  asio::io_context io;
  HttpClient client;
  HttpRequest request = get(local_url(server));
  request.keep_alive = false;
  EXPECT_EQ(run(io, client.send(request)).status, 200u);
  EXPECT_NE(server.last_request().find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpClient, KeepsAtMostTheLimitOfConnectionsPerHost) {
  LoopbackHttpServer server;
  asio::io_context io;
  HttpClient client(HttpClient::Limits{1, 64, std::chrono::seconds(30)});
  // Three requests at once: three connections, one kept.
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    asio::co_spawn(io, client.send(get(local_url(server))),
                   [&](const std::exception_ptr&, const HttpResponse& r) {
                     EXPECT_EQ(r.status, 200u);
                     if (++done == 3) io.stop();
                   });
  }
  io.run();
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(client.idle_connections(), 1u);
  client.close();
}

TEST(HttpClient, ReusesAConnectionOnlyOnTheIoContextItWasMadeOn) {
  LoopbackHttpServer server;
  asio::io_context first, second;
  HttpClient client;
  EXPECT_EQ(run(first, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(run(second, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(run(first, client.send(get(local_url(server)))).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  client.close();
}

TEST(HttpClient, VerifiesTheServerNameOverTlsAndSendsIt) {
  auto certificate = test_support::make_loopback_certificate("localhost");
  LoopbackHttpServer server(certificate.server);
  asio::io_context io;
  HttpClient client;
  auto trusted = certificate.client();
  HttpResponse response =
      run(io, client.send(get(local_url(server, "https", "localhost")), trusted));
  EXPECT_EQ(response.failure, HttpFailure::kNone);
  EXPECT_EQ(response.body, "hello");
  EXPECT_EQ(server.server_name(), "localhost");
  // The certificate does not name 127.0.0.1.
  EXPECT_EQ(run(io, client.send(get(local_url(server, "https")), trusted)).failure,
            HttpFailure::kTlsFailed);
  // Nor is it trusted by a context that does not know it.
  auto stranger = test_support::make_loopback_certificate("localhost").client();
  EXPECT_EQ(run(io, client.send(get(local_url(server, "https", "localhost")), stranger)).failure,
            HttpFailure::kTlsFailed);
  // And https needs a TLS context.
  EXPECT_EQ(run(io, client.send(get(local_url(server, "https", "localhost")))).failure,
            HttpFailure::kTlsFailed);
  client.close();
}

TEST(HttpClient, ReusesATlsConnectionOnlyWithTheTlsContextItWasMadeWith) {
  auto certificate = test_support::make_loopback_certificate("localhost");
  LoopbackHttpServer server(certificate.server);
  asio::io_context io;
  HttpClient client;
  auto first = certificate.client();
  auto second = certificate.client();
  auto url = local_url(server, "https", "localhost");
  EXPECT_EQ(run(io, client.send(get(url), first)).status, 200u);
  EXPECT_EQ(run(io, client.send(get(url), second)).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(run(io, client.send(get(url), first)).status, 200u);
  EXPECT_EQ(run(io, client.send(get(url), second)).status, 200u);
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(client.idle_connections(), 2u);
  client.close();
}

TEST(HttpClient, ProbesWhetherSomethingAcceptsConnections) {
  LoopbackHttpServer server;
  asio::io_context io;
  EXPECT_EQ(run(io, daemon::probe_connect("127.0.0.1", std::to_string(server.port()),
                                          std::chrono::seconds(1))),
            HttpFailure::kNone);
  EXPECT_EQ(run(io, daemon::probe_connect("127.0.0.1", std::to_string(closed_port()),
                                          std::chrono::seconds(1))),
            HttpFailure::kUnreachable);
  EXPECT_EQ(daemon::describe(HttpFailure::kUnreachable), "unreachable");
}
