#pragma once

#include <cstdint>
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

// Follows the responses an IMAP server sends (RFC 3501 §7, literals included) as they are
// relayed, without keeping them: whether the bytes so far end a response, so that a line of the
// relay's own ("* BYE") may be written there, and whether the server said BYE itself. A literal
// is announced by "{n}" (or "{n+}", "~{n}") at the very end of a line; its n bytes are not read
// as lines.
class ImapResponseFraming {
 public:
  void feed(std::string_view bytes);
  // True when no response is under way: none was fed, or the last one ended with its CRLF.
  bool at_boundary() const { return state_ == State::kLineStart; }
  // The server sent an untagged BYE (the end of the session was its own).
  bool said_bye() const { return said_bye_; }

 private:
  enum class State { kLineStart, kInLine, kInLiteral };
  static constexpr size_t kKeptBytes = 24;  // of the line's end: "{" 20 digits "+}" CR fit
  void end_of_line();

  State state_ = State::kLineStart;
  uint64_t literal_left_ = 0;
  bool line_head_ = false;  // the bytes now read start a response (not after a literal)
  std::string head_;        // the response's first bytes, up to "* BYE "
  std::string tail_;        // the last bytes of the line read so far
  bool said_bye_ = false;
};

// IMAP quoted string for a value the gateway sends (ID parameters). Characters that cannot be
// quoted (CR, LF, NUL) are dropped, quotes and backslashes escaped.
std::string imap_quote(std::string_view value);

}  // namespace mssgate::protocol
