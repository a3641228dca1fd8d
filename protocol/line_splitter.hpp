#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// Splits a byte stream into CRLF-terminated lines with a cap on the line length.
// Bare LF is accepted as a line end too (some clients send it); the CR is stripped.
class LineSplitter {
 public:
  enum class Status { kNeedMore, kLine, kTooLong };
  struct Result {
    Status status;
    size_t consumed;  // bytes of the input used, including the line end
  };

  explicit LineSplitter(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Consumes bytes until a line is complete or the input is exhausted. After kLine, line()
  // holds the line without its terminator until the next call to feed().
  Result feed(std::string_view input);
  const std::string& line() const { return line_; }
  void reset();
  // As reset(), and the memory the line held is given back (no more lines will be read).
  void release();

 private:
  size_t max_line_bytes_;
  std::string line_;
  bool complete_ = false;
};

}  // namespace mssgate::protocol
