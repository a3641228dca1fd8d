#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/app/environment.hpp"
#include "daemon/app/io_pool.hpp"
#include "daemon/net/client_stream.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/session/postfix_client.hpp"

namespace mssgate::daemon {

// What the sessions of one gateway share besides the configuration in force.
struct SessionShared {
  std::shared_ptr<GatewayCounters> counters = std::make_shared<GatewayCounters>();
  std::shared_ptr<SmtpBackendFeatures> smtp_features = std::make_shared<SmtpBackendFeatures>();
};

// The client listeners (imap, imaps, submission, submissions, lmtp): bound at start, each
// accepting on the main io context and handing every connection to a session on the next io
// context, with the configuration in force. Each connection is admitted first: its listener's
// budget (the client listeners share one, the LMTP tap has its own), then on a client listener
// its address's caps; a refused one is told so in one line (nothing on implicit TLS) and closed
// at once, before any session or TLS. On the listeners of proxy_protocol.listeners, the address
// is the client's as the load balancer's PROXY header gives it. A session that cannot start is
// logged and its connection closed; an accept loop that fails is logged and started again: a
// listener never ends while the gateway runs.
class Listeners {
 public:
  Listeners(IoPool& pool, const EnvironmentSlot& slot, const SessionShared& shared);
  ~Listeners();
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;

  // Binds every listener of `config`; throws with a sentence when one cannot be bound.
  void bind(const config::Config& config);
  void start();
  // Stops accepting; the sessions under way go on.
  void stop();

 private:
  enum class Kind { kImap, kImaps, kSubmission, kSubmissions, kLmtp };
  struct Listener {
    boost::asio::ip::tcp::acceptor acceptor;
    Kind kind;
    std::string name;
  };

  void bind_all(const std::vector<config::Endpoint>& endpoints, Kind kind, const char* name);
  void spawn_accept_loop(Listener& listener);
  boost::asio::awaitable<void> accept_loop(Listener& listener);
  // Behind a load balancer: the session starts with the client's ends the balancer's PROXY
  // header names, once accept_proxy_header took it (with `environment`'s [proxy_protocol]);
  // meanwhile the connection holds a place in its listener's connection budget.
  boost::asio::awaitable<void> read_proxy_header_then_start(
      boost::asio::ip::tcp::socket socket, const Listener& listener,
      std::shared_ptr<const GatewayEnvironment> environment);
  void start_session(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
                     const Listener& listener);
  std::optional<Admission> admit(boost::asio::ip::tcp::socket& socket, const ConnectionEnds& ends,
                                 const Listener& listener, const config::Config& config);

  IoPool& pool_;
  const EnvironmentSlot& slot_;
  const SessionShared& shared_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::atomic<bool> stopped_ = false;  // read by the io threads reading PROXY headers
};

}  // namespace mssgate::daemon
