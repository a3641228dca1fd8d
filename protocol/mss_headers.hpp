#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocol/message_header.hpp"

namespace mssgate::protocol {

// What a message's MSSanté headers claim (Référentiel #2 §3.8, ECO.2.4.x), to be compared with
// what the attachments hold.
struct MssHeaderClaims {
  std::vector<std::string> cda_codes;  // X-MSS-CODECDA, comma-separated, in order, without repeats
  std::optional<bool> ins;             // X-MSS-INS: "O" true, "N" false
  bool ins_invalid = false;            // X-MSS-INS present with another value
  std::string nil;                     // X-MSS-NIL, the LPS product reference (printable, ≤ 64)
  // The end of an exchange with a patient (no reply from their Mon Espace Santé): X-MSS-MES: FIN,
  // or a Subject that is exactly "[FIN]" (the patient messaging's own marker).
  bool mes_fin = false;
  bool fin_subject = false;    // the Subject is exactly "[FIN]"
  bool xdm_subject = false;    // Subject starts with "XDM/1.0/DDM"
  bool mdn_requested = false;  // Disposition-Notification-To is present
};

MssHeaderClaims read_mss_headers(const HeaderSectionReader& headers);
MssHeaderClaims read_mss_headers(const std::vector<HeaderField>& fields);

}  // namespace mssgate::protocol
