#include "daemon/net/resolve.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

namespace mssgate::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

asio::awaitable<std::tuple<error_code, tcp::resolver::results_type>> resolve_before(
    std::string host, std::string port, std::chrono::steady_clock::time_point deadline) {
  auto executor = co_await asio::this_coro::executor;
  // The resolver is shared with the timer's handler, which may run after this frame moved on.
  auto resolver = std::make_shared<tcp::resolver>(executor);
  asio::steady_timer timer(executor, deadline);
  timer.async_wait([resolver](const error_code& ec) {
    if (!ec) resolver->cancel();
  });
  auto result = co_await resolver->async_resolve(host, port, asio::as_tuple(asio::use_awaitable));
  timer.cancel();
  co_return result;
}

}  // namespace mssgate::daemon
