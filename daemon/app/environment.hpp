#pragma once

#include <memory>
#include <mutex>

#include "config/config.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {

// The configuration in force and what it loaded, replaced whole (RCU): each new session takes
// the snapshot current when it starts and keeps it to its end.
class EnvironmentSlot {
 public:
  explicit EnvironmentSlot(std::shared_ptr<const GatewayEnvironment> environment)
      : environment_(std::move(environment)) {}
  std::shared_ptr<const GatewayEnvironment> get() const {
    std::lock_guard lock(mutex_);
    return environment_;
  }
  void set(std::shared_ptr<const GatewayEnvironment> environment) {
    std::lock_guard lock(mutex_);
    environment_ = std::move(environment);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const GatewayEnvironment> environment_;
};

// Everything a configuration needs loaded: the TLS context (certificates, keys, CAs, CRLs), the
// directory, the token validator. A reload passes the running environment: its validator (and
// its cache of tokens) is kept when [psc] and its files did not change, its directory service
// (and snapshot) when directory.sqlite_path and [storage] did not, its indicator journal always.
// Throws with a sentence for the operator.
std::shared_ptr<GatewayEnvironment> build_environment(const config::Config& config,
                                                      bool open_directory,
                                                      std::shared_ptr<HttpClient> http,
                                                      const GatewayEnvironment* running = nullptr);

LogSettings log_settings(const config::Config& config);

// Logs config::config_warnings (`config_warning key=… warning=…`), at start and at each reload.
void log_config_warnings(const config::Config& config);

}  // namespace mssgate::daemon
