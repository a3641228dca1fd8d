#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/mailbox.hpp"

namespace mssgate::storage {

struct Mailbox {
  std::string address;  // normalised, see protocol::normalize_mailbox_address
  protocol::MailboxType type = protocol::MailboxType::kApp;
  protocol::MailboxStatus status = protocol::MailboxStatus::kActive;
  bool operator==(const Mailbox&) const = default;
};

// How a client certificate is recognised. The SPKI fingerprint survives a renewal with the
// same key; issuer + serial names exactly one certificate; the organisation identity (the
// issuer and chosen subject attributes, such as the structure's identifier and the service's
// name) survives a renewal with a new key.
enum class CertificateMatch { kSpkiSha256, kIssuerSerial, kOrganisation };
std::string_view to_string(CertificateMatch match);
std::optional<CertificateMatch> parse_certificate_match(std::string_view text);

// What a verified certificate is known by, as computed from it (never from client text).
struct CertificateKeys {
  std::string spki_sha256;
  std::string issuer_serial;
  // "ISSUER DN|OU=330000000,CN=LPS_TEST_HOPITAL": the attributes the configuration names, in
  // its order; empty when the subject lacks one of them or has it twice.
  std::string organisation = {};
};

// How a health professional (holder) is attached to a mailbox.
enum class HolderRole { kOwner, kDelegate, kCoHolder };
std::string_view to_string(HolderRole role);
std::optional<HolderRole> parse_holder_role(std::string_view text);

// The answer of a lookup on the data path: never throws.
template <class T>
struct Lookup {
  T value{};
  std::string error;  // non-empty: the directory could not answer
  bool ok() const { return error.empty(); }
};

// The directory as the data path reads it: the four questions a sign-in, a sent message and a
// delivery ask, and nothing that changes it. Safe from any thread; never throws. Addresses are
// compared byte for byte, as stored: callers normalise (protocol::normalize_mailbox_address).
class DirectoryLookup {
 public:
  virtual ~DirectoryLookup() = default;

  // The mailbox's type and status; nullopt when there is no such mailbox.
  virtual Lookup<std::optional<Mailbox>> find_mailbox(std::string_view address) const = 0;
  // The mailboxes bound to either key of a certificate, sorted, each once.
  virtual Lookup<std::vector<std::string>> mailboxes_for_certificate(
      const CertificateKeys& keys) const = 0;
  // Senders a mailbox may use besides its own address (envelope and From header), sorted.
  virtual Lookup<std::vector<std::string>> allowed_senders(std::string_view mailbox) const = 0;
  // The role of a professional (idNat) on a mailbox; nullopt when not attached.
  virtual Lookup<std::optional<HolderRole>> holder_role(std::string_view holder,
                                                        std::string_view mailbox) const = 0;
};

}  // namespace mssgate::storage
