#include "daemon/services/mailbox_gate.hpp"

#include <algorithm>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mssgate::daemon {
namespace {

bool shares(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& m) {
    return std::find(b.begin(), b.end(), m) != b.end();
  });
}

}  // namespace

bool MailboxTable::enter(uint64_t ticket, const std::vector<std::string>& mailboxes) {
  std::lock_guard lock(mutex_);
  bool free = std::none_of(mailboxes.begin(), mailboxes.end(),
                           [&](const std::string& m) { return held_.contains(m); });
  // Nor wanted by an earlier waiter: it would wait for ever behind newcomers.
  free = free && std::none_of(waiting_.begin(), waiting_.end(),
                              [&](const Waiter& w) { return shares(w.mailboxes, mailboxes); });
  if (free) {
    held_.insert(mailboxes.begin(), mailboxes.end());
    return true;
  }
  waiting_.push_back({ticket, mailboxes});
  return false;
}

std::vector<uint64_t> MailboxTable::leave(const std::vector<std::string>& mailboxes) {
  std::lock_guard lock(mutex_);
  for (const auto& m : mailboxes)
    held_.erase(m);
  return admit_waiters();
}

// In order of arrival: a waiter whose mailboxes are free, and wanted by no earlier waiter.
std::vector<uint64_t> MailboxTable::admit_waiters() {
  std::vector<uint64_t> admitted;
  std::unordered_set<std::string> wanted;  // by the waiters still waiting before this one
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    bool blocked =
        std::any_of(it->mailboxes.begin(), it->mailboxes.end(),
                    [&](const std::string& m) { return held_.contains(m) || wanted.contains(m); });
    if (blocked) {
      wanted.insert(it->mailboxes.begin(), it->mailboxes.end());
      ++it;
      continue;
    }
    held_.insert(it->mailboxes.begin(), it->mailboxes.end());
    admitted.push_back(it->ticket);
    it = waiting_.erase(it);
  }
  return admitted;
}

size_t MailboxTable::held() const {
  std::lock_guard lock(mutex_);
  return held_.size();
}

size_t MailboxTable::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

MailboxGate::Pass::Pass(std::shared_ptr<MailboxGate> gate, std::vector<std::string> mailboxes)
    : gate_(std::move(gate)), mailboxes_(std::move(mailboxes)) {}

MailboxGate::Pass& MailboxGate::Pass::operator=(Pass&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = std::move(other.gate_);
    mailboxes_ = std::move(other.mailboxes_);
  }
  return *this;
}

void MailboxGate::Pass::release() {
  if (auto gate = std::exchange(gate_, nullptr)) gate->leave(mailboxes_);
}

boost::asio::awaitable<MailboxGate::Pass> MailboxGate::enter(std::vector<std::string> mailboxes) {
  std::sort(mailboxes.begin(), mailboxes.end());
  mailboxes.erase(std::unique(mailboxes.begin(), mailboxes.end()), mailboxes.end());
  auto self = shared_from_this();
  auto initiate = [self, mailboxes](auto completion) mutable {
    auto executor = boost::asio::get_associated_executor(completion);
    // (Shared: the grant is a std::function, which copies.)
    auto handler = std::make_shared<decltype(completion)>(std::move(completion));
    Grant grant = [handler, executor](Pass pass) {
      // A pass whose session is gone is given back when the posted call is dropped.
      boost::asio::post(executor, [handler, pass = std::move(pass)]() mutable {
        std::move (*handler)(std::move(pass));
      });
    };
    uint64_t ticket;
    {
      std::lock_guard lock(self->mutex_);
      ticket = self->next_ticket_++;
      self->grants_.emplace(ticket, std::make_pair(mailboxes, grant));
    }
    if (self->table_.enter(ticket, mailboxes)) self->grant({ticket});
  };
  Pass pass =
      co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(Pass)>(
          std::move(initiate), boost::asio::use_awaitable);
  co_return pass;
}

void MailboxGate::leave(const std::vector<std::string>& mailboxes) {
  grant(table_.leave(mailboxes));
}

void MailboxGate::grant(const std::vector<uint64_t>& tickets) {
  for (auto ticket : tickets) {
    std::pair<std::vector<std::string>, Grant> entry;
    {
      std::lock_guard lock(mutex_);
      auto it = grants_.find(ticket);
      if (it == grants_.end()) continue;
      entry = std::move(it->second);
      grants_.erase(it);
    }
    entry.second(Pass(shared_from_this(), std::move(entry.first)));
  }
}

}  // namespace mssgate::daemon
