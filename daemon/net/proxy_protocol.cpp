#include "daemon/net/proxy_protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <utility>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string endpoint_text(const std::string& address, uint16_t port) {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

// The socket under a deadline: the timer's handler holds it weakly, so that a deadline passing
// as the read ends touches nothing that is gone.
struct Pending {
  Pending(tcp::socket s, std::chrono::milliseconds timeout)
      : socket(std::move(s)), timer(socket.get_executor(), timeout) {}
  tcp::socket socket;
  asio::steady_timer timer;
  bool expired = false;
};

}  // namespace

ConnectionEnds proxied_ends(const ConnectionEnds& balancer, const protocol::ProxyHeader& header) {
  ConnectionEnds ends = balancer;
  ends.via = balancer.peer;
  if (header.command != protocol::ProxyHeader::Command::kProxy || !header.source) return ends;
  ends.peer_address = protocol::ip_address_text(header.source->address);
  ends.peer_port = header.source->port;
  ends.peer = endpoint_text(ends.peer_address, ends.peer_port);
  if (header.destination) {
    ends.local_address = protocol::ip_address_text(header.destination->address);
    ends.local_port = header.destination->port;
  }
  return ends;
}

asio::awaitable<ProxyHeaderOutcome> read_proxy_header(tcp::socket socket,
                                                      const ConnectionEnds& balancer,
                                                      std::chrono::milliseconds timeout,
                                                      size_t max_header_bytes) {
  auto pending = std::make_shared<Pending>(std::move(socket), timeout);
  pending->timer.async_wait([weak = std::weak_ptr<Pending>(pending)](boost::system::error_code ec) {
    auto held = weak.lock();
    if (ec || !held) return;
    held->expired = true;
    boost::system::error_code ignored;
    held->socket.cancel(ignored);
  });
  protocol::ProxyHeaderReader reader(max_header_bytes);
  std::string failure;
  // Never more than the reader still wants: nothing of the client's is read, and a client that
  // sends anything else is refused at its first byte that cannot start a header.
  char buffer[1024];
  for (;;) {
    size_t chunk = std::min(reader.wanted(), sizeof buffer);
    auto [ec, n] = co_await pending->socket.async_read_some(asio::buffer(buffer, chunk), kTuple);
    if (ec) {
      failure = pending->expired ? "timeout" : "closed";
      break;
    }
    auto result = reader.feed(std::string_view(buffer, n));
    if (result.status == protocol::ProxyHeaderReader::Status::kError) {
      failure = std::string(protocol::describe(reader.error()));
      break;
    }
    if (result.status == protocol::ProxyHeaderReader::Status::kDone) break;
  }
  pending->timer.cancel();
  ProxyHeaderOutcome outcome{std::move(pending->socket), std::nullopt, std::move(failure)};
  if (outcome.failure.empty()) outcome.ends = proxied_ends(balancer, reader.header());
  co_return outcome;
}

asio::awaitable<ProxyHeaderOutcome> accept_proxy_header(tcp::socket socket,
                                                        const config::ProxyProtocolConfig& proxy,
                                                        std::string listener) {
  ConnectionEnds balancer = socket_ends(socket);
  auto source = protocol::parse_ip_address(balancer.peer_address);
  if (!source || !proxy.trusted(*source)) {
    metrics::gateway().connections_refused.with({listener, "proxy_source_not_trusted"}).inc();
    Event("connection_refused")
        .add("listener", listener)
        .add("peer", balancer.peer)
        .add("reason", "proxy_source_not_trusted")
        .warn();
    co_return ProxyHeaderOutcome{std::move(socket), std::nullopt, "proxy_source_not_trusted"};
  }
  auto outcome = co_await read_proxy_header(std::move(socket), balancer, proxy.header_timeout,
                                            proxy.max_header_bytes);
  if (!outcome.ends) {
    metrics::gateway().connections_refused.with({listener, "proxy_header"}).inc();
    Event("proxy_header_refused")
        .add("listener", listener)
        .add("peer", balancer.peer)
        .add("reason", outcome.failure)
        .warn();
  }
  co_return outcome;
}

}  // namespace mssgate::daemon
