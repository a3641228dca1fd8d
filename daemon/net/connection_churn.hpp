#pragma once

#include <chrono>
#include <cstdint>

namespace mssgate::daemon {

// The moments when a connection's memory comes and goes: a client connection opened, its TLS
// handshake ended (its transient buffers freed), the connection ended. Noted by the io threads,
// read by whoever gives freed memory back to the system once they stop (app/heap_return.*).
struct ConnectionChurn {
  using Clock = std::chrono::steady_clock;
  uint64_t count = 0;      // moments noted since the process started
  Clock::time_point last;  // the latest (the clock's epoch when none)
};

// Notes one such moment now; lock-free, from any thread.
void note_connection_churn();

// The moments noted so far.
ConnectionChurn connection_churn();

}  // namespace mssgate::daemon
