#include "daemon/net/backend_link.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxLineBytes = 65536;
using Slot = DeadlineWatch::Slot;

}  // namespace

BackendLink::BackendLink(const asio::any_io_executor& executor, DeadlineWatch& deadlines)
    : socket_(executor), deadlines_(deadlines), lines_(kMaxLineBytes) {}

asio::awaitable<BackendLink::error_code> BackendLink::connect(const config::Endpoint& endpoint,
                                                              Clock::duration timeout) {
  error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (ec) co_return ec;
  socket_ = tcp::socket(socket_.get_executor());
  timed_out_ = false;
  deadlines_.arm(Slot::kBackendRead, timeout);
  std::tie(ec) = co_await socket_.async_connect(tcp::endpoint(address, endpoint.port), kTuple);
  deadlines_.disarm(Slot::kBackendRead);
  if (!ec && !socket_.is_open()) ec = asio::error::operation_aborted;
  if (ec) co_return ec;
  error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  lines_.reset();
  unread_.clear();
  co_return ec;
}

asio::awaitable<BackendLink::error_code> BackendLink::write(std::string_view data,
                                                            Clock::duration timeout) {
  deadlines_.arm(Slot::kBackendWrite, timeout);
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(data), kTuple);
  deadlines_.disarm(Slot::kBackendWrite);
  co_return ec;
}

asio::awaitable<std::optional<std::string>> BackendLink::read_line(Clock::duration timeout) {
  auto line = co_await read_line_before(Clock::now() + timeout);
  co_return line;
}

// One deadline for the whole line, not one per read: each read is armed with what is left.
asio::awaitable<std::optional<std::string>> BackendLink::read_line_before(
    Clock::time_point deadline) {
  std::array<char, 4096> buffer;
  for (;;) {
    if (!unread_.empty()) {
      auto result = lines_.feed(unread_);
      unread_.erase(0, result.consumed);
      if (result.status == protocol::LineSplitter::Status::kLine) co_return lines_.line();
      if (result.status == protocol::LineSplitter::Status::kTooLong) co_return std::nullopt;
      continue;
    }
    deadlines_.arm_until(Slot::kBackendRead, deadline);
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer), kTuple);
    deadlines_.disarm(Slot::kBackendRead);
    if (ec) co_return std::nullopt;
    unread_.assign(buffer.data(), n);
  }
}

asio::awaitable<std::optional<protocol::SmtpReply>> BackendLink::read_reply(
    Clock::duration timeout, std::vector<std::string>* raw_lines) {
  protocol::SmtpReplyParser parser;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto line = co_await read_line_before(deadline);
    if (!line) co_return std::nullopt;
    if (raw_lines) raw_lines->push_back(*line);
    line->append("\r\n");
    auto result = parser.feed(*line);
    if (result.status == protocol::SmtpReplyParser::Status::kReply) co_return parser.reply();
    if (result.status == protocol::SmtpReplyParser::Status::kError) co_return std::nullopt;
  }
}

bool BackendLink::readable_now() const {
  boost::system::error_code ec;
  return socket_.is_open() && socket_.available(ec) > 0 && !ec;
}

asio::awaitable<std::tuple<BackendLink::error_code, size_t>> BackendLink::read_some(
    asio::mutable_buffer buffer) {
  auto result = co_await socket_.async_read_some(buffer, kTuple);
  co_return result;
}

void BackendLink::expire() {
  timed_out_ = true;
  close();
}

void BackendLink::close() {
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace mssgate::daemon
