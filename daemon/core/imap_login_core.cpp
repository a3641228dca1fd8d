#include "daemon/core/imap_login_core.hpp"

#include "protocol/ascii.hpp"

namespace mssgate::core {
namespace {

using Status = protocol::ImapCommandParser::Status;

std::string_view response_code(SignInFailure failure) {
  switch (failure) {
    case SignInFailure::kTemporaryFailure:
      return "UNAVAILABLE";
    case SignInFailure::kLimitReached:
      return "LIMIT";
    case SignInFailure::kAuthorizationFailed:
      return "AUTHORIZATIONFAILED";
    case SignInFailure::kUnsupportedMechanism:
      return "CANNOT";
    case SignInFailure::kAuthenticationFailed:
    case SignInFailure::kMalformedResponse:
    case SignInFailure::kCancelled:
      break;
  }
  return "AUTHENTICATIONFAILED";
}

bool valid_authenticate_arguments(const protocol::ImapCommand& command) {
  const auto& args = command.args;
  return !args.empty() && args.size() <= 2 && args[0].is_string() &&
         (args.size() == 1 || args[1].is_string());
}

}  // namespace

ImapLoginCore::ImapLoginCore(Settings settings, SessionEvents& events, bool tls_active)
    : settings_(settings),
      events_(events),
      tls_(tls_active),
      parser_(settings.limits),
      sign_in_failures_(settings.max_sign_in_failures) {
  write("* OK [CAPABILITY " + capabilities() + "] mssgate ready.\r\n");
}

ImapLoginCore::Action ImapLoginCore::next() {
  while (actions_.empty()) {
    if (!advance()) return Action{Kind::kRead};
  }
  Action action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

// Reads what the unread bytes hold, until an action is due; false when more bytes are needed.
bool ImapLoginCore::advance() {
  if (state_ == State::kCommands && command_open_) {
    // Back to reading commands with every answer written: the last command is done.
    command_open_ = false;
    events_.command_finished();
  }
  if ((state_ != State::kCommands && state_ != State::kSaslResponse) || unread_.empty())
    return false;
  auto result = parser_.feed(unread_);
  unread_.erase(0, result.consumed);
  if (state_ == State::kSaslResponse) {
    if (result.status == Status::kRawLine) {
      state_ = State::kWaiting;
      exchange_step(exchange_->on_response(parser_.raw_line()));
    } else if (result.status == Status::kError) {
      close_dropping_input("line_too_long");
      actions_.push_front(Action{Kind::kWrite, "* BYE " + parser_.error().message + "\r\n"});
    }
    return true;
  }
  switch (result.status) {
    case Status::kNeedLiteralContinuation:
      write("+ Ready for literal data\r\n");
      break;
    case Status::kError:
      parse_error(parser_.error());
      break;
    case Status::kCommand:
      command(parser_.command());
      break;
    case Status::kNeedMore:
    case Status::kRawLine:
      break;
  }
  return true;
}

void ImapLoginCore::parse_error(const protocol::ImapParseError& error) {
  using ErrorKind = protocol::ImapParseError::Kind;
  events_.protocol_error(error.kind == ErrorKind::kLineTooLong       ? "line_too_long"
                         : error.kind == ErrorKind::kLiteralTooLarge ? "literal_too_large"
                                                                     : "syntax",
                         error.message);
  if (error.fatal) {
    // The rest of the line or literal is on its way: the BYE must not be lost to a reset.
    std::string code = error.kind == ErrorKind::kLiteralTooLarge ? "[TOOBIG] " : "";
    write("* BYE " + code + error.message + "\r\n");
    close_dropping_input(error.kind == ErrorKind::kLineTooLong ? "line_too_long"
                                                               : "literal_too_large");
    return;
  }
  if (error.kind == ErrorKind::kLiteralTooLarge) {
    write(error.tag + " NO [TOOBIG] " + error.message + "\r\n");
  } else {
    write(error.tag + " BAD Error in IMAP command: " + error.message + "\r\n");
  }
  count_bad_command();
}

void ImapLoginCore::command(const protocol::ImapCommand& command) {
  const std::string& tag = command.tag;
  const std::string& name = command.name;
  if (++commands_ > settings_.max_commands) {
    // However harmless each (NOOP, CAPABILITY, ID), they do not keep a session unsigned-in.
    write("* BYE Too many commands before authentication\r\n");
    close_dropping_input("too_many_pre_auth_commands");
    return;
  }
  events_.command_started(name);
  command_open_ = true;
  if (name == "CAPABILITY") {
    write("* CAPABILITY " + capabilities() + "\r\n" + tag + " OK Capability completed.\r\n");
  } else if (name == "NOOP") {
    write(tag + " OK NOOP completed.\r\n");
  } else if (name == "LOGOUT") {
    write("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n");
    close("logout", tls_);
  } else if (name == "ID") {
    write("* ID (\"name\" \"mssgate\")\r\n" + tag + " OK ID completed.\r\n");
  } else if (name == "STARTTLS") {
    tag_ = tag;
    start_tls();
  } else if (name == "AUTHENTICATE") {
    tag_ = tag;
    authenticate(command);
  } else if (name == "LOGIN") {
    failed_attempt("LOGIN", "login_disabled", "");
    write(tls_ ? tag +
                     " NO [CANNOT] LOGIN is disabled: use AUTHENTICATE EXTERNAL with a client "
                     "certificate\r\n"
               : tag +
                     " NO [PRIVACYREQUIRED] LOGIN is disabled: use STARTTLS, then "
                     "AUTHENTICATE\r\n");
  } else {
    write(tag + " BAD Command unknown or not available before authentication\r\n");
    count_bad_command();
  }
}

void ImapLoginCore::start_tls() {
  if (tls_) {
    write(tag_ + " BAD TLS is already active\r\n");
    count_bad_command();
    return;
  }
  if (!unread_.empty()) {
    // Bytes sent before the handshake would be taken as if protected by it (CVE-2011-0411).
    events_.protocol_error("pipelined_starttls", "");
    write(tag_ +
          " BAD STARTTLS must be the last command before the TLS handshake\r\n* BYE Closing\r\n");
    close_dropping_input("pipelined_after_starttls");
    return;
  }
  write(tag_ + " OK Begin TLS negotiation now.\r\n");
  actions_.emplace_back(Kind::kStartTls);
  state_ = State::kWaiting;
}

void ImapLoginCore::on_tls(bool established) {
  if (!established) {
    actions_.emplace_back(Kind::kClose);
    state_ = State::kDone;
    return;
  }
  tls_ = true;
  parser_ = protocol::ImapCommandParser(settings_.limits);
  state_ = State::kCommands;
}

void ImapLoginCore::authenticate(const protocol::ImapCommand& command) {
  if (!valid_authenticate_arguments(command)) {
    write(tag_ + " BAD Usage: AUTHENTICATE mechanism [initial-response]\r\n");
    count_bad_command();
    return;
  }
  exchange_.emplace(command.args[0].value, tls_ && settings_.tokens_offered);
  if (!tls_) {
    refuse("PRIVACYREQUIRED", "Authentication requires TLS: use STARTTLS first", "no_tls", "");
    return;
  }
  std::optional<std::string> initial;
  if (command.args.size() == 2) initial = command.args[1].value;
  exchange_step(exchange_->start(std::move(initial)));
}

void ImapLoginCore::exchange_step(SaslExchange::Step step) {
  switch (step) {
    case SaslExchange::Step::kChallenge:
      write("+ " + exchange_->challenge() + "\r\n");
      parser_.expect_raw_line();
      state_ = State::kSaslResponse;
      return;
    case SaslExchange::Step::kAuthorize:
      actions_.emplace_back(Kind::kAuthorize);
      state_ = State::kWaiting;
      return;
    case SaslExchange::Step::kDone:
      state_ = State::kCommands;
      exchange_done();
      return;
  }
}

void ImapLoginCore::on_verdict(SignInVerdict verdict) {
  if (!verdict.failure) {
    mailbox_ = verdict.mailbox;
    actions_.emplace_back(Kind::kLoginBackend, mailbox_);
    return;
  }
  exchange_step(exchange_->on_verdict(std::move(verdict)));
}

void ImapLoginCore::on_backend_login(std::optional<std::string> capabilities) {
  if (!capabilities) {
    exchange_step(exchange_->on_verdict(
        {SignInFailure::kTemporaryFailure, "backend_unavailable",
         "The mailbox service is temporarily unavailable, try again later", mailbox_}));
    return;
  }
  events_.sign_in_attempt(exchange_->mechanism(), true, "ok", mailbox_);
  actions_.emplace_back(Kind::kRelay,
                        tag_ + " OK [CAPABILITY " + *capabilities + "] Logged in\r\n");
  state_ = State::kDone;
}

void ImapLoginCore::exchange_done() {
  const SignInVerdict& outcome = exchange_->outcome();
  const std::string& mechanism = exchange_->mechanism();
  switch (*outcome.failure) {
    case SignInFailure::kUnsupportedMechanism:
      refuse("CANNOT", "Unsupported authentication mechanism", outcome.reason, "");
      return;
    case SignInFailure::kMalformedResponse:
    case SignInFailure::kCancelled:
      failed_attempt(mechanism, outcome.reason, "");
      write(*outcome.failure == SignInFailure::kCancelled
                ? tag_ + " BAD Authentication cancelled\r\n"
                : tag_ + " BAD Invalid SASL " + mechanism + " response\r\n");
      count_sign_in_failure();
      return;
    default:
      refuse(response_code(*outcome.failure), outcome.client_text, outcome.reason, outcome.mailbox);
      return;
  }
}

void ImapLoginCore::refuse(std::string_view code, std::string_view text, std::string_view reason,
                           std::string_view mailbox) {
  failed_attempt(exchange_->mechanism(), reason, mailbox);
  write(tag_ + " NO [" + std::string(code) + "] " + std::string(text) + "\r\n");
  count_sign_in_failure();
}

// The attempt goes to the audit trail, and its answer waits as the failure policy says.
void ImapLoginCore::failed_attempt(std::string_view mechanism, std::string_view reason,
                                   std::string_view mailbox) {
  events_.sign_in_attempt(mechanism, false, reason, mailbox);
  actions_.emplace_back(Kind::kPause);
}

void ImapLoginCore::count_bad_command() {
  if (++bad_commands_ < settings_.max_bad_commands) return;
  write("* BYE Too many invalid commands\r\n");
  close_dropping_input("too_many_bad_commands");
}

void ImapLoginCore::count_sign_in_failure() {
  if (!sign_in_failures_.count()) return;
  write("* BYE Too many authentication failures\r\n");
  close("too_many_auth_failures");
}

std::string ImapLoginCore::capabilities() const {
  std::string caps = "IMAP4rev1 SASL-IR LITERAL+ ID";
  if (!tls_) {
    caps += " STARTTLS";
  } else {
    caps += " AUTH=EXTERNAL";
    if (settings_.tokens_offered) caps += " AUTH=XOAUTH2 AUTH=OAUTHBEARER";
  }
  return caps + " LOGINDISABLED";
}

void ImapLoginCore::write(std::string text) {
  actions_.emplace_back(Kind::kWrite, std::move(text));
}

void ImapLoginCore::close(std::string_view reason, bool tls_shutdown) {
  events_.closing(reason);
  actions_.emplace_back(Kind::kClose, "", tls_shutdown);
  state_ = State::kDone;
}

void ImapLoginCore::close_dropping_input(std::string_view reason) {
  events_.closing(reason);
  actions_.emplace_back(Kind::kCloseDroppingInput);
  state_ = State::kDone;
}

}  // namespace mssgate::core
