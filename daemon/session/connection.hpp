#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/net/backend_link.hpp"
#include "daemon/net/client_stream.hpp"
#include "daemon/net/deadline_watch.hpp"
#include "daemon/net/relay.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/session/session_telemetry.hpp"
#include "protocol/imap_response.hpp"

namespace mssgate::daemon {

// One session's connections and their life: the client stream and the backend link under one
// deadline watch, the session's telemetry, its admission (held until the end), the start (with
// whatever the session's coroutine throws logged and the session closed, its slots freed), the
// deadline of the phase before authentication, the TLS handshake, the relay once a session is
// only bytes, and the close of everything.
class Connection {
 public:
  using Clock = DeadlineWatch::Clock;
  struct Timeouts {
    Clock::duration handshake;
    Clock::duration write;
    Clock::duration backend_connect;
    Clock::duration backend_response;
  };
  struct Role {
    std::string_view listener;  // imap, imaps, submission, submissions, lmtp
    std::string_view protocol;  // imap, submission, lmtp
    bool implicit_tls = false;
  };

  Connection(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
             std::shared_ptr<const GatewayEnvironment> environment,
             std::shared_ptr<GatewayCounters> counters, Role role, Timeouts timeouts,
             Admission admission);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Logs the connection, watches the deadlines and runs `run`, `owner` (the session) alive
  // until both end. When `run` ends (returning or throwing: a throw is logged as
  // session_failed), everything is closed, unless the session became a relay.
  void start(std::shared_ptr<void> owner, boost::asio::awaitable<void> run);

  // On an implicit-TLS listener, the handshake. False: the session ends.
  boost::asio::awaitable<bool> open();
  boost::asio::awaitable<bool> handshake();
  // False when the client is gone (the reason is noted).
  boost::asio::awaitable<bool> write(std::string_view text);
  // Appends client bytes to `into`; false when the client is gone (the reason is noted), or
  // when the phase before authentication passed its deadline (the client is told
  // `expiry_text` first).
  boost::asio::awaitable<bool> read(std::string& into, Clock::duration timeout, bool large);

  // One deadline for the whole phase before authentication, from now, whatever the client
  // sends meanwhile; its passing ends the session at the next read (close reason
  // pre_auth_timeout), a read under way included.
  // `expiry_text` outlives the session (a literal).
  void limit_pre_auth(Clock::duration timeout, std::string_view expiry_text);
  // The client signed in: the phase before authentication is over.
  void authenticated();
  // Waits `delay` (the answer to a failed sign-in) without holding the thread.
  boost::asio::awaitable<void> pause(Clock::duration delay);

  // False when the backend is gone (the reason is noted, the link left to its owner).
  boost::asio::awaitable<bool> write_backend(std::string_view bytes);
  // Connects to the backend; a failure is logged and counted (step "connect").
  boost::asio::awaitable<bool> connect_backend(const config::Endpoint& endpoint);
  // Logs and counts a backend failure and closes the backend link.
  void backend_failed(std::string_view step, std::string_view detail, Clock::time_point start);

  // From now on the session only relays bytes both ways, until either side closes. With
  // `backend_lost_text` (IMAP: an untagged BYE; a literal), a backend that goes away without a BYE
  // of its own is reported to the client with that line, when the backend's stream stopped between
  // two responses (inside one, a line of mssgate's would be read as part of it): the client knows
  // the session ended for want of the backend, not of its own doing.
  void relay(std::shared_ptr<void> owner, std::string client_leftover, std::string backend_leftover,
             Clock::duration idle_timeout, std::string_view backend_lost_text = {});

  void close();
  // Ends a session the gateway refuses while the client may still be sending (a line or a
  // literal over its cap, a message over the limit, a flood): the client's stream ends after
  // what was written (the answer is not lost to a reset), the backend link is closed, and what
  // the client still sends is read and dropped until it closes, for at most a few seconds and
  // a few MiB; then the connection closes.
  boost::asio::awaitable<void> close_dropping_input();
  // Ends a signed-in session whose authorisation was withdrawn (`reason`: a short word): logged,
  // counted, and both connections closed wherever the session stands. A message under way is
  // not acknowledged, so nothing is accepted on the withdrawn authorisation.
  void withdraw(std::string_view reason);

  ClientStream& client() { return client_; }
  BackendLink& backend() { return backend_; }
  SessionTelemetry& telemetry() { return telemetry_; }
  const std::string& id() const { return telemetry_.id(); }
  const Timeouts& timeouts() const { return timeouts_; }
  const SharedCertificateIdentity& certificate() const { return certificate_; }
  const Admission& admission() const { return admission_; }
  const config::LimitsConfig& limits() const { return environment_->config.limits; }

 private:
  bool on_deadline(DeadlineWatch::Slot slot);
  // The relay's two directions: a burst (coroutine) from `leftover` and what is waiting, then a
  // wait until the source is readable, and so on until a side closes.
  void relay_upstream(std::shared_ptr<void> owner, std::string leftover);
  void wait_upstream(std::shared_ptr<void> owner);
  void upstream_ended(const std::exception_ptr& failure, const RelayEnd& end);
  void relay_downstream(std::shared_ptr<void> owner, std::string leftover);
  void wait_downstream(std::shared_ptr<void> owner);
  void downstream_ended(std::shared_ptr<void> owner, const RelayEnd& end);
  // The backend ended the relay: the client is told when it went away on its own, then gets a
  // clean TLS close.
  boost::asio::awaitable<RelayEnd> end_after_backend(RelayEnd end);
  void relay_ended(const std::exception_ptr& failure, const RelayEnd& end);
  boost::asio::awaitable<void> end_pre_auth();
  void ended(const std::exception_ptr& failure);

  std::shared_ptr<const GatewayEnvironment> environment_;  // its TLS context outlives the stream
  Admission admission_;
  SessionTelemetry telemetry_;
  DeadlineWatch deadlines_;
  ClientStream client_;
  BackendLink backend_;
  bool implicit_tls_;
  Timeouts timeouts_;
  Clock::duration idle_timeout_{};  // while relaying
  SharedCertificateIdentity certificate_;
  std::unique_ptr<char[]> large_buffer_;   // for message content, while a message comes
  std::string_view pre_auth_expiry_text_;  // a literal
  std::optional<protocol::ImapResponseFraming> framing_;  // while relaying, with backend_lost_text_
  std::string_view backend_lost_text_;                    // a literal
  bool pre_auth_expired_ = false;
  bool relaying_ = false;
  bool closed_ = false;
};

}  // namespace mssgate::daemon
