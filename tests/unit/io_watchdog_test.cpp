// systemd's watchdog fed from a thread of its own: the liveness bookkeeping, and the watchdog
// thread against real io threads and a test NOTIFY_SOCKET: keep-alives while every io thread
// turns, none while one is stuck, again once it turns.
#include "daemon/app/io_watchdog.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace mssgate::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = IoLiveness::Clock;

TEST(IoLiveness, AThreadIsStalledWhenItsHeartbeatWaitsLongerThanTheLimit) {
  IoLiveness liveness(2, 1s);
  auto t0 = Clock::now();
  EXPECT_TRUE(liveness.send(0, t0));
  EXPECT_TRUE(liveness.send(1, t0));
  // Not answered yet: no second heartbeat, and not stalled before the limit.
  EXPECT_FALSE(liveness.send(0, t0 + 500ms));
  EXPECT_FALSE(liveness.stalled(0, t0 + 1s));
  liveness.answered(1);
  EXPECT_TRUE(liveness.stalled(0, t0 + 1001ms));
  EXPECT_FALSE(liveness.stalled(1, t0 + 1001ms));
  EXPECT_EQ(liveness.waiting(1, t0 + 5s), Clock::duration::zero());
  // It turns again: the next heartbeat starts a new wait.
  liveness.answered(0);
  EXPECT_FALSE(liveness.stalled(0, t0 + 2s));
  EXPECT_TRUE(liveness.send(0, t0 + 2s));
  EXPECT_EQ(liveness.waiting(0, t0 + 2500ms), 500ms);
}

// A datagram socket standing in for systemd's NOTIFY_SOCKET; the notifier reads it from the
// environment with a watchdog period of 100 ms (keep-alives every 50 ms at least).
class NotifySocket {
 public:
  NotifySocket() {
    path_ = (std::filesystem::temp_directory_path() /
             ("mssgate-watchdog-" + std::to_string(::getpid())))
                .string();
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    timeval timeout{0, 20000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "100000", 1);
    ::unsetenv("WATCHDOG_PID");
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The times WATCHDOG=1 arrived within `span`.
  std::vector<Clock::time_point> keep_alives(Clock::duration span) const {
    std::vector<Clock::time_point> seen;
    auto end = Clock::now() + span;
    char buffer[256];
    while (Clock::now() < end) {
      auto n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0 && std::string(buffer, static_cast<size_t>(n)) == "WATCHDOG=1")
        seen.push_back(Clock::now());
    }
    return seen;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(IoWatchdog, FeedsSystemdOnlyWhileEveryIoThreadTurns) {
  NotifySocket socket;
  ServiceNotifier notifier = ServiceNotifier::from_environment();
  ASSERT_TRUE(notifier.watchdog_interval());
  IoPool pool(2);
  std::thread io([&] { pool.run(); });
  {
    IoWatchdog watchdog(pool, notifier, 300ms);
    EXPECT_GE(socket.keep_alives(500ms).size(), 4u) << "no keep-alives while every thread turns";

    // The second io thread is stuck for 2 s: soon after the limit (300 ms, plus a period and
    // some leeway for a loaded machine) the keep-alives stop, and they come back once it turns.
    auto stuck_at = Clock::now();
    boost::asio::post(pool.at(1), [] { std::this_thread::sleep_for(2000ms); });
    auto during = socket.keep_alives(1800ms);
    for (auto at : during)
      EXPECT_LT(at - stuck_at, 800ms) << "a keep-alive while an io thread was stuck";
    std::this_thread::sleep_for(400ms);
    EXPECT_GE(socket.keep_alives(500ms).size(), 4u) << "no keep-alives after the thread turned";
    watchdog.stop();
  }
  pool.stop();
  io.join();
}

}  // namespace
}  // namespace mssgate::daemon
