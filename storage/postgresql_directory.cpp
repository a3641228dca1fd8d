#include <algorithm>
#include <chrono>
#include <mutex>

#include "storage/directory_page_sql.hpp"
#include "storage/directory_source.hpp"
#include "storage/directory_store.hpp"
#include "storage/postgresql.hpp"
#include "storage/postgresql_directory_schema.hpp"

namespace mssgate::storage {
namespace {

namespace schema = postgresql_directory_schema;
using Params = std::initializer_list<PostgresqlConnection::Parameter>;

// Creates or migrates the directory's tables, once for every gateway starting together.
void migrate_directory(PostgresqlConnection& db) {
  db.in_transaction("the directory's migration", [&] {
    db.exec("locking the schema", "SELECT pg_advisory_xact_lock($1)",
            {std::to_string(schema::kMigrationLock)});
    db.exec_script("creating the schema table", schema::kSchemaTable);
    auto found = db.exec("reading the directory's schema version",
                         "SELECT version FROM mssgate_schema WHERE part = $1", {schema::kPart});
    int64_t version = found.rows() ? found.integer(0, 0) : 0;
    if (version > schema::kVersion) {
      throw StorageError("the PostgreSQL directory has schema version " + std::to_string(version) +
                         ", newer than this mssgate (" + std::to_string(schema::kVersion) + ")");
    }
    if (version < 1)
      db.exec_script("creating the directory's tables (version 1)", schema::kVersion1);
    if (version < 2)
      db.exec_script("allowing bindings by organisation (version 2)", schema::kVersion2);
    if (version < schema::kVersion) {
      db.exec("recording the directory's schema version",
              "INSERT INTO mssgate_schema (part, version) VALUES ($1, $2) "
              "ON CONFLICT (part) DO UPDATE SET version = EXCLUDED.version",
              {schema::kPart, std::to_string(schema::kVersion)});
    }
  });
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Mailbox mailbox_from_row(const PostgresqlResult& r, int row) {
  Mailbox m;
  m.address = r.text(row, 0);
  m.type = protocol::parse_mailbox_type(r.text(row, 1)).value_or(protocol::MailboxType::kApp);
  m.status =
      protocol::parse_mailbox_status(r.text(row, 2)).value_or(protocol::MailboxStatus::kClosed);
  return m;
}

HolderAttachment attachment_from_row(const PostgresqlResult& r, int row) {
  return {std::string(r.text(row, 0)), std::string(r.text(row, 1)),
          parse_holder_role(r.text(row, 2)).value_or(HolderRole::kDelegate)};
}

CertificateBinding binding_from_row(const PostgresqlResult& r, int row) {
  return {parse_certificate_match(r.text(row, 0)).value_or(CertificateMatch::kSpkiSha256),
          std::string(r.text(row, 1)), std::string(r.text(row, 2)), std::string(r.text(row, 3))};
}

// The store's answer to a failed write: the sentence of the constraint it broke, or the
// server's own.
[[noreturn]] void fail_write(const PostgresqlError& e, std::string_view foreign_key,
                             std::string_view unique) {
  if (e.sqlstate() == kForeignKeyViolation && !foreign_key.empty())
    throw StorageError(std::string(foreign_key));
  if (e.sqlstate() == kUniqueViolation && !unique.empty()) throw StorageError(std::string(unique));
  throw;
}

// Rows sent a batch at a time: one statement per batch, not per row. The statement is `head`,
// " VALUES ", the rows' parameters, then `tail` (for an UPDATE ... FROM (VALUES ...) AS v).
class BatchStatement {
 public:
  BatchStatement(PostgresqlConnection& db, std::string_view what, std::string head, size_t columns,
                 std::string tail = {})
      : db_(db),
        what_(what),
        head_(std::move(head)),
        tail_(std::move(tail)),
        columns_(columns),
        rows_per_statement_(std::min<size_t>(4000, kMaxParameters / columns)) {}
  void add(std::vector<std::string> row) {
    for (auto& value : row)
      values_.push_back(std::move(value));
    if (values_.size() >= rows_per_statement_ * columns_) flush();
  }
  void flush() {
    if (values_.empty()) return;
    std::string sql = head_ + " VALUES ";
    size_t rows = values_.size() / columns_;
    for (size_t r = 0; r < rows; ++r) {
      sql += r ? ",(" : "(";
      for (size_t c = 0; c < columns_; ++c) {
        if (c) sql += ',';
        sql += '$' + std::to_string(r * columns_ + c + 1);
      }
      sql += ')';
    }
    sql += tail_;
    db_.exec_values(what_, sql, values_);
    values_.clear();
  }

 private:
  static constexpr size_t kMaxParameters = 65535;  // the protocol's limit per statement
  PostgresqlConnection& db_;
  std::string what_;
  std::string head_;
  std::string tail_;
  size_t columns_;
  size_t rows_per_statement_;
  std::vector<std::string> values_;
};

// Each row of `rows` into one batched statement.
template <class Row, class Values>
void batch_rows(PostgresqlConnection& db, const std::vector<Row>& rows, std::string_view what,
                std::string head, size_t columns, std::string tail, Values values) {
  if (rows.empty()) return;
  BatchStatement batch(db, what, std::move(head), columns, std::move(tail));
  for (const auto& row : rows)
    batch.add(values(row));
  batch.flush();
}

class PostgresqlDirectory final : public DirectoryStore {
 public:
  explicit PostgresqlDirectory(const PostgresqlSettings& settings) : db_(settings) {
    migrate_directory(db_);
  }

  Lookup<std::optional<Mailbox>> find_mailbox(std::string_view address) const override {
    return lookup<std::optional<Mailbox>>([&](Lookup<std::optional<Mailbox>>& out) {
      auto r = db_.exec("finding a mailbox",
                        "SELECT address, type, status FROM mailbox WHERE address = $1", {address});
      if (r.rows()) out.value = mailbox_from_row(r, 0);
    });
  }

  Lookup<std::vector<std::string>> mailboxes_for_certificate(
      const CertificateKeys& keys) const override {
    return lookup<std::vector<std::string>>([&](Lookup<std::vector<std::string>>& out) {
      auto r = db_.exec("finding a certificate's mailboxes",
                        "SELECT DISTINCT mailbox FROM certificate_binding WHERE "
                        "(match_kind = 'spki-sha256' AND match_value = $1) OR "
                        "(match_kind = 'issuer-serial' AND match_value = $2) OR "
                        "(match_kind = 'organisation' AND match_value = $3) ORDER BY mailbox",
                        {keys.spki_sha256, keys.issuer_serial, keys.organisation});
      for (int i = 0; i < r.rows(); ++i)
        out.value.emplace_back(r.text(i, 0));
    });
  }

  Lookup<std::vector<std::string>> allowed_senders(std::string_view mailbox) const override {
    return lookup<std::vector<std::string>>([&](Lookup<std::vector<std::string>>& out) {
      auto r = db_.exec("finding a mailbox's senders",
                        "SELECT sender FROM mailbox_sender WHERE mailbox = $1 ORDER BY sender",
                        {mailbox});
      for (int i = 0; i < r.rows(); ++i)
        out.value.emplace_back(r.text(i, 0));
    });
  }

  Lookup<std::optional<HolderRole>> holder_role(std::string_view holder,
                                                std::string_view mailbox) const override {
    return lookup<std::optional<HolderRole>>([&](Lookup<std::optional<HolderRole>>& out) {
      auto r = db_.exec("finding a holder's role",
                        "SELECT role FROM mailbox_holder WHERE holder = $1 AND mailbox = $2",
                        {holder, mailbox});
      if (r.rows()) out.value = parse_holder_role(r.text(0, 0));
    });
  }

  void add_mailbox(const Mailbox& mailbox) override {
    std::lock_guard lock(mutex_);
    try {
      db_.exec("cannot add mailbox",
               "INSERT INTO mailbox (address, type, status, created_at) VALUES ($1, $2, $3, $4)",
               {mailbox.address, protocol::to_string(mailbox.type),
                protocol::to_string(mailbox.status), std::to_string(now_seconds())});
    } catch (const PostgresqlError& e) {
      fail_write(e, {}, "mailbox " + mailbox.address + " already exists");
    }
  }

  void set_mailbox_status(const std::string& address, protocol::MailboxStatus status) override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot update mailbox", "UPDATE mailbox SET status = $2 WHERE address = $1",
                      {address, protocol::to_string(status)});
    if (r.affected() == 0) throw StorageError("no mailbox " + address);
  }

  void remove_mailbox(const std::string& address) override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot remove mailbox", "DELETE FROM mailbox WHERE address = $1", {address});
    if (r.affected() == 0) throw StorageError("no mailbox " + address);
  }

  std::vector<Mailbox> list_mailboxes() override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot list mailboxes",
                      "SELECT address, type, status FROM mailbox ORDER BY address");
    std::vector<Mailbox> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(mailbox_from_row(r, i));
    return out;
  }

  void allow_sender(const std::string& mailbox, const std::string& sender) override {
    std::lock_guard lock(mutex_);
    try {
      db_.exec("cannot allow sender",
               "INSERT INTO mailbox_sender (mailbox, sender) VALUES ($1, $2)", {mailbox, sender});
    } catch (const PostgresqlError& e) {
      fail_write(e, "no mailbox " + mailbox, mailbox + " may already send as " + sender);
    }
  }

  bool disallow_sender(const std::string& mailbox, const std::string& sender) override {
    std::lock_guard lock(mutex_);
    return db_.exec("cannot disallow sender",
                    "DELETE FROM mailbox_sender WHERE mailbox = $1 AND sender = $2",
                    {mailbox, sender})
               .affected() > 0;
  }

  void add_holder(const Holder& holder) override {
    std::lock_guard lock(mutex_);
    try {
      db_.exec("cannot add holder", "INSERT INTO holder (id, label) VALUES ($1, $2)",
               {holder.id, holder.label});
    } catch (const PostgresqlError& e) {
      fail_write(e, {}, "holder " + holder.id + " already exists");
    }
  }

  void remove_holder(const std::string& id) override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot remove holder", "DELETE FROM holder WHERE id = $1", {id});
    if (r.affected() == 0) throw StorageError("no holder " + id);
  }

  std::vector<Holder> list_holders() override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot list holders", "SELECT id, label FROM holder ORDER BY id");
    std::vector<Holder> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
    return out;
  }

  void attach_holder(const HolderAttachment& attachment) override {
    std::lock_guard lock(mutex_);
    try {
      db_.exec("cannot attach holder",
               "INSERT INTO mailbox_holder (mailbox, holder, role) VALUES ($1, $2, $3)",
               {attachment.mailbox, attachment.holder, to_string(attachment.role)});
    } catch (const PostgresqlError& e) {
      fail_write(e, "no mailbox " + attachment.mailbox + " or no holder " + attachment.holder,
                 attachment.holder + " is already attached to " + attachment.mailbox);
    }
  }

  bool detach_holder(const std::string& holder, const std::string& mailbox) override {
    std::lock_guard lock(mutex_);
    return db_.exec("cannot detach holder",
                    "DELETE FROM mailbox_holder WHERE holder = $1 AND mailbox = $2",
                    {holder, mailbox})
               .affected() > 0;
  }

  std::vector<HolderAttachment> list_attachments() override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot list attachments",
                      "SELECT holder, mailbox, role FROM mailbox_holder ORDER BY holder, mailbox");
    std::vector<HolderAttachment> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(attachment_from_row(r, i));
    return out;
  }

  void bind_certificate(const CertificateBinding& binding) override {
    std::lock_guard lock(mutex_);
    try {
      db_.exec("cannot bind certificate",
               "INSERT INTO certificate_binding (match_kind, match_value, mailbox, label) "
               "VALUES ($1, $2, $3, $4)",
               {to_string(binding.match), binding.value, binding.mailbox, binding.label});
    } catch (const PostgresqlError& e) {
      fail_write(e, "no mailbox " + binding.mailbox,
                 "this certificate is already bound to " + binding.mailbox);
    }
  }

  int unbind_certificate(const CertificateBinding& binding) override {
    std::lock_guard lock(mutex_);
    return static_cast<int>(
        db_.exec("cannot unbind",
                 "DELETE FROM certificate_binding WHERE match_kind = $1 AND match_value = $2 "
                 "AND mailbox = $3",
                 {to_string(binding.match), binding.value, binding.mailbox})
            .affected());
  }

  std::vector<CertificateBinding> list_certificate_bindings() override {
    std::lock_guard lock(mutex_);
    auto r = db_.exec("cannot list bindings",
                      "SELECT match_kind, match_value, mailbox, label FROM certificate_binding "
                      "ORDER BY mailbox, match_kind, match_value");
    std::vector<CertificateBinding> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(binding_from_row(r, i));
    return out;
  }

  std::vector<AllowedSender> list_senders() override {
    std::lock_guard lock(mutex_);
    return senders_locked();
  }

  DirectoryContents read_whole() override {
    std::lock_guard lock(mutex_);
    db_.exec("starting the read", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    try {
      DirectoryContents contents = contents_locked();
      db_.exec("ending the read", "COMMIT");
      return contents;
    } catch (...) {
      db_.roll_back_quietly();
      throw;
    }
  }

  DirectoryContents read_page(const DirectoryPageQuery& query) override {
    PageStatement page = page_statement(query, '$');
    std::lock_guard lock(mutex_);
    auto r = db_.exec_values("reading the directory", page.sql, page.params);
    DirectoryContents out;
    for (int i = 0; i < r.rows(); ++i) {
      switch (query.table) {
        case DirectoryTable::kMailboxes:
          out.mailboxes.push_back(mailbox_from_row(r, i));
          break;
        case DirectoryTable::kSenders:
          out.senders.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
          break;
        case DirectoryTable::kHolders:
          out.holders.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
          break;
        case DirectoryTable::kAttachments:
          out.attachments.push_back(attachment_from_row(r, i));
          break;
        case DirectoryTable::kBindings:
          out.bindings.push_back(binding_from_row(r, i));
          break;
      }
    }
    return out;
  }

  void apply_changes(const DirectoryChanges& changes) override {
    std::lock_guard lock(mutex_);
    try {
      db_.in_transaction("the directory's change", [&] { apply_locked(changes); });
    } catch (const PostgresqlError& e) {
      // Class 23: integrity constraint violation (a key already there, a missing mailbox).
      if (e.sqlstate().rfind("23", 0) == 0) throw StorageRefusal(e.what());
      throw;
    }
  }

  void change_whole(const ChangePlan& plan) override {
    std::lock_guard lock(mutex_);
    db_.in_transaction("the directory's change", [&] {
      // Other writers wait (readers, such as the gateways' snapshots, do not): the rows the
      // plan reads stay what they are until the commit.
      db_.exec("locking the directory",
               "LOCK TABLE mailbox, mailbox_sender, holder, mailbox_holder, certificate_binding "
               "IN SHARE ROW EXCLUSIVE MODE");
      auto changes = plan(contents_locked());
      if (changes) apply_locked(*changes);
    });
  }

 private:
  std::vector<AllowedSender> senders_locked() {
    auto r = db_.exec("cannot list senders",
                      "SELECT mailbox, sender FROM mailbox_sender ORDER BY mailbox, sender");
    std::vector<AllowedSender> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
    return out;
  }

  DirectoryContents contents_locked() {
    DirectoryContents c;
    {
      auto r = db_.exec("reading the mailboxes", "SELECT address, type, status FROM mailbox");
      c.mailboxes.reserve(static_cast<size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i)
        c.mailboxes.push_back(mailbox_from_row(r, i));
    }
    c.senders = senders_locked();
    {
      auto r = db_.exec("reading the holders", "SELECT id, label FROM holder");
      for (int i = 0; i < r.rows(); ++i)
        c.holders.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
    }
    {
      auto r =
          db_.exec("reading the attachments", "SELECT holder, mailbox, role FROM mailbox_holder");
      for (int i = 0; i < r.rows(); ++i)
        c.attachments.push_back(attachment_from_row(r, i));
    }
    {
      auto r = db_.exec("reading the bindings",
                        "SELECT match_kind, match_value, mailbox, label FROM certificate_binding");
      for (int i = 0; i < r.rows(); ++i)
        c.bindings.push_back(binding_from_row(r, i));
    }
    sort_contents(c);
    return c;
  }

  void apply_locked(const DirectoryChanges& c) {
    constexpr std::string_view kWhat = "changing the directory";
    using Strings = std::vector<std::string>;
    auto str = [](auto view) { return std::string(view); };
    batch_rows(db_, c.bindings.removed, kWhat, "DELETE FROM certificate_binding AS t USING (", 3,
               ") AS v (match_kind, match_value, mailbox) WHERE t.match_kind = v.match_kind AND "
               "t.match_value = v.match_value AND t.mailbox = v.mailbox",
               [&](const CertificateBinding& b) {
                 return Strings{str(to_string(b.match)), b.value, b.mailbox};
               });
    batch_rows(db_, c.attachments.removed, kWhat, "DELETE FROM mailbox_holder AS t USING (", 2,
               ") AS v (holder, mailbox) WHERE t.holder = v.holder AND t.mailbox = v.mailbox",
               [](const HolderAttachment& a) {
                 return Strings{a.holder, a.mailbox};
               });
    batch_rows(db_, c.senders.removed, kWhat, "DELETE FROM mailbox_sender AS t USING (", 2,
               ") AS v (mailbox, sender) WHERE t.mailbox = v.mailbox AND t.sender = v.sender",
               [](const AllowedSender& s) {
                 return Strings{s.mailbox, s.sender};
               });
    batch_rows(db_, c.holders.removed, kWhat, "DELETE FROM holder AS t USING (", 1,
               ") AS v (id) WHERE t.id = v.id", [](const Holder& h) { return Strings{h.id}; });
    batch_rows(db_, c.mailboxes.removed, kWhat, "DELETE FROM mailbox AS t USING (", 1,
               ") AS v (address) WHERE t.address = v.address",
               [](const Mailbox& m) { return Strings{m.address}; });
    std::string now = std::to_string(now_seconds());
    batch_rows(db_, c.mailboxes.added, kWhat,
               "INSERT INTO mailbox (address, type, status, created_at)", 4, "",
               [&](const Mailbox& m) {
                 return Strings{m.address, str(protocol::to_string(m.type)),
                                str(protocol::to_string(m.status)), now};
               });
    batch_rows(db_, c.mailboxes.changed, kWhat,
               "UPDATE mailbox AS t SET type = v.type, status = "
               "v.status FROM (",
               3, ") AS v (address, type, status) WHERE t.address = v.address",
               [&](const Mailbox& m) {
                 return Strings{m.address, str(protocol::to_string(m.type)),
                                str(protocol::to_string(m.status))};
               });
    batch_rows(db_, c.holders.added, kWhat, "INSERT INTO holder (id, label)", 2, "",
               [](const Holder& h) {
                 return Strings{h.id, h.label};
               });
    batch_rows(db_, c.holders.changed, kWhat, "UPDATE holder AS t SET label = v.label FROM (", 2,
               ") AS v (id, label) WHERE t.id = v.id", [](const Holder& h) {
                 return Strings{h.id, h.label};
               });
    batch_rows(db_, c.senders.added, kWhat, "INSERT INTO mailbox_sender (mailbox, sender)", 2, "",
               [](const AllowedSender& s) {
                 return Strings{s.mailbox, s.sender};
               });
    auto attachment = [&](const HolderAttachment& a) {
      return Strings{a.holder, a.mailbox, str(to_string(a.role))};
    };
    batch_rows(db_, c.attachments.added, kWhat,
               "INSERT INTO mailbox_holder (holder, mailbox, role)", 3, "", attachment);
    batch_rows(db_, c.attachments.changed, kWhat,
               "UPDATE mailbox_holder AS t SET role = v.role FROM (", 3,
               ") AS v (holder, mailbox, role) WHERE t.holder = v.holder AND t.mailbox = v.mailbox",
               attachment);
    auto binding = [&](const CertificateBinding& b) {
      return Strings{str(to_string(b.match)), b.value, b.mailbox, b.label};
    };
    batch_rows(db_, c.bindings.added, kWhat,
               "INSERT INTO certificate_binding (match_kind, match_value, mailbox, label)", 4, "",
               binding);
    batch_rows(db_, c.bindings.changed, kWhat,
               "UPDATE certificate_binding AS t SET label = v.label FROM (", 4,
               ") AS v (match_kind, match_value, mailbox, label) WHERE t.match_kind = "
               "v.match_kind AND t.match_value = v.match_value AND t.mailbox = v.mailbox",
               binding);
  }

  // A lookup never throws: a failure is its answer's error.
  template <class T, class Query>
  Lookup<T> lookup(Query&& query) const {
    std::lock_guard lock(mutex_);
    Lookup<T> out;
    try {
      query(out);
    } catch (const StorageError& e) {
      out = Lookup<T>{};
      out.error = e.what();
    }
    return out;
  }

  mutable std::mutex mutex_;
  mutable PostgresqlConnection db_;
};

// Reads the directory in one REPEATABLE READ transaction, and polls its change counter. The
// connection is opened again after a failure (the server restarted, the network failed): the
// call that found it broken throws, the next one reconnects.
class PostgresqlDirectorySource final : public DirectorySource {
 public:
  explicit PostgresqlDirectorySource(const PostgresqlSettings& settings)
      : settings_(settings), name_(postgresql_location(settings.conninfo)) {
    PostgresqlConnection first(settings_);
    migrate_directory(first);
  }

  void read_all(DirectorySnapshotBuilder& builder) override {
    auto& db = connection();
    try {
      db.exec("starting the read", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      check_schema(db);
      int64_t version =
          db.exec("reading the change counter", "SELECT version FROM directory_version")
              .integer(0, 0);
      auto counts = db.exec("counting the rows",
                            "SELECT (SELECT count(*) FROM mailbox), "
                            "(SELECT count(*) FROM certificate_binding), "
                            "(SELECT count(*) FROM holder), (SELECT count(*) FROM mailbox_holder), "
                            "(SELECT count(*) FROM mailbox_sender)");
      auto count = [&](int column) { return static_cast<size_t>(counts.integer(0, column)); };
      builder.reserve({count(0), count(1), count(2), count(3), count(4)});
      auto mailboxes =
          db.exec("reading the mailboxes", "SELECT address, type, status FROM mailbox");
      for (int i = 0; i < mailboxes.rows(); ++i) {
        builder.add_mailbox(mailboxes.text(i, 0),
                            protocol::parse_mailbox_type(mailboxes.text(i, 1))
                                .value_or(protocol::MailboxType::kApp),
                            protocol::parse_mailbox_status(mailboxes.text(i, 2))
                                .value_or(protocol::MailboxStatus::kClosed));
      }
      auto bindings = db.exec("reading the certificate bindings",
                              "SELECT match_kind, match_value, mailbox FROM certificate_binding");
      for (int i = 0; i < bindings.rows(); ++i) {
        if (auto match = parse_certificate_match(bindings.text(i, 0)))
          builder.add_binding(*match, bindings.text(i, 1), bindings.text(i, 2));
      }
      auto senders =
          db.exec("reading the allowed senders", "SELECT mailbox, sender FROM mailbox_sender");
      for (int i = 0; i < senders.rows(); ++i)
        builder.add_sender(senders.text(i, 0), senders.text(i, 1));
      auto holders =
          db.exec("reading the holders", "SELECT holder, mailbox, role FROM mailbox_holder");
      for (int i = 0; i < holders.rows(); ++i) {
        if (auto role = parse_holder_role(holders.text(i, 2)))
          builder.add_attachment(holders.text(i, 0), holders.text(i, 1), *role);
      }
      db.exec("ending the read", "COMMIT");
      read_version_ = version;
    } catch (const StorageError& e) {
      drop_if_broken();
      throw StorageError("cannot read the directory " + name_ + ": " + e.what());
    }
  }

  bool changed() override {
    if (!db_) {
      connection();
      return true;
    }
    if (!read_version_) return true;
    try {
      return db_->exec("asking whether it changed", "SELECT version FROM directory_version")
                 .integer(0, 0) != *read_version_;
    } catch (const StorageError& e) {
      drop_if_broken();
      throw StorageError("cannot read the directory " + name_ + ": " + e.what());
    }
  }

  std::string name() const override { return name_; }

 private:
  PostgresqlConnection& connection() {
    if (!db_) {
      read_version_.reset();
      db_ = std::make_unique<PostgresqlConnection>(settings_);
    }
    return *db_;
  }

  // A connection that failed is dropped (the next call connects again); one that only saw a
  // statement fail ends its transaction.
  void drop_if_broken() {
    if (!db_) return;
    if (!db_->usable()) {
      db_.reset();
      return;
    }
    try {
      db_->exec("rolling back", "ROLLBACK");
    } catch (const StorageError&) {
      db_.reset();
    }
  }

  void check_schema(PostgresqlConnection& db) {
    auto r = db.exec("reading the schema version",
                     "SELECT version FROM mssgate_schema WHERE part = $1", {schema::kPart});
    int64_t version = r.rows() ? r.integer(0, 0) : 0;
    if (version != schema::kVersion) {
      throw StorageError("schema version " + std::to_string(version) + ", this mssgate reads " +
                         std::to_string(schema::kVersion) +
                         " (mssgatectl or a restart migrates it)");
    }
  }

  PostgresqlSettings settings_;
  std::string name_;
  std::unique_ptr<PostgresqlConnection> db_;
  std::optional<int64_t> read_version_;
};

std::string counts_text(const DirectoryCopyCounts& c) {
  return std::to_string(c.mailboxes) + " mailboxes, " + std::to_string(c.senders) +
         " allowed senders, " + std::to_string(c.holders) + " holders, " +
         std::to_string(c.attachments) + " attachments, " + std::to_string(c.bindings) +
         " certificate bindings";
}

}  // namespace

DirectoryCopyCounts copy_directory_to_postgresql(DirectoryStore& from,
                                                 const PostgresqlSettings& to) {
  PostgresqlConnection db(to);
  migrate_directory(db);
  DirectoryCopyCounts source;
  auto mailboxes = from.list_mailboxes();
  auto holders = from.list_holders();
  auto attachments = from.list_attachments();
  auto bindings = from.list_certificate_bindings();
  db.in_transaction("the copy", [&] {
    int64_t already = db.exec("counting", "SELECT count(*) FROM mailbox").integer(0, 0);
    if (already > 0) {
      throw StorageError("the PostgreSQL directory already holds " + std::to_string(already) +
                         " mailboxes: a move goes into an empty directory");
    }
    auto now = std::to_string(now_seconds());
    constexpr std::string_view kWhat = "copying the directory";
    BatchStatement mailbox_rows(db, kWhat,
                                "INSERT INTO mailbox (address, type, status, created_at)", 4);
    BatchStatement sender_rows(db, kWhat, "INSERT INTO mailbox_sender (mailbox, sender)", 2);
    for (const auto& m : mailboxes) {
      mailbox_rows.add({m.address, std::string(protocol::to_string(m.type)),
                        std::string(protocol::to_string(m.status)), now});
      ++source.mailboxes;
    }
    mailbox_rows.flush();
    for (const auto& m : mailboxes) {
      auto senders = from.allowed_senders(m.address);
      if (!senders.ok())
        throw StorageError("reading the senders of " + m.address + ": " + senders.error);
      for (const auto& sender : senders.value) {
        sender_rows.add({m.address, sender});
        ++source.senders;
      }
    }
    sender_rows.flush();
    BatchStatement holder_rows(db, kWhat, "INSERT INTO holder (id, label)", 2);
    for (const auto& h : holders) {
      holder_rows.add({h.id, h.label});
      ++source.holders;
    }
    holder_rows.flush();
    BatchStatement attachment_rows(db, kWhat, "INSERT INTO mailbox_holder (mailbox, holder, role)",
                                   3);
    for (const auto& a : attachments) {
      attachment_rows.add({a.mailbox, a.holder, std::string(to_string(a.role))});
      ++source.attachments;
    }
    attachment_rows.flush();
    BatchStatement binding_rows(
        db, kWhat, "INSERT INTO certificate_binding (match_kind, match_value, mailbox, label)", 4);
    for (const auto& b : bindings) {
      binding_rows.add({std::string(to_string(b.match)), b.value, b.mailbox, b.label});
      ++source.bindings;
    }
    binding_rows.flush();
    auto counted = db.exec("counting what was copied",
                           "SELECT (SELECT count(*) FROM mailbox), (SELECT count(*) FROM "
                           "mailbox_sender), (SELECT count(*) FROM holder), (SELECT count(*) FROM "
                           "mailbox_holder), (SELECT count(*) FROM certificate_binding)");
    DirectoryCopyCounts copied{
        static_cast<size_t>(counted.integer(0, 0)), static_cast<size_t>(counted.integer(0, 1)),
        static_cast<size_t>(counted.integer(0, 2)), static_cast<size_t>(counted.integer(0, 3)),
        static_cast<size_t>(counted.integer(0, 4))};
    if (!(copied == source)) {
      throw StorageError("the copy does not match its source (source: " + counts_text(source) +
                         "; PostgreSQL: " + counts_text(copied) + "): nothing was kept");
    }
  });
  return source;
}

std::unique_ptr<DirectoryStore> open_postgresql_directory(const PostgresqlSettings& settings) {
  return std::make_unique<PostgresqlDirectory>(settings);
}

std::unique_ptr<DirectorySource> open_postgresql_directory_source(
    const PostgresqlSettings& settings) {
  return std::make_unique<PostgresqlDirectorySource>(settings);
}

}  // namespace mssgate::storage
