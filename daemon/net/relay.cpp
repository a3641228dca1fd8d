#include "daemon/net/relay.hpp"

#include <memory>

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
constexpr size_t kRelayBufferBytes = 16384;

}  // namespace

asio::awaitable<RelayEnd> relay_client_to_backend(ClientStream& client, BackendLink& backend,
                                                  std::string leftover,
                                                  DeadlineWatch::Clock::duration idle_timeout,
                                                  DeadlineWatch::Clock::duration write_timeout) {
  if (!leftover.empty()) {
    error_code ec = co_await backend.write(leftover, write_timeout);
    if (ec) co_return RelayEnd{ec, "backend"};
    leftover = std::string();
  }
  auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
  for (;;) {
    auto [ec, n] =
        co_await client.read_some(asio::buffer(buffer.get(), kRelayBufferBytes), idle_timeout);
    if (ec) co_return RelayEnd{ec, "client"};
    error_code written = co_await backend.write({buffer.get(), n}, write_timeout);
    if (written) co_return RelayEnd{written, "backend"};
  }
}

asio::awaitable<RelayEnd> relay_backend_to_client(BackendLink& backend, ClientStream& client,
                                                  std::string leftover,
                                                  DeadlineWatch::Clock::duration write_timeout,
                                                  protocol::ImapResponseFraming* framing) {
  if (!leftover.empty()) {
    if (framing) framing->feed(leftover);
    error_code ec = co_await client.write(leftover, write_timeout);
    if (ec) co_return RelayEnd{ec, "client"};
    leftover = std::string();
  }
  auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
  for (;;) {
    auto [ec, n] = co_await backend.read_some(asio::buffer(buffer.get(), kRelayBufferBytes));
    if (ec) co_return RelayEnd{ec, "backend"};
    if (framing) framing->feed({buffer.get(), n});
    error_code written = co_await client.write({buffer.get(), n}, write_timeout);
    if (written) co_return RelayEnd{written, "client"};
  }
}

}  // namespace mssgate::daemon
