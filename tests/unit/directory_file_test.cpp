// The directory as a file (CSV, JSON Lines), the changes an import makes, and their
// application by the SQLite store in one transaction.
#include "storage/directory_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "storage/directory_contents.hpp"
#include "storage/directory_store.hpp"

using namespace mssgate;
using protocol::MailboxStatus;
using protocol::MailboxType;
using storage::AbsentMailboxes;
using storage::DirectoryContents;
using storage::DirectoryFileFormat;
using storage::ImportError;
using storage::ImportRows;
namespace fs = std::filesystem;

namespace {

const std::string kSpki(64, 'a');

struct Read {
  ImportRows rows;
  std::vector<ImportError> errors;
};

// The file fed in pieces of `piece` bytes (0: whole).
Read read(std::string_view text, DirectoryFileFormat format, size_t piece = 0) {
  storage::DirectoryFileReader reader(format);
  if (piece == 0) {
    reader.feed(text);
  } else {
    for (size_t at = 0; at < text.size(); at += piece)
      reader.feed(text.substr(at, piece));
  }
  Read out;
  out.rows = reader.finish(out.errors);
  return out;
}

// Every cut gives what the whole file gives.
Read read_every_way(std::string_view text, DirectoryFileFormat format) {
  Read whole = read(text, format);
  for (size_t piece : {1, 2, 3, 7, 64}) {
    Read cut = read(text, format, piece);
    EXPECT_EQ(cut.rows.contents, whole.rows.contents) << "pieces of " << piece;
    EXPECT_EQ(cut.errors, whole.errors) << "pieces of " << piece;
    EXPECT_EQ(cut.rows.lines.mailboxes, whole.rows.lines.mailboxes) << "pieces of " << piece;
    EXPECT_EQ(cut.rows.lines.bindings, whole.rows.lines.bindings) << "pieces of " << piece;
  }
  return whole;
}

DirectoryContents sample() {
  DirectoryContents c;
  c.mailboxes = {{"app.labo@test.fr", MailboxType::kApp, MailboxStatus::kActive},
                 {"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive},
                 {"secretariat@test.fr", MailboxType::kOrg, MailboxStatus::kSuspended}};
  c.senders = {{"app.labo@test.fr", "resultats@test.fr"}};
  c.holders = {{"810001234567", "Dr Martin, \"cardio\""}, {"0012345678", ""}};
  c.attachments = {{"0012345678", "secretariat@test.fr", storage::HolderRole::kDelegate},
                   {"810001234567", "dr.martin@test.fr", storage::HolderRole::kOwner}};
  c.bindings = {{storage::CertificateMatch::kIssuerSerial, "CN=AC IGC-SANTE, O=ASIP|1A2B",
                 "app.labo@test.fr", " spaces around "},
                {storage::CertificateMatch::kSpkiSha256, kSpki, "app.labo@test.fr", "CN=Labo"}};
  storage::sort_contents(c);
  return c;
}

std::string written(const DirectoryContents& c, DirectoryFileFormat format) {
  std::ostringstream out;
  storage::write_directory_file(c, format, out);
  return out.str();
}

}  // namespace

TEST(DirectoryFile, WhatExportWritesImportReadsBackInEachFormatAndInAnyPieces) {
  for (auto format : {DirectoryFileFormat::kCsv, DirectoryFileFormat::kJsonLines}) {
    std::string text = written(sample(), format);
    Read back = read_every_way(text, format);
    EXPECT_TRUE(back.errors.empty()) << back.errors.front().message;
    storage::sort_contents(back.rows.contents);
    EXPECT_EQ(back.rows.contents, sample()) << storage::to_string(format);
    EXPECT_EQ(written(back.rows.contents, format), text);
  }
}

TEST(DirectoryFile, CsvAsSpreadsheetsWriteIt) {
  // A byte order mark, CRLF line ends, columns in another order, unused ones left out, blank
  // lines, spaces around unquoted fields, a quoted field over two lines (refused: a label is
  // one line) and a doubled quote.
  std::string text =
      "\xEF\xBB\xBFtype, kind ,mailbox,status,label,holder\r\n"
      "APP,mailbox, App.Labo@Test.FR ,,,\r\n"
      "\r\n"
      "per,mailbox,dr.martin@test.fr,Suspended,,\r\n"
      ",holder,,,\"two\nlines\",810001234567\r\n"
      ",holder,,,\"a \"\"quoted\"\" name\",012345678\r\n"
      "org,mailbox,last@test.fr,,,";  // no line end at the end
  Read r = read_every_way(text, DirectoryFileFormat::kCsv);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0],
            (ImportError{5, "a label is one line of text, without control characters"}));
  const auto& c = r.rows.contents;
  ASSERT_EQ(c.mailboxes.size(), 3u);
  EXPECT_EQ(c.mailboxes[0],
            (storage::Mailbox{"app.labo@test.fr", MailboxType::kApp, MailboxStatus::kActive}));
  EXPECT_EQ(c.mailboxes[1].status, MailboxStatus::kSuspended);
  EXPECT_EQ(c.mailboxes[2].address, "last@test.fr");
  EXPECT_EQ(r.rows.lines.mailboxes, (std::vector<size_t>{2, 4, 8}));
  ASSERT_EQ(c.holders.size(), 1u);
  EXPECT_EQ(c.holders[0], (storage::Holder{"0012345678", "a \"quoted\" name"}));
}

TEST(DirectoryFile, EveryBadRowIsNamedByItsLine) {
  std::string csv =
      "kind,mailbox,type,status,sender,holder,role,match,value,label\n"
      "mailbox,not-an-address,APP,,,,,,,\n"               // 2
      "mailbox,x@test.fr,BAL,,,,,,,\n"                    // 3
      "mailbox,y@test.fr,APP,frozen,,,,,,\n"              // 4
      "mailbox,z@test.fr,APP,,,,,,,\n"                    // 5
      "mailbox,Z@TEST.FR,APP,,,,,,,\n"                    // 6
      "binding,z@test.fr,,,,,,spki-sha256,zz,\n"          // 7
      "binding,z@test.fr,,,,,,serial,1,\n"                // 8
      "binding,z@test.fr,,,,,,issuer-serial,CN=CA|G1,\n"  // 9
      "attachment,z@test.fr,,,,123,owner,,,\n"            // 10
      "attachment,z@test.fr,,,,810001234567,boss,,,\n"    // 11
      "sender,z@test.fr,,,,,owner,,,\n"                   // 12
      "folder,z@test.fr,,,,,,,,\n"                        // 13
      ",z@test.fr,,,,,,,,\n"                              // 14
      "mailbox,a\"b@test.fr,APP,,,,,,,\n"                 // 15
      "mailbox,\"q@test.fr\"x,APP,,,,,,,\n"               // 16
      "mailbox,w@test.fr,APP\n"                           // 17
      "mailbox,ok@test.fr,APP,,,,,,,\n"                   // 18
      "holder,,,,,810001234567,,,,Dr M\xe9nard\n";        // 19: Latin-1, not UTF-8
  Read r = read_every_way(csv, DirectoryFileFormat::kCsv);
  std::vector<ImportError> expected = {
      {2, "'not-an-address' is not a mailbox address"},
      {3, "unknown type 'BAL' (PER, ORG, APP or CAB)"},
      {4, "unknown status 'frozen' (active, suspended or closed)"},
      {6, "duplicate mailbox z@test.fr (first on line 5)"},
      {7, "an spki-sha256 value is the 64 hex digits of a SHA-256"},
      {8, "unknown match 'serial' (spki-sha256, issuer-serial or organisation)"},
      {9, "the serial after '|' is not hexadecimal"},
      {10, "'123' is not an idNat (8 + RPPS, 0 + ADELI), an RPPS or an ADELI number"},
      {11, "unknown role 'boss' (owner, delegate or co-holder)"},
      {12, "a sender row has no field 'role'"},
      {12, "a sender row needs 'sender'"},
      {13, "unknown kind 'folder' (mailbox, sender, holder, attachment or binding)"},
      {14, "a row needs its 'kind' (mailbox, sender, holder, attachment or binding)"},
      {15, "a quote inside an unquoted field (quote the whole field and double the quote)"},
      {16, "a character after a quoted field's closing quote"},
      {17, "3 fields where the header names 10"},
      {19, "'label' is not UTF-8 text (save the file as UTF-8)"},
  };
  EXPECT_EQ(r.errors, expected);
  ASSERT_EQ(r.rows.contents.mailboxes.size(), 2u);  // z@ and ok@: the good rows are read
}

TEST(DirectoryFile, HeaderAndFileErrors) {
  Read unknown = read("kind,mailbox,colour\nmailbox,a@test.fr,red\n", DirectoryFileFormat::kCsv);
  ASSERT_EQ(unknown.errors.size(), 1u) << "the rows are not checked against a bad header";
  EXPECT_EQ(unknown.errors[0].line, 1u);
  EXPECT_NE(unknown.errors[0].message.find("unknown column 'colour'"), std::string::npos);
  Read no_kind = read("mailbox,type\na@test.fr,APP\n", DirectoryFileFormat::kCsv);
  ASSERT_EQ(no_kind.errors.size(), 1u);
  EXPECT_NE(no_kind.errors[0].message.find("no 'kind' column"), std::string::npos);
  Read twice = read("kind,mailbox,Mailbox\n", DirectoryFileFormat::kCsv);
  ASSERT_EQ(twice.errors.size(), 1u);
  EXPECT_EQ(twice.errors[0].message, "column 'mailbox' is named twice");
  Read empty = read("", DirectoryFileFormat::kCsv);
  ASSERT_EQ(empty.errors.size(), 1u);
  EXPECT_NE(empty.errors[0].message.find("the file is empty"), std::string::npos);
  Read unclosed = read("kind,label\nholder,\"open\n", DirectoryFileFormat::kCsv);
  ASSERT_EQ(unclosed.errors.size(), 1u);
  EXPECT_EQ(unclosed.errors[0],
            (ImportError{2, "a quoted field is not closed before the end of the file"}));
  std::string huge = "kind,label\nholder,\"" + std::string(70000, 'x') + "\"\nholder,y\n";
  Read long_record = read_every_way(huge, DirectoryFileFormat::kCsv);
  ASSERT_EQ(long_record.errors.size(), 2u);
  EXPECT_EQ(long_record.errors[0], (ImportError{2, "a record over 65536 bytes"}));
  EXPECT_EQ(long_record.errors[1], (ImportError{3, "a holder row needs 'holder'"}));
}

TEST(DirectoryFile, JsonLinesErrors) {
  std::string text =
      "{\"kind\":\"mailbox\",\"mailbox\":\"a@test.fr\",\"type\":\"APP\"}\n"       // 1
      "\n"                                                                        // 2
      "{\"kind\":\"mailbox\",\"mailbox\":\"b@test.fr\",\"type\":1}\n"             // 3
      "[\"mailbox\"]\n"                                                           // 4
      "{\"kind\":\"mailbox\",\n"                                                  // 5
      "{\"kind\":\"holder\",\"holder\":\"810001234567\",\"role\":\"owner\"}\r\n"  // 6
      "{\"kind\":\"binding\",\"mailbox\":\"a@test.fr\",\"match\":\"spki-sha256\",\"value\":\"" +
      std::string(64, 'F') + "\"}";  // 7, no line end
  Read r = read_every_way(text, DirectoryFileFormat::kJsonLines);
  ASSERT_EQ(r.errors.size(), 4u);
  EXPECT_EQ(r.errors[0], (ImportError{3, "field 'type' is not a string"}));
  EXPECT_EQ(r.errors[1], (ImportError{4, "a line holds one JSON object"}));
  EXPECT_EQ(r.errors[2].line, 5u);
  EXPECT_EQ(r.errors[2].message.rfind("not JSON: ", 0), 0u);
  EXPECT_EQ(r.errors[3], (ImportError{6, "a holder row has no field 'role'"}));
  ASSERT_EQ(r.rows.contents.bindings.size(), 1u);
  EXPECT_EQ(r.rows.contents.bindings[0].value, std::string(64, 'f'));
  EXPECT_EQ(r.rows.lines.bindings, (std::vector<size_t>{7}));
}

TEST(DirectoryFile, FormatFromTheFileName) {
  EXPECT_EQ(storage::directory_file_format_of("/srv/export/annuaire.CSV"),
            DirectoryFileFormat::kCsv);
  EXPECT_EQ(storage::directory_file_format_of("a.jsonl"), DirectoryFileFormat::kJsonLines);
  EXPECT_EQ(storage::directory_file_format_of("a.ndjson"), DirectoryFileFormat::kJsonLines);
  EXPECT_EQ(storage::directory_file_format_of("a.json"), std::nullopt);
  EXPECT_EQ(storage::directory_file_format_of("dir.csv/file"), std::nullopt);
}

namespace {

ImportRows rows_of(const DirectoryContents& c) {
  ImportRows rows;
  rows.contents = c;
  for (size_t i = 0; i < c.mailboxes.size(); ++i)
    rows.lines.mailboxes.push_back(i + 2);
  for (size_t i = 0; i < c.senders.size(); ++i)
    rows.lines.senders.push_back(100 + i);
  for (size_t i = 0; i < c.holders.size(); ++i)
    rows.lines.holders.push_back(200 + i);
  for (size_t i = 0; i < c.attachments.size(); ++i)
    rows.lines.attachments.push_back(300 + i);
  for (size_t i = 0; i < c.bindings.size(); ++i)
    rows.lines.bindings.push_back(400 + i);
  return rows;
}

}  // namespace

TEST(DirectoryPlan, AnImportAddsAndUpdatesOnly) {
  DirectoryContents current = sample();
  DirectoryContents file;
  file.mailboxes = {{"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kClosed},
                    {"new@test.fr", MailboxType::kOrg, MailboxStatus::kActive}};
  file.holders = {{"810001234567", "renamed"}};
  file.attachments = {{"810001234567", "new@test.fr", storage::HolderRole::kCoHolder}};
  std::vector<ImportError> errors;
  auto c = storage::plan_changes(current, rows_of(file), AbsentMailboxes::kKeep, errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(c.mailboxes.added, (std::vector<storage::Mailbox>{file.mailboxes[1]}));
  EXPECT_EQ(c.mailboxes.changed, (std::vector<storage::Mailbox>{file.mailboxes[0]}));
  EXPECT_TRUE(c.mailboxes.removed.empty());
  EXPECT_EQ(c.holders.changed.size(), 1u);
  EXPECT_EQ(c.attachments.added.size(), 1u);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_EQ(storage::summarize_changes(c),
            "mailboxes: 1 added, 1 changed, 0 removed; senders: 0 added, 0 changed, 0 removed; "
            "holders: 0 added, 1 changed, 0 removed; attachments: 1 added, 0 changed, 0 removed; "
            "bindings: 0 added, 0 changed, 0 removed");
  // The same file again changes nothing.
  EXPECT_EQ(
      storage::plan_changes(sample(), rows_of(sample()), AbsentMailboxes::kKeep, errors).size(),
      0u);
}

TEST(DirectoryPlan, ASyncSuspendsClosesOrRemovesWhatTheFileLacks) {
  DirectoryContents current = sample();
  current.mailboxes.push_back({"gone@test.fr", MailboxType::kPer, MailboxStatus::kClosed});
  storage::sort_contents(current);
  DirectoryContents file;
  file.mailboxes = {{"app.labo@test.fr", MailboxType::kApp, MailboxStatus::kActive}};
  file.bindings = {sample().bindings[1]};
  std::vector<ImportError> errors;

  auto suspend = storage::plan_changes(current, rows_of(file), AbsentMailboxes::kSuspend, errors);
  ASSERT_TRUE(errors.empty());
  // dr.martin suspended; secretariat already is; gone@ stays closed.
  ASSERT_EQ(suspend.mailboxes.changed.size(), 1u);
  EXPECT_EQ(suspend.mailboxes.changed[0].address, "dr.martin@test.fr");
  EXPECT_EQ(suspend.mailboxes.changed[0].status, MailboxStatus::kSuspended);
  EXPECT_EQ(suspend.bindings.removed,
            (std::vector<storage::CertificateBinding>{sample().bindings[0]}));
  EXPECT_EQ(suspend.senders.removed.size(), 1u);
  EXPECT_EQ(suspend.holders.removed.size(), 2u);
  EXPECT_EQ(suspend.attachments.removed.size(), 2u);

  auto close = storage::plan_changes(current, rows_of(file), AbsentMailboxes::kClose, errors);
  EXPECT_EQ(close.mailboxes.changed.size(), 2u);  // dr.martin and secretariat

  auto remove = storage::plan_changes(current, rows_of(file), AbsentMailboxes::kRemove, errors);
  EXPECT_TRUE(remove.mailboxes.changed.empty());
  EXPECT_EQ(remove.mailboxes.removed.size(), 3u);
  std::vector<std::string> lines = storage::describe_changes(remove);
  EXPECT_EQ(lines.front(),
            "- binding issuer-serial CN=AC IGC-SANTE, O=ASIP|1A2B to "
            "app.labo@test.fr ( spaces around )");
  EXPECT_EQ(lines.back(), "- mailbox secretariat@test.fr ORG suspended");
}

TEST(DirectoryPlan, RowsNamingUnknownMailboxesOrHoldersAreErrors) {
  DirectoryContents current = sample();
  DirectoryContents file;
  file.senders = {{"app.labo@test.fr", "other@test.fr"}, {"nobody@test.fr", "x@test.fr"}};
  file.attachments = {{"899999999999", "dr.martin@test.fr", storage::HolderRole::kOwner}};
  file.bindings = {{storage::CertificateMatch::kSpkiSha256, kSpki, "nobody@test.fr", ""}};
  std::vector<ImportError> errors;
  auto merged = storage::plan_changes(current, rows_of(file), AbsentMailboxes::kKeep, errors);
  EXPECT_EQ(merged.size(), 0u);
  EXPECT_EQ(errors, (std::vector<ImportError>{
                        {101, "no mailbox nobody@test.fr in the file or the directory"},
                        {300, "no holder 899999999999 in the file or the directory"},
                        {400, "no mailbox nobody@test.fr in the file or the directory"}}));
  // In a sync the file is the whole directory: app.labo@ must be in it.
  errors.clear();
  file.senders.pop_back();
  file.attachments.clear();
  file.bindings.clear();
  storage::plan_changes(current, rows_of(file), AbsentMailboxes::kSuspend, errors);
  EXPECT_EQ(errors, (std::vector<ImportError>{{100, "no mailbox app.labo@test.fr in the file"}}));
}

namespace {

class DirectoryImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() /
            ("mssgate-directory-import-test-" + std::to_string(::getpid()) + ".db");
    remove_files();
    store_ = storage::open_sqlite_directory(path_.string());
  }
  void TearDown() override {
    store_.reset();
    remove_files();
  }
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(path_.string() + suffix);
  }
  void import(const DirectoryContents& wanted, AbsentMailboxes absent) {
    std::vector<ImportError> errors;
    store_->change_whole([&](const DirectoryContents& current) {
      return std::optional(storage::plan_changes(current, rows_of(wanted), absent, errors));
    });
    ASSERT_TRUE(errors.empty());
  }

  fs::path path_;
  std::unique_ptr<storage::DirectoryStore> store_;
};

}  // namespace

TEST_F(DirectoryImportTest, ExportThenImportIsTheIdentity) {
  import(sample(), AbsentMailboxes::kKeep);
  EXPECT_EQ(store_->read_whole(), sample());
  // The lookups see the rows too.
  EXPECT_EQ(store_->allowed_senders("app.labo@test.fr").value,
            (std::vector<std::string>{"resultats@test.fr"}));
  EXPECT_EQ(store_->holder_role("0012345678", "secretariat@test.fr").value,
            storage::HolderRole::kDelegate);
  // Export, import into an empty directory, export again: the same bytes.
  for (auto format : {DirectoryFileFormat::kCsv, DirectoryFileFormat::kJsonLines}) {
    std::string first = written(store_->read_whole(), format);
    auto other_path = path_.string() + ".other";
    {
      auto other = storage::open_sqlite_directory(other_path);
      Read r = read(first, format);
      ASSERT_TRUE(r.errors.empty());
      std::vector<ImportError> errors;
      other->change_whole([&](const DirectoryContents& current) {
        return std::optional(
            storage::plan_changes(current, r.rows, AbsentMailboxes::kSuspend, errors));
      });
      EXPECT_EQ(written(other->read_whole(), format), first);
    }
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(other_path + suffix);
  }
}

TEST_F(DirectoryImportTest, ASyncMakesTheDirectoryEqualToTheFile) {
  import(sample(), AbsentMailboxes::kKeep);
  DirectoryContents smaller = sample();
  smaller.mailboxes.erase(smaller.mailboxes.begin() + 1);  // dr.martin@
  smaller.attachments.erase(smaller.attachments.begin() + 1);
  smaller.holders[1].label = "relabelled";
  smaller.bindings[1].label = "new label";
  import(smaller, AbsentMailboxes::kRemove);
  EXPECT_EQ(store_->read_whole(), smaller);
  EXPECT_FALSE(store_->find_mailbox("dr.martin@test.fr").value.has_value());
  smaller.mailboxes.erase(smaller.mailboxes.begin());  // app.labo@, and its rows
  smaller.senders.clear();
  smaller.bindings.clear();
  import(smaller, AbsentMailboxes::kSuspend);
  auto labo = store_->find_mailbox("app.labo@test.fr").value;
  ASSERT_TRUE(labo.has_value());
  EXPECT_EQ(labo->status, MailboxStatus::kSuspended);
  EXPECT_TRUE(store_->list_certificate_bindings().empty());
}

TEST_F(DirectoryImportTest, APlanThatFailsOrADryRunChangesNothing) {
  import(sample(), AbsentMailboxes::kKeep);
  EXPECT_THROW(store_->change_whole(
                   [](const DirectoryContents&) -> std::optional<storage::DirectoryChanges> {
                     throw std::runtime_error("refused");
                   }),
               std::runtime_error);
  store_->change_whole([](const DirectoryContents&) { return std::nullopt; });
  // Changes that break a constraint halfway (a second mailbox with the same address) are
  // rolled back whole: the first addition is gone too.
  storage::DirectoryChanges bad;
  bad.mailboxes.added = {{"fresh@test.fr", MailboxType::kPer, MailboxStatus::kActive},
                         {"dr.martin@test.fr", MailboxType::kPer, MailboxStatus::kActive}};
  EXPECT_THROW(store_->change_whole([&](const DirectoryContents&) { return std::optional(bad); }),
               storage::StorageError);
  EXPECT_EQ(store_->read_whole(), sample());
}
