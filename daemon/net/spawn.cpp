#include "daemon/net/spawn.hpp"

#include <boost/asio/co_spawn.hpp>
#include <exception>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

std::string describe_failure(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown";
}

void report_task_failure(const std::string& name, const std::exception_ptr& failure) {
  metrics::gateway().tasks_failed.with({name}).inc();
  Event("task_failed").add("task", name).add("error", describe_failure(failure)).error();
}

void spawn_task(const boost::asio::any_io_executor& executor, boost::asio::awaitable<void> task,
                std::string name, std::function<void()> on_failure) {
  auto report_failure = [name = std::move(name),
                         on_failure = std::move(on_failure)](const std::exception_ptr& failure) {
    if (!failure) return;
    report_task_failure(name, failure);
    if (on_failure) on_failure();
  };
  boost::asio::co_spawn(executor, std::move(task), std::move(report_failure));
}

}  // namespace mssgate::daemon
