#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
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

// One burst of a relayed session's direction: `leftover` first, then the bytes its source has
// to read, until the source has none waiting (nothing: the direction then waits for its source
// to be readable again, without a coroutine, as its stream's when_readable) or a side closes or
// fails (how it ended). A burst with no leftover reads first: it was started because its source
// became readable. The buffer is held for the burst only. `framing`, when given, is fed every
// byte the backend's direction writes.
boost::asio::awaitable<std::optional<RelayEnd>> relay_client_burst(
    ClientStream& client, BackendLink& backend, std::string leftover,
    DeadlineWatch::Clock::duration idle_timeout, DeadlineWatch::Clock::duration write_timeout);
boost::asio::awaitable<std::optional<RelayEnd>> relay_backend_burst(
    BackendLink& backend, ClientStream& client, std::string leftover,
    DeadlineWatch::Clock::duration write_timeout, protocol::ImapResponseFraming* framing = nullptr);

}  // namespace mssgate::daemon
