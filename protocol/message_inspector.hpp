#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/cda_document.hpp"
#include "protocol/inspection_budget.hpp"
#include "protocol/mss_headers.hpp"
#include "protocol/xdm_archive.hpp"

namespace mssgate::protocol {

struct InspectorLimits {
  size_t max_header_bytes = 256 << 10;      // the message's header section
  size_t max_part_header_bytes = 64 << 10;  // each MIME part's header section
  size_t max_depth = 16;                    // multipart nesting
  size_t max_parts = 1000;
  size_t max_archive_bytes = 32 << 20;  // decoded size of a zip attachment held to be read
  size_t max_documents = 1000;          // CDA documents counted for one message
  XdmLimits xdm;
  InspectionBudget budget;  // what all the archives of the message may cost together
};

// A header claim the content contradicts (docs/indicators.md, "Mismatch words"); see
// compare_claims for when each is recorded.
enum class Mismatch {
  kCodecdaMissing,
  kCodecdaDiffers,
  kCodecdaWithoutCda,
  kInsMissing,
  kInsONotQualified,
  kInsNButQualified,
  kInsWithoutCda,
  kSubjectWithoutXdm,
  kXdmWithoutSubject,
};
// Every mismatch, in the order above.
inline constexpr Mismatch kAllMismatches[] = {
    Mismatch::kCodecdaMissing, Mismatch::kCodecdaDiffers,    Mismatch::kCodecdaWithoutCda,
    Mismatch::kInsMissing,     Mismatch::kInsONotQualified,  Mismatch::kInsNButQualified,
    Mismatch::kInsWithoutCda,  Mismatch::kSubjectWithoutXdm, Mismatch::kXdmWithoutSubject};
std::string_view to_string(Mismatch mismatch);
std::optional<Mismatch> parse_mismatch(std::string_view word);

// What the indicators learn from one message: the MSSanté header claims and what the IHE_XDM
// archives hold, compared. Never a value from the content (no INS, no names): codes and flags.
struct MessageFacts {
  // The patient identity found in the CDA documents, the best one over all documents.
  enum class Ins {
    kAbsent,       // no CDA carries an INS
    kTest,         // only test or demo INS OIDs (.10, .11)
    kMalformed,    // a production INS (.8, .9) whose value is not a well-formed matricule
    kUnqualified,  // a production INS, well formed, without all four identity traits
    kQualified,    // a production INS with its four traits
  };

  bool inspected = true;             // false: "uninspectable", see reason
  std::string uninspectable_reason;  // first reason only: a short word
  MssHeaderClaims claims;
  std::string message_id;  // its "<left@right>" (the field's text when it has none)
  std::string from;        // the first address of the From header, lower-cased
  bool mdn = false;        // multipart/report; report-type=disposition-notification
  bool dsn = false;        // multipart/report; report-type=delivery-status
  // A report (a read receipt or a delivery status) about another message: the IHE_XDM archive
  // it may attach again is that message's, so the report counts no archive and no document.
  bool report() const { return mdn || dsn; }
  // What a report says of the original message, read from its message/delivery-status or
  // message/disposition-notification part (the first 8 KiB of it). Words only, and the ids.
  struct Acknowledgement {
    std::vector<std::string> actions;  // DSN: each recipient's Action (delivered, delayed,
                                       // failed, relayed, expanded; another word: "other")
    std::string disposition;           // MDN: displayed, processed, deleted, dispatched, denied,
                                       // failed, or "other"; empty when not read
    std::string original_message_id;   // MDN: Original-Message-ID; DSN: the Message-ID of
                                       // the header section it returns
    std::string original_envelope_id;  // DSN: Original-Envelope-Id
    bool integration_error = false;    // MDN whose Subject starts with "[KO"
  };
  Acknowledgement acknowledgement;
  size_t parts = 0;  // MIME leaf parts
  size_t xdm_archives = 0;
  std::vector<CdaFacts> documents;  // the CDA documents read in the archives
  size_t suspicious_names = 0;      // zip entries with absolute or ".." names
  Ins ins = Ins::kAbsent;
  bool test_ins_qualified = false;   // a test/demo INS with the four traits
  std::vector<Mismatch> mismatches;  // header claims the content contradicts, in order

  // The document type codes, one per document, in order.
  std::vector<std::string> codes() const;
};

std::string_view to_string(MessageFacts::Ins ins);

// An id as the reports name a message (a Message-ID, an envelope id) and as the journal keeps
// it, the same on both sides: the "<left@right>" of the value when it has one, else the value
// trimmed; empty unless printable ASCII without spaces, at most 250 bytes.
std::string report_id(std::string_view value);

// What one document's INS counts as: the rule of the message's best INS and of the reports.
MessageFacts::Ins ins_class(const CdaFacts& document);

// Reads a message as it streams by (the unstuffed DATA content, CRLF or bare LF lines), in
// pieces of any size, keeping only what it must: the header sections, one line, and the
// decoded bytes of a zip attachment up to `max_archive_bytes`. It walks the MIME tree (nested
// multiparts, base64 and quoted-printable decoded as they come), finds IHE_XDM archives by
// their name (IHE_XDM.ZIP in any case) or by an IHE_XDM/ folder inside a zip, and reads their
// CDA documents. Fed whole or one byte at a time, the result is the same.
//
// It never throws and never refuses a message: a part over a cap, malformed or hostile makes
// the message "uninspectable" with a reason, and the message goes on. Over its budget (the sum
// over all its archives), or when `interrupt` says so, it stops reading the message, which is
// then uninspectable with the budget's (or the interrupt's) reason.
class MessageInspector {
 public:
  explicit MessageInspector(const InspectorLimits& limits = {});
  ~MessageInspector();
  MessageInspector(MessageInspector&&) noexcept;
  MessageInspector& operator=(MessageInspector&&) noexcept;

  // Asked between steps (see InspectionMeter): the reader's CPU time, or that nobody waits.
  void set_interrupt(InspectionMeter::Interrupt interrupt);
  // The memory the archives being read take is taken from `memory`, which must outlive the
  // inspector; an archive that cannot have it makes the message uninspectable.
  void set_shared_memory(SharedMemory* memory);

  void feed(std::string_view bytes);
  // The message has ended: the facts, with the claims compared to the content.
  MessageFacts finish();
  // Nothing more of the message will be read (over a cap, or over the budget): feeding the rest
  // is not needed.
  bool stopped() const;

  // The most bytes held at any time (header sections, line, archive), for the memory bound.
  size_t peak_held_bytes() const;

 private:
  struct Walker;
  std::unique_ptr<Walker> walker_;
};

// Mismatch words (docs/indicators.md):
//   codecda_missing        CDA documents found, no X-MSS-CODECDA
//   codecda_differs        X-MSS-CODECDA does not list exactly the documents' codes
//   codecda_without_cda    X-MSS-CODECDA on a message without CDA in an IHE_XDM
//   ins_missing            CDA documents found, no (valid) X-MSS-INS
//   ins_o_not_qualified    X-MSS-INS: O but no qualified INS in the documents
//   ins_n_but_qualified    X-MSS-INS: N but a qualified INS is there
//   ins_without_cda        X-MSS-INS on a message without CDA in an IHE_XDM
//   subject_without_xdm    Subject XDM/1.0/DDM without an IHE_XDM archive
//   xdm_without_subject    an IHE_XDM archive without the XDM/1.0/DDM subject
// A report (MessageFacts::report) gets none: its headers and archive are the original's.
void compare_claims(MessageFacts& facts);

}  // namespace mssgate::protocol
