#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "daemon/net/client_stream.hpp"
#include "daemon/services/admission.hpp"
#include "daemon/services/gateway_environment.hpp"

namespace mssgate::daemon {

// Runs one LMTP connection from Postfix: relayed to Dovecot's LMTP command by command, the
// message inspected as it streams, each delivery counted for its recipient mailbox before
// Dovecot's per-recipient replies go back to Postfix.
void start_lmtp_session(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
                        const std::shared_ptr<const GatewayEnvironment>& environment,
                        const std::shared_ptr<GatewayCounters>& counters, Admission admission);

}  // namespace mssgate::daemon
