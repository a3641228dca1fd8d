#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <string>

#include "config/config.hpp"
#include "daemon/net/client_stream.hpp"
#include "protocol/proxy_header.hpp"

namespace mssgate::daemon {

// The ends of a connection a balancer relayed with `header` (from the balancer's connection,
// `balancer`): the client and the address it connected to when the header names them (PROXY
// over TCP); the balancer's own connection otherwise (LOCAL: a health check; UNSPEC). `via` is
// the balancer, "address:port", whenever a header was read.
ConnectionEnds proxied_ends(const ConnectionEnds& balancer, const protocol::ProxyHeader& header);

// What reading a PROXY protocol v2 header did: the connection's ends as the header gives them,
// or why there are none ("timeout", "closed", or the header's fault as protocol::describe says).
struct ProxyHeaderOutcome {
  boost::asio::ip::tcp::socket socket;
  std::optional<ConnectionEnds> ends;
  std::string failure;
};

// Reads the header that starts `socket`'s connection, within `timeout` from now, no byte past
// it (what follows is the client's, read by the session); at most `max_header_bytes` after the
// 16 fixed ones.
boost::asio::awaitable<ProxyHeaderOutcome> read_proxy_header(boost::asio::ip::tcp::socket socket,
                                                             const ConnectionEnds& balancer,
                                                             std::chrono::milliseconds timeout,
                                                             size_t max_header_bytes);

// On a listener of proxy_protocol.listeners, what a new connection goes through before its
// session: its source must be one of proxy_protocol.trusted_sources (a client that bypassed the
// balancer, or a balancer not named, is closed before a byte is read: connection_refused,
// reason proxy_source_not_trusted), then its header must come, whole and valid, within
// proxy_protocol.header_timeout (proxy_header_refused, with the reason). Each refusal is logged
// and counted in mssgate_connections_refused_total{listener, reason}; the outcome's ends are
// unset then, and the caller closes the socket.
boost::asio::awaitable<ProxyHeaderOutcome> accept_proxy_header(
    boost::asio::ip::tcp::socket socket, const config::ProxyProtocolConfig& proxy,
    std::string listener);

}  // namespace mssgate::daemon
