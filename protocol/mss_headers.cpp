#include "protocol/mss_headers.hpp"

#include <algorithm>

#include "protocol/ascii.hpp"

namespace mssgate::protocol {
namespace {

constexpr size_t kMaxNilBytes = 64;
constexpr size_t kMaxCodes = 50;
constexpr size_t kMaxCodeBytes = 64;

}  // namespace

MssHeaderClaims read_mss_headers(const HeaderSectionReader& headers) {
  return read_mss_headers(headers.fields());
}

MssHeaderClaims read_mss_headers(const std::vector<HeaderField>& fields) {
  MssHeaderClaims claims;
  bool fin_header = false;
  for (const auto& field : fields) {
    const std::string& name = field.name;
    if (ascii_iequals(name, "X-MSS-CODECDA")) {
      std::string_view rest = field.value;
      while (!rest.empty() && claims.cda_codes.size() < kMaxCodes) {
        size_t comma = rest.find(',');
        std::string code(trim_blanks(rest.substr(0, comma)));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (!printable_word(code, kMaxCodeBytes)) continue;
        if (std::find(claims.cda_codes.begin(), claims.cda_codes.end(), code) ==
            claims.cda_codes.end()) {
          claims.cda_codes.push_back(std::move(code));
        }
      }
    } else if (ascii_iequals(name, "X-MSS-INS")) {
      // (Field values come with their surrounding blanks removed.)
      const std::string& value = field.value;
      if (ascii_iequals(value, "O")) {
        claims.ins = true;
      } else if (ascii_iequals(value, "N")) {
        claims.ins = false;
      } else {
        claims.ins_invalid = true;
      }
    } else if (ascii_iequals(name, "X-MSS-NIL")) {
      if (printable_word(field.value, kMaxNilBytes)) claims.nil = field.value;
    } else if (ascii_iequals(name, "X-MSS-MES")) {
      fin_header = ascii_iequals(field.value, "FIN");
    } else if (ascii_iequals(name, "Subject")) {
      claims.xdm_subject = ascii_istarts_with(field.value, "XDM/1.0/DDM");
      claims.fin_subject = field.value == "[FIN]";
    } else if (ascii_iequals(name, "Disposition-Notification-To")) {
      claims.mdn_requested = true;
    }
  }
  claims.mes_fin = fin_header || claims.fin_subject;
  return claims;
}

}  // namespace mssgate::protocol
