#include "daemon/services/admission.hpp"

#include <algorithm>
#include <utility>

namespace mssgate::daemon {

Admission& Admission::operator=(Admission&& other) noexcept {
  if (this == &other) return *this;
  release();
  counters_ = std::move(other.counters_);
  budget_ = std::exchange(other.budget_, nullptr);
  address_ = std::exchange(other.address_, std::nullopt);
  exempt_ = other.exempt_;
  tracked_ = std::exchange(other.tracked_, false);
  return *this;
}

void Admission::release() {
  if (budget_) --*budget_;
  budget_ = nullptr;
  if (tracked_ && address_) counters_->clients.release(*address_);
  tracked_ = false;
}

bool Admission::sign_in_allowed(const config::LimitsConfig& limits) const {
  if (!counters_ || !address_) return true;
  return counters_->clients.sign_in_allowed(*address_, exempt_, Clock::now(), limits);
}

Admission::Clock::duration Admission::failed_sign_in(const config::LimitsConfig& limits) const {
  if (!counters_ || !address_) return Clock::duration::zero();
  return counters_->clients.failed_sign_in(*address_, exempt_, Clock::now(), limits);
}

bool Admission::write_in_full(ClientLimits::Kind kind, const config::LimitsConfig& limits) const {
  if (!counters_ || !address_) return true;
  return counters_->clients.write_in_full(*address_, kind, Clock::now(), limits);
}

namespace {
std::atomic<uint64_t> process_open_file_limit{0};
}  // namespace

void set_open_file_limit(uint64_t limit) {
  process_open_file_limit.store(limit, std::memory_order_relaxed);
}

uint64_t open_file_limit() {
  return process_open_file_limit.load(std::memory_order_relaxed);
}

uint64_t descriptors_needed(const config::Config& config) {
  uint64_t lmtp = config.lmtp.listen.empty() ? 0 : config.lmtp.max_connections;
  return 2 * (uint64_t{config.server.max_connections} + lmtp) + kReservedDescriptors;
}

uint64_t client_connections_allowed(const config::Config& config, uint64_t limit) {
  uint64_t wanted = config.server.max_connections;
  if (limit == 0) return wanted;
  uint64_t lmtp = config.lmtp.listen.empty() ? 0 : 2 * uint64_t{config.lmtp.max_connections};
  uint64_t kept = kReservedDescriptors + lmtp;
  return limit > kept ? std::min(wanted, (limit - kept) / 2) : 0;
}

AdmissionDecision admit(const std::shared_ptr<GatewayCounters>& counters, Budget budget,
                        const std::optional<ClientAddress>& address, bool exempt,
                        const config::Config& config, Admission::Clock::time_point now) {
  bool lmtp = budget == Budget::kLmtp;
  auto& open = lmtp ? counters->lmtp_connections : counters->client_connections;
  uint64_t max =
      lmtp ? config.lmtp.max_connections : client_connections_allowed(config, open_file_limit());
  // Accepts happen on one thread, but connections end on any: count first, then check.
  if (open.fetch_add(1) >= max) {
    --open;
    return {std::nullopt, "max_connections"};
  }
  bool tracked = false;
  if (!lmtp && address) {
    auto outcome = counters->clients.admit(*address, exempt, now, config.limits, tracked);
    if (outcome != ClientLimits::Admission::kAdmitted) {
      --open;
      return {std::nullopt, outcome == ClientLimits::Admission::kTooManyOpen ? "address_connections"
                                                                             : "address_rate"};
    }
  }
  return {Admission(counters, &open, address, exempt, tracked), ""};
}

}  // namespace mssgate::daemon
