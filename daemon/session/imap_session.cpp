#include "daemon/session/imap_session.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "daemon/core/dovecot_login.hpp"
#include "daemon/core/imap_login_core.hpp"
#include "daemon/services/indicator_recorder.hpp"
#include "daemon/services/sign_in.hpp"
#include "daemon/session/connection.hpp"
#include "daemon/session/session_reports.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using Kind = core::ImapLoginCore::Kind;
// What a signed-in client hears when Dovecot goes away without a BYE of its own.
constexpr std::string_view kBackendLost =
    "* BYE [UNAVAILABLE] Connection to the mailbox service lost, try again later\r\n";

Connection::Timeouts imap_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout,
          std::min(config.imap.write_timeout, config.imap.login_timeout),
          config.imap.backend.connect_timeout, config.imap.backend.response_timeout};
}

// One IMAP client: the pre-login core driven over the connection, then a byte relay.
class ImapSession final : public std::enable_shared_from_this<ImapSession>,
                          private SignInReports<core::SessionEvents> {
 public:
  ImapSession(asio::ip::tcp::socket socket, ConnectionEnds ends, ImapListenerKind kind,
              const std::shared_ptr<const GatewayEnvironment>& environment,
              const std::shared_ptr<GatewayCounters>& counters, Admission admission)
      : SignInReports(connection_, sign_in_, identity_, recorder_, storage::SessionProtocol::kImap),
        config_(environment->config),
        connection_(std::move(socket), std::move(ends), environment, counters,
                    {kind == ImapListenerKind::kStartTls ? "imap" : "imaps", "imap",
                     kind == ImapListenerKind::kImplicitTls},
                    imap_timeouts(environment->config), std::move(admission)),
        sign_in_(environment, counters, "imap"),
        recorder_(environment) {}

  void start() { connection_.start(shared_from_this(), run()); }

 private:
  awaitable<void> run() {
    connection_.limit_pre_auth(config_.limits.pre_auth_timeout,
                               "* BYE Authentication took too long, closing the connection\r\n");
    bool opened = co_await connection_.open();
    if (!opened) co_return;
    core::ImapLoginCore core({{config_.imap.max_line_bytes, config_.imap.max_literal_bytes},
                              config_.imap.max_bad_commands,
                              3,
                              sign_in_.tokens_offered(),
                              config_.limits.max_pre_auth_commands},
                             *this, connection_.client().tls_active());
    std::string unread;
    for (;;) {
      // A sign-in attempt the core just reported is in the journal before its answer goes out.
      if (sign_in_unrecorded()) co_await record_sign_in();
      auto action = core.next();
      switch (action.kind) {
        case Kind::kRead:
          if (!co_await connection_.read(unread, config_.imap.login_timeout, false)) co_return;
          core.on_client_bytes(unread);
          unread.clear();
          break;
        case Kind::kWrite:
          if (!co_await connection_.write(action.text)) co_return;
          break;
        case Kind::kStartTls: {
          bool established = co_await connection_.handshake();
          core.on_tls(established);
          break;
        }
        case Kind::kAuthorize: {
          SignInDecision decision = co_await authorize(core.credentials(), false);
          core.on_verdict(std::move(decision.verdict));
          break;
        }
        case Kind::kLoginBackend: {
          auto capabilities = co_await login_to_backend(action.text);
          core.on_backend_login(std::move(capabilities));
          break;
        }
        case Kind::kRelay:
          if (!co_await connection_.write(action.text)) co_return;
          connection_.telemetry().command_finished();
          // Whatever Dovecot sent after its answer belongs to the client, relayed first.
          connection_.relay(shared_from_this(), core.take_unread(),
                            connection_.backend().take_unread(), config_.imap.idle_timeout,
                            kBackendLost);
          co_return;
        case Kind::kPause:
          co_await connection_.pause(take_failure_delay());
          break;
        case Kind::kClose:
          if (action.option) co_await connection_.client().shutdown_tls();
          co_return;
        case Kind::kCloseDroppingInput:
          co_await connection_.close_dropping_input();
          co_return;
      }
    }
  }

  std::weak_ptr<void> session_owner() override { return weak_from_this(); }

  // Logs in to Dovecot as `mailbox` with the master user; the capabilities after login.
  awaitable<std::optional<std::string>> login_to_backend(const std::string& mailbox) {
    auto start = Connection::Clock::now();
    const auto& backend = config_.imap.backend;
    if (!co_await connection_.connect_backend(backend.address)) co_return std::nullopt;
    const auto& ends = connection_.client().ends();
    core::DovecotLogin login({mailbox, backend.master_user, backend.master_password,
                              ends.peer_address, ends.peer_port, ends.local_address,
                              ends.local_port, connection_.id()});
    for (;;) {
      auto action = login.next();
      switch (action.kind) {
        case core::DovecotLogin::Kind::kReadLine: {
          auto line =
              co_await connection_.backend().read_line(connection_.timeouts().backend_response);
          if (line) {
            login.on_line(*line);
          } else {
            login.on_connection_lost(false);
          }
          break;
        }
        case core::DovecotLogin::Kind::kWrite:
          if (!co_await connection_.write_backend(action.text)) login.on_connection_lost(true);
          break;
        case core::DovecotLogin::Kind::kDone:
          connection_.telemetry().backend_ready(mailbox, start);
          co_return std::move(action.text);
        case core::DovecotLogin::Kind::kFailed:
          connection_.backend_failed(login.step(), action.text, start);
          co_return std::nullopt;
      }
    }
  }

  const config::Config& config_;
  Connection connection_;
  SignInService sign_in_;
  IndicatorRecorder recorder_;
  SessionIdentity identity_;
};

}  // namespace

void start_imap_session(asio::ip::tcp::socket socket, ConnectionEnds ends, ImapListenerKind kind,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters, Admission admission) {
  std::make_shared<ImapSession>(std::move(socket), std::move(ends), kind, environment, counters,
                                std::move(admission))
      ->start();
}

}  // namespace mssgate::daemon
