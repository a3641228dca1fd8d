#include "daemon/net/deadline_watch.hpp"

#include <algorithm>
#include <exception>

#include "daemon/net/spawn.hpp"

namespace mssgate::daemon {

DeadlineWatch::DeadlineWatch(const boost::asio::any_io_executor& executor) : timer_(executor) {
  deadlines_.fill(Clock::time_point::max());
}

void DeadlineWatch::arm_until(Slot slot, Clock::time_point when) {
  deadlines_[static_cast<size_t>(slot)] = when;
  if (when < timer_.expiry()) timer_.cancel();
}

void DeadlineWatch::start(Clock::duration tick, Expired expired, std::function<void()> on_failure,
                          std::shared_ptr<void> keep_alive) {
  tick_ = tick;
  expired_ = std::move(expired);
  on_failure_ = std::move(on_failure);
  sleep(std::move(keep_alive));
}

void DeadlineWatch::sleep(std::shared_ptr<void> keep_alive) {
  if (stopped_) return;
  auto next =
      std::min(*std::min_element(deadlines_.begin(), deadlines_.end()), Clock::now() + tick_);
  timer_.expires_at(next);
  // Woken early (operation_aborted) by a nearer deadline or by stop(): the same check follows.
  timer_.async_wait(
      [this, keep_alive = std::move(keep_alive)](const boost::system::error_code&) mutable {
        if (wake()) sleep(std::move(keep_alive));
      });
}

bool DeadlineWatch::wake() {
  if (stopped_) return false;
  try {
    auto now = Clock::now();
    for (size_t i = 0; i < kSlots; ++i) {
      if (deadlines_[i] > now) continue;
      deadlines_[i] = Clock::time_point::max();
      if (!expired_(static_cast<Slot>(i))) return false;
    }
  } catch (...) {
    report_task_failure("deadline_watch", std::current_exception());
    if (on_failure_) on_failure_();
    return false;
  }
  return true;
}

void DeadlineWatch::stop() {
  stopped_ = true;
  timer_.cancel();
}

}  // namespace mssgate::daemon
