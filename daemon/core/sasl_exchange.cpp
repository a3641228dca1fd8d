#include "daemon/core/sasl_exchange.hpp"

#include "protocol/ascii.hpp"

namespace mssgate::core {
namespace {

SignInVerdict refusal(SignInFailure failure, std::string_view reason) {
  return SignInVerdict{failure, std::string(reason), "", ""};
}

}  // namespace

SaslExchange::SaslExchange(std::string_view mechanism, bool tokens_offered)
    : mechanism_(protocol::ascii_upper(mechanism)) {
  token_ = tokens_offered && (mechanism_ == "XOAUTH2" || mechanism_ == "OAUTHBEARER");
  offered_ = token_ || mechanism_ == "EXTERNAL";
}

SaslExchange::Step SaslExchange::start(std::optional<std::string> initial_response) {
  if (!offered_)
    return finish(refusal(SignInFailure::kUnsupportedMechanism, "unsupported_mechanism"));
  if (initial_response) return decode(*initial_response);
  state_ = State::kAwaitingResponse;
  challenge_.clear();
  return Step::kChallenge;
}

SaslExchange::Step SaslExchange::on_response(std::string_view response) {
  if (state_ == State::kAwaitingAcknowledgement) return finish(std::move(outcome_));
  return decode(response);
}

SaslExchange::Step SaslExchange::decode(std::string_view response) {
  if (token_) {
    auto decoded = mechanism_ == "XOAUTH2" ? protocol::decode_xoauth2(response)
                                           : protocol::decode_oauthbearer(response);
    if (auto* error = std::get_if<protocol::SaslOAuthError>(&decoded)) {
      bool cancelled = *error == protocol::SaslOAuthError::kCancelled;
      return finish(
          refusal(cancelled ? SignInFailure::kCancelled : SignInFailure::kMalformedResponse,
                  protocol::describe(*error)));
    }
    credentials_ = std::get<protocol::OAuthCredentials>(std::move(decoded));
  } else {
    auto decoded = protocol::decode_sasl_external(response);
    if (auto* error = std::get_if<protocol::SaslExternalError>(&decoded)) {
      bool cancelled = *error == protocol::SaslExternalError::kCancelled;
      return finish(
          refusal(cancelled ? SignInFailure::kCancelled : SignInFailure::kMalformedResponse,
                  protocol::describe(*error)));
    }
    credentials_ = std::get<protocol::SaslExternalRequest>(std::move(decoded));
  }
  state_ = State::kAwaitingVerdict;
  return Step::kAuthorize;
}

SaslExchange::Step SaslExchange::on_verdict(SignInVerdict verdict) {
  bool definitive = verdict.failure == SignInFailure::kAuthenticationFailed ||
                    verdict.failure == SignInFailure::kAuthorizationFailed;
  if (token_ && definitive) {
    // RFC 7628 §3.2.2: the error as a challenge; the client's (empty) answer, then the refusal.
    outcome_ = std::move(verdict);
    challenge_ = protocol::oauth_error_challenge("invalid_token", "openid");
    state_ = State::kAwaitingAcknowledgement;
    return Step::kChallenge;
  }
  return finish(std::move(verdict));
}

SaslExchange::Step SaslExchange::finish(SignInVerdict verdict) {
  outcome_ = std::move(verdict);
  state_ = State::kDone;
  return Step::kDone;
}

}  // namespace mssgate::core
