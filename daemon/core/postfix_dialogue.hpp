#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/core/action.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::core {

// What Postfix's EHLO offers that matters to mssgate.
struct PostfixFeatures {
  bool xclient = false;
  bool dsn = false;
  bool smtputf8 = false;
  bool pipelining = false;  // RFC 2920: MAIL goes with the first RCPT
  bool chunking = false;    // RFC 3030: a message in hand goes as one BDAT
};

// Who the client is, for Postfix's XCLIENT (its address, port, EHLO name) and the mailbox it
// signed in as (LOGIN, so that Postfix's own sender rules and logs know it).
struct XclientIdentity {
  std::string client_address;
  uint16_t client_port = 0;
  std::string helo;  // the client's EHLO argument; empty when it gave none. Relayed only when
                     // it is a domain or an address literal, else the address as a literal.
  std::string mailbox;
};

// The opening exchanges with Postfix's submission service, one at a time: greet() reads the
// greeting and sends EHLO (learning the features); introduce() sends XCLIENT then EHLO again
// with the client's own name, as Postfix asks after XCLIENT.
class PostfixDialogue {
 public:
  enum class Kind {
    kReadReply,  // read one reply, then on_reply() (nothing when the connection failed)
    kWrite,      // write text to the backend, then next()
    kDone,
    kFailed,  // text is the detail for the log, step() the step that failed
  };
  using Action = CoreAction<Kind>;

  static PostfixDialogue greet(std::string_view helo_name);
  static PostfixDialogue introduce(const XclientIdentity& identity, const PostfixFeatures& features,
                                   std::string_view helo_name);

  Action next();
  void on_reply(const std::optional<protocol::SmtpReply>& reply);
  std::string_view step() const { return step_; }
  const PostfixFeatures& features() const { return features_; }

  // The XCLIENT command line for `identity`.
  static std::string xclient_command(const XclientIdentity& identity);

 private:
  enum class State { kGreeting, kEhlo, kXclient, kEnded };
  PostfixDialogue(State state, std::string_view step, std::string pending_write);
  void fail(std::string detail);

  State state_;
  std::string_view step_;
  std::string write_;      // what to send before the next reply is read
  std::string then_ehlo_;  // the EHLO line sent once XCLIENT is accepted
  bool learn_features_ = false;
  std::optional<Action> outcome_;
  PostfixFeatures features_;
};

}  // namespace mssgate::core
