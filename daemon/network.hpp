#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <tuple>

#include "config/config.hpp"
#include "daemon/event_log.hpp"

namespace mssgate::daemon {

// Listening sockets and name resolution, shared by the listeners, the admin endpoint, the CRL
// downloads and the Pro Santé Connect client.

// A listening socket on `endpoint` (a numeric address; SO_REUSEADDR), for the listener called
// `name`. Throws std::runtime_error with a sentence for the operator when it cannot listen.
boost::asio::ip::tcp::acceptor open_listener(boost::asio::io_context& io,
                                             const config::Endpoint& endpoint,
                                             std::string_view name);

// The `listening` event of a bound listener, with its address; the caller may add fields.
Event listening_event(std::string_view name, const boost::asio::ip::tcp::acceptor& acceptor);

// Name resolution on the calling coroutine's executor, given up (operation_aborted) at
// `deadline`: the system resolver has no deadline of its own.
boost::asio::awaitable<
    std::tuple<boost::system::error_code, boost::asio::ip::tcp::resolver::results_type>>
resolve_before(std::string host, std::string port, std::chrono::steady_clock::time_point deadline);

}  // namespace mssgate::daemon
