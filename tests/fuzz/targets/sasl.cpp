// Fuzz target "sasl": the client's SASL messages, EXTERNAL, XOAUTH2 and OAUTHBEARER, as they come
// on the wire (base64) and as what they decode to (the input base64-encoded first), and the
// exchange that reads them (core::SaslExchange). What a decoder accepts is a bearer token of
// RFC 6750's alphabet and a printable mailbox, which read back the same once written again; an
// EXTERNAL authorization identity is printable UTF-8 within its cap; a mailbox name that
// normalizes is an address, and normalizing it again changes nothing.
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/core/sasl_exchange.hpp"
#include "protocol/base64.hpp"
#include "protocol/display_text.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/sasl_external.hpp"
#include "protocol/sasl_oauth.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::OAuthCredentials;

bool printable(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// No C1 control (U+0080 to U+009F, C2 80 to C2 9F in UTF-8).
bool no_c1(std::string_view s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0)
      return false;
  }
  return true;
}

bool bearer_alphabet(std::string_view token) {
  if (token.empty() || token.size() > 16384) return false;
  for (char c : token) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
    if (!ok) return false;
  }
  return token.front() != '=';
}

void check_mailbox(std::string_view text) {
  auto mailbox = mssgate::protocol::normalize_mailbox_address(text);
  if (!mailbox) return;
  check(mailbox->size() <= 254 && mailbox->find('@') != std::string::npos &&
            mailbox->find('@') == mailbox->rfind('@') && printable(*mailbox) &&
            mailbox->find(' ') == std::string::npos,
        "sasl: a normalized mailbox is one address");
  check(mssgate::protocol::normalize_mailbox_address(*mailbox) == mailbox,
        "sasl: normalizing a mailbox twice changes nothing");
}

void check_oauth(std::string_view wire) {
  using mssgate::protocol::base64_encode;
  auto xoauth2 = mssgate::protocol::decode_xoauth2(wire);
  if (auto* c = std::get_if<OAuthCredentials>(&xoauth2)) {
    check(bearer_alphabet(c->token) && !c->user.empty() && printable(c->user),
          "sasl: XOAUTH2 gives a bearer token and a printable user");
    auto again = mssgate::protocol::decode_xoauth2(
        base64_encode("user=" + c->user + "\x01" + "auth=Bearer " + c->token + "\x01\x01"));
    auto* same = std::get_if<OAuthCredentials>(&again);
    check(same && same->user == c->user && same->token == c->token,
          "sasl: XOAUTH2 credentials read back");
    check_mailbox(c->user);
  }
  auto bearer = mssgate::protocol::decode_oauthbearer(wire);
  if (auto* c = std::get_if<OAuthCredentials>(&bearer)) {
    check(bearer_alphabet(c->token) && printable(c->user),
          "sasl: OAUTHBEARER gives a bearer token and a printable user");
    check_mailbox(c->user);
  }
}

void check_external(std::string_view wire) {
  auto external = mssgate::protocol::decode_sasl_external(wire);
  if (auto* request = std::get_if<mssgate::protocol::SaslExternalRequest>(&external)) {
    check(request->authzid.size() <= mssgate::protocol::kMaxAuthzidBytes &&
              printable(request->authzid) && no_c1(request->authzid) &&
              mssgate::protocol::valid_utf8(request->authzid),
          "sasl: an EXTERNAL authzid is printable UTF-8 within its cap");
    check_mailbox(request->authzid);
  }
}

std::vector<std::string_view> lines_of(std::string_view input) {
  std::vector<std::string_view> lines;
  while (!input.empty() && lines.size() < 16) {
    size_t end = input.find('\n');
    std::string_view line = input.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    input.remove_prefix(end + 1);
  }
  return lines;
}

// An exchange: the mechanism on the first line, an initial response on the second, the answers
// to challenges after; every sign-in refused as unknown, so that tokens get their error challenge.
void check_exchange(std::string_view input) {
  auto lines = lines_of(input);
  if (lines.empty()) return;
  using mssgate::core::SaslExchange;
  SaslExchange exchange(lines[0], true);
  size_t next = 1;
  std::optional<std::string> initial;
  if (lines.size() > 1 && !lines[1].empty()) initial = std::string(lines[next++]);
  auto step = exchange.start(initial);
  for (int i = 0; i < 8 && step != SaslExchange::Step::kDone; ++i) {
    if (step == SaslExchange::Step::kChallenge) {
      step = exchange.on_response(next < lines.size() ? lines[next++] : "*");
    } else {
      const auto* token = std::get_if<OAuthCredentials>(&exchange.credentials());
      check(!exchange.token_mechanism() || (token && bearer_alphabet(token->token)),
            "sasl: a token mechanism asks about a token");
      step = exchange.on_verdict(
          {mssgate::core::SignInFailure::kAuthenticationFailed, "unknown", "", ""});
    }
  }
  check(step == SaslExchange::Step::kDone, "sasl: an exchange ends");
  check(exchange.outcome().failure.has_value(), "sasl: a refused sign-in stays refused");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  std::string encoded = mssgate::protocol::base64_encode(input);
  for (std::string_view wire : {input, std::string_view(encoded)}) {
    check_oauth(wire);
    check_external(wire);
  }
  check_mailbox(input);
  check_exchange(input);
  return 0;
}
