#include "protocol/smtp_reply.hpp"

namespace mssgate::protocol {
namespace {

bool is_enhanced_code(std::string_view s) {
  // class "." subject "." detail, e.g. 2.1.0, 5.7.1, 4.4.2
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t dot = s.find('.', 2);
  if (dot == std::string_view::npos || dot == 2 || dot + 1 >= s.size()) return false;
  for (size_t i = 2; i < s.size(); ++i) {
    if (i != dot && (s[i] < '0' || s[i] > '9')) return false;
  }
  return true;
}

}  // namespace

SmtpReplyParser::Result SmtpReplyParser::feed(std::string_view input) {
  size_t used = 0;
  while (used < input.size()) {
    auto r = lines_.feed(input.substr(used));
    used += r.consumed;
    if (r.status == LineSplitter::Status::kNeedMore) break;
    if (r.status == LineSplitter::Status::kTooLong) return {Status::kError, used};
    const std::string& line = lines_.line();
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      building_ = {};
      return {Status::kError, used};
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!building_.lines.empty() && code != building_.code) {
      building_ = {};
      return {Status::kError, used};
    }
    building_.code = code;
    std::string_view text = line.size() > 4 ? std::string_view(line).substr(4) : std::string_view{};
    size_t space = text.find(' ');
    std::string_view first = text.substr(0, space);
    if (is_enhanced_code(first)) {
      building_.enhanced = std::string(first);
      text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
    }
    building_.lines.emplace_back(text);
    if (building_.lines.size() > max_lines_) {
      building_ = {};
      return {Status::kError, used};
    }
    if (line.size() == 3 || line[3] == ' ') {
      reply_ = std::move(building_);
      building_ = {};
      return {Status::kReply, used};
    }
  }
  return {Status::kNeedMore, used};
}

}  // namespace mssgate::protocol
