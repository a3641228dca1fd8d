#include "protocol/smtp_data.hpp"

namespace mssgate::protocol {

SmtpDataReader::Result SmtpDataReader::feed(std::string_view input, std::string& content) {
  size_t before = content.size();
  size_t i = 0;
  while (i < input.size()) {
    char c = input[i++];
    switch (state_) {
      case State::kLineStart:
        if (c == '.') {
          state_ = State::kDot;
          break;
        }
        content += c;
        state_ = c == '\r' ? State::kCr : State::kMidLine;
        break;
      case State::kMidLine:
        content += c;
        if (c == '\r') state_ = State::kCr;
        break;
      case State::kCr:
        content += c;
        state_ = c == '\n' ? State::kLineStart : c == '\r' ? State::kCr : State::kMidLine;
        break;
      case State::kDot:
        // A leading dot is removed: "..x" is ".x", and ".\r\n" ends the message.
        if (c == '\r') {
          state_ = State::kDotCr;
          break;
        }
        content += c;
        state_ = State::kMidLine;
        break;
      case State::kDotCr:
        if (c == '\n') {
          size_ += content.size() - before;
          state_ = State::kLineStart;
          return {i, true};
        }
        // ".\rX": the line was a stuffed dot followed by a bare CR.
        content += '\r';
        content += c;
        state_ = c == '\r' ? State::kCr : State::kMidLine;
        break;
    }
  }
  size_ += content.size() - before;
  return {i, false};
}

void SmtpDataWriter::encode(std::string_view content, std::string& out) {
  out.reserve(out.size() + content.size() + content.size() / 64);
  for (char c : content) {
    if (c == '\n' && !after_cr_) out += '\r';
    if (c == '.' && at_line_start_) out += '.';
    out += c;
    at_line_start_ = c == '\n';
    after_cr_ = c == '\r';
  }
}

void SmtpDataWriter::finish(std::string& out) {
  if (!at_line_start_) out += after_cr_ ? "\n" : "\r\n";
  out += ".\r\n";
  at_line_start_ = true;
  after_cr_ = false;
}

}  // namespace mssgate::protocol
