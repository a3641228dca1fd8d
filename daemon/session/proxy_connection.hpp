#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "daemon/services/access_policy.hpp"
#include "daemon/services/certificate_identity.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/sasl_oauth.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::daemon {

// What every proxied session has: the client connection (plain until STARTTLS, or TLS from the
// start), the backend connection, one deadline watchdog, the byte counters and the events of
// the connection's life (connect, tls, tls_failed, close). The protocol sessions derive from it.
class ProxyConnection : public std::enable_shared_from_this<ProxyConnection> {
 public:
  using Clock = std::chrono::steady_clock;
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;
  template <class T>
  using awaitable = boost::asio::awaitable<T>;

  struct Timeouts {
    Clock::duration handshake;
    Clock::duration write;
    Clock::duration backend_connect;
    Clock::duration backend_response;
  };

  ProxyConnection(tcp::socket socket, std::string listener, bool implicit_tls,
                  std::shared_ptr<const GatewayEnvironment> env,
                  std::shared_ptr<GatewayCounters> counters, Timeouts timeouts);
  virtual ~ProxyConnection();
  ProxyConnection(const ProxyConnection&) = delete;
  ProxyConnection& operator=(const ProxyConnection&) = delete;

  // Logs the connection and starts run() and the watchdog.
  void start();

 protected:
  enum class Deadline : size_t { kClientRead, kClientWrite, kBackendRead, kBackendWrite, kCount };

  // The protocol's own conversation; `self` keeps the connection alive while it runs.
  virtual awaitable<void> run(std::shared_ptr<ProxyConnection> self) = 0;

  // The common start of run(): the connection cap (`too_many` is sent on a plain connection)
  // and, on an implicit-TLS listener, the handshake. False when the session must end.
  awaitable<bool> open_session(std::string_view too_many);

  // ---- deadlines: one timer per connection ------------------------------------------------
  void arm(Deadline d, Clock::duration timeout);
  void disarm(Deadline d) { deadlines_[static_cast<size_t>(d)] = Clock::time_point::max(); }
  void close_all();
  bool closed() const { return closed_; }
  bool over_connection_limit() const {
    return counters_->open_sessions > config_.server.max_connections;
  }
  // Records why the session ends (the first reason wins).
  void note_end(const error_code& ec, std::string_view side);
  void set_close_reason(std::string reason) {
    if (close_reason_.empty()) close_reason_ = std::move(reason);
  }

  // ---- client I/O: the one place that knows whether TLS is active ------------------------
  awaitable<std::tuple<error_code, size_t>> read_client(boost::asio::mutable_buffer buffer,
                                                        Clock::duration timeout);
  awaitable<bool> write_client(std::string_view data);
  awaitable<bool> tls_handshake();
  awaitable<void> shutdown_client_tls();
  bool tls_active() const { return tls_active_; }
  bool implicit_tls() const { return implicit_tls_; }

  // ---- backend I/O ------------------------------------------------------------------------
  awaitable<bool> connect_backend(const config::Endpoint& endpoint);
  awaitable<bool> write_backend(std::string_view data);
  // One CRLF-terminated line from the backend within `timeout` (default: the response timeout).
  awaitable<std::optional<std::string>> read_backend_line(
      std::optional<Clock::duration> timeout = {});
  // One SMTP or LMTP reply from the backend, its lines also appended to `raw_lines` if given.
  awaitable<std::optional<protocol::SmtpReply>> read_backend_reply(
      std::optional<Clock::duration> timeout = {}, std::vector<std::string>* raw_lines = nullptr);
  void backend_failed(std::string_view step, std::string_view detail, Clock::time_point start);
  void close_backend();

  // Relays bytes both ways until either side closes; `client_leftover` is sent first.
  void start_relay(std::string client_leftover, std::string backend_leftover,
                   Clock::duration idle_timeout);

  static int64_t milliseconds_since(Clock::time_point start);

  // The audit event of an authentication attempt: the identity (professional and the token's
  // client, or certificate), mechanism, mailbox, result and reason. Never the token.
  void log_auth(std::string_view mechanism, bool ok, std::string_view reason,
                const std::string& mailbox) const;

  // Pro Santé Connect sign-in: validates the token, applies the directory and the
  // per-professional session cap. On success the professional's slot is held until the
  // connection ends.
  awaitable<AccessDecision> authorize_token(const protocol::OAuthCredentials& credentials);
  bool tokens_enabled() const { return env_->validator != nullptr; }

  // Records a message's indicator event in the journal; true once it is durable. False (and an
  // error event) when the journal cannot take it: the message itself is never held back for it.
  awaitable<bool> record_indicator(storage::IndicatorEvent event);
  awaitable<bool> record_indicators(std::vector<storage::IndicatorEvent> events);
  bool indicators_enabled() const { return env_->indicators != nullptr; }
  // After a successful sign-in to mailbox_: the session counts as authenticated, its auth mode
  // is set, the mailbox's type is looked up once, and the sign-in counted for the connections
  // report.
  void record_sign_in(std::string_view mechanism);

  // A mail transaction starts or ends: a stop waits for the ones under way.
  void begin_transaction() { transaction_.emplace(counters_); }
  void end_transaction() { transaction_.reset(); }
  bool draining() const { return counters_->draining; }
  std::string professional_id_;  // once a token named them
  std::string token_azp_;

  std::shared_ptr<const GatewayEnvironment> env_;
  const config::Config& config_;
  std::string id_;
  std::string peer_;  // "address:port" of the client
  std::string peer_address_;
  uint16_t peer_port_ = 0;
  std::string local_address_;
  uint16_t local_port_ = 0;
  std::string mailbox_;       // once authenticated
  std::string mailbox_type_;  // PER ORG APP CAB, once authenticated with indicators on
  std::string auth_mode_;     // certificate | psc, once authenticated
  std::optional<CertificateIdentity> peer_certificate_;
  std::string backend_pending_;  // backend bytes read and not yet consumed
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::string protocol_;  // imap, submission or lmtp, for metric labels

  // Times one client command, from its line read to its answer written, for the metrics;
  // `command` is one of the protocol's known verbs (anything else is counted as "other").
  void observe_command(std::string_view command, Clock::time_point start);

 private:
  awaitable<void> watchdog(std::shared_ptr<ProxyConnection> self);
  awaitable<void> relay_client_to_backend(std::shared_ptr<ProxyConnection> self,
                                          std::string leftover, Clock::duration idle_timeout);
  awaitable<void> relay_backend_to_client(std::shared_ptr<ProxyConnection> self,
                                          std::string leftover);

  std::shared_ptr<GatewayCounters> counters_;
  std::optional<TransactionMark> transaction_;
  std::string professional_slot_;  // held in counters_ until the connection ends
  std::string listener_;
  bool implicit_tls_;
  Timeouts timeouts_;
  boost::asio::ssl::stream<tcp::socket> client_;
  tcp::socket backend_;
  boost::asio::steady_timer watchdog_timer_;
  std::array<Clock::time_point, static_cast<size_t>(Deadline::kCount)> deadlines_;
  Clock::duration tick_;
  std::optional<Deadline> expired_;
  bool backend_timed_out_ = false;
  bool tls_active_ = false;
  bool closed_ = false;
  protocol::LineSplitter backend_lines_;
  std::string close_reason_;
  Clock::time_point started_;
  static constexpr const char* kPreAuth = "pre_auth";
  static constexpr const char* kAuthenticated = "authenticated";
  const char* session_state_ = kPreAuth;
  metrics::Counter& bytes_from_client_;
  metrics::Counter& bytes_to_client_;
  static constexpr size_t kCommandLabels = 21;
  std::array<metrics::Histogram*, kCommandLabels> command_histograms_{};
};

}  // namespace mssgate::daemon
