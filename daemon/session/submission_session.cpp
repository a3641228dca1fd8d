#include "daemon/session/submission_session.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "daemon/services/access_policy.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/services/indicator_event.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "daemon/session/proxy_connection.hpp"
#include "protocol/ascii.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/message_header.hpp"
#include "protocol/sasl_external.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_data.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;
using protocol::SmtpReply;
using tcp = asio::ip::tcp;

constexpr size_t kReadBytes = 16384;
constexpr unsigned kMaxAuthFailures = 3;

ProxyConnection::Timeouts smtp_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout, config.smtp.write_timeout,
          config.smtp.backend.connect_timeout, config.smtp.backend.response_timeout};
}

// The client hears the backend's codes, never its text (RFC 3463 enhanced code kept).
std::string relayed_reply(const SmtpReply& reply, std::string_view text) {
  std::string enhanced = reply.enhanced;
  if (enhanced.empty()) enhanced = std::to_string(reply.code / 100) + ".0.0";
  return std::to_string(reply.code) + " " + enhanced + " " + std::string(text) + "\r\n";
}

std::string queue_id(const SmtpReply& reply) {
  for (const auto& line : reply.lines) {
    auto at = line.find("queued as ");
    if (at != std::string::npos) {
      std::string id = line.substr(at + 10);
      auto end = id.find_first_of(" \t");
      return id.substr(0, end);
    }
  }
  return "";
}

// One submission client: EHLO, STARTTLS, AUTH EXTERNAL, then transactions relayed to Postfix
// one command at a time, DATA streamed with the sender rule enforced on the header section.
class SmtpSession final : public ProxyConnection {
 public:
  SmtpSession(tcp::socket socket, SmtpListenerKind kind,
              std::shared_ptr<const GatewayEnvironment> env,
              std::shared_ptr<GatewayCounters> counters,
              std::shared_ptr<SmtpBackendFeatures> features)
      : ProxyConnection(std::move(socket),
                        kind == SmtpListenerKind::kStartTls ? "submission" : "submissions",
                        kind == SmtpListenerKind::kImplicitTls, env, std::move(counters),
                        smtp_timeouts(env->config)),
        smtp_(config_.smtp),
        features_(std::move(features)),
        lines_(smtp_.max_line_bytes) {}

 private:
  enum class LineStatus { kLine, kTooLong, kClosed };
  enum class Next { kContinue, kClose };

  awaitable<void> run([[maybe_unused]] std::shared_ptr<ProxyConnection> self) override {
    bool opened = co_await open_session("421 4.3.2 Too many connections, try again later\r\n");
    if (!opened) co_return;
    bool greeted = co_await write_client("220 " + smtp_.hostname + " ESMTP mssgate\r\n");
    while (greeted) {
      auto [status, line] = co_await read_command_line();
      if (status == LineStatus::kClosed) break;
      if (status == LineStatus::kTooLong) {
        Event("protocol_error").add("session", id_).add("kind", "line_too_long").warn();
        bool ok = co_await write_client("500 5.5.2 Line too long\r\n");
        if (!ok) break;
        ok = co_await count_bad_command();
        if (!ok) break;
        continue;
      }
      auto command_start = Clock::now();
      auto command = protocol::parse_smtp_command(line);
      Next next = co_await handle_command(command);
      observe_command(command.verb, command_start);
      if (next == Next::kClose) break;
    }
    close_all();
  }

  // ---- client input ----------------------------------------------------------------------
  awaitable<std::pair<LineStatus, std::string>> read_command_line() {
    std::array<char, 4096> buffer;
    for (;;) {
      if (skipping_line_) {
        auto lf = pending_.find('\n');
        if (lf != std::string::npos) {
          pending_.erase(0, lf + 1);
          skipping_line_ = false;
        } else {
          pending_.clear();
        }
      }
      if (!pending_.empty()) {
        auto r = lines_.feed(pending_);
        pending_.erase(0, r.consumed);
        if (r.status == protocol::LineSplitter::Status::kLine)
          co_return std::pair{LineStatus::kLine, lines_.line()};
        if (r.status == protocol::LineSplitter::Status::kTooLong) {
          lines_.reset();
          skipping_line_ = true;
          co_return std::pair{LineStatus::kTooLong, std::string()};
        }
        continue;
      }
      auto [ec, n] = co_await read_client(asio::buffer(buffer), smtp_.command_timeout);
      if (ec) {
        note_end(ec, "client");
        co_return std::pair{LineStatus::kClosed, std::string()};
      }
      pending_.assign(buffer.data(), n);
    }
  }

  awaitable<bool> count_bad_command() {
    if (++bad_commands_ < smtp_.max_bad_commands) co_return true;
    set_close_reason("too_many_bad_commands");
    co_await write_client("421 4.7.0 Too many errors, closing the connection\r\n");
    co_return false;
  }

  awaitable<Next> answer(std::string text) {
    bool ok = co_await write_client(text);
    co_return ok ? Next::kContinue : Next::kClose;
  }

  awaitable<Next> refuse(std::string text) {
    bool ok = co_await write_client(text);
    if (!ok) co_return Next::kClose;
    ok = co_await count_bad_command();
    co_return ok ? Next::kContinue : Next::kClose;
  }

  // ---- commands --------------------------------------------------------------------------
  awaitable<Next> handle_command(const protocol::SmtpCommand& command) {
    const std::string& verb = command.verb;
    if (verb == "EHLO" || verb == "HELO") {
      Next next = co_await hello(command);
      co_return next;
    }
    if (verb == "QUIT") {
      set_close_reason("quit");
      co_await write_client("221 2.0.0 Bye\r\n");
      if (tls_active()) co_await shutdown_client_tls();
      co_return Next::kClose;
    }
    if (verb == "NOOP") {
      Next next = co_await answer("250 2.0.0 Ok\r\n");
      co_return next;
    }
    if (verb == "STARTTLS") {
      Next next = co_await start_tls();
      co_return next;
    }
    if (!tls_active()) {
      Next next = co_await refuse("530 5.7.0 Must issue a STARTTLS command first\r\n");
      co_return next;
    }
    if (verb == "AUTH") {
      Next next = co_await authenticate(command.argument);
      co_return next;
    }
    if (verb == "RSET") {
      bool reset = co_await reset_transaction(true);
      if (!reset) co_return Next::kClose;
      Next next = co_await answer("250 2.0.0 Ok\r\n");
      co_return next;
    }
    if (verb == "VRFY") {
      Next next = co_await answer(
          "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n");
      co_return next;
    }
    if (verb == "HELP") {
      Next next = co_await answer(
          "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT\r\n");
      co_return next;
    }
    if (verb == "MAIL" || verb == "RCPT" || verb == "DATA" || verb == "BDAT") {
      if (mailbox_.empty()) {
        Next next = co_await refuse("530 5.7.0 Authentication required\r\n");
        co_return next;
      }
      if (verb == "MAIL") {
        Next next = co_await mail(command.argument);
        co_return next;
      }
      if (verb == "RCPT") {
        Next next = co_await recipient(command.argument);
        co_return next;
      }
      if (verb == "BDAT") {
        Next next = co_await bdat(command.argument);
        co_return next;
      }
      Next next = co_await data(command.argument);
      co_return next;
    }
    Next next = co_await refuse("500 5.5.2 Command unrecognized\r\n");
    co_return next;
  }

  bool probe_due() const {
    constexpr int64_t kProbeIntervalMs = 10'000;
    int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count();
    int64_t due = features_->next_probe_ms.load();
    return now >= due &&
           features_->next_probe_ms.compare_exchange_strong(due, now + kProbeIntervalMs);
  }

  awaitable<Next> hello(const protocol::SmtpCommand& command) {
    if (command.argument.empty() || command.argument.find_first_of(" \t") != std::string::npos) {
      Next next = co_await refuse("501 5.5.4 Syntax: " + command.verb + " hostname\r\n");
      co_return next;
    }
    bool reset = co_await reset_transaction(true);  // EHLO implies RSET
    if (!reset) co_return Next::kClose;
    helo_ = command.argument;
    if (command.verb == "HELO") {
      Next next = co_await answer("250 " + smtp_.hostname + "\r\n");
      co_return next;
    }
    // Learn what the backend offers before the first EHLO answer that promises it.
    if (tls_active() && !features_->known && probe_due()) co_await ensure_backend_connected();
    std::vector<std::string> list{
        smtp_.hostname, "PIPELINING",          "SIZE " + std::to_string(smtp_.max_message_bytes),
        "8BITMIME",     "ENHANCEDSTATUSCODES", "CHUNKING"};
    if (features_->dsn) list.push_back("DSN");
    if (features_->smtputf8) list.push_back("SMTPUTF8");
    if (!tls_active()) {
      list.push_back("STARTTLS");
    } else if (mailbox_.empty()) {
      list.push_back(tokens_enabled() ? "AUTH EXTERNAL XOAUTH2 OAUTHBEARER" : "AUTH EXTERNAL");
    }
    std::string text;
    for (size_t i = 0; i < list.size(); ++i)
      text += "250" + std::string(i + 1 < list.size() ? "-" : " ") + list[i] + "\r\n";
    Next next = co_await answer(text);
    co_return next;
  }

  awaitable<Next> start_tls() {
    if (tls_active()) {
      Next next = co_await refuse("503 5.5.1 TLS already active\r\n");
      co_return next;
    }
    if (!pending_.empty()) {
      // Bytes sent before the handshake would be taken as if protected by it (CVE-2011-0411).
      Event("protocol_error").add("session", id_).add("kind", "pipelined_starttls").warn();
      set_close_reason("pipelined_after_starttls");
      co_await write_client(
          "421 4.5.0 STARTTLS must be the last command before the TLS handshake\r\n");
      co_return Next::kClose;
    }
    bool ok = co_await write_client("220 2.0.0 Ready to start TLS\r\n");
    if (!ok) co_return Next::kClose;
    ok = co_await tls_handshake();
    if (!ok) co_return Next::kClose;
    helo_.clear();  // RFC 3207: the client starts over with EHLO
    lines_.reset();
    co_return Next::kContinue;
  }

  awaitable<std::optional<std::string>> read_sasl_response() {
    auto [status, line] = co_await read_command_line();
    if (status == LineStatus::kClosed) co_return std::nullopt;
    if (status == LineStatus::kTooLong) co_return std::string("*");
    co_return line;
  }

  awaitable<Next> authenticate(const std::string& argument) {
    if (!mailbox_.empty()) {
      Next next = co_await refuse("503 5.5.1 Already authenticated\r\n");
      co_return next;
    }
    if (mail_from_) {
      Next next = co_await refuse("503 5.5.1 AUTH not permitted during a mail transaction\r\n");
      co_return next;
    }
    auto space = argument.find(' ');
    std::string mechanism = protocol::ascii_upper(argument.substr(0, space));
    std::string initial = space == std::string::npos ? std::string() : argument.substr(space + 1);
    bool token_mechanism =
        tokens_enabled() && (mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER");
    if (mechanism != "EXTERNAL" && !token_mechanism) {
      log_auth(mechanism, false, "unsupported_mechanism", "");
      Next next = co_await refuse("504 5.5.4 Unrecognized authentication type\r\n");
      co_return next;
    }
    std::string response = initial;
    if (initial.empty()) {
      bool ok = co_await write_client("334 \r\n");
      if (!ok) co_return Next::kClose;
      auto line = co_await read_sasl_response();
      if (!line) co_return Next::kClose;
      response = *line;
    }
    using Outcome = AccessDecision::Outcome;
    AccessDecision decision;
    if (token_mechanism) {
      auto decoded = mechanism == "XOAUTH2" ? protocol::decode_xoauth2(response)
                                            : protocol::decode_oauthbearer(response);
      if (auto* error = std::get_if<protocol::SaslOAuthError>(&decoded)) {
        Next next = co_await bad_sasl_response(mechanism, protocol::describe(*error),
                                               *error == protocol::SaslOAuthError::kCancelled);
        co_return next;
      }
      decision = co_await authorize_token(std::get<protocol::OAuthCredentials>(decoded));
    } else {
      auto decoded = protocol::decode_sasl_external(response);
      if (auto* error = std::get_if<protocol::SaslExternalError>(&decoded)) {
        Next next = co_await bad_sasl_response(mechanism, protocol::describe(*error),
                                               *error == protocol::SaslExternalError::kCancelled);
        co_return next;
      }
      decision = decide_certificate_access(*env_->directory, peer_certificate_,
                                           std::get<protocol::SaslExternalRequest>(decoded).authzid,
                                           config_.auth);
    }
    if (decision.outcome == Outcome::kAllowed) {
      auto senders = env_->directory->allowed_senders(decision.mailbox);
      if (!senders.ok())
        decision = {Outcome::kTemporaryFailure, decision.mailbox, "directory_unavailable", ""};
      allowed_senders_ = senders.value;
    }
    if (decision.outcome == Outcome::kAllowed) {
      mailbox_ = decision.mailbox;  // XCLIENT names it
      bool ready = co_await ensure_backend_ready();
      if (!ready) {
        mailbox_.clear();
        decision = {Outcome::kTemporaryFailure, decision.mailbox, "backend_unavailable", ""};
      }
    }
    if (decision.outcome != Outcome::kAllowed) {
      log_auth(mechanism, false, decision.reason, decision.mailbox);
      bool definitive = decision.outcome == Outcome::kAuthenticationFailed ||
                        decision.outcome == Outcome::kAuthorizationFailed;
      if (token_mechanism && definitive) {
        // RFC 7628 §3.2.2: the error status as a challenge, the client's (empty) answer, then 535.
        bool ok = co_await write_client(
            "334 " + protocol::oauth_error_challenge("invalid_token", "openid") + "\r\n");
        if (!ok) co_return Next::kClose;
        auto ignored = co_await read_sasl_response();
        if (!ignored) co_return Next::kClose;
      }
      std::string text = decision.outcome == Outcome::kTemporaryFailure
                             ? "454 4.7.0 Mail service temporarily unavailable, try again later\r\n"
                         : decision.outcome == Outcome::kLimitReached
                             ? "454 4.7.0 " + decision.client_text + "\r\n"
                             : "535 5.7.8 " + decision.client_text + "\r\n";
      Next next = co_await auth_failed(text);
      co_return next;
    }
    log_auth(mechanism, true, "ok", mailbox_);
    record_sign_in(mechanism);
    Next next = co_await answer("235 2.7.0 Authentication successful\r\n");
    co_return next;
  }

  awaitable<Next> bad_sasl_response(const std::string& mechanism, std::string_view reason,
                                    bool cancelled) {
    log_auth(mechanism, false, reason, "");
    std::string answer_text = cancelled ? std::string("501 5.7.0 Authentication cancelled\r\n")
                                        : "501 5.5.2 Invalid SASL " + mechanism + " response\r\n";
    Next next = co_await auth_failed(answer_text);
    co_return next;
  }

  awaitable<Next> auth_failed(std::string text) {
    bool ok = co_await write_client(text);
    if (!ok) co_return Next::kClose;
    if (++auth_failures_ < kMaxAuthFailures) co_return Next::kContinue;
    set_close_reason("too_many_auth_failures");
    co_await write_client("421 4.7.0 Too many authentication failures\r\n");
    co_return Next::kClose;
  }

  bool sender_allowed(const std::string& address) const {
    auto normalized = protocol::normalize_mailbox_address(address);
    if (!normalized) return false;
    return *normalized == mailbox_ || std::find(allowed_senders_.begin(), allowed_senders_.end(),
                                                *normalized) != allowed_senders_.end();
  }

  awaitable<Next> mail(const std::string& argument) {
    if (draining()) {
      set_close_reason("stopping");
      co_await write_client("421 4.3.2 Service shutting down, try again later\r\n");
      co_return Next::kClose;
    }
    if (mail_from_) {
      Next next = co_await refuse("503 5.5.1 Sender already specified\r\n");
      co_return next;
    }
    auto path = protocol::parse_path_argument(argument, "FROM");
    if (!path) {
      Next next = co_await refuse("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n");
      co_return next;
    }
    for (const auto& [key, value] : path->parameters) {
      bool known = key == "SIZE" || key == "BODY" || key == "RET" || key == "ENVID" ||
                   (key == "SMTPUTF8" && features_->smtputf8);
      if (!known) {
        Next next = co_await refuse("555 5.5.4 Unsupported MAIL parameter " + key + "\r\n");
        co_return next;
      }
      if (key == "SIZE" && (value.empty() || value.size() > 19 ||
                            value.find_first_not_of("0123456789") != std::string::npos ||
                            std::stoull(value) > smtp_.max_message_bytes)) {
        Next next =
            co_await answer("552 5.3.4 Message size exceeds fixed maximum message size\r\n");
        co_return next;
      }
    }
    bool null_sender = path->address.empty();
    if ((null_sender && !smtp_.allow_null_sender) ||
        (!null_sender && !sender_allowed(path->address))) {
      Event("sender_refused")
          .add("session", id_)
          .add("mailbox", mailbox_)
          .add("where", "envelope")
          .warn();
      Next next = co_await answer("550 5.7.1 Sender address not allowed for this mailbox\r\n");
      co_return next;
    }
    bool ready = co_await ensure_backend_ready();
    if (!ready) {
      Next next =
          co_await answer("451 4.4.1 Mail service temporarily unavailable, try again later\r\n");
      co_return next;
    }
    auto accepted = co_await relay_to_backend("MAIL FROM:<" + path->address + ">", *path, "Sender");
    if (!accepted) co_return Next::kClose;
    if (!*accepted) co_return Next::kContinue;
    mail_from_ = path->address;
    begin_transaction();
    transaction_start_ = Clock::now();
    Next next = co_await answer("250 2.1.0 Sender OK\r\n");
    co_return next;
  }

  awaitable<Next> recipient(const std::string& argument) {
    if (!mail_from_) {
      Next next = co_await refuse("503 5.5.1 Need MAIL command\r\n");
      co_return next;
    }
    auto path = protocol::parse_path_argument(argument, "TO");
    if (!path || path->address.empty()) {
      Next next = co_await refuse("501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n");
      co_return next;
    }
    for (const auto& [key, value] : path->parameters) {
      if (key != "NOTIFY" && key != "ORCPT") {
        Next next = co_await refuse("555 5.5.4 Unsupported RCPT parameter " + key + "\r\n");
        co_return next;
      }
    }
    if (recipients_.size() >= smtp_.max_recipients) {
      Next next = co_await answer("452 4.5.3 Too many recipients\r\n");
      co_return next;
    }
    auto accepted =
        co_await relay_to_backend("RCPT TO:<" + path->address + ">", *path, "Recipient");
    if (!accepted) co_return Next::kClose;
    if (!*accepted) co_return Next::kContinue;
    recipients_.push_back(path->address);
    Next next = co_await answer("250 2.1.5 Recipient OK\r\n");
    co_return next;
  }

  // Sends MAIL or RCPT to Postfix with the client's parameters. When Postfix refuses, tells the
  // client its codes with a sentence about `subject`. Returns whether Postfix accepted, or
  // nullopt when the client is gone.
  awaitable<std::optional<bool>> relay_to_backend(std::string line,
                                                  const protocol::SmtpPathArgument& path,
                                                  std::string_view subject) {
    if (!path.parameter_text.empty()) line += " " + path.parameter_text;
    line += "\r\n";
    auto reply = co_await backend_command(line);
    if (!reply && !mail_from_) {
      // No transaction is open yet: Postfix may just have closed an idle connection. Once more.
      bool ready = co_await ensure_backend_ready();
      if (ready) reply = co_await backend_command(line);
    }
    std::string refusal;
    if (!reply) {
      refusal = "451 4.4.1 Mail service temporarily unavailable, try again later\r\n";
    } else if (!reply->positive()) {
      refusal =
          relayed_reply(*reply, std::string(subject) +
                                    (reply->transient() ? " temporarily refused, try again later"
                                                        : " refused by the mail system"));
    } else {
      co_return true;
    }
    bool written = co_await write_client(refusal);
    if (!written) co_return std::nullopt;
    co_return false;
  }

  // ---- DATA ------------------------------------------------------------------------------
  enum class Fate {
    kHolding,
    kStreaming,
    kSenderRefused,
    kTooLarge,
    kHeaderTooLarge,
    kBackendRefused,
    kBackendFailed
  };

  // The message of the current transaction, as DATA or BDAT chunks deliver it.
  struct OutgoingMessage {
    explicit OutgoingMessage(size_t max_header_bytes) : headers(max_header_bytes) {}
    // `indicators`: the inspector's settings when there is a journal to record into, else null.
    OutgoingMessage(size_t max_header_bytes, const config::IndicatorsConfig* indicators)
        : headers(max_header_bytes) {
      if (indicators) inspector.emplace(inspector_limits(*indicators));
    }
    std::optional<protocol::MessageInspector> inspector;  // when indicators are on
    protocol::HeaderSectionReader headers;
    protocol::SmtpDataWriter writer;
    Fate fate = Fate::kHolding;
    std::optional<SmtpReply> backend_reply;
    std::string held;     // the header section (and what came with it), until the From check
    std::string encoded;  // dot-stuffed bytes on their way to Postfix, reused chunk after chunk
    uint64_t size = 0;

    bool failed() const { return fate != Fate::kHolding && fate != Fate::kStreaming; }
  };

  // What a message is inspected with: the indicator settings when a journal records the events.
  const config::IndicatorsConfig* inspection() const {
    return indicators_enabled() ? &config_.indicators : nullptr;
  }

  // Takes the next bytes of the message (unstuffed); `last` says the message ends with them.
  // The header section is held until the From header is checked, the rest streamed to Postfix.
  awaitable<void> absorb(OutgoingMessage& m, std::string_view content, bool last) {
    m.size += content.size();
    if (m.inspector && !m.failed()) m.inspector->feed(content);
    if (m.size > smtp_.max_message_bytes && !m.failed()) {
      if (m.fate == Fate::kStreaming) drop_backend();  // the only way to abort a DATA in progress
      m.fate = Fate::kTooLarge;
    }
    std::string& out = m.encoded;
    out.clear();
    if (m.fate == Fate::kHolding) {
      auto h = m.headers.feed(content);
      m.held += content;
      if (h.status == protocol::HeaderSectionReader::Status::kTooLarge) {
        m.fate = Fate::kHeaderTooLarge;
      } else if (h.status == protocol::HeaderSectionReader::Status::kComplete || last) {
        if (last) m.headers.end_of_message();
        m.fate = co_await open_backend_data(m.headers, m.backend_reply);
        if (m.fate == Fate::kStreaming) m.writer.encode(m.held, out);
        m.held = std::string();
      }
    } else if (m.fate == Fate::kStreaming) {
      m.writer.encode(content, out);
    }
    if (m.fate == Fate::kStreaming && !out.empty()) {
      bool written = co_await write_backend(out);
      if (!written) m.fate = backend_lost();
    }
  }

  // The message is complete: ends it at Postfix, answers the client, ends the transaction.
  awaitable<Next> conclude(OutgoingMessage& m) {
    if (m.fate == Fate::kStreaming) {
      std::string out;
      m.writer.finish(out);
      bool written = co_await write_backend(out);
      if (written)
        m.backend_reply = co_await read_backend_reply(smtp_.backend.data_response_timeout);
      if (!written || !m.backend_reply) m.fate = backend_lost();
    }
    if (m.fate == Fate::kStreaming && m.backend_reply->positive() && m.inspector) {
      // Postfix has the message: its event is made durable before the client hears 250.
      co_await record_sent(m);
    }
    Next next = co_await finish_message(m.fate, m.backend_reply, m.size, m.headers);
    co_return next;
  }

  awaitable<void> record_sent(OutgoingMessage& m) {
    const auto& settings = config_.indicators;
    auto event = new_indicator_event("sent", mailbox_, settings);
    event.key = "sent:" + random_key();
    event.mailbox_type = mailbox_type_;
    event.auth_mode = auth_mode_;
    event.azp = token_azp_;
    event.queue_id = queue_id(*m.backend_reply);
    event.size = m.size;
    event.recipients = static_cast<unsigned>(recipients_.size());
    for (const auto& address : recipients_) {
      switch (counterpart_of(address, settings, *env_->directory)) {
        case Counterpart::kSameOperator:
          ++event.to_same_operator;
          break;
        case Counterpart::kOtherOperator:
          ++event.to_other_operator;
          break;
        case Counterpart::kPatient:
          ++event.to_patient;
          break;
      }
    }
    fill_from_facts(event, m.inspector->finish());
    m.inspector.reset();
    co_await record_indicator(std::move(event));
  }

  // A refused message is read to its end so that the session can go on, but only up to here.
  uint64_t drain_limit() const {
    return 2 * static_cast<uint64_t>(smtp_.max_message_bytes) + (1 << 20);
  }

  awaitable<Next> too_much_to_drain(OutgoingMessage& m) {
    if (m.fate == Fate::kStreaming) drop_backend();
    log_message("refused", "too_large", m.size, m.headers, "");
    set_close_reason("message_too_large");
    co_await write_client(
        "552 5.3.4 Message size exceeds fixed maximum message size; closing the connection\r\n");
    co_return Next::kClose;
  }

  // The checks DATA and BDAT share; an answer for the client when the transaction cannot take
  // a message.
  std::optional<std::string> message_refusal() const {
    if (!mail_from_) return "503 5.5.1 Need MAIL command\r\n";
    if (recipients_.empty()) return "554 5.5.1 No valid recipients\r\n";
    return std::nullopt;
  }

  awaitable<Next> data(const std::string& argument) {
    if (bdat_message_) {
      Next next = co_await refuse("503 5.5.1 DATA after BDAT in the same transaction\r\n");
      co_return next;
    }
    if (auto refusal = message_refusal()) {
      Next next = co_await refuse(*refusal);
      co_return next;
    }
    if (!argument.empty()) {
      Next next = co_await refuse("501 5.5.4 Syntax: DATA\r\n");
      co_return next;
    }
    bool ok = co_await write_client("354 End data with <CR><LF>.<CR><LF>\r\n");
    if (!ok) co_return Next::kClose;

    OutgoingMessage message(smtp_.max_header_bytes, inspection());
    protocol::SmtpDataReader reader;
    std::string content;
    std::vector<char> buffer(kReadBytes);
    bool complete = false;
    while (!complete) {
      if (pending_.empty()) {
        auto [ec, n] = co_await read_client(asio::buffer(buffer), smtp_.data_timeout);
        if (ec) {
          note_end(ec, "client");
          log_message("aborted", "client_gone", message.size, message.headers, "");
          co_return Next::kClose;  // closing the backend aborts its transaction
        }
        pending_.assign(buffer.data(), n);
      }
      content.clear();
      auto r = reader.feed(pending_, content);
      pending_.erase(0, r.consumed);
      complete = r.complete;
      co_await absorb(message, content, complete);
      if (message.size > drain_limit()) {
        Next next = co_await too_much_to_drain(message);
        co_return next;
      }
    }
    Next next = co_await conclude(message);
    co_return next;
  }

  // BDAT (RFC 3030): chunks of exactly the announced size, the last one marked LAST. Postfix
  // gets the message as DATA all the same, so CHUNKING does not depend on the backend.
  awaitable<Next> bdat(const std::string& argument) {
    auto space = argument.find(' ');
    std::string size_text = argument.substr(0, space);
    std::string rest = space == std::string::npos ? std::string() : argument.substr(space + 1);
    bool last = protocol::ascii_iequals(rest, "LAST");
    if (size_text.empty() || size_text.size() > 12 ||
        size_text.find_first_not_of("0123456789") != std::string::npos ||
        (!rest.empty() && !last)) {
      // Without a size, the chunk's end cannot be found: the session cannot go on.
      set_close_reason("bad_bdat");
      co_await write_client("501 5.5.4 Syntax: BDAT size [LAST]; closing the connection\r\n");
      co_return Next::kClose;
    }
    uint64_t remaining = std::stoull(size_text);
    std::optional<std::string> refusal = message_refusal();
    uint64_t so_far = bdat_message_ ? bdat_message_->size : 0;
    if (so_far + remaining > drain_limit()) {
      // Far over the cap: not worth reading only to drop it.
      OutgoingMessage empty(smtp_.max_header_bytes);
      OutgoingMessage& so_far_message = bdat_message_ ? *bdat_message_ : empty;
      Next next = co_await too_much_to_drain(so_far_message);
      co_return next;
    }
    if (!refusal && !bdat_message_) bdat_message_.emplace(smtp_.max_header_bytes, inspection());
    // The chunk is read in full whatever happens to it (RFC 3030 §2).
    std::vector<char> buffer(kReadBytes);
    bool ended = false;
    while (remaining > 0) {
      if (pending_.empty()) {
        auto [ec, n] = co_await read_client(asio::buffer(buffer), smtp_.data_timeout);
        if (ec) {
          note_end(ec, "client");
          if (bdat_message_)
            log_message("aborted", "client_gone", bdat_message_->size, bdat_message_->headers, "");
          co_return Next::kClose;
        }
        pending_.assign(buffer.data(), n);
      }
      size_t take = static_cast<size_t>(std::min<uint64_t>(remaining, pending_.size()));
      if (!refusal) {
        ended = last && take == remaining;
        co_await absorb(*bdat_message_, std::string_view(pending_).substr(0, take), ended);
      }
      pending_.erase(0, take);
      remaining -= take;
    }
    if (refusal) {
      Next next = co_await refuse(*refusal);
      co_return next;
    }
    if (last && !ended) co_await absorb(*bdat_message_, {}, true);  // "BDAT 0 LAST"
    if (last || bdat_message_->failed()) {
      // A failed message is answered at once; later chunks find no transaction (503).
      OutgoingMessage message = std::move(*bdat_message_);
      bdat_message_.reset();
      Next next = co_await conclude(message);
      co_return next;
    }
    Next next = co_await answer("250 2.0.0 " + size_text + " octets received\r\n");
    co_return next;
  }

  // Checks the From header, then opens the backend's DATA.
  awaitable<Fate> open_backend_data(const protocol::HeaderSectionReader& headers,
                                    std::optional<SmtpReply>& reply) {
    auto from = headers.values("From");
    std::vector<std::string> authors;
    for (const auto& value : from) {
      for (auto& address : protocol::extract_addresses(value))
        authors.push_back(std::move(address));
    }
    bool allowed = from.size() == 1 && !authors.empty() &&
                   std::all_of(authors.begin(), authors.end(),
                               [&](const std::string& a) { return sender_allowed(a); });
    if (!allowed) {
      Event("sender_refused")
          .add("session", id_)
          .add("mailbox", mailbox_)
          .add("where", "from_header")
          .warn();
      co_return Fate::kSenderRefused;
    }
    reply = co_await backend_command("DATA\r\n");
    if (!reply) co_return backend_lost();
    if (reply->code != 354) co_return Fate::kBackendRefused;
    co_return Fate::kStreaming;
  }

  awaitable<Next> finish_message(Fate fate, const std::optional<SmtpReply>& reply, uint64_t size,
                                 const protocol::HeaderSectionReader& headers) {
    std::string answer_text;
    switch (fate) {
      case Fate::kStreaming:
        if (reply->positive()) {
          std::string id = queue_id(*reply);
          log_message("accepted", "", size, headers, id);
          answer_text =
              "250 2.0.0 Ok: queued as " + (id.empty() ? std::string("(unknown)") : id) + "\r\n";
        } else {
          log_message("refused", "backend_refused", size, headers, "");
          answer_text = relayed_reply(*reply, reply->transient()
                                                  ? "Message temporarily refused, try again later"
                                                  : "Message refused by the mail system");
        }
        break;
      case Fate::kBackendRefused:
        log_message("refused", "backend_refused_data", size, headers, "");
        answer_text = relayed_reply(*reply, reply->transient()
                                                ? "Message temporarily refused, try again later"
                                                : "Message refused by the mail system");
        break;
      case Fate::kSenderRefused:
        log_message("refused", "from_header", size, headers, "");
        answer_text = "550 5.7.1 From header must be the authenticated mailbox\r\n";
        break;
      case Fate::kTooLarge:
        log_message("refused", "too_large", size, headers, "");
        answer_text = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
        break;
      case Fate::kHeaderTooLarge:
        log_message("refused", "header_too_large", size, headers, "");
        answer_text = "552 5.3.4 Message header too large\r\n";
        break;
      case Fate::kBackendFailed:
      case Fate::kHolding:
        log_message("failed", "backend_lost", size, headers, "");
        answer_text =
            "451 4.4.2 Connection to the mail system lost, message not accepted: try again\r\n";
        break;
    }
    bool reset = co_await reset_transaction(fate != Fate::kStreaming);
    if (!reset) co_return Next::kClose;
    Next next = co_await answer(answer_text);
    co_return next;
  }

  void log_message(std::string_view result, std::string_view reason, uint64_t size,
                   const protocol::HeaderSectionReader& headers, const std::string& queue) {
    Event event("message");
    event.add("session", id_).add("mailbox", mailbox_);
    if (headers.complete()) {
      auto ids = headers.values("Message-ID");
      if (!ids.empty()) event.add("message_id", ids.front().substr(0, 200));
    }
    event.add("size", size).add("recipients", recipients_.size());
    if (!queue.empty()) event.add("queue_id", queue);
    event.add("result", result);
    if (!reason.empty()) event.add("reason", reason);
    event.add("duration_ms", milliseconds_since(transaction_start_));
    if (result == "accepted") {
      metrics::gateway().messages.with({"sent"}).inc();
      metrics::gateway().message_bytes.with({"sent"}).inc(size);
      event.info();
    } else {
      event.warn();
    }
  }

  // Ends the transaction on both sides. With `tell_backend`, an open backend transaction is
  // reset too. Returns false only when the client is gone.
  awaitable<bool> reset_transaction(bool tell_backend) {
    if (tell_backend && backend_ready_ && mail_from_) {
      auto reply = co_await backend_command("RSET\r\n");
      if (!reply || !reply->positive()) drop_backend();
    }
    mail_from_.reset();
    end_transaction();
    recipients_.clear();
    bdat_message_.reset();
    co_return !closed();
  }

  // ---- backend ---------------------------------------------------------------------------
  Fate backend_lost() {
    drop_backend();
    return Fate::kBackendFailed;
  }

  void drop_backend() {
    backend_ready_ = false;
    backend_connected_ = false;
    close_backend();
  }

  awaitable<std::optional<SmtpReply>> backend_command(std::string line) {
    bool written = co_await write_backend(line);
    if (!written) {
      drop_backend();
      co_return std::nullopt;
    }
    auto reply = co_await read_backend_reply();
    if (!reply) drop_backend();
    co_return reply;
  }

  // Connects and greets the backend, and learns its extensions.
  awaitable<bool> ensure_backend_connected() {
    if (backend_connected_) co_return true;
    auto start = Clock::now();
    bool connected = co_await connect_backend(smtp_.backend.address);
    if (!connected) co_return false;
    auto greeting = co_await read_backend_reply();
    if (!greeting || greeting->code != 220) {
      backend_failed("greeting", greeting ? "unexpected greeting" : "no greeting", start);
      co_return false;
    }
    auto ehlo = co_await backend_command("EHLO " + smtp_.backend.helo_name + "\r\n");
    if (!ehlo || ehlo->code != 250) {
      backend_failed("ehlo", ehlo ? "refused" : "no answer", start);
      co_return false;
    }
    backend_xclient_ = false;
    bool dsn = false, smtputf8 = false;
    for (const auto& line : ehlo->lines) {
      std::string word = protocol::ascii_upper(line.substr(0, line.find(' ')));
      if (word == "XCLIENT") backend_xclient_ = true;
      if (word == "DSN") dsn = true;
      if (word == "SMTPUTF8") smtputf8 = true;
    }
    features_->dsn = dsn;
    features_->smtputf8 = smtputf8;
    features_->known = true;
    backend_connected_ = true;
    co_return true;
  }

  // Connected, and told who the client and the mailbox are (XCLIENT).
  awaitable<bool> ensure_backend_ready() {
    if (backend_ready_) co_return true;
    auto start = Clock::now();
    bool connected = co_await ensure_backend_connected();
    if (!connected) co_return false;
    if (!backend_xclient_) {
      backend_failed("xclient", "the backend does not offer XCLIENT to this host", start);
      drop_backend();
      co_return false;
    }
    std::string address =
        peer_address_.find(':') != std::string::npos ? "IPV6:" + peer_address_ : peer_address_;
    std::string xclient =
        "XCLIENT ADDR=" + protocol::xtext_encode(address) + " PORT=" + std::to_string(peer_port_) +
        " PROTO=ESMTP HELO=" + protocol::xtext_encode(helo_.empty() ? "unknown" : helo_) +
        " LOGIN=" + protocol::xtext_encode(mailbox_) + "\r\n";
    auto greeting = co_await backend_command(xclient);
    if (!greeting || greeting->code != 220) {
      backend_failed("xclient", greeting ? "refused" : "no answer", start);
      drop_backend();
      co_return false;
    }
    // After XCLIENT, Postfix logs the client's own EHLO name.
    std::string hello = "EHLO " + (helo_.empty() ? smtp_.backend.helo_name : helo_) + "\r\n";
    auto ehlo = co_await backend_command(hello);
    if (!ehlo || ehlo->code != 250) {
      backend_failed("ehlo", ehlo ? "refused" : "no answer", start);
      drop_backend();
      co_return false;
    }
    Event("backend")
        .add("session", id_)
        .add("result", "ok")
        .add("mailbox", mailbox_)
        .add("duration_ms", milliseconds_since(start))
        .info();
    backend_ready_ = true;
    co_return true;
  }

  const config::SmtpConfig& smtp_;
  std::shared_ptr<SmtpBackendFeatures> features_;
  protocol::LineSplitter lines_;
  std::string pending_;  // client bytes read and not yet used
  bool skipping_line_ = false;
  std::string helo_;
  std::vector<std::string> allowed_senders_;
  std::optional<std::string> mail_from_;
  std::vector<std::string> recipients_;  // accepted in this transaction
  Clock::time_point transaction_start_;
  std::optional<OutgoingMessage> bdat_message_;  // between the BDAT chunks of one message
  bool backend_connected_ = false;
  bool backend_ready_ = false;
  bool backend_xclient_ = false;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
};

}  // namespace

void start_smtp_session(tcp::socket socket, SmtpListenerKind kind,
                        std::shared_ptr<const GatewayEnvironment> environment,
                        std::shared_ptr<GatewayCounters> counters,
                        std::shared_ptr<SmtpBackendFeatures> features) {
  std::make_shared<SmtpSession>(std::move(socket), kind, std::move(environment),
                                std::move(counters), std::move(features))
      ->start();
}

}  // namespace mssgate::daemon
