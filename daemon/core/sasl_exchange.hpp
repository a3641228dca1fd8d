#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/sasl_external.hpp"
#include "protocol/sasl_oauth.hpp"

namespace mssgate::core {

// Why a sign-in did not open a mailbox: a small typed set, each mapped by the IMAP and the
// submission cores to one answer of their protocol. The log gets the detailed reason word.
enum class SignInFailure {
  kUnsupportedMechanism,  // a mechanism mssgate does not offer here
  kMalformedResponse,     // the SASL message could not be read
  kCancelled,             // the client sent "*"
  kAuthenticationFailed,  // who the client is could not be established
  kAuthorizationFailed,   // the client may not open the mailbox
  kTemporaryFailure,      // the issuer, the directory or the backend did not answer
  kLimitReached,          // too many sessions for this professional
};

// What the sign-in service decided (or the backend login added) for one exchange.
struct SignInVerdict {
  std::optional<SignInFailure> failure;  // none: the mailbox is open
  std::string reason;                    // a short word for the log
  std::string client_text;               // a sentence safe to send to the client
  std::string mailbox;                   // the mailbox opened, or the one asked for if any
};

// What the client proved, for the sign-in service.
using SaslCredentials = std::variant<protocol::SaslExternalRequest, protocol::OAuthCredentials>;

// One SASL exchange (RFC 4422): the mechanism gate, the initial response or an empty
// challenge, the decoding, and for the token mechanisms the RFC 7628 §3.2.2 error challenge
// before a definitive refusal. The protocol cores put its challenges in their own syntax
// ("+ " or "334 ") and its outcome in their own answers.
class SaslExchange {
 public:
  enum class Step {
    kChallenge,  // send challenge() to the client, then give its answer to on_response()
    kAuthorize,  // ask the sign-in service about credentials(), then call on_verdict()
    kDone,       // outcome() is the result
  };

  // `mechanism` as the client wrote it; `tokens_offered`: XOAUTH2 and OAUTHBEARER are offered.
  SaslExchange(std::string_view mechanism, bool tokens_offered);

  // The client's initial response (SASL-IR, or the rest of AUTH), when it sent one.
  Step start(std::optional<std::string> initial_response);
  Step on_response(std::string_view response);
  Step on_verdict(SignInVerdict verdict);

  const std::string& mechanism() const { return mechanism_; }  // upper-cased
  bool token_mechanism() const { return token_; }
  const std::string& challenge() const { return challenge_; }
  const SaslCredentials& credentials() const { return credentials_; }
  const SignInVerdict& outcome() const { return outcome_; }

 private:
  enum class State { kStart, kAwaitingResponse, kAwaitingVerdict, kAwaitingAcknowledgement, kDone };
  Step decode(std::string_view response);
  Step finish(SignInVerdict verdict);

  std::string mechanism_;
  bool offered_ = false;
  bool token_ = false;
  State state_ = State::kStart;
  std::string challenge_;
  SaslCredentials credentials_;
  SignInVerdict outcome_;
};

// Failed sign-ins of one session: after `limit`, the session ends.
class SignInFailures {
 public:
  explicit SignInFailures(unsigned limit) : limit_(limit) {}
  // Counts one failure; true when the limit is reached.
  bool count() { return ++failures_ >= limit_; }

 private:
  unsigned limit_;
  unsigned failures_ = 0;
};

}  // namespace mssgate::core
