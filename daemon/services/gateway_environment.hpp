#pragma once

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "config/config.hpp"
#include "daemon/services/client_limits.hpp"
#include "daemon/services/directory_service.hpp"
#include "daemon/services/inspection_pool.hpp"
#include "daemon/services/issuer_budget.hpp"
#include "daemon/services/mailbox_gate.hpp"
#include "daemon/services/session_registry.hpp"
#include "daemon/services/token_validator.hpp"
#include "storage/indicator_journal.hpp"

namespace mssgate::daemon {

// What the sessions share. Immutable once built: a reload builds a new one and swaps it.
struct GatewayEnvironment {
  config::Config config;
  std::shared_ptr<boost::asio::ssl::context> tls;
  // The directory's snapshots: a reload that keeps directory.sqlite_path keeps the service.
  std::shared_ptr<DirectoryService> directory;
  std::shared_ptr<TokenValidator> validator;  // when Pro Santé Connect is configured
  // What the validator may ask of PSC: kept across reloads while [psc]'s limits stay the same.
  std::shared_ptr<IssuerBudget> psc_budget;
  // The modification times and sizes of the files the validator loaded (its client certificate
  // and key, its CA): a reload keeps the validator only when neither [psc] nor these changed.
  std::string psc_files_stamp;
  // The indicator journal when indicators are configured; the same across reloads.
  std::shared_ptr<storage::IndicatorJournal> indicators;
  // The threads that inspect messages, with the journal; the same across reloads.
  std::shared_ptr<InspectionPool> inspection;
  // The LMTP tap's deliveries handed to Dovecot one at a time per mailbox; the same across
  // reloads.
  std::shared_ptr<MailboxGate> mailbox_gate;
};

// Sessions per identity (a professional, a certificate key), counted while they live.
class SessionCounts {
 public:
  // False when `id` already holds `max`.
  bool acquire(const std::string& id, unsigned max) {
    std::lock_guard lock(mutex_);
    unsigned& count = counts_[id];
    if (count >= max) return false;
    ++count;
    return true;
  }
  void release(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(id);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, unsigned> counts_;
};

struct GatewayCounters {
  std::atomic<uint64_t> open_sessions{0};
  // Connections admitted and not yet ended, one budget each: the client listeners
  // (server.max_connections) and the LMTP tap (lmtp.max_connections).
  std::atomic<uint64_t> client_connections{0};
  std::atomic<uint64_t> lmtp_connections{0};
  // Mail transactions under way (from MAIL to the end of the message), which a stop waits for.
  std::atomic<uint64_t> transactions{0};
  // Set at SIGTERM: no new transaction starts.
  std::atomic<bool> draining{false};
  // What each client address did lately ([limits]).
  ClientLimits clients;
  // Sessions per professional, counted per person, not per token (tokens are renewed every
  // few minutes), and per certificate key (max_sessions_per_certificate).
  SessionCounts professionals;
  SessionCounts certificates;
  // The sessions signed in, reviewed while they last.
  SessionRegistry authorized;
};

// Counts one transaction while it lives.
class TransactionMark {
 public:
  explicit TransactionMark(std::shared_ptr<GatewayCounters> counters)
      : counters_(std::move(counters)) {
    ++counters_->transactions;
  }
  ~TransactionMark() { --counters_->transactions; }
  TransactionMark(const TransactionMark&) = delete;
  TransactionMark& operator=(const TransactionMark&) = delete;

 private:
  std::shared_ptr<GatewayCounters> counters_;
};

}  // namespace mssgate::daemon
