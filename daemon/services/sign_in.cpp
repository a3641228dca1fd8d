#include "daemon/services/sign_in.hpp"

#include "daemon/services/access_policy.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

using core::SignInFailure;

core::SignInVerdict verdict_of(const AccessDecision& decision) {
  using Outcome = AccessDecision::Outcome;
  core::SignInVerdict verdict{{}, decision.reason, decision.client_text, decision.mailbox};
  switch (decision.outcome) {
    case Outcome::kAllowed:
      break;
    case Outcome::kAuthenticationFailed:
      verdict.failure = SignInFailure::kAuthenticationFailed;
      break;
    case Outcome::kAuthorizationFailed:
      verdict.failure = SignInFailure::kAuthorizationFailed;
      break;
    case Outcome::kTemporaryFailure:
      verdict.failure = SignInFailure::kTemporaryFailure;
      break;
    case Outcome::kLimitReached:
      verdict.failure = SignInFailure::kLimitReached;
      break;
  }
  return verdict;
}

}  // namespace

SignInService::SignInService(std::shared_ptr<const GatewayEnvironment> environment,
                             std::shared_ptr<GatewayCounters> counters, std::string_view protocol)
    : environment_(std::move(environment)), counters_(std::move(counters)), protocol_(protocol) {}

boost::asio::awaitable<SignInDecision> SignInService::authorize(
    const core::SaslCredentials& credentials, const CertificateIdentity* certificate,
    bool want_allowed_senders, bool holds_slot) {
  // One snapshot of the directory answers every question of this sign-in.
  auto directory = environment_->directory->snapshot();
  SignInDecision decision;
  if (const auto* token = std::get_if<protocol::OAuthCredentials>(&credentials)) {
    decision = co_await authorize_token(*token, *directory, holds_slot);
  } else {
    const auto& external = std::get<protocol::SaslExternalRequest>(credentials);
    decision.verdict = verdict_of(decide_certificate_access(
        *directory, certificate, external.authzid, environment_->config.auth));
    if (!decision.verdict.failure && !holds_slot) take_certificate_slot(decision, *certificate);
  }
  if (!decision.verdict.failure && want_allowed_senders) {
    auto senders = directory->allowed_senders(decision.verdict.mailbox);
    if (!senders.ok()) {
      decision.verdict.failure = SignInFailure::kTemporaryFailure;
      decision.verdict.reason = "directory_unavailable";
      decision.slot.reset();
    }
    decision.allowed_senders = std::move(senders.value);
  }
  co_return decision;
}

boost::asio::awaitable<SignInDecision> SignInService::authorize_token(
    const protocol::OAuthCredentials& credentials, const storage::DirectoryLookup& directory,
    bool holds_slot) {
  SignInDecision decision;
  TokenValidation token = co_await environment_->validator->validate(credentials.token);
  if (token.result == TokenValidation::Result::kUnavailable) {
    decision.verdict = {SignInFailure::kTemporaryFailure, "token_check_unavailable:" + token.reason,
                        "Sign-in is temporarily unavailable, try again later", ""};
    co_return decision;
  }
  if (token.result == TokenValidation::Result::kInvalid) {
    decision.verdict = {SignInFailure::kAuthenticationFailed, "token_" + token.reason,
                        "The token is not valid", ""};
    co_return decision;
  }
  if (token.result == TokenValidation::Result::kRefused) {
    // A genuine token, but not one this operator takes (another LPS, audience, scope, acr...).
    decision.azp = token.azp;
    decision.verdict = {SignInFailure::kAuthorizationFailed, "token_" + token.reason,
                        "This token is not accepted here", credentials.user};
    co_return decision;
  }
  decision.professional_id = token.professional_id;
  decision.azp = token.azp;
  decision.token_expires_at = token.expires_at;
  decision.verdict = verdict_of(decide_token_access(directory, token.professional_id,
                                                    credentials.user, environment_->config.auth));
  if (decision.verdict.failure || holds_slot) co_return decision;
  if (!counters_->professionals.acquire(token.professional_id,
                                        environment_->config.psc.max_sessions_per_professional)) {
    limited("professional_sessions");
    decision.verdict = {SignInFailure::kLimitReached, "too_many_sessions",
                        "Too many sessions for this professional", decision.verdict.mailbox};
    co_return decision;
  }
  decision.slot =
      std::make_unique<IdentitySlot>(counters_, counters_->professionals, token.professional_id);
  co_return decision;
}

void SignInService::take_certificate_slot(SignInDecision& decision,
                                          const CertificateIdentity& certificate) {
  // Per key: a renewed certificate with the same key is the same client.
  const std::string& key = certificate.spki_sha256;
  if (!counters_->certificates.acquire(key,
                                       environment_->config.limits.max_sessions_per_certificate)) {
    limited("certificate_sessions");
    decision.verdict = {SignInFailure::kLimitReached, "too_many_certificate_sessions",
                        "Too many sessions for this certificate", decision.verdict.mailbox};
    return;
  }
  decision.slot = std::make_unique<IdentitySlot>(counters_, counters_->certificates, key);
}

void SignInService::limited(std::string_view limit) const {
  metrics::gateway().sign_ins_limited.with({protocol_, limit}).inc();
}

void SignInService::audit(std::string_view session_id, std::string_view mechanism, bool ok,
                          std::string_view reason, std::string_view mailbox,
                          const SessionIdentity& identity, bool in_full) const {
  // The client's word for the mechanism is kept only when mssgate knows it: anything else (a
  // token sent by mistake, say) is "other", in the log and in the metric's labels alike.
  static constexpr std::string_view kMechanisms[] = {"EXTERNAL", "XOAUTH2", "OAUTHBEARER", "PLAIN",
                                                     "LOGIN"};
  std::string_view named = "other";
  for (auto known : kMechanisms)
    if (protocol::ascii_iequals(mechanism, known)) named = known;
  metrics::gateway().authentications.with({protocol_, named, ok ? "ok" : "failed"}).inc();
  if (!ok && !in_full) return;
  Event event("auth");
  event.add("session", session_id).add("mechanism", named).add("result", ok ? "ok" : "failed");
  if (!ok) event.add("reason", reason);
  if (!mailbox.empty()) event.add("mailbox", mailbox);
  if (!identity.professional_id.empty()) event.add("professional", identity.professional_id);
  if (!identity.azp.empty()) event.add("azp", identity.azp);
  if (identity.certificate) {
    // The key's hash is what `mssgatectl certificate bind --match spki-sha256` binds.
    event.add("certificate_sha256", identity.certificate->sha256)
        .add("spki_sha256", identity.certificate->spki_sha256);
  }
  event.audit().emit(ok ? spdlog::level::info : spdlog::level::warn);
}

}  // namespace mssgate::daemon
