#include "daemon/services/inspection_pool.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using std::chrono::nanoseconds;

nanoseconds thread_cpu_time() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + nanoseconds(now.tv_nsec);
}

// A completion handler made callable from any thread: the call resumes the session on its own
// executor.
template <class... Args, class Handler>
std::function<void(Args...)> resumer(Handler handler) {
  auto executor = asio::get_associated_executor(handler);
  auto shared = std::make_shared<Handler>(std::move(handler));
  return [executor, shared](Args... args) {
    asio::post(executor, [shared, args...]() mutable { std::move (*shared)(std::move(args)...); });
  };
}

}  // namespace

struct InspectionJob {
  InspectionJob(const InspectionSettings& s, std::shared_ptr<InspectionMemory> m)
      : settings(s), memory(std::move(m)), inspector(s.limits) {
    inspector.set_interrupt([this] { return interrupt(); });
    inspector.set_shared_memory(memory.get());
  }
  ~InspectionJob() { memory->give(pending_bytes); }
  InspectionJob(const InspectionJob&) = delete;
  InspectionJob& operator=(const InspectionJob&) = delete;

  // Asked by the inspector between its steps, on the worker that runs it.
  std::string_view interrupt() const {
    if (abandoned) return "abandoned";
    if (failed) return "inspector_error";
    if (out_of_memory) return "inspection_memory";
    if (cpu_spent + (thread_cpu_time() - turn_start) > settings.max_cpu_time)
      return "budget_cpu_time";
    return {};
  }

  const InspectionSettings settings;
  const std::shared_ptr<InspectionMemory> memory;  // declared before the inspector: outlives it
  // The workers' side: one worker at a time.
  protocol::MessageInspector inspector;
  nanoseconds cpu_spent{0};   // the thread CPU time of the turns before this one
  nanoseconds turn_start{0};  // the worker's thread CPU time when this turn began
  // Shared with the session, under `mutex`.
  std::mutex mutex;
  std::deque<std::string> pending;
  size_t pending_bytes = 0;
  bool scheduled = false;  // in the pool's queue, or in a worker's hands
  bool ending = false;     // the message has ended: its facts are made at its last turn
  std::function<void()> on_room;
  std::function<void(protocol::MessageFacts)> on_facts;
  std::optional<protocol::MessageFacts> facts;  // made before the session asked for them
  std::atomic<bool> abandoned{false};
  std::atomic<bool> stopped{false};        // the inspector reads nothing more
  std::atomic<bool> out_of_memory{false};  // bytes were left out: the facts are incomplete
  std::atomic<bool> failed{false};         // a turn failed: the facts are incomplete
};

bool InspectionMemory::take(size_t bytes) {
  size_t held = held_.load();
  do {
    if (bytes > limit_ || held > limit_ - bytes) return false;
  } while (!held_.compare_exchange_weak(held, held + bytes));
  return true;
}

void InspectionMemory::give(size_t bytes) {
  held_ -= bytes;
}

namespace {

// One turn of a message on a worker: its next piece (what its session read at once, 16 KiB at
// most), or its end. True when it has more to do.
bool take_turn(InspectionJob& job) {
  std::string piece;
  bool finish = false;
  {
    std::lock_guard lock(job.mutex);
    if (job.abandoned) {
      job.scheduled = false;
      return false;
    }
    if (!job.pending.empty()) {
      piece = std::move(job.pending.front());
      job.pending.pop_front();
    }
    finish = piece.empty() && job.ending;
    if (piece.empty() && !finish) {
      job.scheduled = false;
      return false;
    }
  }
  job.turn_start = thread_cpu_time();
  protocol::MessageFacts facts;
  try {
    if (finish) {
      facts = job.inspector.finish();
    } else {
      job.inspector.feed(piece);
    }
  } catch (const std::exception&) {
    // The inspector catches its own failures: this is the turn's (out of memory). The message
    // is uninspectable; its session is answered all the same.
    job.failed = true;
    facts.inspected = false;
    facts.uninspectable_reason = "inspector_error";
  }
  job.cpu_spent += thread_cpu_time() - job.turn_start;
  if (job.inspector.stopped()) job.stopped = true;

  std::function<void()> room;
  std::function<void(protocol::MessageFacts)> done;
  std::optional<protocol::MessageFacts> for_waiter;
  bool again = false;
  {
    std::lock_guard lock(job.mutex);
    job.pending_bytes -= piece.size();
    job.memory->give(piece.size());
    if (job.on_room && job.pending_bytes <= job.settings.queue_bytes / 2)
      room = std::exchange(job.on_room, nullptr);
    if (finish) {
      done = std::exchange(job.on_facts, nullptr);
      if (done) {
        for_waiter = std::move(facts);
      } else {
        job.facts = std::move(facts);  // kept until finish() asks
      }
    }
    again = !finish && (!job.pending.empty() || job.ending);
    job.scheduled = again;
  }
  if (room) room();
  if (done) done(std::move(*for_waiter));
  return again;
}

// The sessions still waiting on a job the pool drops: their handlers are destroyed after the
// job's lock is released (declared after them, the lock goes first), since destroying one ends
// its session, which abandons the job.
void drop_waiters(InspectionJob& job) {
  std::function<void()> room;
  std::function<void(protocol::MessageFacts)> done;
  std::lock_guard lock(job.mutex);
  room = std::exchange(job.on_room, nullptr);
  done = std::exchange(job.on_facts, nullptr);
  job.pending.clear();
  job.memory->give(std::exchange(job.pending_bytes, 0));
  job.scheduled = false;
}

}  // namespace

InspectionPool::InspectionPool(unsigned threads, size_t memory_limit)
    : memory_(std::make_shared<InspectionMemory>(memory_limit)) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i)
    workers_.emplace_back([this] { work(); });
}

InspectionPool::~InspectionPool() {
  stop();
}

void InspectionPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_)
    worker.join();
  workers_.clear();
  std::deque<std::shared_ptr<InspectionJob>> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(ready_);
  }
  for (auto& job : left)
    drop_waiters(*job);
}

void InspectionPool::schedule(std::shared_ptr<InspectionJob> job) {
  {
    std::lock_guard lock(mutex_);
    ready_.push_back(std::move(job));  // after stop() began too: stop() drops its waiters
  }
  wake_.notify_one();
}

void InspectionPool::work() {
  for (;;) {
    std::shared_ptr<InspectionJob> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      job = std::move(ready_.front());
      ready_.pop_front();
    }
    if (take_turn(*job)) schedule(std::move(job));
  }
}

InspectionQueue::InspectionQueue(std::shared_ptr<InspectionPool> pool) : pool_(std::move(pool)) {}

InspectionQueue::~InspectionQueue() {
  abandon();
}

void InspectionQueue::abandon() {
  if (!job_) return;
  std::shared_ptr<InspectionJob> job = std::move(job_);
  job->abandoned = true;
  std::lock_guard lock(job->mutex);
  for (const auto& piece : job->pending) {
    job->pending_bytes -= piece.size();
    job->memory->give(piece.size());
  }
  job->pending.clear();
}

void InspectionQueue::begin(const InspectionSettings& settings) {
  abandon();
  job_ = std::make_shared<InspectionJob>(settings, pool_->memory());
}

asio::awaitable<void> InspectionQueue::feed(std::string bytes) {
  if (!job_ || bytes.empty() || job_->stopped || job_->out_of_memory) co_return;
  if (!job_->memory->take(bytes.size())) {
    job_->out_of_memory = true;  // the inspector stops at its next step, or at its end
    co_return;
  }
  bool schedule = false;
  bool wait = false;
  {
    std::lock_guard lock(job_->mutex);
    job_->pending_bytes += bytes.size();
    job_->pending.push_back(std::move(bytes));
    schedule = !std::exchange(job_->scheduled, true);
    wait = job_->pending_bytes > job_->settings.queue_bytes;
  }
  if (schedule) pool_->schedule(job_);
  if (!wait) co_return;
  ++holds_;
  auto initiate = [job = job_](auto handler) {
    auto resume = resumer<>(std::move(handler));
    {
      std::lock_guard lock(job->mutex);
      if (job->pending_bytes > job->settings.queue_bytes / 2) {
        job->on_room = std::move(resume);
        return;
      }
    }
    resume();  // the workers caught up meanwhile
  };
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(std::move(initiate),
                                                                       asio::use_awaitable);
}

bool InspectionQueue::facts_ready() const {
  if (!job_) return false;
  std::lock_guard lock(job_->mutex);
  return job_->facts.has_value();
}

size_t InspectionQueue::waiting_bytes() const {
  if (!job_) return 0;
  std::lock_guard lock(job_->mutex);
  return job_->pending_bytes;
}

void InspectionQueue::end() {
  if (!job_) return;
  bool schedule = false;
  {
    std::lock_guard lock(job_->mutex);
    if (job_->ending) return;
    job_->ending = true;
    schedule = !std::exchange(job_->scheduled, true);
  }
  if (schedule) pool_->schedule(job_);
}

asio::awaitable<protocol::MessageFacts> InspectionQueue::finish() {
  std::shared_ptr<InspectionJob> job = std::move(job_);
  if (!job) {
    protocol::MessageFacts facts;
    facts.inspected = false;
    facts.uninspectable_reason = "inspector_error";
    co_return facts;
  }
  auto initiate = [job, pool = pool_](auto handler) {
    auto resume = resumer<protocol::MessageFacts>(std::move(handler));
    std::optional<protocol::MessageFacts> ready;
    bool schedule = false;
    {
      std::lock_guard lock(job->mutex);
      job->ending = true;
      if (job->facts) {
        ready = std::move(job->facts);
      } else {
        job->on_facts = resume;  // a copy: shares the handler
        schedule = !std::exchange(job->scheduled, true);
      }
    }
    if (ready) return resume(std::move(*ready));  // ended early (end()): made already
    if (schedule) pool->schedule(job);
  };
  protocol::MessageFacts facts =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(protocol::MessageFacts)>(
          std::move(initiate), asio::use_awaitable);
  co_return facts;
}

}  // namespace mssgate::daemon
