#include "storage/indicator_event.hpp"

#include <initializer_list>

namespace mssgate::storage {
namespace {

// The value of `values` whose text is `text`: every parse is the inverse of a to_string.
template <class T>
std::optional<T> find_by_text(std::string_view text, std::initializer_list<T> values) {
  for (const T& value : values) {
    if (to_string(value) == text) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Direction direction) {
  switch (direction) {
    case Direction::kSent:
      return "sent";
    case Direction::kReceived:
      return "received";
  }
  return "?";
}

std::string_view to_string(AuthMode mode) {
  switch (mode) {
    case AuthMode::kCertificate:
      return "certificate";
    case AuthMode::kPsc:
      return "psc";
    case AuthMode::kNone:
      return "none";
  }
  return "?";
}

std::string_view to_string(Counterpart counterpart) {
  switch (counterpart) {
    case Counterpart::kSameOperator:
      return "same_operator";
    case Counterpart::kOtherOperator:
      return "other_operator";
    case Counterpart::kPatient:
      return "patient";
  }
  return "?";
}

std::string_view to_string(ClaimedIns claim) {
  switch (claim) {
    case ClaimedIns::kAbsent:
      return "";
    case ClaimedIns::kYes:
      return "O";
    case ClaimedIns::kNo:
      return "N";
    case ClaimedIns::kInvalid:
      return "invalid";
  }
  return "?";
}

std::string_view to_string(SessionProtocol protocol) {
  switch (protocol) {
    case SessionProtocol::kImap:
      return "imap";
    case SessionProtocol::kSubmission:
      return "submission";
  }
  return "?";
}

std::string_view to_string(RecordedMailboxType type) {
  return type ? protocol::to_string(*type) : "unknown";
}
std::string_view to_string(DsnAction action) {
  switch (action) {
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kRelayed:
      return "relayed";
    case DsnAction::kExpanded:
      return "expanded";
    case DsnAction::kOther:
      return "other";
  }
  return "?";
}

std::string_view to_string(Disposition disposition) {
  switch (disposition) {
    case Disposition::kNone:
      return "";
    case Disposition::kDisplayed:
      return "displayed";
    case Disposition::kProcessed:
      return "processed";
    case Disposition::kDeleted:
      return "deleted";
    case Disposition::kDispatched:
      return "dispatched";
    case Disposition::kDenied:
      return "denied";
    case Disposition::kFailed:
      return "failed";
    case Disposition::kOther:
      return "other";
  }
  return "?";
}

std::optional<Direction> parse_direction(std::string_view text) {
  return find_by_text(text, {Direction::kSent, Direction::kReceived});
}

std::optional<AuthMode> parse_auth_mode(std::string_view text) {
  return find_by_text(text, {AuthMode::kCertificate, AuthMode::kPsc, AuthMode::kNone});
}

std::optional<Counterpart> parse_counterpart(std::string_view text) {
  return find_by_text(
      text, {Counterpart::kSameOperator, Counterpart::kOtherOperator, Counterpart::kPatient});
}

std::optional<ClaimedIns> parse_claimed_ins(std::string_view text) {
  return find_by_text(
      text, {ClaimedIns::kAbsent, ClaimedIns::kYes, ClaimedIns::kNo, ClaimedIns::kInvalid});
}

std::optional<SessionProtocol> parse_session_protocol(std::string_view text) {
  return find_by_text(text, {SessionProtocol::kImap, SessionProtocol::kSubmission});
}

std::optional<RecordedMailboxType> parse_recorded_mailbox_type(std::string_view text) {
  using protocol::MailboxType;
  return find_by_text(
      text, {RecordedMailboxType{}, RecordedMailboxType{MailboxType::kPer},
             RecordedMailboxType{MailboxType::kOrg}, RecordedMailboxType{MailboxType::kApp},
             RecordedMailboxType{MailboxType::kCab}});
}

std::optional<InsClass> parse_ins_class(std::string_view text) {
  return find_by_text(text, {InsClass::kAbsent, InsClass::kTest, InsClass::kMalformed,
                             InsClass::kUnqualified, InsClass::kQualified});
}

std::optional<DsnAction> parse_dsn_action(std::string_view text) {
  return find_by_text(text, {DsnAction::kDelivered, DsnAction::kDelayed, DsnAction::kFailed,
                             DsnAction::kRelayed, DsnAction::kExpanded, DsnAction::kOther});
}

std::optional<Disposition> parse_disposition(std::string_view text) {
  return find_by_text(text, {Disposition::kNone, Disposition::kDisplayed, Disposition::kProcessed,
                             Disposition::kDeleted, Disposition::kDispatched, Disposition::kDenied,
                             Disposition::kFailed, Disposition::kOther});
}

}  // namespace mssgate::storage
