#include "protocol/professional_id.hpp"

namespace mssgate::protocol {

std::optional<std::string> normalize_professional_id(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  if (text.size() == 11) return "8" + std::string(text);                   // RPPS
  if (text.size() == 12 && text.front() == '8') return std::string(text);  // 8 + RPPS
  if (text.size() == 9) return "0" + std::string(text);                    // ADELI
  if (text.size() == 10 && text.front() == '0') return std::string(text);  // 0 + ADELI
  return std::nullopt;
}

}  // namespace mssgate::protocol
