#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace mssgate::daemon {

// One named event with key=value fields, written as a single log line:
//   event=auth session=3f2a... mechanism=EXTERNAL result=ok mailbox=app@example.fr
// Values are quoted when they contain spaces, quotes, '=' or control characters.
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

  void emit(spdlog::level::level_enum level) const;
  void info() const { emit(spdlog::level::info); }
  void warn() const { emit(spdlog::level::warn); }
  void error() const { emit(spdlog::level::err); }
  void debug() const { emit(spdlog::level::debug); }

  const std::string& text() const { return line_; }

 private:
  std::string line_;
};

// Sets up the process-wide logger: one line per event on standard output.
void init_logging(std::string_view level);
void set_log_level(std::string_view level);

}  // namespace mssgate::daemon
