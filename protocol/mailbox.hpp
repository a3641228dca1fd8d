#pragma once

#include <optional>
#include <string_view>

namespace mssgate::protocol {

// Mailbox ("BAL") types of the MSSanté référentiel: personal, organisational, applicative,
// cabinet.
enum class MailboxType { kPer, kOrg, kApp, kCab };
enum class MailboxStatus { kActive, kSuspended, kClosed };

constexpr std::string_view to_string(MailboxType type) {
  switch (type) {
    case MailboxType::kPer:
      return "PER";
    case MailboxType::kOrg:
      return "ORG";
    case MailboxType::kApp:
      return "APP";
    case MailboxType::kCab:
      return "CAB";
  }
  return "?";
}

constexpr std::string_view to_string(MailboxStatus status) {
  switch (status) {
    case MailboxStatus::kActive:
      return "active";
    case MailboxStatus::kSuspended:
      return "suspended";
    case MailboxStatus::kClosed:
      return "closed";
  }
  return "?";
}

constexpr std::optional<MailboxType> parse_mailbox_type(std::string_view s) {
  for (auto t : {MailboxType::kPer, MailboxType::kOrg, MailboxType::kApp, MailboxType::kCab}) {
    if (s == to_string(t)) return t;
  }
  return std::nullopt;
}

constexpr std::optional<MailboxStatus> parse_mailbox_status(std::string_view s) {
  for (auto st : {MailboxStatus::kActive, MailboxStatus::kSuspended, MailboxStatus::kClosed}) {
    if (s == to_string(st)) return st;
  }
  return std::nullopt;
}

}  // namespace mssgate::protocol
