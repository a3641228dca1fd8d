#include "daemon/app/io_pool.hpp"

namespace mssgate::daemon {

IoPool::IoPool(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) {
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.emplace_back(contexts_.back()->get_executor());
  }
}

void IoPool::run() {
  for (size_t i = 1; i < contexts_.size(); ++i)
    threads_.emplace_back([context = contexts_[i].get()] { context->run(); });
  contexts_.front()->run();
  for (auto& thread : threads_)
    thread.join();
  threads_.clear();
}

void IoPool::stop() {
  for (auto& context : contexts_)
    context->stop();
}

}  // namespace mssgate::daemon
