#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mssgate::storage {

// The JSON-lines indicator log as a file: one event per line, in seq order, only ever appended
// to. What a crash left at its end is repaired when it is opened: a last line without its line
// feed (a write cut short) is removed, and the seq of the last complete line says where the
// log resumes. So the log holds each event once, whenever the process was killed.
class IndicatorLogFile {
 public:
  // The end of the file, as found when it was opened.
  struct Tail {
    std::optional<int64_t> last_seq;  // the seq of its last event's line; none: no such line
    uint64_t truncated_bytes = 0;     // a last line without its line feed, removed
    bool unreadable = false;  // the last complete line is not an event's (last_seq: an earlier)
  };

  IndicatorLogFile() = default;
  ~IndicatorLogFile();
  IndicatorLogFile(const IndicatorLogFile&) = delete;
  IndicatorLogFile& operator=(const IndicatorLogFile&) = delete;

  // Opens the file for appending (creating it when missing) and repairs its end. Throws
  // StorageError, the file then closed.
  Tail open(const std::string& path);
  void close();
  bool is_open() const { return fd_ >= 0; }
  // Appends whole lines. False when not all of them could be written: the file may then end
  // with a part of a line, which the next open() removes.
  bool append(std::string_view lines);

 private:
  int fd_ = -1;
};

// The seq of a line of the indicator log ({"event":"indicator","seq":N,…}); none when the line
// is not one.
std::optional<int64_t> log_line_seq(std::string_view line);

}  // namespace mssgate::storage
