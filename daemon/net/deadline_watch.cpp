#include "daemon/net/deadline_watch.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mssgate::daemon {

DeadlineWatch::DeadlineWatch(const boost::asio::any_io_executor& executor) : timer_(executor) {
  deadlines_.fill(Clock::time_point::max());
}

void DeadlineWatch::arm_until(Slot slot, Clock::time_point when) {
  deadlines_[static_cast<size_t>(slot)] = when;
  if (when < timer_.expiry()) timer_.cancel();
}

boost::asio::awaitable<void> DeadlineWatch::watch(Clock::duration tick, Expired expired) {
  while (!stopped_) {
    auto next =
        std::min(*std::min_element(deadlines_.begin(), deadlines_.end()), Clock::now() + tick);
    timer_.expires_at(next);
    co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (stopped_) break;
    auto now = Clock::now();
    for (size_t i = 0; i < kSlots; ++i) {
      if (deadlines_[i] > now) continue;
      deadlines_[i] = Clock::time_point::max();
      if (!expired(static_cast<Slot>(i))) co_return;
    }
  }
}

void DeadlineWatch::stop() {
  stopped_ = true;
  timer_.cancel();
}

}  // namespace mssgate::daemon
