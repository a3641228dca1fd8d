#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/net/client_stream.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

// What one session reports of its life: its id, the connect and close events, the open
// sessions gauge (pre_auth, then authenticated), its duration, its TLS handshakes, its
// backend failures and the time each command takes. Counts itself in the gateway's open
// sessions while it lives.
class SessionTelemetry {
 public:
  using Clock = std::chrono::steady_clock;

  SessionTelemetry(std::shared_ptr<GatewayCounters> counters, std::string_view listener,
                   std::string_view protocol);
  ~SessionTelemetry();  // the close event
  SessionTelemetry(const SessionTelemetry&) = delete;
  SessionTelemetry& operator=(const SessionTelemetry&) = delete;

  const std::string& id() const { return id_; }
  const std::string& listener() const { return listener_; }
  const std::string& protocol() const { return protocol_; }
  GatewayCounters& counters() { return *counters_; }
  metrics::Counter& bytes_to_backend() { return bytes_to_backend_; }
  metrics::Counter& bytes_to_client() { return bytes_to_client_; }

  void connected(const ConnectionEnds& ends);
  void tls(const TlsOutcome& outcome);
  void authenticated(std::string_view mailbox);
  void backend_failed(std::string_view step, std::string_view detail, Clock::time_point start);
  void backend_ready(std::string_view mailbox, Clock::time_point start);

  // The command being timed ends with the next command, or with the session.
  void command_started(std::string_view verb);
  void command_finished();

  // Why the session ends; the first reason given wins.
  void set_close_reason(std::string_view reason);
  // The end of a read or write: eof is "<side>_closed", anything else "<side>_error: ...".
  void note_end(const boost::system::error_code& ec, std::string_view side,
                bool backend_timed_out = false);
  void set_bytes(uint64_t in, uint64_t out) {
    bytes_in_ = in;
    bytes_out_ = out;
  }

  static int64_t milliseconds_since(Clock::time_point start);
  static constexpr size_t kCommandSlots = 21;  // the verbs timed under their own name, "other"

 private:
  std::shared_ptr<GatewayCounters> counters_;
  std::string id_;
  std::string listener_;
  std::string protocol_;
  std::string peer_;
  std::string mailbox_;
  std::string close_reason_;
  Clock::time_point started_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  bool authenticated_ = false;
  metrics::Counter& bytes_to_backend_;
  metrics::Counter& bytes_to_client_;
  Clock::time_point command_start_{};
  size_t command_label_ = 0;
  bool command_open_ = false;
};

}  // namespace mssgate::daemon
