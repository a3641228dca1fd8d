// mssgatectl: the operator's command line for the directory.
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/storage_settings.hpp"
#include "daemon/net/certificate_identity.hpp"
#include "daemon/tools/mssgatectl/arguments.hpp"
#include "daemon/tools/mssgatectl/directory_commands.hpp"
#include "daemon/tools/mssgatectl/indicator_commands.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/professional_id.hpp"
#include "storage/clock.hpp"
#include "storage/directory_store.hpp"
#include "storage/journal_store.hpp"

namespace {

// Run as root, mssgatectl works as the owner of the database (or of its folder, before the
// database exists): the files SQLite creates then stay the daemon's (the mssgate user), which
// could not open a database root had created.
void act_as_owner_of(const std::string& database) {
  if (::geteuid() != 0) return;
  struct stat info {};
  if (::stat(database.c_str(), &info) != 0) {
    std::string folder = std::filesystem::path(database).parent_path().string();
    if (::stat(folder.empty() ? "." : folder.c_str(), &info) != 0) return;
  }
  if (info.st_uid == 0) return;
  if (::setgroups(0, nullptr) != 0 || ::setgid(info.st_gid) != 0 || ::setuid(info.st_uid) != 0) {
    throw std::runtime_error("cannot act as the owner (uid " + std::to_string(info.st_uid) +
                             ") of " + database + ": " + std::strerror(errno));
  }
}

using mssgate::ctl::allow_only;
using mssgate::ctl::Arguments;
using mssgate::ctl::split_arguments;
using mssgate::ctl::UsageError;
using mssgate::storage::CertificateBinding;
using mssgate::storage::CertificateMatch;
namespace protocol = mssgate::protocol;

constexpr const char* kDefaultConfig = "/etc/mssgate/mssgate.toml";

void usage(std::ostream& out) {
  out << "usage: mssgatectl [--config FILE | --database FILE | --journal FILE] COMMAND\n"
         "\n"
         "  mailbox add ADDRESS --type PER|ORG|APP|CAB [--status active|suspended|closed]\n"
         "                     [--if-missing]\n"
         "  mailbox set-status ADDRESS active|suspended|closed\n"
         "  mailbox remove ADDRESS\n"
         "  mailbox list\n"
         "  mailbox allow-sender ADDRESS SENDER [--if-missing]\n"
         "                                           let ADDRESS also send as SENDER\n"
         "  mailbox disallow-sender ADDRESS SENDER\n"
         "  mailbox senders ADDRESS\n"
         "  holder add ID [--label TEXT] [--if-missing]\n"
         "                                           a professional: idNat, RPPS or ADELI\n"
         "  holder remove ID\n"
         "  holder attach ID ADDRESS --role owner|delegate|co-holder [--if-missing]\n"
         "  holder detach ID ADDRESS\n"
         "  holder list\n"
         "  certificate bind ADDRESS CERTIFICATE-SELECTOR [--label TEXT] [--if-missing]\n"
         "  certificate unbind ADDRESS CERTIFICATE-SELECTOR\n"
         "  certificate list\n"
         "  certificate show FILE [--attributes OU,CN]   what it is, every selector it matches\n"
         "  directory import FILE|- [--format csv|jsonl] [--sync [--absent suspend|close|remove]]\n"
         "                   [--dry-run]              add and update what FILE holds (--sync: and\n"
         "                                           suspend, close or remove what it lacks), all\n"
         "                                           or nothing\n"
         "  directory export [--format csv|jsonl] [--out FILE] [--overwrite]\n"
         "                                           the whole directory, as import reads it\n"
         "  storage migrate [--from sqlite:PATH] [--journal sqlite:PATH]\n"
         "                                           move a single host's SQLite directory and\n"
         "                                           indicator journal into the configuration's\n"
         "                                           PostgreSQL (empty)\n"
         "  indicators export --month YYYY-MM\n"
         "      [--kind all|connections|messages|documents|lps|acknowledgements]\n"
         "                    [--format csv|json] [--out DIR] [--overwrite]\n"
         "                                           the monthly report files\n"
         "  indicators show --mailbox ADDRESS [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n"
         "                                           one mailbox, day by day (default: this "
         "month)\n"
         "  indicators lps --month YYYY-MM [--format table|csv|json]\n"
         "                                           per LPS (X-MSS-NIL, client id): what it "
         "sent\n"
         "\n"
         "CERTIFICATE-SELECTOR is one of:\n"
         "  --cert FILE [--match spki-sha256|issuer-serial]   read it from a PEM file: the\n"
         "                                                    certificate, or a chain that\n"
         "                                                    starts with it\n"
         "  --spki-sha256 HEX                                 the SHA-256 of its public key (DER "
         "SPKI)\n"
         "  --issuer 'RFC 2253 DN' --serial HEX               its issuer and serial number\n"
         "  --cert FILE --match organisation [--attributes OU,CN]\n"
         "  --organisation 'RFC 2253 DN|OU=...,CN=...'        its issuer and subject attributes:\n"
         "                                                    every certificate of that\n"
         "                                                    organisation and service, renewed\n"
         "                                                    ones included\n"
         "\n"
         "--if-missing: what is already there as asked is not an error (scripts may run\n"
         "again); what is there otherwise still is.\n"
         "The database is the configuration's directory.sqlite_path, the journal its\n"
         "indicators.journal (default configuration "
      << kDefaultConfig << ").\n";
}

std::string mailbox_argument(const Arguments& a) {
  auto address = protocol::normalize_mailbox_address(a.positional.at(0));
  if (!address) throw UsageError("'" + a.positional.at(0) + "' is not a mailbox address");
  return *address;
}

std::string professional_argument(const std::string& text) {
  auto id = protocol::normalize_professional_id(text);
  if (!id)
    throw UsageError("'" + text +
                     "' is not an idNat (8 + RPPS, 0 + ADELI), an RPPS or an ADELI number");
  return *id;
}

std::string lower_hex(std::string text, size_t expected_length) {
  for (auto& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!std::isxdigit(static_cast<unsigned char>(c)))
      throw UsageError("'" + text + "' is not hexadecimal");
  }
  if (expected_length && text.size() != expected_length) {
    throw UsageError("a SHA-256 fingerprint has " + std::to_string(expected_length) +
                     " hex digits");
  }
  return text;
}

std::string canonical_serial(std::string serial) {
  serial = lower_hex(serial, 0);
  for (auto& c : serial)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  size_t first = serial.find_first_not_of('0');
  return first == std::string::npos ? "0" : serial.substr(first);
}

// The subject attributes an organisation binding names: --attributes, else the configuration's
// auth.organisation_attributes (when it was read), else the default.
std::vector<std::string> organisation_attributes(const Arguments& a,
                                                 const std::vector<std::string>& configured) {
  auto text = a.option("--attributes");
  if (!text) return configured;
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    size_t comma = text->find(',', start);
    std::string name = text->substr(start, comma == std::string::npos ? comma : comma - start);
    if (!mssgate::config::known_subject_attribute(name))
      throw UsageError("--attributes: unknown subject attribute '" + name +
                       "' (C, ST, L, O, OU, CN, serialNumber, organizationIdentifier, UID, title)");
    names.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

std::string organisation_selector_of(const mssgate::daemon::CertificateIdentity& id,
                                     const std::vector<std::string>& attributes) {
  std::string selector = id.organisation_selector(attributes);
  if (selector.empty()) {
    std::string names;
    for (const auto& name : attributes)
      names += (names.empty() ? "" : ", ") + name;
    throw std::runtime_error("this certificate has no organisation identity: its subject (" +
                             id.subject + ") lacks one of " + names + ", or has it more than once");
  }
  return selector;
}

CertificateBinding binding_from(const Arguments& a, const std::vector<std::string>& attributes) {
  CertificateBinding b;
  b.mailbox = mailbox_argument(a);
  b.label = a.option("--label").value_or("");
  if (auto file = a.option("--cert")) {
    auto id = mssgate::daemon::identify_certificate_file(*file);
    auto match =
        mssgate::storage::parse_certificate_match(a.option("--match").value_or("spki-sha256"));
    if (!match) throw UsageError("--match is spki-sha256, issuer-serial or organisation");
    b.match = *match;
    if (b.match == CertificateMatch::kSpkiSha256) {
      b.value = id.spki_sha256;
    } else if (b.match == CertificateMatch::kIssuerSerial) {
      b.value = id.issuer + "|" + id.serial_hex;
    } else {
      b.value = organisation_selector_of(id, organisation_attributes(a, attributes));
    }
    if (b.label.empty()) b.label = id.subject;
  } else if (auto spki = a.option("--spki-sha256")) {
    b.match = CertificateMatch::kSpkiSha256;
    b.value = lower_hex(*spki, 64);
  } else if (a.option("--issuer") && a.option("--serial")) {
    b.match = CertificateMatch::kIssuerSerial;
    b.value = *a.option("--issuer") + "|" + canonical_serial(*a.option("--serial"));
  } else if (auto organisation = a.option("--organisation")) {
    b.match = CertificateMatch::kOrganisation;
    std::string why;
    auto value = mssgate::storage::normalize_binding_value(b.match, *organisation, why);
    if (!value) throw UsageError("--organisation: " + why);
    b.value = *value;
  } else {
    throw UsageError(
        "name the certificate with --cert, --spki-sha256, --issuer and --serial, or "
        "--organisation");
  }
  return b;
}

// What comes before the command's arguments: the options that choose the files, and the
// command's two words.
struct CommandLine {
  bool help = false;
  std::string config_path = kDefaultConfig;
  std::optional<std::string> database;
  std::optional<std::string> journal;
  std::string noun;
  std::string verb;
  Arguments arguments;
};

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine line;
  size_t i = 0;
  for (; i < args.size() && args[i].rfind("--", 0) == 0; i += 2) {
    if (args[i] == "--help") {
      line.help = true;
      return line;
    }
    if (i + 1 >= args.size()) throw UsageError(args[i] + " needs a value");
    if (args[i] == "--config") {
      line.config_path = args[i + 1];
    } else if (args[i] == "--database") {
      line.database = args[i + 1];
    } else if (args[i] == "--journal") {
      line.journal = args[i + 1];
    } else {
      throw UsageError("unknown option " + args[i]);
    }
  }
  if (args.size() < i + 2) throw UsageError("missing command");
  line.noun = args[i];
  line.verb = args[i + 1];
  line.arguments = split_arguments(args, i + 2);
  return line;
}

// What a certificate is, and every selector a binding may name it by.
int show_certificate(const Arguments& a, const std::vector<std::string>& configured) {
  allow_only(a, {"--attributes"}, 1);
  auto id = mssgate::daemon::identify_certificate_file(a.positional[0]);
  auto attributes = organisation_attributes(a, configured);
  std::string organisation = id.organisation_selector(attributes);
  std::cout << "subject:       " << id.subject << "\n"
            << "issuer:        " << id.issuer << "\n"
            << "serial:        " << id.serial_hex << "\n"
            << "sha256:        " << id.sha256 << "\n"
            << "the bindings that would match it (certificate bind ADDRESS --match KIND, or a\n"
            << "directory file's match and value):\n"
            << "  spki-sha256    " << id.spki_sha256 << "\n"
            << "                 this key: a renewal with a new key no longer matches\n"
            << "  issuer-serial  " << id.issuer << "|" << id.serial_hex << "\n"
            << "                 this certificate only\n";
  std::string names;
  for (const auto& name : attributes)
    names += (names.empty() ? "" : ", ") + name;
  if (organisation.empty()) {
    std::cout << "  organisation   none: the subject lacks one of " << names
              << ", or has it more than once\n";
  } else {
    std::cout << "  organisation   " << organisation << "\n"
              << "                 every certificate of this issuer with the same " << names
              << ", renewals included\n";
  }
  return 0;
}

// "sqlite:PATH" → PATH, of a file that exists.
std::optional<std::string> sqlite_file(const Arguments& a, const std::string& option,
                                       const std::string& what) {
  auto value = a.option(option);
  if (!value) return std::nullopt;
  if (value->rfind("sqlite:", 0) != 0)
    throw UsageError(option + " takes sqlite:PATH (the " + what + " to move)");
  std::string path = value->substr(7);
  if (!std::filesystem::is_regular_file(path))
    throw mssgate::storage::StorageError("no SQLite " + what + " at " + path);
  return path;
}

// Moves a single host's SQLite directory (--from) and indicator journal (--journal) into the
// configuration's PostgreSQL database.
int migrate_storage(const Arguments& a, const std::string& config_path) {
  allow_only(a, {"--from", "--journal"}, 0);
  auto directory = sqlite_file(a, "--from", "directory");
  auto journal = sqlite_file(a, "--journal", "indicator journal");
  if (!directory && !journal) {
    throw UsageError(
        "name what to move: --from sqlite:PATH (the directory), --journal sqlite:PATH (the "
        "indicator journal), or both");
  }
  auto config = mssgate::config::load_config(config_path);
  if (!config.storage.postgresql_enabled()) {
    throw UsageError(config_path +
                     " does not keep its storage in PostgreSQL: set [storage] backend = "
                     "\"postgresql\" first");
  }
  auto settings = mssgate::config::postgresql_settings(config.storage, "mssgatectl");
  settings.statement_timeout = {};  // a move counts whole tables: no statement limit
  std::string where = mssgate::storage::postgresql_location(config.storage.postgresql);
  if (directory) {
    auto source = mssgate::storage::open_sqlite_directory(*directory);
    auto counts = mssgate::storage::copy_directory_to_postgresql(*source, settings);
    std::cout << "moved to " << where << ": " << counts.mailboxes << " mailboxes, "
              << counts.senders << " allowed senders, " << counts.holders << " holders, "
              << counts.attachments << " attachments, " << counts.bindings
              << " certificate bindings (each count checked in PostgreSQL)\n";
  }
  if (journal) {
    if (!config.indicators.in_postgresql) {
      throw UsageError(config_path +
                       " keeps no indicator journal in PostgreSQL (indicators.enabled = false)");
    }
    auto source = mssgate::storage::open_sqlite_journal(*journal);
    auto counts =
        mssgate::storage::copy_journal_to_postgresql(*source, settings, config.server.instance);
    std::cout << "moved to " << where << " as \"" << config.server.instance
              << "\": " << counts.events << " indicator events, " << counts.documents
              << " documents, " << counts.connections << " sign-ins (" << counts.connection_days
              << " rows by mailbox, day, mode and protocol; " << counts.sign_in_days
              << " rows of sign-ins and refusals by professional and LPS)";
    if (counts.pending_recovered > 0)
      std::cout << ", with " << counts.pending_recovered << " deliveries a stop left pending";
    std::cout << " (each count checked in PostgreSQL)\n";
  }
  return 0;
}

[[noreturn]] void unknown_command(const std::string& noun, const std::string& verb) {
  throw UsageError("unknown command '" + noun + " " + verb + "'");
}

// --if-missing: what is already there as asked is no error (a script may run again); what is
// there otherwise still is.
void already_there(const std::string& what) {
  std::cout << what << " already (--if-missing): nothing changed\n";
}

void add_mailbox(const Arguments& a, mssgate::storage::DirectoryStore& directory) {
  allow_only(a, {"--type", "--status", "--if-missing"}, 1);
  mssgate::storage::Mailbox m;
  m.address = mailbox_argument(a);
  auto type = protocol::parse_mailbox_type(a.option("--type").value_or(""));
  if (!type) throw UsageError("--type is PER, ORG, APP or CAB");
  auto status = protocol::parse_mailbox_status(a.option("--status").value_or("active"));
  if (!status) throw UsageError("--status is active, suspended or closed");
  m.type = *type;
  m.status = *status;
  if (a.flag("--if-missing")) {
    auto existing = directory.find_mailbox(m.address);
    if (!existing.ok()) throw std::runtime_error(existing.error);
    if (existing.value && *existing.value == m) {
      already_there(m.address + " is " + std::string(protocol::to_string(m.type)) + " " +
                    std::string(protocol::to_string(m.status)));
      return;
    }
    if (existing.value) {
      throw mssgate::storage::StorageError(
          "mailbox " + m.address + " already exists as " +
          std::string(protocol::to_string(existing.value->type)) + " " +
          std::string(protocol::to_string(existing.value->status)) +
          " (mailbox set-status changes its status)");
    }
  }
  directory.add_mailbox(m);
  std::cout << "added " << m.address << " " << protocol::to_string(m.type) << " "
            << protocol::to_string(m.status) << "\n";
}

int change_sender(const std::string& verb, const Arguments& a,
                  mssgate::storage::DirectoryStore& directory) {
  allow_only(a,
             verb == "allow-sender" ? std::initializer_list<const char*>{"--if-missing"}
                                    : std::initializer_list<const char*>{},
             2);
  auto sender = protocol::normalize_mailbox_address(a.positional[1]);
  if (!sender) throw UsageError("'" + a.positional[1] + "' is not a mailbox address");
  if (verb == "allow-sender" && a.flag("--if-missing")) {
    auto senders = directory.allowed_senders(mailbox_argument(a));
    if (!senders.ok()) throw std::runtime_error(senders.error);
    if (std::find(senders.value.begin(), senders.value.end(), *sender) != senders.value.end()) {
      already_there(mailbox_argument(a) + " may send as " + *sender);
      return 0;
    }
  }
  if (verb == "allow-sender") {
    directory.allow_sender(mailbox_argument(a), *sender);
    std::cout << mailbox_argument(a) << " may now send as " << *sender << "\n";
  } else if (directory.disallow_sender(mailbox_argument(a), *sender)) {
    std::cout << mailbox_argument(a) << " may no longer send as " << *sender << "\n";
  } else {
    std::cerr << "mssgatectl: " << mailbox_argument(a) << " could not send as " << *sender << "\n";
    return 1;
  }
  return 0;
}

int mailbox_command(const std::string& verb, const Arguments& a,
                    mssgate::storage::DirectoryStore& directory) {
  if (verb == "add") {
    add_mailbox(a, directory);
  } else if (verb == "set-status") {
    allow_only(a, {}, 2);
    auto status = protocol::parse_mailbox_status(a.positional[1]);
    if (!status) throw UsageError("status is active, suspended or closed");
    directory.set_mailbox_status(mailbox_argument(a), *status);
    std::cout << mailbox_argument(a) << " is now " << protocol::to_string(*status) << "\n";
  } else if (verb == "remove") {
    allow_only(a, {}, 1);
    directory.remove_mailbox(mailbox_argument(a));
    std::cout << "removed " << mailbox_argument(a) << "\n";
  } else if (verb == "list") {
    allow_only(a, {}, 0);
    for (const auto& m : directory.list_mailboxes()) {
      std::cout << std::left << std::setw(48) << m.address << " " << protocol::to_string(m.type)
                << "  " << protocol::to_string(m.status) << "\n";
    }
  } else if (verb == "allow-sender" || verb == "disallow-sender") {
    return change_sender(verb, a, directory);
  } else if (verb == "senders") {
    allow_only(a, {}, 1);
    auto senders = directory.allowed_senders(mailbox_argument(a));
    if (!senders.ok()) throw std::runtime_error(senders.error);
    std::cout << mailbox_argument(a) << "\n";
    for (const auto& sender : senders.value)
      std::cout << sender << "\n";
  } else {
    unknown_command("mailbox", verb);
  }
  return 0;
}

int change_attachment(const std::string& verb, const Arguments& a,
                      mssgate::storage::DirectoryStore& directory) {
  allow_only(a,
             verb == "attach" ? std::initializer_list<const char*>{"--role", "--if-missing"}
                              : std::initializer_list<const char*>{},
             2);
  std::string holder = professional_argument(a.positional[0]);
  auto mailbox = protocol::normalize_mailbox_address(a.positional[1]);
  if (!mailbox) throw UsageError("'" + a.positional[1] + "' is not a mailbox address");
  if (verb == "attach") {
    auto role = mssgate::storage::parse_holder_role(a.option("--role").value_or(""));
    if (!role) throw UsageError("--role is owner, delegate or co-holder");
    if (a.flag("--if-missing")) {
      auto existing = directory.holder_role(holder, *mailbox);
      if (!existing.ok()) throw std::runtime_error(existing.error);
      if (existing.value == role) {
        already_there(holder + " is " + std::string(mssgate::storage::to_string(*role)) + " of " +
                      *mailbox);
        return 0;
      }
      if (existing.value) {
        throw mssgate::storage::StorageError(
            holder + " is already attached to " + *mailbox + " as " +
            std::string(mssgate::storage::to_string(*existing.value)) +
            " (holder detach, then attach, changes the role)");
      }
    }
    directory.attach_holder({holder, *mailbox, *role});
    std::cout << "attached " << holder << " to " << *mailbox << " as "
              << mssgate::storage::to_string(*role) << "\n";
  } else if (directory.detach_holder(holder, *mailbox)) {
    std::cout << "detached " << holder << " from " << *mailbox << "\n";
  } else {
    std::cerr << "mssgatectl: " << holder << " was not attached to " << *mailbox << "\n";
    return 1;
  }
  return 0;
}

// Each professional and the mailboxes it is attached to. Both lists come sorted by the
// professional's id (digits, which every collation orders as bytes): one pass over each,
// whatever their size.
void list_holders(const Arguments& a, mssgate::storage::DirectoryStore& directory) {
  allow_only(a, {}, 0);
  auto attachments = directory.list_attachments();
  auto next = attachments.begin();
  for (const auto& holder : directory.list_holders()) {
    std::cout << holder.id;
    if (!holder.label.empty()) std::cout << "  (" << holder.label << ")";
    std::cout << "\n";
    while (next != attachments.end() && next->holder < holder.id)
      ++next;
    for (; next != attachments.end() && next->holder == holder.id; ++next) {
      std::cout << "  " << mssgate::storage::to_string(next->role) << "  " << next->mailbox << "\n";
    }
  }
}

int holder_command(const std::string& verb, const Arguments& a,
                   mssgate::storage::DirectoryStore& directory) {
  if (verb == "add") {
    allow_only(a, {"--label", "--if-missing"}, 1);
    mssgate::storage::Holder holder{professional_argument(a.positional[0]),
                                    a.option("--label").value_or("")};
    if (a.flag("--if-missing")) {
      mssgate::storage::DirectoryPageQuery query;
      query.table = mssgate::storage::DirectoryTable::kHolders;
      query.holder = holder.id;
      query.limit = 1;
      if (!directory.read_page(query).holders.empty()) {
        already_there("holder " + holder.id + " exists");
        return 0;
      }
    }
    directory.add_holder(holder);
    std::cout << "added holder " << holder.id << "\n";
  } else if (verb == "remove") {
    allow_only(a, {}, 1);
    directory.remove_holder(professional_argument(a.positional[0]));
    std::cout << "removed holder " << professional_argument(a.positional[0]) << "\n";
  } else if (verb == "attach" || verb == "detach") {
    return change_attachment(verb, a, directory);
  } else if (verb == "list") {
    list_holders(a, directory);
  } else {
    unknown_command("holder", verb);
  }
  return 0;
}

int change_binding(const std::string& verb, const Arguments& a,
                   mssgate::storage::DirectoryStore& directory,
                   const std::vector<std::string>& attributes) {
  if (verb == "bind") {
    allow_only(a,
               {"--cert", "--match", "--spki-sha256", "--issuer", "--serial", "--organisation",
                "--attributes", "--label", "--if-missing"},
               1);
  } else {
    allow_only(a,
               {"--cert", "--match", "--spki-sha256", "--issuer", "--serial", "--organisation",
                "--attributes", "--label"},
               1);
  }
  CertificateBinding b = binding_from(a, attributes);
  if (verb == "bind") {
    if (a.flag("--if-missing")) {
      auto bindings = directory.list_certificate_bindings();
      if (std::any_of(bindings.begin(), bindings.end(), [&](const auto& existing) {
            return existing.match == b.match && existing.value == b.value &&
                   existing.mailbox == b.mailbox;
          })) {
        already_there("this certificate is bound to " + b.mailbox);
        return 0;
      }
    }
    directory.bind_certificate(b);
    std::cout << "bound " << mssgate::storage::to_string(b.match) << " " << b.value << " to "
              << b.mailbox << "\n";
    return 0;
  }
  if (directory.unbind_certificate(b) == 0) {
    std::cerr << "mssgatectl: no such binding for " << b.mailbox << "\n";
    return 1;
  }
  std::cout << "unbound " << mssgate::storage::to_string(b.match) << " " << b.value << " from "
            << b.mailbox << "\n";
  return 0;
}

int certificate_command(const std::string& verb, const Arguments& a,
                        mssgate::storage::DirectoryStore& directory,
                        const std::vector<std::string>& attributes) {
  if (verb == "bind" || verb == "unbind") return change_binding(verb, a, directory, attributes);
  if (verb != "list") unknown_command("certificate", verb);
  allow_only(a, {}, 0);
  for (const auto& b : directory.list_certificate_bindings()) {
    std::cout << b.mailbox << "  " << mssgate::storage::to_string(b.match) << "  " << b.value;
    if (!b.label.empty()) std::cout << "  (" << b.label << ")";
    std::cout << "\n";
  }
  return 0;
}

int run(const std::vector<std::string>& args) {
  CommandLine line = parse_command_line(args);
  if (line.help) {
    usage(std::cout);
    return 0;
  }
  const Arguments& a = line.arguments;
  // The organisation identity's attributes: the configuration's when it is read, else the
  // default (--attributes names others).
  std::vector<std::string> attributes = mssgate::config::AuthConfig{}.organisation_attributes;
  if (line.noun == "certificate" && line.verb == "show") {
    // The configuration's attributes if it can be read; show needs nothing else of it.
    if (!line.database) {
      try {
        attributes = mssgate::config::load_config(line.config_path).auth.organisation_attributes;
      } catch (const std::exception&) {
      }
    }
    return show_certificate(a, attributes);
  }
  if (line.noun == "indicators")
    return mssgate::ctl::indicators(line.verb, a, line.config_path, line.journal);
  if (line.noun == "storage" && line.verb == "migrate") return migrate_storage(a, line.config_path);

  // The other commands work on the directory, opened before the command is known; the
  // configuration is read only when --database does not name it.
  std::unique_ptr<mssgate::storage::DirectoryStore> directory;
  if (line.database) {
    act_as_owner_of(*line.database);
    directory = mssgate::storage::open_sqlite_directory(*line.database);
  } else {
    auto config = mssgate::config::load_config(line.config_path);
    attributes = config.auth.organisation_attributes;
    if (config.storage.postgresql_enabled()) {
      directory = mssgate::storage::open_postgresql_directory(
          mssgate::config::postgresql_settings(config.storage, "mssgatectl"));
    } else {
      act_as_owner_of(config.directory.sqlite_path);
      directory = mssgate::storage::open_sqlite_directory(config.directory.sqlite_path);
    }
  }
  if (line.noun == "mailbox") return mailbox_command(line.verb, a, *directory);
  if (line.noun == "holder") return holder_command(line.verb, a, *directory);
  if (line.noun == "certificate") return certificate_command(line.verb, a, *directory, attributes);
  if (line.noun == "directory") return mssgate::ctl::directory_command(line.verb, a, *directory);
  unknown_command(line.noun, line.verb);
}

}  // namespace

// The hint after a command-line error: the usage line of the command the arguments name
// ("usage: mssgatectl mailbox add ..."), else the commands of its noun ("mailbox commands:
// add, set-status, ...").
std::string usage_hint(const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size() && args[i].rfind("--", 0) == 0)
    i += 2;
  std::ostringstream text;
  usage(text);
  std::istringstream lines(text.str());
  std::string noun = i < args.size() ? args[i] : "";
  std::string command = i + 1 < args.size() ? noun + " " + args[i + 1] : "";
  std::string verbs;
  for (std::string line; std::getline(lines, line);) {
    if (!command.empty() && (line.rfind("  " + command + " ", 0) == 0 || line == "  " + command))
      return "usage: mssgatectl " + line.substr(2);
    if (!noun.empty() && line.rfind("  " + noun + " ", 0) == 0) {
      std::string verb = line.substr(noun.size() + 3);
      verb = verb.substr(0, verb.find(' '));
      if (verbs.find(verb) == std::string::npos) verbs += (verbs.empty() ? "" : ", ") + verb;
    }
  }
  return verbs.empty() ? "" : noun + " commands: " + verbs;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return run(args);
  } catch (const UsageError& e) {
    // One line for what is wrong, one for how the command goes: not the whole usage.
    std::cerr << "mssgatectl: " << e.what() << "\n";
    std::string hint = usage_hint(args);
    if (!hint.empty()) std::cerr << hint << "\n";
    std::cerr << "(mssgatectl --help lists every command)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mssgatectl: " << e.what() << "\n";
    return 1;
  }
}
