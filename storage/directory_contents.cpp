#include "storage/directory_contents.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "protocol/ascii.hpp"

namespace mssgate::storage {

namespace {

std::string key_of(const Mailbox& m) {
  return m.address;
}
std::string key_of(const AllowedSender& s) {
  return s.mailbox + '\0' + s.sender;
}
std::string key_of(const Holder& h) {
  return h.id;
}
std::string key_of(const HolderAttachment& a) {
  return a.holder + '\0' + a.mailbox;
}
std::string key_of(const CertificateBinding& b) {
  return std::string(to_string(b.match)) + '\0' + b.value + '\0' + b.mailbox;
}

bool same(const Mailbox& a, const Mailbox& b) {
  return a.type == b.type && a.status == b.status;
}
bool same(const AllowedSender&, const AllowedSender&) {
  return true;
}
bool same(const Holder& a, const Holder& b) {
  return a.label == b.label;
}
bool same(const HolderAttachment& a, const HolderAttachment& b) {
  return a.role == b.role;
}
bool same(const CertificateBinding& a, const CertificateBinding& b) {
  return a.label == b.label;
}

template <class Row>
std::unordered_map<std::string, const Row*> index_of(const std::vector<Row>& rows) {
  std::unordered_map<std::string, const Row*> index;
  index.reserve(rows.size());
  for (const auto& row : rows)
    index.emplace(key_of(row), &row);
  return index;
}

// Rows of `wanted` added or changed; with `sync`, rows of `current` it lacks removed.
template <class Row>
void plan_table(const std::vector<Row>& current, const std::vector<Row>& wanted, bool sync,
                TableChanges<Row>& out) {
  auto existing = index_of(current);
  std::unordered_set<std::string> named;
  if (sync) named.reserve(wanted.size());
  for (const auto& row : wanted) {
    std::string key = key_of(row);
    auto found = existing.find(key);
    if (found == existing.end()) {
      out.added.push_back(row);
    } else if (!same(*found->second, row)) {
      out.changed.push_back(row);
    }
    if (sync) named.insert(std::move(key));
  }
  if (!sync) return;
  for (const auto& row : current) {
    if (!named.contains(key_of(row))) out.removed.push_back(row);
  }
}

bool all_hex(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
  });
}

std::string row_text(const Mailbox& m) {
  return m.address + " " + std::string(protocol::to_string(m.type)) + " " +
         std::string(protocol::to_string(m.status));
}
std::string row_text(const AllowedSender& s) {
  return s.mailbox + " may send as " + s.sender;
}
std::string row_text(const Holder& h) {
  return h.label.empty() ? h.id : h.id + " (" + h.label + ")";
}
std::string row_text(const HolderAttachment& a) {
  return a.holder + " " + std::string(to_string(a.role)) + " of " + a.mailbox;
}
std::string row_text(const CertificateBinding& b) {
  std::string text = std::string(to_string(b.match)) + " " + b.value + " to " + b.mailbox;
  return b.label.empty() ? text : text + " (" + b.label + ")";
}

template <class Row>
void describe_rows(std::string_view kind, char sign, const std::vector<Row>& rows,
                   std::vector<std::string>& out) {
  for (const auto& row : rows)
    out.push_back(std::string(1, sign) + " " + std::string(kind) + " " + row_text(row));
}

template <class Row>
std::string table_summary(std::string_view name, const TableChanges<Row>& table) {
  return std::string(name) + ": " + std::to_string(table.added.size()) + " added, " +
         std::to_string(table.changed.size()) + " changed, " +
         std::to_string(table.removed.size()) + " removed";
}

}  // namespace

void sort_contents(DirectoryContents& c) {
  std::sort(c.mailboxes.begin(), c.mailboxes.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  std::sort(c.senders.begin(), c.senders.end(), [](const auto& a, const auto& b) {
    return std::tie(a.mailbox, a.sender) < std::tie(b.mailbox, b.sender);
  });
  std::sort(c.holders.begin(), c.holders.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  std::sort(c.attachments.begin(), c.attachments.end(), [](const auto& a, const auto& b) {
    return std::tie(a.holder, a.mailbox) < std::tie(b.holder, b.mailbox);
  });
  std::sort(c.bindings.begin(), c.bindings.end(), [](const auto& a, const auto& b) {
    return std::make_tuple(a.mailbox, to_string(a.match), std::string_view(a.value)) <
           std::make_tuple(b.mailbox, to_string(b.match), std::string_view(b.value));
  });
}

std::optional<std::string> normalize_binding_value(CertificateMatch match, std::string_view value,
                                                   std::string& why) {
  if (match == CertificateMatch::kSpkiSha256) {
    if (value.size() != 64 || !all_hex(value)) {
      why = "an spki-sha256 value is the 64 hex digits of a SHA-256";
      return std::nullopt;
    }
    return protocol::ascii_lower(value);
  }
  if (match == CertificateMatch::kOrganisation) {
    size_t bar = value.find('|');
    if (bar == std::string_view::npos || bar == 0 ||
        value.find('=', bar) == std::string_view::npos) {
      why =
          "an organisation value is the issuer's DN (RFC 2253), '|', then the subject's "
          "attributes (OU=...,CN=...), as `mssgatectl certificate show` prints it";
      return std::nullopt;
    }
    return std::string(value);
  }
  size_t bar = value.rfind('|');
  if (bar == std::string_view::npos || bar == 0) {
    why = "an issuer-serial value is the issuer's DN (RFC 2253), '|', then the serial in hex";
    return std::nullopt;
  }
  std::string_view serial = value.substr(bar + 1);
  if (!all_hex(serial)) {
    why = "the serial after '|' is not hexadecimal";
    return std::nullopt;
  }
  std::string canonical = protocol::ascii_upper(serial);
  size_t first = canonical.find_first_not_of('0');
  canonical = first == std::string::npos ? "0" : canonical.substr(first);
  return std::string(value.substr(0, bar)) + "|" + canonical;
}

std::optional<AbsentMailboxes> parse_absent_mailboxes(std::string_view text) {
  if (text == "suspend") return AbsentMailboxes::kSuspend;
  if (text == "close") return AbsentMailboxes::kClose;
  if (text == "remove") return AbsentMailboxes::kRemove;
  return std::nullopt;
}

DirectoryChanges plan_changes(const DirectoryContents& current, const ImportRows& wanted,
                              AbsentMailboxes absent, std::vector<ImportError>& errors) {
  const DirectoryContents& file = wanted.contents;
  const bool sync = absent != AbsentMailboxes::kKeep;
  size_t errors_before = errors.size();

  // Every mailbox and professional a row may name.
  std::unordered_set<std::string_view> mailboxes;
  std::unordered_set<std::string_view> holders;
  mailboxes.reserve(file.mailboxes.size() + (sync ? 0 : current.mailboxes.size()));
  for (const auto& m : file.mailboxes)
    mailboxes.insert(m.address);
  for (const auto& h : file.holders)
    holders.insert(h.id);
  if (!sync) {
    for (const auto& m : current.mailboxes)
      mailboxes.insert(m.address);
    for (const auto& h : current.holders)
      holders.insert(h.id);
  }
  auto unknown_mailbox = [&](size_t line, const std::string& address) {
    errors.push_back({line, "no mailbox " + address +
                                (sync ? " in the file" : " in the file or the directory")});
  };
  for (size_t i = 0; i < file.senders.size(); ++i) {
    if (!mailboxes.contains(file.senders[i].mailbox))
      unknown_mailbox(wanted.lines.senders[i], file.senders[i].mailbox);
  }
  for (size_t i = 0; i < file.attachments.size(); ++i) {
    const auto& a = file.attachments[i];
    if (!mailboxes.contains(a.mailbox)) unknown_mailbox(wanted.lines.attachments[i], a.mailbox);
    if (!holders.contains(a.holder)) {
      errors.push_back(
          {wanted.lines.attachments[i],
           "no holder " + a.holder + (sync ? " in the file" : " in the file or the directory")});
    }
  }
  for (size_t i = 0; i < file.bindings.size(); ++i) {
    if (!mailboxes.contains(file.bindings[i].mailbox))
      unknown_mailbox(wanted.lines.bindings[i], file.bindings[i].mailbox);
  }
  if (errors.size() > errors_before) return {};

  DirectoryChanges changes;
  plan_table(current.mailboxes, file.mailboxes, false, changes.mailboxes);
  if (sync) {
    std::unordered_set<std::string_view> named(file.mailboxes.size());
    for (const auto& m : file.mailboxes)
      named.insert(m.address);
    for (const auto& m : current.mailboxes) {
      if (named.contains(m.address)) continue;
      if (absent == AbsentMailboxes::kRemove) {
        changes.mailboxes.removed.push_back(m);
        continue;
      }
      auto status = absent == AbsentMailboxes::kClose ? protocol::MailboxStatus::kClosed
                                                      : protocol::MailboxStatus::kSuspended;
      // Suspending leaves a closed mailbox closed.
      if (m.status == status || m.status == protocol::MailboxStatus::kClosed) continue;
      Mailbox changed = m;
      changed.status = status;
      changes.mailboxes.changed.push_back(changed);
    }
  }
  plan_table(current.senders, file.senders, sync, changes.senders);
  plan_table(current.holders, file.holders, sync, changes.holders);
  plan_table(current.attachments, file.attachments, sync, changes.attachments);
  plan_table(current.bindings, file.bindings, sync, changes.bindings);
  return changes;
}

std::vector<std::string> describe_changes(const DirectoryChanges& c) {
  std::vector<std::string> out;
  describe_rows("binding", '-', c.bindings.removed, out);
  describe_rows("attachment", '-', c.attachments.removed, out);
  describe_rows("sender", '-', c.senders.removed, out);
  describe_rows("holder", '-', c.holders.removed, out);
  describe_rows("mailbox", '-', c.mailboxes.removed, out);
  describe_rows("mailbox", '+', c.mailboxes.added, out);
  describe_rows("mailbox", '~', c.mailboxes.changed, out);
  describe_rows("holder", '+', c.holders.added, out);
  describe_rows("holder", '~', c.holders.changed, out);
  describe_rows("sender", '+', c.senders.added, out);
  describe_rows("attachment", '+', c.attachments.added, out);
  describe_rows("attachment", '~', c.attachments.changed, out);
  describe_rows("binding", '+', c.bindings.added, out);
  describe_rows("binding", '~', c.bindings.changed, out);
  return out;
}

std::string summarize_changes(const DirectoryChanges& c) {
  return table_summary("mailboxes", c.mailboxes) + "; " + table_summary("senders", c.senders) +
         "; " + table_summary("holders", c.holders) + "; " +
         table_summary("attachments", c.attachments) + "; " + table_summary("bindings", c.bindings);
}

}  // namespace mssgate::storage
