#include "daemon/session/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>

#include "daemon/net/relay.hpp"
#include "daemon/net/spawn.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using Slot = DeadlineWatch::Slot;
constexpr size_t kSmallRead = 4096;
// Message content: four TLS records at a time, read together when they came together.
constexpr size_t kLargeRead = 65536;
// A refused client is given this long, and this many bytes, to finish sending and close.
constexpr auto kDropInputTime = std::chrono::seconds(2);
constexpr uint64_t kDropInputBytes = 4 << 20;

}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, ConnectionEnds ends,
                       std::shared_ptr<const GatewayEnvironment> environment,
                       std::shared_ptr<GatewayCounters> counters, Role role, Timeouts timeouts,
                       Admission admission)
    : environment_(std::move(environment)),
      admission_(std::move(admission)),
      telemetry_(std::move(counters), role.listener, role.protocol),
      deadlines_(socket.get_executor()),
      client_(std::move(socket), std::move(ends), *environment_->tls, deadlines_,
              telemetry_.bytes_to_backend(), telemetry_.bytes_to_client()),
      backend_(client_.executor(), deadlines_),
      implicit_tls_(role.implicit_tls),
      timeouts_(timeouts) {}

Connection::~Connection() {
  telemetry_.set_bytes(client_.bytes_in(), client_.bytes_out());
}

void Connection::start(std::shared_ptr<void> owner, asio::awaitable<void> run) {
  telemetry_.connected(client_.ends());
  auto executor = client_.executor();
  // The watch wakes at least every write timeout: a deadline is enforced within one of those.
  deadlines_.start(
      timeouts_.write, [this](Slot slot) { return on_deadline(slot); }, [this] { close(); }, owner);
  asio::co_spawn(
      executor, std::move(run),
      [this, owner = std::move(owner)](const std::exception_ptr& failure) { ended(failure); });
}

void Connection::ended(const std::exception_ptr& failure) {
  if (failure) {
    // A bug, not the network: the session ends, its connections and slots are released.
    metrics::gateway().sessions_failed.with({telemetry_.protocol()}).inc();
    Event("session_failed").add("session", id()).add("error", describe_failure(failure)).error();
    telemetry_.set_close_reason("internal_error");
    relaying_ = false;
  }
  if (!relaying_) close();
}

bool Connection::on_deadline(Slot slot) {
  if (slot == Slot::kSession) {
    // The read under way (if any) fails; the session's next read tells the client and ends.
    pre_auth_expired_ = true;
    telemetry_.set_close_reason("pre_auth_timeout");
    client_.cancel();
    return true;
  }
  if (slot == Slot::kBackendRead || slot == Slot::kBackendWrite) {
    // The backend operation fails; the session decides what the client hears.
    backend_.expire();
    return true;
  }
  telemetry_.set_close_reason(slot == Slot::kClientRead ? "client_read_timeout"
                                                        : "client_write_timeout");
  client_.expire();
  close();
  return false;
}

asio::awaitable<bool> Connection::open() {
  if (!implicit_tls_) co_return true;
  bool established = co_await handshake();
  co_return established;
}

void Connection::limit_pre_auth(Clock::duration timeout, std::string_view expiry_text) {
  pre_auth_expiry_text_ = expiry_text;
  deadlines_.arm(Slot::kSession, timeout);
}

void Connection::authenticated() {
  deadlines_.disarm(Slot::kSession);
  pre_auth_expired_ = false;
}

asio::awaitable<void> Connection::end_pre_auth() {
  std::string_view text = std::exchange(pre_auth_expiry_text_, {});
  if (!text.empty() && !closed_) co_await write(text);
}

asio::awaitable<void> Connection::pause(Clock::duration delay) {
  if (delay <= Clock::duration::zero()) co_return;
  asio::steady_timer timer(client_.executor(), delay);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<bool> Connection::handshake() {
  TlsOutcome outcome = co_await client_.handshake(timeouts_.handshake);
  telemetry_.tls(outcome);
  if (outcome.ok) certificate_ = std::move(outcome.certificate);
  co_return outcome.ok;
}

asio::awaitable<bool> Connection::write(std::string_view text) {
  auto ec = co_await client_.write(text, timeouts_.write);
  if (ec) telemetry_.note_end(ec, "client");
  co_return !ec;
}

asio::awaitable<bool> Connection::read(std::string& into, Clock::duration timeout, bool large) {
  if (pre_auth_expired_) {
    co_await end_pre_auth();
    co_return false;
  }
  char small[kSmallRead];
  // The content buffer is held while a message comes, not by a session between messages.
  if (!large) large_buffer_.reset();
  if (large && !large_buffer_) large_buffer_ = std::make_unique<char[]>(kLargeRead);
  asio::mutable_buffer buffer =
      large ? asio::buffer(large_buffer_.get(), kLargeRead) : asio::buffer(small, kSmallRead);
  auto [ec, n] = co_await client_.read_some(buffer, timeout);
  if (ec) {
    if (pre_auth_expired_) {
      co_await end_pre_auth();
      co_return false;
    }
    telemetry_.note_end(ec, "client");
    co_return false;
  }
  into.append(static_cast<const char*>(buffer.data()), n);
  co_return true;
}

asio::awaitable<bool> Connection::write_backend(std::string_view bytes) {
  auto ec = co_await backend_.write(bytes, timeouts_.write);
  if (ec) telemetry_.note_end(ec, "backend", backend_.timed_out());
  co_return !ec;
}

asio::awaitable<bool> Connection::connect_backend(const config::Endpoint& endpoint) {
  auto start = Clock::now();
  auto ec = co_await backend_.connect(endpoint, timeouts_.backend_connect);
  if (ec || closed_) {
    backend_failed("connect", ec ? ec.message() : "session closed", start);
    co_return false;
  }
  co_return true;
}

void Connection::backend_failed(std::string_view step, std::string_view detail,
                                Clock::time_point start) {
  bool timed_out = backend_.take_timed_out();
  telemetry_.backend_failed(step, timed_out ? std::string_view("timeout") : detail, start);
  backend_.close();
}

void Connection::relay(std::shared_ptr<void> owner, std::string client_leftover,
                       std::string backend_leftover, Clock::duration idle_timeout,
                       std::string_view backend_lost_text) {
  relaying_ = true;
  idle_timeout_ = idle_timeout;
  backend_lost_text_ = backend_lost_text;
  if (!backend_lost_text_.empty()) framing_.emplace();
  if (client_leftover.empty()) {
    wait_upstream(owner);
  } else {
    relay_upstream(owner, std::move(client_leftover));
  }
  if (backend_leftover.empty()) {
    wait_downstream(std::move(owner));
  } else {
    relay_downstream(std::move(owner), std::move(backend_leftover));
  }
}

// Each direction is a burst (a coroutine, with its buffer) while its source has bytes to read,
// and otherwise one wait for its source to become readable: a quiet session holds two waits
// and its deadline timer, no coroutine. A burst started by a wait reads first.
void Connection::relay_upstream(std::shared_ptr<void> owner, std::string leftover) {
  asio::co_spawn(
      client_.executor(),
      relay_client_burst(client_, backend_, std::move(leftover), idle_timeout_, timeouts_.write),
      [this, owner = std::move(owner)](const std::exception_ptr& failure,
                                       std::optional<RelayEnd> end) mutable {
        if (failure || end) return upstream_ended(failure, end.value_or(RelayEnd{}));
        wait_upstream(std::move(owner));
      });
}

void Connection::wait_upstream(std::shared_ptr<void> owner) {
  if (closed_) return;
  client_.when_readable(
      idle_timeout_, [this, owner = std::move(owner)](const boost::system::error_code& ec) mutable {
        if (ec) return upstream_ended(nullptr, RelayEnd{ec, "client"});
        relay_upstream(std::move(owner), {});
      });
}

// A write to the backend failed: with a text to tell the client, the backend's direction ends
// in turn (its read fails) and tells the client before everything is closed.
void Connection::upstream_ended(const std::exception_ptr& failure, const RelayEnd& end) {
  if (failure || end.side != "backend" || !framing_ || closed_) return relay_ended(failure, end);
  telemetry_.note_end(end.error, end.side, backend_.timed_out());
  backend_.close();
}

void Connection::relay_downstream(std::shared_ptr<void> owner, std::string leftover) {
  protocol::ImapResponseFraming* framing = framing_ ? &*framing_ : nullptr;
  asio::co_spawn(
      client_.executor(),
      relay_backend_burst(backend_, client_, std::move(leftover), timeouts_.write, framing),
      [this, owner = std::move(owner)](const std::exception_ptr& failure,
                                       std::optional<RelayEnd> end) mutable {
        if (failure) return relay_ended(failure, RelayEnd{});
        if (end) return downstream_ended(std::move(owner), *end);
        wait_downstream(std::move(owner));
      });
}

void Connection::wait_downstream(std::shared_ptr<void> owner) {
  if (closed_) return;
  backend_.when_readable(
      [this, owner = std::move(owner)](const boost::system::error_code& ec) mutable {
        if (ec) return downstream_ended(std::move(owner), RelayEnd{ec, "backend"});
        relay_downstream(std::move(owner), {});
      });
}

void Connection::downstream_ended(std::shared_ptr<void> owner, const RelayEnd& end) {
  if (end.side != "backend" || closed_) return relay_ended(nullptr, end);
  asio::co_spawn(client_.executor(), end_after_backend(end),
                 [this, owner = std::move(owner)](const std::exception_ptr& failure,
                                                  RelayEnd last) { relay_ended(failure, last); });
}

asio::awaitable<RelayEnd> Connection::end_after_backend(RelayEnd end) {
  // Why the session ends is known now, whatever the client does while it is told.
  telemetry_.note_end(end.error, end.side, backend_.timed_out());
  bool told = false;
  if (framing_ && !framing_->said_bye()) {
    // The backend went away on its own: the client hears why (between two responses only),
    // then the session ends.
    if (framing_->at_boundary()) {
      auto ec = co_await client_.write(backend_lost_text_, timeouts_.write);
      told = !ec;
    }
    Event("backend_lost").add("session", id()).add("client_told", told).info();
  }
  // The backend ended the session (LOGOUT, or lost): the client gets a clean TLS close.
  if ((told || end.error == asio::error::eof) && !closed_ && client_.tls_active())
    co_await client_.shutdown_tls();
  co_return end;
}

void Connection::relay_ended(const std::exception_ptr& failure, const RelayEnd& end) {
  if (failure) {
    telemetry_.set_close_reason("internal_error");
  } else {
    telemetry_.note_end(end.error, end.side, backend_.timed_out());
  }
  close();
}

void Connection::withdraw(std::string_view reason) {
  if (closed_) return;
  telemetry_.set_close_reason("authorization_withdrawn");
  metrics::gateway().sessions_withdrawn.with({telemetry_.protocol(), reason}).inc();
  Event("authorization_withdrawn").add("session", id()).add("reason", reason).warn();
  close();
}

asio::awaitable<void> Connection::close_dropping_input() {
  backend_.close();
  co_await client_.end_dropping_input(kDropInputTime, kDropInputBytes);
  close();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  client_.close();
  backend_.close();
  deadlines_.stop();
}

}  // namespace mssgate::daemon
