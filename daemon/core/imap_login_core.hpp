#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/core/action.hpp"
#include "daemon/core/sasl_exchange.hpp"
#include "daemon/core/session_events.hpp"
#include "protocol/imap_command_parser.hpp"

namespace mssgate::core {

// IMAP before login (RFC 9051 / 3501): the greeting, CAPABILITY, NOOP, ID, LOGOUT, STARTTLS
// (refused when more bytes follow it: CVE-2011-0411), AUTHENTICATE EXTERNAL, XOAUTH2 and
// OAUTHBEARER through a SaslExchange, LOGIN refused. Once a mailbox is open on the backend the
// session becomes a relay and this core is done.
class ImapLoginCore {
 public:
  struct Settings {
    protocol::ImapCommandParser::Limits limits;
    unsigned max_bad_commands = 10;
    unsigned max_sign_in_failures = 3;
    bool tokens_offered = false;  // XOAUTH2 and OAUTHBEARER are offered (once TLS is on)
    unsigned max_commands = 30;   // commands before authentication; more end the session
  };
  enum class Kind {
    kRead,                // read client bytes, then on_client_bytes()
    kWrite,               // write text to the client
    kStartTls,            // the TLS handshake, then on_tls()
    kAuthorize,           // ask the sign-in service about credentials(), then on_verdict()
    kLoginBackend,        // log in to the backend as the mailbox in text, then on_backend_login()
    kRelay,               // write text, then relay both ways: this core is done
    kPause,               // a sign-in failed: wait as the failure policy says before going on
    kClose,               // end the session (option: after a TLS close_notify)
    kCloseDroppingInput,  // end the session while the client may still be sending (a refused
                          // line or literal, a flood): the stream ends after the answer, what
                          // the client still sends is read and dropped (bounded), then close
  };
  using Action = CoreAction<Kind>;

  ImapLoginCore(Settings settings, SessionEvents& events, bool tls_active);

  // The next thing to do. After kStartTls, kAuthorize and kLoginBackend, call the matching
  // on_...() before asking again.
  Action next();

  void on_client_bytes(std::string_view bytes) { unread_.append(bytes); }
  void on_tls(bool established);
  void on_verdict(SignInVerdict verdict);
  // The backend's capabilities after login, or nothing when the login failed.
  void on_backend_login(std::optional<std::string> capabilities);

  const SaslCredentials& credentials() const { return exchange_->credentials(); }
  const std::string& mechanism() const { return exchange_->mechanism(); }
  bool tls_active() const { return tls_; }
  // Client bytes not read as commands (sent after AUTHENTICATE): the backend's, once relaying.
  std::string take_unread() { return std::move(unread_); }

 private:
  enum class State { kCommands, kSaslResponse, kWaiting, kDone };

  bool advance();
  void command(const protocol::ImapCommand& command);
  void parse_error(const protocol::ImapParseError& error);
  void start_tls();
  void authenticate(const protocol::ImapCommand& command);
  void exchange_step(SaslExchange::Step step);
  void exchange_done();
  void refuse(std::string_view code, std::string_view text, std::string_view reason,
              std::string_view mailbox);
  void failed_attempt(std::string_view mechanism, std::string_view reason,
                      std::string_view mailbox);
  void count_bad_command();
  void count_sign_in_failure();
  std::string capabilities() const;
  void write(std::string text);
  void close(std::string_view reason, bool tls_shutdown = false);
  void close_dropping_input(std::string_view reason);

  Settings settings_;
  SessionEvents& events_;
  bool tls_;
  protocol::ImapCommandParser parser_;
  std::string unread_;
  std::deque<Action> actions_;
  State state_ = State::kCommands;
  unsigned bad_commands_ = 0;
  unsigned commands_ = 0;
  bool command_open_ = false;
  SignInFailures sign_in_failures_;
  std::string tag_;  // of the AUTHENTICATE under way
  std::optional<SaslExchange> exchange_;
  std::string mailbox_;  // allowed by the sign-in service, not yet open
};

}  // namespace mssgate::core
