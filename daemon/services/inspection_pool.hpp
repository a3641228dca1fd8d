#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/message_inspector.hpp"

namespace mssgate::daemon {

// How one message is inspected: the inspector's caps and per-message budget, the CPU time its
// inspection may take, and how many of its bytes may wait for a worker before its session stops
// reading from its client.
struct InspectionSettings {
  protocol::InspectorLimits limits;
  std::chrono::nanoseconds max_cpu_time = std::chrono::seconds(2);
  size_t queue_bytes = 1 << 20;
};

// One message's inspection, shared by its session and the workers (inspection_pool.cpp).
struct InspectionJob;

// What the inspection of all messages may hold at once: the bytes waiting for a worker and the
// archives being read (indicators.inspection_memory). A message that would take more is
// uninspectable ("inspection_memory"), and goes on.
class InspectionMemory final : public protocol::SharedMemory {
 public:
  explicit InspectionMemory(size_t limit) : limit_(limit) {}
  bool take(size_t bytes) override;
  void give(size_t bytes) override;
  size_t held() const { return held_; }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  std::atomic<size_t> held_{0};
};

// The threads that inspect messages, off the io threads. A session hands its message's bytes to
// its InspectionQueue; the workers feed them to the message's inspector in order, one worker at a
// time for a message, each message taking its turn (one piece, one read of its session, per
// turn) with the others, so that a costly message delays the others' inspection by one piece
// at a time, not by all of it.
class InspectionPool {
 public:
  InspectionPool(unsigned threads, size_t memory_limit);
  ~InspectionPool();
  InspectionPool(const InspectionPool&) = delete;
  InspectionPool& operator=(const InspectionPool&) = delete;

  // Joins the workers and drops what is still queued, with the sessions waiting for it: called
  // once the io threads have stopped, while their io contexts still exist.
  void stop();
  size_t threads() const { return workers_.size(); }
  const std::shared_ptr<InspectionMemory>& memory() const { return memory_; }

  // Queues a message's next turn.
  void schedule(std::shared_ptr<InspectionJob> job);

 private:
  void work();

  std::shared_ptr<InspectionMemory> memory_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<InspectionJob>> ready_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// A session's way to the pool, on the session's io thread: the message under way, its bytes
// queued for the workers, the session held (back-pressure: it reads nothing more from its
// client) while more than `queue_bytes` wait, and the message's facts once it has ended and
// every byte is read. An inspection that stopped (over a cap or over its budget) takes no more
// bytes: the rest of the message streams at full speed. The bytes waiting are taken from the
// pool's InspectionMemory.
class InspectionQueue {
 public:
  explicit InspectionQueue(std::shared_ptr<InspectionPool> pool);
  ~InspectionQueue();
  InspectionQueue(const InspectionQueue&) = delete;
  InspectionQueue& operator=(const InspectionQueue&) = delete;

  // A new message; the one before, if its facts were not asked for, is abandoned.
  void begin(const InspectionSettings& settings);
  // Queues bytes of the message; resumes at once, or once the bytes waiting are down to half
  // the limit.
  boost::asio::awaitable<void> feed(std::string bytes);
  // The message has ended: its facts are made once every byte is read, without waiting for
  // them (they are kept for finish()): while the backend answers for the message, say.
  void end();
  // The message has ended: its facts, once every byte is read (at once when end() made them).
  boost::asio::awaitable<protocol::MessageFacts> finish();

  // The bytes of the message under way that wait for a worker.
  size_t waiting_bytes() const;
  // Whether the facts of the message end() ended are made: finish() then resumes at once.
  bool facts_ready() const;
  // How many times feed() held the session.
  uint64_t holds() const { return holds_; }

 private:
  void abandon();

  std::shared_ptr<InspectionPool> pool_;
  std::shared_ptr<InspectionJob> job_;
  uint64_t holds_ = 0;
};

}  // namespace mssgate::daemon
