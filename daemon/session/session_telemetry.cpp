#include "daemon/session/session_telemetry.hpp"

#include <array>
#include <atomic>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <random>

#include "daemon/telemetry/event_log.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;

std::string new_session_id() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = generator();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, n >>= 4)
    id[static_cast<size_t>(i)] = kHex[n & 0xf];
  return id;
}

// The verbs counted under their own name; the last slot, "other", takes the rest.
constexpr std::string_view kCommandVerbs[] = {
    "CAPABILITY", "STARTTLS", "AUTHENTICATE", "LOGIN", "ID",   "NOOP", "LOGOUT",
    "ENABLE",     "EHLO",     "HELO",         "LHLO",  "AUTH", "MAIL", "RCPT",
    "DATA",       "BDAT",     "RSET",         "QUIT",  "VRFY", "HELP", "other"};

constexpr std::string_view kCommandProtocols[] = {"imap", "submission", "lmtp"};

// A command's duration histogram, looked up once per protocol and verb for the whole process:
// the family's lock stays off the command path, and no session keeps a table of its own.
metrics::Histogram& command_histogram(std::string_view protocol, size_t label) {
  static std::array<std::array<std::atomic<metrics::Histogram*>, std::size(kCommandVerbs)>,
                    std::size(kCommandProtocols)>
      looked_up{};
  size_t row = 0;
  while (row < std::size(kCommandProtocols) && kCommandProtocols[row] != protocol)
    ++row;
  if (row == std::size(kCommandProtocols))
    return metrics::gateway().command_duration.with({protocol, kCommandVerbs[label]});
  auto& slot = looked_up[row][label];
  metrics::Histogram* histogram = slot.load(std::memory_order_acquire);
  if (!histogram) {
    histogram = &metrics::gateway().command_duration.with({protocol, kCommandVerbs[label]});
    slot.store(histogram, std::memory_order_release);
  }
  return *histogram;
}

// Where a handshake's deadline or the phase before authentication cut it: the client had sent
// nothing, it waited for its turn, or the handshake was under way.
std::string_view stage_name(TlsOutcome::Stage stage) {
  switch (stage) {
    case TlsOutcome::Stage::kFirstBytes:
      return "first_bytes";
    case TlsOutcome::Stage::kTurn:
      return "turn";
    case TlsOutcome::Stage::kHandshake:
      return "handshake";
  }
  return "handshake";
}

}  // namespace

static_assert(std::size(kCommandVerbs) == SessionTelemetry::kCommandSlots);

SessionTelemetry::SessionTelemetry(std::shared_ptr<GatewayCounters> counters,
                                   std::string_view listener, std::string_view protocol)
    : counters_(std::move(counters)),
      id_(new_session_id()),
      listener_(listener),
      protocol_(protocol),
      started_(Clock::now()),
      bytes_to_backend_(metrics::gateway().relayed_bytes.with({protocol_, "to_backend"})),
      bytes_to_client_(metrics::gateway().relayed_bytes.with({protocol_, "to_client"})) {
  ++counters_->open_sessions;
  metrics::gateway().connections.with({listener_}).inc();
  metrics::gateway().sessions.with({listener_, "pre_auth"}).add(1);
}

SessionTelemetry::~SessionTelemetry() {
  command_finished();
  --counters_->open_sessions;
  metrics::gateway()
      .sessions.with({listener_, authenticated_ ? "authenticated" : "pre_auth"})
      .add(-1);
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

void SessionTelemetry::connected(const ConnectionEnds& ends) {
  peer_ = ends.peer;
  Event event("connect");
  event.add("session", id_).add("listener", listener_).add("peer", peer_);
  if (!ends.via.empty()) event.add("via", ends.via);
  event.info();
}

void SessionTelemetry::tls(const TlsOutcome& outcome) {
  if (!outcome.ok) {
    Event event("tls_failed");
    event.add("session", id_).add("peer", peer_);
    if (outcome.timed_out) {
      event.add("reason", "timeout").add("stage", stage_name(outcome.stage));
    } else if (!outcome.certificate_error.empty()) {
      event.add("reason", "client_certificate").add("certificate_error", outcome.certificate_error);
    } else {
      event.add("reason", outcome.failure);
    }
    event.add("turn_wait_ms", static_cast<uint64_t>(outcome.turn_wait.count()));
    metrics::gateway().tls_failures.with({listener_, outcome.failure_class}).inc();
    event.warn();
    set_close_reason("tls_failed");
    return;
  }
  metrics::gateway().tls_handshakes.with({listener_, outcome.resumed ? "resumed" : "full"}).inc();
  Event event("tls");
  event.add("session", id_).add("version", outcome.version).add("cipher", outcome.cipher);
  if (outcome.certificate) {
    event.add("client_certificate", outcome.certificate->subject)
        .add("certificate_sha256", outcome.certificate->sha256)
        .add("spki_sha256", outcome.certificate->spki_sha256);
  } else {
    event.add("client_certificate", "none");
  }
  event.add("turn_wait_ms", static_cast<uint64_t>(outcome.turn_wait.count()))
      .add("resumed", outcome.resumed)
      .info();
}

void SessionTelemetry::authenticated(std::string_view mailbox) {
  mailbox_ = mailbox;
  if (authenticated_) return;
  metrics::gateway().sessions.with({listener_, "pre_auth"}).add(-1);
  authenticated_ = true;
  metrics::gateway().sessions.with({listener_, "authenticated"}).add(1);
}

void SessionTelemetry::backend_failed(std::string_view step, std::string_view detail,
                                      Clock::time_point start) {
  metrics::gateway().backend_failures.with({protocol_, step}).inc();
  Event("backend")
      .add("session", id_)
      .add("result", "failed")
      .add("step", step)
      .add("detail", detail)
      .add("duration_ms", milliseconds_since(start))
      .error();
}

void SessionTelemetry::backend_ready(std::string_view mailbox, Clock::time_point start) {
  Event("backend")
      .add("session", id_)
      .add("result", "ok")
      .add("mailbox", mailbox)
      .add("duration_ms", milliseconds_since(start))
      .info();
}

void SessionTelemetry::command_started(std::string_view verb) {
  command_finished();
  size_t index = 0;
  while (index + 1 < kCommandSlots && !protocol::ascii_iequals(verb, kCommandVerbs[index]))
    ++index;
  command_label_ = index;
  command_start_ = Clock::now();
  command_open_ = true;
}

void SessionTelemetry::command_finished() {
  if (!command_open_) return;
  command_open_ = false;
  command_histogram(protocol_, command_label_)
      .observe(std::chrono::duration<double>(Clock::now() - command_start_).count());
}

void SessionTelemetry::set_close_reason(std::string_view reason) {
  if (close_reason_.empty()) close_reason_ = reason;
}

void SessionTelemetry::note_end(const boost::system::error_code& ec, std::string_view side,
                                bool backend_timed_out) {
  if (!close_reason_.empty()) return;
  if (side == "backend" && backend_timed_out) {
    close_reason_ = "backend_timeout";
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    close_reason_ = std::string(side) + "_closed";
  } else if (ec == asio::error::operation_aborted) {
    close_reason_ = "closed";
  } else {
    close_reason_ = std::string(side) + "_error: " + ec.message();
  }
}

int64_t SessionTelemetry::milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

}  // namespace mssgate::daemon
