#include "daemon/app/listeners.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>

#include "daemon/net/listener.hpp"
#include "daemon/net/proxy_protocol.hpp"
#include "daemon/net/spawn.hpp"
#include "daemon/session/imap_session.hpp"
#include "daemon/session/lmtp_session.hpp"
#include "daemon/session/submission_session.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/fault_injection.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kPause = std::chrono::milliseconds(100);

// Where a connection comes from: its address as the per-address limits count it (an IPv4
// address, an IPv6 /64; an IPv4-mapped IPv6 address is its IPv4 address), whether it is in
// limits.exempt_networks, and "address:port" for the log. Behind a load balancer, the client's
// as the balancer's PROXY header names it.
struct Peer {
  std::optional<ClientAddress> address;
  bool exempt = false;
  std::string text;
};

Peer peer_of(const ConnectionEnds& ends, const config::LimitsConfig& limits) {
  auto address = protocol::parse_ip_address(ends.peer_address);  // IPv4-mapped: IPv4
  if (!address) return {};
  Peer peer;
  if (address->v6) {
    peer.address = ClientAddress::ipv6(address->bytes);
  } else {
    peer.address =
        ClientAddress::ipv4(static_cast<uint32_t>(address->bytes[0]) << 24 |
                            static_cast<uint32_t>(address->bytes[1]) << 16 |
                            static_cast<uint32_t>(address->bytes[2]) << 8 | address->bytes[3]);
  }
  peer.text = ends.peer;
  peer.exempt = limits.exempt(address->v6, address->bytes);
  return peer;
}

// Tells a refused client why in one line, without waiting (a new socket's send buffer is
// empty), and closes.
void refuse(tcp::socket& socket, std::string_view line) {
  boost::system::error_code ignored;
  if (!line.empty()) {
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(line), ignored);
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace

Listeners::Listeners(IoPool& pool, const EnvironmentSlot& slot, const SessionShared& shared)
    : pool_(pool), slot_(slot), shared_(shared) {}

Listeners::~Listeners() {
  stop();
}

void Listeners::bind(const config::Config& config) {
  bind_all(config.imap.starttls_listen, Kind::kImap, "imap");
  bind_all(config.imap.tls_listen, Kind::kImaps, "imaps");
  bind_all(config.smtp.starttls_listen, Kind::kSubmission, "submission");
  bind_all(config.smtp.tls_listen, Kind::kSubmissions, "submissions");
  bind_all(config.lmtp.listen, Kind::kLmtp, "lmtp");
}

void Listeners::bind_all(const std::vector<config::Endpoint>& endpoints, Kind kind,
                         const char* name) {
  for (const auto& endpoint : endpoints) {
    auto listener = std::make_unique<Listener>(
        Listener{open_listener(pool_.main(), endpoint, name), kind, name});
    listening_event(name, listener->acceptor).info();
    listeners_.push_back(std::move(listener));
  }
}

void Listeners::start() {
  for (auto& listener : listeners_)
    spawn_accept_loop(*listener);
}

void Listeners::spawn_accept_loop(Listener& listener) {
  auto executor = listener.acceptor.get_executor();
  spawn_task(executor, accept_loop(listener), "accept:" + listener.name, [this, &listener] {
    // The loop failed: after a pause, the listener accepts again.
    auto timer = std::make_shared<asio::steady_timer>(listener.acceptor.get_executor(), kPause);
    timer->async_wait([this, &listener, timer](const boost::system::error_code&) {
      if (!stopped_) spawn_accept_loop(listener);
    });
  });
}

asio::awaitable<void> Listeners::accept_loop(Listener& listener) {
  asio::steady_timer backoff(listener.acceptor.get_executor());
  for (;;) {
    auto [ec, accepted] = co_await listener.acceptor.async_accept(pool_.next(), kTuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    if (ec) {
      // Out of file descriptors or memory: say so once per pause, and do not spin.
      Event("accept_failed").add("listener", listener.name).add("error", ec.message()).error();
      backoff.expires_after(kPause);
      co_await backoff.async_wait(kTuple);
      continue;
    }
    tcp::socket socket(std::move(accepted));
    auto environment = slot_.get();
    if (environment->config.proxy_protocol.expected_on(listener.name)) {
      auto executor = socket.get_executor();
      spawn_task(executor,
                 read_proxy_header_then_start(std::move(socket), listener, std::move(environment)),
                 "proxy_header:" + listener.name);
    } else {
      auto ends = socket_ends(socket);
      start_session(std::move(socket), std::move(ends), listener);
    }
  }
}

asio::awaitable<void> Listeners::read_proxy_header_then_start(
    tcp::socket socket, const Listener& listener,
    std::shared_ptr<const GatewayEnvironment> environment) {
  // A connection waiting for its header holds a place in its listener's connection budget, as
  // an open session does: connections that never send one cannot pile up past the budget. The
  // place is an admission of no address, given back once the header is read (the session's
  // admission then takes its own) or the connection refused.
  auto waiting = daemon::admit(
      shared_.counters, listener.kind == Kind::kLmtp ? Budget::kLmtp : Budget::kClients,
      std::nullopt, false, environment->config, ClientLimits::Clock::now());
  if (!waiting.admission) {
    metrics::gateway().connections_refused.with({listener.name, waiting.refusal}).inc();
    Event("connection_refused")
        .add("listener", listener.name)
        .add("peer", socket_ends(socket).peer)
        .add("reason", waiting.refusal)
        .warn();
    refuse(socket, {});
    co_return;
  }
  auto outcome = co_await accept_proxy_header(std::move(socket), environment->config.proxy_protocol,
                                              listener.name);
  waiting.admission.reset();
  if (!outcome.ends) {
    refuse(outcome.socket, {});
    co_return;
  }
  if (stopped_) co_return;
  start_session(std::move(outcome.socket), std::move(*outcome.ends), listener);
}

void Listeners::start_session(tcp::socket socket, ConnectionEnds ends, const Listener& listener) {
  try {
    faults::point("start_session");
    auto environment = slot_.get();
    auto admission = admit(socket, ends, listener, environment->config);
    if (!admission) return;
    const auto& counters = shared_.counters;
    switch (listener.kind) {
      case Kind::kImap:
        return start_imap_session(std::move(socket), std::move(ends), ImapListenerKind::kStartTls,
                                  environment, counters, std::move(*admission));
      case Kind::kImaps:
        return start_imap_session(std::move(socket), std::move(ends),
                                  ImapListenerKind::kImplicitTls, environment, counters,
                                  std::move(*admission));
      case Kind::kSubmission:
        return start_smtp_session(std::move(socket), std::move(ends), SmtpListenerKind::kStartTls,
                                  environment, counters, shared_.smtp_features,
                                  std::move(*admission));
      case Kind::kSubmissions:
        return start_smtp_session(std::move(socket), std::move(ends),
                                  SmtpListenerKind::kImplicitTls, environment, counters,
                                  shared_.smtp_features, std::move(*admission));
      case Kind::kLmtp:
        return start_lmtp_session(std::move(socket), std::move(ends), environment, counters,
                                  std::move(*admission));
    }
  } catch (const std::exception& e) {
    // This connection is lost (the socket closes with this frame); the listener goes on.
    metrics::gateway().connections_refused.with({listener.name, "start_failed"}).inc();
    Event("session_start_failed").add("listener", listener.name).add("error", e.what()).error();
  }
}

std::optional<Admission> Listeners::admit(tcp::socket& socket, const ConnectionEnds& ends,
                                          const Listener& listener, const config::Config& config) {
  bool lmtp = listener.kind == Kind::kLmtp;
  Peer peer = peer_of(ends, config.limits);
  auto decision = daemon::admit(shared_.counters, lmtp ? Budget::kLmtp : Budget::kClients,
                                lmtp ? std::nullopt : peer.address, peer.exempt, config,
                                ClientLimits::Clock::now());
  if (decision.admission) return std::move(decision.admission);
  bool by_address = decision.refusal != "max_connections";
  metrics::gateway().connections_refused.with({listener.name, decision.refusal}).inc();
  // The first refusals of an address in its time unit are written, the rest summed up.
  if (!by_address ||
      shared_.counters->clients.write_in_full(*peer.address, ClientLimits::Kind::kRefusedConnection,
                                              ClientLimits::Clock::now(), config.limits)) {
    Event event("connection_refused");
    event.add("listener", listener.name).add("peer", peer.text);
    if (!ends.via.empty()) event.add("via", ends.via);
    if (by_address) event.add("address", peer.address->text());
    event.add("reason", decision.refusal).warn();
  } else {
    metrics::gateway().events_summarised.with({"connection_refused"}).inc();
  }
  std::string_view line;
  switch (listener.kind) {
    case Kind::kImap:
      line = by_address ? "* BYE [UNAVAILABLE] Too many connections from your address, try "
                          "again later\r\n"
                        : "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
      break;
    case Kind::kSubmission:
      line = by_address ? "421 4.7.0 Too many connections from your address, try again later\r\n"
                        : "421 4.3.2 Too many connections, try again later\r\n";
      break;
    case Kind::kLmtp:
      line = "421 4.3.2 Too many connections, try again later\r\n";
      break;
    case Kind::kImaps:
    case Kind::kSubmissions:
      break;  // before any TLS: nothing can be said
  }
  refuse(socket, line);
  return std::nullopt;
}

void Listeners::stop() {
  stopped_ = true;
  for (auto& listener : listeners_) {
    boost::system::error_code ignored;
    listener->acceptor.close(ignored);
  }
}

}  // namespace mssgate::daemon
