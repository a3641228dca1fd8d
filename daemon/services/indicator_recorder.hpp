#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string_view>
#include <vector>

#include "daemon/core/lmtp_tap_core.hpp"
#include "daemon/core/submission_core.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/services/sign_in.hpp"

namespace mssgate::daemon {

// The sessions' way to the indicator journal: it builds each message's event from what the
// session learnt (who signed in, the recipients, the inspector's facts, the directory's view
// of the counterparts), hands it to the journal's writer thread and resumes the session once
// the event is durable; sign-ins are noted for the connections report. Does nothing when no
// journal is configured.
class IndicatorRecorder {
 public:
  explicit IndicatorRecorder(std::shared_ptr<const GatewayEnvironment> environment);

  bool enabled() const { return environment_->indicators != nullptr; }

  // True once the event is durable. False (and an error event) when the journal cannot take
  // it: the message itself is never held back for it.
  boost::asio::awaitable<bool> record_sent(std::string_view session_id,
                                           const SessionIdentity& identity,
                                           core::SentMessage message);
  boost::asio::awaitable<bool> record_received(std::string_view session_id,
                                               core::ReceivedMessage message);
  // A successful sign-in, for the connections report; sets the identity's mailbox type.
  void note_sign_in(SessionIdentity& identity, storage::SessionProtocol protocol);

 private:
  boost::asio::awaitable<bool> record(std::string_view session_id,
                                      std::vector<storage::IndicatorEvent> events);

  std::shared_ptr<const GatewayEnvironment> environment_;
};

}  // namespace mssgate::daemon
