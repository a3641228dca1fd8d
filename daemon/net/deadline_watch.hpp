#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>

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

  // Watches until stop() or until `expired` returns false.
  boost::asio::awaitable<void> watch(Clock::duration tick, Expired expired);
  void stop();

 private:
  static constexpr size_t kSlots = 5;
  std::array<Clock::time_point, kSlots> deadlines_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace mssgate::daemon
