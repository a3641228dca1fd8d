#include "daemon/net/connection_churn.hpp"

#include <atomic>

namespace mssgate::daemon {
namespace {

std::atomic<uint64_t> churn_count{0};
std::atomic<ConnectionChurn::Clock::rep> last_churn{0};

}  // namespace

void note_connection_churn() {
  churn_count.fetch_add(1, std::memory_order_relaxed);
  last_churn.store(ConnectionChurn::Clock::now().time_since_epoch().count(),
                   std::memory_order_relaxed);
}

ConnectionChurn connection_churn() {
  ConnectionChurn churn;
  churn.count = churn_count.load(std::memory_order_relaxed);
  churn.last = ConnectionChurn::Clock::time_point(
      ConnectionChurn::Clock::duration(last_churn.load(std::memory_order_relaxed)));
  return churn;
}

}  // namespace mssgate::daemon
