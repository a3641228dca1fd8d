#include "storage/indicator_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <system_error>

#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

// A last line longer than this is not read: no event's line comes near it.
constexpr off_t kMaxLineBytes = off_t{16} << 20;
constexpr off_t kChunkBytes = off_t{64} << 10;

[[noreturn]] void fail(const std::string& what, const std::string& path, int error) {
  throw StorageError(what + " the indicator log " + path + ": " +
                     std::system_category().message(error));
}

void read_at(int fd, char* out, size_t size, off_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pread(fd, out, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read", path, errno);
    if (n == 0) fail("cannot read", path, EIO);  // shorter than fstat said: changed meanwhile
    out += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

// The offset of the last line feed before `end`, or -1; looked for at most `limit` bytes back.
off_t last_line_feed(int fd, off_t end, off_t limit, const std::string& path) {
  std::string chunk;
  off_t floor = std::max<off_t>(0, end - limit);
  while (end > floor) {
    off_t start = std::max(floor, end - kChunkBytes);
    chunk.resize(static_cast<size_t>(end - start));
    read_at(fd, chunk.data(), chunk.size(), start, path);
    auto at = chunk.rfind('\n');
    if (at != std::string::npos) return start + static_cast<off_t>(at);
    end = start;
  }
  return -1;
}

}  // namespace

IndicatorLogFile::~IndicatorLogFile() {
  close();
}

void IndicatorLogFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

IndicatorLogFile::Tail IndicatorLogFile::open(const std::string& path) {
  close();
  // (Created as the earlier fopen(…, "a") did: the umask decides its mode.)
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) fail("cannot open", path, errno);
  Tail tail;
  try {
    struct stat status {};
    if (::fstat(fd, &status) != 0) fail("cannot read", path, errno);
    off_t size = status.st_size;
    // The whole file is looked through only when it has no line feed at all (a single partial
    // line): then everything goes.
    off_t last = last_line_feed(fd, size, size, path);
    off_t complete = last + 1;
    if (complete < size) {
      if (::ftruncate(fd, complete) != 0) fail("cannot truncate", path, errno);
      tail.truncated_bytes = static_cast<uint64_t>(size - complete);
    }
    // The last event's line: normally the last line. Lines that are not an event's (written
    // by another program) are passed over, as far as kMaxLineBytes back.
    for (off_t end = last; end >= 0 && !tail.last_seq && last - end <= kMaxLineBytes;) {
      off_t start = last_line_feed(fd, end, kMaxLineBytes, path) + 1;
      if (start == 0 && end > kMaxLineBytes) break;  // a line longer than any event's
      std::string line(static_cast<size_t>(end - start), '\0');
      read_at(fd, line.data(), line.size(), start, path);
      tail.last_seq = log_line_seq(line);
      if (!tail.last_seq) tail.unreadable = true;
      end = start - 1;
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  fd_ = fd;
  return tail;
}

bool IndicatorLogFile::append(std::string_view lines) {
  if (fd_ < 0) return false;
  while (!lines.empty()) {
    ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    lines.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::optional<int64_t> log_line_seq(std::string_view line) {
  boost::system::error_code error;
  boost::json::value value = boost::json::parse(line, error);
  if (error || !value.is_object()) return std::nullopt;
  const auto& object = value.get_object();
  const auto* event = object.if_contains("event");
  const auto* seq = object.if_contains("seq");
  if (!event || !event->is_string() || event->get_string() != "indicator") return std::nullopt;
  if (!seq || !seq->is_int64() || seq->get_int64() < 1) return std::nullopt;
  return seq->get_int64();
}

}  // namespace mssgate::storage
