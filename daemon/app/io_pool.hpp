#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace mssgate::daemon {

// The io threads: one single-threaded io_context each, so that a session lives on one thread
// with no locks; the first one also runs the listeners, signals and timers.
class IoPool {
 public:
  explicit IoPool(unsigned threads);
  boost::asio::io_context& main() { return *contexts_.front(); }
  // The context for the next session, in turn.
  boost::asio::io_context& next() { return *contexts_[next_++ % contexts_.size()]; }
  size_t size() const { return contexts_.size(); }
  boost::asio::io_context& at(size_t i) { return *contexts_.at(i); }

  // Runs every context (the main one on the calling thread) until stop().
  void run();
  void stop();

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
};

}  // namespace mssgate::daemon
