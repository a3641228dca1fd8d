#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace mssgate::daemon {

// Which deliveries may hand their message's end to Dovecot now: at most one per mailbox at a
// time. Dovecot 2.3 rewrites a mailbox's whole duplicate database from what it read when a
// delivery began, so of two deliveries to one mailbox under way together, the one that ends
// last drops the other's delivery id, and its Sieve script can no longer discard a delivery
// Postfix makes again of that message (docs/reliability.md). Waiters are served in order of
// arrival; one waits only for the mailboxes it shares with those before it. Sans-I/O and
// thread-safe: MailboxGate below does the waiting.
class MailboxTable {
 public:
  // True when the mailboxes are taken for `ticket` at once; else it waits its turn.
  bool enter(uint64_t ticket, const std::vector<std::string>& mailboxes);
  // Gives the mailboxes back; the tickets that have them now, in order.
  std::vector<uint64_t> leave(const std::vector<std::string>& mailboxes);
  size_t held() const;
  size_t waiting() const;

 private:
  struct Waiter {
    uint64_t ticket;
    std::vector<std::string> mailboxes;
  };
  std::vector<uint64_t> admit_waiters();

  mutable std::mutex mutex_;
  std::unordered_set<std::string> held_;
  std::deque<Waiter> waiting_;
};

class MailboxGate : public std::enable_shared_from_this<MailboxGate> {
 public:
  // Holds mailboxes until destroyed or released.
  class Pass {
   public:
    Pass() = default;
    Pass(std::shared_ptr<MailboxGate> gate, std::vector<std::string> mailboxes);
    Pass(Pass&& other) noexcept = default;
    Pass& operator=(Pass&& other) noexcept;
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() { release(); }
    void release();
    bool holds() const { return gate_ != nullptr; }

   private:
    std::shared_ptr<MailboxGate> gate_;
    std::vector<std::string> mailboxes_;
  };

  // Resumes the caller on its own executor once it holds every one of `mailboxes`.
  boost::asio::awaitable<Pass> enter(std::vector<std::string> mailboxes);
  const MailboxTable& table() const { return table_; }

 private:
  using Grant = std::function<void(Pass)>;
  void leave(const std::vector<std::string>& mailboxes);
  void grant(const std::vector<uint64_t>& tickets);

  MailboxTable table_;
  std::mutex mutex_;  // over the two below
  uint64_t next_ticket_ = 1;
  std::unordered_map<uint64_t, std::pair<std::vector<std::string>, Grant>> grants_;
};

}  // namespace mssgate::daemon
