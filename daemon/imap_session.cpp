#include "daemon/imap_session.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "daemon/access_policy.hpp"
#include "daemon/certificate_identity.hpp"
#include "daemon/event_log.hpp"
#include "protocol/base64.hpp"
#include "protocol/imap_command_parser.hpp"
#include "protocol/imap_response.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/sasl_external.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

constexpr size_t kPreauthReadBytes = 4096;
constexpr size_t kRelayBufferBytes = 16384;
constexpr size_t kBackendMaxLineBytes = 65536;
constexpr unsigned kMaxAuthFailures = 3;

enum class Deadline : size_t { kClientRead, kClientWrite, kBackendRead, kBackendWrite, kCount };

std::string_view deadline_name(Deadline d) {
  switch (d) {
    case Deadline::kClientRead:
      return "client_read_timeout";
    case Deadline::kClientWrite:
      return "client_write_timeout";
    case Deadline::kBackendRead:
      return "backend_timeout";
    case Deadline::kBackendWrite:
      return "backend_write_timeout";
    case Deadline::kCount:
      break;
  }
  return "timeout";
}

std::string new_session_id() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = generator();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, n >>= 4)
    id[static_cast<size_t>(i)] = kHex[n & 0xf];
  return id;
}

std::string endpoint_text(const tcp::endpoint& e) {
  auto address = e.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(e.port());
  return address.to_string() + ":" + std::to_string(e.port());
}

int64_t milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

class ImapSession : public std::enable_shared_from_this<ImapSession> {
 public:
  ImapSession(tcp::socket socket, ImapListenerKind kind,
              std::shared_ptr<const GatewayEnvironment> env,
              std::shared_ptr<GatewayCounters> counters)
      : env_(std::move(env)),
        config_(env_->config),
        counters_(std::move(counters)),
        kind_(kind),
        client_(std::move(socket), *env_->tls),
        backend_(client_.get_executor()),
        watchdog_timer_(client_.get_executor()),
        parser_(parser_limits()),
        id_(new_session_id()),
        started_(Clock::now()) {
    deadlines_.fill(Clock::time_point::max());
    tick_ = std::min<Clock::duration>(config_.imap.write_timeout, config_.imap.login_timeout);
    ++counters_->open_sessions;
  }

  ~ImapSession() {
    --counters_->open_sessions;
    Event event("close");
    event.add("session", id_);
    if (!mailbox_.empty()) event.add("mailbox", mailbox_);
    event.add("reason", close_reason_.empty() ? std::string("closed") : close_reason_)
        .add("bytes_in", bytes_in_)
        .add("bytes_out", bytes_out_)
        .add("duration_ms", milliseconds_since(started_))
        .info();
  }

  void start() {
    error_code ec;
    auto& socket = client_.next_layer();
    socket.set_option(tcp::no_delay(true), ec);
    auto remote = socket.remote_endpoint(ec);
    if (!ec) {
      peer_address_ = remote.address().to_string();
      peer_port_ = remote.port();
      peer_ = endpoint_text(remote);
    }
    auto local = socket.local_endpoint(ec);
    if (!ec) {
      local_address_ = local.address().to_string();
      local_port_ = local.port();
    }
    Event("connect")
        .add("session", id_)
        .add("listener", kind_ == ImapListenerKind::kStartTls ? "imap" : "imaps")
        .add("peer", peer_)
        .info();
    asio::co_spawn(client_.get_executor(), watchdog(shared_from_this()), asio::detached);
    asio::co_spawn(client_.get_executor(), run(shared_from_this()), asio::detached);
  }

 private:
  enum class Next { kContinue, kAuthenticated, kClose };

  protocol::ImapCommandParser::Limits parser_limits() const {
    return {config_.imap.max_line_bytes, config_.imap.max_literal_bytes};
  }

  // ---- deadlines -------------------------------------------------------------------------
  // One timer per session. It wakes at the earliest deadline, and at least every tick_ so that
  // a deadline armed later than the current wake-up needs no rescheduling (the common case on
  // the relay path). A deadline is thus enforced within one tick of its time.
  void arm(Deadline d, Clock::duration timeout) {
    auto when = Clock::now() + timeout;
    deadlines_[static_cast<size_t>(d)] = when;
    if (when < watchdog_timer_.expiry()) watchdog_timer_.cancel();
  }
  void disarm(Deadline d) { deadlines_[static_cast<size_t>(d)] = Clock::time_point::max(); }

  // `self` keeps the session alive for as long as this coroutine runs.
  awaitable<void> watchdog([[maybe_unused]] std::shared_ptr<ImapSession> self) {
    while (!closed_) {
      auto next =
          std::min(*std::min_element(deadlines_.begin(), deadlines_.end()), Clock::now() + tick_);
      watchdog_timer_.expires_at(next);
      co_await watchdog_timer_.async_wait(kTuple);
      if (closed_) break;
      auto now = Clock::now();
      for (size_t i = 0; i < deadlines_.size(); ++i) {
        if (deadlines_[i] > now) continue;
        auto expired = static_cast<Deadline>(i);
        if (expired == Deadline::kBackendRead || expired == Deadline::kBackendWrite) {
          // The backend operation fails; the session decides what the client hears.
          backend_timed_out_ = true;
          disarm(expired);
          error_code ignored;
          backend_.close(ignored);
          continue;
        }
        expired_ = expired;
        if (close_reason_.empty()) close_reason_ = deadline_name(expired);
        close_all();
        co_return;
      }
    }
  }

  void close_all() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    client_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    client_.next_layer().close(ignored);
    backend_.close(ignored);
    watchdog_timer_.cancel();
  }

  void note_end(const error_code& ec, std::string_view side) {
    if (!close_reason_.empty()) return;
    if (expired_) {
      close_reason_ = deadline_name(*expired_);
    } else if (side == "backend" && backend_timed_out_) {
      close_reason_ = "backend_timeout";
    } else if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      close_reason_ = std::string(side) + "_closed";
    } else if (ec == asio::error::operation_aborted) {
      close_reason_ = "closed";
    } else {
      close_reason_ = std::string(side) + "_error: " + ec.message();
    }
  }

  // ---- client I/O: the one place that knows whether TLS is active --------------------------
  awaitable<std::tuple<error_code, size_t>> read_client(asio::mutable_buffer buffer,
                                                        Clock::duration timeout) {
    arm(Deadline::kClientRead, timeout);
    // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
    std::tuple<error_code, size_t> result;
    if (tls_active_) {
      result = co_await client_.async_read_some(buffer, kTuple);
    } else {
      result = co_await client_.next_layer().async_read_some(buffer, kTuple);
    }
    disarm(Deadline::kClientRead);
    if (!std::get<0>(result)) bytes_in_ += std::get<1>(result);
    co_return result;
  }

  awaitable<bool> write_client(std::string_view data) {
    arm(Deadline::kClientWrite, config_.imap.write_timeout);
    std::tuple<error_code, size_t> result;
    if (tls_active_) {
      result = co_await asio::async_write(client_, asio::buffer(data), kTuple);
    } else {
      result = co_await asio::async_write(client_.next_layer(), asio::buffer(data), kTuple);
    }
    auto [ec, n] = result;
    disarm(Deadline::kClientWrite);
    bytes_out_ += n;
    if (ec) {
      note_end(ec, "client");
      co_return false;
    }
    co_return true;
  }

  awaitable<bool> write_backend(std::string_view data) {
    arm(Deadline::kBackendWrite, config_.imap.write_timeout);
    auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(data), kTuple);
    disarm(Deadline::kBackendWrite);
    if (ec) {
      note_end(ec, "backend");
      co_return false;
    }
    co_return true;
  }

  // ---- session ---------------------------------------------------------------------------
  std::string capabilities() const {
    std::string caps = "IMAP4rev1 SASL-IR LITERAL+ ID";
    caps += tls_active_ ? " AUTH=EXTERNAL" : " STARTTLS";
    caps += " LOGINDISABLED";
    return caps;
  }

  // `self` keeps the session alive for as long as this coroutine runs.
  awaitable<void> run([[maybe_unused]] std::shared_ptr<ImapSession> self) {
    if (counters_->open_sessions > config_.server.max_connections) {
      close_reason_ = "max_connections";
      if (kind_ == ImapListenerKind::kStartTls) {
        co_await write_client("* BYE [UNAVAILABLE] Too many connections, try again later\r\n");
      }
      close_all();
      co_return;
    }
    if (kind_ == ImapListenerKind::kImplicitTls) {
      bool ok = co_await tls_handshake();
      if (!ok) {
        close_all();
        co_return;
      }
    }
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
      Next next = co_await handle_command(parser_.command());
      if (next == Next::kClose) break;
      if (next == Next::kAuthenticated) {
        asio::co_spawn(client_.get_executor(), relay_client_to_backend(shared_from_this()),
                       asio::detached);
        asio::co_spawn(client_.get_executor(), relay_backend_to_client(shared_from_this()),
                       asio::detached);
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
      close_reason_ = error.kind == Kind::kLineTooLong ? "line_too_long" : "literal_too_large";
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
    close_reason_ = "too_many_bad_commands";
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
      close_reason_ = "logout";
      co_await write_client("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n");
      if (tls_active_) co_await shutdown_client_tls();
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
      Event("auth")
          .add("session", id_)
          .add("mechanism", "LOGIN")
          .add("result", "refused")
          .add("reason", "login_disabled")
          .warn();
      std::string answer =
          tls_active_
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
    if (tls_active_) {
      if (!co_await write_client(tag + " BAD TLS is already active\r\n")) co_return Next::kClose;
      {
        bool ok = co_await count_bad_command();
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    if (!pending_.empty()) {
      // Bytes sent before the handshake would be taken as if protected by it (CVE-2011-0411).
      Event("protocol_error").add("session", id_).add("kind", "pipelined_starttls").warn();
      close_reason_ = "pipelined_after_starttls";
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

  awaitable<bool> tls_handshake() {
    arm(Deadline::kClientRead, config_.tls.handshake_timeout);
    auto [ec] = co_await client_.async_handshake(ssl::stream_base::server, kTuple);
    disarm(Deadline::kClientRead);
    SSL* ssl = client_.native_handle();
    long verify = SSL_get_verify_result(ssl);
    if (ec) {
      Event event("tls_failed");
      event.add("session", id_).add("peer", peer_);
      if (expired_) {
        event.add("reason", "timeout");
      } else if (verify != X509_V_OK) {
        event.add("reason", "client_certificate")
            .add("certificate_error", X509_verify_cert_error_string(verify));
      } else {
        event.add("reason", ec.message());
      }
      event.warn();
      if (close_reason_.empty()) close_reason_ = "tls_failed";
      co_return false;
    }
    tls_active_ = true;
    Event event("tls");
    event.add("session", id_)
        .add("version", SSL_get_version(ssl))
        .add("cipher", SSL_get_cipher_name(ssl));
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (peer && verify == X509_V_OK) {
      peer_certificate_ = identify_certificate(peer);
      event.add("client_certificate", peer_certificate_->subject)
          .add("certificate_sha256", peer_certificate_->sha256);
    } else {
      event.add("client_certificate", "none");
    }
    event.info();
    co_return true;
  }

  awaitable<void> shutdown_client_tls() {
    arm(Deadline::kClientWrite, std::chrono::seconds(1));
    co_await client_.async_shutdown(kTuple);
    disarm(Deadline::kClientWrite);
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
        close_reason_ = "line_too_long";
        co_await write_client("* BYE " + parser_.error().message + "\r\n");
        co_return std::nullopt;
      }
    }
  }

  awaitable<Next> authenticate(const protocol::ImapCommand& command) {
    const std::string& tag = command.tag;
    if (command.args.empty() || !command.args[0].is_string() || command.args.size() > 2 ||
        (command.args.size() == 2 && !command.args[1].is_string())) {
      if (!co_await write_client(tag + " BAD Usage: AUTHENTICATE mechanism [initial-response]\r\n"))
        co_return Next::kClose;
      {
        bool ok = co_await count_bad_command();
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    std::string mechanism = command.args[0].value;
    std::transform(mechanism.begin(), mechanism.end(), mechanism.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    if (!tls_active_) {
      {
        Next result =
            co_await refuse_auth(tag, mechanism, "PRIVACYREQUIRED",
                                 "Authentication requires TLS: use STARTTLS first", "no_tls", "");
        co_return result;
      }
    }
    if (mechanism != "EXTERNAL") {
      {
        Next result =
            co_await refuse_auth(tag, mechanism, "CANNOT", "Unsupported authentication mechanism",
                                 "unsupported_mechanism", "");
        co_return result;
      }
    }
    std::string response;
    if (command.args.size() == 2) {
      response = command.args[1].value;
    } else {
      if (!co_await write_client("+ \r\n")) co_return Next::kClose;
      auto line = co_await read_sasl_response();
      if (!line) co_return Next::kClose;
      response = std::move(*line);
    }
    auto decoded = protocol::decode_sasl_external(response);
    if (auto* error = std::get_if<protocol::SaslExternalError>(&decoded)) {
      Event("auth")
          .add("session", id_)
          .add("mechanism", mechanism)
          .add("result", "failed")
          .add("reason", protocol::describe(*error))
          .warn();
      std::string answer = *error == protocol::SaslExternalError::kCancelled
                               ? tag + " BAD Authentication cancelled\r\n"
                               : tag + " BAD Invalid SASL EXTERNAL response\r\n";
      if (!co_await write_client(answer)) co_return Next::kClose;
      {
        bool ok = co_await count_auth_failure();
        co_return ok ? Next::kContinue : Next::kClose;
      }
    }
    const std::string& authzid = std::get<protocol::SaslExternalRequest>(decoded).authzid;
    AccessDecision decision =
        decide_certificate_access(*env_->directory, peer_certificate_, authzid, config_.auth);
    using Outcome = AccessDecision::Outcome;
    if (decision.outcome != Outcome::kAllowed) {
      const char* code = decision.outcome == Outcome::kTemporaryFailure ? "UNAVAILABLE"
                         : decision.outcome == Outcome::kAuthorizationFailed
                             ? "AUTHORIZATIONFAILED"
                             : "AUTHENTICATIONFAILED";
      {
        Next result = co_await refuse_auth(tag, mechanism, code, decision.client_text,
                                           decision.reason, decision.mailbox);
        co_return result;
      }
    }
    auto backend = co_await login_to_backend(decision.mailbox);
    if (!backend) {
      {
        Next result =
            co_await refuse_auth(tag, mechanism, "UNAVAILABLE",
                                 "The mailbox service is temporarily unavailable, try again later",
                                 "backend_unavailable", decision.mailbox);
        co_return result;
      }
    }
    mailbox_ = decision.mailbox;
    Event event("auth");
    event.add("session", id_)
        .add("mechanism", mechanism)
        .add("result", "ok")
        .add("mailbox", mailbox_);
    if (peer_certificate_) event.add("certificate_sha256", peer_certificate_->sha256);
    event.info();
    std::string answer = tag + " OK [CAPABILITY " + *backend + "] Logged in\r\n" + backend_pending_;
    backend_pending_.clear();
    if (!co_await write_client(answer)) co_return Next::kClose;
    co_return Next::kAuthenticated;
  }

  awaitable<bool> count_auth_failure() {
    if (++auth_failures_ < kMaxAuthFailures) co_return true;
    close_reason_ = "too_many_auth_failures";
    co_await write_client("* BYE Too many authentication failures\r\n");
    co_return false;
  }

  awaitable<Next> refuse_auth(const std::string& tag, const std::string& mechanism,
                              std::string_view code, std::string_view text, std::string_view reason,
                              const std::string& mailbox) {
    Event event("auth");
    event.add("session", id_)
        .add("mechanism", mechanism)
        .add("result", "failed")
        .add("reason", reason);
    if (!mailbox.empty()) event.add("mailbox", mailbox);
    if (peer_certificate_) event.add("certificate_sha256", peer_certificate_->sha256);
    event.warn();
    if (!co_await write_client(tag + " NO [" + std::string(code) + "] " + std::string(text) +
                               "\r\n"))
      co_return Next::kClose;
    {
      bool ok = co_await count_auth_failure();
      co_return ok ? Next::kContinue : Next::kClose;
    }
  }

  // ---- backend ---------------------------------------------------------------------------
  awaitable<std::optional<std::string>> read_backend_line() {
    std::array<char, 4096> buffer;
    for (;;) {
      if (!backend_pending_.empty()) {
        auto result = backend_lines_.feed(backend_pending_);
        backend_pending_.erase(0, result.consumed);
        if (result.status == protocol::LineSplitter::Status::kLine) co_return backend_lines_.line();
        if (result.status == protocol::LineSplitter::Status::kTooLong) co_return std::nullopt;
        continue;
      }
      arm(Deadline::kBackendRead, config_.imap.backend.response_timeout);
      auto [ec, n] = co_await backend_.async_read_some(asio::buffer(buffer), kTuple);
      disarm(Deadline::kBackendRead);
      if (ec) co_return std::nullopt;
      backend_pending_.assign(buffer.data(), n);
    }
  }

  void backend_failed(std::string_view step, std::string_view detail, Clock::time_point start) {
    Event("backend")
        .add("session", id_)
        .add("result", "failed")
        .add("step", step)
        .add("detail", backend_timed_out_ ? std::string_view("timeout") : detail)
        .add("duration_ms", milliseconds_since(start))
        .error();
    backend_timed_out_ = false;
    error_code ignored;
    backend_.close(ignored);
  }

  // Logs in to Dovecot as `mailbox` with the master user; returns the post-login capabilities.
  awaitable<std::optional<std::string>> login_to_backend(const std::string& mailbox) {
    auto start = Clock::now();
    const auto& backend = config_.imap.backend;
    error_code ec;
    auto address = asio::ip::make_address(backend.address.host, ec);
    if (ec) {
      backend_failed("connect", "invalid address", start);
      co_return std::nullopt;
    }
    backend_ = tcp::socket(client_.get_executor());
    arm(Deadline::kBackendRead, backend.connect_timeout);
    std::tie(ec) =
        co_await backend_.async_connect(tcp::endpoint(address, backend.address.port), kTuple);
    disarm(Deadline::kBackendRead);
    if (ec || closed_) {
      backend_failed("connect", ec.message(), start);
      co_return std::nullopt;
    }
    backend_.set_option(tcp::no_delay(true), ec);
    backend_lines_.reset();
    backend_pending_.clear();

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

  // ---- relay -----------------------------------------------------------------------------
  // `self` keeps the session alive for as long as this coroutine runs.
  awaitable<void> relay_client_to_backend([[maybe_unused]] std::shared_ptr<ImapSession> self) {
    if (!pending_.empty()) {
      std::string early = std::move(pending_);
      pending_.clear();
      if (!co_await write_backend(early)) {
        close_all();
        co_return;
      }
    }
    auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
    for (;;) {
      auto [ec, n] = co_await read_client(asio::buffer(buffer.get(), kRelayBufferBytes),
                                          config_.imap.idle_timeout);
      if (ec) {
        note_end(ec, "client");
        break;
      }
      if (!co_await write_backend({buffer.get(), n})) break;
    }
    close_all();
  }

  // `self` keeps the session alive for as long as this coroutine runs.
  awaitable<void> relay_backend_to_client([[maybe_unused]] std::shared_ptr<ImapSession> self) {
    auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
    for (;;) {
      auto [ec, n] =
          co_await backend_.async_read_some(asio::buffer(buffer.get(), kRelayBufferBytes), kTuple);
      if (ec) {
        note_end(ec, "backend");
        if (ec == asio::error::eof && !closed_) co_await shutdown_client_tls();
        break;
      }
      if (!co_await write_client({buffer.get(), n})) break;
    }
    close_all();
  }

  std::shared_ptr<const GatewayEnvironment> env_;
  const config::Config& config_;
  std::shared_ptr<GatewayCounters> counters_;
  ImapListenerKind kind_;
  ssl::stream<tcp::socket> client_;
  tcp::socket backend_;
  asio::steady_timer watchdog_timer_;
  std::array<Clock::time_point, static_cast<size_t>(Deadline::kCount)> deadlines_;
  Clock::duration tick_;
  std::optional<Deadline> expired_;
  bool backend_timed_out_ = false;
  bool tls_active_ = false;
  bool closed_ = false;
  protocol::ImapCommandParser parser_;
  protocol::LineSplitter backend_lines_{kBackendMaxLineBytes};
  std::string pending_;          // client bytes read and not yet parsed
  std::string backend_pending_;  // backend bytes read and not yet parsed
  std::optional<CertificateIdentity> peer_certificate_;
  std::string id_;
  std::string peer_;
  std::string peer_address_;
  uint16_t peer_port_ = 0;
  std::string local_address_;
  uint16_t local_port_ = 0;
  std::string mailbox_;
  std::string close_reason_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  Clock::time_point started_;
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
