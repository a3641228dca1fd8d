#include "protocol/imap_response.hpp"

#include <cctype>

#include "protocol/ascii.hpp"

namespace mssgate::protocol {
namespace {

std::string_view next_word(std::string_view& rest) {
  size_t sp = rest.find(' ');
  std::string_view word = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  return word;
}

}  // namespace

std::optional<ImapResponseLine> parse_imap_response_line(std::string_view line) {
  ImapResponseLine r;
  std::string_view rest = line;
  std::string_view first = next_word(rest);
  if (first.empty()) return std::nullopt;
  if (first == "+") {
    r.kind = ImapResponseLine::Kind::kContinuation;
    r.text = std::string(rest);
    return r;
  }
  if (first == "*") {
    r.kind = ImapResponseLine::Kind::kUntagged;
  } else {
    r.kind = ImapResponseLine::Kind::kTagged;
    r.tag = std::string(first);
  }
  r.status = ascii_upper(next_word(rest));
  if (r.status.empty()) return std::nullopt;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view code = rest.substr(1, close - 1);
    std::string_view code_name = next_word(code);
    r.code = ascii_upper(code_name);
    r.code_args = std::string(code);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  r.text = std::string(rest);
  return r;
}

std::vector<std::string> split_capabilities(std::string_view list) {
  std::vector<std::string> caps;
  while (!list.empty()) {
    std::string_view word = next_word(list);
    if (!word.empty()) caps.emplace_back(word);
  }
  return caps;
}

std::string post_login_capabilities(const std::vector<std::string>& backend_capabilities) {
  std::string out;
  for (const auto& cap : backend_capabilities) {
    if (ascii_istarts_with(cap, "AUTH=") || ascii_istarts_with(cap, "STARTTLS") ||
        ascii_istarts_with(cap, "LOGINDISABLED") || ascii_istarts_with(cap, "SASL-IR")) {
      continue;
    }
    if (!out.empty()) out += ' ';
    out += cap;
  }
  return out;
}

std::string imap_quote(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace mssgate::protocol
