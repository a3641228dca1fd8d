#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/directory_lookup.hpp"
#include "storage/string_table.hpp"

namespace mssgate::storage {

// How many rows of each table a snapshot holds (after duplicates are dropped).
struct DirectoryCounts {
  size_t mailboxes = 0;
  size_t bindings = 0;  // certificate × mailbox
  size_t holders = 0;   // professionals attached to at least one mailbox
  size_t attachments = 0;
  size_t senders = 0;  // mailbox × allowed sender
};

// An immutable copy of what the data path asks the directory, answering from memory without a
// lock or a query: built once (DirectorySnapshotBuilder), then shared read-only between
// threads. Answers are those of the store it was read from, byte for byte; `error` is always
// empty.
//
// Layout: every address (of a mailbox, or named by a binding, an attachment or a permission)
// is in one SplitStringTable, the domain stored once; other tables refer to addresses by id.
// Lists (the mailboxes of a certificate key, the attachments of a professional) are runs of
// ids in one array per table.
class DirectorySnapshot final : public DirectoryLookup {
 public:
  Lookup<std::optional<Mailbox>> find_mailbox(std::string_view address) const override;
  Lookup<std::vector<std::string>> mailboxes_for_certificate(
      const CertificateKeys& keys) const override;
  Lookup<std::vector<std::string>> allowed_senders(std::string_view mailbox) const override;
  Lookup<std::optional<HolderRole>> holder_role(std::string_view holder,
                                                std::string_view mailbox) const override;

  const DirectoryCounts& counts() const { return counts_; }
  // Bytes its tables hold (allocated capacity), for the metrics and the benchmark.
  size_t memory_bytes() const;

 private:
  friend class DirectorySnapshotBuilder;
  DirectorySnapshot() = default;

  // Runs of values by key id: the values of key k are values[first[k]] up to values[first[k+1]].
  struct IdLists {
    std::vector<uint32_t> first;
    std::vector<uint32_t> values;
    std::span<const uint32_t> of(uint32_t key) const;
    // From (key, value) pairs sorted and without duplicates, for keys 0 to `keys` - 1.
    void fill(const std::vector<std::pair<uint32_t, uint32_t>>& pairs, uint32_t keys);
    size_t memory_bytes() const;
  };

  void add_bound(std::span<const uint32_t> ids, std::vector<std::string>& out) const;

  SplitStringTable addresses_{'@', SplitStringTable::Shared::kTail};
  // Per address: whether a mailbox row has it (addresses only referred to have none), its
  // type and status. See encode_mailbox_row.
  std::vector<uint8_t> mailbox_rows_;
  StringTable spki_keys_;
  IdLists spki_mailboxes_;
  SplitStringTable issuer_serial_keys_{'|', SplitStringTable::Shared::kHead};
  IdLists issuer_serial_mailboxes_;
  SplitStringTable organisation_keys_{'|', SplitStringTable::Shared::kHead};
  IdLists organisation_mailboxes_;
  StringTable holders_;
  IdLists holder_attachments_;  // address id << 2 | role, sorted by address id
  StringTable senders_;
  std::vector<std::pair<uint32_t, uint32_t>> mailbox_senders_;  // (address id, sender id), sorted
  DirectoryCounts counts_;
};

// Collects a directory's rows in any order, then makes the snapshot. Rows repeated are kept
// once (for a mailbox, the first one read; for a professional on a mailbox, the first role in
// owner, delegate, co-holder order). Throws StorageError past the snapshot's limits (4 GiB of
// text or 2^26 strings in a table).
class DirectorySnapshotBuilder {
 public:
  DirectorySnapshotBuilder();

  // Room for this many rows, to spare regrowth while reading (a hint, not a limit).
  void reserve(const DirectoryCounts& expected);
  void add_mailbox(std::string_view address, protocol::MailboxType type,
                   protocol::MailboxStatus status);
  void add_binding(CertificateMatch match, std::string_view value, std::string_view mailbox);
  void add_sender(std::string_view mailbox, std::string_view sender);
  void add_attachment(std::string_view holder, std::string_view mailbox, HolderRole role);

  // The snapshot of the rows added; the builder is left empty.
  std::shared_ptr<const DirectorySnapshot> build();

 private:
  uint32_t address_id(std::string_view address);

  std::unique_ptr<DirectorySnapshot> snapshot_;
  std::vector<std::pair<uint32_t, uint32_t>> spki_pairs_;
  std::vector<std::pair<uint32_t, uint32_t>> issuer_serial_pairs_;
  std::vector<std::pair<uint32_t, uint32_t>> organisation_pairs_;
  std::vector<std::pair<uint32_t, uint32_t>> holder_pairs_;
};

}  // namespace mssgate::storage
