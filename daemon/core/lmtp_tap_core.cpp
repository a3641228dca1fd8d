#include "daemon/core/lmtp_tap_core.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

#include "daemon/core/delivery_id.hpp"
#include "protocol/ascii.hpp"
#include "protocol/smtp_command.hpp"

namespace mssgate::core {
namespace {

std::string path_address(const std::string& line, std::string_view keyword) {
  auto path = protocol::parse_path_argument(line.substr(std::min(line.size(), size_t{5})), keyword);
  return path ? protocol::ascii_lower(path->address) : std::string();
}

// The commands of Postfix's LMTP client (RFC 2033): nothing else reaches Dovecot, whose LMTP
// service would take XCLIENT, AUTH or VRFY from a trusted host.
bool relayed_verb(std::string_view verb) {
  static constexpr std::string_view kVerbs[] = {"LHLO", "MAIL", "RCPT", "DATA",
                                                "RSET", "NOOP", "QUIT"};
  return std::find(std::begin(kVerbs), std::end(kVerbs), verb) != std::end(kVerbs);
}

// The extensions Postfix may use through the tap: their parameters ride on MAIL and RCPT.
// Any other (CHUNKING, STARTTLS, XCLIENT, XFORWARD, AUTH, VRFY...) names a command the tap
// refuses, so it is not offered.
bool relayed_extension(std::string_view keyword) {
  static constexpr std::string_view kExtensions[] = {
      "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE", "DSN", "SMTPUTF8"};
  return std::find(std::begin(kExtensions), std::end(kExtensions), keyword) !=
         std::end(kExtensions);
}

void filter_lhlo(RawReply& reply) {
  std::vector<std::string> kept;
  for (size_t i = 0; i < reply.lines.size(); ++i) {
    if (reply.lines[i].size() < 4) continue;
    std::string keyword = protocol::ascii_upper(reply.lines[i].substr(4));
    keyword = keyword.substr(0, keyword.find(' '));
    if (i > 0 && !relayed_extension(keyword)) continue;
    kept.push_back(reply.lines[i].substr(4));
  }
  reply.lines.clear();
  for (size_t i = 0; i < kept.size(); ++i)
    reply.lines.push_back("250" + std::string(i + 1 < kept.size() ? "-" : " ") + kept[i]);
}

bool blank(char c) {
  return c == ' ' || c == '\t';
}

// A command line as Dovecot gets it: the verb in capitals, split from its argument at any run
// of blanks (so that "XCLIENT\tADDR=" is XCLIENT), then one space.
struct TapCommand {
  std::string verb;
  std::string line;
  bool control = false;  // a control character in the line (other than a tab)
};

TapCommand split_command(std::string_view line) {
  TapCommand command;
  command.control = std::any_of(line.begin(), line.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
  size_t end = 0;
  while (end < line.size() && !blank(line[end]))
    ++end;
  command.verb = protocol::ascii_upper(line.substr(0, end));
  while (end < line.size() && blank(line[end]))
    ++end;
  std::string_view argument = line.substr(end);
  command.line = command.verb + (argument.empty() ? "" : " ") + std::string(argument);
  return command;
}

}  // namespace

std::string RawReply::text() const {
  std::string out;
  for (const auto& line : lines)
    out += line + "\r\n";
  return out;
}

LmtpTapCore::LmtpTapCore(Settings settings, LmtpEvents& events)
    : settings_(std::move(settings)), events_(events), lines_(settings_.max_line_bytes) {
  ask(Kind::kConnectBackend, Await::kConnected);
}

LmtpTapCore::Action LmtpTapCore::next() {
  while (actions_.empty()) {
    if (awaiting_ != Await::kNothing || mode_ == Mode::kDone) return Action{Kind::kClose};
    if (!advance()) return Action{Kind::kRead, "", mode_ == Mode::kData};
  }
  Queued queued = std::move(actions_.front());
  actions_.pop_front();
  awaiting_ = queued.await;
  return std::move(queued.action);
}

void LmtpTapCore::on_backend_connected(bool connected) {
  awaiting_ = Await::kNothing;
  if (!connected) {
    write("421 4.3.0 Mail store unavailable, try again later\r\n");
    return close("backend_unavailable");
  }
  ask(Kind::kReadReply, Await::kGreeting);
}

bool LmtpTapCore::advance() {
  if (mode_ == Mode::kData) {
    if (unread_.empty()) return false;
    read_data();
    return true;
  }
  if (command_open_) {
    command_open_ = false;
    events_.command_finished();
  }
  if (unread_.empty()) return false;
  auto result = lines_.feed(unread_);
  unread_.erase(0, result.consumed);
  if (result.status == protocol::LineSplitter::Status::kTooLong) {
    write("500 5.5.2 Line too long; closing the connection\r\n");
    close("line_too_long");
    return true;
  }
  if (result.status == protocol::LineSplitter::Status::kLine) command(lines_.line());
  return true;
}

void LmtpTapCore::command(const std::string& line) {
  TapCommand command = split_command(line);
  events_.command_started(command.verb);
  command_open_ = true;
  if (command.control) return write("501 5.5.2 Control character in the command line\r\n");
  if (!relayed_verb(command.verb)) return write("502 5.5.1 Command not implemented\r\n");
  if (command.verb == "MAIL" && events_.draining()) {
    // Postfix keeps its connection for the next delivery: while stopping, that next delivery is
    // deferred (Postfix tries again, through another gateway or after the restart), so that the
    // transactions under way come to an end and the stop does not wait for Postfix's queue.
    write("421 4.3.2 Service shutting down, try again later\r\n");
    return close("stopping");
  }
  verb_ = command.verb;
  line_ = command.line;
  ask(Kind::kRelay, verb_ == "DATA" ? Await::kDataReply : Await::kReply, line_ + "\r\n");
}

void LmtpTapCore::on_backend_reply(std::optional<RawReply> reply) {
  Await awaited = std::exchange(awaiting_, Await::kNothing);
  if (awaited == Await::kGreeting) {
    if (!reply || reply->reply.code != 220) {
      // (Dovecot's own words stay out of the log, as for the submission backend.)
      events_.backend_failed("greeting", reply ? "unexpected greeting" : "no greeting");
      write("421 4.3.0 Mail store unavailable, try again later\r\n");
      return close("backend_unavailable");
    }
    return write("220 " + settings_.hostname + " LMTP mssgate\r\n");
  }
  if (awaited == Await::kRecipientReply) {
    if (!reply) {
      backend_ok_ = false;
      return end_of_delivery();
    }
    replies_.push_back(std::move(*reply));
    return next_recipient_reply();
  }
  if (!reply) return backend_gone();
  if (awaited == Await::kDataReply) return data_opened(*reply);
  relayed(verb_, line_, std::move(*reply));
}

void LmtpTapCore::relayed(const std::string& verb, const std::string& line, RawReply reply) {
  if (verb == "LHLO" && reply.reply.code == 250) {
    filter_lhlo(reply);
  } else if (verb == "MAIL" && reply.reply.positive()) {
    sender_ = path_address(line, "FROM");
    recipients_.clear();
    events_.transaction(true);
  } else if (verb == "RCPT" && reply.reply.positive()) {
    recipients_.push_back(path_address(line, "TO"));
  } else if (verb == "RSET") {
    recipients_.clear();
    events_.transaction(false);
  }
  write(reply.text());
  if (verb == "QUIT") close("");
}

void LmtpTapCore::backend_gone() {
  write("421 4.4.2 Mail store connection lost, try again later\r\n");
  close("backend_lost");
}

void LmtpTapCore::data_opened(const RawReply& reply) {
  write(reply.text());
  if (reply.reply.code != 354) {
    recipients_.clear();
    events_.transaction(false);
    return;
  }
  MessageStream::Settings stream;
  stream.inspect = settings_.inspect;
  stream.fingerprint = true;
  // The header section is held until its delivery id is known; one over the cap goes on
  // without (Dovecot cannot tell a delivery of it made again).
  stream.hold_header = !settings_.delivery_id_header.empty();
  stream.pass_large_header = true;
  message_.emplace(stream);
  if (settings_.inspect) ask(Kind::kInspect, Await::kNothing, "", true);
  backend_ok_ = true;
  terminated_ = false;
  recorded_ = false;
  entered_ = false;
  replies_.clear();
  mode_ = Mode::kData;
}

void LmtpTapCore::read_data() {
  auto fed = message_->feed_data(unread_);
  unread_.erase(0, fed.consumed);
  if (fed.fed == MessageStream::Fed::kHeaderReady) stamp_header();
  std::string inspected = message_->take_inspection_bytes();
  if (!inspected.empty()) ask(Kind::kInspect, Await::kNothing, std::move(inspected));
  std::string bytes = message_->take_backend_bytes();
  if (fed.complete) mode_ = Mode::kCommands;
  if (backend_ok_ && !bytes.empty())
    return ask(Kind::kBackendData, Await::kWritten, std::move(bytes));
  if (fed.complete) end_of_message();
}

void LmtpTapCore::stamp_header() {
  std::string_view held = message_->held();
  size_t header_bytes = message_->header_bytes();
  std::string id = delivery_id(held.substr(0, header_bytes));
  message_->release_header(stamp_delivery_id(held, header_bytes, settings_.delivery_id_header, id));
}

void LmtpTapCore::on_backend_written(bool written) {
  awaiting_ = Await::kNothing;
  if (!written) {
    backend_ok_ = false;  // the rest of the message is read, and Postfix told to try again
    message_->discard();
  }
  if (mode_ != Mode::kCommands) return;
  if (terminated_) return next_recipient_reply();
  end_of_message();
}

// Postfix has sent the whole message, Dovecot all of it but its end. The inspection ends, the
// events are made durable as pending, and only then does Dovecot get the end of the message.
void LmtpTapCore::end_of_message() {
  if (!backend_ok_) return end_of_delivery();  // every recipient gets a 451: nothing to count
  if (!settings_.inspect || recipients_.empty()) return enter_then_terminate();
  received_ = ReceivedMessage{sender_, recipients_, message_->fingerprint(), message_->size(), {}};
  ask(Kind::kInspectEnd, Await::kInspected);
}

void LmtpTapCore::on_inspected(protocol::MessageFacts facts) {
  awaiting_ = Await::kNothing;
  received_.facts = std::move(facts);
  ask(Kind::kRecord, Await::kRecorded);
}

// Not durable: the message still goes (an error event says it is not counted).
void LmtpTapCore::on_recorded(bool durable) {
  awaiting_ = Await::kNothing;
  recorded_ = durable;
  enter_then_terminate();
}

// Dovecot may get the ends of messages for one mailbox one at a time, so that its duplicate
// database keeps every delivery id (MailboxGate).
void LmtpTapCore::enter_then_terminate() {
  if (!settings_.serial_per_mailbox || recipients_.empty()) return send_terminator();
  ask(Kind::kEnter, Await::kEntered);
}

void LmtpTapCore::on_entered() {
  awaiting_ = Await::kNothing;
  entered_ = true;
  send_terminator();
}

void LmtpTapCore::send_terminator() {
  terminated_ = true;
  ask(Kind::kBackendData, Await::kWritten, message_->backend_terminator());
}

// One reply per accepted recipient (RFC 2033 §4.2), in order.
void LmtpTapCore::next_recipient_reply() {
  if (backend_ok_ && replies_.size() < recipients_.size())
    return ask(Kind::kReadReply, Await::kRecipientReply);
  end_of_delivery();
}

// Postfix hears Dovecot's replies at once: nothing waited for in between. Then the pending
// events are settled: a delivered recipient's counts from now on (and from the next opening of
// the journal if a crash comes first). A refused recipient's is dropped before Postfix hears
// the refusal, and that is waited for: else a crash would leave it counted, and Postfix would
// not deliver the message again.
void LmtpTapCore::end_of_delivery() {
  settlement_.assign(recipients_.size(), false);
  for (size_t i = 0; i < replies_.size() && i < settlement_.size(); ++i)
    settlement_[i] = replies_[i].reply.positive();
  bool recorded = std::exchange(recorded_, false);
  bool refused = std::find(settlement_.begin(), settlement_.end(), false) != settlement_.end();
  if (recorded && refused) {
    leave();
    answer_when_settled_ = true;
    return ask(Kind::kSettle, Await::kSettled, "", true);
  }
  answer();
  leave();
  if (recorded) ask(Kind::kSettle, Await::kSettled);
}

void LmtpTapCore::leave() {
  if (std::exchange(entered_, false)) ask(Kind::kLeave, Await::kNothing);
}

void LmtpTapCore::on_settled() {
  awaiting_ = Await::kNothing;
  if (std::exchange(answer_when_settled_, false)) answer();
}

void LmtpTapCore::answer() {
  std::string answer;
  for (const auto& reply : replies_)
    answer += reply.text();
  // Recipients Dovecot did not answer for: Postfix tries them again later.
  for (size_t i = replies_.size(); i < recipients_.size(); ++i)
    answer += "451 4.4.2 Mail store connection lost, try again later\r\n";
  auto delivered = static_cast<unsigned>(std::count_if(
      replies_.begin(), replies_.end(), [](const RawReply& r) { return r.reply.positive(); }));
  events_.delivery_finished(DeliveryOutcome{backend_ok_ ? "relayed" : "backend_lost", "",
                                            message_->size(), recipients_.size(), delivered});
  recipients_.clear();
  message_.reset();
  actions_.push_back(Queued{Action{Kind::kWrite, std::move(answer), true}, Await::kNothing});
  events_.transaction(false);
  if (!backend_ok_) close("backend_lost");
}

void LmtpTapCore::on_client_gone() {
  if (mode_ == Mode::kData && message_)
    events_.delivery_finished(
        DeliveryOutcome{"aborted", "client_gone", message_->size(), recipients_.size(), 0});
  mode_ = Mode::kDone;
}

void LmtpTapCore::write(std::string text) {
  actions_.push_back(Queued{Action{Kind::kWrite, std::move(text)}, Await::kNothing});
}

void LmtpTapCore::ask(Kind kind, Await await, std::string text, bool option) {
  actions_.push_back(Queued{Action{kind, std::move(text), option}, await});
}

void LmtpTapCore::close(std::string_view reason) {
  if (!reason.empty()) events_.closing(reason);
  actions_.push_back(Queued{Action{Kind::kClose}, Await::kNothing});
  mode_ = Mode::kDone;
}

}  // namespace mssgate::core
