#include "daemon/app/io_watchdog.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {
namespace {

int64_t milliseconds(IoLiveness::Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

IoLiveness::IoLiveness(size_t threads, Clock::duration stall_limit)
    : beats_(threads), stall_limit_(stall_limit) {}

bool IoLiveness::send(size_t i, Clock::time_point now) {
  Beat& beat = beats_.at(i);
  if (beat.waiting) return false;
  beat.waiting = true;
  beat.sent = now;
  return true;
}

void IoLiveness::answered(size_t i) {
  beats_.at(i).waiting = false;
}

IoLiveness::Clock::duration IoLiveness::waiting(size_t i, Clock::time_point now) const {
  const Beat& beat = beats_.at(i);
  if (!beat.waiting || now < beat.sent) return Clock::duration::zero();
  return now - beat.sent;
}

IoWatchdog::IoWatchdog(IoPool& pool, const ServiceNotifier& notifier, Clock::duration stall_limit)
    : pool_(pool),
      notifier_(notifier),
      shared_(std::make_shared<Shared>(pool.size(), stall_limit)) {
  // Often enough to see a stall soon after the limit, and to feed systemd at least every half
  // of WatchdogSec (watchdog_interval() is that half).
  Clock::duration period = std::chrono::seconds(1);
  period = std::min<Clock::duration>(period, stall_limit / 4);
  if (auto interval = notifier_.watchdog_interval())
    period = std::min<Clock::duration>(period, *interval);
  period_ = std::max<Clock::duration>(period, std::chrono::milliseconds(10));
  thread_ = std::thread([this] { run(); });
}

IoWatchdog::~IoWatchdog() {
  stop();
}

void IoWatchdog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IoWatchdog::run() {
  std::vector<bool> reported(pool_.size(), false);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    tick(reported);
    lock.lock();
    wake_.wait_for(lock, period_, [this] { return stopping_; });
  }
}

// Heartbeats to the io threads that answered the last one; the stalls seen and ended; and the
// keep-alive when no io thread is stalled.
void IoWatchdog::tick(std::vector<bool>& reported) {
  auto now = Clock::now();
  bool all_turn = true;
  for (size_t i = 0; i < pool_.size(); ++i) {
    bool send = false;
    Clock::duration waited{};
    bool stalled = false;
    {
      std::lock_guard lock(shared_->mutex);
      send = shared_->liveness.send(i, now);
      waited = shared_->liveness.waiting(i, now);
      stalled = shared_->liveness.stalled(i, now);
    }
    if (send) {
      boost::asio::post(pool_.at(i), [shared = shared_, i] {
        std::lock_guard lock(shared->mutex);
        shared->liveness.answered(i);
      });
    }
    if (stalled && !reported[i]) {
      Event("io_thread_stalled")
          .add("thread", static_cast<uint64_t>(i + 1))
          .add("waited_ms", milliseconds(waited))
          .add("watchdog", notifier_.watchdog_interval() ? "unfed" : "off")
          .error();
    } else if (!stalled && reported[i] && send) {
      Event("io_thread_resumed").add("thread", static_cast<uint64_t>(i + 1)).warn();
    }
    if (stalled) reported[i] = true;
    if (!stalled && send) reported[i] = false;
    all_turn = all_turn && !stalled;
  }
  if (all_turn && notifier_.watchdog_interval()) notifier_.watchdog();
}

}  // namespace mssgate::daemon
