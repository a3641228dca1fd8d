#include "protocol/message_header.hpp"

#include <cctype>

#include "protocol/ascii.hpp"

namespace mssgate::protocol {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

HeaderSectionReader::Result HeaderSectionReader::feed(std::string_view content) {
  if (complete_) return {Status::kComplete, 0};
  if (too_large_) return {Status::kTooLarge, 0};
  for (size_t i = 0; i < content.size(); ++i) {
    char c = content[i];
    raw_ += c;
    if (c == '\n') {
      // An empty line ("\r\n" or "\n" right after the previous line end) ends the section.
      std::string_view r = raw_;
      if (r == "\n" || r == "\r\n" || r.ends_with("\n\n") || r.ends_with("\n\r\n")) {
        complete_ = true;
        return {Status::kComplete, i + 1};
      }
    }
    if (raw_.size() > max_bytes_) {
      too_large_ = true;
      return {Status::kTooLarge, i + 1};
    }
  }
  return {Status::kNeedMore, content.size()};
}

std::vector<HeaderField> HeaderSectionReader::fields() const {
  std::vector<HeaderField> out;
  std::string_view rest = raw_;
  std::string_view previous_ending;  // of the line before: a fold keeps it in the raw value
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    std::string_view ending = "\n";
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
      ending = "\r\n";
    }
    if (line.empty()) break;
    if ((line.front() == ' ' || line.front() == '\t') && !out.empty()) {
      out.back().value += ' ';
      out.back().value += trim(line);
      out.back().raw += previous_ending;
      out.back().raw += line;
    } else {
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) continue;  // not a field: ignored
      out.push_back({std::string(trim(line.substr(0, colon))),
                     std::string(trim(line.substr(colon + 1))),
                     std::string(line.substr(colon + 1))});
    }
    previous_ending = ending;
  }
  for (auto& field : out)
    field.value = std::string(trim(field.value));
  return out;
}

std::vector<std::string> HeaderSectionReader::values(std::string_view name) const {
  std::vector<std::string> out;
  for (auto& field : fields()) {
    if (ascii_iequals(field.name, name)) out.push_back(field.value);
  }
  return out;
}

std::string_view HeaderSectionReader::structure_problem() const {
  if (raw_.find('\0') != std::string::npos) return "nul";
  std::string_view rest = raw_;
  bool first = true;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return "bare_cr";
    if (line.empty()) break;
    bool continuation = line.front() == ' ' || line.front() == '\t';
    if (continuation && first) return "continuation_first";
    first = false;
    if (continuation) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return "not_a_field";
    std::string_view name = line.substr(0, colon);
    if (name.back() == ' ' || name.back() == '\t') return "spaced_field_name";
    for (char c : name) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7F) return "not_a_field";
    }
  }
  return {};
}

std::vector<std::string> extract_addresses(std::string_view value) {
  std::vector<std::string> out;
  std::string current;  // text of the current list element, comments and quotes removed
  std::string angle;
  bool in_angle = false, in_quotes = false, saw_angle = false;
  int comment_depth = 0;
  auto flush = [&] {
    std::string address = saw_angle ? angle : std::string(trim(current));
    if (!address.empty() && address.find('@') != std::string::npos)
      out.push_back(ascii_lower(trim(address)));
    current.clear();
    angle.clear();
    saw_angle = false;
  };
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (in_quotes) {
      if (c == '\\' && i + 1 < value.size()) {
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      }
      continue;  // display names do not count
    }
    if (comment_depth > 0) {
      if (c == '(') ++comment_depth;
      if (c == ')') --comment_depth;
      continue;
    }
    if (in_angle) {
      if (c == '>') {
        in_angle = false;
      } else {
        angle += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_quotes = true;
        break;
      case '(':
        comment_depth = 1;
        break;
      case '<':
        in_angle = true;
        saw_angle = true;
        angle.clear();
        break;
      case ',':
        flush();
        break;
      case ':':
        current.clear();  // a group's display name
        break;
      case ';':
        flush();
        break;
      default:
        current += c;
    }
  }
  flush();
  return out;
}

}  // namespace mssgate::protocol
