#pragma once
// The whole directory as rows (what `directory export` writes and `directory import` reads),
// and the changes that make one directory into another: computed here, without a database,
// then applied by a DirectoryStore in one transaction.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/directory_lookup.hpp"

namespace mssgate::storage {

struct CertificateBinding {
  CertificateMatch match = CertificateMatch::kSpkiSha256;
  std::string value;    // hex SHA-256 of the SPKI, or "issuer DN (RFC 2253)|SERIAL HEX"
  std::string mailbox;  // an applicative mailbox this certificate may open
  std::string label;    // the certificate's subject, for humans
  bool operator==(const CertificateBinding&) const = default;
};

struct Holder {
  std::string id;  // the professional's national identifier, idNat ("8" + RPPS, "0" + ADELI)
  std::string label;
  bool operator==(const Holder&) const = default;
};

struct HolderAttachment {
  std::string holder;
  std::string mailbox;
  HolderRole role = HolderRole::kOwner;
  bool operator==(const HolderAttachment&) const = default;
};

// A mailbox may also send as `sender` (envelope and From header).
struct AllowedSender {
  std::string mailbox;
  std::string sender;
  bool operator==(const AllowedSender&) const = default;
};

// Every row of a directory, table by table.
struct DirectoryContents {
  std::vector<Mailbox> mailboxes;
  std::vector<AllowedSender> senders;
  std::vector<Holder> holders;
  std::vector<HolderAttachment> attachments;
  std::vector<CertificateBinding> bindings;
  bool operator==(const DirectoryContents&) const = default;
};

// Sorts every table by its key, the order export writes them in.
void sort_contents(DirectoryContents& contents);

// A binding's value in its stored form (lower-case SHA-256; "DN|SERIAL" with the serial in
// upper-case hex without leading zeros), or nullopt with `why` set.
std::optional<std::string> normalize_binding_value(CertificateMatch match, std::string_view value,
                                                   std::string& why);

template <class Row>
struct TableChanges {
  std::vector<Row> added;
  std::vector<Row> changed;  // the row as it becomes (same key, other values)
  std::vector<Row> removed;
  size_t size() const { return added.size() + changed.size() + removed.size(); }
};

// What makes one directory into another. A store applies removals first (bindings,
// attachments, senders, holders, then mailboxes), then additions and changes (mailboxes and
// holders before the rows that name them).
struct DirectoryChanges {
  TableChanges<Mailbox> mailboxes;
  TableChanges<AllowedSender> senders;
  TableChanges<Holder> holders;
  TableChanges<HolderAttachment> attachments;
  TableChanges<CertificateBinding> bindings;
  size_t size() const {
    return mailboxes.size() + senders.size() + holders.size() + attachments.size() +
           bindings.size();
  }
};

// What an import does with the mailboxes of the directory that its file does not name.
enum class AbsentMailboxes {
  kKeep,     // a plain import: the file adds and updates, nothing else changes
  kSuspend,  // --sync: absent mailboxes become suspended (closed ones stay closed)
  kClose,    // --sync: absent mailboxes become closed
  kRemove,   // --sync: absent mailboxes are removed, with everything that names them
};
std::optional<AbsentMailboxes> parse_absent_mailboxes(std::string_view text);

// A row of an import file that cannot be taken, by its line.
struct ImportError {
  size_t line = 0;
  std::string message;
  bool operator==(const ImportError&) const = default;
};

// The rows of an import file and the line each was read from (lines.mailboxes[i] for
// contents.mailboxes[i], and so on).
struct ImportRows {
  DirectoryContents contents;
  struct Lines {
    std::vector<size_t> mailboxes, senders, holders, attachments, bindings;
  } lines;
};

// The changes that bring `current` to what `wanted` says. With AbsentMailboxes::kKeep only the
// rows of `wanted` are added or updated; otherwise (a sync) the rows of every other kind that
// `wanted` does not hold are removed, and absent mailboxes suspended, closed or removed.
// A row naming a mailbox or a professional that is neither in `wanted` nor (for kKeep) in
// `current` is an error, with its line; when there is any error the changes are empty.
DirectoryChanges plan_changes(const DirectoryContents& current, const ImportRows& wanted,
                              AbsentMailboxes absent, std::vector<ImportError>& errors);

// The changes as lines a person reads ("+ mailbox a@x.fr APP active", "~ ...", "- ..."), in
// the order they are applied, and the one-line summary ("mailboxes: 2 added, ...").
std::vector<std::string> describe_changes(const DirectoryChanges& changes);
std::string summarize_changes(const DirectoryChanges& changes);

}  // namespace mssgate::storage
