#pragma once

#include <string_view>

namespace mssgate::daemon::faults {

// Faults that tests inject to show that a throw where none is expected ends only what it must,
// or that a thread stuck where nothing may block is noticed. Built in only with
// MSSGATE_FAULT_INJECTION (the test build); elsewhere every point is empty.
// MSSGATE_INJECT_FAULTS="name[:n][@ms],..." (read once at start) makes the point `name` throw
// std::runtime_error the n-th time it is passed (the first by default), once; with "@ms", the
// point blocks its thread for that many milliseconds instead. A point named by a scope and a
// detail is "scope.detail" (a session's commands: "submission.NOOP").
#ifdef MSSGATE_FAULT_INJECTION
void load_from_environment();
void point(std::string_view scope, std::string_view detail = {});
#else
inline void load_from_environment() {}
inline void point(std::string_view, std::string_view = {}) {}
#endif

}  // namespace mssgate::daemon::faults
