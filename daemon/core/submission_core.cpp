#include "daemon/core/submission_core.hpp"

#include <algorithm>

#include "protocol/ascii.hpp"
#include "protocol/mailbox_address.hpp"
#include "protocol/message_inspector.hpp"
#include "protocol/smtp_command.hpp"

namespace mssgate::core {
namespace {

bool known_mail_parameter(std::string_view key, const PostfixFeatures& features) {
  return key == "SIZE" || key == "BODY" || key == "RET" || key == "ENVID" ||
         (key == "SMTPUTF8" && features.smtputf8);
}

bool acceptable_size(const std::string& value, uint64_t max) {
  return !value.empty() && value.size() <= 19 &&
         value.find_first_not_of("0123456789") == std::string::npos && std::stoull(value) <= max;
}

}  // namespace

std::string relayed_reply(const protocol::SmtpReply& reply, std::string_view text) {
  std::string enhanced = reply.enhanced;
  if (enhanced.empty()) enhanced = std::to_string(reply.code / 100) + ".0.0";
  return std::to_string(reply.code) + " " + enhanced + " " + std::string(text) + "\r\n";
}

std::string queue_id(const protocol::SmtpReply& reply) {
  for (const auto& line : reply.lines) {
    auto at = line.find("queued as ");
    if (at == std::string::npos) continue;
    std::string_view rest = std::string_view(line).substr(at + 10);
    std::string_view id = rest.substr(0, rest.find_first_of(" \t"));
    // Postfix's queue ids, short (hexadecimal) or long, are letters and digits. Anything else
    // (a reply altered on its way, another server's) is no id: it would be relayed to the
    // client and written to the logs and the journal as it came.
    bool letters_and_digits =
        !id.empty() && id.size() <= kMaxQueueIdBytes &&
        std::all_of(id.begin(), id.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        });
    return letters_and_digits ? std::string(id) : std::string();
  }
  return "";
}

SubmissionCore::SubmissionCore(Settings settings, SubmissionEvents& events, bool tls_active)
    : settings_(std::move(settings)),
      events_(events),
      tls_(tls_active),
      lines_(settings_.max_line_bytes),
      sign_in_failures_(settings_.max_sign_in_failures) {
  answer("220 " + settings_.hostname + " ESMTP mssgate\r\n");
}

SubmissionCore::Action SubmissionCore::next() {
  while (actions_.empty()) {
    if (awaiting_ != Resume::kNone || mode_ == Mode::kDone) return Action{Kind::kClose};
    if (!advance()) return Action{Kind::kRead, "", mode_ == Mode::kData || mode_ == Mode::kBdat};
  }
  Queued queued = std::move(actions_.front());
  actions_.pop_front();
  awaiting_ = queued.resume;
  return std::move(queued.action);
}

bool SubmissionCore::advance() {
  switch (mode_) {
    case Mode::kCommands: {
      if (command_open_) {
        // Back to reading commands with every answer written: the last command is done.
        command_open_ = false;
        events_.command_finished();
      }
      std::string line;
      bool too_long = false;
      if (!read_line(line, too_long)) return false;
      if (too_long) {
        events_.protocol_error("line_too_long", "");
        refuse("500 5.5.2 Line too long\r\n");
        return true;
      }
      command(protocol::parse_smtp_command(line));
      return true;
    }
    case Mode::kSaslResponse: {
      std::string line;
      bool too_long = false;
      if (!read_line(line, too_long)) return false;
      mode_ = Mode::kCommands;
      exchange_step(exchange_->on_response(too_long ? std::string_view("*") : line));
      return true;
    }
    case Mode::kData:
    case Mode::kBdat:
      return read_message();
    case Mode::kDone:
      break;
  }
  return false;
}

// One command line from the unread bytes; a line over the cap is reported once and the rest of
// it skipped. False when more bytes are needed.
bool SubmissionCore::read_line(std::string& line, bool& too_long) {
  if (skipping_line_) {
    auto lf = unread_.find('\n');
    if (lf == std::string::npos) {
      unread_.clear();
      return false;
    }
    unread_.erase(0, lf + 1);
    skipping_line_ = false;
  }
  if (unread_.empty()) return false;
  auto result = lines_.feed(unread_);
  unread_.erase(0, result.consumed);
  if (result.status == protocol::LineSplitter::Status::kLine) {
    line = lines_.line();
    return true;
  }
  if (result.status == protocol::LineSplitter::Status::kTooLong) {
    lines_.reset();
    skipping_line_ = true;
    too_long = true;
    return true;
  }
  return false;
}

void SubmissionCore::command(const protocol::SmtpCommand& command) {
  const std::string& verb = command.verb;
  if (mailbox_.empty() && ++pre_auth_commands_ > settings_.max_pre_auth_commands) {
    // However harmless each (EHLO, NOOP, RSET), they do not keep a session unsigned-in.
    answer("421 4.7.0 Too many commands before authentication\r\n");
    return close_dropping_input("too_many_pre_auth_commands");
  }
  events_.command_started(verb);
  command_open_ = true;
  if (verb == "EHLO" || verb == "HELO") return hello(command);
  if (verb == "QUIT") {
    answer("221 2.0.0 Bye\r\n");
    return close("quit", tls_);
  }
  if (verb == "NOOP") return answer("250 2.0.0 Ok\r\n");
  if (verb == "STARTTLS") return start_tls();
  if (!tls_) return refuse("530 5.7.0 Must issue a STARTTLS command first\r\n");
  if (verb == "AUTH") return authenticate(command.argument);
  if (verb == "RSET") {
    reset_transaction(true);
    return answer("250 2.0.0 Ok\r\n");
  }
  if (verb == "VRFY")
    return answer("252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  if (verb == "HELP")
    return answer("214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT\r\n");
  if (verb == "MAIL" || verb == "RCPT" || verb == "DATA" || verb == "BDAT") {
    if (mailbox_.empty()) return refuse("530 5.7.0 Authentication required\r\n");
    if (verb == "MAIL") return mail(command.argument);
    if (verb == "RCPT") return recipient(command.argument);
    if (verb == "BDAT") return bdat(command.argument);
    return data(command.argument);
  }
  refuse("500 5.5.2 Command unrecognized\r\n");
}

void SubmissionCore::hello(const protocol::SmtpCommand& command) {
  if (command.argument.empty() || command.argument.find_first_of(" \t") != std::string::npos)
    return refuse("501 5.5.4 Syntax: " + command.verb + " hostname\r\n");
  reset_transaction(true);  // EHLO implies RSET
  helo_ = command.argument;
  if (command.verb == "HELO") return answer("250 " + settings_.hostname + "\r\n");
  // What the backend offers, learnt before the first EHLO answer that promises it.
  request(Kind::kLearnFeatures, Resume::kHelloFeatures, "", tls_);
}

void SubmissionCore::on_features(const PostfixFeatures& features) {
  awaiting_ = Resume::kNone;
  features_ = features;
  answer(hello_answer());
}

std::string SubmissionCore::hello_answer() const {
  std::vector<std::string> list{settings_.hostname,
                                "PIPELINING",
                                "SIZE " + std::to_string(settings_.max_message_bytes),
                                "8BITMIME",
                                "ENHANCEDSTATUSCODES",
                                "CHUNKING"};
  if (features_.dsn) list.emplace_back("DSN");
  if (features_.smtputf8) list.emplace_back("SMTPUTF8");
  if (!tls_) {
    list.emplace_back("STARTTLS");
  } else if (mailbox_.empty()) {
    list.emplace_back(settings_.tokens_offered ? "AUTH EXTERNAL XOAUTH2 OAUTHBEARER"
                                               : "AUTH EXTERNAL");
  }
  std::string text;
  for (size_t i = 0; i < list.size(); ++i)
    text += "250" + std::string(i + 1 < list.size() ? "-" : " ") + list[i] + "\r\n";
  return text;
}

void SubmissionCore::start_tls() {
  if (tls_) return refuse("503 5.5.1 TLS already active\r\n");
  if (!unread_.empty()) {
    // Bytes sent before the handshake would be taken as if protected by it (CVE-2011-0411).
    events_.protocol_error("pipelined_starttls", "");
    answer("421 4.5.0 STARTTLS must be the last command before the TLS handshake\r\n");
    return close_dropping_input("pipelined_after_starttls");
  }
  answer("220 2.0.0 Ready to start TLS\r\n");
  request(Kind::kStartTls, Resume::kTls);
}

void SubmissionCore::on_tls(bool established) {
  awaiting_ = Resume::kNone;
  if (!established) return close("");
  tls_ = true;
  helo_.clear();  // RFC 3207: the client starts over with EHLO
  lines_.reset();
}

void SubmissionCore::authenticate(const std::string& argument) {
  if (!mailbox_.empty()) return refuse("503 5.5.1 Already authenticated\r\n");
  if (mail_from_) return refuse("503 5.5.1 AUTH not permitted during a mail transaction\r\n");
  auto space = argument.find(' ');
  exchange_.emplace(std::string_view(argument).substr(0, space), settings_.tokens_offered);
  std::optional<std::string> initial;
  if (space != std::string::npos && space + 1 < argument.size())
    initial = argument.substr(space + 1);
  exchange_step(exchange_->start(std::move(initial)));
}

void SubmissionCore::exchange_step(SaslExchange::Step step) {
  switch (step) {
    case SaslExchange::Step::kChallenge:
      answer("334 " + exchange_->challenge() + "\r\n");
      mode_ = Mode::kSaslResponse;
      return;
    case SaslExchange::Step::kAuthorize:
      request(Kind::kAuthorize, Resume::kVerdict);
      return;
    case SaslExchange::Step::kDone:
      exchange_done();
      return;
  }
}

void SubmissionCore::on_verdict(SignInVerdict verdict, std::vector<std::string> allowed_senders) {
  awaiting_ = Resume::kNone;
  if (verdict.failure) return exchange_step(exchange_->on_verdict(std::move(verdict)));
  allowed_senders_ = std::move(allowed_senders);
  mailbox_ = verdict.mailbox;  // XCLIENT names it
  request(Kind::kBackendReady, Resume::kSignInBackend);
}

void SubmissionCore::exchange_done() {
  const SignInVerdict& outcome = exchange_->outcome();
  const std::string& mechanism = exchange_->mechanism();
  if (!outcome.failure) {
    events_.sign_in_attempt(mechanism, true, "ok", mailbox_);
    return answer("235 2.7.0 Authentication successful\r\n");
  }
  bool decided = *outcome.failure != SignInFailure::kUnsupportedMechanism &&
                 *outcome.failure != SignInFailure::kCancelled &&
                 *outcome.failure != SignInFailure::kMalformedResponse;
  failed_attempt(outcome.reason, decided ? std::string_view(outcome.mailbox) : "");
  switch (*outcome.failure) {
    case SignInFailure::kUnsupportedMechanism:
      return refuse("504 5.5.4 Unrecognized authentication type\r\n");
    case SignInFailure::kCancelled:
      return sign_in_failed("501 5.7.0 Authentication cancelled\r\n");
    case SignInFailure::kMalformedResponse:
      return sign_in_failed("501 5.5.2 Invalid SASL " + mechanism + " response\r\n");
    case SignInFailure::kTemporaryFailure:
      return sign_in_failed("454 4.7.0 Mail service temporarily unavailable, try again later\r\n");
    case SignInFailure::kLimitReached:
      return sign_in_failed("454 4.7.0 " + outcome.client_text + "\r\n");
    case SignInFailure::kAuthenticationFailed:
    case SignInFailure::kAuthorizationFailed:
      return sign_in_failed("535 5.7.8 " + outcome.client_text + "\r\n");
  }
}

// The attempt goes to the audit trail, and its answer waits as the failure policy says.
void SubmissionCore::failed_attempt(std::string_view reason, std::string_view mailbox) {
  events_.sign_in_attempt(exchange_->mechanism(), false, reason, mailbox);
  request(Kind::kPause, Resume::kNone);
}

void SubmissionCore::on_backend_ready(bool ready, const PostfixFeatures& features) {
  Resume resumed = std::exchange(awaiting_, Resume::kNone);
  backend_ready_ = ready;
  if (ready) features_ = features;
  switch (resumed) {
    case Resume::kSignInBackend:
      if (ready) return exchange_step(exchange_->on_verdict(SignInVerdict{{}, "ok", "", mailbox_}));
      exchange_step(exchange_->on_verdict(SignInVerdict{SignInFailure::kTemporaryFailure,
                                                        "backend_unavailable", "",
                                                        std::exchange(mailbox_, {})}));
      return;
    case Resume::kMailBackend:
      if (!ready)
        return answer("451 4.4.1 Mail service temporarily unavailable, try again later\r\n");
      return send_mail();
    case Resume::kMailRetryBackend:
      if (!ready) return refuse_relayed(std::nullopt, "Sender");
      request(Kind::kBackendCommand, Resume::kMailRetryReply, pending_mail_line_);
      return;
    case Resume::kPipelineBackend:
    case Resume::kPipelineRetryBackend:
      if (!ready) return refuse_relayed(std::nullopt, "Recipient");
      return send_mail_and_recipient(resumed == Resume::kPipelineBackend
                                         ? Resume::kPipelinedMailReply
                                         : Resume::kPipelinedMailRetryReply);
    default:
      return;
  }
}

void SubmissionCore::mail(const std::string& argument) {
  if (events_.draining()) {
    answer("421 4.3.2 Service shutting down, try again later\r\n");
    return close("stopping");
  }
  if (mail_from_) return refuse("503 5.5.1 Sender already specified\r\n");
  auto path = protocol::parse_path_argument(argument, "FROM");
  if (!path) return refuse("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n");
  for (const auto& [key, value] : path->parameters) {
    if (!known_mail_parameter(key, features_))
      return refuse("555 5.5.4 Unsupported MAIL parameter " + key + "\r\n");
    if (key == "SIZE" && !acceptable_size(value, settings_.max_message_bytes))
      return answer("552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  }
  bool null_sender = path->address.empty();
  if ((null_sender && !settings_.allow_null_sender) ||
      (!null_sender && !sender_allowed(path->address))) {
    events_.sender_refused("envelope", "", "");
    return answer("550 5.7.1 Sender address not allowed for this mailbox\r\n");
  }
  pending_sender_ = path->address;
  pending_smtputf8_ = false;
  pending_envelope_id_.clear();
  for (const auto& [key, value] : path->parameters) {
    pending_smtputf8_ = pending_smtputf8_ || key == "SMTPUTF8";
    // The id a DSN will give as its Original-Envelope-Id (RFC 3461 §4.4, RFC 3464 §2.2.1); one
    // that does not decode is Postfix's to refuse, and names nothing here.
    if (key == "ENVID")
      pending_envelope_id_ = protocol::report_id(protocol::xtext_decode(value).value_or(""));
  }
  pending_mail_line_ = "MAIL FROM:<" + path->address + ">";
  if (!path->parameter_text.empty()) pending_mail_line_ += " " + path->parameter_text;
  pending_mail_line_ += "\r\n";
  if (features_.pipelining) {
    // Postfix hears it with the first RCPT (see the class's comment).
    accept_mail();
    mail_unsent_ = true;
    return answer("250 2.1.0 Sender OK\r\n");
  }
  if (!backend_ready_) return request(Kind::kBackendReady, Resume::kMailBackend);
  send_mail();
}

void SubmissionCore::send_mail() {
  request(Kind::kBackendCommand, Resume::kMailReply, pending_mail_line_);
}

void SubmissionCore::accept_mail() {
  mail_from_ = pending_sender_;
  smtputf8_ = pending_smtputf8_;
  envelope_id_ = pending_envelope_id_;
  events_.transaction(true);
}

void SubmissionCore::send_mail_and_recipient(Resume resume) {
  request(Kind::kBackendCommand, resume, pending_mail_line_ + pending_recipient_line_);
}

// Postfix's reply to the MAIL that went with an RCPT; the RCPT's reply follows it.
void SubmissionCore::pipelined_mail_replied(const std::optional<protocol::SmtpReply>& reply,
                                            bool retried) {
  if (!reply) {
    // Nothing of the transaction is at the backend: Postfix may just have closed an idle
    // connection. Once more, on a new one.
    if (!retried) return request(Kind::kBackendReady, Resume::kPipelineRetryBackend);
    return refuse_relayed(reply, "Recipient");
  }
  if (!reply->positive()) {
    // The RCPT's reply (Postfix's 503: no sender) is read and dropped; the client hears the
    // sender's refusal, and MAIL goes again with its next RCPT.
    request(Kind::kBackendReply, Resume::kDroppedReply);
    return refuse_relayed(reply, "Sender");
  }
  mail_unsent_ = false;
  request(Kind::kBackendReply, Resume::kRecipientReply);
}

void SubmissionCore::recipient(const std::string& argument) {
  if (!mail_from_) return refuse("503 5.5.1 Need MAIL command\r\n");
  auto path = protocol::parse_path_argument(argument, "TO");
  if (!path || path->address.empty())
    return refuse("501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n");
  for (const auto& [key, value] : path->parameters) {
    if (key != "NOTIFY" && key != "ORCPT")
      return refuse("555 5.5.4 Unsupported RCPT parameter " + key + "\r\n");
  }
  if (recipients_.size() >= settings_.max_recipients)
    return answer("452 4.5.3 Too many recipients\r\n");
  pending_recipient_ = path->address;
  std::string line = "RCPT TO:<" + path->address + ">";
  if (!path->parameter_text.empty()) line += " " + path->parameter_text;
  line += "\r\n";
  if (!mail_unsent_) return request(Kind::kBackendCommand, Resume::kRecipientReply, line);
  pending_recipient_line_ = std::move(line);
  if (!backend_ready_) return request(Kind::kBackendReady, Resume::kPipelineBackend);
  send_mail_and_recipient(Resume::kPipelinedMailReply);
}

void SubmissionCore::on_backend_reply(std::optional<protocol::SmtpReply> reply) {
  Resume resumed = std::exchange(awaiting_, Resume::kNone);
  if (!reply) backend_lost();
  switch (resumed) {
    case Resume::kReset:
      if (reply && !reply->positive()) {
        // The backend's transaction state is unknown: a new connection starts clean.
        actions_.push_front(Queued{Action{Kind::kBackendDrop}, Resume::kNone});
        backend_lost();
      }
      return;
    case Resume::kMailReply:
      // No transaction is open yet: Postfix may just have closed an idle connection. Once more.
      if (!reply && !mail_from_) return request(Kind::kBackendReady, Resume::kMailRetryBackend);
      [[fallthrough]];
    case Resume::kMailRetryReply:
      if (!reply || !reply->positive()) return refuse_relayed(reply, "Sender");
      accept_mail();
      return answer("250 2.1.0 Sender OK\r\n");
    case Resume::kPipelinedMailReply:
    case Resume::kPipelinedMailRetryReply:
      return pipelined_mail_replied(reply, resumed == Resume::kPipelinedMailRetryReply);
    case Resume::kRecipientReply:
      if (!reply || !reply->positive()) return refuse_relayed(reply, "Recipient");
      recipients_.push_back(pending_recipient_);
      return answer("250 2.1.5 Recipient OK\r\n");
    case Resume::kDataOpened:
      return on_data_opened(std::move(reply));
    case Resume::kDataEnded: {
      Message& m = *message_;
      if (!reply) m.fate = Fate::kBackendFailed;
      m.reply = std::move(reply);
      if (m.fate == Fate::kStreaming && m.reply->positive() && m.stream.inspecting()) {
        // Postfix has the message: its inspection ends, then its event is made durable, before
        // the client hears 250.
        return request(Kind::kInspectEnd, Resume::kInspected);
      }
      return finish_message();
    }
    default:
      return;
  }
}

void SubmissionCore::refuse_relayed(const std::optional<protocol::SmtpReply>& reply,
                                    std::string_view subject) {
  if (!reply) return answer("451 4.4.1 Mail service temporarily unavailable, try again later\r\n");
  answer(relayed_reply(
      *reply, std::string(subject) + (reply->transient() ? " temporarily refused, try again later"
                                                         : " refused by the mail system")));
}

bool SubmissionCore::sender_allowed(std::string_view address) const {
  auto normalized = protocol::normalize_mailbox_address(address);
  if (!normalized) return false;
  return *normalized == mailbox_ || std::find(allowed_senders_.begin(), allowed_senders_.end(),
                                              *normalized) != allowed_senders_.end();
}

// Ends the transaction on both sides; with `tell_backend`, an open backend transaction is reset.
void SubmissionCore::reset_transaction(bool tell_backend) {
  if (tell_backend && backend_ready_ && mail_from_ && !mail_unsent_)
    request(Kind::kBackendCommand, Resume::kReset, "RSET\r\n");
  mail_from_.reset();
  mail_unsent_ = false;
  smtputf8_ = false;
  envelope_id_.clear();
  events_.transaction(false);
  recipients_.clear();
  message_.reset();
  bdat_ = false;
}

void SubmissionCore::backend_lost() {
  backend_ready_ = false;
  // A transaction with no recipient yet starts again at the next RCPT, on a new connection.
  if (mail_from_ && recipients_.empty() && features_.pipelining) mail_unsent_ = true;
}

void SubmissionCore::refuse(std::string text) {
  answer(std::move(text));
  if (++bad_commands_ < settings_.max_bad_commands) return;
  answer("421 4.7.0 Too many errors, closing the connection\r\n");
  close_dropping_input("too_many_bad_commands");
}

void SubmissionCore::sign_in_failed(std::string text) {
  answer(std::move(text));
  if (!sign_in_failures_.count()) return;
  answer("421 4.7.0 Too many authentication failures\r\n");
  close("too_many_auth_failures");
}

void SubmissionCore::answer(std::string text) {
  actions_.push_back(Queued{Action{Kind::kWrite, std::move(text)}, Resume::kNone});
}

void SubmissionCore::request(Kind kind, Resume resume, std::string text, bool option) {
  actions_.push_back(Queued{Action{kind, std::move(text), option}, resume});
}

void SubmissionCore::close(std::string_view reason, bool tls_shutdown) {
  if (!reason.empty()) events_.closing(reason);
  actions_.push_back(Queued{Action{Kind::kClose, "", tls_shutdown}, Resume::kNone});
  mode_ = Mode::kDone;
}

void SubmissionCore::close_dropping_input(std::string_view reason) {
  events_.closing(reason);
  actions_.push_back(Queued{Action{Kind::kCloseDroppingInput}, Resume::kNone});
  mode_ = Mode::kDone;
}

}  // namespace mssgate::core
