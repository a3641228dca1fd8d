#include "daemon/services/indicator_event.hpp"

#include <openssl/rand.h>

#include <algorithm>

#include "protocol/ascii.hpp"

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
  return limits;
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
  return "other_operator";
}

Counterpart counterpart_of(std::string_view address, const config::IndicatorsConfig& config,
                           storage::DirectoryStore& directory) {
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

std::string mailbox_type_of(const std::string& mailbox, storage::DirectoryStore& directory) {
  auto found = directory.find_mailbox(mailbox);
  if (!found.ok() || !found.value) return "unknown";
  return std::string(protocol::to_string(found.value->type));
}

void fill_from_facts(storage::IndicatorEvent& event, const protocol::MessageFacts& facts) {
  event.nil = facts.claims.nil;
  event.message_id = facts.message_id;
  event.inspected = facts.inspected;
  event.uninspectable_reason = facts.uninspectable_reason;
  event.xdm = facts.xdm_archives > 0;
  for (const auto& d : facts.documents) {
    event.documents.push_back(
        {d.code, d.code_system, std::string(protocol::to_string(protocol::ins_class(d)))});
  }
  event.ins = std::string(protocol::to_string(facts.ins));
  std::string codes;
  for (const auto& c : facts.claims.cda_codes)
    codes += (codes.empty() ? "" : ",") + c;
  event.claim_codecda = codes;
  if (facts.claims.ins_invalid) {
    event.claim_ins = "invalid";
  } else if (facts.claims.ins) {
    event.claim_ins = *facts.claims.ins ? "O" : "N";
  }
  event.claim_xdm_subject = facts.claims.xdm_subject;
  event.mismatches = facts.mismatches;
  event.mes_fin = facts.claims.mes_fin;
  event.mdn = facts.mdn;
  event.mdn_requested = facts.claims.mdn_requested;
}

storage::IndicatorEvent new_indicator_event(std::string direction, std::string mailbox,
                                            const config::IndicatorsConfig& config) {
  storage::IndicatorEvent event;
  event.at_ms = storage::now_ms();
  event.day = storage::day_of(event.at_ms, config.utc_days);
  event.direction = std::move(direction);
  event.mailbox = std::move(mailbox);
  return event;
}

std::string random_key() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  return protocol::hex_lower({reinterpret_cast<const char*>(bytes), sizeof bytes});
}

}  // namespace mssgate::daemon
