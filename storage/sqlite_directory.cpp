#include <sqlite3.h>

#include <chrono>
#include <mutex>

#include "storage/directory_page_sql.hpp"
#include "storage/directory_store.hpp"
#include "storage/sqlite_directory_schema.hpp"
#include "storage/sqlite_statement.hpp"

namespace mssgate::storage {

std::string_view to_string(CertificateMatch match) {
  switch (match) {
    case CertificateMatch::kSpkiSha256:
      return "spki-sha256";
    case CertificateMatch::kIssuerSerial:
      return "issuer-serial";
    case CertificateMatch::kOrganisation:
      return "organisation";
  }
  return "?";
}

std::string_view to_string(HolderRole role) {
  switch (role) {
    case HolderRole::kOwner:
      return "owner";
    case HolderRole::kDelegate:
      return "delegate";
    case HolderRole::kCoHolder:
      return "co-holder";
  }
  return "?";
}

std::optional<HolderRole> parse_holder_role(std::string_view text) {
  for (auto role : {HolderRole::kOwner, HolderRole::kDelegate, HolderRole::kCoHolder}) {
    if (text == to_string(role)) return role;
  }
  return std::nullopt;
}

std::optional<CertificateMatch> parse_certificate_match(std::string_view text) {
  if (text == "spki-sha256") return CertificateMatch::kSpkiSha256;
  if (text == "issuer-serial") return CertificateMatch::kIssuerSerial;
  if (text == "organisation") return CertificateMatch::kOrganisation;
  return std::nullopt;
}

namespace {

namespace schema = sqlite_directory_schema;

Mailbox mailbox_from_row(const Statement& s) {
  Mailbox m;
  m.address = s.text(0);
  m.type = protocol::parse_mailbox_type(s.text(1)).value_or(protocol::MailboxType::kApp);
  m.status = protocol::parse_mailbox_status(s.text(2)).value_or(protocol::MailboxStatus::kClosed);
  return m;
}

HolderAttachment attachment_from_row(const Statement& s) {
  return {s.text(0), s.text(1), parse_holder_role(s.text(2)).value_or(HolderRole::kDelegate)};
}

CertificateBinding binding_from_row(const Statement& s) {
  return {parse_certificate_match(s.text(0)).value_or(CertificateMatch::kSpkiSha256), s.text(1),
          s.text(2), s.text(3)};
}

class SqliteDirectory final : public DirectoryStore {
 public:
  explicit SqliteDirectory(const std::string& path) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw StorageError("cannot open directory database " + path + ": " + message);
    }
    sqlite3_busy_timeout(db_, 5000);
    try {
      exec("PRAGMA journal_mode = WAL");
      exec("PRAGMA foreign_keys = ON");
      exec("PRAGMA synchronous = NORMAL");
      migrate();
      find_mailbox_ = std::make_unique<Statement>(
          db_, "SELECT address, type, status FROM mailbox WHERE address = ?1");
      find_bound_ = std::make_unique<Statement>(
          db_,
          "SELECT DISTINCT mailbox FROM certificate_binding WHERE "
          "(match_kind = 'spki-sha256' AND match_value = ?1) OR "
          "(match_kind = 'issuer-serial' AND match_value = ?2) OR "
          "(match_kind = 'organisation' AND match_value = ?3) ORDER BY mailbox");
      find_role_ = std::make_unique<Statement>(
          db_, "SELECT role FROM mailbox_holder WHERE holder = ?1 AND mailbox = ?2");
      find_senders_ = std::make_unique<Statement>(
          db_, "SELECT sender FROM mailbox_sender WHERE mailbox = ?1 ORDER BY sender");
    } catch (...) {
      // A constructor that throws runs no destructor: what it opened is closed here.
      close();
      throw;
    }
  }

  ~SqliteDirectory() override { close(); }

  Lookup<std::optional<Mailbox>> find_mailbox(std::string_view address) const override {
    std::lock_guard lock(mutex_);
    Lookup<std::optional<Mailbox>> result;
    Statement& s = *find_mailbox_;
    ResetGuard guard(s);
    s.bind(1, address);
    int rc = s.step();
    if (rc == SQLITE_ROW) {
      result.value = mailbox_from_row(s);
    } else if (rc != SQLITE_DONE) {
      result.error = sqlite3_errmsg(db_);
    }
    return result;
  }

  Lookup<std::vector<std::string>> mailboxes_for_certificate(
      const CertificateKeys& keys) const override {
    std::lock_guard lock(mutex_);
    Lookup<std::vector<std::string>> result;
    Statement& s = *find_bound_;
    ResetGuard guard(s);
    s.bind(1, keys.spki_sha256).bind(2, keys.issuer_serial).bind(3, keys.organisation);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      result.value.push_back(s.text(0));
    if (rc != SQLITE_DONE) result.error = sqlite3_errmsg(db_);
    return result;
  }

  void add_mailbox(const Mailbox& mailbox) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "INSERT INTO mailbox (address, type, status, created_at) VALUES (?1, ?2, ?3, ?4)");
    s.bind(1, mailbox.address)
        .bind(2, protocol::to_string(mailbox.type))
        .bind(3, protocol::to_string(mailbox.status))
        .bind(4, static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()));
    if (s.step() != SQLITE_DONE) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw StorageError("mailbox " + mailbox.address + " already exists");
      }
      throw StorageError(std::string("cannot add mailbox: ") + sqlite3_errmsg(db_));
    }
  }

  void set_mailbox_status(const std::string& address, protocol::MailboxStatus status) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "UPDATE mailbox SET status = ?2 WHERE address = ?1");
    s.bind(1, address).bind(2, protocol::to_string(status));
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot update mailbox: ") + sqlite3_errmsg(db_));
    if (sqlite3_changes(db_) == 0) throw StorageError("no mailbox " + address);
  }

  void remove_mailbox(const std::string& address) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM mailbox WHERE address = ?1");
    s.bind(1, address);
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot remove mailbox: ") + sqlite3_errmsg(db_));
    if (sqlite3_changes(db_) == 0) throw StorageError("no mailbox " + address);
  }

  std::vector<Mailbox> list_mailboxes() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT address, type, status FROM mailbox ORDER BY address");
    std::vector<Mailbox> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(mailbox_from_row(s));
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot list mailboxes: ") + sqlite3_errmsg(db_));
    return out;
  }

  Lookup<std::vector<std::string>> allowed_senders(std::string_view mailbox) const override {
    std::lock_guard lock(mutex_);
    Lookup<std::vector<std::string>> result;
    Statement& s = *find_senders_;
    ResetGuard guard(s);
    s.bind(1, mailbox);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      result.value.push_back(s.text(0));
    if (rc != SQLITE_DONE) result.error = sqlite3_errmsg(db_);
    return result;
  }

  void allow_sender(const std::string& mailbox, const std::string& sender) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO mailbox_sender (mailbox, sender) VALUES (?1, ?2)");
    s.bind(1, mailbox).bind(2, sender);
    if (s.step() != SQLITE_DONE) {
      int code = sqlite3_extended_errcode(db_);
      if (code == SQLITE_CONSTRAINT_FOREIGNKEY) throw StorageError("no mailbox " + mailbox);
      if (code == SQLITE_CONSTRAINT_PRIMARYKEY)
        throw StorageError(mailbox + " may already send as " + sender);
      throw StorageError(std::string("cannot allow sender: ") + sqlite3_errmsg(db_));
    }
  }

  bool disallow_sender(const std::string& mailbox, const std::string& sender) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM mailbox_sender WHERE mailbox = ?1 AND sender = ?2");
    s.bind(1, mailbox).bind(2, sender);
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot disallow sender: ") + sqlite3_errmsg(db_));
    return sqlite3_changes(db_) > 0;
  }

  Lookup<std::optional<HolderRole>> holder_role(std::string_view holder,
                                                std::string_view mailbox) const override {
    std::lock_guard lock(mutex_);
    Lookup<std::optional<HolderRole>> result;
    Statement& s = *find_role_;
    ResetGuard guard(s);
    s.bind(1, holder).bind(2, mailbox);
    int rc = s.step();
    if (rc == SQLITE_ROW) {
      result.value = parse_holder_role(s.text(0));
    } else if (rc != SQLITE_DONE) {
      result.error = sqlite3_errmsg(db_);
    }
    return result;
  }

  void add_holder(const Holder& holder) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO holder (id, label) VALUES (?1, ?2)");
    s.bind(1, holder.id).bind(2, holder.label);
    if (s.step() != SQLITE_DONE) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw StorageError("holder " + holder.id + " already exists");
      }
      throw StorageError(std::string("cannot add holder: ") + sqlite3_errmsg(db_));
    }
  }

  void remove_holder(const std::string& id) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM holder WHERE id = ?1");
    s.bind(1, id);
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot remove holder: ") + sqlite3_errmsg(db_));
    if (sqlite3_changes(db_) == 0) throw StorageError("no holder " + id);
  }

  std::vector<Holder> list_holders() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT id, label FROM holder ORDER BY id");
    std::vector<Holder> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.text(0), s.text(1)});
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot list holders: ") + sqlite3_errmsg(db_));
    return out;
  }

  void attach_holder(const HolderAttachment& attachment) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO mailbox_holder (mailbox, holder, role) VALUES (?1, ?2, ?3)");
    s.bind(1, attachment.mailbox).bind(2, attachment.holder).bind(3, to_string(attachment.role));
    if (s.step() != SQLITE_DONE) {
      int code = sqlite3_extended_errcode(db_);
      if (code == SQLITE_CONSTRAINT_FOREIGNKEY) {
        throw StorageError("no mailbox " + attachment.mailbox + " or no holder " +
                           attachment.holder);
      }
      if (code == SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw StorageError(attachment.holder + " is already attached to " + attachment.mailbox);
      }
      throw StorageError(std::string("cannot attach holder: ") + sqlite3_errmsg(db_));
    }
  }

  bool detach_holder(const std::string& holder, const std::string& mailbox) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM mailbox_holder WHERE holder = ?1 AND mailbox = ?2");
    s.bind(1, holder).bind(2, mailbox);
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot detach holder: ") + sqlite3_errmsg(db_));
    return sqlite3_changes(db_) > 0;
  }

  std::vector<HolderAttachment> list_attachments() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT holder, mailbox, role FROM mailbox_holder ORDER BY holder, mailbox");
    std::vector<HolderAttachment> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(attachment_from_row(s));
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot list attachments: ") + sqlite3_errmsg(db_));
    return out;
  }

  void bind_certificate(const CertificateBinding& binding) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "INSERT INTO certificate_binding (match_kind, match_value, mailbox, label) "
                "VALUES (?1, ?2, ?3, ?4)");
    s.bind(1, to_string(binding.match))
        .bind(2, binding.value)
        .bind(3, binding.mailbox)
        .bind(4, binding.label);
    if (s.step() != SQLITE_DONE) {
      int code = sqlite3_extended_errcode(db_);
      if (code == SQLITE_CONSTRAINT_FOREIGNKEY) throw StorageError("no mailbox " + binding.mailbox);
      if (code == SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw StorageError("this certificate is already bound to " + binding.mailbox);
      }
      throw StorageError(std::string("cannot bind certificate: ") + sqlite3_errmsg(db_));
    }
  }

  int unbind_certificate(const CertificateBinding& binding) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "DELETE FROM certificate_binding WHERE match_kind = ?1 AND match_value = ?2 "
                "AND mailbox = ?3");
    s.bind(1, to_string(binding.match)).bind(2, binding.value).bind(3, binding.mailbox);
    if (s.step() != SQLITE_DONE)
      throw StorageError(std::string("cannot unbind: ") + sqlite3_errmsg(db_));
    return sqlite3_changes(db_);
  }

  std::vector<CertificateBinding> list_certificate_bindings() override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "SELECT match_kind, match_value, mailbox, label FROM certificate_binding "
                "ORDER BY mailbox, match_kind, match_value");
    std::vector<CertificateBinding> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(binding_from_row(s));
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot list bindings: ") + sqlite3_errmsg(db_));
    return out;
  }

  std::vector<AllowedSender> list_senders() override {
    std::lock_guard lock(mutex_);
    return senders_locked();
  }

  DirectoryContents read_whole() override {
    std::lock_guard lock(mutex_);
    exec("BEGIN");
    try {
      DirectoryContents contents = contents_locked();
      exec("COMMIT");
      return contents;
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  DirectoryContents read_page(const DirectoryPageQuery& query) override {
    PageStatement page = page_statement(query, '?');
    std::lock_guard lock(mutex_);
    Statement s(db_, page.sql.c_str());
    for (size_t i = 0; i < page.params.size(); ++i)
      s.bind(static_cast<int>(i + 1), page.params[i]);
    DirectoryContents out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      switch (query.table) {
        case DirectoryTable::kMailboxes:
          out.mailboxes.push_back(mailbox_from_row(s));
          break;
        case DirectoryTable::kSenders:
          out.senders.push_back({s.text(0), s.text(1)});
          break;
        case DirectoryTable::kHolders:
          out.holders.push_back({s.text(0), s.text(1)});
          break;
        case DirectoryTable::kAttachments:
          out.attachments.push_back(attachment_from_row(s));
          break;
        case DirectoryTable::kBindings:
          out.bindings.push_back(binding_from_row(s));
          break;
      }
    }
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot read the directory: ") + sqlite3_errmsg(db_));
    return out;
  }

  void apply_changes(const DirectoryChanges& changes) override {
    std::lock_guard lock(mutex_);
    exec("BEGIN IMMEDIATE");
    try {
      apply_locked(changes);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void change_whole(const ChangePlan& plan) override {
    std::lock_guard lock(mutex_);
    exec("BEGIN IMMEDIATE");
    try {
      auto changes = plan(contents_locked());
      if (changes) apply_locked(*changes);
      exec(changes ? "COMMIT" : "ROLLBACK");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

 private:
  void exec(const char* sql) { exec_sql(db_, sql, "directory database"); }

  // The list_* queries, the mutex held.
  std::vector<AllowedSender> senders_locked() {
    Statement s(db_, "SELECT mailbox, sender FROM mailbox_sender ORDER BY mailbox, sender");
    std::vector<AllowedSender> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.text(0), s.text(1)});
    if (rc != SQLITE_DONE)
      throw StorageError(std::string("cannot list senders: ") + sqlite3_errmsg(db_));
    return out;
  }

  template <class Row, class FromRow>
  std::vector<Row> rows_locked(const char* sql, std::string_view what, FromRow from_row) {
    Statement s(db_, sql);
    std::vector<Row> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(from_row(s));
    if (rc != SQLITE_DONE)
      throw StorageError("cannot read " + std::string(what) + ": " + sqlite3_errmsg(db_));
    return out;
  }

  DirectoryContents contents_locked() {
    DirectoryContents c;
    c.mailboxes = rows_locked<Mailbox>("SELECT address, type, status FROM mailbox", "mailboxes",
                                       mailbox_from_row);
    c.senders = senders_locked();
    c.holders =
        rows_locked<Holder>("SELECT id, label FROM holder", "holders", [](const Statement& s) {
          return Holder{s.text(0), s.text(1)};
        });
    c.attachments = rows_locked<HolderAttachment>(
        "SELECT holder, mailbox, role FROM mailbox_holder", "attachments", attachment_from_row);
    c.bindings = rows_locked<CertificateBinding>(
        "SELECT match_kind, match_value, mailbox, label FROM certificate_binding", "bindings",
        binding_from_row);
    sort_contents(c);
    return c;
  }

  // Runs `sql` once per row, its parameters bound by `bind`.
  template <class Row, class Bind>
  void each_row(const std::vector<Row>& rows, const char* sql, Bind bind) {
    if (rows.empty()) return;
    Statement s(db_, sql);
    for (const auto& row : rows) {
      bind(s, row);
      if (s.step() != SQLITE_DONE) {
        std::string why = std::string("cannot change the directory: ") + sqlite3_errmsg(db_);
        if ((sqlite3_extended_errcode(db_) & 0xff) == SQLITE_CONSTRAINT) throw StorageRefusal(why);
        throw StorageError(why);
      }
      s.reset();
    }
  }

  void apply_locked(const DirectoryChanges& c) {
    auto binding_key = [](Statement& s, const CertificateBinding& b) {
      s.bind(1, to_string(b.match)).bind(2, b.value).bind(3, b.mailbox).bind(4, b.label);
    };
    auto attachment_row = [](Statement& s, const HolderAttachment& a) {
      s.bind(1, a.holder).bind(2, a.mailbox).bind(3, to_string(a.role));
    };
    auto sender_row = [](Statement& s, const AllowedSender& a) {
      s.bind(1, a.mailbox).bind(2, a.sender);
    };
    auto holder_row = [](Statement& s, const Holder& h) { s.bind(1, h.id).bind(2, h.label); };
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto mailbox_row = [now](Statement& s, const Mailbox& m) {
      s.bind(1, m.address)
          .bind(2, protocol::to_string(m.type))
          .bind(3, protocol::to_string(m.status))
          .bind(4, now);
    };
    each_row(c.bindings.removed,
             "DELETE FROM certificate_binding WHERE match_kind = ?1 AND match_value = ?2 AND "
             "mailbox = ?3",
             [](Statement& s, const CertificateBinding& b) {
               s.bind(1, to_string(b.match)).bind(2, b.value).bind(3, b.mailbox);
             });
    each_row(
        c.attachments.removed, "DELETE FROM mailbox_holder WHERE holder = ?1 AND mailbox = ?2",
        [](Statement& s, const HolderAttachment& a) { s.bind(1, a.holder).bind(2, a.mailbox); });
    each_row(c.senders.removed, "DELETE FROM mailbox_sender WHERE mailbox = ?1 AND sender = ?2",
             sender_row);
    each_row(c.holders.removed, "DELETE FROM holder WHERE id = ?1",
             [](Statement& s, const Holder& h) { s.bind(1, h.id); });
    each_row(c.mailboxes.removed, "DELETE FROM mailbox WHERE address = ?1",
             [](Statement& s, const Mailbox& m) { s.bind(1, m.address); });
    each_row(c.mailboxes.added,
             "INSERT INTO mailbox (address, type, status, created_at) VALUES (?1, ?2, ?3, ?4)",
             mailbox_row);
    each_row(c.mailboxes.changed, "UPDATE mailbox SET type = ?2, status = ?3 WHERE address = ?1",
             [](Statement& s, const Mailbox& m) {
               s.bind(1, m.address)
                   .bind(2, protocol::to_string(m.type))
                   .bind(3, protocol::to_string(m.status));
             });
    each_row(c.holders.added, "INSERT INTO holder (id, label) VALUES (?1, ?2)", holder_row);
    each_row(c.holders.changed, "UPDATE holder SET label = ?2 WHERE id = ?1", holder_row);
    each_row(c.senders.added, "INSERT INTO mailbox_sender (mailbox, sender) VALUES (?1, ?2)",
             sender_row);
    each_row(c.attachments.added,
             "INSERT INTO mailbox_holder (holder, mailbox, role) VALUES (?1, ?2, ?3)",
             attachment_row);
    each_row(c.attachments.changed,
             "UPDATE mailbox_holder SET role = ?3 WHERE holder = ?1 AND mailbox = ?2",
             attachment_row);
    each_row(c.bindings.added,
             "INSERT INTO certificate_binding (match_kind, match_value, mailbox, label) VALUES "
             "(?1, ?2, ?3, ?4)",
             binding_key);
    each_row(c.bindings.changed,
             "UPDATE certificate_binding SET label = ?4 WHERE match_kind = ?1 AND match_value = ?2 "
             "AND mailbox = ?3",
             binding_key);
  }

  // The statements first: each is finalised on its connection.
  void close() {
    find_mailbox_.reset();
    find_bound_.reset();
    find_senders_.reset();
    find_role_.reset();
    sqlite3_close(db_);
    db_ = nullptr;
  }

  void migrate() {
    exec("BEGIN IMMEDIATE");
    try {
      int version = 0;
      {
        Statement s(db_, "PRAGMA user_version");
        if (s.step() == SQLITE_ROW) version = std::stoi(s.text(0));
      }
      if (version > schema::kVersion) {
        throw StorageError("directory database has schema version " + std::to_string(version) +
                           ", newer than this mssgate (" + std::to_string(schema::kVersion) + ")");
      }
      if (version < 1) exec(schema::kVersion1);
      if (version < 2) exec(schema::kVersion2);
      if (version < 3) exec(schema::kVersion3);
      if (version < 4) exec(schema::kVersion4);
      // Only when it changes: a write would tell every reader that the directory changed.
      if (version < schema::kVersion)
        exec(("PRAGMA user_version = " + std::to_string(schema::kVersion)).c_str());
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  mutable std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<Statement> find_mailbox_;
  std::unique_ptr<Statement> find_bound_;
  std::unique_ptr<Statement> find_senders_;
  std::unique_ptr<Statement> find_role_;
};

}  // namespace

std::unique_ptr<DirectoryStore> open_sqlite_directory(const std::string& path) {
  return std::make_unique<SqliteDirectory>(path);
}

}  // namespace mssgate::storage
