#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mssgate::daemon {

// The systemd notification protocol (sd_notify(3)): datagrams to the socket named by
// NOTIFY_SOCKET, a path or an abstract name starting with "@". Without NOTIFY_SOCKET every call
// does nothing, so that mssgate runs the same outside systemd.
class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them so that no child
  // process inherits them.
  static ServiceNotifier from_environment();

  void ready(std::string_view status) const;
  void reloading() const;  // RELOADING=1 with MONOTONIC_USEC, as systemd 253+ wants
  void stopping(std::string_view status) const;
  void watchdog() const;
  void status(std::string_view text) const;

  // Half the watchdog period systemd set (WatchdogSec=), when it set one for this process.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }
  bool enabled() const { return !socket_path_.empty(); }

 private:
  void send(const std::string& message) const;

  std::string socket_path_;
  std::optional<std::chrono::microseconds> watchdog_interval_;
};

}  // namespace mssgate::daemon
