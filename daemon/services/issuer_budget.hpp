#pragma once

#include <chrono>
#include <mutex>
#include <string_view>
#include <variant>

namespace mssgate::daemon {

// How much mssgate may ask of Pro Santé Connect: at most `max_in_flight` requests at once, and
// a token bucket of `burst` requests refilled at `per_second`. Shared by every validator of
// one issuer (a reload that keeps the limits keeps the budget); thread-safe.
class IssuerBudget {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    unsigned max_in_flight = 32;
    unsigned per_second = 50;
    unsigned burst = 100;
    bool operator==(const Limits&) const = default;
  };

  enum class Spent { kInFlight, kRate };
  static std::string_view describe(Spent spent);  // "in_flight", "rate"

  // A request that the budget let start: it holds its in-flight slot until destroyed. The
  // budget must outlive it.
  class Ticket {
   public:
    Ticket() = default;
    explicit Ticket(IssuerBudget* budget) : budget_(budget) {}
    Ticket(Ticket&& other) noexcept : budget_(other.budget_) { other.budget_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release();

   private:
    IssuerBudget* budget_ = nullptr;
  };

  // The bucket starts full at `now`.
  explicit IssuerBudget(Limits limits, Clock::time_point now = Clock::now());
  IssuerBudget(const IssuerBudget&) = delete;
  IssuerBudget& operator=(const IssuerBudget&) = delete;

  // One more request at `now`: its ticket, or the limit it would pass (nothing is taken then).
  std::variant<Ticket, Spent> try_start(Clock::time_point now);

  const Limits& limits() const { return limits_; }
  unsigned in_flight() const;

 private:
  void finished();

  const Limits limits_;
  mutable std::mutex mutex_;
  unsigned in_flight_ = 0;
  double tokens_;
  Clock::time_point refilled_;
};

}  // namespace mssgate::daemon
