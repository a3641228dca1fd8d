#pragma once
// What the indicator journal records: one event per message and mailbox, and sign-ins. The
// fields are typed; their texts (the journal's columns, the JSON line, the reports) are the
// words below, and docs/indicators.md defines each.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/mailbox.hpp"
#include "protocol/message_inspector.hpp"

namespace mssgate::storage {

enum class Direction { kSent, kReceived };
// How the session that sent the message signed in; a received message has none.
enum class AuthMode { kCertificate, kPsc, kNone };
// The class of an address: a mailbox of this operator, of another one, or a patient's.
enum class Counterpart { kSameOperator, kOtherOperator, kPatient };
// X-MSS-INS as the message claims it: "O", "N", another value, or no header.
enum class ClaimedIns { kAbsent, kYes, kNo, kInvalid };
// The listener a sign-in came through.
enum class SessionProtocol { kImap, kSubmission };
// What a delivery status notification (RFC 3464) says of one recipient: its Action field.
enum class DsnAction { kDelivered, kDelayed, kFailed, kRelayed, kExpanded, kOther };
// What a message disposition notification (RFC 8098) says: its disposition type; kNone when the
// message is no MDN or its Disposition field was not read.
enum class Disposition {
  kNone,
  kDisplayed,
  kProcessed,
  kDeleted,
  kDispatched,
  kDenied,
  kFailed,
  kOther
};
// An INS found in CDA documents: absent, test, unqualified, qualified (the inspector's rule).
using InsClass = protocol::MessageFacts::Ins;
// The mailbox's type in the directory when the event was made; nullopt: the directory did
// not know the mailbox ("unknown").
using RecordedMailboxType = std::optional<protocol::MailboxType>;

std::string_view to_string(Direction direction);
std::string_view to_string(AuthMode mode);
std::string_view to_string(Counterpart counterpart);
std::string_view to_string(ClaimedIns claim);  // "" when absent
std::string_view to_string(SessionProtocol protocol);
std::string_view to_string(RecordedMailboxType type);  // PER ORG APP CAB, or "unknown"
std::string_view to_string(DsnAction action);
std::string_view to_string(Disposition disposition);  // "" for kNone

// The inverse of to_string: nullopt for any other text.
std::optional<Direction> parse_direction(std::string_view text);
std::optional<AuthMode> parse_auth_mode(std::string_view text);
std::optional<Counterpart> parse_counterpart(std::string_view text);
std::optional<ClaimedIns> parse_claimed_ins(std::string_view text);
std::optional<SessionProtocol> parse_session_protocol(std::string_view text);
std::optional<RecordedMailboxType> parse_recorded_mailbox_type(std::string_view text);
std::optional<InsClass> parse_ins_class(std::string_view text);
std::optional<DsnAction> parse_dsn_action(std::string_view text);
std::optional<Disposition> parse_disposition(std::string_view text);

// One CDA document of a message: its type code and what its patient identity is.
struct IndicatorDocument {
  std::string code;
  std::string code_system;
  InsClass ins = InsClass::kAbsent;

  bool operator==(const IndicatorDocument&) const = default;
};

// The caps on the texts an event takes from a message (docs/indicators.md): longer values are
// cut, and control characters and bytes that are not UTF-8 are replaced by "?", before they
// reach the journal.
inline constexpr size_t kMaxNilBytes = 64;         // X-MSS-NIL
inline constexpr size_t kMaxCodeBytes = 64;        // a document code, its code system, a claim
inline constexpr size_t kMaxMessageIdBytes = 250;  // Message-ID
inline constexpr size_t kMaxAddressBytes = 254;    // a recipient of the LMTP tap (RFC 5321)

// The indicator event of one message for one mailbox. Nothing here is content: no body, no
// INS value, no name.
struct IndicatorEvent {
  std::string key;  // unique: recording the same key twice counts once
  int64_t at_ms = 0;
  std::string day;  // YYYY-MM-DD, in the configured time zone
  Direction direction = Direction::kSent;
  std::string mailbox;
  RecordedMailboxType mailbox_type;
  AuthMode auth_mode = AuthMode::kNone;
  std::string azp;  // the LPS's OAuth client, when a PSC token opened the session
  std::string nil;  // X-MSS-NIL
  std::string message_id;
  std::string queue_id;
  uint64_t size = 0;
  unsigned recipients = 0;
  unsigned to_same_operator = 0;  // sent: recipients of this operator
  unsigned to_other_operator = 0;
  unsigned to_patient = 0;                 // sent: recipients at a patient domain
  std::optional<Counterpart> counterpart;  // received: the sender's class
  bool inspected = true;
  std::string uninspectable_reason;
  bool xdm = false;
  std::vector<IndicatorDocument> documents;
  InsClass ins = InsClass::kAbsent;  // the message's best over its documents
  std::string claim_codecda;         // X-MSS-CODECDA as claimed, comma-separated
  ClaimedIns claim_ins = ClaimedIns::kAbsent;
  bool claim_xdm_subject = false;
  std::vector<protocol::Mismatch> mismatches;
  bool mes_fin = false;
  bool mdn = false;  // the message is a disposition notification
  bool mdn_requested = false;
  // A report (an MDN or a DSN) received: what it says of the message it acknowledges, and the
  // ids that find that message (docs/indicators.md, "Acknowledgements").
  bool dsn = false;                    // the message is a delivery status notification
  std::vector<DsnAction> dsn_actions;  // one per recipient the DSN reports on
  Disposition disposition = Disposition::kNone;
  bool integration_error = false;    // an MDN whose subject starts with "[KO"
  std::string original_message_id;   // the Message-ID of the message acknowledged
  std::string original_envelope_id;  // a DSN's Original-Envelope-Id (ENVID)
  // A sent message's envelope id: the ENVID its sender gave at MAIL FROM (RFC 3461), which a
  // DSN names as its Original-Envelope-Id.
  std::string envelope_id;

  bool report() const { return mdn || dsn; }

  bool operator==(const IndicatorEvent&) const = default;
};

// A sign-in, for the "connections" report: successful when `failure` is empty.
struct ConnectionEvent {
  int64_t at_ms = 0;
  std::string day;
  std::string mailbox;  // a failed one: the mailbox asked for when the directory has it, else ""
  RecordedMailboxType mailbox_type;
  AuthMode auth_mode = AuthMode::kCertificate;
  SessionProtocol protocol = SessionProtocol::kImap;
  std::string failure;       // the refusal's reason word (docs/indicators.md)
  std::string professional;  // the professional a token named
  std::string lps;           // the token's client id (azp), or the certificate's organisation

  bool operator==(const ConnectionEvent&) const = default;
};

// The sign-ins of one mailbox, day, mode and protocol (connection_day: the successful ones),
// or of one mailbox, day, mode, protocol, failure, professional and LPS (sign_in_day): how
// many, and the last one.
struct ConnectionDay {
  ConnectionEvent last;
  int64_t connections = 0;
};

}  // namespace mssgate::storage
