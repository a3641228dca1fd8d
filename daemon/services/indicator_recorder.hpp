#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/core/lmtp_tap_core.hpp"
#include "daemon/core/submission_core.hpp"
#include "daemon/services/gateway_environment.hpp"
#include "daemon/services/sign_in.hpp"

namespace mssgate::daemon {

// The pending events of one delivery through the LMTP tap (IndicatorRecorder::record_pending).
struct PendingDelivery {
  std::vector<int64_t> ids;  // one per recipient, in order; empty: not recorded
  std::vector<std::pair<std::string, std::string>> names;  // each one's mailbox and key
  bool structured = false;                                 // the message has CDA documents
  bool qualified = false;                                  // with a qualified INS
};

// The sessions' way to the indicator journal: it builds each message's event from what the
// session learnt (who signed in, the recipients, the inspector's facts, the directory's view
// of the counterparts), hands it to the journal's writer thread and resumes the session once
// the event is durable; sign-ins likewise, for the connections report, before their answer.
// Does nothing when no journal is configured.
class IndicatorRecorder {
 public:
  explicit IndicatorRecorder(std::shared_ptr<const GatewayEnvironment> environment);

  bool enabled() const { return environment_->indicators != nullptr; }

  // True once the event is durable. False (and an error event) when the journal cannot take
  // it: the message itself is never held back for it.
  boost::asio::awaitable<bool> record_sent(std::string_view session_id,
                                           const SessionIdentity& identity,
                                           core::SentMessage message);
  // The events of a message the LMTP tap is about to hand over to Dovecot, one per recipient
  // Dovecot accepted at RCPT, made durable as pending events. Empty ids (and an error event)
  // when the journal cannot take them: the message is never held back for it.
  boost::asio::awaitable<PendingDelivery> record_pending(std::string_view session_id,
                                                         core::ReceivedMessage message);
  // Dovecot's answers (`delivered`, one per recipient): the delivered recipients' events are
  // counted, the others dropped. Waits for the commit only when `wait`.
  boost::asio::awaitable<void> settle(std::string_view session_id, PendingDelivery pending,
                                      std::vector<bool> delivered, bool wait);
  // A successful sign-in, as the connections report counts it (none without a journal); sets
  // the identity's mailbox type.
  std::optional<storage::ConnectionEvent> sign_in(SessionIdentity& identity,
                                                  storage::SessionProtocol protocol) const;
  // A refused one: its reason word, the mechanism tried and the mailbox asked for (kept only
  // when the directory has it: a client may name anything).
  std::optional<storage::ConnectionEvent> refused_sign_in(const SessionIdentity& identity,
                                                          storage::SessionProtocol protocol,
                                                          std::string_view mechanism,
                                                          std::string_view reason,
                                                          std::string_view mailbox) const;
  // Writes a sign-in and resumes once it is durable: the session answers the sign-in after, so
  // that a kill -9 loses none that a client was answered. When the journal cannot take it, an
  // error event; the answer is never held back for it.
  boost::asio::awaitable<void> record_sign_in(std::string_view session_id,
                                              storage::ConnectionEvent event) const;

 private:
  boost::asio::awaitable<bool> record(std::string_view session_id,
                                      std::vector<storage::IndicatorEvent> events);
  std::vector<storage::IndicatorEvent> received_events(const core::ReceivedMessage& message) const;

  std::shared_ptr<const GatewayEnvironment> environment_;
};

}  // namespace mssgate::daemon
