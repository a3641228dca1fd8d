#pragma once
// The fixed vocabulary of the indicator reports' columns (docs/indicators.md defines each):
// the report queries compute them, and the configuration check refuses any other name.

#include <string_view>
#include <vector>

namespace mssgate::storage {

// One row per mailbox that connected up to the end of the month.
inline const std::vector<std::string_view> kConnectionsFields{"month",
                                                              "mailbox",
                                                              "mailbox_type",
                                                              "last_connection",
                                                              "last_connection_time",
                                                              "auth_mode",
                                                              "auth_modes",
                                                              "protocols",
                                                              "connections",
                                                              "psc_connections",
                                                              "certificate_connections",
                                                              "imap_connections",
                                                              "submission_connections",
                                                              "days_connected",
                                                              "failed_sign_ins",
                                                              "failure_reasons",
                                                              "professionals",
                                                              "lps"};
inline const std::vector<std::string_view> kConnectionsDefault{"mailbox", "mailbox_type",
                                                               "last_connection", "auth_mode"};

// One row per mailbox with messages in the month.
inline const std::vector<std::string_view> kMessagesFields{"month",
                                                           "mailbox",
                                                           "mailbox_type",
                                                           "sent",
                                                           "received",
                                                           "sent_recipients",
                                                           "recipients_same_operator",
                                                           "recipients_other_operator",
                                                           "recipients_patient",
                                                           "sent_to_patient",
                                                           "received_from_same_operator",
                                                           "received_from_other_operator",
                                                           "received_from_patient",
                                                           "sent_with_xdm",
                                                           "received_with_xdm",
                                                           "sent_with_cda",
                                                           "received_with_cda",
                                                           "sent_documents",
                                                           "received_documents",
                                                           "sent_qualified_ins",
                                                           "received_qualified_ins",
                                                           "sent_unqualified_ins",
                                                           "received_unqualified_ins",
                                                           "sent_malformed_ins",
                                                           "received_malformed_ins",
                                                           "sent_test_ins",
                                                           "received_test_ins",
                                                           "sent_claimed_codecda",
                                                           "sent_claimed_ins_o",
                                                           "sent_claimed_ins_n",
                                                           "sent_with_mismatch",
                                                           "received_with_mismatch",
                                                           "sent_uninspectable",
                                                           "received_uninspectable",
                                                           "sent_mes_fin",
                                                           "sent_mdn",
                                                           "received_mdn",
                                                           "sent_bytes",
                                                           "received_bytes",
                                                           "nil",
                                                           "azp"};
inline const std::vector<std::string_view> kMessagesDefault{"mailbox",
                                                            "mailbox_type",
                                                            "sent",
                                                            "received",
                                                            "recipients_patient",
                                                            "sent_with_xdm",
                                                            "sent_with_cda",
                                                            "sent_qualified_ins",
                                                            "sent_with_mismatch",
                                                            "received_with_xdm",
                                                            "received_qualified_ins",
                                                            "sent_mes_fin",
                                                            "sent_mdn",
                                                            "nil"};

// One row per mailbox, direction and document type code.
inline const std::vector<std::string_view> kDocumentsFields{
    "month",     "mailbox",       "mailbox_type",    "direction",     "code",    "code_system",
    "documents", "qualified_ins", "unqualified_ins", "malformed_ins", "test_ins"};
inline const std::vector<std::string_view> kDocumentsDefault{
    "mailbox", "mailbox_type", "direction", "code", "code_system", "documents", "qualified_ins"};

// The console's month, one row per day over every mailbox.
inline const std::vector<std::string_view> kDaysOfMonthFields{"day",
                                                              "sent",
                                                              "received",
                                                              "sent_with_xdm",
                                                              "received_with_xdm",
                                                              "sent_with_cda",
                                                              "received_with_cda",
                                                              "sent_qualified_ins",
                                                              "received_qualified_ins",
                                                              "sent_malformed_ins",
                                                              "sent_with_mismatch",
                                                              "sent_mes_fin",
                                                              "sent_mdn",
                                                              "received_mdn"};

// One row per LPS (X-MSS-NIL and the token's client id) over the messages sent.
inline const std::vector<std::string_view> kLpsFields{"month",
                                                      "nil",
                                                      "azp",
                                                      "sent",
                                                      "mailboxes",
                                                      "sent_without_nil",
                                                      "sent_with_xdm",
                                                      "sent_with_cda",
                                                      "sent_documents",
                                                      "sent_qualified_ins",
                                                      "sent_unqualified_ins",
                                                      "sent_malformed_ins",
                                                      "sent_test_ins",
                                                      "sent_with_mismatch",
                                                      "sent_uninspectable",
                                                      "sent_mdn",
                                                      "sent_bytes",
                                                      "mismatch_codecda_missing",
                                                      "mismatch_codecda_differs",
                                                      "mismatch_codecda_without_cda",
                                                      "mismatch_ins_missing",
                                                      "mismatch_ins_o_not_qualified",
                                                      "mismatch_ins_n_but_qualified",
                                                      "mismatch_ins_without_cda",
                                                      "mismatch_subject_without_xdm",
                                                      "mismatch_xdm_without_subject"};
// One row per mailbox and day: the messages the mailbox sent that day and the reports (DSN,
// MDN) that came back for them, whenever they came; and the reports it received that day for
// no message the journal holds (unmatched_reports). Delays are in seconds from the sending.
// "relayed": handed to a server that sends no delivery notices itself (Postfix says so of an
// LMTP store without DSN, as Dovecot's, and of another operator's server without DSN).
inline const std::vector<std::string_view> kAcknowledgementsFields{"month",
                                                                   "day",
                                                                   "mailbox",
                                                                   "mailbox_type",
                                                                   "sent",
                                                                   "acknowledged",
                                                                   "delivered",
                                                                   "delayed",
                                                                   "failed",
                                                                   "relayed",
                                                                   "displayed",
                                                                   "processed",
                                                                   "deleted",
                                                                   "denied",
                                                                   "integration_errors",
                                                                   "unmatched_reports",
                                                                   "delivered_p50_s",
                                                                   "delivered_p90_s",
                                                                   "relayed_p50_s",
                                                                   "relayed_p90_s",
                                                                   "failed_p50_s",
                                                                   "failed_p90_s",
                                                                   "displayed_p50_s",
                                                                   "displayed_p90_s",
                                                                   "processed_p50_s",
                                                                   "processed_p90_s"};
inline const std::vector<std::string_view> kAcknowledgementsDefault{"day",
                                                                    "mailbox",
                                                                    "mailbox_type",
                                                                    "sent",
                                                                    "acknowledged",
                                                                    "delivered",
                                                                    "relayed",
                                                                    "delayed",
                                                                    "failed",
                                                                    "displayed",
                                                                    "processed",
                                                                    "integration_errors",
                                                                    "unmatched_reports",
                                                                    "delivered_p50_s",
                                                                    "delivered_p90_s",
                                                                    "relayed_p50_s",
                                                                    "relayed_p90_s",
                                                                    "displayed_p50_s",
                                                                    "displayed_p90_s"};

// The per-LPS report's file, when exported (its name is not configurable).
inline constexpr std::string_view kLpsFileName = "lps-{month}.{format}";
// The per-LPS report prints every column but the month, which its heading names.
inline const std::vector<std::string_view> kLpsDefault{kLpsFields.begin() + 1, kLpsFields.end()};

}  // namespace mssgate::storage
