#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// Reads the client's DATA stream (RFC 5321 §4.5.2): removes the dot-stuffing and finds the
// terminating "<CRLF>.<CRLF>" wherever the reads split it. Only CRLF ends a line for the
// terminator; a bare LF never does.
class SmtpDataReader {
 public:
  struct Result {
    size_t consumed;  // input bytes used, the terminator included when complete
    bool complete;    // the terminator was read; the rest of the input is the next command
  };

  // Appends the message's bytes (unstuffed, without the terminator) to `content`.
  Result feed(std::string_view input, std::string& content);
  uint64_t size() const { return size_; }  // unstuffed message bytes so far
  void reset() { *this = SmtpDataReader(); }

 private:
  enum class State { kLineStart, kMidLine, kCr, kDot, kDotCr };
  State state_ = State::kLineStart;
  uint64_t size_ = 0;
};

// Writes a message for an SMTP server: bare LFs become CRLF (so that the server and the gateway
// agree on where lines, and the message, end), a dot starting a line is doubled, and finish()
// adds the terminator.
class SmtpDataWriter {
 public:
  // Without `stuff_dots`, lines are only ended with CRLF (a BDAT chunk's content).
  explicit SmtpDataWriter(bool stuff_dots = true) : stuff_dots_(stuff_dots) {}
  void encode(std::string_view content, std::string& out);
  // Ends the last line (CRLF) when it is not ended.
  void end_line(std::string& out);
  // end_line(), then the "." line.
  void finish(std::string& out);
  void reset() { *this = SmtpDataWriter(stuff_dots_); }

 private:
  bool stuff_dots_;
  bool at_line_start_ = true;
  bool after_cr_ = false;
};

}  // namespace mssgate::protocol
