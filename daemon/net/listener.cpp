#include "daemon/net/listener.hpp"

#include <stdexcept>
#include <string>

namespace mssgate::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

tcp::acceptor open_listener(asio::io_context& io, const config::Endpoint& endpoint,
                            std::string_view name) {
  error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (ec) {
    throw std::runtime_error(std::string(name) + " listener " + endpoint.text() +
                             ": not a numeric address");
  }
  tcp::endpoint where(address, endpoint.port);
  tcp::acceptor acceptor(io);
  acceptor.open(where.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(where, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + endpoint.text() + " (" + std::string(name) +
                             "): " + ec.message());
  }
  return acceptor;
}

Event listening_event(std::string_view name, const tcp::acceptor& acceptor) {
  error_code ec;
  auto bound = acceptor.local_endpoint(ec);
  Event event("listening");
  event.add("listener", name)
      .add("address", config::Endpoint{bound.address().to_string(), bound.port()}.text());
  return event;
}

}  // namespace mssgate::daemon
