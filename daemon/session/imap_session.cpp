#include "daemon/session/imap_session.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <string>

#include "daemon/services/access_policy.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/session/proxy_connection.hpp"
#include "protocol/ascii.hpp"
#include "protocol/base64.hpp"
#include "protocol/imap_command_parser.hpp"
#include "protocol/imap_response.hpp"
#include "protocol/sasl_external.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;

constexpr size_t kPreauthReadBytes = 4096;
constexpr unsigned kMaxAuthFailures = 3;

ProxyConnection::Timeouts imap_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout,
          std::min(config.imap.write_timeout, config.imap.login_timeout),
          config.imap.backend.connect_timeout, config.imap.backend.response_timeout};
}

// One IMAP client: pre-authentication dialogue, STARTTLS, SASL EXTERNAL, login to Dovecot as
// the mailbox, then a byte relay.
class ImapSession final : public ProxyConnection {
 public:
  ImapSession(tcp::socket socket, ImapListenerKind kind,
              std::shared_ptr<const GatewayEnvironment> env,
              std::shared_ptr<GatewayCounters> counters)
      : ProxyConnection(std::move(socket), kind == ImapListenerKind::kStartTls ? "imap" : "imaps",
                        kind == ImapListenerKind::kImplicitTls, env, std::move(counters),
                        imap_timeouts(env->config)),
        parser_(parser_limits()) {}

 private:
  enum class Next { kContinue, kAuthenticated, kClose };

  protocol::ImapCommandParser::Limits parser_limits() const {
    return {config_.imap.max_line_bytes, config_.imap.max_literal_bytes};
  }

  std::string capabilities() const {
    std::string caps = "IMAP4rev1 SASL-IR LITERAL+ ID";
    if (!tls_active()) {
      caps += " STARTTLS";
    } else {
      caps += " AUTH=EXTERNAL";
      if (tokens_enabled()) caps += " AUTH=XOAUTH2 AUTH=OAUTHBEARER";
    }
    caps += " LOGINDISABLED";
    return caps;
  }

  // `self` keeps the session alive for as long as this coroutine runs.
  awaitable<void> run([[maybe_unused]] std::shared_ptr<ProxyConnection> self) override {
    bool opened =
        co_await open_session("* BYE [UNAVAILABLE] Too many connections, try again later\r\n");
    if (!opened) co_return;
    if (!co_await write_client("* OK [CAPABILITY " + capabilities() + "] mssgate ready.\r\n")) {
      close_all();
      co_return;
    }
    std::array<char, kPreauthReadBytes> buffer;
    for (;;) {
      if (pending_.empty()) {
        auto [ec, n] = co_await read_client(asio::buffer(buffer), config_.imap.login_timeout);
        if (ec) {
          note_end(ec, "client");
          break;
        }
        pending_.assign(buffer.data(), n);
      }
      auto result = parser_.feed(pending_);
      pending_.erase(0, result.consumed);
      using Status = protocol::ImapCommandParser::Status;
      if (result.status == Status::kNeedMore) continue;
      if (result.status == Status::kNeedLiteralContinuation) {
        if (!co_await write_client("+ Ready for literal data\r\n")) break;
        continue;
      }
      if (result.status == Status::kError) {
        if (!co_await answer_parse_error()) break;
        continue;
      }
      if (result.status != Status::kCommand) continue;
      auto command_start = Clock::now();
      std::string verb = parser_.command().name;
      Next next = co_await handle_command(parser_.command());
      observe_command(verb, command_start);
      if (next == Next::kClose) break;
      if (next == Next::kAuthenticated) {
        start_relay(std::move(pending_), {}, config_.imap.idle_timeout);
        co_return;
      }
    }
    close_all();
  }

  // Returns false when the session must end.
  awaitable<bool> answer_parse_error() {
    const auto& error = parser_.error();
    using Kind = protocol::ImapParseError::Kind;
    Event("protocol_error")
        .add("session", id_)
        .add("kind", error.kind == Kind::kLineTooLong       ? "line_too_long"
                     : error.kind == Kind::kLiteralTooLarge ? "literal_too_large"
                                                            : "syntax")
        .add("detail", error.message)
        .warn();
    if (error.fatal) {
      set_close_reason(error.kind == Kind::kLineTooLong ? "line_too_long" : "literal_too_large");
      std::string code = error.kind == Kind::kLiteralTooLarge ? "[TOOBIG] " : "";
      co_await write_client("* BYE " + code + error.message + "\r\n");
      co_return false;
    }
    if (error.kind == Kind::kLiteralTooLarge) {
      if (!co_await write_client(error.tag + " NO [TOOBIG] " + error.message + "\r\n"))
        co_return false;
    } else if (!co_await write_client(error.tag + " BAD Error in IMAP command: " + error.message +
                                      "\r\n")) {
      co_return false;
    }
    {
      bool result = co_await count_bad_command();
      co_return result;
    }
  }

  awaitable<bool> count_bad_command() {
    if (++bad_commands_ < config_.imap.max_bad_commands) co_return true;
    set_close_reason("too_many_bad_commands");
    co_await write_client("* BYE Too many invalid commands\r\n");
    co_return false;
  }

  awaitable<Next> handle_command(const protocol::ImapCommand& command) {
    const std::string& tag = command.tag;
    const std::string& name = command.name;
    if (name == "CAPABILITY") {
      bool ok = co_await write_client("* CAPABILITY " + capabilities() + "\r\n" + tag +
                                      " OK Capability completed.\r\n");
      co_return ok ? Next::kContinue : Next::kClose;
    }
    if (name == "NOOP") {
      {
        bool ok = co_await write_client(tag + " OK NOOP completed.\r\n");
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    if (name == "LOGOUT") {
      set_close_reason("logout");
      co_await write_client("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n");
      if (tls_active()) co_await shutdown_client_tls();
      co_return Next::kClose;
    }
    if (name == "ID") {
      bool ok =
          co_await write_client("* ID (\"name\" \"mssgate\")\r\n" + tag + " OK ID completed.\r\n");
      co_return ok ? Next::kContinue : Next::kClose;
    }
    if (name == "STARTTLS") {
      Next next = co_await start_tls(tag);
      co_return next;
    }
    if (name == "AUTHENTICATE") {
      Next next = co_await authenticate(command);
      co_return next;
    }
    if (name == "LOGIN") {
      log_auth("LOGIN", false, "login_disabled", "");
      std::string answer =
          tls_active()
              ? tag +
                    " NO [CANNOT] LOGIN is disabled: use AUTHENTICATE EXTERNAL with a client "
                    "certificate\r\n"
              : tag +
                    " NO [PRIVACYREQUIRED] LOGIN is disabled: use STARTTLS, then AUTHENTICATE\r\n";
      {
        bool ok = co_await write_client(answer);
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    if (!co_await write_client(tag +
                               " BAD Command unknown or not available before authentication\r\n")) {
      co_return Next::kClose;
    }
    {
      bool ok = co_await count_bad_command();
      co_return ok ? Next::kContinue : Next::kClose;
    }
  }

  awaitable<Next> start_tls(const std::string& tag) {
    if (tls_active()) {
      if (!co_await write_client(tag + " BAD TLS is already active\r\n")) co_return Next::kClose;
      {
        bool ok = co_await count_bad_command();
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    if (!pending_.empty()) {
      // Bytes sent before the handshake would be taken as if protected by it (CVE-2011-0411).
      Event("protocol_error").add("session", id_).add("kind", "pipelined_starttls").warn();
      set_close_reason("pipelined_after_starttls");
      co_await write_client(
          tag +
          " BAD STARTTLS must be the last command before the TLS handshake\r\n* BYE Closing\r\n");
      co_return Next::kClose;
    }
    if (!co_await write_client(tag + " OK Begin TLS negotiation now.\r\n")) co_return Next::kClose;
    if (!co_await tls_handshake()) co_return Next::kClose;
    parser_ = protocol::ImapCommandParser(parser_limits());
    co_return Next::kContinue;
  }

  // Reads the client's answer to a "+" continuation, as one raw line.
  awaitable<std::optional<std::string>> read_sasl_response() {
    parser_.expect_raw_line();
    std::array<char, kPreauthReadBytes> buffer;
    for (;;) {
      if (pending_.empty()) {
        auto [ec, n] = co_await read_client(asio::buffer(buffer), config_.imap.login_timeout);
        if (ec) {
          note_end(ec, "client");
          co_return std::nullopt;
        }
        pending_.assign(buffer.data(), n);
      }
      auto result = parser_.feed(pending_);
      pending_.erase(0, result.consumed);
      if (result.status == protocol::ImapCommandParser::Status::kRawLine)
        co_return parser_.raw_line();
      if (result.status == protocol::ImapCommandParser::Status::kError) {
        set_close_reason("line_too_long");
        co_await write_client("* BYE " + parser_.error().message + "\r\n");
        co_return std::nullopt;
      }
    }
  }

  awaitable<Next> authenticate(const protocol::ImapCommand& command) {
    const std::string& tag = command.tag;
    if (command.args.empty() || !command.args[0].is_string() || command.args.size() > 2 ||
        (command.args.size() == 2 && !command.args[1].is_string())) {
      bool written =
          co_await write_client(tag + " BAD Usage: AUTHENTICATE mechanism [initial-response]\r\n");
      if (!written) co_return Next::kClose;
      bool ok = co_await count_bad_command();
      co_return ok ? Next::kContinue : Next::kClose;
    }
    std::string mechanism = protocol::ascii_upper(command.args[0].value);
    if (!tls_active()) {
      Next next =
          co_await refuse_auth(tag, mechanism, "PRIVACYREQUIRED",
                               "Authentication requires TLS: use STARTTLS first", "no_tls", "");
      co_return next;
    }
    bool token_mechanism =
        tokens_enabled() && (mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER");
    if (mechanism != "EXTERNAL" && !token_mechanism) {
      Next next =
          co_await refuse_auth(tag, mechanism, "CANNOT", "Unsupported authentication mechanism",
                               "unsupported_mechanism", "");
      co_return next;
    }
    std::string response;
    if (command.args.size() == 2) {
      response = command.args[1].value;
    } else {
      bool written = co_await write_client("+ \r\n");
      if (!written) co_return Next::kClose;
      auto line = co_await read_sasl_response();
      if (!line) co_return Next::kClose;
      response = std::move(*line);
    }
    AccessDecision decision;
    if (token_mechanism) {
      auto decoded = mechanism == "XOAUTH2" ? protocol::decode_xoauth2(response)
                                            : protocol::decode_oauthbearer(response);
      if (auto* error = std::get_if<protocol::SaslOAuthError>(&decoded)) {
        Next next = co_await bad_sasl_response(tag, mechanism, protocol::describe(*error),
                                               *error == protocol::SaslOAuthError::kCancelled);
        co_return next;
      }
      decision = co_await authorize_token(std::get<protocol::OAuthCredentials>(decoded));
    } else {
      auto decoded = protocol::decode_sasl_external(response);
      if (auto* error = std::get_if<protocol::SaslExternalError>(&decoded)) {
        Next next = co_await bad_sasl_response(tag, mechanism, protocol::describe(*error),
                                               *error == protocol::SaslExternalError::kCancelled);
        co_return next;
      }
      decision = decide_certificate_access(*env_->directory, peer_certificate_,
                                           std::get<protocol::SaslExternalRequest>(decoded).authzid,
                                           config_.auth);
    }
    using Outcome = AccessDecision::Outcome;
    if (decision.outcome != Outcome::kAllowed) {
      const char* code = decision.outcome == Outcome::kTemporaryFailure ? "UNAVAILABLE"
                         : decision.outcome == Outcome::kLimitReached   ? "LIMIT"
                         : decision.outcome == Outcome::kAuthorizationFailed
                             ? "AUTHORIZATIONFAILED"
                             : "AUTHENTICATIONFAILED";
      bool definitive = decision.outcome == Outcome::kAuthenticationFailed ||
                        decision.outcome == Outcome::kAuthorizationFailed;
      if (token_mechanism && definitive) {
        // RFC 7628 §3.2.2: the error status as a challenge, the client's (empty) answer, then NO.
        bool written = co_await write_client(
            "+ " + protocol::oauth_error_challenge("invalid_token", "openid") + "\r\n");
        if (!written) co_return Next::kClose;
        auto ignored = co_await read_sasl_response();
        if (!ignored) co_return Next::kClose;
      }
      Next next = co_await refuse_auth(tag, mechanism, code, decision.client_text, decision.reason,
                                       decision.mailbox);
      co_return next;
    }
    auto backend = co_await login_to_backend(decision.mailbox);
    if (!backend) {
      Next next =
          co_await refuse_auth(tag, mechanism, "UNAVAILABLE",
                               "The mailbox service is temporarily unavailable, try again later",
                               "backend_unavailable", decision.mailbox);
      co_return next;
    }
    mailbox_ = decision.mailbox;
    log_auth(mechanism, true, "ok", mailbox_);
    record_sign_in(mechanism);
    std::string answer = tag + " OK [CAPABILITY " + *backend + "] Logged in\r\n" + backend_pending_;
    backend_pending_.clear();
    bool written = co_await write_client(answer);
    if (!written) co_return Next::kClose;
    co_return Next::kAuthenticated;
  }

  awaitable<Next> bad_sasl_response(const std::string& tag, const std::string& mechanism,
                                    std::string_view reason, bool cancelled) {
    log_auth(mechanism, false, reason, "");
    // (Temporaries of a ?: inside a co_await expression are destroyed twice by GCC 12.)
    std::string answer = cancelled ? tag + " BAD Authentication cancelled\r\n"
                                   : tag + " BAD Invalid SASL " + mechanism + " response\r\n";
    bool written = co_await write_client(answer);
    if (!written) co_return Next::kClose;
    bool ok = co_await count_auth_failure();
    co_return ok ? Next::kContinue : Next::kClose;
  }

  awaitable<bool> count_auth_failure() {
    if (++auth_failures_ < kMaxAuthFailures) co_return true;
    set_close_reason("too_many_auth_failures");
    co_await write_client("* BYE Too many authentication failures\r\n");
    co_return false;
  }

  awaitable<Next> refuse_auth(const std::string& tag, const std::string& mechanism,
                              std::string_view code, std::string_view text, std::string_view reason,
                              const std::string& mailbox) {
    log_auth(mechanism, false, reason, mailbox);
    if (!co_await write_client(tag + " NO [" + std::string(code) + "] " + std::string(text) +
                               "\r\n"))
      co_return Next::kClose;
    {
      bool ok = co_await count_auth_failure();
      co_return ok ? Next::kContinue : Next::kClose;
    }
  }

  // Logs in to Dovecot as `mailbox` with the master user; returns the post-login capabilities.
  awaitable<std::optional<std::string>> login_to_backend(const std::string& mailbox) {
    auto start = Clock::now();
    const auto& backend = config_.imap.backend;
    {
      bool connected = co_await connect_backend(backend.address);
      if (!connected) co_return std::nullopt;
    }

    auto greeting_line = co_await read_backend_line();
    auto greeting =
        greeting_line ? protocol::parse_imap_response_line(*greeting_line) : std::nullopt;
    if (!greeting || greeting->kind != protocol::ImapResponseLine::Kind::kUntagged ||
        greeting->status != "OK") {
      backend_failed("greeting", greeting_line ? "unexpected greeting" : "no greeting", start);
      co_return std::nullopt;
    }
    std::vector<std::string> caps;
    if (greeting->code == "CAPABILITY") caps = protocol::split_capabilities(greeting->code_args);
    bool sasl_ir = std::find(caps.begin(), caps.end(), "SASL-IR") != caps.end();

    using protocol::imap_quote;
    std::string id_command = "M1 ID (\"x-originating-ip\" " + imap_quote(peer_address_) +
                             " \"x-originating-port\" \"" + std::to_string(peer_port_) +
                             "\" \"x-connected-ip\" " + imap_quote(local_address_) +
                             " \"x-connected-port\" \"" + std::to_string(local_port_) +
                             "\" \"x-session-ext-id\" \"" + id_ + "\")\r\n";
    std::string plain = protocol::base64_encode(mailbox + '\0' + backend.master_user + '\0' +
                                                backend.master_password);
    std::string commands =
        id_command + "M2 AUTHENTICATE PLAIN" + (sasl_ir ? " " + plain : std::string()) + "\r\n";
    if (!co_await write_backend(commands)) {
      backend_failed("login", "write failed", start);
      co_return std::nullopt;
    }
    std::optional<std::string> post_login_caps;
    for (;;) {
      auto line = co_await read_backend_line();
      if (!line) {
        backend_failed("login", "connection lost", start);
        co_return std::nullopt;
      }
      auto response = protocol::parse_imap_response_line(*line);
      if (!response) continue;
      if (response->kind == protocol::ImapResponseLine::Kind::kContinuation && !sasl_ir) {
        if (!co_await write_backend(plain + "\r\n")) {
          backend_failed("login", "write failed", start);
          co_return std::nullopt;
        }
        continue;
      }
      if (response->kind == protocol::ImapResponseLine::Kind::kUntagged &&
          response->status == "CAPABILITY") {
        post_login_caps =
            protocol::post_login_capabilities(protocol::split_capabilities(response->text));
        continue;
      }
      if (response->kind != protocol::ImapResponseLine::Kind::kTagged || response->tag != "M2")
        continue;
      if (response->status != "OK") {
        backend_failed("login", "refused: " + response->status + " " + response->code, start);
        co_return std::nullopt;
      }
      if (response->code == "CAPABILITY") {
        post_login_caps =
            protocol::post_login_capabilities(protocol::split_capabilities(response->code_args));
      }
      break;
    }
    if (!post_login_caps) {
      if (!co_await write_backend("M3 CAPABILITY\r\n")) {
        backend_failed("capability", "write failed", start);
        co_return std::nullopt;
      }
      for (;;) {
        auto line = co_await read_backend_line();
        auto response = line ? protocol::parse_imap_response_line(*line) : std::nullopt;
        if (!line) {
          backend_failed("capability", "connection lost", start);
          co_return std::nullopt;
        }
        if (!response) continue;
        if (response->kind == protocol::ImapResponseLine::Kind::kUntagged &&
            response->status == "CAPABILITY") {
          post_login_caps =
              protocol::post_login_capabilities(protocol::split_capabilities(response->text));
        }
        if (response->kind == protocol::ImapResponseLine::Kind::kTagged && response->tag == "M3")
          break;
      }
      if (!post_login_caps) post_login_caps = "IMAP4rev1";
    }
    // Whatever Dovecot sent after its answer (left in backend_pending_) belongs to the client.
    Event("backend")
        .add("session", id_)
        .add("result", "ok")
        .add("mailbox", mailbox)
        .add("duration_ms", milliseconds_since(start))
        .info();
    co_return post_login_caps;
  }

  protocol::ImapCommandParser parser_;
  std::string pending_;  // client bytes read and not yet parsed
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
};

}  // namespace

void start_imap_session(tcp::socket socket, ImapListenerKind kind,
                        std::shared_ptr<const GatewayEnvironment> environment,
                        std::shared_ptr<GatewayCounters> counters) {
  std::make_shared<ImapSession>(std::move(socket), kind, std::move(environment),
                                std::move(counters))
      ->start();
}

}  // namespace mssgate::daemon
