#include "daemon/net/backend_link.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/net/deadline_watch.hpp"

using namespace mssgate;
using daemon::BackendLink;
using daemon::DeadlineWatch;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// A backend on loopback that sends each piece of `pieces` after `pace`: a slow or trickling peer.
asio::awaitable<void> send_slowly(tcp::acceptor& acceptor, std::vector<std::string> pieces,
                                  Clock::duration pace) {
  auto [ec, peer] = co_await acceptor.async_accept(kTuple);
  if (ec) co_return;
  asio::steady_timer timer(acceptor.get_executor());
  for (const auto& piece : pieces) {
    timer.expires_after(pace);
    co_await timer.async_wait(kTuple);
    auto [wec, n] = co_await asio::async_write(peer, asio::buffer(piece), kTuple);
    if (wec) co_return;
  }
  timer.expires_after(10s);  // then silent, the connection kept open
  co_await timer.async_wait(kTuple);
}

// What one read of the link gave, and how long it took.
struct Outcome {
  bool got = false;
  std::string text;  // the line, or the reply's code and text
  bool timed_out = false;
  Clock::duration took{};
};

// Connects a BackendLink (under a DeadlineWatch that expires it, as sessions do) to a peer that
// sends `pieces` one every `pace`, and reads one line (or one reply) with `timeout`.
Outcome read_from_slow_peer(std::vector<std::string> pieces, Clock::duration pace,
                            Clock::duration timeout, bool reply) {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  DeadlineWatch deadlines(io.get_executor());
  BackendLink link(io.get_executor(), deadlines);
  asio::co_spawn(io, send_slowly(acceptor, std::move(pieces), pace), asio::detached);
  deadlines.start(50ms, [&link](DeadlineWatch::Slot) {
    link.expire();
    return true;
  });
  Outcome outcome;
  auto read = [&]() -> asio::awaitable<void> {
    // (A named endpoint: GCC 12 destroys a brace-initialised temporary of a co_await twice.)
    config::Endpoint peer{"127.0.0.1", acceptor.local_endpoint().port()};
    auto ec = co_await link.connect(peer, 1s);
    if (ec) co_return;
    auto start = Clock::now();
    if (reply) {
      auto answer = co_await link.read_reply(timeout);
      if (answer) outcome.text = std::to_string(answer->code) + " " + answer->lines.back();
      outcome.got = answer.has_value();
    } else {
      auto line = co_await link.read_line(timeout);
      if (line) outcome.text = *line;
      outcome.got = line.has_value();
    }
    outcome.took = Clock::now() - start;
    outcome.timed_out = link.take_timed_out();
  };
  std::exception_ptr failure;
  asio::co_spawn(io, read(), [&](std::exception_ptr e) {
    failure = std::move(e);
    deadlines.stop();
    io.stop();
  });
  io.run_for(10s);
  if (failure) std::rethrow_exception(failure);
  return outcome;
}

std::vector<std::string> bytes_of(const std::string& text) {
  std::vector<std::string> pieces;
  for (char c : text)
    pieces.emplace_back(1, c);
  return pieces;
}

}  // namespace

TEST(BackendLink, ALineThatComesWithinItsTimeoutIsRead) {
  auto outcome = read_from_slow_peer({"220 ready\r\n"}, 10ms, 1s, false);
  EXPECT_TRUE(outcome.got);
  EXPECT_EQ(outcome.text, "220 ready");
  EXPECT_FALSE(outcome.timed_out);
}

TEST(BackendLink, ALineTrickledPastItsTimeoutIsATimeout) {
  // 40 bytes, one every 20 ms: each read comes well within 300 ms, the line never does.
  auto outcome = read_from_slow_peer(bytes_of("* OK [CAPABILITY IMAP4rev1] ready....\r\n"), 20ms,
                                     300ms, false);
  EXPECT_FALSE(outcome.got) << outcome.text;
  EXPECT_TRUE(outcome.timed_out);
  EXPECT_LT(outcome.took, 700ms);
}

TEST(BackendLink, AReplyWhoseLinesComeOneByOnePastItsTimeoutIsATimeout) {
  // Each line of the reply within 300 ms, the whole reply in about 1.2 s.
  std::vector<std::string> lines(11, "250-EXTENSION\r\n");
  lines.emplace_back("250 DSN\r\n");
  auto outcome = read_from_slow_peer(lines, 100ms, 300ms, true);
  EXPECT_FALSE(outcome.got) << outcome.text;
  EXPECT_TRUE(outcome.timed_out);
  EXPECT_LT(outcome.took, 700ms);
  // The same reply, within a timeout long enough for all of it.
  outcome = read_from_slow_peer(lines, 20ms, 2s, true);
  EXPECT_TRUE(outcome.got);
  EXPECT_EQ(outcome.text, "250 DSN");
}
