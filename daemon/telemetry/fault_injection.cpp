#include "daemon/telemetry/fault_injection.hpp"

#ifdef MSSGATE_FAULT_INJECTION

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace mssgate::daemon::faults {
namespace {

struct Armed {
  unsigned due = 1;  // the pass that throws (or blocks)
  unsigned passes = 0;
  std::chrono::milliseconds block{0};  // blocks this long instead of throwing
};

std::mutex mutex;
std::map<std::string, Armed, std::less<>> armed;

}  // namespace

void load_from_environment() {
  const char* text = std::getenv("MSSGATE_INJECT_FAULTS");
  if (!text) return;
  std::lock_guard lock(mutex);
  std::string_view rest(text);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    Armed fault;
    auto at = item.find('@');
    if (at != std::string_view::npos) {
      fault.block = std::chrono::milliseconds(std::stoul(std::string(item.substr(at + 1))));
      item = item.substr(0, at);
    }
    auto colon = item.find(':');
    if (colon != std::string_view::npos)
      fault.due = static_cast<unsigned>(std::stoul(std::string(item.substr(colon + 1))));
    armed[std::string(item.substr(0, colon))] = fault;
  }
}

void point(std::string_view scope, std::string_view detail) {
  std::string name(scope);
  if (!detail.empty()) name.append(".").append(detail);
  std::chrono::milliseconds block{0};
  {
    std::lock_guard lock(mutex);
    auto it = armed.find(name);
    if (it == armed.end() || ++it->second.passes != it->second.due) return;
    block = it->second.block;
  }
  if (block.count() == 0) throw std::runtime_error("injected fault at " + name);
  std::this_thread::sleep_for(block);  // the thread is stuck, as a blocking call would leave it
}

}  // namespace mssgate::daemon::faults

#endif
