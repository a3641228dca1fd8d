#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace mssgate::daemon {

// One named event with key=value fields, written as a single log line:
//   event=auth session=3f2a... mechanism=EXTERNAL result=ok mailbox=app@example.fr
// Values are quoted when they contain spaces, quotes, '=', control characters or bytes that are
// not UTF-8 (written \xNN): every line is valid UTF-8.
// Never put a token, a password, message content or an INS value in an event.
class Event {
 public:
  explicit Event(std::string_view name);

  Event& add(std::string_view key, std::string_view value);
  Event& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  Event& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  Event& add(std::string_view key, int64_t value);
  Event& add(std::string_view key, uint64_t value);
  Event& add(std::string_view key, int value) { return add(key, static_cast<int64_t>(value)); }
  Event& add(std::string_view key, unsigned value) {
    return add(key, static_cast<uint64_t>(value));
  }
  Event& add(std::string_view key, bool value) { return add(key, value ? "yes" : "no"); }

  // Marks the event as part of the audit trail (sign-ins, refusals, reloads, CRL updates):
  // written to the audit log, whatever the log level, and never left out as a repeat.
  Event& audit() {
    audit_ = true;
    return *this;
  }

  void emit(spdlog::level::level_enum level) const;
  void info() const { emit(spdlog::level::info); }
  void warn() const { emit(spdlog::level::warn); }
  void error() const { emit(spdlog::level::err); }
  void debug() const { emit(spdlog::level::debug); }

  const std::string& text() const { return line_; }
  std::string_view name() const { return std::string_view(line_).substr(6, name_length_); }

 private:
  std::string line_;
  size_t name_length_;
  bool audit_ = false;
};

struct LogSettings {
  std::string level = "info";
  std::string file;        // empty: standard output
  std::string audit_file;  // empty: the audit trail goes to the main log
  unsigned repeat_limit = 10;
  std::chrono::milliseconds repeat_window = std::chrono::minutes(1);
};

// Sets up the process's logs, or changes them on a reload: one line per event. Throws
// std::runtime_error with a sentence when a log file cannot be opened (the logs are then as
// they were).
void configure_logging(const LogSettings& settings);
// Opens the log files again (after a rotation).
void reopen_logs();
// Writes one `log_suppressed` summary for each repeated warning or error whose window has
// ended; called regularly by the daemon.
void flush_log_repeats();

// What tells a warning or error apart from its repeats: the fields of the event `line` but the
// session's own (session, peer) and the numbers (durations, sizes), values cut at 200 bytes.
std::string event_repeat_key(std::string_view line);

}  // namespace mssgate::daemon
