#include "daemon/services/issuer_budget.hpp"

#include <algorithm>

namespace mssgate::daemon {

std::string_view IssuerBudget::describe(Spent spent) {
  return spent == Spent::kInFlight ? "in_flight" : "rate";
}

IssuerBudget::Ticket& IssuerBudget::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    budget_ = other.budget_;
    other.budget_ = nullptr;
  }
  return *this;
}

void IssuerBudget::Ticket::release() {
  if (budget_) budget_->finished();
  budget_ = nullptr;
}

IssuerBudget::IssuerBudget(Limits limits, Clock::time_point now)
    : limits_(limits), tokens_(static_cast<double>(limits.burst)), refilled_(now) {}

std::variant<IssuerBudget::Ticket, IssuerBudget::Spent> IssuerBudget::try_start(
    Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now > refilled_) {
    double seconds = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min(static_cast<double>(limits_.burst), tokens_ + seconds * limits_.per_second);
    refilled_ = now;
  }
  if (in_flight_ >= limits_.max_in_flight) return Spent::kInFlight;
  if (tokens_ < 1.0) return Spent::kRate;
  tokens_ -= 1.0;
  ++in_flight_;
  return Ticket(this);
}

unsigned IssuerBudget::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

void IssuerBudget::finished() {
  std::lock_guard lock(mutex_);
  --in_flight_;
}

}  // namespace mssgate::daemon
