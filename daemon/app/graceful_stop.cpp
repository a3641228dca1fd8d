#include "daemon/app/graceful_stop.hpp"

#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {

GracefulStop::GracefulStop(IoPool& pool, GatewayCounters& counters)
    : pool_(pool), counters_(counters), timer_(pool.main()) {}

void GracefulStop::begin(std::string_view signal, std::chrono::milliseconds stop_timeout,
                         const std::function<void()>& stop_accepting) {
  if (stopping_) {  // a second SIGTERM or SIGINT: stop now
    pool_.stop();
    return;
  }
  stopping_ = true;
  counters_.draining = true;
  Event("stopping")
      .add("signal", signal)
      .add("open_sessions", counters_.open_sessions.load())
      .add("transactions", counters_.transactions.load())
      .add("stop_timeout_ms", static_cast<int64_t>(stop_timeout.count()))
      .info();
  stop_accepting();
  deadline_ = std::chrono::steady_clock::now() + stop_timeout;
  wait_for_transactions();
}

void GracefulStop::wait_for_transactions() {
  uint64_t left = counters_.transactions.load();
  if (left == 0 || std::chrono::steady_clock::now() >= deadline_) {
    Event("stopped_accepting")
        .add("open_sessions", counters_.open_sessions.load())
        .add("transactions_cut", left)
        .emit(left ? spdlog::level::warn : spdlog::level::info);
    pool_.stop();
    return;
  }
  timer_.expires_after(std::chrono::milliseconds(50));
  timer_.async_wait([this](const boost::system::error_code&) { wait_for_transactions(); });
}

}  // namespace mssgate::daemon
