#include "daemon/app/reloader.hpp"

#include <chrono>

#include "daemon/net/tls_policy.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

Reloader::Reloader(EnvironmentSlot& slot, std::shared_ptr<HttpClient> http)
    : slot_(slot), http_(std::move(http)) {}

void Reloader::reload() {
  auto begin = std::chrono::steady_clock::now();
  auto running = slot_.get();
  const std::string& path = running->config.source_path;
  try {
    config::Config next = config::load_config(path);
    auto restart_keys = config::keep_restart_only_settings(running->config, next);
    auto environment = build_environment(next, true, http_, running.get());
    configure_logging(log_settings(next));
    log_config_warnings(next);
    slot_.set(environment);
    // Another token policy or other PSC files: sessions opened before the reload sign in with
    // the new validator too.
    if (running->validator && environment->validator &&
        running->validator != environment->validator)
      running->validator->supersede(environment->validator);
    // Another database: the old service stops refreshing (its last snapshot stays with the
    // sessions that started with it).
    if (running->directory && running->directory != environment->directory)
      running->directory->stop();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    reloaded(*running, *environment, restart_keys, seconds);
  } catch (const std::exception& e) {
    metrics::gateway().reloads.with({"failed"}).inc();
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
}

void Reloader::reloaded(const GatewayEnvironment& running, const GatewayEnvironment& next,
                        const std::vector<std::string>& restart_keys, double seconds) {
  auto& metrics = metrics::gateway();
  metrics.reloads.with({"ok"}).inc();
  metrics.reload_timestamp.with().set(metrics::unix_now());
  metrics.reload_duration.with().set(seconds);
  bool kept = next.validator && next.validator == running.validator;
  Event("reloaded")
      .add("config", next.config.source_path)
      .add("duration_us", static_cast<int64_t>(seconds * 1e6))
      .add("psc_cache", !next.validator ? "none"
                        : kept          ? "kept"
                                        : "new")
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
  if (crl_refresher_ && !next.config.tls.crl_urls.empty()) crl_refresher_->refresh_now();
}

void Reloader::rebuild_tls() {
  auto running = slot_.get();
  try {
    auto next = std::make_shared<GatewayEnvironment>(*running);
    next->tls = std::make_shared<boost::asio::ssl::context>(
        build_server_tls_context(running->config.tls).release());
    slot_.set(next);
    Event("tls_context_rebuilt").add("cause", "crl_updated").audit().info();
  } catch (const std::exception& e) {
    Event("tls_context_rebuild_failed").add("error", e.what()).audit().error();
  }
}

}  // namespace mssgate::daemon
