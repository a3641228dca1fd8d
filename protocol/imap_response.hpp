#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

// One response line from an IMAP server (RFC 3501 §7), without its CRLF.
struct ImapResponseLine {
  enum class Kind { kUntagged, kContinuation, kTagged };
  Kind kind = Kind::kUntagged;
  std::string tag;        // for kTagged
  std::string status;     // OK, NO, BAD, BYE, PREAUTH (upper-cased) or the untagged keyword
  std::string code;       // response code name inside [...], upper-cased, e.g. CAPABILITY
  std::string code_args;  // the rest of the response code
  std::string text;       // human-readable text after the code
};

std::optional<ImapResponseLine> parse_imap_response_line(std::string_view line);

// The capability list carried by "[CAPABILITY ...]" or "* CAPABILITY ...".
std::vector<std::string> split_capabilities(std::string_view list);

// Capabilities a client may see after login: authentication ones are the gateway's business.
std::string post_login_capabilities(const std::vector<std::string>& backend_capabilities);

// IMAP quoted string for a value the gateway sends (ID parameters). Characters that cannot be
// quoted (CR, LF, NUL) are dropped, quotes and backslashes escaped.
std::string imap_quote(std::string_view value);

}  // namespace mssgate::protocol
