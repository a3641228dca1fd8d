#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>

#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

// Authorisation is not forever: each second, the registry of signed-in sessions is reviewed on
// the main io context. Against the directory each time its snapshot or the configuration changed
// (a suspended mailbox, a removed binding, a detached holder end their sessions), against the
// clock always (a token session past psc.max_session_age, a certificate past its notAfter), and
// each PSC session's token is asked about again every psc.token_recheck_interval while it has
// not expired (a revoked token ends its sessions). Each ended session is logged as
// authorization_withdrawn.
class SessionReviewer {
 public:
  using EnvironmentSource = std::function<std::shared_ptr<const GatewayEnvironment>()>;

  SessionReviewer(boost::asio::io_context& context, EnvironmentSource environment,
                  std::shared_ptr<GatewayCounters> counters);

  void start();
  void stop();

 private:
  boost::asio::awaitable<void> loop();
  void review_once();
  boost::asio::awaitable<void> recheck(std::shared_ptr<TokenValidator> validator,
                                       SessionRegistry::TokenCheck check,
                                       std::chrono::steady_clock::duration fresher_than);

  boost::asio::io_context& context_;
  EnvironmentSource environment_;
  std::shared_ptr<GatewayCounters> counters_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  // What the last review saw: a change of either reviews every session against the directory.
  std::shared_ptr<const GatewayEnvironment> last_environment_;
  std::shared_ptr<const storage::DirectorySnapshot> last_snapshot_;
};

}  // namespace mssgate::daemon
