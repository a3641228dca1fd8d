#include "daemon/services/indicator_event.hpp"

#include <openssl/rand.h>

#include <algorithm>

#include "protocol/ascii.hpp"
#include "storage/clock.hpp"

namespace mssgate::daemon {

protocol::InspectorLimits inspector_limits(const config::IndicatorsConfig& config) {
  protocol::InspectorLimits limits;
  limits.max_archive_bytes = config.max_archive_bytes;
  limits.max_depth = config.max_mime_depth;
  limits.max_parts = config.max_mime_parts;
  limits.xdm.max_entries = config.max_zip_entries;
  limits.xdm.max_total_bytes = config.max_zip_total_bytes;
  limits.xdm.max_ratio = config.max_zip_ratio;
  limits.xdm.cda.max_bytes = config.max_xml_bytes;
  limits.xdm.cda.max_depth = config.max_xml_depth;
  limits.budget.max_inflated_bytes = config.max_message_inflated_bytes;
  limits.budget.max_xml_documents = config.max_message_xml_documents;
  limits.budget.max_xml_nodes = config.max_message_xml_nodes;
  return limits;
}

InspectionSettings inspection_settings(const config::IndicatorsConfig& config) {
  InspectionSettings settings;
  settings.limits = inspector_limits(config);
  settings.max_cpu_time = config.max_message_cpu_time;
  settings.queue_bytes = config.inspection_queue_bytes;
  return settings;
}

Counterpart counterpart_of(std::string_view address, const config::IndicatorsConfig& config,
                           const storage::DirectoryLookup& directory) {
  std::string lower = protocol::ascii_lower(address);
  auto at = lower.rfind('@');
  std::string domain = at == std::string::npos ? std::string() : lower.substr(at + 1);
  auto listed = [&](const std::vector<std::string>& domains) {
    return std::find(domains.begin(), domains.end(), domain) != domains.end();
  };
  if (listed(config.patient_domains)) return Counterpart::kPatient;
  if (listed(config.operator_domains)) return Counterpart::kSameOperator;
  auto found = directory.find_mailbox(lower);
  if (found.ok() && found.value) return Counterpart::kSameOperator;
  return Counterpart::kOtherOperator;
}

storage::RecordedMailboxType mailbox_type_of(const std::string& mailbox,
                                             const storage::DirectoryLookup& directory) {
  auto found = directory.find_mailbox(mailbox);
  if (!found.ok() || !found.value) return std::nullopt;
  return found.value->type;
}

namespace {

storage::ClaimedIns claimed_ins(const protocol::MssHeaderClaims& claims) {
  if (claims.ins_invalid) return storage::ClaimedIns::kInvalid;
  if (!claims.ins) return storage::ClaimedIns::kAbsent;
  return *claims.ins ? storage::ClaimedIns::kYes : storage::ClaimedIns::kNo;
}

}  // namespace

void fill_from_facts(storage::IndicatorEvent& event, const protocol::MessageFacts& facts) {
  using protocol::sanitized_text;
  // What the sender wrote reaches the journal capped and without control characters.
  event.nil = sanitized_text(facts.claims.nil, storage::kMaxNilBytes);
  event.message_id = sanitized_text(facts.message_id, storage::kMaxMessageIdBytes);
  event.inspected = facts.inspected;
  event.uninspectable_reason = facts.uninspectable_reason;
  event.xdm = facts.xdm_archives > 0;
  for (const auto& d : facts.documents) {
    event.documents.push_back({sanitized_text(d.code, storage::kMaxCodeBytes),
                               sanitized_text(d.code_system, storage::kMaxCodeBytes),
                               protocol::ins_class(d)});
  }
  event.ins = facts.ins;
  std::string codes;
  for (const auto& c : facts.claims.cda_codes)
    codes += (codes.empty() ? "" : ",") + sanitized_text(c, storage::kMaxCodeBytes);
  event.claim_codecda = codes;
  event.claim_ins = claimed_ins(facts.claims);
  event.claim_xdm_subject = facts.claims.xdm_subject;
  event.mismatches = facts.mismatches;
  event.mes_fin = facts.claims.mes_fin;
  event.mdn = facts.mdn;
  event.mdn_requested = facts.claims.mdn_requested;
  event.dsn = facts.dsn;
  const auto& ack = facts.acknowledgement;
  for (const auto& action : ack.actions)
    event.dsn_actions.push_back(
        storage::parse_dsn_action(action).value_or(storage::DsnAction::kOther));
  if (facts.mdn && !ack.disposition.empty())
    event.disposition =
        storage::parse_disposition(ack.disposition).value_or(storage::Disposition::kOther);
  event.integration_error = ack.integration_error;
  // The inspector keeps only ids of printable characters, at most 250 bytes.
  event.original_message_id = ack.original_message_id;
  event.original_envelope_id = ack.original_envelope_id;
}

storage::IndicatorEvent new_indicator_event(storage::Direction direction, std::string mailbox,
                                            const config::IndicatorsConfig& config) {
  storage::IndicatorEvent event;
  event.at_ms = storage::now_ms();
  event.day = storage::day_of(event.at_ms, config.utc_days);
  event.direction = direction;
  event.mailbox = std::move(mailbox);
  return event;
}

std::string random_key() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  return protocol::hex_lower({reinterpret_cast<const char*>(bytes), sizeof bytes});
}

}  // namespace mssgate::daemon
