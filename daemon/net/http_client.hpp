#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/http_url.hpp"

namespace boost::asio::ssl {
class context;
}

namespace mssgate::daemon {

// Why an exchange gave no response; each caller maps these to the words of its own log.
enum class HttpFailure {
  kNone,
  kUnresolved,   // the host name did not resolve before the deadline
  kUnreachable,  // the connection was refused, reset or cut while the request was written
  kTimeout,      // the deadline passed while connecting, writing or reading
  kTlsFailed,    // the TLS handshake failed: certificate, host name, protocol, or no TLS context
  kTooLarge,     // the response body is over the request's cap
  kBadResponse,  // not an HTTP/1.x response, or cut short
};
// "unresolved", "unreachable", "timeout", "tls_failed", "too_large", "bad_response" ("ok").
std::string_view describe(HttpFailure failure);

enum class HttpMethod { kGet, kPost };

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  protocol::HttpUrl url;
  // Sent as given; the client sets Host, User-Agent, Connection and Content-Length itself.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  size_t max_response_bytes = 1 << 20;
  // For everything: name resolution, connection, TLS handshake, request and whole response.
  std::chrono::steady_clock::duration timeout = std::chrono::seconds(30);
  // False: "Connection: close", and the connection is never kept.
  bool keep_alive = true;
};

struct HttpResponse {
  HttpFailure failure = HttpFailure::kNone;
  unsigned status = 0;  // when there is no failure
  std::string body;
};

// One HTTP/1.1 client for the whole process: http:// and https:// (SNI and host-name
// verification against the TLS context the caller gives), a cap on every response body, one
// deadline per request, and kept connections. A kept connection is reused only by a request on
// the io context and with the TLS context it was made with, to the same host and port; at most
// `idle_per_host` of them are kept per such key and `idle_total` in all, each closed after
// `idle_timeout` unused. A kept connection the server closed meanwhile is replaced once within
// the request's deadline. Beast stays inside http_client.cpp.
class HttpClient {
 public:
  struct Limits {
    size_t idle_per_host = 4;
    size_t idle_total = 64;
    std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(30);
  };

  HttpClient();
  explicit HttpClient(Limits limits);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request` on the calling coroutine's executor. An https:// URL needs `tls`, which the
  // connection keeps alive while it lives. Never throws for what the network or the server does.
  boost::asio::awaitable<HttpResponse> send(HttpRequest request,
                                            std::shared_ptr<boost::asio::ssl::context> tls = {});

  // Closes the kept connections and keeps no more. Call from the io context of the
  // connections, or once the io contexts no longer run and before they are destroyed.
  void close();

  // How many connections are kept now.
  size_t idle_connections() const;

  class Pool;

 private:
  std::shared_ptr<Pool> pool_;
};

// Whether something accepts TCP connections at host:port before `timeout`: kNone, kUnresolved,
// kUnreachable or kTimeout. The connection is closed at once (readiness probes).
boost::asio::awaitable<HttpFailure> probe_connect(std::string host, std::string port,
                                                  std::chrono::steady_clock::duration timeout);

}  // namespace mssgate::daemon
