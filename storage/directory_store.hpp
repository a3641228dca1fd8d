#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/directory_contents.hpp"
#include "storage/directory_lookup.hpp"
#include "storage/postgresql.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {

// One table of the directory, as the provisioning API pages through it.
enum class DirectoryTable { kMailboxes, kSenders, kHolders, kAttachments, kBindings };

// A page of one table: its rows in key order (mailboxes by address; senders by mailbox and
// sender; holders by id; attachments by holder and mailbox; bindings by mailbox, match and
// value), those after `after` (the key of the previous page's last row, as page_key gives it;
// empty: from the first row), at most `limit`. `mailbox` and `holder`, when set, keep only the
// rows of that mailbox or professional (in the tables that name one).
struct DirectoryPageQuery {
  DirectoryTable table = DirectoryTable::kMailboxes;
  std::vector<std::string> after = {};
  size_t limit = 100;
  std::string mailbox = {};
  std::string holder = {};
};

// How many columns make the key of `table` (the size of DirectoryPageQuery::after).
size_t page_key_size(DirectoryTable table);
// A row's key, in the order its table's page is sorted by.
std::vector<std::string> page_key(const Mailbox& row);
std::vector<std::string> page_key(const AllowedSender& row);
std::vector<std::string> page_key(const Holder& row);
std::vector<std::string> page_key(const HolderAttachment& row);
std::vector<std::string> page_key(const CertificateBinding& row);

// The directory as its administration sees it: mailboxes and who may open them. The lookups
// (DirectoryLookup) are safe from any thread and never throw, but each is a query: the daemon
// answers them from a DirectorySnapshot instead. Administration calls throw StorageError.
class DirectoryStore : public DirectoryLookup {
 public:
  virtual void add_mailbox(const Mailbox& mailbox) = 0;
  virtual void set_mailbox_status(const std::string& address, protocol::MailboxStatus status) = 0;
  virtual void remove_mailbox(const std::string& address) = 0;
  virtual std::vector<Mailbox> list_mailboxes() = 0;

  virtual void allow_sender(const std::string& mailbox, const std::string& sender) = 0;
  // Returns false when there was no such permission.
  virtual bool disallow_sender(const std::string& mailbox, const std::string& sender) = 0;

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
  virtual std::vector<AllowedSender> list_senders() = 0;

  // Every row, read in one transaction (a consistent copy), sorted as sort_contents does.
  virtual DirectoryContents read_whole() = 0;
  // Reads every row and makes the changes `plan` returns for them, in one write transaction:
  // nothing else changes the directory in between, and a failure (or a plan that throws)
  // leaves it as it was. A plan that returns nullopt changes nothing (a dry run).
  using ChangePlan = std::function<std::optional<DirectoryChanges>(const DirectoryContents&)>;
  virtual void change_whole(const ChangePlan& plan) = 0;

  // One page of one table (DirectoryPageQuery), in the DirectoryContents member of that table.
  virtual DirectoryContents read_page(const DirectoryPageQuery& query) = 0;
  // Makes `changes` in one transaction, in the order DirectoryChanges gives, reading nothing
  // first: a row added that is already there, or that names a mailbox or professional that is
  // not, throws StorageRefusal and leaves the directory as it was.
  virtual void apply_changes(const DirectoryChanges& changes) = 0;
};

// Opens (and creates or migrates) the SQLite directory at `path`. Throws StorageError.
std::unique_ptr<DirectoryStore> open_sqlite_directory(const std::string& path);
// The same in PostgreSQL (postgresql.hpp's settings): created or migrated under an advisory
// lock, so that gateways and mssgatectl starting together migrate once. Throws StorageError.
std::unique_ptr<DirectoryStore> open_postgresql_directory(const PostgresqlSettings& settings);

// What a move of the directory carried, table by table.
struct DirectoryCopyCounts {
  size_t mailboxes = 0;
  size_t senders = 0;
  size_t holders = 0;
  size_t attachments = 0;
  size_t bindings = 0;
  bool operator==(const DirectoryCopyCounts&) const = default;
};

// Copies every row of `from` (a single host's SQLite directory) into the PostgreSQL directory,
// which must be empty, in one transaction, then counts each table there and commits only when
// every count is the source's: an interrupted or partial move leaves PostgreSQL as it was.
// Throws StorageError (with both counts when they differ).
DirectoryCopyCounts copy_directory_to_postgresql(DirectoryStore& from,
                                                 const PostgresqlSettings& to);

}  // namespace mssgate::storage
