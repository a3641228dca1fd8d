#include "daemon/core/postfix_dialogue.hpp"

#include "protocol/ascii.hpp"
#include "protocol/smtp_command.hpp"

namespace mssgate::core {
namespace {

PostfixFeatures features_of(const protocol::SmtpReply& ehlo) {
  PostfixFeatures features;
  for (const auto& line : ehlo.lines) {
    std::string word = protocol::ascii_upper(line.substr(0, line.find(' ')));
    if (word == "XCLIENT") features.xclient = true;
    if (word == "DSN") features.dsn = true;
    if (word == "SMTPUTF8") features.smtputf8 = true;
    if (word == "PIPELINING") features.pipelining = true;
    if (word == "CHUNKING") features.chunking = true;
  }
  return features;
}

// The client's name as Postfix hears it (XCLIENT HELO= and the EHLO after XCLIENT): the client's
// EHLO argument when it is a domain or an address literal, else the client's address as a
// literal (RFC 5321 §4.1.3): nothing else of the client's line reaches Postfix.
std::string relayed_helo(const XclientIdentity& identity) {
  if (identity.helo.empty() || protocol::ehlo_domain_or_address_literal(identity.helo))
    return identity.helo;
  const std::string& address = identity.client_address;
  return address.find(':') != std::string::npos ? "[IPv6:" + address + "]" : "[" + address + "]";
}

}  // namespace

PostfixDialogue::PostfixDialogue(State state, std::string_view step, std::string pending_write)
    : state_(state), step_(step), write_(std::move(pending_write)) {}

PostfixDialogue PostfixDialogue::greet(std::string_view helo_name) {
  PostfixDialogue dialogue(State::kGreeting, "greeting", "");
  dialogue.then_ehlo_ = "EHLO " + std::string(helo_name) + "\r\n";
  dialogue.learn_features_ = true;
  return dialogue;
}

PostfixDialogue PostfixDialogue::introduce(const XclientIdentity& identity,
                                           const PostfixFeatures& features,
                                           std::string_view helo_name) {
  PostfixDialogue dialogue(State::kXclient, "xclient", xclient_command(identity));
  dialogue.features_ = features;
  // After XCLIENT, Postfix logs the client's own EHLO name.
  std::string helo = relayed_helo(identity);
  dialogue.then_ehlo_ = "EHLO " + (helo.empty() ? std::string(helo_name) : helo) + "\r\n";
  if (!features.xclient) dialogue.fail("the backend does not offer XCLIENT to this host");
  return dialogue;
}

std::string PostfixDialogue::xclient_command(const XclientIdentity& identity) {
  const std::string& address = identity.client_address;
  std::string shown = address.find(':') != std::string::npos ? "IPV6:" + address : address;
  std::string helo = relayed_helo(identity);
  return "XCLIENT ADDR=" + protocol::xtext_encode(shown) +
         " PORT=" + std::to_string(identity.client_port) +
         " PROTO=ESMTP HELO=" + protocol::xtext_encode(helo.empty() ? "unknown" : helo) +
         " LOGIN=" + protocol::xtext_encode(identity.mailbox) + "\r\n";
}

PostfixDialogue::Action PostfixDialogue::next() {
  if (outcome_) return *outcome_;
  if (!write_.empty()) return Action{Kind::kWrite, std::exchange(write_, {})};
  return Action{Kind::kReadReply};
}

void PostfixDialogue::on_reply(const std::optional<protocol::SmtpReply>& reply) {
  switch (state_) {
    case State::kGreeting:
      if (!reply || reply->code != 220) return fail(reply ? "unexpected greeting" : "no greeting");
      state_ = State::kEhlo;
      step_ = "ehlo";
      write_ = then_ehlo_;
      return;
    case State::kXclient:
      if (!reply || reply->code != 220) return fail(reply ? "refused" : "no answer");
      state_ = State::kEhlo;
      step_ = "ehlo";
      write_ = then_ehlo_;
      return;
    case State::kEhlo:
      if (!reply || reply->code != 250) return fail(reply ? "refused" : "no answer");
      // The features are learnt from the first EHLO; the one after XCLIENT offers the same.
      if (learn_features_) features_ = features_of(*reply);
      state_ = State::kEnded;
      outcome_ = Action{Kind::kDone};
      return;
    case State::kEnded:
      return;
  }
}

void PostfixDialogue::fail(std::string detail) {
  state_ = State::kEnded;
  outcome_ = Action{Kind::kFailed, std::move(detail)};
}

}  // namespace mssgate::core
