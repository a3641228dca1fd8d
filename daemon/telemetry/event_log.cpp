#include "daemon/telemetry/event_log.hpp"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

// The length of the well-formed UTF-8 sequence (RFC 3629) at the start of `text`, whose first
// byte is 0x80 or above; 0 when there is none (a stray continuation byte, an overlong form, a
// surrogate, a code point past U+10FFFF, a sequence cut short).
size_t utf8_sequence_length(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  size_t length = lead >= 0xc2 && lead <= 0xdf   ? 2
                  : lead >= 0xe0 && lead <= 0xef ? 3
                  : lead >= 0xf0 && lead <= 0xf4 ? 4
                                                 : 0;
  if (length == 0 || text.size() < length) return 0;
  unsigned char low = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
  unsigned char high = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
  if (byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return length;
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (size_t i = 0; i < value.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(value[i]);
    if (u <= 0x20 || u == 0x7f || value[i] == '"' || value[i] == '=' || value[i] == '\\')
      return true;
    if (u >= 0x80) {
      size_t length = utf8_sequence_length(value.substr(i));
      if (length == 0) return true;
      i += length - 1;
    }
  }
  return false;
}

// A value as it is written: as it is when it needs no quotes; otherwise quoted, with quotes and
// backslashes escaped, and control characters and bytes that are not UTF-8 written as \xNN,
// so that every line is valid UTF-8 whatever a peer sent.
void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    unsigned char u = static_cast<unsigned char>(c);
    size_t length = u >= 0x80 ? utf8_sequence_length(value.substr(i)) : 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f || length == 0) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out.append(value.substr(i, length));
      i += length - 1;
    }
  }
  out += '"';
}

// The fields of an event line that tell repeats apart: all but the event name, the session's
// own (session, peer) and numbers (durations, sizes), values cut at 200 bytes. Only warnings
// and errors need it.
}  // namespace

std::string event_repeat_key(std::string_view line) {
  std::string key;
  size_t i = line.find(' ');  // after "event=NAME"
  while (i != std::string_view::npos && i < line.size()) {
    size_t start = i + 1;
    size_t equals = line.find('=', start);
    if (equals == std::string_view::npos) break;
    size_t end = equals + 1;
    if (end < line.size() && line[end] == '"') {  // quoted: up to the unescaped closing quote
      for (++end; end < line.size() && line[end] != '"'; ++end)
        if (line[end] == '\\') ++end;
      if (end < line.size()) ++end;
    } else {
      end = line.find(' ', end);
      if (end == std::string_view::npos) end = line.size();
    }
    std::string_view name = line.substr(start, equals - start);
    std::string_view value = line.substr(equals + 1, end - equals - 1);
    bool number =
        !value.empty() && value.find_first_not_of("-0123456789") == std::string_view::npos;
    if (name != "session" && name != "peer" && !number) {
      if (!key.empty()) key += ' ';
      key.append(line.substr(start, std::min<size_t>(end - start, name.size() + 1 + 200)));
    }
    i = end < line.size() ? end : std::string_view::npos;
  }
  return key;
}

namespace {

// Standard output or a file, which can be reopened (log rotation) or switched to another
// file on a reload without replacing the logger that threads are writing through.
class ReopenableSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Where the lines go while no file is open; standard output when null.
  explicit ReopenableSink(std::shared_ptr<ReopenableSink> fallback = nullptr)
      : fallback_(std::move(fallback)) {}

  ~ReopenableSink() override { close_file(fd_); }

  // A descriptor for `path` (standard output when empty), to hand to switch_to(). Throws when
  // the file cannot be opened.
  static int open_file(const std::string& path) {
    if (path.empty()) return STDOUT_FILENO;
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
      throw std::runtime_error("cannot open log file " + path + ": " + std::strerror(errno));
    return fd;
  }
  static void close_file(int fd) {
    if (fd > 2) ::close(fd);
  }

  // From now on, lines go to `fd`, opened from `path` by open_file().
  void switch_to(int fd, const std::string& path) {
    std::lock_guard lock(mutex_);
    close_file(fd_);
    fd_ = fd;
    path_ = path;
  }
  // Throws when the file cannot be opened; the sink then keeps writing where it did.
  void open(const std::string& path) { switch_to(open_file(path), path); }
  void reopen() {
    std::string path;
    {
      std::lock_guard lock(mutex_);
      path = path_;
    }
    if (!path.empty()) open(path);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    if (path_.empty() && fallback_) {
      fallback_->write_line(formatted.data(), formatted.size());
      return;
    }
    write_bytes(formatted.data(), formatted.size());
  }
  void flush_() override {}

  void write_line(const char* data, size_t size) {
    std::lock_guard lock(mutex_);
    write_bytes(data, size);
  }

 private:
  void write_bytes(const char* data, size_t left) {
    while (left > 0) {
      ssize_t n = ::write(fd_, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere to say it
      data += n;
      left -= static_cast<size_t>(n);
    }
  }

  int fd_ = STDOUT_FILENO;
  std::string path_;
  std::shared_ptr<ReopenableSink> fallback_;
};

// Counts repeated warnings and errors (same event name and fields) per window.
class RepeatLimiter {
 public:
  void configure(unsigned limit, std::chrono::milliseconds window) {
    std::lock_guard lock(mutex_);
    limit_ = limit;
    window_ = window;
  }

  // Whether this occurrence is written.
  bool admit(std::string_view name, std::string_view fields) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    std::pair<std::string, std::string> key{std::string(name), std::string(fields)};
    if (repeats_.size() >= kMaxKeys && !repeats_.count(key)) {
      forget_ended(now);
      // Thousands of different warnings in one window: written, not tracked, so that memory
      // stays bounded whatever a peer makes the gateway say.
      if (repeats_.size() >= kMaxKeys) return true;
    }
    auto& entry = repeats_[std::move(key)];
    if (entry.count == 0 || now - entry.window_start >= window_) {
      if (entry.suppressed)
        ended_.push_back({std::string(name), std::string(fields), entry.suppressed});
      entry = {now, 0, 0};
    }
    if (++entry.count <= limit_) return true;
    ++entry.suppressed;
    return false;
  }

  struct Summary {
    std::string name, fields;
    uint64_t suppressed;
  };
  // The summaries of the windows that ended.
  std::vector<Summary> take_ended() {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    forget_ended(now);
    return std::exchange(ended_, {});
  }

  std::chrono::milliseconds window() const { return window_; }

 private:
  static constexpr size_t kMaxKeys = 4096;
  struct Entry {
    std::chrono::steady_clock::time_point window_start;
    uint64_t count = 0;
    uint64_t suppressed = 0;
  };
  void forget_ended(std::chrono::steady_clock::time_point now) {
    for (auto it = repeats_.begin(); it != repeats_.end();) {
      if (now - it->second.window_start >= window_) {
        if (it->second.suppressed)
          ended_.push_back({it->first.first, it->first.second, it->second.suppressed});
        it = repeats_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::mutex mutex_;
  unsigned limit_ = 10;
  std::chrono::milliseconds window_ = std::chrono::minutes(1);
  std::map<std::pair<std::string, std::string>, Entry> repeats_;
  std::vector<Summary> ended_;
};

// The main log and the audit trail; the audit sink writes to the main log until it is given
// a file of its own. Sinks write each line with one write(2), unbuffered: the journal and the
// tests see it at once and a crash loses nothing.
struct Logs {
  std::shared_ptr<ReopenableSink> main_sink = std::make_shared<ReopenableSink>();
  std::shared_ptr<ReopenableSink> audit_sink = std::make_shared<ReopenableSink>(main_sink);
  std::shared_ptr<spdlog::logger> main;
  std::shared_ptr<spdlog::logger> audit;
  RepeatLimiter repeats;
  std::mutex configure_mutex;

  Logs() {
    main = std::make_shared<spdlog::logger>("mssgate", main_sink);
    main->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    audit = std::make_shared<spdlog::logger>("audit", audit_sink);
    audit->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    audit->set_level(spdlog::level::trace);
    spdlog::set_default_logger(main);
  }
};

Logs& logs() {
  static Logs instance;
  return instance;
}

}  // namespace

Event::Event(std::string_view name) : name_length_(name.size()) {
  line_.reserve(160);
  line_ += "event=";
  line_ += name;
}

Event& Event::add(std::string_view key, std::string_view value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  append_value(line_, value);
  return *this;
}

Event& Event::add(std::string_view key, int64_t value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  line_ += std::to_string(value);
  return *this;
}

Event& Event::add(std::string_view key, uint64_t value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  line_ += std::to_string(value);
  return *this;
}

void Event::emit(spdlog::level::level_enum level) const {
  Logs& l = logs();
  if (audit_) {
    l.audit->log(level, "{}", line_);
    return;
  }
  if (!l.main->should_log(level)) return;
  if (level >= spdlog::level::warn && !l.repeats.admit(name(), event_repeat_key(line_))) {
    metrics::gateway().log_suppressed.with({name()}).inc();
    return;
  }
  l.main->log(level, "{}", line_);
}

void configure_logging(const LogSettings& settings) {
  Logs& l = logs();
  std::lock_guard lock(l.configure_mutex);
  // Both files are opened before either sink is switched, so that a failure changes nothing.
  int main_fd = ReopenableSink::open_file(settings.file);
  int audit_fd = STDOUT_FILENO;
  try {
    audit_fd = ReopenableSink::open_file(settings.audit_file);
  } catch (...) {
    ReopenableSink::close_file(main_fd);
    throw;
  }
  l.main_sink->switch_to(main_fd, settings.file);
  l.audit_sink->switch_to(audit_fd, settings.audit_file);
  l.repeats.configure(settings.repeat_limit, settings.repeat_window);
  l.main->set_level(spdlog::level::from_str(settings.level));
}

void reopen_logs() {
  Logs& l = logs();
  std::lock_guard lock(l.configure_mutex);
  try {
    l.main_sink->reopen();
    l.audit_sink->reopen();
  } catch (const std::exception& e) {
    Event("log_reopen_failed").add("error", e.what()).error();
  }
}

void flush_log_repeats() {
  auto ended = logs().repeats.take_ended();
  for (const auto& summary : ended) {
    Event event("log_suppressed");
    event.add("repeated_event", summary.name);
    if (!summary.fields.empty()) event.add("fields", summary.fields);
    event.add("suppressed", summary.suppressed)
        .add("window_ms", static_cast<int64_t>(logs().repeats.window().count()));
    // Written as is: a summary is never itself left out as a repeat.
    logs().main->log(spdlog::level::warn, "{}", event.text());
  }
}

}  // namespace mssgate::daemon
