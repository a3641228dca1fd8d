#include "daemon/net/relay.hpp"

#include <memory>

#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
// Four TLS records' worth: a transfer reads its backend in fewer calls.
constexpr size_t kRelayBufferBytes = 65536;

// A direction's buffer is held for a burst, while its side has bytes to read: an idle session
// holds none, a transfer keeps its own.
// (Counted in mssgate_relay_buffers.)
class RelayBuffer {
 public:
  RelayBuffer() = default;
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;
  ~RelayBuffer() { reset(); }

  explicit operator bool() const { return bytes_ != nullptr; }
  char* get() const { return bytes_.get(); }
  void take() {
    bytes_ = std::make_unique_for_overwrite<char[]>(kRelayBufferBytes);
    held().add(1);
  }
  void reset() {
    if (!bytes_) return;
    bytes_.reset();
    held().add(-1);
  }

 private:
  static metrics::Gauge& held() {
    static metrics::Gauge& gauge = metrics::gateway().relay_buffers.with();
    return gauge;
  }
  std::unique_ptr<char[]> bytes_;
};

}  // namespace

asio::awaitable<std::optional<RelayEnd>> relay_client_burst(
    ClientStream& client, BackendLink& backend, std::string leftover,
    DeadlineWatch::Clock::duration idle_timeout, DeadlineWatch::Clock::duration write_timeout) {
  if (!leftover.empty()) {
    error_code ec = co_await backend.write(leftover, write_timeout);
    if (ec) co_return RelayEnd{ec, "backend"};
    if (!client.readable_now()) co_return std::nullopt;
    leftover = std::string();
  }
  RelayBuffer buffer;
  buffer.take();
  for (;;) {
    auto [ec, n] =
        co_await client.read_some(asio::buffer(buffer.get(), kRelayBufferBytes), idle_timeout);
    if (ec) co_return RelayEnd{ec, "client"};
    error_code written = co_await backend.write({buffer.get(), n}, write_timeout);
    if (written) co_return RelayEnd{written, "backend"};
    if (n < kRelayBufferBytes && !client.readable_now()) co_return std::nullopt;
  }
}

asio::awaitable<std::optional<RelayEnd>> relay_backend_burst(
    BackendLink& backend, ClientStream& client, std::string leftover,
    DeadlineWatch::Clock::duration write_timeout, protocol::ImapResponseFraming* framing) {
  if (!leftover.empty()) {
    if (framing) framing->feed(leftover);
    error_code ec = co_await client.write(leftover, write_timeout);
    if (ec) co_return RelayEnd{ec, "client"};
    if (!backend.readable_now()) co_return std::nullopt;
    leftover = std::string();
  }
  RelayBuffer buffer;
  buffer.take();
  for (;;) {
    auto [ec, n] = co_await backend.read_some(asio::buffer(buffer.get(), kRelayBufferBytes));
    if (ec) co_return RelayEnd{ec, "backend"};
    if (framing) framing->feed({buffer.get(), n});
    error_code written = co_await client.write({buffer.get(), n}, write_timeout);
    if (written) co_return RelayEnd{written, "client"};
    if (n < kRelayBufferBytes && !backend.readable_now()) co_return std::nullopt;
  }
}

}  // namespace mssgate::daemon
