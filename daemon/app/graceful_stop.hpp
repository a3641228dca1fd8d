#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <string_view>

#include "daemon/app/io_pool.hpp"
#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

// The graceful stop (SIGTERM, SIGINT): no new connection and no new mail transaction, the
// transactions under way finish (at most stop_timeout), then every io context stops. A second
// signal stops at once.
class GracefulStop {
 public:
  GracefulStop(IoPool& pool, GatewayCounters& counters);

  // `stop_accepting` closes the listeners and stops background work.
  void begin(std::string_view signal, std::chrono::milliseconds stop_timeout,
             const std::function<void()>& stop_accepting);
  bool stopping() const { return stopping_; }

 private:
  void wait_for_transactions();

  IoPool& pool_;
  GatewayCounters& counters_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_;
  bool stopping_ = false;
};

}  // namespace mssgate::daemon
