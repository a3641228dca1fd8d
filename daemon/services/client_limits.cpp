#include "daemon/services/client_limits.hpp"

#include <algorithm>
#include <random>
#include <utility>

namespace mssgate::daemon {
namespace {

// splitmix64's finaliser: addresses an attacker chooses (IPv6 networks) do not fall into one
// bucket of the table, whose seed is random.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31U);
}

}  // namespace

ClientAddress ClientAddress::ipv6(const std::array<uint8_t, 16>& bytes) {
  uint64_t bits = 0;
  for (size_t i = 0; i < 8; ++i)
    bits = (bits << 8U) | bytes[i];
  return {bits, true};
}

std::string ClientAddress::text() const {
  if (!v6) {
    return std::to_string((bits >> 24U) & 0xffU) + "." + std::to_string((bits >> 16U) & 0xffU) +
           "." + std::to_string((bits >> 8U) & 0xffU) + "." + std::to_string(bits & 0xffU);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int group = 3; group >= 0; --group) {
    auto value = static_cast<unsigned>((bits >> (static_cast<unsigned>(group) * 16U)) & 0xffffU);
    std::string digits;
    do {
      digits.insert(digits.begin(), kHex[value & 0xfU]);
      value >>= 4U;
    } while (value != 0);
    out += digits + ":";
  }
  return out + ":/64";
}

size_t ClientLimits::Hash::operator()(const ClientAddress& address) const {
  return static_cast<size_t>(mix(address.bits ^ seed ^ (address.v6 ? 1ULL : 0ULL)));
}

ClientLimits::ClientLimits() : entries_(16, Hash{std::random_device{}()}) {}

ClientLimits::Entry* ClientLimits::find(const ClientAddress& address, Clock::time_point now,
                                        const config::LimitsConfig& limits, bool create) {
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (!create) return nullptr;
    if (entries_.size() >= limits.tracked_addresses && !forget_one()) return nullptr;
    it = entries_.emplace(address, Entry{}).first;
    Entry& fresh = it->second;
    fresh.unit_start = now;
    fresh.unit_length = limits.rate_time_unit;
    idle_.push_front(address);
    fresh.idle_position = idle_.begin();
    return &fresh;
  }
  Entry& entry = it->second;
  if (now - entry.unit_start >= entry.unit_length) {
    end_unit(address, entry);
    entry.unit_start = now;
    entry.unit_length = limits.rate_time_unit;
  }
  if (entry.open == 0) idle_.splice(idle_.begin(), idle_, entry.idle_position);
  return &entry;
}

// The address's time unit ended: its counts start again, its summaries are due.
void ClientLimits::end_unit(const ClientAddress& address, Entry& entry) {
  for (size_t kind = 0; kind < kKinds; ++kind) {
    if (entry.left_out[kind] > 0) {
      ended_.push_back({address, static_cast<Kind>(kind), entry.written[kind], entry.left_out[kind],
                        entry.unit_length});
    }
  }
  entry.connections = 0;
  entry.failures = 0;
  entry.written = {};
  entry.left_out = {};
  entry.pending = false;
}

bool ClientLimits::forget_one() {
  if (idle_.empty()) return false;
  ClientAddress oldest = idle_.back();
  idle_.pop_back();
  auto it = entries_.find(oldest);
  end_unit(oldest, it->second);
  entries_.erase(it);
  return true;
}

ClientLimits::Admission ClientLimits::admit(const ClientAddress& address, bool exempt,
                                            Clock::time_point now,
                                            const config::LimitsConfig& limits, bool& tracked) {
  std::lock_guard lock(mutex_);
  Entry* entry = find(address, now, limits, true);
  tracked = entry != nullptr;
  if (!entry) return Admission::kAdmitted;
  if (!exempt) {
    if (entry->open >= limits.max_connections_per_address) return Admission::kTooManyOpen;
    if (entry->connections >= limits.connection_rate_per_address)
      return Admission::kTooManyPerTimeUnit;
  }
  ++entry->connections;
  if (entry->open++ == 0) idle_.erase(entry->idle_position);
  return Admission::kAdmitted;
}

void ClientLimits::release(const ClientAddress& address) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end() || it->second.open == 0) return;
  Entry& entry = it->second;
  if (--entry.open == 0) {
    idle_.push_front(address);
    entry.idle_position = idle_.begin();
  }
}

bool ClientLimits::sign_in_allowed(const ClientAddress& address, bool exempt, Clock::time_point now,
                                   const config::LimitsConfig& limits) {
  if (exempt) return true;
  std::lock_guard lock(mutex_);
  Entry* entry = find(address, now, limits, false);
  return !entry || entry->failures < limits.failed_sign_in_rate_per_address;
}

ClientLimits::Clock::duration ClientLimits::failed_sign_in(const ClientAddress& address,
                                                           bool exempt, Clock::time_point now,
                                                           const config::LimitsConfig& limits) {
  std::lock_guard lock(mutex_);
  Entry* entry = find(address, now, limits, true);
  if (!entry) return Clock::duration::zero();
  if (entry->failures < UINT32_MAX) ++entry->failures;
  return exempt ? Clock::duration::zero() : delay_after(entry->failures, limits);
}

bool ClientLimits::write_in_full(const ClientAddress& address, Kind kind, Clock::time_point now,
                                 const config::LimitsConfig& limits) {
  std::lock_guard lock(mutex_);
  Entry* entry = find(address, now, limits, true);
  if (!entry) return true;
  auto index = static_cast<size_t>(kind);
  if (entry->written[index] < limits.logged_events_per_address) {
    ++entry->written[index];
    return true;
  }
  ++entry->left_out[index];
  if (!entry->pending) {
    entry->pending = true;
    pending_.push_back(address);
  }
  return false;
}

std::vector<ClientLimits::Summary> ClientLimits::take_summaries(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::vector<ClientAddress> still;
  for (const auto& address : pending_) {
    auto it = entries_.find(address);
    if (it == entries_.end() || !it->second.pending) continue;  // summed up already
    Entry& entry = it->second;
    if (now - entry.unit_start >= entry.unit_length) {
      end_unit(address, entry);
      // The next event starts a new time unit.
      entry.unit_start = now - entry.unit_length;
    } else {
      still.push_back(address);
    }
  }
  pending_ = std::move(still);
  return std::exchange(ended_, {});
}

size_t ClientLimits::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

ClientLimits::Clock::duration ClientLimits::delay_after(unsigned failures,
                                                        const config::LimitsConfig& limits) {
  if (failures <= 1 || limits.failure_delay <= Clock::duration::zero())
    return Clock::duration::zero();
  Clock::duration delay = limits.failure_delay;
  for (unsigned i = 2; i < failures && delay < limits.max_failure_delay; ++i)
    delay *= 2;
  return std::min<Clock::duration>(delay, limits.max_failure_delay);
}

}  // namespace mssgate::daemon
