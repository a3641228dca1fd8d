#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "daemon/net/client_stream.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/session/postfix_client.hpp"

namespace mssgate::daemon {

enum class SmtpListenerKind { kStartTls, kImplicitTls };

// Runs one SMTP submission client connection to its end on the socket's executor.
void start_smtp_session(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
                        SmtpListenerKind kind,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters,
                        std::shared_ptr<SmtpBackendFeatures> features, Admission admission);

}  // namespace mssgate::daemon
