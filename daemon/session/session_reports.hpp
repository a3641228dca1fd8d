#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "daemon/core/sasl_exchange.hpp"
#include "daemon/services/indicator_recorder.hpp"
#include "daemon/services/sign_in.hpp"
#include "daemon/session/connection.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/fault_injection.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

// What the IMAP and submission sessions share as their core's listener: commands timed,
// protocol errors logged, the close reason kept, and each sign-in attempt asked of the sign-in
// service (unless the client's address failed too many) and written to the audit trail (in
// full up to the address's rate), the session's identity and its identity's slot kept, the
// delay before the answer to a failure set, the signed-in session registered for review
// (its authorisation can be withdrawn), and the attempt kept for the indicator journal, where
// the session writes it before the attempt's answer (record_sign_in). `Events` is the core's
// listener interface.
template <class Events>
class SignInReports : public Events {
 protected:
  SignInReports(Connection& connection, SignInService& sign_in, SessionIdentity& identity,
                const IndicatorRecorder& recorder, storage::SessionProtocol protocol)
      : connection_(connection),
        sign_in_(sign_in),
        identity_(identity),
        recorder_(recorder),
        protocol_(protocol) {}

  // Asks the sign-in service; keeps whom a token named and the identity's slot. An address
  // that failed too many sign-ins in its time unit is refused without asking anyone.
  boost::asio::awaitable<SignInDecision> authorize(const core::SaslCredentials& credentials,
                                                   bool want_allowed_senders) {
    if (!connection_.admission().sign_in_allowed(connection_.limits())) {
      sign_in_.limited("address_failures");
      SignInDecision refused;
      refused.verdict = {core::SignInFailure::kLimitReached, "address_failure_limit",
                         "Too many failed sign-ins from this address, try again later", ""};
      co_return refused;
    }
    SignInDecision decision = co_await sign_in_.authorize(
        credentials, connection_.certificate().get(), want_allowed_senders, slot_ != nullptr);
    if (!decision.professional_id.empty()) identity_.professional_id = decision.professional_id;
    if (!decision.azp.empty()) identity_.azp = decision.azp;
    if (decision.slot) slot_ = std::move(decision.slot);
    if (!decision.verdict.failure) {
      const auto* token = std::get_if<protocol::OAuthCredentials>(&credentials);
      token_ = token ? token->token : std::string();
      token_expires_at_ = decision.token_expires_at;
    }
    co_return decision;
  }

  // Whether an attempt waits to be written to the indicator journal: the session calls
  // record_sign_in() before it carries out the core's next action (the attempt's answer).
  bool sign_in_unrecorded() const { return sign_in_to_record_.has_value(); }
  // Resumes once the journal has the attempt (or could not take it: then an error event).
  boost::asio::awaitable<void> record_sign_in() {
    storage::ConnectionEvent event = std::move(*sign_in_to_record_);
    sign_in_to_record_.reset();
    co_await recorder_.record_sign_in(connection_.id(), std::move(event));
  }

  // The session object, which the registry's withdrawal must find alive.
  virtual std::weak_ptr<void> session_owner() = 0;

  // The wait before the answer to the last failed sign-in (the core's pause), once.
  Connection::Clock::duration take_failure_delay() { return std::exchange(failure_delay_, {}); }

  void command_started(std::string_view verb) override {
    connection_.telemetry().command_started(verb);
    faults::point(connection_.telemetry().protocol(), verb);
  }
  void command_finished() override { connection_.telemetry().command_finished(); }
  void protocol_error(std::string_view kind, std::string_view detail) override {
    Event event("protocol_error");
    event.add("session", connection_.id()).add("kind", kind);
    if (!detail.empty()) event.add("detail", detail);
    event.warn();
  }
  void closing(std::string_view reason) override {
    connection_.telemetry().set_close_reason(reason);
  }
  void sign_in_attempt(std::string_view mechanism, bool ok, std::string_view reason,
                       std::string_view mailbox) override {
    if (ok) {
      identity_.mailbox = mailbox;
      identity_.auth_mode =
          mechanism == "EXTERNAL" ? storage::AuthMode::kCertificate : storage::AuthMode::kPsc;
    }
    identity_.certificate = connection_.certificate();
    if (!ok) {
      const auto& admission = connection_.admission();
      failure_delay_ = admission.failed_sign_in(connection_.limits());
      bool in_full =
          admission.write_in_full(ClientLimits::Kind::kFailedSignIn, connection_.limits());
      if (!in_full) metrics::gateway().events_summarised.with({"auth"}).inc();
      sign_in_.audit(connection_.id(), mechanism, ok, reason, mailbox, identity_, in_full);
      sign_in_to_record_ =
          recorder_.refused_sign_in(identity_, protocol_, mechanism, reason, mailbox);
      return;
    }
    sign_in_.audit(connection_.id(), mechanism, ok, reason, mailbox, identity_);
    connection_.authenticated();
    connection_.telemetry().authenticated(mailbox);
    register_session();
    sign_in_to_record_ = recorder_.sign_in(identity_, protocol_);
  }

 private:
  void register_session() {
    Connection* connection = &connection_;
    auto end = [owner = session_owner(), connection,
                executor = connection_.client().executor()](const std::string& reason) {
      boost::asio::post(executor, [owner, connection, reason] {
        if (auto alive = owner.lock()) connection->withdraw(reason);
      });
    };
    AuthorizedSession session{connection_.id(),
                              identity_,
                              std::exchange(token_, {}),
                              token_expires_at_,
                              std::chrono::steady_clock::now(),
                              std::move(end)};
    registration_.reset();
    registration_ = connection_.telemetry().counters().authorized.add(std::move(session));
  }

  Connection& connection_;
  SignInService& sign_in_;
  SessionIdentity& identity_;
  const IndicatorRecorder& recorder_;
  storage::SessionProtocol protocol_;
  std::optional<storage::ConnectionEvent> sign_in_to_record_;
  std::unique_ptr<IdentitySlot> slot_;  // held until the session ends
  Connection::Clock::duration failure_delay_{};
  std::string token_;  // of the sign-in under way, until registered
  int64_t token_expires_at_ = 0;
  std::unique_ptr<SessionRegistry::Registration> registration_;
};

}  // namespace mssgate::daemon
