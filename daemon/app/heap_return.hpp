#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "daemon/net/connection_churn.hpp"

namespace mssgate::daemon {

// When the memory a burst of connections freed goes back to the system. glibc keeps what its
// arenas free for the next allocations: after 10,000 TLS handshakes, 6 to 10 KiB a session
// held, freed but not given back, for as long as the sessions last. Given back once a burst is
// over: at least `min_churn` connection moments (connections opened, handshakes ended,
// connections ended) since the last time, none for `quiet`, and not sooner than `min_interval`
// after the last time. Bookkeeping only, tested without waiting.
class HeapReturnPolicy {
 public:
  using Clock = ConnectionChurn::Clock;
  struct Settings {
    uint64_t min_churn = 256;
    Clock::duration quiet = std::chrono::seconds(1);
    Clock::duration min_interval = std::chrono::seconds(30);
  };

  explicit HeapReturnPolicy(Settings settings) : settings_(settings) {}

  bool due(const ConnectionChurn& churn, Clock::time_point now) const;
  // The memory was given back at `now`, after `churn`.
  void returned(const ConnectionChurn& churn, Clock::time_point now);
  // The moments noted since the last time.
  uint64_t churn_since(const ConnectionChurn& churn) const { return churn.count - churn_at_last_; }

 private:
  Settings settings_;
  uint64_t churn_at_last_ = 0;
  std::optional<Clock::time_point> last_;
};

// Gives the heap's freed memory back to the system (glibc's malloc_trim) when the policy says,
// from a thread of its own; each time logged (heap_returned: the resident memory it gave back
// and how long it took). glibc holds an arena's lock while it gives back that arena's pages:
// an io thread that allocates meanwhile waits (server.return_freed_memory = false: no thread).
class HeapReturn {
 public:
  explicit HeapReturn(HeapReturnPolicy::Settings settings = {});
  ~HeapReturn();
  HeapReturn(const HeapReturn&) = delete;
  HeapReturn& operator=(const HeapReturn&) = delete;

  void stop();

 private:
  void run();
  void give_back(uint64_t churn);

  HeapReturnPolicy policy_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mssgate::daemon
