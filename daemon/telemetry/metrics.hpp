#pragma once

#include <atomic>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::daemon::metrics {

// The process's metrics, rendered as OpenMetrics text for /metrics. Updating a sample is an
// atomic operation; looking a labelled sample up takes a short lock, so the hot paths look
// theirs up once and keep the reference (samples live as long as the process).

class Counter {
 public:
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double value) noexcept;
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, then the +Inf bucket (= count).
  std::vector<uint64_t> cumulative() const;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

enum class Type { kCounter, kGauge, kHistogram };

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Type type, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)) {}
  virtual ~FamilyBase() = default;
  // `instance`: a value for an `instance` label on every sample (empty: none).
  virtual void render(std::string& out, std::string_view instance = {}) const = 0;

 protected:
  // `{a="x",b="y"}` for the label values, with an extra label (le) when given.
  std::string label_text(std::string_view instance, const std::vector<std::string>& values,
                         std::string_view extra_name = {}, std::string_view extra_value = {}) const;
  void render_header(std::string& out) const;

  std::string name_;
  std::string help_;
  Type type_;
  std::vector<std::string> labels_;
};

template <class Sample>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, Type type, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The sample for these label values (as many as the family has labels), made on first use.
  Sample& with(std::initializer_list<std::string_view> values = {});

  void render(std::string& out, std::string_view instance = {}) const override;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Sample>> samples_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Every metric mssgate exposes; docs/operator-guide.md lists them.
struct GatewayMetrics {
  GatewayMetrics();
  // Every family; with `instance`, each sample carries instance="..." (gateways of a cluster).
  std::string render_openmetrics(std::string_view instance = {}) const;

  GaugeFamily build_info;
  CounterFamily connections;              // {listener}: accepted
  GaugeFamily sessions;                   // {listener, state}: open, pre_auth or authenticated
  CounterFamily sessions_failed;          // {protocol}: ended by an internal error
  CounterFamily sessions_withdrawn;       // {protocol, reason}: authorisation withdrawn
  CounterFamily tasks_failed;             // {task}: a background task ended by an internal error
  CounterFamily connections_refused;      // {listener, reason}
  CounterFamily tls_handshakes;           // {listener, kind}: full, resumed
  CounterFamily tls_failures;             // {listener, reason}
  CounterFamily authentications;          // {protocol, mechanism, result}
  CounterFamily sign_ins_limited;         // {protocol, limit}: refused by a limit
  CounterFamily events_summarised;        // {event}: written as a count in a summary
  GaugeFamily client_addresses;           // addresses the per-address limits know
  CounterFamily token_cache;              // {result}: hit, miss
  HistogramFamily issuer_latency;         // {endpoint}
  CounterFamily issuer_failures;          // {endpoint}
  CounterFamily issuer_budget_refusals;   // {endpoint, limit}: in_flight, rate
  CounterFamily token_refusals;           // {reason}: refused by mssgate's own checks
  CounterFamily backend_failures;         // {backend, step}
  CounterFamily messages;                 // {direction}: sent, received
  CounterFamily message_bytes;            // {direction}
  CounterFamily relayed_bytes;            // {protocol, direction}: to_backend, to_client
  GaugeFamily relay_buffers;              // relay buffers held now (by bytes under way)
  GaugeFamily tls_handshakes_waiting;     // connections waiting for their TLS handshake's turn
  CounterFamily indicator_events;         // {direction, result}: recorded, not_recorded
  CounterFamily indicator_structured;     // {direction}: with at least one CDA document
  CounterFamily indicator_ins_qualified;  // {direction}
  HistogramFamily session_duration;       // {protocol}
  HistogramFamily command_duration;       // {protocol, command}
  CounterFamily reloads;                  // {result}
  GaugeFamily reload_timestamp;           // time of the last successful (re)load
  GaugeFamily reload_duration;            // seconds the last successful (re)load took
  CounterFamily crl_refreshes;            // {result}: updated, unchanged
  CounterFamily crl_refresh_failures;     // {reason}
  GaugeFamily crl_last_success;           // {url}: time of the last good download
  CounterFamily directory_refreshes;      // {result}: ok, failed (the first load included)
  GaugeFamily directory_mailboxes;        // mailboxes in the snapshot in force
  GaugeFamily directory_bytes;            // bytes the snapshot in force holds
  GaugeFamily directory_last_load;        // time the snapshot in force was built
  GaugeFamily directory_load_duration;    // seconds building it took
  CounterFamily log_suppressed;           // {event}
  GaugeFamily backend_up;                 // {backend}: 1 when the last readiness probe connected

 private:
  std::vector<const FamilyBase*> all_;
};

GatewayMetrics& gateway();

// Seconds since the epoch, for timestamp gauges.
double unix_now();

}  // namespace mssgate::daemon::metrics
