#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"

namespace mssgate::daemon {

// A client as the per-address limits know it: an IPv4 address, or the /64 network of an IPv6
// address (a subscriber or a host is usually given a whole /64, so counting single IPv6
// addresses would let one client use 2^64 of them).
struct ClientAddress {
  uint64_t bits = 0;  // IPv4: the address; IPv6: the first 64 bits
  bool v6 = false;

  static ClientAddress ipv4(uint32_t address) { return {address, false}; }
  static ClientAddress ipv6(const std::array<uint8_t, 16>& bytes);
  // "192.0.2.7", or "2001:db8:1:2::/64".
  std::string text() const;
  bool operator==(const ClientAddress&) const = default;
};

// The per-address limits of the client listeners (IMAP and submission), shared by every io
// thread: connections open at once and admitted per time unit, failed sign-ins per time unit
// (over it, sign-ins are refused without asking anyone), the growing delay before the answer
// to a failed sign-in, and which events about an address are written in full or only counted
// and summed up once its time unit ends. Sans-I/O: the time is given to every call.
//
// Counts are kept per address for one time unit (`limits.rate_time_unit`) from its first event;
// the next event after it starts a new one. At most `limits.tracked_addresses` addresses are
// known: a new one then makes the gateway forget the address least recently seen among those
// with no connection open (its summaries are written first). An address with connections open
// is never forgotten.
class ClientLimits {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Admission { kAdmitted, kTooManyOpen, kTooManyPerTimeUnit };
  // What is written in full up to a rate, then counted.
  enum class Kind : size_t { kFailedSignIn, kRefusedConnection };
  static constexpr size_t kKinds = 2;
  struct Summary {
    ClientAddress address;
    Kind kind;
    uint64_t written;  // events written in full in the time unit
    uint64_t left_out;
    Clock::duration unit;  // the time unit's length
  };

  ClientLimits();
  ClientLimits(const ClientLimits&) = delete;
  ClientLimits& operator=(const ClientLimits&) = delete;

  // A connection from `address`. Admitted: counted open until release(); `tracked` is false
  // when every known address has connections open and the table is full (the connection is
  // then admitted without its address's caps: the global connection cap still applies).
  Admission admit(const ClientAddress& address, bool exempt, Clock::time_point now,
                  const config::LimitsConfig& limits, bool& tracked);
  void release(const ClientAddress& address);

  // False when the address failed `failed_sign_in_rate_per_address` sign-ins in its time unit.
  bool sign_in_allowed(const ClientAddress& address, bool exempt, Clock::time_point now,
                       const config::LimitsConfig& limits);
  // Counts one failed sign-in; returns how long to wait before answering it.
  Clock::duration failed_sign_in(const ClientAddress& address, bool exempt, Clock::time_point now,
                                 const config::LimitsConfig& limits);
  // Whether an event of `kind` about `address` is written in full (the first
  // `logged_events_per_address` of its time unit) or left out and counted for its summary.
  bool write_in_full(const ClientAddress& address, Kind kind, Clock::time_point now,
                     const config::LimitsConfig& limits);

  // The summaries of the time units that ended by `now` with events left out, and of the
  // addresses forgotten since the last call.
  std::vector<Summary> take_summaries(Clock::time_point now);
  size_t tracked() const;

  // The delay before the answer to the `failures`-th failed sign-in of a time unit: none for
  // the first, then `failure_delay` doubled at each one, at most `max_failure_delay`.
  static Clock::duration delay_after(unsigned failures, const config::LimitsConfig& limits);

 private:
  struct Hash {
    uint64_t seed;
    size_t operator()(const ClientAddress& address) const;
  };
  struct Entry {
    unsigned open = 0;
    Clock::time_point unit_start;
    Clock::duration unit_length{};
    unsigned connections = 0;
    unsigned failures = 0;
    std::array<uint64_t, kKinds> written{};
    std::array<uint64_t, kKinds> left_out{};
    bool pending = false;  // in pending_: events were left out in this time unit
    std::list<ClientAddress>::iterator idle_position;
  };

  Entry* find(const ClientAddress& address, Clock::time_point now,
              const config::LimitsConfig& limits, bool create);
  void end_unit(const ClientAddress& address, Entry& entry);
  bool forget_one();

  mutable std::mutex mutex_;
  std::unordered_map<ClientAddress, Entry, Hash> entries_;
  // Addresses with no connection open, most recently seen first: the last is forgotten first.
  std::list<ClientAddress> idle_;
  std::vector<ClientAddress> pending_;
  std::vector<Summary> ended_;
};

}  // namespace mssgate::daemon
