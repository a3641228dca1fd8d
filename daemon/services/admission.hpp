#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "daemon/services/client_limits.hpp"
#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

// What an admitted connection holds until it ends: its place in its listener's connection
// budget and, on a client listener, in its address's count. The session's sign-ins ask it
// about the address's failed sign-ins.
class Admission {
 public:
  using Clock = ClientLimits::Clock;

  Admission() = default;  // holds nothing, is held to nothing (tests)
  Admission(std::shared_ptr<GatewayCounters> counters, std::atomic<uint64_t>* budget,
            std::optional<ClientAddress> address, bool exempt, bool tracked)
      : counters_(std::move(counters)),
        budget_(budget),
        address_(address),
        exempt_(exempt),
        tracked_(tracked) {}
  ~Admission() { release(); }
  Admission(Admission&& other) noexcept { *this = std::move(other); }
  Admission& operator=(Admission&& other) noexcept;
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // False when the address failed too many sign-ins in its time unit.
  bool sign_in_allowed(const config::LimitsConfig& limits) const;
  // Counts a failed sign-in; how long to wait before answering it.
  Clock::duration failed_sign_in(const config::LimitsConfig& limits) const;
  // Whether an event about the address is written in full, or counted for its summary.
  bool write_in_full(ClientLimits::Kind kind, const config::LimitsConfig& limits) const;

 private:
  void release();

  std::shared_ptr<GatewayCounters> counters_;
  std::atomic<uint64_t>* budget_ = nullptr;
  std::optional<ClientAddress> address_;  // on a client listener
  bool exempt_ = false;
  bool tracked_ = false;  // counted open in the address's entry
};

// Which connection budget a listener's connections count against.
enum class Budget { kClients, kLmtp };

// The decision at accept: the listener's budget (the client listeners share
// server.max_connections, the LMTP tap has lmtp.max_connections), then on a client listener
// the address's caps. `refusal` names why a connection is refused: max_connections,
// address_connections or address_rate.
struct AdmissionDecision {
  std::optional<Admission> admission;
  std::string_view refusal;
};
AdmissionDecision admit(const std::shared_ptr<GatewayCounters>& counters, Budget budget,
                        const std::optional<ClientAddress>& address, bool exempt,
                        const config::Config& config, Admission::Clock::time_point now);

}  // namespace mssgate::daemon
