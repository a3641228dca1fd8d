#pragma once
// The wall clock as the indicators count it: milliseconds since 1970 and calendar days.

#include <cstdint>
#include <string>

namespace mssgate::storage {

int64_t now_ms();

// The day of a time, "YYYY-MM-DD", in UTC or in the machine's local time.
std::string day_of(int64_t at_ms, bool utc);

// A time as UTC "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string iso_time(int64_t at_ms);

}  // namespace mssgate::storage
