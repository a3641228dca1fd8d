#include "daemon/event_log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace mssgate::daemon {
namespace {

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

Event::Event(std::string_view name) {
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
  spdlog::log(level, "{}", line_);
}

void set_log_level(std::string_view level) {
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

void init_logging(std::string_view level) {
  auto logger = std::make_shared<spdlog::logger>("mssgate",
                                                 std::make_shared<spdlog::sinks::stdout_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  spdlog::set_default_logger(logger);
  set_log_level(level);
  // Each event is flushed: the journal and the tests see it at once, and a crash loses nothing.
  spdlog::flush_on(spdlog::level::trace);
}

}  // namespace mssgate::daemon
