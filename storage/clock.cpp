#include "storage/clock.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace mssgate::storage {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string day_of(int64_t at_ms, bool utc) {
  std::time_t seconds = static_cast<std::time_t>(at_ms / 1000);
  std::tm tm{};
  if (utc) {
    gmtime_r(&seconds, &tm);
  } else {
    localtime_r(&seconds, &tm);
  }
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return text;
}

std::string iso_time(int64_t at_ms) {
  std::time_t seconds = static_cast<std::time_t>(at_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  // "YYYY-MM-DDTHH:MM:SS.mmmZ", digit by digit (the journal writes one per event).
  char text[] = "0000-00-00T00:00:00.000Z";
  auto put = [&](int at, int digits, int value) {
    for (int i = digits - 1; i >= 0; --i, value /= 10)
      text[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, 4, tm.tm_year + 1900);
  put(5, 2, tm.tm_mon + 1);
  put(8, 2, tm.tm_mday);
  put(11, 2, tm.tm_hour);
  put(14, 2, tm.tm_min);
  put(17, 2, tm.tm_sec);
  put(20, 3, static_cast<int>(((at_ms % 1000) + 1000) % 1000));
  return text;
}

}  // namespace mssgate::storage
