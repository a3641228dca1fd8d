#include "protocol/smtp_data.hpp"

#include <cstring>

namespace mssgate::protocol {
namespace {

// Where `c` next occurs in `bytes` from `from`; npos when it does not.
size_t find_byte(std::string_view bytes, size_t from, char c) {
  const void* found = std::memchr(bytes.data() + from, c, bytes.size() - from);
  return found ? static_cast<size_t>(static_cast<const char*>(found) - bytes.data())
               : std::string_view::npos;
}

}  // namespace

// A line's bytes are copied a run at a time, up to its next CR: only a CR, and a dot or a LF
// right after a line's start or a CR, change what is done with the bytes that follow. A state
// that leaves a byte to the next state does not consume it.
SmtpDataReader::Result SmtpDataReader::feed(std::string_view input, std::string& content) {
  size_t before = content.size();
  size_t i = 0;
  while (i < input.size()) {
    switch (state_) {
      case State::kMidLine: {
        size_t cr = find_byte(input, i, '\r');
        size_t end = cr == std::string_view::npos ? input.size() : cr + 1;
        content.append(input.data() + i, end - i);
        i = end;
        if (cr != std::string_view::npos) state_ = State::kCr;
        break;
      }
      case State::kLineStart:
        if (input[i] == '.') {
          ++i;
          state_ = State::kDot;
        } else {
          state_ = State::kMidLine;
        }
        break;
      case State::kCr:
        if (input[i] == '\n') {
          content += '\n';
          ++i;
          state_ = State::kLineStart;
        } else {
          state_ = State::kMidLine;
        }
        break;
      case State::kDot:
        // A leading dot is removed: "..x" is ".x", and ".\r\n" ends the message.
        if (input[i] == '\r') {
          ++i;
          state_ = State::kDotCr;
        } else {
          state_ = State::kMidLine;
        }
        break;
      case State::kDotCr:
        if (input[i] == '\n') {
          ++i;
          size_ += content.size() - before;
          state_ = State::kLineStart;
          return {i, true};
        }
        // ".\rX": the line was a stuffed dot followed by a bare CR.
        content += '\r';
        state_ = State::kCr;
        break;
    }
  }
  size_ += content.size() - before;
  return {i, false};
}

// A line is copied whole, up to its LF: only a dot that starts a line, and a LF without its CR,
// add a byte.
void SmtpDataWriter::encode(std::string_view content, std::string& out) {
  out.reserve(out.size() + content.size() + content.size() / 64);
  size_t i = 0;
  while (i < content.size()) {
    if (stuff_dots_ && at_line_start_ && content[i] == '.') out += '.';
    size_t lf = find_byte(content, i, '\n');
    size_t end = lf == std::string_view::npos ? content.size() : lf;
    if (end > i) {
      out.append(content.data() + i, end - i);
      at_line_start_ = false;
      after_cr_ = content[end - 1] == '\r';
    }
    if (lf == std::string_view::npos) break;
    if (!after_cr_) out += '\r';
    out += '\n';
    at_line_start_ = true;
    after_cr_ = false;
    i = lf + 1;
  }
}

void SmtpDataWriter::end_line(std::string& out) {
  if (!at_line_start_) out += after_cr_ ? "\n" : "\r\n";
  at_line_start_ = true;
  after_cr_ = false;
}

void SmtpDataWriter::finish(std::string& out) {
  end_line(out);
  out += ".\r\n";
}

}  // namespace mssgate::protocol
