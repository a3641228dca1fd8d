#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mssgate::protocol {

// One SMTP command line (RFC 5321 §4.1), without its CRLF.
struct SmtpCommand {
  std::string verb;      // upper-cased: EHLO, MAIL, RCPT, DATA, ...
  std::string argument;  // the rest of the line after one space, as sent
};
SmtpCommand parse_smtp_command(std::string_view line);

// The argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path> params").
struct SmtpPathArgument {
  std::string address;  // between the angle brackets; empty for the null path "<>"
  std::vector<std::pair<std::string, std::string>>
      parameters;              // keyword upper-cased, value as sent
  std::string parameter_text;  // the parameters as sent, for relaying
};

// `keyword` is "FROM" or "TO". Returns nullopt when the syntax is wrong.
std::optional<SmtpPathArgument> parse_path_argument(std::string_view argument,
                                                    std::string_view keyword);

// An EHLO argument RFC 5321 §4.1.1.1 allows: a domain (letters, digits and hyphens in labels
// of 1 to 63 characters, no hyphen at either end of a label, at most 255 characters) or an
// address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]").
bool ehlo_domain_or_address_literal(std::string_view argument);

// RFC 3461 xtext, used by XCLIENT and DSN parameters.
std::string xtext_encode(std::string_view value);
// Its decoding: "+" and two upper-case hexadecimal digits is that byte; nullopt when a "+" is
// not followed by two such digits, or for a byte xtext does not allow as it is (outside "!" to
// "~", or "=").
std::optional<std::string> xtext_decode(std::string_view value);

}  // namespace mssgate::protocol
