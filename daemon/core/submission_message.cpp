// The DATA and BDAT half of the submission core.
#include <algorithm>
#include <string>

#include "daemon/core/submission_core.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::core {
namespace {

// The client's answer to a refused author field: which field, never what it held.
std::string author_refusal_text(const AuthorRefusal& refusal) {
  if (refusal.field == "header") return "550 5.7.1 Message header cannot be read unambiguously\r\n";
  std::string_view name = refusal.field == "sender"          ? "Sender"
                          : refusal.field == "resent_from"   ? "Resent-From"
                          : refusal.field == "resent_sender" ? "Resent-Sender"
                                                             : "From";
  return "550 5.7.1 " + std::string(name) + " header must be the authenticated mailbox\r\n";
}

}  // namespace

std::optional<std::string> SubmissionCore::message_refusal() const {
  if (!mail_from_) return "503 5.5.1 Need MAIL command\r\n";
  if (recipients_.empty()) return "554 5.5.1 No valid recipients\r\n";
  return std::nullopt;
}

MessageStream::Settings SubmissionCore::stream_settings() const {
  MessageStream::Settings settings;
  settings.max_message_bytes = settings_.max_message_bytes;
  settings.hold_header = true;
  settings.max_header_bytes = settings_.max_header_bytes;
  settings.inspect = settings_.inspect;
  return settings;
}

// A refused message is read to its end so that the session can go on, but only up to here.
uint64_t SubmissionCore::drain_limit() const {
  return 2 * settings_.max_message_bytes + (1 << 20);
}

void SubmissionCore::data(const std::string& argument) {
  if (message_ && bdat_) return refuse("503 5.5.1 DATA after BDAT in the same transaction\r\n");
  if (auto refusal = message_refusal()) return refuse(*refusal);
  if (!argument.empty()) return refuse("501 5.5.4 Syntax: DATA\r\n");
  answer("354 End data with <CR><LF>.<CR><LF>\r\n");
  message_.emplace(stream_settings());
  if (settings_.inspect) request(Kind::kInspect, Resume::kNone, "", true);
  bdat_ = false;
  mode_ = Mode::kData;
}

// BDAT (RFC 3030): chunks of exactly the announced size, the last one marked LAST. Postfix
// gets the message as DATA all the same, so CHUNKING does not depend on the backend.
void SubmissionCore::bdat(const std::string& argument) {
  auto space = argument.find(' ');
  std::string size_text = argument.substr(0, space);
  std::string rest = space == std::string::npos ? std::string() : argument.substr(space + 1);
  bool last = protocol::ascii_iequals(rest, "LAST");
  if (size_text.empty() || size_text.size() > 12 ||
      size_text.find_first_not_of("0123456789") != std::string::npos || (!rest.empty() && !last)) {
    // Without a size, the chunk's end cannot be found: the session cannot go on.
    answer("501 5.5.4 Syntax: BDAT size [LAST]; closing the connection\r\n");
    return close_dropping_input("bad_bdat");
  }
  uint64_t size = std::stoull(size_text);
  uint64_t so_far = message_ && bdat_ ? message_->stream.size() : 0;
  if (so_far + size > drain_limit()) return too_much_to_drain();  // not worth reading to drop
  chunk_refusal_ = message_refusal();
  if (!chunk_refusal_ && !message_) {
    message_.emplace(stream_settings());
    if (settings_.inspect) request(Kind::kInspect, Resume::kNone, "", true);
    bdat_ = true;
  }
  chunk_left_ = size;
  chunk_last_ = last;
  chunk_size_text_ = size_text;
  mode_ = Mode::kBdat;
}

// Message bytes from the unread ones; false when more are needed.
bool SubmissionCore::read_message() {
  if (mode_ == Mode::kData) {
    if (unread_.empty()) return false;
    auto fed = message_->stream.feed_data(unread_);
    unread_.erase(0, fed.consumed);
    message_->complete = fed.complete;
    take_fed(fed.fed);
  } else if (chunk_left_ > 0) {
    // The chunk is read in full whatever happens to it (RFC 3030 §2).
    if (unread_.empty()) return false;
    size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, unread_.size()));
    if (!chunk_refusal_) {
      bool ends = chunk_last_ && take == chunk_left_;
      message_->complete = ends;
      take_fed(message_->stream.feed_content(std::string_view(unread_).substr(0, take), ends));
    }
    unread_.erase(0, take);
    chunk_left_ -= take;
  }
  hand_to_inspection();
  continue_message();
  return true;
}

// The content just read goes to the message's inspection, before it goes to the backend.
void SubmissionCore::hand_to_inspection() {
  if (!message_) return;
  std::string bytes = message_->stream.take_inspection_bytes();
  if (!bytes.empty()) request(Kind::kInspect, Resume::kNone, std::move(bytes));
}

void SubmissionCore::take_fed(MessageStream::Fed fed) {
  Message& m = *message_;
  switch (fed) {
    case MessageStream::Fed::kTooLarge:
      // Closing the connection is the only way to abort a DATA under way.
      if (m.fate == Fate::kStreaming) {
        request(Kind::kBackendDrop, Resume::kNone);
        backend_lost();
      }
      m.fate = Fate::kTooLarge;
      return;
    case MessageStream::Fed::kHeaderTooLarge:
      m.fate = Fate::kHeaderTooLarge;
      return;
    case MessageStream::Fed::kHeaderReady:
      m.header_ready = true;
      return;
    case MessageStream::Fed::kMore:
      return;
  }
}

// Takes the message as far as it can go without an event: the From check, the bytes for the
// backend, the end of the message or of the chunk.
void SubmissionCore::continue_message() {
  if (message_) {
    Message& m = *message_;
    if (m.fate == Fate::kHolding && m.header_ready && check_from()) return;
    if (m.stream.streaming()) {
      std::string bytes = m.stream.take_backend_bytes();
      if (!bytes.empty())
        return request(Kind::kBackendData, Resume::kDataWritten, std::move(bytes));
    }
    if (mode_ == Mode::kData) {
      if (m.stream.size() > drain_limit()) return too_much_to_drain();
      if (m.complete) conclude();
      return;
    }
  }
  if (mode_ == Mode::kBdat && chunk_left_ == 0) end_of_chunk();
}

// The header section is complete: its author fields must be the mailbox (or allowed senders),
// then the backend's DATA opens. True when the session now waits for the backend.
bool SubmissionCore::check_from() {
  Message& m = *message_;
  auto refusal = check_authors(
      m.stream.headers(), [this](std::string_view address) { return sender_allowed(address); },
      smtputf8_);
  if (refusal) {
    events_.sender_refused("from_header", refusal->field, refusal->detail);
    m.fate = Fate::kSenderRefused;
    m.author_refusal = refusal;
    m.stream.discard();
    return false;
  }
  if (features_.chunking && m.complete) {
    // The whole message is in hand: one BDAT and its reply, instead of DATA, its 354, the
    // bytes and their end.
    std::string bytes = m.stream.release_whole();
    std::string text = "BDAT " + std::to_string(bytes.size()) + " LAST\r\n";
    text += bytes;
    m.fate = Fate::kStreaming;
    if (m.stream.inspecting()) request(Kind::kEndInspection, Resume::kNone);
    request(Kind::kBackendEndData, Resume::kDataEnded, std::move(text));
    return true;
  }
  request(Kind::kBackendCommand, Resume::kDataOpened, "DATA\r\n");
  return true;
}

void SubmissionCore::on_data_opened(std::optional<protocol::SmtpReply> reply) {
  Message& m = *message_;
  if (!reply) {
    m.fate = Fate::kBackendFailed;
    m.stream.discard();
  } else if (reply->code != 354) {
    m.fate = Fate::kBackendRefused;
    m.reply = std::move(reply);
    m.stream.discard();
  } else {
    m.fate = Fate::kStreaming;
    m.stream.release_header();
  }
  continue_message();
}

void SubmissionCore::on_backend_written(bool written) {
  awaiting_ = Resume::kNone;
  Message& m = *message_;
  if (!written) {
    backend_lost();
    m.fate = Fate::kBackendFailed;
    m.stream.discard();
  }
  continue_message();
}

void SubmissionCore::end_of_chunk() {
  if (chunk_refusal_) {
    mode_ = Mode::kCommands;
    return refuse(*std::exchange(chunk_refusal_, std::nullopt));
  }
  Message& m = *message_;
  if (chunk_last_ && !m.complete) {
    // "BDAT 0 LAST": the message ends with no bytes of its own.
    m.complete = true;
    take_fed(m.stream.feed_content({}, true));
    return continue_message();
  }
  mode_ = Mode::kCommands;
  // A failed message is answered at once; later chunks find no transaction (503).
  if (chunk_last_ || m.failed()) return conclude();
  answer("250 2.0.0 " + chunk_size_text_ + " octets received\r\n");
}

// The message is complete: ends it at the backend, then answers.
void SubmissionCore::conclude() {
  if (message_->fate == Fate::kStreaming) {
    // Its inspection ends while Postfix answers: the facts are ready when its 250 comes.
    if (message_->stream.inspecting()) request(Kind::kEndInspection, Resume::kNone);
    return request(Kind::kBackendEndData, Resume::kDataEnded,
                   message_->stream.backend_terminator());
  }
  finish_message();
}

void SubmissionCore::on_inspected(protocol::MessageFacts facts) {
  awaiting_ = Resume::kNone;
  Message& m = *message_;
  sent_ =
      SentMessage{recipients_, m.stream.size(), queue_id(*m.reply), std::move(facts), envelope_id_};
  request(Kind::kRecord, Resume::kRecorded);
}

void SubmissionCore::on_recorded(bool /*durable*/) {
  // An event that could not be made durable is the session's to report: the message itself
  // is accepted by the backend and is not held back for it.
  awaiting_ = Resume::kNone;
  finish_message();
}

void SubmissionCore::finish_message() {
  Message& m = *message_;
  std::string text;
  const char* temporary = "Message temporarily refused, try again later";
  const char* permanent = "Message refused by the mail system";
  switch (m.fate) {
    case Fate::kStreaming:
      if (m.reply->positive()) {
        std::string id = queue_id(*m.reply);
        text = "250 2.0.0 Ok: queued as " + (id.empty() ? std::string("(unknown)") : id) + "\r\n";
        report_message("accepted", "", std::move(id));
      } else {
        report_message("refused", "backend_refused");
        text = relayed_reply(*m.reply, m.reply->transient() ? temporary : permanent);
      }
      break;
    case Fate::kBackendRefused:
      report_message("refused", "backend_refused_data");
      text = relayed_reply(*m.reply, m.reply->transient() ? temporary : permanent);
      break;
    case Fate::kSenderRefused:
      report_message("refused", "from_header");
      text = author_refusal_text(*m.author_refusal);
      break;
    case Fate::kTooLarge:
      report_message("refused", "too_large");
      text = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
      break;
    case Fate::kHeaderTooLarge:
      report_message("refused", "header_too_large");
      text = "552 5.3.4 Message header too large\r\n";
      break;
    case Fate::kBackendFailed:
    case Fate::kHolding:
      report_message("failed", "backend_lost");
      text = "451 4.4.2 Connection to the mail system lost, message not accepted: try again\r\n";
      break;
  }
  mode_ = Mode::kCommands;
  reset_transaction(m.fate != Fate::kStreaming);
  answer(std::move(text));
}

void SubmissionCore::too_much_to_drain() {
  if (message_ && message_->fate == Fate::kStreaming) {
    request(Kind::kBackendDrop, Resume::kNone);
    backend_lost();
  }
  report_message("refused", "too_large");
  answer("552 5.3.4 Message size exceeds fixed maximum message size; closing the connection\r\n");
  close_dropping_input("message_too_large");
}

void SubmissionCore::report_message(std::string_view result, std::string_view reason,
                                    std::string queue_id) {
  MessageOutcome outcome{result, reason, 0, "", recipients_.size(), std::move(queue_id)};
  if (message_) {
    outcome.size = message_->stream.size();
    const auto& headers = message_->stream.headers();
    if (headers.complete()) {
      auto ids = headers.values("Message-ID");
      if (!ids.empty()) outcome.message_id = ids.front().substr(0, 200);
    }
  }
  events_.message_finished(outcome);
}

void SubmissionCore::on_client_gone() {
  if ((mode_ == Mode::kData || mode_ == Mode::kBdat) && message_)
    report_message("aborted", "client_gone");
  mode_ = Mode::kDone;
}

}  // namespace mssgate::core
