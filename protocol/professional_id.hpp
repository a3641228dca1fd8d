#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// A professional's national identifier (idNat): "8" + RPPS (11 digits) or "0" + ADELI
// (9 digits). Accepts the bare RPPS or ADELI too, and returns the idNat form; nullopt otherwise.
std::optional<std::string> normalize_professional_id(std::string_view text);

}  // namespace mssgate::protocol
