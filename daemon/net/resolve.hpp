#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <string>
#include <tuple>

namespace mssgate::daemon {

// Name resolution on the calling coroutine's executor, given up (operation_aborted) at
// `deadline`: the system resolver has no deadline of its own.
boost::asio::awaitable<
    std::tuple<boost::system::error_code, boost::asio::ip::tcp::resolver::results_type>>
resolve_before(std::string host, std::string port, std::chrono::steady_clock::time_point deadline);

}  // namespace mssgate::daemon
