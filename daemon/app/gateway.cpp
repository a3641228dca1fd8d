#include "daemon/app/gateway.hpp"

#include <sys/resource.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "config/storage_settings.hpp"
#include "daemon/app/environment.hpp"
#include "daemon/app/graceful_stop.hpp"
#include "daemon/app/heap_return.hpp"
#include "daemon/app/io_pool.hpp"
#include "daemon/app/io_watchdog.hpp"
#include "daemon/app/listeners.hpp"
#include "daemon/app/reloader.hpp"
#include "daemon/app/service_notifier.hpp"
#include "daemon/app/session_reviewer.hpp"
#include "daemon/net/rsa_key_decoding.hpp"
#include "daemon/net/spawn.hpp"
#include "daemon/services/admin_server.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/crl_refresher.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/fault_injection.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// Lets the process hold as many connections as the hard limit allows, and keeps the limit for
// the admission of client connections (admission.hpp).
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  set_open_file_limit(limit.rlim_cur == RLIM_INFINITY ? 0 : limit.rlim_cur);
}

int64_t microseconds(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// One event per client address and time unit for what was left out of the log about it:
// failed sign-ins beyond its rate (to the audit trail), refused connections beyond it.
void write_address_summaries(ClientLimits& clients) {
  for (const auto& summary : clients.take_summaries(ClientLimits::Clock::now())) {
    bool sign_ins = summary.kind == ClientLimits::Kind::kFailedSignIn;
    Event event(sign_ins ? "sign_in_failures_summarised" : "connections_refused_summarised");
    event.add("address", summary.address.text())
        .add("count", summary.left_out)
        .add("written", summary.written)
        .add("window_ms",
             std::chrono::duration_cast<std::chrono::milliseconds>(summary.unit).count());
    if (sign_ins) event.audit();
    event.warn();
  }
  metrics::gateway().client_addresses.with().set(static_cast<double>(clients.tracked()));
}

// The process: loads the configuration's environment, binds the listeners and the admin
// endpoint, serves until a stop, then lets the journal finish. Each part is its own class:
// IoPool, Listeners, Reloader, GracefulStop, CrlRefresher, AdminServer.
class Gateway {
 public:
  explicit Gateway(const config::Config& config)
      : config_(config), started_(Clock::now()), notifier_(ServiceNotifier::from_environment()) {}

  int run() {
    raise_open_file_limit();
    faults::load_from_environment();
    if (!start()) return 1;
    pool_->run();
    watchdog_->stop();
    if (heap_return_) heap_return_->stop();
    // Sessions still waiting for an inspection are ended while their io contexts exist.
    if (inspection_) inspection_->stop();
    // Events still queued are committed; their sessions are gone with the io contexts.
    if (journal_) journal_->stop();
    // Kept connections belong to the io contexts: closed while those still exist.
    http_->close();
    Event("stopped").info();
    return 0;
  }

 private:
  bool start() {
    try {
      configure_logging(log_settings(config_));
      log_config_warnings(config_);
      // Before the first certificate is parsed: the CAs', the CRLs', then every client's.
      if (!decode_certificate_rsa_keys_directly())
        Event("tls_rsa_key_decoding").add("result", "providers").warn();
      auto first = build_environment(config_, true, http_);
      first->indicators = journal_ = open_journal();
      if (journal_) first->inspection = inspection_ = open_inspection();
      slot_.emplace(first);
      metrics::gateway().build_info.with({MSSGATE_VERSION}).set(1);
      unsigned threads = config_.server.io_threads
                             ? config_.server.io_threads
                             : std::max(1u, std::thread::hardware_concurrency());
      pool_.emplace(threads);
      listeners_.emplace(*pool_, *slot_, shared_);
      listeners_->bind(config_);
      if (!config_.admin.listen.empty()) {
        admin_.emplace(
            pool_->main(), *first, [this] { return slot_->get(); }, shared_.counters);
      }
    } catch (const std::exception& e) {
      Event("start_failed").add("error", e.what()).error();
      std::cerr << "mssgate: " << e.what() << "\n";
      return false;
    }
    serve();
    return true;
  }

  std::shared_ptr<storage::IndicatorJournal> open_journal() {
    if (!config_.indicators.enabled()) return nullptr;
    storage::IndicatorJournal::Options options{config_.indicators.journal, config_.indicators.log};
    if (config_.indicators.in_postgresql) {
      // Shared by the gateways; this one's deliveries under way and log's place go by its name.
      options.open_store = [settings = config::postgresql_settings(
                                config_.storage, "mssgate " + config_.server.instance),
                            origin = config_.server.instance] {
        return storage::open_postgresql_journal(settings, origin);
      };
    }
    options.on_error = [](std::string_view what) {
      Event("indicator_journal_failed").add("reason", what).error();
    };
    options.before_catch_up = [] { faults::point("journal.catch_up"); };
    options.before_commit = [] { faults::point("journal.commit"); };
    options.on_log_opened = [](const storage::IndicatorJournal::LogOpened& opened) {
      if (opened.truncated_bytes > 0) {
        Event("indicator_log_truncated")
            .add("bytes", opened.truncated_bytes)
            .add("resume_after_seq", opened.resumed_after)
            .warn();
      }
      if (opened.at_start)
        Event("indicator_log_resumed").add("after_seq", opened.resumed_after).info();
    };
    options.on_pending_recovered = [](uint64_t events) {
      Event("indicator_pending_recovered").add("events", events).warn();
    };
    return std::make_shared<storage::IndicatorJournal>(std::move(options));
  }

  // Half the cores by default: the io threads keep the rest.
  std::shared_ptr<InspectionPool> open_inspection() const {
    unsigned threads = config_.indicators.inspection_threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency() / 2);
    return std::make_shared<InspectionPool>(threads, config_.indicators.inspection_memory);
  }

  void serve() {
    listeners_->start();
    reloader_.emplace(*slot_, http_);
    crl_refresher_.emplace(
        pool_->main(), http_, [this] { return slot_->get(); },
        [this] { reloader_->rebuild_tls(); });
    reloader_->set_crl_refresher(&*crl_refresher_);
    stop_.emplace(*pool_, *shared_.counters);
    signals_.emplace(pool_->main(), SIGINT, SIGTERM, SIGHUP);
    wait_for_signal();
    std::signal(SIGPIPE, SIG_IGN);
    watchdog_.emplace(*pool_, notifier_, config_.server.io_stall_timeout);
    if (config_.server.return_freed_memory) heap_return_.emplace();
    housekeeping_timer_.emplace(pool_->main());
    housekeeping();
    crl_refresher_->start();  // with no URL (yet: a reload may add some), it only waits
    reviewer_.emplace(
        pool_->main(), [this] { return slot_->get(); }, shared_.counters);
    reviewer_->start();
    spawn_task(pool_->main().get_executor(), announce_ready(), "ready");
  }

  void wait_for_signal() {
    signals_->async_wait([this](const error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        if (!stop_->stopping()) {
          notifier_.reloading();
          reloader_->reload();
          notifier_.ready("serving");
        }
      } else {
        if (!stop_->stopping()) notifier_.stopping("finishing the mail transactions under way");
        stop_->begin(signal == SIGTERM ? "SIGTERM" : "SIGINT",
                     slot_->get()->config.server.stop_timeout, [this] {
                       listeners_->stop();
                       crl_refresher_->stop();
                       if (reviewer_) reviewer_->stop();
                     });
      }
      wait_for_signal();
    });
  }

  // Summaries of repeated warnings, and of client addresses, whose window ended.
  void housekeeping() {
    flush_log_repeats();
    write_address_summaries(shared_.counters->clients);
    housekeeping_timer_->expires_after(std::chrono::seconds(1));
    housekeeping_timer_->async_wait([this](const error_code& ec) {
      if (!ec) housekeeping();
    });
  }

  // The backends are probed once (an unreachable one is logged, not fatal: mssgate must come up
  // while Dovecot or Postfix restarts), then the gateway says it is ready.
  asio::awaitable<void> announce_ready() {
    std::vector<std::pair<std::string, config::Endpoint>> backends;
    if (!config_.imap.starttls_listen.empty() || !config_.imap.tls_listen.empty())
      backends.emplace_back("imap", config_.imap.backend.address);
    if (!config_.smtp.starttls_listen.empty() || !config_.smtp.tls_listen.empty())
      backends.emplace_back("submission", config_.smtp.backend.address);
    if (!config_.lmtp.listen.empty()) backends.emplace_back("lmtp", config_.lmtp.backend);
    std::string summary;
    for (const auto& [name, endpoint] : backends) {
      HttpFailure failure = co_await probe_connect(endpoint.host, std::to_string(endpoint.port),
                                                   std::chrono::seconds(1));
      bool up = failure == HttpFailure::kNone;
      if (!up) {
        Event("backend_unreachable")
            .add("backend", name)
            .add("address", endpoint.text())
            .add("detail", "checked at start; sessions will try again")
            .warn();
      }
      summary += (summary.empty() ? "" : ",") + name + (up ? ":up" : ":down");
    }
    if (summary.empty()) summary = "none";
    auto ready = Clock::now() - started_;
    metrics::gateway().reload_timestamp.with().set(metrics::unix_now());
    metrics::gateway().reload_duration.with().set(std::chrono::duration<double>(ready).count());
    Event("ready")
        .add("io_threads", static_cast<uint64_t>(pool_->size()))
        .add("inspection_threads", static_cast<uint64_t>(inspection_ ? inspection_->threads() : 0))
        .add("startup_ms", microseconds(ready) / 1000)
        .add("startup_us", microseconds(ready))
        .add("backends", summary)
        .info();
    notifier_.ready("serving; backends " + summary);
  }

  const config::Config& config_;
  Clock::time_point started_;
  ServiceNotifier notifier_;
  // The process's one HTTP client (PSC, CRLs), closed once at the end.
  std::shared_ptr<HttpClient> http_ = std::make_shared<HttpClient>();
  std::shared_ptr<storage::IndicatorJournal> journal_;
  std::shared_ptr<InspectionPool> inspection_;  // with the journal
  std::optional<EnvironmentSlot> slot_;
  SessionShared shared_;
  // The io contexts outlive everything below them, which holds their sockets and timers.
  std::optional<IoPool> pool_;
  std::optional<Listeners> listeners_;
  std::optional<AdminServer> admin_;
  std::optional<Reloader> reloader_;
  std::optional<CrlRefresher> crl_refresher_;
  std::optional<SessionReviewer> reviewer_;
  std::optional<GracefulStop> stop_;
  std::optional<asio::signal_set> signals_;
  std::optional<IoWatchdog> watchdog_;     // on a thread of its own
  std::optional<HeapReturn> heap_return_;  // on a thread of its own
  std::optional<asio::steady_timer> housekeeping_timer_;
};

}  // namespace

int run_gateway(const config::Config& config) {
  return Gateway(config).run();
}

void check_gateway_config(const config::Config& config) {
  build_environment(config, false, std::make_shared<HttpClient>());
}

}  // namespace mssgate::daemon
