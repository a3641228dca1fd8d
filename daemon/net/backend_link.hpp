#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "daemon/net/deadline_watch.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::daemon {

// The connection from a session to its backend (Dovecot or Postfix): connect, write, read a
// line or an SMTP/LMTP reply, each under a deadline of the session's DeadlineWatch. A passed
// deadline closes it, and the failing operation is then known as a timeout.
class BackendLink {
 public:
  using error_code = boost::system::error_code;
  using Clock = DeadlineWatch::Clock;

  BackendLink(const boost::asio::any_io_executor& executor, DeadlineWatch& deadlines);

  boost::asio::awaitable<error_code> connect(const config::Endpoint& endpoint,
                                             Clock::duration timeout);
  boost::asio::awaitable<error_code> write(std::string_view data, Clock::duration timeout);
  // One line, without its CRLF; nothing when the connection failed, the line is too long, or it
  // was not whole within `timeout` (however its bytes came: a backend sending one byte at a time
  // has the same time as one that sends nothing).
  boost::asio::awaitable<std::optional<std::string>> read_line(Clock::duration timeout);
  // One SMTP or LMTP reply, all its lines within `timeout`; its raw lines appended to
  // `raw_lines` when given.
  boost::asio::awaitable<std::optional<protocol::SmtpReply>> read_reply(
      Clock::duration timeout, std::vector<std::string>* raw_lines = nullptr);
  // Calls `ready(error_code)` once the backend has bytes to read, for a quiet relay (one
  // operation, no coroutine; no deadline: the client's idle one governs).
  template <typename Ready>
  void when_readable(Ready ready) {
    socket_.async_wait(boost::asio::ip::tcp::socket::wait_read, std::move(ready));
  }
  // Whether the backend has bytes waiting now.
  bool readable_now() const;
  // Bytes as they come, for the relay (no deadline: the client's idle one governs).
  boost::asio::awaitable<std::tuple<error_code, size_t>> read_some(
      boost::asio::mutable_buffer buffer);

  // Bytes read from the backend and not consumed by a line: the client's, once relaying (the
  // link reads no more lines: the memory of the last one is given back).
  std::string take_unread() {
    lines_.release();
    return std::move(unread_);
  }
  void expire();
  void close();
  bool is_open() const { return socket_.is_open(); }
  // Whether the last failure was a passed deadline; reading it clears it.
  bool take_timed_out() { return std::exchange(timed_out_, false); }
  bool timed_out() const { return timed_out_; }

 private:
  boost::asio::awaitable<std::optional<std::string>> read_line_before(Clock::time_point deadline);

  boost::asio::ip::tcp::socket socket_;
  DeadlineWatch& deadlines_;
  protocol::LineSplitter lines_;
  std::string unread_;
  bool timed_out_ = false;
};

}  // namespace mssgate::daemon
