#include "daemon/app/service_notifier.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

namespace mssgate::daemon {

ServiceNotifier ServiceNotifier::from_environment() {
  ServiceNotifier notifier;
  if (const char* socket = std::getenv("NOTIFY_SOCKET")) notifier.socket_path_ = socket;
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  bool for_us = !pid || std::strtoll(pid, nullptr, 10) == static_cast<long long>(::getpid());
  if (usec && for_us) {
    long long period = std::strtoll(usec, nullptr, 10);
    if (period > 0) notifier.watchdog_interval_ = std::chrono::microseconds(period / 2);
  }
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  return notifier;
}

void ServiceNotifier::send(const std::string& message) const {
  if (socket_path_.empty()) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(address.sun_path)) return;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  if (socket_path_[0] == '@') {
    address.sun_path[0] = '\0';  // abstract namespace
  } else {
    length += 1;  // the terminating NUL of a path
  }
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  // A lost notification is not worth failing for: systemd's own timeouts tell the operator.
  [[maybe_unused]] auto sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                                        reinterpret_cast<const sockaddr*>(&address), length);
  ::close(fd);
}

void ServiceNotifier::ready(std::string_view status) const {
  send("READY=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::reloading() const {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  long long usec = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceNotifier::stopping(std::string_view status) const {
  send("STOPPING=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::watchdog() const {
  send("WATCHDOG=1");
}

void ServiceNotifier::status(std::string_view text) const {
  send("STATUS=" + std::string(text));
}

}  // namespace mssgate::daemon
