#include "daemon/net/client_stream.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Slot = DeadlineWatch::Slot;

// A TLS failure's reason as a small fixed set, for metric labels.
std::string tls_failure_class(const boost::system::error_code& ec) {
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated ||
      ec == asio::error::connection_reset)
    return "closed_by_client";
  if (ec.category() == asio::error::get_ssl_category()) {
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_NO_SHARED_CIPHER) return "no_shared_cipher";
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_WRONG_VERSION_NUMBER ||
        reason == SSL_R_VERSION_TOO_LOW || reason == SSL_R_VERSION_TOO_HIGH)
      return "protocol_version";
    if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) return "not_tls";
  }
  return "other";
}

std::string endpoint_text(const tcp::endpoint& e) {
  auto address = e.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(e.port());
  return address.to_string() + ":" + std::to_string(e.port());
}

}  // namespace

ConnectionEnds socket_ends(const tcp::socket& socket) {
  ConnectionEnds ends;
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (!ec) {
    ends.peer_address = remote.address().to_string();
    ends.peer_port = remote.port();
    ends.peer = endpoint_text(remote);
  }
  auto local = socket.local_endpoint(ec);
  if (!ec) {
    ends.local_address = local.address().to_string();
    ends.local_port = local.port();
  }
  return ends;
}

ClientStream::ClientStream(tcp::socket socket, ConnectionEnds ends, ssl::context& tls,
                           DeadlineWatch& deadlines, metrics::Counter& to_backend,
                           metrics::Counter& to_client)
    : stream_(std::move(socket), tls),
      deadlines_(deadlines),
      to_backend_(to_backend),
      to_client_(to_client),
      ends_(std::move(ends)) {
  boost::system::error_code ec;
  stream_.next_layer().set_option(tcp::no_delay(true), ec);
}

asio::awaitable<std::tuple<ClientStream::error_code, size_t>> ClientStream::read_some(
    asio::mutable_buffer buffer, Clock::duration timeout) {
  deadlines_.arm(Slot::kClientRead, timeout);
  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  std::tuple<error_code, size_t> result;
  if (tls_active_) {
    result = co_await stream_.async_read_some(buffer, kTuple);
  } else {
    result = co_await stream_.next_layer().async_read_some(buffer, kTuple);
  }
  deadlines_.disarm(Slot::kClientRead);
  if (!std::get<0>(result)) {
    bytes_in_ += std::get<1>(result);
    to_backend_.inc(std::get<1>(result));
  }
  co_return result;
}

asio::awaitable<ClientStream::error_code> ClientStream::write(std::string_view data,
                                                              Clock::duration timeout) {
  deadlines_.arm(Slot::kClientWrite, timeout);
  std::tuple<error_code, size_t> result;
  if (tls_active_) {
    result = co_await asio::async_write(stream_, asio::buffer(data), kTuple);
  } else {
    result = co_await asio::async_write(stream_.next_layer(), asio::buffer(data), kTuple);
  }
  deadlines_.disarm(Slot::kClientWrite);
  bytes_out_ += std::get<1>(result);
  to_client_.inc(std::get<1>(result));
  co_return std::get<0>(result);
}

asio::awaitable<TlsOutcome> ClientStream::handshake(Clock::duration timeout) {
  deadlines_.arm(Slot::kClientRead, timeout);
  auto [ec] = co_await stream_.async_handshake(ssl::stream_base::server, kTuple);
  deadlines_.disarm(Slot::kClientRead);
  SSL* ssl = stream_.native_handle();
  long verify = SSL_get_verify_result(ssl);
  TlsOutcome outcome;
  if (ec) {
    outcome.timed_out = timed_out_;
    if (timed_out_) {
      outcome.failure_class = "timeout";
    } else if (verify != X509_V_OK) {
      outcome.failure_class = "client_certificate";
      outcome.certificate_error = X509_verify_cert_error_string(verify);
    } else {
      outcome.failure_class = tls_failure_class(ec);
      outcome.failure = ec.message();
    }
    co_return outcome;
  }
  tls_active_ = true;
  outcome.ok = true;
  outcome.version = SSL_get_version(ssl);
  outcome.cipher = SSL_get_cipher_name(ssl);
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer && verify == X509_V_OK) outcome.certificate = identify_certificate(peer);
  co_return outcome;
}

asio::awaitable<void> ClientStream::shutdown_tls() {
  deadlines_.arm(Slot::kClientWrite, std::chrono::seconds(1));
  co_await stream_.async_shutdown(kTuple);
  deadlines_.disarm(Slot::kClientWrite);
}

void ClientStream::expire() {
  timed_out_ = true;
  close();
}

void ClientStream::cancel() {
  error_code ignored;
  stream_.next_layer().cancel(ignored);
}

void ClientStream::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  stream_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.next_layer().close(ignored);
}

}  // namespace mssgate::daemon
