#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/action.hpp"
#include "daemon/core/author_check.hpp"
#include "daemon/core/message_stream.hpp"
#include "daemon/core/postfix_dialogue.hpp"
#include "daemon/core/sasl_exchange.hpp"
#include "daemon/core/session_events.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/message_inspector.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::core {

// How one submitted message ended, for the session's log line and metrics.
struct MessageOutcome {
  std::string_view result;  // accepted, refused, failed, aborted
  std::string_view reason;  // empty when accepted
  uint64_t size = 0;
  std::string message_id;  // the first Message-ID, cut at 200 bytes, when the header was read
  size_t recipients = 0;
  std::string queue_id;  // Postfix's, when accepted
};

// A message the backend accepted, for its indicator event.
struct SentMessage {
  std::vector<std::string> recipients;
  uint64_t size = 0;
  std::string queue_id;
  protocol::MessageFacts facts;
  std::string envelope_id;  // MAIL FROM's ENVID, decoded (protocol::report_id's form)
};

// The backend's reply for the client: its codes (the RFC 3463 enhanced code kept, or made from
// the code), with mssgate's own text; the backend's text never reaches the client.
std::string relayed_reply(const protocol::SmtpReply& reply, std::string_view text);
// Postfix's queue id in "250 2.0.0 Ok: queued as 4XyZ": 1 to kMaxQueueIdBytes letters and
// digits; empty when there is none of that shape.
constexpr size_t kMaxQueueIdBytes = 32;
std::string queue_id(const protocol::SmtpReply& reply);

class SubmissionEvents : public SessionEvents {
 public:
  // A sender was refused: `where` is envelope or from_header; for from_header, the field
  // (header, from, sender, resent_from, resent_sender) and the detail word of check_authors.
  virtual void sender_refused(std::string_view where, std::string_view field,
                              std::string_view detail) = 0;
  virtual void message_finished(const MessageOutcome& outcome) = 0;
  // A mail transaction opens (MAIL accepted) or closes: a graceful stop waits for open ones.
  virtual void transaction(bool open) = 0;
  // The gateway is stopping: no new transaction.
  virtual bool draining() const = 0;
};

// SMTP submission (RFC 6409) in front of Postfix: EHLO, STARTTLS (refused when more bytes
// follow it), AUTH through a SaslExchange, then MAIL and RCPT relayed, the sender held to the
// signed-in mailbox and its allowed senders (envelope, and the author fields of the header:
// check_authors), DATA and BDAT (RFC 3030) streamed to Postfix as DATA, the header section held
// until its author fields are checked, the 250 given only after Postfix's and after the
// message's indicator event is durable.
//
// Round trips to Postfix are spared where its extensions allow. When it offers PIPELINING
// (RFC 2920), MAIL is answered once mssgate's own checks pass and goes to Postfix with the first
// RCPT, in one write: a sender Postfix refuses is answered at that RCPT, as Postfix itself does
// by default (smtpd_delay_reject), and MAIL goes again with the next one. When it offers
// CHUNKING (RFC 3030), a message already whole when its header is checked goes as one
// "BDAT <size> LAST" with its bytes, one reply instead of DATA's two.
class SubmissionCore {
 public:
  struct Settings {
    std::string hostname;
    size_t max_line_bytes = 4096;
    uint64_t max_message_bytes = 30 << 20;
    size_t max_header_bytes = 256 << 10;
    unsigned max_recipients = 100;
    unsigned max_bad_commands = 10;
    unsigned max_sign_in_failures = 3;
    bool allow_null_sender = false;
    bool tokens_offered = false;
    bool inspect = false;                 // messages are inspected (when indicators are recorded)
    unsigned max_pre_auth_commands = 30;  // commands before AUTH succeeds; more end the session
  };
  enum class Kind {
    kRead,           // read client bytes (option: DATA/BDAT content), then on_client_bytes()
    kWrite,          // write text to the client
    kStartTls,       // the TLS handshake, then on_tls()
    kAuthorize,      // ask the sign-in service about credentials(), then on_verdict()
    kLearnFeatures,  // the backend's features (option: may connect to learn them), on_features()
    kBackendReady,  // the backend connected, greeted, told the client (XCLIENT), on_backend_ready()
    kBackendCommand,  // send the line(s) in text, read the (first) reply, then on_backend_reply()
    kBackendReply,    // read the reply to a line sent with an earlier one, then on_backend_reply()
    kBackendData,     // send text (message bytes), then on_backend_written()
    kBackendEndData,  // send text (the terminator), read the reply, then on_backend_reply()
    kBackendDrop,     // close the backend connection (the only way to abort a DATA)
    kInspect,         // hand text (the message's content, unstuffed) to its inspection; option: a
                      // new message begins (text empty)
    kEndInspection,   // the message has ended: its inspection may end while the backend answers
                      // (no event; kInspectEnd takes the facts)
    kInspectEnd,      // the message has ended: its inspection's facts, then on_inspected()
    kRecord,          // record take_sent_message()'s indicator event, then on_recorded()
    kPause,           // a sign-in failed: wait as the failure policy says before going on
    kClose,           // end the session (option: after a TLS close_notify)
    kCloseDroppingInput,  // end the session while the client may still be sending (a refused
                          // message or chunk, a flood): the stream ends after the answer, what
                          // the client still sends is read and dropped (bounded), then close
  };
  using Action = CoreAction<Kind>;

  SubmissionCore(Settings settings, SubmissionEvents& events, bool tls_active);

  // The next thing to do; after an action that names an on_...() call, call it first.
  Action next();

  void on_client_bytes(std::string_view bytes) { unread_.append(bytes); }
  // The client closed, failed or timed out: a message under way is aborted.
  void on_client_gone();
  void on_tls(bool established);
  // The sign-in service's verdict and, when allowed, the senders the mailbox may also use.
  void on_verdict(SignInVerdict verdict, std::vector<std::string> allowed_senders);
  void on_features(const PostfixFeatures& features);
  void on_backend_ready(bool ready, const PostfixFeatures& features);
  // nothing: the backend is gone (its connection is closed).
  void on_backend_reply(std::optional<protocol::SmtpReply> reply);
  void on_backend_written(bool written);
  void on_inspected(protocol::MessageFacts facts);
  void on_recorded(bool durable);

  const SaslCredentials& credentials() const { return exchange_->credentials(); }
  const std::string& mechanism() const { return exchange_->mechanism(); }
  const std::string& mailbox() const { return mailbox_; }
  const std::string& helo() const { return helo_; }
  bool tls_active() const { return tls_; }
  SentMessage take_sent_message() { return std::move(sent_); }

 private:
  // What an event resumes.
  enum class Resume {
    kNone,
    kTls,
    kVerdict,
    kSignInBackend,
    kHelloFeatures,
    kReset,
    kMailBackend,
    kMailReply,
    kMailRetryBackend,
    kMailRetryReply,
    kPipelineBackend,
    kPipelineRetryBackend,
    kPipelinedMailReply,
    kPipelinedMailRetryReply,
    kDroppedReply,
    kRecipientReply,
    kDataOpened,
    kDataWritten,
    kDataEnded,
    kInspected,
    kRecorded,
  };
  enum class Mode { kCommands, kSaslResponse, kData, kBdat, kDone };
  enum class Fate {
    kHolding,
    kStreaming,
    kSenderRefused,
    kTooLarge,
    kHeaderTooLarge,
    kBackendRefused,
    kBackendFailed
  };
  struct Message {
    explicit Message(const MessageStream::Settings& settings) : stream(settings) {}
    MessageStream stream;
    Fate fate = Fate::kHolding;
    bool header_ready = false;
    bool complete = false;
    std::optional<AuthorRefusal> author_refusal;  // when the fate is kSenderRefused
    std::optional<protocol::SmtpReply> reply;
    bool failed() const { return fate != Fate::kHolding && fate != Fate::kStreaming; }
  };

  // ---- commands (submission_core.cpp) ----------------------------------------------------
  bool advance();
  bool read_line(std::string& line, bool& too_long);
  void command(const protocol::SmtpCommand& command);
  void hello(const protocol::SmtpCommand& command);
  std::string hello_answer() const;
  void start_tls();
  void authenticate(const std::string& argument);
  void exchange_step(SaslExchange::Step step);
  void exchange_done();
  void mail(const std::string& argument);
  void send_mail();
  void accept_mail();
  void send_mail_and_recipient(Resume resume);
  void pipelined_mail_replied(const std::optional<protocol::SmtpReply>& reply, bool retried);
  void recipient(const std::string& argument);
  void refuse_relayed(const std::optional<protocol::SmtpReply>& reply, std::string_view subject);
  bool sender_allowed(std::string_view address) const;
  void reset_transaction(bool tell_backend);
  void backend_lost();
  void refuse(std::string text);
  void sign_in_failed(std::string text);
  void failed_attempt(std::string_view reason, std::string_view mailbox);
  void answer(std::string text);
  void request(Kind kind, Resume resume, std::string text = {}, bool option = false);
  void close(std::string_view reason, bool tls_shutdown = false);
  void close_dropping_input(std::string_view reason);

  // ---- messages (submission_message.cpp) -------------------------------------------------
  std::optional<std::string> message_refusal() const;
  MessageStream::Settings stream_settings() const;
  void data(const std::string& argument);
  void bdat(const std::string& argument);
  bool read_message();
  void hand_to_inspection();
  void take_fed(MessageStream::Fed fed);
  void continue_message();
  bool check_from();
  void on_data_opened(std::optional<protocol::SmtpReply> reply);
  void end_of_chunk();
  void conclude();
  void finish_message();
  void too_much_to_drain();
  void report_message(std::string_view result, std::string_view reason, std::string queue_id = {});
  uint64_t drain_limit() const;

  Settings settings_;
  SubmissionEvents& events_;
  bool tls_;
  protocol::LineSplitter lines_;
  std::string unread_;
  bool skipping_line_ = false;
  struct Queued {
    Action action;
    Resume resume;  // what the event that answers the action resumes; kNone: no event
  };
  std::deque<Queued> actions_;
  Resume awaiting_ = Resume::kNone;
  bool command_open_ = false;
  Mode mode_ = Mode::kCommands;
  unsigned bad_commands_ = 0;
  unsigned pre_auth_commands_ = 0;
  SignInFailures sign_in_failures_;
  std::optional<SaslExchange> exchange_;
  PostfixFeatures features_;
  bool backend_ready_ = false;
  std::string helo_;
  std::string mailbox_;
  std::vector<std::string> allowed_senders_;
  std::string pending_mail_line_;  // MAIL FROM, until the backend took it
  std::string pending_sender_;
  std::optional<std::string> mail_from_;
  bool pending_smtputf8_ = false;    // the MAIL waiting for the backend announced SMTPUTF8
  bool smtputf8_ = false;            // the transaction did (RFC 6531): UTF-8 in the From header
  std::string pending_envelope_id_;  // the MAIL waiting for the backend gave this ENVID
  std::string envelope_id_;          // the transaction's, for its indicator event
  std::string pending_recipient_;
  std::string pending_recipient_line_;  // RCPT, until the backend took it
  bool mail_unsent_ = false;            // MAIL answered here, for the backend with the next RCPT
  std::vector<std::string> recipients_;
  std::optional<Message> message_;
  bool bdat_ = false;        // the message comes in BDAT chunks
  uint64_t chunk_left_ = 0;  // bytes of the current BDAT chunk still to read
  bool chunk_last_ = false;
  std::string chunk_size_text_;
  std::optional<std::string> chunk_refusal_;  // the chunk is read, then this is the answer
  SentMessage sent_;
};

}  // namespace mssgate::core
