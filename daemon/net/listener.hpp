#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string_view>

#include "config/config.hpp"
#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {

// A listening socket on `endpoint` (a numeric address; SO_REUSEADDR), for the listener called
// `name`. Throws std::runtime_error with a sentence for the operator when it cannot listen.
boost::asio::ip::tcp::acceptor open_listener(boost::asio::io_context& io,
                                             const config::Endpoint& endpoint,
                                             std::string_view name);

// The `listening` event of a bound listener, with its address; the caller may add fields.
Event listening_event(std::string_view name, const boost::asio::ip::tcp::acceptor& acceptor);

}  // namespace mssgate::daemon
