#include "daemon/session/proxy_connection.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <random>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/services/indicator_event.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kBackendMaxLineBytes = 65536;
constexpr size_t kRelayBufferBytes = 16384;

std::string new_session_id() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = generator();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, n >>= 4)
    id[static_cast<size_t>(i)] = kHex[n & 0xf];
  return id;
}

// The protocol a listener speaks, for metric labels.
std::string protocol_of(std::string_view listener) {
  if (listener.starts_with("imap")) return "imap";
  if (listener.starts_with("submission")) return "submission";
  return std::string(listener);
}

// A TLS failure's reason as a small fixed set, for metric labels.
std::string_view tls_failure_class(const boost::system::error_code& ec) {
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated ||
      ec == asio::error::connection_reset)
    return "closed_by_client";
  if (ec.category() == asio::error::get_ssl_category()) {
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_NO_SHARED_CIPHER) return "no_shared_cipher";
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_WRONG_VERSION_NUMBER ||
        reason == SSL_R_VERSION_TOO_LOW || reason == SSL_R_VERSION_TOO_HIGH)
      return "protocol_version";
    if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) return "not_tls";
  }
  return "other";
}

std::string endpoint_text(const asio::ip::tcp::endpoint& e) {
  auto address = e.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(e.port());
  return address.to_string() + ":" + std::to_string(e.port());
}

}  // namespace

ProxyConnection::ProxyConnection(tcp::socket socket, std::string listener, bool implicit_tls,
                                 std::shared_ptr<const GatewayEnvironment> env,
                                 std::shared_ptr<GatewayCounters> counters, Timeouts timeouts)
    : env_(std::move(env)),
      config_(env_->config),
      id_(new_session_id()),
      protocol_(protocol_of(listener)),
      counters_(std::move(counters)),
      listener_(std::move(listener)),
      implicit_tls_(implicit_tls),
      timeouts_(timeouts),
      client_(std::move(socket), *env_->tls),
      backend_(client_.get_executor()),
      watchdog_timer_(client_.get_executor()),
      backend_lines_(kBackendMaxLineBytes),
      started_(Clock::now()),
      bytes_from_client_(metrics::gateway().relayed_bytes.with({protocol_, "to_backend"})),
      bytes_to_client_(metrics::gateway().relayed_bytes.with({protocol_, "to_client"})) {
  deadlines_.fill(Clock::time_point::max());
  tick_ = timeouts_.write;
  ++counters_->open_sessions;
  metrics::gateway().connections.with({listener_}).inc();
  metrics::gateway().sessions.with({listener_, session_state_}).add(1);
}

ProxyConnection::~ProxyConnection() {
  --counters_->open_sessions;
  if (!professional_slot_.empty()) counters_->release_professional(professional_slot_);
  metrics::gateway().sessions.with({listener_, session_state_}).add(-1);
  metrics::gateway()
      .session_duration.with({protocol_})
      .observe(std::chrono::duration<double>(Clock::now() - started_).count());
  Event event("close");
  event.add("session", id_);
  if (!mailbox_.empty()) event.add("mailbox", mailbox_);
  event.add("reason", close_reason_.empty() ? std::string("closed") : close_reason_)
      .add("bytes_in", bytes_in_)
      .add("bytes_out", bytes_out_)
      .add("duration_ms", milliseconds_since(started_))
      .info();
}

void ProxyConnection::observe_command(std::string_view command, Clock::time_point start) {
  // The verbs counted under their own name; the last slot, "other", takes the rest.
  static constexpr std::string_view kLabels[] = {
      "CAPABILITY", "STARTTLS", "AUTHENTICATE", "LOGIN", "ID",   "NOOP", "LOGOUT",
      "ENABLE",     "EHLO",     "HELO",         "LHLO",  "AUTH", "MAIL", "RCPT",
      "DATA",       "BDAT",     "RSET",         "QUIT",  "VRFY", "HELP", "other"};
  static_assert(std::size(kLabels) == kCommandLabels);
  size_t index = 0;
  while (index + 1 < kCommandLabels && !protocol::ascii_iequals(command, kLabels[index]))
    ++index;
  // Looked up once per verb and connection: the family's lock stays off the command path.
  auto& histogram = command_histograms_[index];
  if (!histogram)
    histogram = &metrics::gateway().command_duration.with({protocol_, kLabels[index]});
  histogram->observe(std::chrono::duration<double>(Clock::now() - start).count());
}

int64_t ProxyConnection::milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

void ProxyConnection::start() {
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
  Event("connect").add("session", id_).add("listener", listener_).add("peer", peer_).info();
  asio::co_spawn(client_.get_executor(), watchdog(shared_from_this()), asio::detached);
  asio::co_spawn(client_.get_executor(), run(shared_from_this()), asio::detached);
}

ProxyConnection::awaitable<bool> ProxyConnection::open_session(std::string_view too_many) {
  if (over_connection_limit()) {
    set_close_reason("max_connections");
    metrics::gateway().connections_refused.with({listener_, "max_connections"}).inc();
    if (!implicit_tls_) co_await write_client(too_many);
    close_all();
    co_return false;
  }
  if (implicit_tls_) {
    bool ok = co_await tls_handshake();
    if (!ok) {
      close_all();
      co_return false;
    }
  }
  co_return true;
}

// The timer wakes at the earliest deadline, and at least every tick_ so that a deadline armed
// later than the current wake-up needs no rescheduling (the common case on the relay path).
// A deadline is thus enforced within one tick of its time.
void ProxyConnection::arm(Deadline d, Clock::duration timeout) {
  auto when = Clock::now() + timeout;
  deadlines_[static_cast<size_t>(d)] = when;
  if (when < watchdog_timer_.expiry()) watchdog_timer_.cancel();
}

ProxyConnection::awaitable<void> ProxyConnection::watchdog(
    [[maybe_unused]] std::shared_ptr<ProxyConnection> self) {
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
        close_backend();
        continue;
      }
      expired_ = expired;
      set_close_reason(expired == Deadline::kClientRead ? "client_read_timeout"
                                                        : "client_write_timeout");
      close_all();
      co_return;
    }
  }
}

void ProxyConnection::close_all() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  client_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  client_.next_layer().close(ignored);
  backend_.close(ignored);
  watchdog_timer_.cancel();
}

void ProxyConnection::close_backend() {
  error_code ignored;
  backend_.close(ignored);
}

void ProxyConnection::note_end(const error_code& ec, std::string_view side) {
  if (!close_reason_.empty()) return;
  if (side == "backend" && backend_timed_out_) {
    close_reason_ = "backend_timeout";
  } else if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
    close_reason_ = std::string(side) + "_closed";
  } else if (ec == asio::error::operation_aborted) {
    close_reason_ = "closed";
  } else {
    close_reason_ = std::string(side) + "_error: " + ec.message();
  }
}

ProxyConnection::awaitable<std::tuple<ProxyConnection::error_code, size_t>>
ProxyConnection::read_client(asio::mutable_buffer buffer, Clock::duration timeout) {
  arm(Deadline::kClientRead, timeout);
  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  std::tuple<error_code, size_t> result;
  if (tls_active_) {
    result = co_await client_.async_read_some(buffer, kTuple);
  } else {
    result = co_await client_.next_layer().async_read_some(buffer, kTuple);
  }
  disarm(Deadline::kClientRead);
  if (!std::get<0>(result)) {
    bytes_in_ += std::get<1>(result);
    bytes_from_client_.inc(std::get<1>(result));
  }
  co_return result;
}

ProxyConnection::awaitable<bool> ProxyConnection::write_client(std::string_view data) {
  arm(Deadline::kClientWrite, timeouts_.write);
  std::tuple<error_code, size_t> result;
  if (tls_active_) {
    result = co_await asio::async_write(client_, asio::buffer(data), kTuple);
  } else {
    result = co_await asio::async_write(client_.next_layer(), asio::buffer(data), kTuple);
  }
  auto [ec, n] = result;
  disarm(Deadline::kClientWrite);
  bytes_out_ += n;
  bytes_to_client_.inc(n);
  if (ec) {
    note_end(ec, "client");
    co_return false;
  }
  co_return true;
}

ProxyConnection::awaitable<bool> ProxyConnection::tls_handshake() {
  arm(Deadline::kClientRead, timeouts_.handshake);
  auto [ec] = co_await client_.async_handshake(ssl::stream_base::server, kTuple);
  disarm(Deadline::kClientRead);
  SSL* ssl = client_.native_handle();
  long verify = SSL_get_verify_result(ssl);
  if (ec) {
    Event event("tls_failed");
    event.add("session", id_).add("peer", peer_);
    std::string_view reason_class;
    if (expired_) {
      reason_class = "timeout";
      event.add("reason", "timeout");
    } else if (verify != X509_V_OK) {
      reason_class = "client_certificate";
      event.add("reason", "client_certificate")
          .add("certificate_error", X509_verify_cert_error_string(verify));
    } else {
      reason_class = tls_failure_class(ec);
      event.add("reason", ec.message());
    }
    metrics::gateway().tls_failures.with({listener_, reason_class}).inc();
    event.warn();
    set_close_reason("tls_failed");
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

ProxyConnection::awaitable<void> ProxyConnection::shutdown_client_tls() {
  arm(Deadline::kClientWrite, std::chrono::seconds(1));
  co_await client_.async_shutdown(kTuple);
  disarm(Deadline::kClientWrite);
}

ProxyConnection::awaitable<bool> ProxyConnection::connect_backend(
    const config::Endpoint& endpoint) {
  auto start = Clock::now();
  error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (ec) {
    backend_failed("connect", "invalid address", start);
    co_return false;
  }
  backend_ = tcp::socket(client_.get_executor());
  arm(Deadline::kBackendRead, timeouts_.backend_connect);
  std::tie(ec) = co_await backend_.async_connect(tcp::endpoint(address, endpoint.port), kTuple);
  disarm(Deadline::kBackendRead);
  if (ec || closed_) {
    backend_failed("connect", ec.message(), start);
    co_return false;
  }
  backend_.set_option(tcp::no_delay(true), ec);
  backend_lines_.reset();
  backend_pending_.clear();
  co_return true;
}

ProxyConnection::awaitable<bool> ProxyConnection::write_backend(std::string_view data) {
  arm(Deadline::kBackendWrite, timeouts_.write);
  auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(data), kTuple);
  disarm(Deadline::kBackendWrite);
  if (ec) {
    note_end(ec, "backend");
    co_return false;
  }
  co_return true;
}

ProxyConnection::awaitable<std::optional<std::string>> ProxyConnection::read_backend_line(
    std::optional<Clock::duration> timeout) {
  std::array<char, 4096> buffer;
  for (;;) {
    if (!backend_pending_.empty()) {
      auto result = backend_lines_.feed(backend_pending_);
      backend_pending_.erase(0, result.consumed);
      if (result.status == protocol::LineSplitter::Status::kLine) co_return backend_lines_.line();
      if (result.status == protocol::LineSplitter::Status::kTooLong) co_return std::nullopt;
      continue;
    }
    arm(Deadline::kBackendRead, timeout.value_or(timeouts_.backend_response));
    auto [ec, n] = co_await backend_.async_read_some(asio::buffer(buffer), kTuple);
    disarm(Deadline::kBackendRead);
    if (ec) co_return std::nullopt;
    backend_pending_.assign(buffer.data(), n);
  }
}

void ProxyConnection::backend_failed(std::string_view step, std::string_view detail,
                                     Clock::time_point start) {
  metrics::gateway().backend_failures.with({protocol_, step}).inc();
  Event("backend")
      .add("session", id_)
      .add("result", "failed")
      .add("step", step)
      .add("detail", backend_timed_out_ ? std::string_view("timeout") : detail)
      .add("duration_ms", milliseconds_since(start))
      .error();
  backend_timed_out_ = false;
  close_backend();
}

ProxyConnection::awaitable<std::optional<protocol::SmtpReply>> ProxyConnection::read_backend_reply(
    std::optional<Clock::duration> timeout, std::vector<std::string>* raw_lines) {
  protocol::SmtpReplyParser parser;
  for (;;) {
    auto line = co_await read_backend_line(timeout);
    if (!line) co_return std::nullopt;
    if (raw_lines) raw_lines->push_back(*line);
    auto r = parser.feed(*line + "\r\n");
    if (r.status == protocol::SmtpReplyParser::Status::kReply) co_return parser.reply();
    if (r.status == protocol::SmtpReplyParser::Status::kError) co_return std::nullopt;
  }
}

void ProxyConnection::log_auth(std::string_view mechanism, bool ok, std::string_view reason,
                               const std::string& mailbox) const {
  // The client's word for the mechanism is kept only when mssgate knows it: anything else (a
  // token sent by mistake, say) is "other", in the log and in the metric's labels alike.
  static constexpr std::string_view kMechanisms[] = {"EXTERNAL", "XOAUTH2", "OAUTHBEARER", "PLAIN",
                                                     "LOGIN"};
  std::string_view named = "other";
  for (auto known : kMechanisms)
    if (protocol::ascii_iequals(mechanism, known)) named = known;
  metrics::gateway().authentications.with({protocol_, named, ok ? "ok" : "failed"}).inc();
  Event event("auth");
  event.add("session", id_).add("mechanism", named).add("result", ok ? "ok" : "failed");
  if (!ok) event.add("reason", reason);
  if (!mailbox.empty()) event.add("mailbox", mailbox);
  if (!professional_id_.empty()) event.add("professional", professional_id_);
  if (!token_azp_.empty()) event.add("azp", token_azp_);
  if (peer_certificate_) event.add("certificate_sha256", peer_certificate_->sha256);
  event.audit().emit(ok ? spdlog::level::info : spdlog::level::warn);
}

void ProxyConnection::record_sign_in(std::string_view mechanism) {
  if (session_state_ != kAuthenticated) {
    metrics::gateway().sessions.with({listener_, session_state_}).add(-1);
    session_state_ = kAuthenticated;
    metrics::gateway().sessions.with({listener_, session_state_}).add(1);
  }
  auth_mode_ = mechanism == "EXTERNAL" ? "certificate" : "psc";
  if (!env_->indicators || mailbox_.empty()) return;
  mailbox_type_ = mailbox_type_of(mailbox_, *env_->directory);
  storage::ConnectionEvent connection;
  connection.at_ms = storage::now_ms();
  connection.day = storage::day_of(connection.at_ms, config_.indicators.utc_days);
  connection.mailbox = mailbox_;
  connection.mailbox_type = mailbox_type_;
  connection.auth_mode = auth_mode_;
  connection.protocol = protocol_;
  env_->indicators->note_connection(std::move(connection));
}

ProxyConnection::awaitable<bool> ProxyConnection::record_indicator(storage::IndicatorEvent event) {
  std::vector<storage::IndicatorEvent> events;
  events.push_back(std::move(event));
  bool durable = co_await record_indicators(std::move(events));
  co_return durable;
}

ProxyConnection::awaitable<bool> ProxyConnection::record_indicators(
    std::vector<storage::IndicatorEvent> events) {
  auto journal = env_->indicators;
  if (!journal || events.empty()) co_return false;
  std::vector<std::pair<std::string, std::string>> names;  // for the error event
  std::vector<std::string> directions;
  for (const auto& e : events) {
    names.emplace_back(e.mailbox, e.key);
    directions.push_back(e.direction);
    if (!e.documents.empty()) metrics::gateway().indicator_structured.with({e.direction}).inc();
    if (e.ins == "qualified") metrics::gateway().indicator_ins_qualified.with({e.direction}).inc();
  }
  // The events go to the journal together; the session resumes when the last is committed.
  auto initiate = [journal, events = std::move(events)](auto completion) mutable {
    using Completion = decltype(completion);
    struct Waiting {
      Completion handler;
      size_t left;
      bool durable = true;
    };
    auto waiting = std::make_shared<Waiting>(Waiting{std::move(completion), events.size()});
    auto executor = boost::asio::get_associated_executor(waiting->handler);
    for (auto& event : events) {
      // Each callback runs on the journal's thread; the last one resumes the session on its own.
      journal->record(std::move(event), [waiting, executor](bool durable) {
        boost::asio::post(executor, [waiting, durable] {
          waiting->durable = waiting->durable && durable;
          if (--waiting->left == 0) std::move(waiting->handler)(waiting->durable);
        });
      });
    }
  };
  bool durable =
      co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(bool)>(
          std::move(initiate), boost::asio::use_awaitable);
  for (const auto& direction : directions) {
    metrics::gateway()
        .indicator_events.with({direction, durable ? "recorded" : "not_recorded"})
        .inc();
  }
  if (!durable) {
    for (const auto& [mailbox, key] : names) {
      Event("indicator_not_recorded")
          .add("session", id_)
          .add("mailbox", mailbox)
          .add("key", key)
          .add("reason", "journal_write_failed")
          .error();
    }
  }
  co_return durable;
}

ProxyConnection::awaitable<AccessDecision> ProxyConnection::authorize_token(
    const protocol::OAuthCredentials& credentials) {
  using Outcome = AccessDecision::Outcome;
  TokenValidation token = co_await env_->validator->validate(credentials.token);
  if (token.result == TokenValidation::Result::kUnavailable) {
    co_return AccessDecision{Outcome::kTemporaryFailure, "",
                             "token_check_unavailable:" + token.reason,
                             "Sign-in is temporarily unavailable, try again later"};
  }
  if (token.result == TokenValidation::Result::kInvalid) {
    co_return AccessDecision{Outcome::kAuthenticationFailed, "", "token_" + token.reason,
                             "The token is not valid"};
  }
  professional_id_ = token.professional_id;
  token_azp_ = token.azp;
  AccessDecision decision =
      decide_token_access(*env_->directory, token.professional_id, credentials.user, config_.auth);
  if (decision.outcome != Outcome::kAllowed || !professional_slot_.empty()) co_return decision;
  if (!counters_->acquire_professional(token.professional_id,
                                       config_.psc.max_sessions_per_professional)) {
    co_return AccessDecision{Outcome::kLimitReached, decision.mailbox, "too_many_sessions",
                             "Too many sessions for this professional"};
  }
  professional_slot_ = token.professional_id;
  co_return decision;
}

void ProxyConnection::start_relay(std::string client_leftover, std::string backend_leftover,
                                  Clock::duration idle_timeout) {
  asio::co_spawn(
      client_.get_executor(),
      relay_client_to_backend(shared_from_this(), std::move(client_leftover), idle_timeout),
      asio::detached);
  asio::co_spawn(client_.get_executor(),
                 relay_backend_to_client(shared_from_this(), std::move(backend_leftover)),
                 asio::detached);
}

ProxyConnection::awaitable<void> ProxyConnection::relay_client_to_backend(
    [[maybe_unused]] std::shared_ptr<ProxyConnection> self, std::string leftover,
    Clock::duration idle_timeout) {
  if (!leftover.empty()) {
    bool ok = co_await write_backend(leftover);
    if (!ok) {
      close_all();
      co_return;
    }
  }
  auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
  for (;;) {
    auto [ec, n] =
        co_await read_client(asio::buffer(buffer.get(), kRelayBufferBytes), idle_timeout);
    if (ec) {
      note_end(ec, "client");
      break;
    }
    bool ok = co_await write_backend({buffer.get(), n});
    if (!ok) break;
  }
  close_all();
}

ProxyConnection::awaitable<void> ProxyConnection::relay_backend_to_client(
    [[maybe_unused]] std::shared_ptr<ProxyConnection> self, std::string leftover) {
  if (!leftover.empty()) {
    bool ok = co_await write_client(leftover);
    if (!ok) {
      close_all();
      co_return;
    }
  }
  auto buffer = std::make_unique<char[]>(kRelayBufferBytes);
  for (;;) {
    auto [ec, n] =
        co_await backend_.async_read_some(asio::buffer(buffer.get(), kRelayBufferBytes), kTuple);
    if (ec) {
      note_end(ec, "backend");
      if (ec == asio::error::eof && !closed_) co_await shutdown_client_tls();
      break;
    }
    bool ok = co_await write_client({buffer.get(), n});
    if (!ok) break;
  }
  close_all();
}

}  // namespace mssgate::daemon
