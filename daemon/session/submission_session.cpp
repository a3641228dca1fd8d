#include "daemon/session/submission_session.hpp"

#include <optional>
#include <string>

#include "daemon/core/submission_core.hpp"
#include "daemon/services/indicator_event.hpp"
#include "daemon/services/indicator_recorder.hpp"
#include "daemon/services/inspection_pool.hpp"
#include "daemon/services/sign_in.hpp"
#include "daemon/session/connection.hpp"
#include "daemon/session/session_reports.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using Kind = core::SubmissionCore::Kind;
using Clock = Connection::Clock;

Connection::Timeouts smtp_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout, config.smtp.write_timeout,
          config.smtp.backend.connect_timeout, config.smtp.backend.response_timeout};
}

// One submission client: the submission core driven over the connection and a Postfix client.
class SubmissionSession final : public std::enable_shared_from_this<SubmissionSession>,
                                private SignInReports<core::SubmissionEvents> {
 public:
  SubmissionSession(asio::ip::tcp::socket socket, ConnectionEnds ends, SmtpListenerKind kind,
                    const std::shared_ptr<const GatewayEnvironment>& environment,
                    const std::shared_ptr<GatewayCounters>& counters,
                    std::shared_ptr<SmtpBackendFeatures> features, Admission admission)
      : SignInReports(connection_, sign_in_, identity_, recorder_,
                      storage::SessionProtocol::kSubmission),
        config_(environment->config),
        counters_(counters),
        connection_(std::move(socket), std::move(ends), environment, counters,
                    {kind == SmtpListenerKind::kStartTls ? "submission" : "submissions",
                     "submission", kind == SmtpListenerKind::kImplicitTls},
                    smtp_timeouts(environment->config), std::move(admission)),
        sign_in_(environment, counters, "submission"),
        recorder_(environment),
        inspection_(environment->inspection),
        postfix_(connection_, config_.smtp, std::move(features)) {}

  void start() { connection_.start(shared_from_this(), run()); }

 private:
  core::SubmissionCore::Settings settings() const {
    const auto& smtp = config_.smtp;
    core::SubmissionCore::Settings settings;
    settings.hostname = smtp.hostname;
    settings.max_line_bytes = smtp.max_line_bytes;
    settings.max_message_bytes = smtp.max_message_bytes;
    settings.max_header_bytes = smtp.max_header_bytes;
    settings.max_recipients = smtp.max_recipients;
    settings.max_bad_commands = smtp.max_bad_commands;
    settings.allow_null_sender = smtp.allow_null_sender;
    settings.tokens_offered = sign_in_.tokens_offered();
    settings.inspect = recorder_.enabled();
    settings.max_pre_auth_commands = config_.limits.max_pre_auth_commands;
    return settings;
  }

  awaitable<void> run() {
    connection_.limit_pre_auth(
        config_.limits.pre_auth_timeout,
        "421 4.4.2 Authentication took too long, closing the connection\r\n");
    bool opened = co_await connection_.open();
    if (!opened) co_return;
    core::SubmissionCore core(settings(), *this, connection_.client().tls_active());
    std::string unread;
    for (;;) {
      // A sign-in attempt the core just reported is in the journal before its answer goes out.
      if (sign_in_unrecorded()) co_await record_sign_in();
      auto action = core.next();
      if (action.kind == Kind::kClose) {
        if (action.option) co_await connection_.client().shutdown_tls();
        co_return;
      }
      if (action.kind == Kind::kCloseDroppingInput) {
        co_await connection_.close_dropping_input();
        co_return;
      }
      if (action.kind == Kind::kRead) {
        auto timeout = action.option ? config_.smtp.data_timeout : config_.smtp.command_timeout;
        if (!co_await connection_.read(unread, timeout, action.option)) {
          core.on_client_gone();
          co_return;
        }
        core.on_client_bytes(unread);
        unread.clear();
        continue;
      }
      if (action.kind == Kind::kWrite) {
        if (!co_await connection_.write(action.text)) co_return;
        continue;
      }
      co_await carry_out(core, action);
    }
  }

  // The actions that ask something of TLS, the sign-in, Postfix or the journal.
  awaitable<void> carry_out(core::SubmissionCore& core, core::SubmissionCore::Action& action) {
    switch (action.kind) {
      case Kind::kStartTls: {
        bool established = co_await connection_.handshake();
        core.on_tls(established);
        break;
      }
      case Kind::kAuthorize: {
        SignInDecision decision = co_await authorize(core.credentials(), true);
        core.on_verdict(std::move(decision.verdict), std::move(decision.allowed_senders));
        break;
      }
      case Kind::kLearnFeatures: {
        core::PostfixFeatures features = co_await postfix_.features(action.option);
        core.on_features(features);
        break;
      }
      case Kind::kBackendReady: {
        const auto& ends = connection_.client().ends();
        // (A named identity: GCC 12 destroys a temporary of a co_await expression twice.)
        core::XclientIdentity identity{ends.peer_address, ends.peer_port, core.helo(),
                                       core.mailbox()};
        bool ready = co_await postfix_.ready(identity);
        core.on_backend_ready(ready, postfix_.known_features());
        break;
      }
      case Kind::kBackendCommand: {
        auto reply = co_await postfix_.command(action.text);
        core.on_backend_reply(std::move(reply));
        break;
      }
      case Kind::kBackendReply: {
        auto reply = co_await postfix_.reply();
        core.on_backend_reply(std::move(reply));
        break;
      }
      case Kind::kBackendData: {
        bool written = co_await postfix_.send(action.text);
        core.on_backend_written(written);
        break;
      }
      case Kind::kBackendEndData: {
        auto reply = co_await postfix_.end_data(action.text);
        core.on_backend_reply(std::move(reply));
        break;
      }
      case Kind::kBackendDrop:
        postfix_.drop();
        break;
      case Kind::kInspect:
        if (action.option) inspection_.begin(inspection_settings(config_.indicators));
        co_await inspection_.feed(std::move(action.text));
        break;
      case Kind::kEndInspection:
        inspection_.end();
        break;
      case Kind::kInspectEnd: {
        protocol::MessageFacts facts = co_await inspection_.finish();
        core.on_inspected(std::move(facts));
        break;
      }
      case Kind::kPause:
        co_await connection_.pause(take_failure_delay());
        break;
      case Kind::kRecord: {
        core::SentMessage sent = core.take_sent_message();
        bool durable = co_await recorder_.record_sent(connection_.id(), identity_, std::move(sent));
        core.on_recorded(durable);
        break;
      }
      case Kind::kRead:
      case Kind::kWrite:
      case Kind::kClose:
      case Kind::kCloseDroppingInput:
        break;
    }
  }

  // ---- what the core reports -------------------------------------------------------------
  std::weak_ptr<void> session_owner() override { return weak_from_this(); }

  void sender_refused(std::string_view where, std::string_view field,
                      std::string_view detail) override {
    Event event("sender_refused");
    event.add("session", connection_.id()).add("mailbox", identity_.mailbox).add("where", where);
    if (!field.empty()) event.add("field", field).add("detail", detail);
    event.warn();
  }

  void message_finished(const core::MessageOutcome& outcome) override {
    Event event("message");
    event.add("session", connection_.id()).add("mailbox", identity_.mailbox);
    if (!outcome.message_id.empty()) event.add("message_id", outcome.message_id);
    event.add("size", outcome.size).add("recipients", outcome.recipients);
    if (!outcome.queue_id.empty()) event.add("queue_id", outcome.queue_id);
    event.add("result", outcome.result);
    if (!outcome.reason.empty()) event.add("reason", outcome.reason);
    event.add("duration_ms", SessionTelemetry::milliseconds_since(transaction_start_));
    if (outcome.result == "accepted") {
      metrics::gateway().messages.with({"sent"}).inc();
      metrics::gateway().message_bytes.with({"sent"}).inc(outcome.size);
      event.info();
    } else {
      event.warn();
    }
  }

  void transaction(bool open) override {
    if (!open) return transaction_.reset();
    transaction_.emplace(counters_);
    transaction_start_ = Clock::now();
  }

  bool draining() const override { return counters_->draining; }

  const config::Config& config_;
  std::shared_ptr<GatewayCounters> counters_;
  Connection connection_;
  SignInService sign_in_;
  IndicatorRecorder recorder_;
  InspectionQueue inspection_;  // the messages' inspection, off this io thread
  PostfixClient postfix_;
  SessionIdentity identity_;
  std::optional<TransactionMark> transaction_;  // a graceful stop waits for it
  Clock::time_point transaction_start_{};
};

}  // namespace

void start_smtp_session(asio::ip::tcp::socket socket, ConnectionEnds ends, SmtpListenerKind kind,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters,
                        std::shared_ptr<SmtpBackendFeatures> features, Admission admission) {
  std::make_shared<SubmissionSession>(std::move(socket), std::move(ends), kind, environment,
                                      counters, std::move(features), std::move(admission))
      ->start();
}

}  // namespace mssgate::daemon
