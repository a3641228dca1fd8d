#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/sasl_exchange.hpp"
#include "daemon/net/certificate_identity.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/services/session_identity.hpp"
#include "storage/indicator_event.hpp"

namespace mssgate::daemon {

// One session counted against its identity's cap while it lives: a professional's
// (psc.max_sessions_per_professional) or a certificate key's (limits.max_sessions_per_certificate).
class IdentitySlot {
 public:
  IdentitySlot(std::shared_ptr<GatewayCounters> counters, SessionCounts& counts, std::string id)
      : counters_(std::move(counters)), counts_(counts), id_(std::move(id)) {}
  ~IdentitySlot() { counts_.release(id_); }
  IdentitySlot(const IdentitySlot&) = delete;
  IdentitySlot& operator=(const IdentitySlot&) = delete;

 private:
  std::shared_ptr<GatewayCounters> counters_;  // keeps `counts_` alive
  SessionCounts& counts_;
  std::string id_;
};

// The sign-in service's answer to one SASL exchange.
struct SignInDecision {
  core::SignInVerdict verdict;
  std::string professional_id;  // when a valid token named them, allowed or not
  std::string azp;
  int64_t token_expires_at = 0;              // the token's exp, when a token was valid
  std::unique_ptr<IdentitySlot> slot;        // held by the session when allowed
  std::vector<std::string> allowed_senders;  // when asked for, and allowed
};

// Sign-in for IMAP and submission alike: the token checked with Pro Santé Connect (or the
// verified certificate taken), the directory asked who may open which mailbox, the
// per-professional or per-certificate session cap applied; then the audit trail of every
// attempt.
class SignInService {
 public:
  SignInService(std::shared_ptr<const GatewayEnvironment> environment,
                std::shared_ptr<GatewayCounters> counters, std::string_view protocol);

  // Tokens are offered (XOAUTH2, OAUTHBEARER) when Pro Santé Connect is configured.
  bool tokens_offered() const { return environment_->validator != nullptr; }

  // `holds_slot`: the session already holds its identity's slot (a second sign-in).
  boost::asio::awaitable<SignInDecision> authorize(const core::SaslCredentials& credentials,
                                                   const CertificateIdentity* certificate,
                                                   bool want_allowed_senders, bool holds_slot);

  // The `auth` event of the audit trail and its metric. Never a token: the mechanism name the
  // client wrote is kept only when mssgate knows it. Not `in_full`: a failure beyond the
  // address's rate, only counted (its address's summary says how many).
  void audit(std::string_view session_id, std::string_view mechanism, bool ok,
             std::string_view reason, std::string_view mailbox, const SessionIdentity& identity,
             bool in_full = true) const;

  // A sign-in refused by a limit (address_failures, professional_sessions,
  // certificate_sessions): its metric.
  void limited(std::string_view limit) const;

 private:
  boost::asio::awaitable<SignInDecision> authorize_token(const protocol::OAuthCredentials& token,
                                                         const storage::DirectoryLookup& directory,
                                                         bool holds_slot);
  // The certificate key's slot for an allowed EXTERNAL sign-in, or the refusal.
  void take_certificate_slot(SignInDecision& decision, const CertificateIdentity& certificate);

  std::shared_ptr<const GatewayEnvironment> environment_;
  std::shared_ptr<GatewayCounters> counters_;
  std::string protocol_;
};

}  // namespace mssgate::daemon
