#pragma once
// The SQLite directory's schema, shared by the store (which creates and migrates it) and the
// snapshot source (which only reads it).

namespace mssgate::storage::sqlite_directory_schema {

// PRAGMA user_version of a directory at the current schema.
constexpr int kVersion = 4;

constexpr const char* kVersion1 = R"sql(
CREATE TABLE IF NOT EXISTS mailbox (
  address    TEXT PRIMARY KEY,
  type       TEXT NOT NULL CHECK (type IN ('PER', 'ORG', 'APP', 'CAB')),
  status     TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certificate_binding (
  match_kind  TEXT NOT NULL CHECK (match_kind IN ('spki-sha256', 'issuer-serial')),
  match_value TEXT NOT NULL,
  mailbox     TEXT NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  label       TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (match_kind, match_value, mailbox)
);
)sql";

constexpr const char* kVersion2 = R"sql(
CREATE TABLE IF NOT EXISTS mailbox_sender (
  mailbox TEXT NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  sender  TEXT NOT NULL,
  PRIMARY KEY (mailbox, sender)
);
)sql";

constexpr const char* kVersion3 = R"sql(
CREATE TABLE IF NOT EXISTS holder (
  id    TEXT PRIMARY KEY,
  label TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS mailbox_holder (
  mailbox TEXT NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  holder  TEXT NOT NULL REFERENCES holder (id) ON DELETE CASCADE,
  role    TEXT NOT NULL CHECK (role IN ('owner', 'delegate', 'co-holder')),
  PRIMARY KEY (mailbox, holder)
);
)sql";

// Bindings by organisation identity: SQLite cannot change a CHECK, so the table is made again
// (foreign keys are checked at the end of the migration's transaction). And the indexes a
// removal needs to find the rows that name what it removes (its foreign keys' cascade): without
// them, each removed professional or mailbox read the whole table of attachments or bindings,
// and a sync removing 10,000 of them from a million-mailbox directory took minutes.
constexpr const char* kVersion4 = R"sql(
CREATE TABLE certificate_binding_4 (
  match_kind  TEXT NOT NULL CHECK (match_kind IN ('spki-sha256', 'issuer-serial', 'organisation')),
  match_value TEXT NOT NULL,
  mailbox     TEXT NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  label       TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (match_kind, match_value, mailbox)
);
INSERT INTO certificate_binding_4 (match_kind, match_value, mailbox, label)
  SELECT match_kind, match_value, mailbox, label FROM certificate_binding;
DROP TABLE certificate_binding;
ALTER TABLE certificate_binding_4 RENAME TO certificate_binding;
CREATE INDEX IF NOT EXISTS certificate_binding_mailbox ON certificate_binding (mailbox);
CREATE INDEX IF NOT EXISTS mailbox_holder_holder ON mailbox_holder (holder);
)sql";

}  // namespace mssgate::storage::sqlite_directory_schema
