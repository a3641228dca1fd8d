#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/line_splitter.hpp"

namespace mssgate::protocol {

// A complete SMTP reply (RFC 5321 §4.2), possibly multi-line.
struct SmtpReply {
  int code = 0;
  std::string enhanced;            // "2.1.0" when the server sends RFC 3463 codes, else empty
  std::vector<std::string> lines;  // the text of each line, after the code (and enhanced code)

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
};

// Incremental reader of server replies, for the backend side.
class SmtpReplyParser {
 public:
  enum class Status { kNeedMore, kReply, kError };
  struct Result {
    Status status;
    size_t consumed;
  };

  explicit SmtpReplyParser(size_t max_line_bytes = 4096, size_t max_lines = 100)
      : lines_(max_line_bytes), max_lines_(max_lines) {}

  Result feed(std::string_view input);
  const SmtpReply& reply() const { return reply_; }

 private:
  LineSplitter lines_;
  size_t max_lines_;
  SmtpReply building_;
  SmtpReply reply_;
};

}  // namespace mssgate::protocol
