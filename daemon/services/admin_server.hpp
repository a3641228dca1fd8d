#pragma once

#include <functional>
#include <memory>

#include "daemon/services/gateway_environment.hpp"

namespace boost::asio {
class io_context;
}

namespace mssgate::daemon {

// The admin HTTP endpoint (admin.listen): /metrics (OpenMetrics), /healthz, /readyz and the
// autoconfiguration document. Plain HTTP on loopback, or TLS with a required client
// certificate (admin.client_ca). Every answer reads the configuration in force at the time.
class AdminServer {
 public:
  using CurrentEnvironment = std::function<std::shared_ptr<const GatewayEnvironment>()>;

  // Binds every admin.listen address of `env` (throws with a sentence when one cannot be
  // bound or the TLS files do not load) and serves on `io`.
  AdminServer(boost::asio::io_context& io, const GatewayEnvironment& env,
              CurrentEnvironment current, std::shared_ptr<GatewayCounters> counters);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Stops accepting (open admin connections end with their request).
  void stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace mssgate::daemon
