#include "daemon/app/heap_return.hpp"

#include <malloc.h>
#include <unistd.h>

#include <fstream>

#include "daemon/telemetry/event_log.hpp"

namespace mssgate::daemon {
namespace {

// How often the thread looks at the connections' moments: a quarter of the default quiet.
constexpr auto kLookEvery = std::chrono::milliseconds(250);

// The process's resident memory, in bytes (0 if /proc cannot tell).
uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

bool HeapReturnPolicy::due(const ConnectionChurn& churn, Clock::time_point now) const {
  if (churn_since(churn) < settings_.min_churn) return false;
  if (now - churn.last < settings_.quiet) return false;
  return !last_ || now - *last_ >= settings_.min_interval;
}

void HeapReturnPolicy::returned(const ConnectionChurn& churn, Clock::time_point now) {
  churn_at_last_ = churn.count;
  last_ = now;
}

HeapReturn::HeapReturn(HeapReturnPolicy::Settings settings) : policy_(settings) {
  thread_ = std::thread([this] { run(); });
}

HeapReturn::~HeapReturn() {
  stop();
}

void HeapReturn::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// The mutex guards `stopping_` only: the policy is this thread's alone.
void HeapReturn::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, kLookEvery, [this] { return stopping_; })) return;
    }
    ConnectionChurn churn = connection_churn();
    if (!policy_.due(churn, HeapReturnPolicy::Clock::now())) continue;
    give_back(policy_.churn_since(churn));
    policy_.returned(churn, HeapReturnPolicy::Clock::now());
  }
}

void HeapReturn::give_back(uint64_t churn) {
  uint64_t before = resident_bytes();
  auto started = std::chrono::steady_clock::now();
  malloc_trim(0);
  auto took = std::chrono::steady_clock::now() - started;
  uint64_t after = resident_bytes();
  Event("heap_returned")
      .add("freed_kib", before > after ? (before - after) / 1024 : uint64_t{0})
      .add("resident_kib", after / 1024)
      .add("took_ms", static_cast<int64_t>(
                          std::chrono::duration_cast<std::chrono::milliseconds>(took).count()))
      .add("connection_moments", churn)
      .info();
}

}  // namespace mssgate::daemon
