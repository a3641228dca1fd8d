#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <exception>
#include <functional>
#include <string>

namespace mssgate::daemon {

// Runs `task` on `executor`. What it throws is never lost: it is logged
// (event=task_failed task=NAME error=...), counted in mssgate_tasks_failed_total{task}, and
// `on_failure` runs on the executor (to close what the task owned, or start it again).
void spawn_task(const boost::asio::any_io_executor& executor, boost::asio::awaitable<void> task,
                std::string name, std::function<void()> on_failure = {});

// What a task threw, logged (event=task_failed task=NAME error=...) and counted in
// mssgate_tasks_failed_total{task}.
void report_task_failure(const std::string& name, const std::exception_ptr& failure);

// What a coroutine threw, for the log: the exception's what(), or "unknown".
std::string describe_failure(const std::exception_ptr& failure);

}  // namespace mssgate::daemon
