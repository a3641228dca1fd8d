#include "daemon/services/access_policy.hpp"

#include <algorithm>

#include "protocol/mailbox_address.hpp"

namespace mssgate::daemon {
namespace {

AccessDecision refuse(AccessDecision::Outcome outcome, std::string mailbox, std::string reason,
                      std::string client_text) {
  return {outcome, std::move(mailbox), std::move(reason), std::move(client_text)};
}

}  // namespace

AccessDecision decide_certificate_access(const storage::DirectoryLookup& directory,
                                         const CertificateIdentity* certificate,
                                         std::string_view requested_mailbox,
                                         const config::AuthConfig& auth) {
  using Outcome = AccessDecision::Outcome;
  std::string requested;
  if (!requested_mailbox.empty()) {
    auto normalized = protocol::normalize_mailbox_address(requested_mailbox);
    if (!normalized) {
      return refuse(Outcome::kAuthorizationFailed, "", "invalid_authzid",
                    "The authorization identity is not a mailbox address");
    }
    requested = *normalized;
  }
  if (!certificate) {
    return refuse(Outcome::kAuthenticationFailed, requested, "no_client_certificate",
                  "No verified client certificate was presented");
  }
  // Bound by its own key (fingerprint, issuer and serial) or by its organisation identity; when
  // both are, they must say the same, or which mailboxes it opens would hang on which binding
  // was found first.
  storage::CertificateKeys keys = certificate->keys(auth.organisation_attributes);
  storage::CertificateKeys own_keys = keys;
  own_keys.organisation.clear();
  auto bound = directory.mailboxes_for_certificate(own_keys);
  if (!bound.ok()) {
    return refuse(Outcome::kTemporaryFailure, requested, "directory_unavailable",
                  "The directory is temporarily unavailable");
  }
  if (!keys.organisation.empty()) {
    auto by_organisation = directory.mailboxes_for_certificate({"", "", keys.organisation});
    if (!by_organisation.ok()) {
      return refuse(Outcome::kTemporaryFailure, requested, "directory_unavailable",
                    "The directory is temporarily unavailable");
    }
    if (bound.value.empty()) {
      bound.value = std::move(by_organisation.value);
    } else if (!by_organisation.value.empty() && by_organisation.value != bound.value) {
      return refuse(Outcome::kAuthenticationFailed, requested, "certificate_bindings_differ",
                    "This certificate's bindings disagree: ask the operator");
    }
  }
  if (bound.value.empty()) {
    return refuse(Outcome::kAuthenticationFailed, requested, "certificate_not_registered",
                  "This certificate is not registered for any mailbox");
  }
  std::string target = requested;
  if (target.empty()) {
    if (bound.value.size() != 1) {
      return refuse(Outcome::kAuthorizationFailed, "", "mailbox_not_named",
                    "This certificate opens several mailboxes: name one as authorization identity");
    }
    target = bound.value.front();
  } else if (std::find(bound.value.begin(), bound.value.end(), target) == bound.value.end()) {
    return refuse(Outcome::kAuthorizationFailed, target, "mailbox_not_bound",
                  "This certificate may not open that mailbox");
  }
  auto mailbox = directory.find_mailbox(target);
  if (!mailbox.ok()) {
    return refuse(Outcome::kTemporaryFailure, target, "directory_unavailable",
                  "The directory is temporarily unavailable");
  }
  if (!mailbox.value) {
    return refuse(Outcome::kAuthorizationFailed, target, "mailbox_unknown",
                  "This certificate may not open that mailbox");
  }
  if (mailbox.value->status != protocol::MailboxStatus::kActive) {
    return refuse(Outcome::kAuthorizationFailed, target,
                  "mailbox_" + std::string(protocol::to_string(mailbox.value->status)),
                  "The mailbox is not active");
  }
  const auto& allowed = auth.external_mailbox_types;
  if (std::find(allowed.begin(), allowed.end(), mailbox.value->type) == allowed.end()) {
    return refuse(Outcome::kAuthorizationFailed, target, "mailbox_type_not_allowed",
                  "This mailbox does not accept certificate authentication");
  }
  return {Outcome::kAllowed, target, "ok", ""};
}

AccessDecision decide_token_access(const storage::DirectoryLookup& directory,
                                   const std::string& professional_id,
                                   std::string_view requested_mailbox,
                                   const config::AuthConfig& auth) {
  using Outcome = AccessDecision::Outcome;
  auto requested = protocol::normalize_mailbox_address(requested_mailbox);
  if (!requested) {
    return refuse(Outcome::kAuthorizationFailed, "",
                  requested_mailbox.empty() ? "mailbox_not_named" : "invalid_authzid",
                  "Name the mailbox to open (a mailbox address)");
  }
  auto role = directory.holder_role(professional_id, *requested);
  if (!role.ok()) {
    return refuse(Outcome::kTemporaryFailure, *requested, "directory_unavailable",
                  "The directory is temporarily unavailable");
  }
  if (!role.value) {
    return refuse(Outcome::kAuthorizationFailed, *requested, "mailbox_not_attached",
                  "This professional may not open that mailbox");
  }
  auto mailbox = directory.find_mailbox(*requested);
  if (!mailbox.ok()) {
    return refuse(Outcome::kTemporaryFailure, *requested, "directory_unavailable",
                  "The directory is temporarily unavailable");
  }
  if (!mailbox.value) {
    return refuse(Outcome::kAuthorizationFailed, *requested, "mailbox_unknown",
                  "This professional may not open that mailbox");
  }
  if (mailbox.value->status != protocol::MailboxStatus::kActive) {
    return refuse(Outcome::kAuthorizationFailed, *requested,
                  "mailbox_" + std::string(protocol::to_string(mailbox.value->status)),
                  "The mailbox is not active");
  }
  const auto& allowed = auth.token_mailbox_types;
  if (std::find(allowed.begin(), allowed.end(), mailbox.value->type) == allowed.end()) {
    return refuse(Outcome::kAuthorizationFailed, *requested, "mailbox_type_not_allowed",
                  "This mailbox does not accept Pro Sante Connect sign-in");
  }
  return {Outcome::kAllowed, *requested, "ok", ""};
}

}  // namespace mssgate::daemon
