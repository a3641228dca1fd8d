#pragma once

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>

#include "config/config.hpp"
#include "daemon/services/directory_service.hpp"
#include "daemon/services/session_registry.hpp"
#include "daemon/services/issuer_budget.hpp"
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
};

struct GatewayCounters {
  std::atomic<uint64_t> open_sessions{0};
  // Mail transactions under way (from MAIL to the end of the message), which a stop waits for.
  std::atomic<uint64_t> transactions{0};
  // Set at SIGTERM: no new transaction starts.
  std::atomic<bool> draining{false};
  // The sessions signed in, reviewed while they last.
  SessionRegistry authorized;

  // Sessions per professional, counted per person, not per token (tokens are renewed every
  // few minutes). False when `id` already holds `max`.
  bool acquire_professional(const std::string& id, unsigned max) {
    std::lock_guard lock(professionals_mutex);
    unsigned& count = professional_sessions[id];
    if (count >= max) return false;
    ++count;
    return true;
  }
  void release_professional(const std::string& id) {
    std::lock_guard lock(professionals_mutex);
    auto it = professional_sessions.find(id);
    if (it != professional_sessions.end() && --it->second == 0) professional_sessions.erase(it);
  }

 private:
  std::mutex professionals_mutex;
  std::unordered_map<std::string, unsigned> professional_sessions;
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
