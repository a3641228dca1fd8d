#include "daemon/telemetry/metrics.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace mssgate::daemon::metrics {
namespace {

std::string number_text(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Seconds buckets from 1 ms to 5 min, enough for commands, sign-ins and sessions alike.
const std::vector<double> kLatencyBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,      2.5,   5,    10,    30,   60,  300};
const std::vector<double> kSessionBuckets{0.1, 1, 10, 60, 300, 1800, 3600, 14400, 86400};

}  // namespace

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i].store(0);
}

void Histogram::observe(double value) noexcept {
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                 bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::string FamilyBase::label_text(std::string_view instance,
                                   const std::vector<std::string>& values,
                                   std::string_view extra_name,
                                   std::string_view extra_value) const {
  if (instance.empty() && labels_.empty() && extra_name.empty()) return {};
  std::string out = "{";
  if (!instance.empty()) {
    out += "instance=\"";
    append_escaped(out, instance);
    out += '"';
    if (!labels_.empty() || !extra_name.empty()) out += ',';
  }
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (i) out += ',';
    out += labels_[i];
    out += "=\"";
    append_escaped(out, i < values.size() ? values[i] : std::string());
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!labels_.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

void FamilyBase::render_header(std::string& out) const {
  static constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  out += "# TYPE " + name_ + " " + kTypeNames[static_cast<int>(type_)] + "\n";
  out += "# HELP " + name_ + " " + help_ + "\n";
}

template <class Sample>
Sample& Family<Sample>::with(std::initializer_list<std::string_view> values) {
  std::vector<std::string> key(values.begin(), values.end());
  std::lock_guard lock(mutex_);
  auto& slot = samples_[std::move(key)];
  if (!slot) {
    if constexpr (std::is_same_v<Sample, Histogram>) {
      slot = std::make_unique<Histogram>(bounds_);
    } else {
      slot = std::make_unique<Sample>();
    }
  }
  return *slot;
}

template <class Sample>
void Family<Sample>::render(std::string& out, std::string_view instance) const {
  render_header(out);
  std::lock_guard lock(mutex_);
  for (const auto& [values, sample] : samples_) {
    if constexpr (std::is_same_v<Sample, Counter>) {
      out += name_ + "_total" + label_text(instance, values) + " " +
             std::to_string(sample->value()) + "\n";
    } else if constexpr (std::is_same_v<Sample, Gauge>) {
      out += name_ + label_text(instance, values) + " " + number_text(sample->value()) + "\n";
    } else {
      auto counts = sample->cumulative();
      const auto& bounds = sample->bounds();
      for (size_t i = 0; i < bounds.size(); ++i) {
        out += name_ + "_bucket" + label_text(instance, values, "le", number_text(bounds[i])) +
               " " + std::to_string(counts[i]) + "\n";
      }
      out += name_ + "_bucket" + label_text(instance, values, "le", "+Inf") + " " +
             std::to_string(counts.back()) + "\n";
      out += name_ + "_count" + label_text(instance, values) + " " + std::to_string(counts.back()) +
             "\n";
      out +=
          name_ + "_sum" + label_text(instance, values) + " " + number_text(sample->sum()) + "\n";
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

GatewayMetrics::GatewayMetrics()
    : build_info("mssgate_build_info", "The running version.", Type::kGauge, {"version"}),
      connections("mssgate_connections", "Client connections accepted.", Type::kCounter,
                  {"listener"}),
      sessions("mssgate_sessions", "Open client connections by state.", Type::kGauge,
               {"listener", "state"}),
      sessions_failed("mssgate_sessions_failed",
                      "Sessions ended by an internal error (logged as session_failed).",
                      Type::kCounter, {"protocol"}),
      sessions_withdrawn("mssgate_sessions_withdrawn",
                         "Signed-in sessions ended because their authorisation was withdrawn "
                         "(logged as authorization_withdrawn).",
                         Type::kCounter, {"protocol", "reason"}),
      tasks_failed("mssgate_tasks_failed",
                   "Background tasks (listeners, admin requests, CRL rounds) ended by an internal "
                   "error (logged as task_failed).",
                   Type::kCounter, {"task"}),
      connections_refused("mssgate_connections_refused",
                          "Client connections closed at once (connection caps).", Type::kCounter,
                          {"listener", "reason"}),
      tls_handshakes("mssgate_tls_handshakes",
                     "TLS handshakes that succeeded: full, or resumed from a session the "
                     "gateway kept.",
                     Type::kCounter, {"listener", "kind"}),
      tls_failures("mssgate_tls_handshake_failures", "TLS handshakes that failed.", Type::kCounter,
                   {"listener", "reason"}),
      authentications("mssgate_authentications", "Authentication attempts.", Type::kCounter,
                      {"protocol", "mechanism", "result"}),
      sign_ins_limited("mssgate_sign_ins_limited",
                       "Sign-ins refused by a limit (failed sign-ins of the address, sessions of "
                       "the professional or of the certificate).",
                       Type::kCounter, {"protocol", "limit"}),
      events_summarised("mssgate_events_summarised",
                        "Events about a client address left out of the log beyond its rate, and "
                        "counted in a summary event.",
                        Type::kCounter, {"event"}),
      client_addresses("mssgate_client_addresses",
                       "Client addresses the per-address limits keep counts for.", Type::kGauge,
                       {}),
      token_cache("mssgate_token_cache_lookups",
                  "Pro Santé Connect tokens looked up in the validator's cache.", Type::kCounter,
                  {"result"}),
      issuer_latency("mssgate_issuer_request_duration_seconds",
                     "Requests to Pro Santé Connect, from connect to the answer.", Type::kHistogram,
                     {"endpoint"}, kLatencyBuckets),
      issuer_failures("mssgate_issuer_request_failures",
                      "Requests to Pro Santé Connect that got no usable answer.", Type::kCounter,
                      {"endpoint"}),
      issuer_budget_refusals(
          "mssgate_issuer_budget_refusals",
          "Requests to Pro Santé Connect not made: the budget (psc.issuer_max_in_flight, "
          "psc.issuer_max_per_second, psc.issuer_burst) was spent.",
          Type::kCounter, {"endpoint", "limit"}),
      token_refusals("mssgate_token_refusals",
                     "Tokens refused by mssgate's own checks: their shape before Pro Santé Connect "
                     "is asked, the [psc] policy after.",
                     Type::kCounter, {"reason"}),
      backend_failures("mssgate_backend_failures", "Backend connections or logins that failed.",
                       Type::kCounter, {"backend", "step"}),
      messages("mssgate_messages", "Messages accepted by the backend.", Type::kCounter,
               {"direction"}),
      message_bytes("mssgate_message_bytes", "Size of the messages accepted by the backend.",
                    Type::kCounter, {"direction"}),
      relayed_bytes("mssgate_relayed_bytes", "Bytes relayed between clients and backends.",
                    Type::kCounter, {"protocol", "direction"}),
      relay_buffers("mssgate_relay_buffers",
                    "Relay buffers held now: each relayed direction holds one only while bytes "
                    "flow through it.",
                    Type::kGauge, {}),
      tls_handshakes_waiting("mssgate_tls_handshakes_waiting",
                             "Client connections whose first TLS bytes came, waiting for their "
                             "handshake's turn: at most 64 handshakes are under way at once on "
                             "each io thread.",
                             Type::kGauge, {}),
      indicator_events("mssgate_indicator_events", "Indicator events by journal outcome.",
                       Type::kCounter, {"direction", "result"}),
      indicator_structured("mssgate_indicator_structured_messages",
                           "Counted messages holding at least one CDA document.", Type::kCounter,
                           {"direction"}),
      indicator_ins_qualified("mssgate_indicator_qualified_ins_messages",
                              "Counted messages whose CDA carries a qualified INS.", Type::kCounter,
                              {"direction"}),
      session_duration("mssgate_session_duration_seconds", "Client sessions, from accept to close.",
                       Type::kHistogram, {"protocol"}, kSessionBuckets),
      command_duration("mssgate_command_duration_seconds",
                       "Client commands, from the command line read to the answer written.",
                       Type::kHistogram, {"protocol", "command"}, kLatencyBuckets),
      reloads("mssgate_config_reloads", "Configuration reloads.", Type::kCounter, {"result"}),
      reload_timestamp("mssgate_config_last_load_timestamp_seconds",
                       "When the configuration in force was loaded.", Type::kGauge, {}),
      reload_duration("mssgate_config_last_load_duration_seconds",
                      "How long loading the configuration in force took.", Type::kGauge, {}),
      crl_refreshes("mssgate_crl_refreshes", "CRL downloads that were verified and kept.",
                    Type::kCounter, {"result"}),
      crl_refresh_failures("mssgate_crl_refresh_failures",
                           "CRL downloads refused or failed; the last good CRL stays in force.",
                           Type::kCounter, {"reason"}),
      crl_last_success("mssgate_crl_last_success_timestamp_seconds",
                       "When each CRL URL last gave a good CRL.", Type::kGauge, {"url"}),
      directory_refreshes("mssgate_directory_refreshes",
                          "Directory snapshots built (ok) or refreshes that failed (failed).",
                          Type::kCounter, {"result"}),
      directory_mailboxes("mssgate_directory_mailboxes",
                          "Mailboxes in the directory snapshot in force.", Type::kGauge, {}),
      directory_bytes("mssgate_directory_snapshot_bytes",
                      "Bytes the directory snapshot in force holds.", Type::kGauge, {}),
      directory_last_load("mssgate_directory_last_load_timestamp_seconds",
                          "When the directory snapshot in force was built.", Type::kGauge, {}),
      directory_load_duration("mssgate_directory_last_load_duration_seconds",
                              "How long building the directory snapshot in force took.",
                              Type::kGauge, {}),
      log_suppressed("mssgate_log_suppressed", "Repeated warnings and errors left out of the log.",
                     Type::kCounter, {"event"}),
      backend_up("mssgate_backend_up",
                 "1 when the backend accepted a connection at the last probe.", Type::kGauge,
                 {"backend"}) {
  all_ = {&build_info,
          &connections,
          &sessions,
          &sessions_failed,
          &sessions_withdrawn,
          &tasks_failed,
          &connections_refused,
          &tls_handshakes,
          &tls_failures,
          &authentications,
          &sign_ins_limited,
          &events_summarised,
          &client_addresses,
          &token_cache,
          &issuer_latency,
          &issuer_failures,
          &issuer_budget_refusals,
          &token_refusals,
          &backend_failures,
          &messages,
          &message_bytes,
          &relayed_bytes,
          &relay_buffers,
          &tls_handshakes_waiting,
          &indicator_events,
          &indicator_structured,
          &indicator_ins_qualified,
          &session_duration,
          &command_duration,
          &reloads,
          &reload_timestamp,
          &reload_duration,
          &crl_refreshes,
          &crl_refresh_failures,
          &crl_last_success,
          &directory_refreshes,
          &directory_mailboxes,
          &directory_bytes,
          &directory_last_load,
          &directory_load_duration,
          &log_suppressed,
          &backend_up};
}

std::string GatewayMetrics::render_openmetrics(std::string_view instance) const {
  std::string out;
  out.reserve(16384);
  for (const auto* family : all_)
    family->render(out, instance);
  out += "# EOF\n";
  return out;
}

GatewayMetrics& gateway() {
  static GatewayMetrics instance;
  return instance;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace mssgate::daemon::metrics
