#include "daemon/app/listeners.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>

#include "daemon/net/listener.hpp"
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
    auto [ec, socket] = co_await listener.acceptor.async_accept(pool_.next(), kTuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    if (ec) {
      // Out of file descriptors or memory: say so once per pause, and do not spin.
      Event("accept_failed").add("listener", listener.name).add("error", ec.message()).error();
      backoff.expires_after(kPause);
      co_await backoff.async_wait(kTuple);
      continue;
    }
    start_session(std::move(socket), listener);
  }
}

void Listeners::start_session(tcp::socket socket, const Listener& listener) {
  try {
    faults::point("start_session");
    auto environment = slot_.get();
    switch (listener.kind) {
      case Kind::kImap:
        return start_imap_session(std::move(socket), ImapListenerKind::kStartTls, environment,
                                  shared_.counters);
      case Kind::kImaps:
        return start_imap_session(std::move(socket), ImapListenerKind::kImplicitTls, environment,
                                  shared_.counters);
      case Kind::kSubmission:
        return start_smtp_session(std::move(socket), SmtpListenerKind::kStartTls, environment,
                                  shared_.counters, shared_.smtp_features);
      case Kind::kSubmissions:
        return start_smtp_session(std::move(socket), SmtpListenerKind::kImplicitTls, environment,
                                  shared_.counters, shared_.smtp_features);
      case Kind::kLmtp:
        return start_lmtp_session(std::move(socket), environment, shared_.counters);
    }
  } catch (const std::exception& e) {
    // This connection is lost (the socket closes with this frame); the listener goes on.
    metrics::gateway().connections_refused.with({listener.name, "start_failed"}).inc();
    Event("session_start_failed").add("listener", listener.name).add("error", e.what()).error();
  }
}

void Listeners::stop() {
  stopped_ = true;
  for (auto& listener : listeners_) {
    boost::system::error_code ignored;
    listener->acceptor.close(ignored);
  }
}

}  // namespace mssgate::daemon
