// Deliveries to one mailbox hand their message's end to Dovecot one at a time, in order of
// arrival; deliveries to other mailboxes do not wait.
#include "daemon/services/mailbox_gate.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using mssgate::daemon::MailboxGate;
using mssgate::daemon::MailboxTable;

namespace {

using Boxes = std::vector<std::string>;

TEST(MailboxTable, OneDeliveryPerMailboxInOrderOfArrival) {
  MailboxTable table;
  EXPECT_TRUE(table.enter(1, {"a"}));
  EXPECT_TRUE(table.enter(2, {"b"}));   // another mailbox: at once
  EXPECT_FALSE(table.enter(3, {"a"}));  // waits for 1
  EXPECT_FALSE(table.enter(4, {"a", "c"}));
  // "c" is free, but 4 wants "a" too: 5 waits behind 4 rather than pass it for ever.
  EXPECT_FALSE(table.enter(5, {"c"}));
  EXPECT_TRUE(table.enter(6, {"d"}));
  EXPECT_EQ(table.waiting(), 3u);
  EXPECT_EQ(table.leave({"a"}), std::vector<uint64_t>{3});
  EXPECT_EQ(table.leave({"b"}), std::vector<uint64_t>{});
  EXPECT_EQ(table.leave({"a"}), std::vector<uint64_t>{4});
  EXPECT_EQ(table.leave({"a", "c"}), std::vector<uint64_t>{5});
  EXPECT_EQ(table.leave({"c"}), std::vector<uint64_t>{});
  EXPECT_EQ(table.leave({"d"}), std::vector<uint64_t>{});
  EXPECT_EQ(table.held(), 0u);
  EXPECT_EQ(table.waiting(), 0u);
}

TEST(MailboxTable, OneLeaveLetsInEveryWaiterItFrees) {
  MailboxTable table;
  EXPECT_TRUE(table.enter(1, {"a", "b"}));
  EXPECT_FALSE(table.enter(2, {"a"}));
  EXPECT_FALSE(table.enter(3, {"b"}));
  EXPECT_FALSE(table.enter(4, {"a"}));
  EXPECT_EQ(table.leave({"a", "b"}), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(table.leave({"a"}), std::vector<uint64_t>{4});
}

// What the sessions below saw.
struct Turns {
  std::atomic<int> inside_a{0}, inside_b{0}, overlaps{0}, done{0};
  int sessions = 0;
  std::function<void()> all_done;
};

boost::asio::awaitable<void> deliver(std::shared_ptr<MailboxGate> gate, std::string mailbox,
                                     Turns* turns) {
  auto& inside = mailbox == "a" ? turns->inside_a : turns->inside_b;
  std::vector<std::string> mailboxes{mailbox, mailbox};
  MailboxGate::Pass pass = co_await gate->enter(std::move(mailboxes));
  if (++inside > 1) ++turns->overlaps;
  std::this_thread::sleep_for(std::chrono::microseconds(200));
  --inside;
  pass.release();
  if (++turns->done == turns->sessions) turns->all_done();
}

// Two io threads, many sessions to two mailboxes: never two passes for one mailbox at once, and
// every session gets through.
TEST(MailboxGate, SessionsOnSeveralThreadsTakeTurns) {
  auto gate = std::make_shared<MailboxGate>();
  boost::asio::io_context first(1), second(1);
  // (A waiting session is no work of its context's: the guards keep both running.)
  auto keep_first = boost::asio::make_work_guard(first);
  auto keep_second = boost::asio::make_work_guard(second);
  Turns turns;
  turns.sessions = 40;
  turns.all_done = [&] {
    keep_first.reset();
    keep_second.reset();
  };
  for (int i = 0; i < turns.sessions; ++i) {
    auto& context = i % 2 ? first : second;
    boost::asio::co_spawn(context, deliver(gate, i % 4 < 2 ? "a" : "b", &turns),
                          boost::asio::detached);
  }
  std::thread other([&] { second.run(); });
  first.run();
  other.join();
  EXPECT_EQ(turns.done, turns.sessions);
  EXPECT_EQ(turns.overlaps, 0);
  EXPECT_EQ(gate->table().held(), 0u);
  EXPECT_EQ(gate->table().waiting(), 0u);
}

}  // namespace
