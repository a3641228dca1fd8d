#pragma once

#include <memory>

#include "daemon/app/environment.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/services/crl_refresher.hpp"

namespace mssgate::daemon {

// Reloads (SIGHUP): the configuration file is read again and everything loaded into a new
// environment before it replaces the running one for new sessions; any problem leaves the
// running one in force. Settings only a restart changes keep their running values and are
// named. The log files are reopened either way (rotation). Also rebuilds the TLS context when a
// CRL download changed a file.
class Reloader {
 public:
  Reloader(EnvironmentSlot& slot, std::shared_ptr<HttpClient> http);

  // The CRL refresher to wake after a reload (it is made after the reloader).
  void set_crl_refresher(CrlRefresher* refresher) { crl_refresher_ = refresher; }

  void reload();
  void rebuild_tls();

 private:
  void reloaded(const GatewayEnvironment& running, const GatewayEnvironment& next,
                const std::vector<std::string>& restart_keys, double seconds);

  EnvironmentSlot& slot_;
  std::shared_ptr<HttpClient> http_;
  CrlRefresher* crl_refresher_ = nullptr;
};

}  // namespace mssgate::daemon
