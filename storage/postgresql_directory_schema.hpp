#pragma once
// The PostgreSQL directory's schema, shared by the store (which creates and migrates it) and the
// snapshot source (which only reads it). Versions are kept in mssgate_schema, one row per part
// ("directory"; the indicator journal has its own). Each step runs in the migration's
// transaction, under an advisory lock: several gateways starting at once migrate once.

namespace mssgate::storage::postgresql_directory_schema {

constexpr const char* kPart = "directory";
constexpr int kVersion = 2;
// pg_advisory_xact_lock's key for migrations (any constant the other parts do not use).
constexpr long long kMigrationLock = 0x6d7373676174;  // "mssgat"

constexpr const char* kSchemaTable = R"sql(
CREATE TABLE IF NOT EXISTS mssgate_schema (
  part    text PRIMARY KEY,
  version integer NOT NULL
);
)sql";

// Version 1: the tables of SQLite's version 3, and a change counter every write moves (the
// snapshot source polls it; NOTIFY mssgate_directory tells listeners at once).
constexpr const char* kVersion1 = R"sql(
CREATE TABLE mailbox (
  address    text PRIMARY KEY,
  type       text NOT NULL CHECK (type IN ('PER', 'ORG', 'APP', 'CAB')),
  status     text NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
  created_at bigint NOT NULL
);
CREATE TABLE certificate_binding (
  match_kind  text NOT NULL CHECK (match_kind IN ('spki-sha256', 'issuer-serial')),
  match_value text NOT NULL,
  mailbox     text NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  label       text NOT NULL DEFAULT '',
  PRIMARY KEY (match_kind, match_value, mailbox)
);
CREATE INDEX certificate_binding_mailbox ON certificate_binding (mailbox);
CREATE TABLE mailbox_sender (
  mailbox text NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  sender  text NOT NULL,
  PRIMARY KEY (mailbox, sender)
);
CREATE TABLE holder (
  id    text PRIMARY KEY,
  label text NOT NULL DEFAULT ''
);
CREATE TABLE mailbox_holder (
  mailbox text NOT NULL REFERENCES mailbox (address) ON DELETE CASCADE,
  holder  text NOT NULL REFERENCES holder (id) ON DELETE CASCADE,
  role    text NOT NULL CHECK (role IN ('owner', 'delegate', 'co-holder')),
  PRIMARY KEY (mailbox, holder)
);
CREATE INDEX mailbox_holder_holder ON mailbox_holder (holder);
CREATE TABLE directory_version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version  bigint NOT NULL
);
INSERT INTO directory_version (only_row, version) VALUES (true, 1);
CREATE FUNCTION directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE directory_version SET version = version + 1;
  PERFORM pg_notify('mssgate_directory', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER mailbox_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mailbox
  FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER certificate_binding_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON certificate_binding FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER mailbox_sender_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON mailbox_sender FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER holder_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON holder
  FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER mailbox_holder_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON mailbox_holder FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
)sql";

// Bindings by organisation identity.
constexpr const char* kVersion2 = R"sql(
ALTER TABLE certificate_binding DROP CONSTRAINT certificate_binding_match_kind_check;
ALTER TABLE certificate_binding ADD CONSTRAINT certificate_binding_match_kind_check
  CHECK (match_kind IN ('spki-sha256', 'issuer-serial', 'organisation'));
)sql";

}  // namespace mssgate::storage::postgresql_directory_schema
