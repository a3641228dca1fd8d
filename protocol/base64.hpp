#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

std::string base64_encode(std::string_view bytes);

// Strict RFC 4648 decoding: padding required, no whitespace, no characters outside the
// alphabet, non-canonical trailing bits refused. Returns nullopt on any violation.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace mssgate::protocol
