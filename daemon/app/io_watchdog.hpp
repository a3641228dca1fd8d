#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/app/io_pool.hpp"
#include "daemon/app/service_notifier.hpp"

namespace mssgate::daemon {

// Whether every io thread turns: each is sent a heartbeat, and one whose heartbeat has waited
// longer than the stall limit is stalled. Bookkeeping only (no thread, no clock of its own), so
// that it is tested without waiting.
class IoLiveness {
 public:
  using Clock = std::chrono::steady_clock;

  IoLiveness(size_t threads, Clock::duration stall_limit);

  // True when thread `i` is to be sent a heartbeat now (its last one was answered), which is
  // then noted as sent at `now`.
  bool send(size_t i, Clock::time_point now);
  void answered(size_t i);
  // How long thread `i`'s heartbeat has waited at `now` (zero when none waits).
  Clock::duration waiting(size_t i, Clock::time_point now) const;
  bool stalled(size_t i, Clock::time_point now) const { return waiting(i, now) > stall_limit_; }
  size_t threads() const { return beats_.size(); }

 private:
  struct Beat {
    bool waiting = false;
    Clock::time_point sent;
  };
  std::vector<Beat> beats_;
  Clock::duration stall_limit_;
};

// systemd's watchdog, fed from a thread of its own that no session work can hold up. That
// thread sends each io thread a heartbeat every tick and sends WATCHDOG=1 only while every io
// thread answers within `stall_limit` (server.io_stall_timeout). An io thread that stops turning
// (nothing on an io thread may block: this is a bug, or a machine in distress) is logged
// (io_thread_stalled) and the keep-alives stop, so that systemd restarts the gateway once
// WatchdogSec has passed; if the thread turns again first, io_thread_resumed is logged and the
// keep-alives come back. Without systemd's watchdog the stalls are still logged.
class IoWatchdog {
 public:
  using Clock = IoLiveness::Clock;

  IoWatchdog(IoPool& pool, const ServiceNotifier& notifier, Clock::duration stall_limit);
  ~IoWatchdog();
  IoWatchdog(const IoWatchdog&) = delete;
  IoWatchdog& operator=(const IoWatchdog&) = delete;

  // Stops the thread; heartbeats still queued on the io contexts do nothing when they run.
  void stop();

 private:
  struct Shared {
    std::mutex mutex;
    IoLiveness liveness;
    Shared(size_t threads, Clock::duration stall_limit) : liveness(threads, stall_limit) {}
  };

  void run();
  void tick(std::vector<bool>& reported);

  IoPool& pool_;
  const ServiceNotifier& notifier_;
  Clock::duration period_;
  std::shared_ptr<Shared> shared_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mssgate::daemon
