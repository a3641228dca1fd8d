#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace mssgate::daemon {

// The deadlines of one connection's reads and writes (and of one phase), on one timer: arming a
// deadline only writes its time (no timer operation on the relay path); the timer wakes at the
// earliest one armed before it slept, and at least every `tick`, so a deadline is enforced within
// one tick.
class DeadlineWatch {
 public:
  using Clock = std::chrono::steady_clock;
  // kSession: a deadline of the whole session's phase (before authentication), not of one
  // operation.
  enum class Slot : size_t { kClientRead, kClientWrite, kBackendRead, kBackendWrite, kSession };
  // Told each passed deadline (already disarmed); returns false to stop watching.
  using Expired = std::function<bool(Slot)>;

  explicit DeadlineWatch(const boost::asio::any_io_executor& executor);

  void arm(Slot slot, Clock::duration timeout) { arm_until(slot, Clock::now() + timeout); }
  // A deadline at `when`, passed already or not: an operation made of several reads keeps one.
  void arm_until(Slot slot, Clock::time_point when);
  void disarm(Slot slot) { deadlines_[static_cast<size_t>(slot)] = Clock::time_point::max(); }

  // Watches until stop() or until `expired` returns false, with one timer operation and no
  // coroutine; `keep_alive` (the owner of this watch, when it has one) is held meanwhile. What
  // `expired` throws is logged and counted as a failed task (deadline_watch), and ends the
  // watch with `on_failure`.
  void start(Clock::duration tick, Expired expired, std::function<void()> on_failure = {},
             std::shared_ptr<void> keep_alive = {});
  void stop();

 private:
  void sleep(std::shared_ptr<void> keep_alive);
  // False when the watch ends.
  bool wake();

  static constexpr size_t kSlots = 5;
  std::array<Clock::time_point, kSlots> deadlines_;
  boost::asio::steady_timer timer_;
  Clock::duration tick_{};
  Expired expired_;
  std::function<void()> on_failure_;
  bool stopped_ = false;
};

}  // namespace mssgate::daemon
