#include "daemon/net/http_client.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <compare>
#include <map>
#include <mutex>
#include <variant>

#include "daemon/net/resolve.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using RequestMessage = http::request<http::string_body>;

// One connection to a server, plain or TLS.
struct Connection {
  explicit Connection(TcpStream tcp) : stream(std::in_place_type<TcpStream>, std::move(tcp)) {}
  Connection(TcpStream tcp, std::shared_ptr<ssl::context> context)
      : tls_context(std::move(context)),
        stream(std::in_place_type<TlsStream>, std::move(tcp), *tls_context) {}

  TcpStream& tcp() {
    if (auto* tls = std::get_if<TlsStream>(&stream)) return beast::get_lowest_layer(*tls);
    return std::get<TcpStream>(stream);
  }

  // Declared before the stream, so that it goes after it.
  std::shared_ptr<ssl::context> tls_context;
  std::variant<TcpStream, TlsStream> stream;
  beast::flat_buffer buffer;  // bytes read past one response stay for the next
};

// Which requests may reuse a kept connection: the same io context, the same TLS context (none
// for plain HTTP), the same host and port. A kept connection holds its TLS context, so the
// address cannot name another context while the key is in the pool.
struct PoolKey {
  const void* io_context = nullptr;
  const void* tls_context = nullptr;
  std::string host;
  std::string port;
  // A false positive of clang-tidy 14, which sees a literal 0 in the defaulted comparison.
  auto operator<=>(const PoolKey&) const = default;  // NOLINT(modernize-use-nullptr)
};

struct IdleConnection {
  std::unique_ptr<Connection> connection;
  std::unique_ptr<asio::steady_timer> expiry;
  uint64_t id = 0;
  Clock::time_point expires_at;
};

struct Exchange {
  HttpFailure failure = HttpFailure::kNone;
  bool keep_alive = false;
  unsigned status = 0;
  std::string body;
};

Exchange exchange_failed(HttpFailure failure) {
  Exchange exchange;
  exchange.failure = failure;
  return exchange;
}

HttpResponse response_failed(HttpFailure failure) {
  HttpResponse response;
  response.failure = failure;
  return response;
}

HttpFailure failure_of(const error_code& ec, HttpFailure otherwise) {
  if (ec == beast::error::timeout) return HttpFailure::kTimeout;
  return otherwise;
}

bool is_address(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// "host[:port]", IPv6 addresses in brackets, the port left out when it is the scheme's own.
std::string host_header(const protocol::HttpUrl& url) {
  std::string host = url.host.find(':') == std::string::npos ? url.host : "[" + url.host + "]";
  if (url.port != (url.tls ? "443" : "80")) host += ":" + url.port;
  return host;
}

RequestMessage request_message(const HttpRequest& request) {
  auto verb = request.method == HttpMethod::kPost ? http::verb::post : http::verb::get;
  RequestMessage message{verb, request.url.target, 11};
  message.set(http::field::host, host_header(request.url));
  message.set(http::field::user_agent, "mssgate");
  for (const auto& [name, value] : request.headers)
    message.set(name, value);
  message.keep_alive(request.keep_alive);
  message.body() = request.body;
  message.prepare_payload();
  return message;
}

template <class Stream>
asio::awaitable<Exchange> exchange_on(Stream& stream, beast::flat_buffer& buffer,
                                      const RequestMessage& message, size_t max_body_bytes) {
  auto [wec, written] = co_await http::async_write(stream, message, kTuple);
  if (wec) co_return exchange_failed(failure_of(wec, HttpFailure::kUnreachable));
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body_bytes);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, kTuple);
  if (rec == http::error::body_limit) co_return exchange_failed(HttpFailure::kTooLarge);
  if (rec) co_return exchange_failed(failure_of(rec, HttpFailure::kBadResponse));
  auto& response = parser.get();
  co_return Exchange{HttpFailure::kNone, response.keep_alive(), response.result_int(),
                     std::move(response.body())};
}

// One request and its response on `connection`, before `deadline`.
asio::awaitable<Exchange> exchange(Connection& connection, const RequestMessage& message,
                                   size_t max_body_bytes, Clock::time_point deadline) {
  connection.tcp().expires_at(deadline);
  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  if (auto* tls = std::get_if<TlsStream>(&connection.stream)) {
    Exchange result = co_await exchange_on(*tls, connection.buffer, message, max_body_bytes);
    co_return result;
  }
  Exchange result = co_await exchange_on(std::get<TcpStream>(connection.stream), connection.buffer,
                                         message, max_body_bytes);
  co_return result;
}

asio::awaitable<std::pair<HttpFailure, TcpStream>> connect_tcp(const std::string& host,
                                                               const std::string& port,
                                                               Clock::time_point deadline) {
  auto executor = co_await asio::this_coro::executor;
  TcpStream stream(executor);
  auto [rec, endpoints] = co_await resolve_before(host, port, deadline);
  if (rec) co_return std::pair{HttpFailure::kUnresolved, std::move(stream)};
  stream.expires_at(deadline);
  auto [cec, endpoint] = co_await stream.async_connect(endpoints, kTuple);
  if (cec) co_return std::pair{failure_of(cec, HttpFailure::kUnreachable), std::move(stream)};
  error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return std::pair{HttpFailure::kNone, std::move(stream)};
}

using Opened = std::pair<HttpFailure, std::unique_ptr<Connection>>;

// A new connection to the URL's server, its TLS handshake done for https.
asio::awaitable<Opened> open_connection(const protocol::HttpUrl& url,
                                        std::shared_ptr<ssl::context> tls,
                                        Clock::time_point deadline) {
  auto [failure, tcp_stream] = co_await connect_tcp(url.host, url.port, deadline);
  if (failure != HttpFailure::kNone) co_return Opened{failure, nullptr};
  if (!url.tls) {
    co_return Opened{HttpFailure::kNone, std::make_unique<Connection>(std::move(tcp_stream))};
  }
  auto connection = std::make_unique<Connection>(std::move(tcp_stream), std::move(tls));
  auto& stream = std::get<TlsStream>(connection->stream);
  // SNI names a host, never an address (RFC 6066 §3); the certificate is checked either way.
  if (!is_address(url.host) && !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
    co_return Opened{HttpFailure::kTlsFailed, nullptr};
  stream.set_verify_callback(ssl::host_name_verification(url.host));
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, kTuple);
  // A handshake cut by the deadline counts as a failed one (the CRL downloads always said so).
  if (hec) co_return Opened{HttpFailure::kTlsFailed, nullptr};
  co_return Opened{HttpFailure::kNone, std::move(connection)};
}

// A failure that a kept connection closed by the server meanwhile would give.
bool stale_connection_failure(HttpFailure failure) {
  return failure == HttpFailure::kUnreachable || failure == HttpFailure::kBadResponse;
}

}  // namespace

// The kept connections. Each is touched only on its own io context (the key says which), but
// for close(); the map itself is shared by every io context, under the mutex.
class HttpClient::Pool : public std::enable_shared_from_this<HttpClient::Pool> {
 public:
  explicit Pool(Limits limits) : limits_(limits) {}

  // A kept connection for `key`, or null; called on the key's io context.
  std::unique_ptr<Connection> take(const PoolKey& key) {
    std::vector<IdleConnection> expired;
    IdleConnection found;
    {
      std::lock_guard lock(mutex_);
      auto it = idle_.find(key);
      if (it == idle_.end()) return nullptr;
      auto now = Clock::now();
      while (!it->second.empty() && !found.connection) {
        IdleConnection last = std::move(it->second.back());
        it->second.pop_back();
        --total_;
        if (last.expires_at > now) {
          found = std::move(last);
        } else {
          expired.push_back(std::move(last));
        }
      }
      if (it->second.empty()) idle_.erase(it);
    }
    if (found.expiry) found.expiry->cancel();
    return std::move(found.connection);
  }

  // Keeps `connection` for `key` when there is room; called on the key's io context.
  void give_back(const PoolKey& key, std::unique_ptr<Connection> connection) {
    connection->tcp().expires_never();
    IdleConnection entry;
    entry.expiry = std::make_unique<asio::steady_timer>(connection->tcp().get_executor());
    entry.expires_at = Clock::now() + limits_.idle_timeout;
    entry.connection = std::move(connection);
    std::lock_guard lock(mutex_);
    if (closed_ || total_ >= limits_.idle_total) return;  // the entry goes with this frame
    auto& list = idle_[key];
    if (list.size() >= limits_.idle_per_host) return;
    entry.id = ++last_id_;
    entry.expiry->expires_at(entry.expires_at);
    entry.expiry->async_wait([pool = weak_from_this(), key, id = entry.id](const error_code& ec) {
      if (ec) return;
      if (auto alive = pool.lock()) alive->expire(key, id);
    });
    list.push_back(std::move(entry));
    ++total_;
  }

  void close() {
    std::map<PoolKey, std::vector<IdleConnection>> closing;
    std::lock_guard lock(mutex_);
    closed_ = true;
    closing.swap(idle_);
    total_ = 0;
  }

  size_t size() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

 private:
  // The idle timeout of connection `id` passed; called on the key's io context.
  void expire(const PoolKey& key, uint64_t id) {
    IdleConnection expired;
    std::lock_guard lock(mutex_);
    auto it = idle_.find(key);
    if (it == idle_.end()) return;
    auto& list = it->second;
    auto entry = std::find_if(list.begin(), list.end(), [id](auto& e) { return e.id == id; });
    if (entry == list.end()) return;
    expired = std::move(*entry);
    list.erase(entry);
    --total_;
    if (list.empty()) idle_.erase(it);
  }

  const Limits limits_;
  mutable std::mutex mutex_;
  std::map<PoolKey, std::vector<IdleConnection>> idle_;
  size_t total_ = 0;
  uint64_t last_id_ = 0;
  bool closed_ = false;
};

namespace {

// The request's coroutine holds the pool, which may so outlive the client that made it.
asio::awaitable<HttpResponse> send_with(std::shared_ptr<HttpClient::Pool> pool, HttpRequest request,
                                        std::shared_ptr<ssl::context> tls) {
  auto deadline = Clock::now() + request.timeout;
  if (request.url.host.empty()) co_return response_failed(HttpFailure::kUnresolved);
  if (request.url.tls && !tls) co_return response_failed(HttpFailure::kTlsFailed);
  auto executor = co_await asio::this_coro::executor;
  PoolKey key{&asio::query(executor, asio::execution::context),
              request.url.tls ? tls.get() : nullptr, request.url.host, request.url.port};
  RequestMessage message = request_message(request);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Connection> connection;
    if (request.keep_alive) connection = pool->take(key);
    bool reused = connection != nullptr;
    if (!connection) {
      auto [failure, fresh] = co_await open_connection(request.url, tls, deadline);
      if (failure != HttpFailure::kNone) co_return response_failed(failure);
      connection = std::move(fresh);
    }
    Exchange result = co_await exchange(*connection, message, request.max_response_bytes, deadline);
    if (result.failure == HttpFailure::kNone) {
      if (request.keep_alive && result.keep_alive) pool->give_back(key, std::move(connection));
      co_return HttpResponse{HttpFailure::kNone, result.status, std::move(result.body)};
    }
    // A kept connection the server closed meanwhile: once more, on a new one.
    if (reused && stale_connection_failure(result.failure) && Clock::now() < deadline) continue;
    co_return response_failed(result.failure);
  }
  co_return response_failed(HttpFailure::kUnreachable);
}

}  // namespace

std::string_view describe(HttpFailure failure) {
  switch (failure) {
    case HttpFailure::kNone:
      return "ok";
    case HttpFailure::kUnresolved:
      return "unresolved";
    case HttpFailure::kUnreachable:
      return "unreachable";
    case HttpFailure::kTimeout:
      return "timeout";
    case HttpFailure::kTlsFailed:
      return "tls_failed";
    case HttpFailure::kTooLarge:
      return "too_large";
    case HttpFailure::kBadResponse:
      return "bad_response";
  }
  return "unknown";
}

HttpClient::HttpClient() : HttpClient(Limits{}) {}
HttpClient::HttpClient(Limits limits) : pool_(std::make_shared<Pool>(limits)) {}
HttpClient::~HttpClient() {
  pool_->close();
}

asio::awaitable<HttpResponse> HttpClient::send(HttpRequest request,
                                               std::shared_ptr<ssl::context> tls) {
  return send_with(pool_, std::move(request), std::move(tls));
}

void HttpClient::close() {
  pool_->close();
}

size_t HttpClient::idle_connections() const {
  return pool_->size();
}

asio::awaitable<HttpFailure> probe_connect(std::string host, std::string port,
                                           Clock::duration timeout) {
  auto [failure, stream] = co_await connect_tcp(host, port, Clock::now() + timeout);
  co_return failure;
}

}  // namespace mssgate::daemon
