#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "storage/directory_source.hpp"

namespace mssgate::daemon {

// The directory as sessions read it: an immutable in-memory snapshot, replaced whole when the
// database changes. A reader takes the snapshot in force when it asks and keeps it for as long
// as it needs (RCU): a lookup holds no lock and makes no query. The constructor builds the first
// snapshot; later ones are built on the service's own thread, never an io thread, each time the
// source says the directory changed (asked every refresh interval), then swapped in. A rebuild
// that fails keeps the snapshot in force (`directory_refresh_failed`) and is tried again at the
// next interval. A change is thus seen at most one interval plus one build after its commit.
class DirectoryService {
 public:
  // Throws storage::StorageError when the first snapshot cannot be built.
  DirectoryService(std::unique_ptr<storage::DirectorySource> source,
                   std::chrono::milliseconds refresh_interval);
  ~DirectoryService();
  DirectoryService(const DirectoryService&) = delete;
  DirectoryService& operator=(const DirectoryService&) = delete;

  std::shared_ptr<const storage::DirectorySnapshot> snapshot() const {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_;
  }
  // Takes effect at once (the wait under way restarts with it).
  void set_refresh_interval(std::chrono::milliseconds interval);
  // Ends the refresh thread (waiting for a build under way); the snapshot stays readable.
  void stop();

  // Snapshots built so far (1 after the constructor) and refreshes that failed: for the tests.
  uint64_t generation() const { return generation_.load(); }
  uint64_t failed_refreshes() const { return failed_refreshes_.load(); }

 private:
  void refresh_loop();
  // Builds and swaps in a new snapshot; throws storage::StorageError.
  void load(std::string_view cause);
  void refresh_failed(const std::string& error);

  std::unique_ptr<storage::DirectorySource> source_;  // used by the refresh thread only
  std::string source_name_;
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's load() releases its internal lock
  // with memory_order_relaxed, so a reader's access is not ordered before the next store's, a
  // data race ThreadSanitizer reports (scripts/tsan). The copy under the lock is a few
  // nanoseconds, once per sign-in.
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const storage::DirectorySnapshot> snapshot_;  // guarded by snapshot_mutex_
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> failed_refreshes_{0};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::chrono::milliseconds interval_;  // guarded by mutex_
  bool stopping_ = false;               // guarded by mutex_
  bool interval_changed_ = false;       // guarded by mutex_
  std::thread thread_;
};

}  // namespace mssgate::daemon
