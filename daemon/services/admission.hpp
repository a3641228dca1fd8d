#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
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

// The descriptors the process may hold open (its RLIMIT_NOFILE, read once the gateway raised it
// to the hard limit at start); 0: not known, no cap from it.
void set_open_file_limit(uint64_t limit);
uint64_t open_file_limit();

// Each client session holds two descriptors (its connection and its backend's), as each LMTP
// delivery does; kReservedDescriptors are kept for the rest (listeners, the admin endpoint,
// the databases, the logs, HTTP clients, the io threads' own).
inline constexpr uint64_t kReservedDescriptors = 256;
// The descriptors `config`'s connection budgets need at most.
uint64_t descriptors_needed(const config::Config& config);
// The client connections that `limit` descriptors allow once the LMTP tap's budget is set
// aside: server.max_connections at most, and all of it when the limit is 0 (not known). A
// connection past it would have no descriptor left for its backend: it is refused at accept.
uint64_t client_connections_allowed(const config::Config& config, uint64_t limit);

// Which connection budget a listener's connections count against.
enum class Budget { kClients, kLmtp };

// The decision at accept: the listener's budget (the client listeners share
// server.max_connections, within what the open file limit allows; the LMTP tap has
// lmtp.max_connections), then on a client listener
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
