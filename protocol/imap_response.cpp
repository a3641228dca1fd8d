#include "protocol/imap_response.hpp"

#include <algorithm>
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

void ImapResponseFraming::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    if (state_ == State::kInLiteral) {
      auto take = static_cast<size_t>(std::min<uint64_t>(literal_left_, bytes.size()));
      literal_left_ -= take;
      bytes.remove_prefix(take);
      if (literal_left_ == 0) state_ = State::kInLine;  // the line goes on after the literal
      continue;
    }
    if (state_ == State::kLineStart) {
      state_ = State::kInLine;
      line_head_ = true;
      head_.clear();
      tail_.clear();
    }
    size_t end = bytes.find('\n');
    std::string_view part = bytes.substr(0, end);
    if (line_head_ && head_.size() < 6) head_.append(part.substr(0, 6 - head_.size()));
    tail_.append(part.substr(part.size() > kKeptBytes ? part.size() - kKeptBytes : 0));
    if (tail_.size() > kKeptBytes) tail_.erase(0, tail_.size() - kKeptBytes);
    if (end == std::string_view::npos) return;
    bytes.remove_prefix(end + 1);
    end_of_line();
  }
}

// A line ended (its LF read): either it announced a literal, or the response is complete.
void ImapResponseFraming::end_of_line() {
  std::string_view line = tail_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.empty() && line.back() == '}') {
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '+') line.remove_suffix(1);
    size_t digits = 0;
    while (digits < line.size() &&
           std::isdigit(static_cast<unsigned char>(line[line.size() - 1 - digits])))
      ++digits;
    if (digits > 0 && digits <= 19 && digits < line.size() &&
        line[line.size() - 1 - digits] == '{') {
      literal_left_ = std::stoull(std::string(line.substr(line.size() - digits)));
      state_ = literal_left_ > 0 ? State::kInLiteral : State::kInLine;
      line_head_ = false;
      tail_.clear();
      return;
    }
  }
  if (line_head_ && head_.size() >= 5 &&
      ascii_iequals(std::string_view(head_).substr(0, 5), "* BYE") &&
      (head_.size() == 5 || head_[5] == ' ' || head_[5] == '\r'))
    said_bye_ = true;
  state_ = State::kLineStart;
}

}  // namespace mssgate::protocol
