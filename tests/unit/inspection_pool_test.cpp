// The inspection pool: messages inspected off the session's thread give the facts the inspector
// gives when fed directly, a session is held while too many of its bytes wait, the per-message
// CPU time is enforced, an abandoned message costs nothing more, and a pool that stops releases
// the sessions still waiting on it.
#include "daemon/services/inspection_pool.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "protocol/base64.hpp"
#include "samples.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr size_t kMemory = size_t{256} << 20;

// A message with `archives` IHE_XDM attachments of one qualified CDA each, base64 in 76-column
// lines.
std::string structured_message(int archives, const std::string& filler = "") {
  std::string zip =
      test_samples::make_zip({{"IHE_XDM/SUBSET01/METADATA.XML", test_samples::kMetadata},
                              {"IHE_XDM/SUBSET01/DOC0001.XML", test_samples::cda("11488-4")},
                              {"IHE_XDM/SUBSET01/FILLER.BIN", filler}});
  std::string encoded = protocol::base64_encode(zip);
  std::string lines;
  for (size_t at = 0; at < encoded.size(); at += 76)
    lines += encoded.substr(at, 76) + "\r\n";
  std::string message =
      "From: a@b.fr\r\nMessage-ID: <pool@test>\r\nSubject: XDM/1.0/DDM\r\nX-MSS-CODECDA: "
      "11488-4\r\n"
      "X-MSS-INS: O\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n";
  for (int i = 0; i < archives; ++i) {
    message +=
        "--b\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" +
        lines;
  }
  return message + "--b--\r\n";
}

// Bytes that do not compress.
std::string noise(size_t size) {
  std::mt19937 random(11);
  std::string bytes(size, '\0');
  for (auto& byte : bytes)
    byte = static_cast<char>(random());
  return bytes;
}

protocol::MessageFacts inspect_directly(const std::string& message, const InspectionSettings& s) {
  protocol::MessageInspector inspector(s.limits);
  inspector.feed(message);
  return inspector.finish();
}

// Feeds `message` in pieces of `piece` bytes through a queue, then asks for its facts; after
// each feed that returned, notes the bytes still waiting (never more than the limit).
struct Feeder {
  Feeder(InspectionQueue& q, std::string m, size_t p, const InspectionSettings& s)
      : queue(q), message(std::move(m)), piece(p), settings(s) {}

  InspectionQueue& queue;
  std::string message;
  size_t piece;
  InspectionSettings settings;
  std::optional<protocol::MessageFacts> facts;
  size_t most_waiting = 0;

  asio::awaitable<void> run() {
    queue.begin(settings);
    for (size_t at = 0; at < message.size(); at += piece) {
      co_await queue.feed(message.substr(at, piece));
      most_waiting = std::max(most_waiting, queue.waiting_bytes());
    }
    protocol::MessageFacts result = co_await queue.finish();
    facts = std::move(result);
  }
};

void run_until(asio::io_context& io, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(5ms);
    io.restart();
  }
}

TEST(InspectionPool, GivesTheFactsOfTheInspectorFedDirectly) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(2, kMemory);
  InspectionSettings settings;
  std::string message = structured_message(3);
  InspectionQueue queue(pool);
  Feeder feeder(queue, message, 1000, settings);
  asio::co_spawn(io, feeder.run(), asio::detached);
  run_until(io, [&] { return feeder.facts.has_value(); });
  ASSERT_TRUE(feeder.facts);
  auto expected = inspect_directly(message, settings);
  EXPECT_TRUE(feeder.facts->inspected);
  EXPECT_EQ(feeder.facts->xdm_archives, 3u);
  EXPECT_EQ(feeder.facts->codes(), expected.codes());
  EXPECT_EQ(feeder.facts->message_id, "<pool@test>");
  EXPECT_EQ(feeder.facts->mismatches, expected.mismatches);
  EXPECT_EQ(pool->memory()->held(), 0u) << "every byte taken is given back";
}

TEST(InspectionPool, HoldsTheSessionWhileTooManyOfItsBytesWait) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(1, kMemory);
  InspectionSettings settings;
  settings.queue_bytes = 32 << 10;
  // Incompressible filler: the workers decode far slower than the session copies.
  std::string message = structured_message(3, noise(512 << 10));
  InspectionQueue queue(pool);
  Feeder feeder(queue, message, 16 << 10, settings);
  asio::co_spawn(io, feeder.run(), asio::detached);
  run_until(io, [&] { return feeder.facts.has_value(); });
  ASSERT_TRUE(feeder.facts);
  EXPECT_TRUE(feeder.facts->inspected) << feeder.facts->uninspectable_reason;
  EXPECT_EQ(feeder.facts->xdm_archives, 3u);
  EXPECT_LE(feeder.most_waiting, settings.queue_bytes);
  EXPECT_GT(queue.holds(), 0u) << "the session was never held";
}

TEST(InspectionPool, AMessageOverItsCpuTimeIsUninspectable) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(1, kMemory);
  InspectionSettings settings;
  settings.max_cpu_time = 1ns;
  InspectionQueue queue(pool);
  Feeder feeder(queue, structured_message(2), 4096, settings);
  asio::co_spawn(io, feeder.run(), asio::detached);
  run_until(io, [&] { return feeder.facts.has_value(); });
  ASSERT_TRUE(feeder.facts);
  EXPECT_FALSE(feeder.facts->inspected);
  EXPECT_EQ(feeder.facts->uninspectable_reason, "budget_cpu_time");
  EXPECT_EQ(feeder.facts->xdm_archives, 0u);
}

TEST(InspectionPool, ANewMessageAbandonsTheOneBefore) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(1, kMemory);
  InspectionQueue queue(pool);
  InspectionSettings settings;
  // The first message never finished, or ended (end()) but its facts never asked for (the
  // backend refused it).
  for (bool ended : {false, true}) {
    std::optional<protocol::MessageFacts> facts;
    auto run = [&]() -> asio::awaitable<void> {
      queue.begin(settings);
      co_await queue.feed(structured_message(5));
      if (ended) queue.end();
      queue.begin(settings);
      co_await queue.feed("Message-ID: <second@test>\r\n\r\nhello\r\n");
      protocol::MessageFacts result = co_await queue.finish();
      facts = std::move(result);
    };
    asio::co_spawn(io, run(), asio::detached);
    run_until(io, [&] { return facts.has_value(); });
    ASSERT_TRUE(facts) << ended;
    EXPECT_EQ(facts->message_id, "<second@test>");
    EXPECT_EQ(facts->xdm_archives, 0u);
    EXPECT_TRUE(facts->inspected);
  }
}

TEST(InspectionPool, WhatAllMessagesHoldIsCappedTogether) {
  asio::io_context io;
  // Room for one message's archive (about 1.4 MiB decoded, in a buffer that grows to 2 MiB)
  // and its queue, not for two at once.
  auto pool = std::make_shared<InspectionPool>(1, size_t{3} << 20);
  std::string message = structured_message(1, noise(1400 << 10));
  std::string head = message.substr(0, message.size() - 20);  // up to the end of the archive
  InspectionSettings settings;
  InspectionQueue first(pool);
  InspectionQueue second(pool);
  std::optional<protocol::MessageFacts> first_facts;
  std::optional<protocol::MessageFacts> second_facts;
  auto feed = [](InspectionQueue& queue, std::string bytes) -> asio::awaitable<void> {
    for (size_t at = 0; at < bytes.size(); at += 16 << 10)
      co_await queue.feed(bytes.substr(at, 16 << 10));
    // Until the workers have read it all.
    while (queue.waiting_bytes() > 0)
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  };
  auto run = [&]() -> asio::awaitable<void> {
    first.begin(settings);
    second.begin(settings);
    co_await feed(first, head);  // its archive is held until its part ends
    co_await feed(second, message);
    protocol::MessageFacts facts = co_await second.finish();
    second_facts = std::move(facts);
    co_await feed(first, message.substr(head.size()));
    facts = co_await first.finish();
    first_facts = std::move(facts);
  };
  asio::co_spawn(io, run(), asio::detached);
  run_until(io, [&] { return first_facts.has_value(); });
  ASSERT_TRUE(first_facts && second_facts);
  EXPECT_TRUE(first_facts->inspected) << first_facts->uninspectable_reason;
  EXPECT_FALSE(second_facts->inspected);
  EXPECT_EQ(second_facts->uninspectable_reason, "inspection_memory");
  EXPECT_EQ(pool->memory()->held(), 0u);
}

TEST(InspectionPool, AStoppedPoolReleasesTheSessionsWaitingOnIt) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(1, kMemory);
  pool->stop();  // nothing is read any more: a session that waits waits for ever
  auto queue = std::make_shared<InspectionQueue>(pool);
  InspectionSettings settings;
  settings.queue_bytes = 1024;
  bool resumed = false;
  auto run = [](std::shared_ptr<InspectionQueue> q, InspectionSettings s,
                bool& done) -> asio::awaitable<void> {
    q->begin(s);
    co_await q->feed(std::string(4096, 'x'));
    done = true;
  };
  asio::co_spawn(io, run(queue, settings, resumed), asio::detached);
  queue.reset();  // the coroutine's frame holds it now
  io.poll();
  EXPECT_FALSE(resumed);
  pool->stop();  // the waiting session's frame is destroyed (LeakSanitizer checks it is freed)
  io.poll();
  EXPECT_FALSE(resumed);
}

TEST(InspectionPool, AMessageEndedEarlyHasItsFactsMadeBeforeTheyAreAskedFor) {
  asio::io_context io;
  auto pool = std::make_shared<InspectionPool>(1, kMemory);
  InspectionQueue queue(pool);
  InspectionSettings settings;
  std::string message = structured_message(2);
  bool ended = false;
  std::optional<protocol::MessageFacts> facts;
  auto feed = [&]() -> asio::awaitable<void> {
    queue.begin(settings);
    co_await queue.feed(message);
    queue.end();
    queue.end();  // said twice: one last turn
    ended = true;
  };
  asio::co_spawn(io, feed(), asio::detached);
  run_until(io, [&] { return ended && queue.facts_ready(); });
  ASSERT_TRUE(queue.facts_ready()) << "the workers did not make the facts of the ended message";
  // Asked for now, they are the ones kept: the same as the inspector's fed directly.
  auto ask = [&]() -> asio::awaitable<void> {
    protocol::MessageFacts result = co_await queue.finish();
    facts = std::move(result);
  };
  asio::co_spawn(io, ask(), asio::detached);
  run_until(io, [&] { return facts.has_value(); });
  ASSERT_TRUE(facts);
  auto expected = inspect_directly(message, settings);
  EXPECT_TRUE(facts->inspected);
  EXPECT_EQ(facts->xdm_archives, 2u);
  EXPECT_EQ(facts->codes(), expected.codes());
  EXPECT_FALSE(queue.facts_ready());
  EXPECT_EQ(pool->memory()->held(), 0u);
}

}  // namespace
}  // namespace mssgate::daemon
