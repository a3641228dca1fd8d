#include "protocol/imap_response.hpp"

#include <cctype>

namespace mssgate::protocol {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string_view next_word(std::string_view& rest) {
  size_t sp = rest.find(' ');
  std::string_view word = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  return word;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
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
  r.status = upper(next_word(rest));
  if (r.status.empty()) return std::nullopt;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view code = rest.substr(1, close - 1);
    std::string_view code_name = next_word(code);
    r.code = upper(code_name);
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
    if (starts_with_ci(cap, "AUTH=") || starts_with_ci(cap, "STARTTLS") ||
        starts_with_ci(cap, "LOGINDISABLED") || starts_with_ci(cap, "SASL-IR")) {
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
