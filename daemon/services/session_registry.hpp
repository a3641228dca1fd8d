#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "daemon/services/session_identity.hpp"
#include "daemon/services/token_issuer.hpp"
#include "storage/directory_lookup.hpp"

namespace mssgate::daemon {

// A session that signed in, as the registry keeps it while it lasts.
struct AuthorizedSession {
  std::string id;  // the session's id in the log
  SessionIdentity identity;
  std::string token;             // the access token of a PSC session, for re-checks; never logged
  int64_t token_expires_at = 0;  // its exp (seconds since the epoch)
  std::chrono::steady_clock::time_point signed_in_at;
  // Ends the session with a reason word; safe from any thread, a no-op once it has ended.
  std::function<void(const std::string& reason)> end;
};

// What a review applies to every session.
struct ReviewRules {
  config::AuthConfig auth;
  // A PSC session ends at this age (0: never); PSC's own session lasts 4 h.
  std::chrono::steady_clock::duration max_token_session_age{};
  // A PSC session's token is asked of the issuer again this often while it has not expired
  // (0: never).
  std::chrono::steady_clock::duration token_recheck_interval{};
};

// Why the directory no longer lets `session` stay open, or nothing: the same decision as at
// sign-in (a suspended or closed mailbox, a removed certificate binding, a professional no
// longer attached to the mailbox). An unavailable directory withdraws nothing.
std::optional<std::string> withdrawn_by_directory(const AuthorizedSession& session,
                                                  const storage::DirectoryLookup& directory,
                                                  const config::AuthConfig& auth);

// The sessions signed in, so that authorisation is not forever: a review (each second, and
// with the directory each time its snapshot or the configuration changes) finds the sessions
// whose authorisation was withdrawn, those too old, and the PSC sessions whose token is due for
// another check with the issuer. Thread-safe; sessions register from their io threads.
class SessionRegistry {
 public:
  using Clock = std::chrono::steady_clock;

  // Keeps a session in the registry while it lives.
  class Registration {
   public:
    Registration(SessionRegistry& registry, uint64_t key) : registry_(registry), key_(key) {}
    ~Registration() { registry_.remove(key_); }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    SessionRegistry& registry_;
    uint64_t key_;
  };

  struct Withdrawal {
    std::function<void(const std::string& reason)> end;
    std::string reason;
    std::string session_id;
  };
  struct TokenCheck {
    uint64_t key = 0;
    std::string token;
  };
  struct Review {
    std::vector<Withdrawal> withdrawals;
    std::vector<TokenCheck> token_checks;
  };

  // The registry must outlive the registration.
  std::unique_ptr<Registration> add(AuthorizedSession session);

  // `directory`: the directory to review every session against, or null when neither it nor
  // the rules changed since the last review. Each session is withdrawn at most once.
  Review review(const ReviewRules& rules, const storage::DirectoryLookup* directory,
                Clock::time_point now, int64_t now_unix);

  // The issuer's answer to a token check: a withdrawal when it says the token is no longer
  // valid (an unavailable issuer withdraws nothing; the check is made again later).
  std::optional<Withdrawal> token_checked(uint64_t key, const TokenValidation& answer,
                                          Clock::time_point now);

  size_t size() const;

 private:
  struct Entry {
    AuthorizedSession session;
    Clock::time_point token_checked_at;
    bool check_in_flight = false;
    bool withdrawn = false;
  };

  void remove(uint64_t key);
  // Under mutex_: the session's fate at `now`, or nothing.
  std::optional<std::string> fate(Entry& entry, const ReviewRules& rules,
                                  const storage::DirectoryLookup* directory, Clock::time_point now,
                                  int64_t now_unix, std::vector<TokenCheck>& checks,
                                  uint64_t key) const;
  static Withdrawal withdraw(Entry& entry, std::string reason);

  mutable std::mutex mutex_;
  uint64_t next_key_ = 1;
  std::unordered_map<uint64_t, Entry> entries_;
};

}  // namespace mssgate::daemon
