#include "daemon/services/session_registry.hpp"

#include "daemon/services/access_policy.hpp"

namespace mssgate::daemon {

std::optional<std::string> withdrawn_by_directory(const AuthorizedSession& session,
                                                  const storage::DirectoryLookup& directory,
                                                  const config::AuthConfig& auth) {
  const SessionIdentity& identity = session.identity;
  AccessDecision decision;
  switch (identity.auth_mode) {
    case storage::AuthMode::kCertificate:
      decision =
          decide_certificate_access(directory, identity.certificate.get(), identity.mailbox, auth);
      break;
    case storage::AuthMode::kPsc:
      decision = decide_token_access(directory, identity.professional_id, identity.mailbox, auth);
      break;
    default:
      return std::nullopt;
  }
  using Outcome = AccessDecision::Outcome;
  if (decision.outcome == Outcome::kAllowed || decision.outcome == Outcome::kTemporaryFailure)
    return std::nullopt;
  return decision.reason;
}

std::unique_ptr<SessionRegistry::Registration> SessionRegistry::add(AuthorizedSession session) {
  std::lock_guard lock(mutex_);
  uint64_t key = next_key_++;
  auto signed_in_at = session.signed_in_at;
  entries_.emplace(key, Entry{std::move(session), signed_in_at});
  return std::make_unique<Registration>(*this, key);
}

void SessionRegistry::remove(uint64_t key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

size_t SessionRegistry::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

SessionRegistry::Withdrawal SessionRegistry::withdraw(Entry& entry, std::string reason) {
  entry.withdrawn = true;
  return {entry.session.end, std::move(reason), entry.session.id};
}

std::optional<std::string> SessionRegistry::fate(Entry& entry, const ReviewRules& rules,
                                                 const storage::DirectoryLookup* directory,
                                                 Clock::time_point now, int64_t now_unix,
                                                 std::vector<TokenCheck>& checks,
                                                 uint64_t key) const {
  const AuthorizedSession& session = entry.session;
  const auto& certificate = session.identity.certificate;
  if (certificate && certificate->not_after != 0 && now_unix >= certificate->not_after)
    return "certificate_expired";
  if (directory) {
    if (auto reason = withdrawn_by_directory(session, *directory, rules.auth)) return reason;
  }
  if (session.identity.auth_mode != storage::AuthMode::kPsc) return std::nullopt;
  auto age = now - session.signed_in_at;
  if (rules.max_token_session_age.count() > 0 && age >= rules.max_token_session_age)
    return "session_age";
  // An expired token cannot be told from a revoked one by introspection: once it has expired,
  // the session lasts until its maximum age.
  bool token_live = session.token_expires_at == 0 || now_unix < session.token_expires_at;
  if (rules.token_recheck_interval.count() > 0 && token_live && !entry.check_in_flight &&
      now - entry.token_checked_at >= rules.token_recheck_interval && !session.token.empty()) {
    entry.check_in_flight = true;
    checks.push_back({key, session.token});
  }
  return std::nullopt;
}

SessionRegistry::Review SessionRegistry::review(const ReviewRules& rules,
                                                const storage::DirectoryLookup* directory,
                                                Clock::time_point now, int64_t now_unix) {
  Review review;
  std::lock_guard lock(mutex_);
  for (auto& [key, entry] : entries_) {
    if (entry.withdrawn) continue;
    if (auto reason = fate(entry, rules, directory, now, now_unix, review.token_checks, key))
      review.withdrawals.push_back(withdraw(entry, std::move(*reason)));
  }
  return review;
}

std::optional<SessionRegistry::Withdrawal> SessionRegistry::token_checked(
    uint64_t key, const TokenValidation& answer, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  Entry& entry = it->second;
  entry.check_in_flight = false;
  if (answer.result == TokenValidation::Result::kUnavailable) return std::nullopt;
  entry.token_checked_at = now;
  if (entry.withdrawn || answer.result == TokenValidation::Result::kValid) return std::nullopt;
  return withdraw(entry, "token_" + answer.reason);
}

}  // namespace mssgate::daemon
