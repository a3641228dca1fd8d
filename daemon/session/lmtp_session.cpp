#include "daemon/session/lmtp_session.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/core/lmtp_tap_core.hpp"
#include "daemon/services/indicator_event.hpp"
#include "daemon/services/indicator_recorder.hpp"
#include "daemon/services/inspection_pool.hpp"
#include "daemon/services/mailbox_gate.hpp"
#include "daemon/session/connection.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/fault_injection.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/ascii.hpp"
#include "protocol/ip_address.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using Kind = core::LmtpTapCore::Kind;
using Clock = Connection::Clock;

Connection::Timeouts lmtp_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout, config.lmtp.command_timeout,
          config.lmtp.backend_connect_timeout, config.lmtp.backend_response_timeout};
}

// One LMTP connection from Postfix: the tap core driven between Postfix and Dovecot.
class LmtpSession final : public std::enable_shared_from_this<LmtpSession>,
                          private core::LmtpEvents {
 public:
  LmtpSession(asio::ip::tcp::socket socket, ConnectionEnds ends,
              const std::shared_ptr<const GatewayEnvironment>& environment,
              const std::shared_ptr<GatewayCounters>& counters, Admission admission)
      : config_(environment->config),
        counters_(counters),
        connection_(std::move(socket), std::move(ends), environment, counters,
                    {"lmtp", "lmtp", false}, lmtp_timeouts(environment->config),
                    std::move(admission)),
        recorder_(environment),
        inspection_(environment->inspection),
        gate_(environment->mailbox_gate) {}

  void start() { connection_.start(shared_from_this(), run()); }

 private:
  awaitable<void> run() {
    bool opened = co_await connection_.open();
    if (!opened) co_return;
    core::LmtpTapCore::Settings settings{config_.smtp.hostname, config_.lmtp.max_line_bytes,
                                         recorder_.enabled(), config_.lmtp.delivery_id_header,
                                         config_.lmtp.serial_per_mailbox};
    core::LmtpTapCore core(std::move(settings), *this);
    std::string unread;
    for (;;) {
      auto action = core.next();
      switch (action.kind) {
        case Kind::kConnectBackend: {
          backend_start_ = Clock::now();
          bool connected = co_await connection_.connect_backend(config_.lmtp.backend);
          core.on_backend_connected(connected);
          break;
        }
        case Kind::kReadReply: {
          auto reply = co_await read_reply();
          core.on_backend_reply(std::move(reply));
          break;
        }
        case Kind::kRelay: {
          std::optional<core::RawReply> reply;
          if (co_await connection_.write_backend(action.text)) reply = co_await read_reply();
          core.on_backend_reply(std::move(reply));
          break;
        }
        case Kind::kBackendData: {
          bool written = co_await connection_.write_backend(action.text);
          core.on_backend_written(written);
          break;
        }
        case Kind::kRead: {
          auto timeout = action.option ? config_.lmtp.data_timeout : config_.lmtp.command_timeout;
          if (!co_await connection_.read(unread, timeout, action.option)) {
            core.on_client_gone();
            co_return;
          }
          core.on_client_bytes(unread);
          unread.clear();
          break;
        }
        case Kind::kWrite: {
          // (Test builds: a delay here stands for a crash between Dovecot's delivery and
          // Postfix's hearing of it.)
          if (action.option) faults::point("lmtp", "answer");
          bool written = co_await connection_.write(action.text);
          if (action.option) delivery_answered();
          if (!written) co_return;
          break;
        }
        case Kind::kInspect:
        case Kind::kInspectEnd:
        case Kind::kRecord:
        case Kind::kSettle:
        case Kind::kEnter:
        case Kind::kLeave:
          co_await counting_step(core, std::move(action));
          break;
        case Kind::kClose:
          co_return;
      }
    }
  }

  // The actions of a message's inspection, its events and its turn at Dovecot.
  awaitable<void> counting_step(core::LmtpTapCore& core, core::LmtpTapCore::Action action) {
    switch (action.kind) {
      case Kind::kInspect:
        if (action.option) inspection_.begin(inspection_settings(config_.indicators));
        co_await inspection_.feed(std::move(action.text));
        break;
      case Kind::kInspectEnd: {
        protocol::MessageFacts facts = co_await inspection_.finish();
        core.on_inspected(std::move(facts));
        break;
      }
      case Kind::kRecord: {
        core::ReceivedMessage received = core.take_received();
        pending_ = co_await recorder_.record_pending(connection_.id(), std::move(received));
        core.on_recorded(!pending_.ids.empty());
        break;
      }
      case Kind::kSettle: {
        std::vector<bool> delivered = core.take_settlement();
        PendingDelivery pending = std::exchange(pending_, PendingDelivery{});
        co_await recorder_.settle(connection_.id(), std::move(pending), std::move(delivered),
                                  action.option);
        core.on_settled();
        break;
      }
      case Kind::kEnter: {
        std::vector<std::string> mailboxes = core.recipients();
        gate_pass_ = co_await gate_->enter(std::move(mailboxes));
        core.on_entered();
        break;
      }
      case Kind::kLeave:
        gate_pass_.release();
        break;
      default:
        break;
    }
  }

  awaitable<std::optional<core::RawReply>> read_reply() {
    core::RawReply raw;
    auto reply = co_await connection_.backend().read_reply(connection_.timeouts().backend_response,
                                                           &raw.lines);
    if (!reply) co_return std::nullopt;
    last_backend_reply_ = Clock::now();
    raw.reply = std::move(*reply);
    co_return raw;
  }

  // ---- what the core reports -------------------------------------------------------------
  void command_started(std::string_view verb) override {
    if (protocol::ascii_iequals(verb, "DATA")) data_start_ = Clock::now();
    connection_.telemetry().command_started(verb);
    faults::point("lmtp", verb);
  }
  void command_finished() override { connection_.telemetry().command_finished(); }
  void protocol_error(std::string_view kind, std::string_view detail) override {
    Event("protocol_error")
        .add("session", connection_.id())
        .add("kind", kind)
        .add("detail", detail)
        .warn();
  }
  void closing(std::string_view reason) override {
    connection_.telemetry().set_close_reason(reason);
  }
  void sign_in_attempt(std::string_view, bool, std::string_view, std::string_view) override {}
  void backend_failed(std::string_view step, std::string_view detail) override {
    connection_.backend_failed(step, detail, backend_start_);
  }
  // A delivery Postfix is answered for is logged once the answer is written, with the time
  // between Dovecot's last reply and that answer: Postfix delivers again a message whose answer
  // a crash kept from it, so that time is the window of a duplicate in the mailbox.
  void delivery_finished(const core::DeliveryOutcome& outcome) override {
    if (outcome.result == "aborted") return log_delivery(outcome, std::nullopt);
    answered_ = outcome;
  }
  void delivery_answered() {
    if (!answered_) return;
    auto delay =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - last_backend_reply_);
    log_delivery(*answered_, delay.count());
    answered_.reset();
  }
  void log_delivery(const core::DeliveryOutcome& outcome, std::optional<int64_t> answer_delay_us) {
    Event event("delivery");
    event.add("session", connection_.id()).add("size", outcome.size);
    event.add("recipients", outcome.recipients).add("delivered", outcome.delivered);
    event.add("result", outcome.result);
    if (!outcome.reason.empty()) event.add("reason", outcome.reason);
    bool aborted = outcome.result == "aborted";
    event.add("duration_ms", aborted ? 0 : SessionTelemetry::milliseconds_since(data_start_));
    if (answer_delay_us) event.add("answer_delay_us", *answer_delay_us);
    if (outcome.result == "relayed") {
      metrics::gateway().messages.with({"received"}).inc(outcome.delivered);
      metrics::gateway().message_bytes.with({"received"}).inc(outcome.size * outcome.delivered);
      event.info();
    } else {
      event.warn();
    }
  }
  void transaction(bool open) override {
    if (open) {
      transaction_.emplace(counters_);
    } else {
      transaction_.reset();
    }
  }
  bool draining() const override { return counters_->draining; }

  const config::Config& config_;
  std::shared_ptr<GatewayCounters> counters_;
  Connection connection_;
  IndicatorRecorder recorder_;
  InspectionQueue inspection_;  // the messages' inspection, off this io thread
  std::optional<TransactionMark> transaction_;
  Clock::time_point backend_start_{};
  Clock::time_point data_start_{};
  Clock::time_point last_backend_reply_{};
  std::optional<core::DeliveryOutcome> answered_;  // logged once Postfix has its answer
  PendingDelivery pending_;                        // the message's events, until settled
  std::shared_ptr<MailboxGate> gate_;
  MailboxGate::Pass gate_pass_;  // the recipients' mailboxes, while Dovecot delivers
};

// Only the Postfix hosts of lmtp.allowed_peers (loopback when none is named) may deliver: any
// other peer is closed at once, before a byte is read or Dovecot is asked.
// Behind a balancer, the peer is the Postfix host its PROXY header names.
bool peer_allowed(const ConnectionEnds& ends, const config::LmtpConfig& lmtp) {
  if (ends.peer_address.empty()) return false;  // gone already
  auto address = protocol::parse_ip_address(ends.peer_address);
  if (address && lmtp.peer_allowed(*address)) return true;
  metrics::gateway().connections_refused.with({"lmtp", "peer_not_allowed"}).inc();
  Event event("peer_refused");
  event.add("listener", "lmtp").add("peer", ends.peer_address);
  if (!ends.via.empty()) event.add("via", ends.via);
  event.add("reason", "not_in_allowed_peers").warn();
  return false;
}

}  // namespace

void start_lmtp_session(asio::ip::tcp::socket socket, ConnectionEnds ends,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters, Admission admission) {
  if (!peer_allowed(ends, environment->config.lmtp)) return;  // the socket closes here
  std::make_shared<LmtpSession>(std::move(socket), std::move(ends), environment, counters,
                                std::move(admission))
      ->start();
}

}  // namespace mssgate::daemon
