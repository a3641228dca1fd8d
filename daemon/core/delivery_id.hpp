#pragma once

#include <string>
#include <string_view>

namespace mssgate::core {

// The delivery id the LMTP tap gives a message, so that Dovecot can tell a delivery Postfix
// makes again (after a crash kept Dovecot's answer from it) from a new message: 32 lower-case
// hex digits, the first 128 bits of the SHA-256 of the message's header section as Postfix sent
// it. Postfix sends the same bytes each time it tries the same queue file, and its own Received
// field (queue id, time) and the message's Message-ID make two queue files differ.
std::string delivery_id(std::string_view header_section);

// The message's start as Dovecot gets it: `name: id` as its first field, then `held` (the header
// section, its first `header_bytes` bytes, and what followed it) without the fields named
// `name` (case-insensitive) that the message brought: nobody outside can give a delivery id.
std::string stamp_delivery_id(std::string_view held, size_t header_bytes, std::string_view name,
                              std::string_view id);

}  // namespace mssgate::core
