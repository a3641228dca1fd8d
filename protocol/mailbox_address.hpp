#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// A mailbox address as the directory stores it: "local@domain", ASCII lower-cased, no spaces,
// no control characters, one "@", both parts non-empty, at most 254 bytes (RFC 5321 §4.5.3.1.3).
// Returns nullopt when the text is not such an address.
std::optional<std::string> normalize_mailbox_address(std::string_view text);

}  // namespace mssgate::protocol
