#include "daemon/services/indicator_recorder.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>

#include "daemon/services/indicator_event.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/ascii.hpp"
#include "protocol/mailbox_address.hpp"
#include "storage/clock.hpp"

namespace mssgate::daemon {

IndicatorRecorder::IndicatorRecorder(std::shared_ptr<const GatewayEnvironment> environment)
    : environment_(std::move(environment)) {}

namespace {

// The caps on what a sign-in event takes from a token, a certificate or a refusal.
constexpr size_t kMaxSignInWordBytes = 64;

// Who signed in, as the connections report keeps it: the professional a token named, and the
// LPS (the token's client, or the certificate's organisation).
storage::ConnectionEvent sign_in_event(const SessionIdentity& identity,
                                       storage::SessionProtocol protocol, bool utc_days) {
  storage::ConnectionEvent event;
  event.at_ms = storage::now_ms();
  event.day = storage::day_of(event.at_ms, utc_days);
  event.auth_mode = identity.auth_mode;
  event.protocol = protocol;
  event.professional = protocol::sanitized_text(identity.professional_id, kMaxSignInWordBytes);
  std::string_view lps = identity.azp;
  if (lps.empty() && identity.certificate) lps = identity.certificate->organisation;
  event.lps = protocol::sanitized_text(lps, kMaxSignInWordBytes);
  return event;
}

using HandOver = std::function<void(storage::IndicatorJournal::Done)>;

// Hands something to the journal (`hand_over` passes it the waiter) and resumes the session,
// on its own executor, once the journal says whether it is durable.
boost::asio::awaitable<bool> until_committed(HandOver hand_over) {
  auto initiate = [hand_over = std::move(hand_over)](auto completion) mutable {
    auto executor = boost::asio::get_associated_executor(completion);
    // (Shared: the journal's callback is a std::function, which copies.)
    auto handler = std::make_shared<decltype(completion)>(std::move(completion));
    // The callback runs on the journal's thread; the session resumes on its own.
    hand_over([handler, executor](bool durable) {
      boost::asio::post(executor, [handler, durable] { std::move (*handler)(durable); });
    });
  };
  bool durable =
      co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(bool)>(
          std::move(initiate), boost::asio::use_awaitable);
  co_return durable;
}

}  // namespace

std::optional<storage::ConnectionEvent> IndicatorRecorder::sign_in(
    SessionIdentity& identity, storage::SessionProtocol protocol) const {
  if (!enabled() || identity.mailbox.empty()) return std::nullopt;
  identity.mailbox_type = mailbox_type_of(identity.mailbox, *environment_->directory->snapshot());
  auto connection = sign_in_event(identity, protocol, environment_->config.indicators.utc_days);
  connection.mailbox = identity.mailbox;
  connection.mailbox_type = identity.mailbox_type;
  return connection;
}

std::optional<storage::ConnectionEvent> IndicatorRecorder::refused_sign_in(
    const SessionIdentity& identity, storage::SessionProtocol protocol, std::string_view mechanism,
    std::string_view reason, std::string_view mailbox) const {
  if (!enabled()) return std::nullopt;
  auto refusal = sign_in_event(identity, protocol, environment_->config.indicators.utc_days);
  refusal.auth_mode = protocol::ascii_iequals(mechanism, "EXTERNAL")
                          ? storage::AuthMode::kCertificate
                      : protocol::ascii_iequals(mechanism, "XOAUTH2") ||
                              protocol::ascii_iequals(mechanism, "OAUTHBEARER")
                          ? storage::AuthMode::kPsc
                          : storage::AuthMode::kNone;
  refusal.failure =
      protocol::sanitized_text(reason.empty() ? "refused" : reason, kMaxSignInWordBytes);
  auto normalized = protocol::normalize_mailbox_address(mailbox);
  if (normalized) {
    refusal.mailbox_type = mailbox_type_of(*normalized, *environment_->directory->snapshot());
    if (refusal.mailbox_type) refusal.mailbox = *normalized;
  }
  return refusal;
}

boost::asio::awaitable<void> IndicatorRecorder::record_sign_in(
    std::string_view session_id, storage::ConnectionEvent event) const {
  auto journal = environment_->indicators;
  if (!journal) co_return;
  std::string session(session_id);  // the caller's view may not outlive the wait
  std::string mailbox = event.mailbox;
  // (Named: GCC 12 destroys a temporary of a co_await expression twice.)
  HandOver hand_over = [journal,
                        event = std::move(event)](storage::IndicatorJournal::Done done) mutable {
    journal->note_connection(std::move(event), std::move(done));
  };
  bool durable = co_await until_committed(std::move(hand_over));
  if (!durable) {
    Event failure("sign_in_not_recorded");
    failure.add("session", session);
    if (!mailbox.empty()) failure.add("mailbox", mailbox);
    failure.add("reason", "journal_write_failed").error();
  }
}

boost::asio::awaitable<bool> IndicatorRecorder::record_sent(std::string_view session_id,
                                                            const SessionIdentity& identity,
                                                            core::SentMessage message) {
  const auto& settings = environment_->config.indicators;
  auto event = new_indicator_event(storage::Direction::kSent, identity.mailbox, settings);
  event.key = "sent:" + random_key();
  event.mailbox_type = identity.mailbox_type;
  event.auth_mode = identity.auth_mode;
  event.azp = identity.azp;
  event.queue_id = message.queue_id;
  event.envelope_id = message.envelope_id;
  event.size = message.size;
  event.recipients = static_cast<unsigned>(message.recipients.size());
  auto directory = environment_->directory->snapshot();
  for (const auto& address : message.recipients) {
    switch (counterpart_of(address, settings, *directory)) {
      case Counterpart::kSameOperator:
        ++event.to_same_operator;
        break;
      case Counterpart::kOtherOperator:
        ++event.to_other_operator;
        break;
      case Counterpart::kPatient:
        ++event.to_patient;
        break;
    }
  }
  fill_from_facts(event, message.facts);
  std::vector<storage::IndicatorEvent> events;
  events.push_back(std::move(event));
  bool durable = co_await record(session_id, std::move(events));
  co_return durable;
}

std::vector<storage::IndicatorEvent> IndicatorRecorder::received_events(
    const core::ReceivedMessage& message) const {
  const auto& settings = environment_->config.indicators;
  auto snapshot = environment_->directory->snapshot();
  const storage::DirectoryLookup& directory = *snapshot;
  // The sender is the same for every recipient: its class is looked up once.
  Counterpart counterpart = counterpart_of(
      message.sender.empty() ? message.facts.from : message.sender, settings, directory);
  std::vector<storage::IndicatorEvent> events;
  for (const auto& address : message.recipients) {
    // (Dovecot accepted it; still, the tap's envelope is what Postfix wrote.)
    std::string recipient = protocol::sanitized_text(address, storage::kMaxAddressBytes);
    auto event = new_indicator_event(storage::Direction::kReceived, recipient, settings);
    event.key = "received:" + recipient + ":" + message.fingerprint;
    event.mailbox_type = mailbox_type_of(recipient, directory);
    event.auth_mode = storage::AuthMode::kNone;
    event.size = message.size;
    event.recipients = 1;
    event.counterpart = counterpart;
    fill_from_facts(event, message.facts);
    events.push_back(std::move(event));
  }
  return events;
}

boost::asio::awaitable<PendingDelivery> IndicatorRecorder::record_pending(
    std::string_view session_id, core::ReceivedMessage message) {
  PendingDelivery pending;
  auto journal = environment_->indicators;
  if (!journal || message.recipients.empty()) co_return pending;
  auto events = received_events(message);
  for (const auto& e : events)
    pending.names.emplace_back(e.mailbox, e.key);
  pending.structured = !events.front().documents.empty();
  pending.qualified = events.front().ins == storage::InsClass::kQualified;
  std::string session(session_id);  // the caller's view may not outlive the wait
  auto initiate = [journal, events = std::move(events)](auto completion) mutable {
    auto executor = boost::asio::get_associated_executor(completion);
    // (Shared: the journal's callback is a std::function, which copies.)
    auto handler = std::make_shared<decltype(completion)>(std::move(completion));
    // The callback runs on the journal's thread; the session resumes on its own.
    journal->record_pending(std::move(events), [handler, executor](std::vector<int64_t> ids) {
      boost::asio::post(executor, [handler, ids = std::move(ids)]() mutable {
        std::move (*handler)(std::move(ids));
      });
    });
  };
  pending.ids = co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable),
                                                     void(std::vector<int64_t>)>(
      std::move(initiate), boost::asio::use_awaitable);
  if (pending.ids.empty()) {
    for (const auto& [mailbox, key] : pending.names) {
      metrics::gateway().indicator_events.with({"received", "not_recorded"}).inc();
      Event("indicator_not_recorded")
          .add("session", session)
          .add("mailbox", mailbox)
          .add("key", key)
          .add("reason", "journal_write_failed")
          .error();
    }
  }
  co_return pending;
}

boost::asio::awaitable<void> IndicatorRecorder::settle(std::string_view session_id,
                                                       PendingDelivery pending,
                                                       std::vector<bool> delivered, bool wait) {
  auto journal = environment_->indicators;
  if (!journal || pending.ids.empty()) co_return;
  std::vector<int64_t> counted, dropped;
  for (size_t i = 0; i < pending.ids.size(); ++i) {
    bool yes = i < delivered.size() && delivered[i];
    (yes ? counted : dropped).push_back(pending.ids[i]);
  }
  auto& metrics = metrics::gateway();
  metrics.indicator_events.with({"received", "recorded"}).inc(counted.size());
  if (pending.structured) metrics.indicator_structured.with({"received"}).inc(counted.size());
  if (pending.qualified) metrics.indicator_ins_qualified.with({"received"}).inc(counted.size());
  if (!wait) {
    // Postfix hears Dovecot's answer at once: the events count from this commit, or from the
    // next opening of the journal if a crash comes first.
    journal->settle(std::move(counted), std::move(dropped), nullptr);
    co_return;
  }
  std::string session(session_id);
  size_t settled = counted.size() + dropped.size();
  HandOver hand_over = [journal, counted = std::move(counted), dropped = std::move(dropped)](
                           storage::IndicatorJournal::Done done) mutable {
    journal->settle(std::move(counted), std::move(dropped), std::move(done));
  };
  bool durable = co_await until_committed(std::move(hand_over));
  if (!durable) {
    Event("indicator_not_settled")
        .add("session", session)
        .add("events", settled)
        .add("reason", "journal_write_failed")
        .error();
  }
}

boost::asio::awaitable<bool> IndicatorRecorder::record(
    std::string_view session_id, std::vector<storage::IndicatorEvent> events) {
  auto journal = environment_->indicators;
  if (!journal || events.empty()) co_return false;
  std::vector<std::pair<std::string, std::string>> names;  // for the error event
  std::vector<storage::Direction> directions;
  for (const auto& e : events) {
    names.emplace_back(e.mailbox, e.key);
    directions.push_back(e.direction);
    auto direction = storage::to_string(e.direction);
    if (!e.documents.empty()) metrics::gateway().indicator_structured.with({direction}).inc();
    if (e.ins == storage::InsClass::kQualified)
      metrics::gateway().indicator_ins_qualified.with({direction}).inc();
  }
  std::string session(session_id);  // the caller's view may not outlive the wait
  // The events go to the journal together; the session resumes when the last is committed.
  auto initiate = [journal, events = std::move(events)](auto completion) mutable {
    using Completion = decltype(completion);
    struct Waiting {
      Completion handler;
      size_t left;
      bool durable = true;
    };
    auto waiting = std::make_shared<Waiting>(Waiting{std::move(completion), events.size()});
    auto executor = boost::asio::get_associated_executor(waiting->handler);
    for (auto& event : events) {
      // Each callback runs on the journal's thread; the last one resumes the session on its own.
      journal->record(std::move(event), [waiting, executor](bool durable) {
        boost::asio::post(executor, [waiting, durable] {
          waiting->durable = waiting->durable && durable;
          if (--waiting->left == 0) std::move(waiting->handler)(waiting->durable);
        });
      });
    }
  };
  bool durable =
      co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(bool)>(
          std::move(initiate), boost::asio::use_awaitable);
  for (auto direction : directions) {
    metrics::gateway()
        .indicator_events
        .with({storage::to_string(direction), durable ? "recorded" : "not_recorded"})
        .inc();
  }
  if (!durable) {
    for (const auto& [mailbox, key] : names) {
      Event("indicator_not_recorded")
          .add("session", session)
          .add("mailbox", mailbox)
          .add("key", key)
          .add("reason", "journal_write_failed")
          .error();
    }
  }
  co_return durable;
}

}  // namespace mssgate::daemon
