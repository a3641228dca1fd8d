#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "daemon/net/certificate_identity.hpp"
#include "storage/directory_lookup.hpp"

namespace mssgate::daemon {

// Who may open which mailbox. Kept apart from the SASL mechanics: the session asks, this
// answers from the directory alone.
struct AccessDecision {
  enum class Outcome {
    kAllowed,
    kAuthenticationFailed,
    kAuthorizationFailed,
    kTemporaryFailure,
    kLimitReached
  };
  Outcome outcome = Outcome::kAuthenticationFailed;
  std::string mailbox;      // the mailbox to open when allowed, else the one asked for if any
  std::string reason;       // for the log: a short word
  std::string client_text;  // a sentence safe to send to the client
};

// SASL EXTERNAL: the identity is the verified client certificate; the optional authorization
// identity names one of the applicative mailboxes bound to it. Without it, the certificate
// must be bound to exactly one mailbox.
AccessDecision decide_certificate_access(const storage::DirectoryLookup& directory,
                                         const CertificateIdentity* certificate,
                                         std::string_view requested_mailbox,
                                         const config::AuthConfig& auth);

// A Pro Santé Connect token: the identity is the professional the validated token names; the
// mailbox asked for must be attached to them in the directory (owner, delegate or co-holder).
AccessDecision decide_token_access(const storage::DirectoryLookup& directory,
                                   const std::string& professional_id,
                                   std::string_view requested_mailbox,
                                   const config::AuthConfig& auth);

}  // namespace mssgate::daemon
