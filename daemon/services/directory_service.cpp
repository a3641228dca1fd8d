#include "daemon/services/directory_service.hpp"

#include <utility>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

DirectoryService::DirectoryService(std::unique_ptr<storage::DirectorySource> source,
                                   std::chrono::milliseconds refresh_interval)
    : source_(std::move(source)), source_name_(source_->name()), interval_(refresh_interval) {
  load("start");
  thread_ = std::thread([this] { refresh_loop(); });
}

DirectoryService::~DirectoryService() {
  stop();
}

void DirectoryService::set_refresh_interval(std::chrono::milliseconds interval) {
  {
    std::lock_guard lock(mutex_);
    if (interval == interval_) return;
    interval_ = interval;
    interval_changed_ = true;
  }
  wake_.notify_all();
}

void DirectoryService::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DirectoryService::refresh_loop() {
  bool retry = false;  // the last refresh failed: try again even if nothing changed since
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    interval_changed_ = false;
    auto deadline = std::chrono::steady_clock::now() + interval_;
    wake_.wait_until(lock, deadline, [this] { return stopping_ || interval_changed_; });
    if (stopping_) break;
    if (interval_changed_) continue;  // wait again, with the new interval
    lock.unlock();
    try {
      bool changed = source_->changed();
      if (changed || retry) load(changed ? "changed" : "retry");
      retry = false;
    } catch (const std::exception& e) {
      refresh_failed(e.what());
      retry = true;
    }
    lock.lock();
  }
}

void DirectoryService::load(std::string_view cause) {
  auto begin = std::chrono::steady_clock::now();
  std::shared_ptr<const storage::DirectorySnapshot> next = storage::load_snapshot(*source_);
  auto took = std::chrono::steady_clock::now() - begin;
  const storage::DirectoryCounts& counts = next->counts();
  size_t bytes = next->memory_bytes();
  std::shared_ptr<const storage::DirectorySnapshot> replaced;
  {
    std::lock_guard lock(snapshot_mutex_);
    replaced = std::exchange(snapshot_, std::move(next));
  }
  // The snapshot replaced is freed here, outside the lock, unless a reader still holds it.
  replaced.reset();
  uint64_t generation = ++generation_;

  auto& metrics = metrics::gateway();
  metrics.directory_refreshes.with({"ok"}).inc();
  metrics.directory_mailboxes.with().set(static_cast<double>(counts.mailboxes));
  metrics.directory_bytes.with().set(static_cast<double>(bytes));
  metrics.directory_last_load.with().set(metrics::unix_now());
  metrics.directory_load_duration.with().set(std::chrono::duration<double>(took).count());
  Event("directory_loaded")
      .add("source", source_name_)
      .add("cause", cause)
      .add("mailboxes", counts.mailboxes)
      .add("holders", counts.holders)
      .add("attachments", counts.attachments)
      .add("bindings", counts.bindings)
      .add("senders", counts.senders)
      .add("bytes", bytes)
      .add("duration_ms", static_cast<int64_t>(
                              std::chrono::duration_cast<std::chrono::milliseconds>(took).count()))
      .add("generation", generation)
      .info();
}

void DirectoryService::refresh_failed(const std::string& error) {
  ++failed_refreshes_;
  metrics::gateway().directory_refreshes.with({"failed"}).inc();
  Event("directory_refresh_failed")
      .add("source", source_name_)
      .add("error", error)
      .add("action", "the directory snapshot in force stays; tried again at the next interval")
      .add("generation", generation_.load())
      .error();
}

}  // namespace mssgate::daemon
