#pragma once

#include <functional>
#include <memory>

#include "daemon/services/gateway_environment.hpp"

namespace boost::asio {
class io_context;
}

namespace mssgate::daemon {

class HttpClient;

// Downloads the CRLs of tls.crl_urls on a timer (the configuration in force is read at each
// round, so a reload changes the URLs and the interval). Each download is checked (a CRL,
// issued and signed by a CA of tls.client_ca, current, not older than the one kept) and only
// then written to tls.crl_cache_dir; `on_updated` runs on the io context when a round changed
// at least one file, so that a new TLS context is built from them. A failed or refused download
// keeps the last good CRL, and is logged (`crl_refresh_failed`) and counted.
class CrlRefresher {
 public:
  using CurrentEnvironment = std::function<std::shared_ptr<const GatewayEnvironment>()>;

  // Downloads with `http`, over TLS with the system's trust for https:// URLs.
  CrlRefresher(boost::asio::io_context& io, std::shared_ptr<HttpClient> http,
               CurrentEnvironment current, std::function<void()> on_updated);
  ~CrlRefresher();
  CrlRefresher(const CrlRefresher&) = delete;
  CrlRefresher& operator=(const CrlRefresher&) = delete;

  // Starts the rounds: the first one at once.
  void start();
  // Starts a round now (after a reload), or as soon as the one under way ends.
  void refresh_now();
  void stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace mssgate::daemon
