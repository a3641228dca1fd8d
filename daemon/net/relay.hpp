#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "daemon/net/backend_link.hpp"
#include "daemon/net/client_stream.hpp"
#include "protocol/imap_response.hpp"

namespace mssgate::daemon {

// Why one direction of a relay ended: the error (eof when closed) and on which side.
struct RelayEnd {
  boost::system::error_code error;
  std::string_view side;  // client or backend
};

// The two directions of a relayed session, each until a side closes or fails. `leftover` is
// sent first. `framing`, when given, is fed every byte the backend's direction writes.
boost::asio::awaitable<RelayEnd> relay_client_to_backend(
    ClientStream& client, BackendLink& backend, std::string leftover,
    DeadlineWatch::Clock::duration idle_timeout, DeadlineWatch::Clock::duration write_timeout);
boost::asio::awaitable<RelayEnd> relay_backend_to_client(
    BackendLink& backend, ClientStream& client, std::string leftover,
    DeadlineWatch::Clock::duration write_timeout, protocol::ImapResponseFraming* framing = nullptr);

}  // namespace mssgate::daemon
