#include "protocol/line_splitter.hpp"

namespace mssgate::protocol {

void LineSplitter::reset() {
  line_.clear();
  complete_ = false;
}

void LineSplitter::release() {
  std::string().swap(line_);
  complete_ = false;
}

LineSplitter::Result LineSplitter::feed(std::string_view input) {
  if (complete_) reset();
  size_t i = 0;
  while (i < input.size()) {
    char c = input[i++];
    if (c == '\n') {
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      // The byte past the cap was allowed only as a CR; fed in pieces, the same line is refused
      // when the input ends on that byte.
      if (line_.size() > max_line_bytes_) return {Status::kTooLong, i};
      complete_ = true;
      return {Status::kLine, i};
    }
    // The cap counts the optional CR too, so that a line of exactly max bytes plus CRLF fits.
    if (line_.size() >= max_line_bytes_ + 1) return {Status::kTooLong, i};
    line_ += c;
  }
  if (line_.size() > max_line_bytes_ + 1 ||
      (line_.size() == max_line_bytes_ + 1 && line_.back() != '\r')) {
    return {Status::kTooLong, i};
  }
  return {Status::kNeedMore, i};
}

}  // namespace mssgate::protocol
