#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>

#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

enum class SmtpListenerKind { kStartTls, kImplicitTls };

// What the submission sessions learn of the backend's extensions, shared so that the EHLO
// answer before authentication advertises what the backend will accept.
struct SmtpBackendFeatures {
  std::atomic<bool> known{false};
  // While unknown, EHLO asks the backend at most once per probe interval, gateway-wide: an
  // unauthenticated client must not make mssgate connect to Postfix again and again.
  std::atomic<int64_t> next_probe_ms{0};
  std::atomic<bool> dsn{false};
  std::atomic<bool> smtputf8{false};
};

// Runs one SMTP submission client connection to its end on the socket's executor.
void start_smtp_session(boost::asio::ip::tcp::socket socket, SmtpListenerKind kind,
                        std::shared_ptr<const GatewayEnvironment> environment,
                        std::shared_ptr<GatewayCounters> counters,
                        std::shared_ptr<SmtpBackendFeatures> features);

}  // namespace mssgate::daemon
