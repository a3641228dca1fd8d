#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "daemon/net/client_stream.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

enum class ImapListenerKind { kStartTls, kImplicitTls };

// Runs one IMAP client connection to its end on the socket's executor: the pre-login core,
// the sign-in, the Dovecot login, then the relay.
void start_imap_session(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
                        ImapListenerKind kind,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters, Admission admission);

}  // namespace mssgate::daemon
