#pragma once

#include <optional>
#include <string>

#include "daemon/net/certificate_identity.hpp"
#include "storage/indicator_event.hpp"

namespace mssgate::daemon {

// Who a session signed in as, how, and the mailbox it opened.
struct SessionIdentity {
  std::string mailbox;
  storage::RecordedMailboxType mailbox_type;  // known once indicators noted the sign-in
  storage::AuthMode auth_mode = storage::AuthMode::kNone;
  std::string professional_id;            // when a token named them
  std::string azp;                        // the LPS's client the token was issued to
  SharedCertificateIdentity certificate;  // the verified client certificate
};

}  // namespace mssgate::daemon
