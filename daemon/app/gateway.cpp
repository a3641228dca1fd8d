#include "daemon/app/gateway.hpp"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/services/admin_server.hpp"
#include "daemon/services/crl_refresher.hpp"
#include "daemon/services/psc_issuer_client.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/session/imap_session.hpp"
#include "daemon/session/lmtp_session.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "daemon/net/listener.hpp"
#include "daemon/app/service_notifier.hpp"
#include "daemon/session/submission_session.hpp"
#include "daemon/net/tls_policy.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// "path size mtime" of each file, to see whether a file was replaced at the same path.
std::string files_stamp(std::initializer_list<std::string> paths) {
  std::string stamp;
  for (const auto& path : paths) {
    if (path.empty()) continue;
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    auto time = std::filesystem::last_write_time(path, ec);
    stamp += path + " " + std::to_string(ec ? 0 : size) + " " +
             std::to_string(ec ? 0 : time.time_since_epoch().count()) + "\n";
  }
  return stamp;
}

// Everything a configuration needs loaded: the TLS context (certificates, keys, CAs, CRLs), the
// directory, the token validator. A reload passes the running environment: its validator (and
// its cache of tokens) is kept when [psc] did not change, and its indicator journal always.
std::shared_ptr<GatewayEnvironment> build_environment(const config::Config& config,
                                                      bool open_directory,
                                                      std::shared_ptr<HttpClient> http,
                                                      const GatewayEnvironment* running = nullptr) {
  auto env = std::make_shared<GatewayEnvironment>();
  env->config = config;
  env->tls = std::make_shared<asio::ssl::context>(build_server_tls_context(config.tls).release());
  if (open_directory) env->directory = storage::open_sqlite_directory(config.directory.sqlite_path);
  env->psc_files_stamp =
      files_stamp({config.psc.client_certificate, config.psc.client_key, config.psc.ca_file});
  env->validator = psc_validator_for(config.psc, env->psc_files_stamp, running, std::move(http));
  if (running) env->indicators = running->indicators;
  return env;
}

LogSettings log_settings(const config::Config& config) {
  return LogSettings{config.server.log_level, config.server.log_file, config.server.audit_log,
                     config.server.log_repeat_limit, config.server.log_repeat_window};
}

// The configuration in force: each new session takes the snapshot current when it starts.
class EnvironmentSlot {
 public:
  explicit EnvironmentSlot(std::shared_ptr<const GatewayEnvironment> env) : env_(std::move(env)) {}
  std::shared_ptr<const GatewayEnvironment> get() const {
    std::lock_guard lock(mutex_);
    return env_;
  }
  void set(std::shared_ptr<const GatewayEnvironment> env) {
    std::lock_guard lock(mutex_);
    env_ = std::move(env);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const GatewayEnvironment> env_;
};

// Whether something accepts TCP connections at `endpoint` within `timeout`.
bool tcp_reachable(const config::Endpoint& endpoint, std::chrono::milliseconds timeout) {
  error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (ec) return false;
  tcp::endpoint where(address, endpoint.port);
  int fd = ::socket(where.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool reachable = false;
  int rc = ::connect(fd, where.data(), static_cast<socklen_t>(where.size()));
  if (rc == 0) {
    reachable = true;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int error = 0;
      socklen_t length = sizeof error;
      reachable = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
    }
  }
  ::close(fd);
  return reachable;
}

// Checks at start that the backends answer; an unreachable one is logged, not fatal (mssgate
// must come up while Dovecot or Postfix restarts). Returns a summary for the ready event.
std::string check_backends(const config::Config& config) {
  std::vector<std::pair<std::string, config::Endpoint>> backends;
  if (!config.imap.starttls_listen.empty() || !config.imap.tls_listen.empty())
    backends.emplace_back("imap", config.imap.backend.address);
  if (!config.smtp.starttls_listen.empty() || !config.smtp.tls_listen.empty())
    backends.emplace_back("submission", config.smtp.backend.address);
  if (!config.lmtp.listen.empty()) backends.emplace_back("lmtp", config.lmtp.backend);
  std::string summary;
  for (const auto& [name, endpoint] : backends) {
    bool up = tcp_reachable(endpoint, std::chrono::milliseconds(1000));
    if (!up) {
      Event("backend_unreachable")
          .add("backend", name)
          .add("address", endpoint.text())
          .add("detail", "checked at start; sessions will try again")
          .warn();
    }
    summary += (summary.empty() ? "" : ",") + name + (up ? ":up" : ":down");
  }
  return summary.empty() ? "none" : summary;
}

// Lets the process hold as many connections as the hard limit allows.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

class IoPool {
 public:
  explicit IoPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
  }
  asio::io_context& main() { return *contexts_.front(); }
  asio::io_context& next() { return *contexts_[next_++ % contexts_.size()]; }

  void run() {
    for (size_t i = 1; i < contexts_.size(); ++i) {
      threads_.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
    }
    contexts_.front()->run();
    for (auto& t : threads_)
      t.join();
  }
  void stop() {
    for (auto& ctx : contexts_)
      ctx->stop();
  }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
};

enum class ListenerKind { kImap, kImaps, kSubmission, kSubmissions, kLmtp };

struct Listener {
  tcp::acceptor acceptor;
  ListenerKind kind;
  std::string name;
};

// What the sessions of one gateway share besides the environment.
struct SharedState {
  std::shared_ptr<GatewayCounters> counters = std::make_shared<GatewayCounters>();
  std::shared_ptr<SmtpBackendFeatures> smtp_features = std::make_shared<SmtpBackendFeatures>();
};

void start_session(tcp::socket socket, ListenerKind kind,
                   std::shared_ptr<const GatewayEnvironment> env, const SharedState& shared) {
  switch (kind) {
    case ListenerKind::kImap:
      return start_imap_session(std::move(socket), ImapListenerKind::kStartTls, std::move(env),
                                shared.counters);
    case ListenerKind::kImaps:
      return start_imap_session(std::move(socket), ImapListenerKind::kImplicitTls, std::move(env),
                                shared.counters);
    case ListenerKind::kSubmission:
      return start_smtp_session(std::move(socket), SmtpListenerKind::kStartTls, std::move(env),
                                shared.counters, shared.smtp_features);
    case ListenerKind::kLmtp:
      return start_lmtp_session(std::move(socket), std::move(env), shared.counters);
    case ListenerKind::kSubmissions:
      return start_smtp_session(std::move(socket), SmtpListenerKind::kImplicitTls, std::move(env),
                                shared.counters, shared.smtp_features);
  }
}

asio::awaitable<void> accept_loop(Listener& listener, IoPool& pool, const EnvironmentSlot& slot,
                                  const SharedState& shared) {
  asio::steady_timer backoff(listener.acceptor.get_executor());
  for (;;) {
    auto [ec, socket] = co_await listener.acceptor.async_accept(pool.next(), kTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of file descriptors or memory: say so once per pause, and do not spin.
      Event("accept_failed").add("listener", listener.name).add("error", ec.message()).error();
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    start_session(std::move(socket), listener.kind, slot.get(), shared);
  }
}

}  // namespace

void check_gateway_config(const config::Config& config) {
  build_environment(config, false, std::make_shared<HttpClient>());
}

int run_gateway(const config::Config& config) {
  auto started = std::chrono::steady_clock::now();
  auto notifier = ServiceNotifier::from_environment();
  raise_open_file_limit();
  // The process's one HTTP client (PSC, CRLs), closed once at the end.
  auto http = std::make_shared<HttpClient>();
  std::shared_ptr<GatewayEnvironment> first;
  try {
    configure_logging(log_settings(config));
    first = build_environment(config, true, http);
    if (config.indicators.enabled()) {
      storage::IndicatorJournal::Options journal{config.indicators.journal, config.indicators.log};
      journal.on_error = [](std::string_view what) {
        Event("indicator_journal_failed").add("reason", what).error();
      };
      first->indicators = std::make_shared<storage::IndicatorJournal>(std::move(journal));
    }
  } catch (const std::exception& e) {
    Event("start_failed").add("error", e.what()).error();
    std::cerr << "mssgate: " << e.what() << "\n";
    return 1;
  }
  EnvironmentSlot slot(first);
  auto& metrics = metrics::gateway();
  metrics.build_info.with({MSSGATE_VERSION}).set(1);

  SharedState shared;
  unsigned threads = config.server.io_threads ? config.server.io_threads
                                              : std::max(1u, std::thread::hardware_concurrency());
  IoPool pool(threads);

  std::vector<std::unique_ptr<Listener>> listeners;
  auto bind = [&](const config::Endpoint& endpoint, ListenerKind kind, const char* name) {
    auto listener = std::make_unique<Listener>(
        Listener{open_listener(pool.main(), endpoint, name), kind, name});
    listening_event(name, listener->acceptor).info();
    listeners.push_back(std::move(listener));
  };
  std::unique_ptr<AdminServer> admin;
  auto current = [&slot] { return slot.get(); };
  try {
    for (const auto& e : config.imap.starttls_listen)
      bind(e, ListenerKind::kImap, "imap");
    for (const auto& e : config.imap.tls_listen)
      bind(e, ListenerKind::kImaps, "imaps");
    for (const auto& e : config.smtp.starttls_listen)
      bind(e, ListenerKind::kSubmission, "submission");
    for (const auto& e : config.smtp.tls_listen)
      bind(e, ListenerKind::kSubmissions, "submissions");
    for (const auto& e : config.lmtp.listen)
      bind(e, ListenerKind::kLmtp, "lmtp");
    if (!config.admin.listen.empty())
      admin = std::make_unique<AdminServer>(pool.main(), *first, current, shared.counters);
  } catch (const std::exception& e) {
    Event("start_failed").add("error", e.what()).error();
    std::cerr << "mssgate: " << e.what() << "\n";
    return 1;
  }
  for (auto& listener : listeners) {
    asio::co_spawn(pool.main(), accept_loop(*listener, pool, slot, shared), asio::detached);
  }

  // A CRL download that changed a file: the same configuration with a new TLS context.
  auto rebuild_tls = [&] {
    auto running = slot.get();
    try {
      auto next = std::make_shared<GatewayEnvironment>(*running);
      next->tls = std::make_shared<asio::ssl::context>(
          build_server_tls_context(running->config.tls).release());
      slot.set(next);
      Event("tls_context_rebuilt").add("cause", "crl_updated").audit().info();
    } catch (const std::exception& e) {
      Event("tls_context_rebuild_failed").add("error", e.what()).audit().error();
    }
  };
  CrlRefresher crl_refresher(pool.main(), http, current, rebuild_tls);

  // SIGHUP: the file is read again and everything is loaded before the new snapshot replaces
  // the running one; any problem leaves the running one in force.
  auto reload = [&] {
    auto begin = std::chrono::steady_clock::now();
    auto running = slot.get();
    std::string path = running->config.source_path;
    try {
      config::Config next = config::load_config(path);
      auto restart_keys = config::keep_restart_only_settings(running->config, next);
      auto env = build_environment(next, true, http, running.get());
      configure_logging(log_settings(next));
      slot.set(env);
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      metrics.reloads.with({"ok"}).inc();
      metrics.reload_timestamp.with().set(metrics::unix_now());
      metrics.reload_duration.with().set(seconds);
      Event("reloaded")
          .add("config", path)
          .add("duration_us", static_cast<int64_t>(seconds * 1e6))
          .add("psc_cache", env->validator && env->validator == running->validator ? "kept" : "new")
          .audit()
          .info();
      if (!restart_keys.empty()) {
        std::string keys;
        for (const auto& key : restart_keys)
          keys += (keys.empty() ? "" : ",") + key;
        Event("reload_restart_needed")
            .add("keys", keys)
            .add("detail", "these settings keep their running values until a restart")
            .audit()
            .warn();
      }
      if (!env->config.tls.crl_urls.empty()) crl_refresher.refresh_now();
    } catch (const std::exception& e) {
      metrics.reloads.with({"failed"}).inc();
      Event("reload_failed")
          .add("config", path)
          .add("error", e.what())
          .add("action", "the running configuration stays in force")
          .audit()
          .error();
      // Rotation all the same: a reload that succeeded reopened the log files above.
      reopen_logs();
    }
    if (running->indicators) {
      running->indicators->reopen_log();
      Event("indicator_log_reopened").add("cause", "SIGHUP").info();
    }
  };

  asio::signal_set signals(pool.main(), SIGINT, SIGTERM, SIGHUP);
  asio::steady_timer stop_timer(pool.main());
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::now();
  // Waits for the transactions under way, at most stop_timeout, then ends every session.
  std::function<void()> wait_for_transactions = [&] {
    uint64_t left = shared.counters->transactions.load();
    if (left == 0 || std::chrono::steady_clock::now() >= stop_deadline) {
      Event("stopped_accepting")
          .add("open_sessions", shared.counters->open_sessions.load())
          .add("transactions_cut", left)
          .emit(left ? spdlog::level::warn : spdlog::level::info);
      pool.stop();
      return;
    }
    stop_timer.expires_after(std::chrono::milliseconds(50));
    stop_timer.async_wait([&](const error_code&) { wait_for_transactions(); });
  };
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      if (!stopping) {
        notifier.reloading();
        reload();
        notifier.ready("serving");
      }
      signals.async_wait(on_signal);
      return;
    }
    if (stopping) {  // a second SIGTERM or SIGINT: stop now
      pool.stop();
      return;
    }
    stopping = true;
    shared.counters->draining = true;
    notifier.stopping("finishing the mail transactions under way");
    auto stop_timeout = slot.get()->config.server.stop_timeout;
    Event("stopping")
        .add("signal", signal == SIGTERM ? "SIGTERM" : "SIGINT")
        .add("open_sessions", shared.counters->open_sessions.load())
        .add("transactions", shared.counters->transactions.load())
        .add("stop_timeout_ms", static_cast<int64_t>(stop_timeout.count()))
        .info();
    for (auto& listener : listeners) {
      error_code ignored;
      listener->acceptor.close(ignored);
    }
    crl_refresher.stop();
    stop_deadline = std::chrono::steady_clock::now() + stop_timeout;
    wait_for_transactions();
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  signal(SIGPIPE, SIG_IGN);

  // systemd's watchdog: a keep-alive from the main io context while it turns.
  asio::steady_timer watchdog_timer(pool.main());
  std::function<void()> keep_alive = [&] {
    notifier.watchdog();
    watchdog_timer.expires_after(*notifier.watchdog_interval());
    watchdog_timer.async_wait([&](const error_code& ec) {
      if (!ec) keep_alive();
    });
  };
  if (notifier.watchdog_interval()) keep_alive();

  // Summaries of repeated warnings whose window ended.
  asio::steady_timer housekeeping_timer(pool.main());
  std::function<void()> housekeeping = [&] {
    flush_log_repeats();
    housekeeping_timer.expires_after(std::chrono::seconds(1));
    housekeeping_timer.async_wait([&](const error_code& ec) {
      if (!ec) housekeeping();
    });
  };
  housekeeping();

  crl_refresher.start();  // with no URL (yet: a reload may add some), it only waits
  std::string backends = check_backends(config);
  auto ready = std::chrono::steady_clock::now() - started;
  metrics.reload_timestamp.with().set(metrics::unix_now());
  metrics.reload_duration.with().set(std::chrono::duration<double>(ready).count());
  Event("ready")
      .add("io_threads", threads)
      .add("startup_ms", static_cast<int64_t>(
                             std::chrono::duration_cast<std::chrono::milliseconds>(ready).count()))
      .add("startup_us", static_cast<int64_t>(
                             std::chrono::duration_cast<std::chrono::microseconds>(ready).count()))
      .add("backends", backends)
      .info();
  notifier.ready("serving; backends " + backends);
  pool.run();
  // Events still queued are committed; their sessions are gone with the io contexts.
  if (first->indicators) first->indicators->stop();
  // Kept connections belong to the io contexts: closed while those still exist.
  http->close();
  Event("stopped").info();
  return 0;
}

}  // namespace mssgate::daemon
