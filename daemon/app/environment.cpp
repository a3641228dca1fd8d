#include "daemon/app/environment.hpp"

#include <filesystem>
#include <initializer_list>

#include "config/storage_settings.hpp"
#include "daemon/net/tls_policy.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/psc_issuer_client.hpp"

namespace mssgate::daemon {
namespace {

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

}  // namespace

std::shared_ptr<GatewayEnvironment> build_environment(const config::Config& config,
                                                      bool open_directory,
                                                      std::shared_ptr<HttpClient> http,
                                                      const GatewayEnvironment* running) {
  auto env = std::make_shared<GatewayEnvironment>();
  env->config = config;
  env->tls =
      std::make_shared<boost::asio::ssl::context>(build_server_tls_context(config.tls).release());
  env->psc_files_stamp =
      files_stamp({config.psc.client_certificate, config.psc.client_key, config.psc.ca_file});
  env->psc_budget = psc_budget_for(config.psc, running);
  env->validator = psc_validator_for(config.psc, env->psc_files_stamp, running, std::move(http),
                                     env->psc_budget);
  if (running) env->indicators = running->indicators;
  if (running) env->inspection = running->inspection;
  env->mailbox_gate =
      running && running->mailbox_gate ? running->mailbox_gate : std::make_shared<MailboxGate>();
  // Last, once nothing else can refuse the configuration.
  const auto& directory = config.directory;
  if (open_directory && running && running->directory &&
      running->config.directory.sqlite_path == directory.sqlite_path &&
      running->config.storage == config.storage) {
    env->directory = running->directory;
    env->directory->set_refresh_interval(directory.refresh_interval);
  } else if (open_directory) {
    auto source = config.storage.postgresql_enabled()
                      ? storage::open_postgresql_directory_source(
                            config::postgresql_settings(config.storage, "mssgate"))
                      : storage::open_sqlite_directory_source(directory.sqlite_path);
    env->directory =
        std::make_shared<DirectoryService>(std::move(source), directory.refresh_interval);
  }
  return env;
}

LogSettings log_settings(const config::Config& config) {
  return LogSettings{config.server.log_level, config.server.log_file, config.server.audit_log,
                     config.server.log_repeat_limit, config.server.log_repeat_window};
}

void log_config_warnings(const config::Config& config) {
  for (const auto& warning : config::config_warnings(config))
    Event("config_warning").add("key", warning.key).add("warning", warning.text).warn();
  // Connections past what the descriptors allow would fail at their backend after a whole
  // handshake; they are refused at accept instead, and the operator told why.
  uint64_t limit = open_file_limit();
  uint64_t allowed = client_connections_allowed(config, limit);
  if (allowed < config.server.max_connections) {
    Event("open_file_limit_low")
        .add("open_file_limit", limit)
        .add("descriptors_needed", descriptors_needed(config))
        .add("max_connections", uint64_t{config.server.max_connections})
        .add("connections_allowed", allowed)
        .warn();
  }
}

}  // namespace mssgate::daemon
