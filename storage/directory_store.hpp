#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/mailbox.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {

struct Mailbox {
  std::string address;  // normalised, see protocol::normalize_mailbox_address
  protocol::MailboxType type = protocol::MailboxType::kApp;
  protocol::MailboxStatus status = protocol::MailboxStatus::kActive;
};

// How a client certificate is recognised. The SPKI fingerprint survives a renewal with the
// same key; issuer + serial names exactly one certificate.
enum class CertificateMatch { kSpkiSha256, kIssuerSerial };
std::string_view to_string(CertificateMatch match);
std::optional<CertificateMatch> parse_certificate_match(std::string_view text);

struct CertificateBinding {
  CertificateMatch match = CertificateMatch::kSpkiSha256;
  std::string value;    // hex SHA-256 of the SPKI, or "issuer DN (RFC 2253)|SERIAL HEX"
  std::string mailbox;  // an applicative mailbox this certificate may open
  std::string label;    // the certificate's subject, for humans
};

// How a health professional (holder) is attached to a mailbox.
enum class HolderRole { kOwner, kDelegate, kCoHolder };
std::string_view to_string(HolderRole role);
std::optional<HolderRole> parse_holder_role(std::string_view text);

struct Holder {
  std::string id;  // the professional's national identifier, idNat ("8" + RPPS, "0" + ADELI)
  std::string label;
};

struct HolderAttachment {
  std::string holder;
  std::string mailbox;
  HolderRole role = HolderRole::kOwner;
};

// What a verified certificate is known by, as computed from it (never from client text).
struct CertificateKeys {
  std::string spki_sha256;
  std::string issuer_serial;
};

// The answer of a lookup on the data path: never throws.
template <class T>
struct Lookup {
  T value{};
  std::string error;  // non-empty: the store could not answer
  bool ok() const { return error.empty(); }
};

// The directory: mailboxes and who may open them. Lookups are safe from any thread and never
// throw; administration calls throw StorageError.
class DirectoryStore {
 public:
  virtual ~DirectoryStore() = default;

  virtual Lookup<std::optional<Mailbox>> find_mailbox(const std::string& address) = 0;
  virtual Lookup<std::vector<std::string>> mailboxes_for_certificate(
      const CertificateKeys& keys) = 0;

  virtual void add_mailbox(const Mailbox& mailbox) = 0;
  virtual void set_mailbox_status(const std::string& address, protocol::MailboxStatus status) = 0;
  virtual void remove_mailbox(const std::string& address) = 0;
  virtual std::vector<Mailbox> list_mailboxes() = 0;

  // Senders a mailbox may use besides its own address (envelope and From header).
  virtual Lookup<std::vector<std::string>> allowed_senders(const std::string& mailbox) = 0;
  virtual void allow_sender(const std::string& mailbox, const std::string& sender) = 0;
  // Returns false when there was no such permission.
  virtual bool disallow_sender(const std::string& mailbox, const std::string& sender) = 0;

  // The role of a professional on a mailbox; nullopt when not attached.
  virtual Lookup<std::optional<HolderRole>> holder_role(const std::string& holder,
                                                        const std::string& mailbox) = 0;
  virtual void add_holder(const Holder& holder) = 0;
  virtual void remove_holder(const std::string& id) = 0;
  virtual std::vector<Holder> list_holders() = 0;
  virtual void attach_holder(const HolderAttachment& attachment) = 0;
  // Returns false when there was no such attachment.
  virtual bool detach_holder(const std::string& holder, const std::string& mailbox) = 0;
  virtual std::vector<HolderAttachment> list_attachments() = 0;

  virtual void bind_certificate(const CertificateBinding& binding) = 0;
  // Returns how many bindings were removed.
  virtual int unbind_certificate(const CertificateBinding& binding) = 0;
  virtual std::vector<CertificateBinding> list_certificate_bindings() = 0;
};

// Opens (and creates or migrates) the SQLite directory at `path`. Throws StorageError.
std::unique_ptr<DirectoryStore> open_sqlite_directory(const std::string& path);

}  // namespace mssgate::storage
