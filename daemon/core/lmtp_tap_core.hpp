#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/action.hpp"
#include "daemon/core/message_stream.hpp"
#include "daemon/core/session_events.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/message_inspector.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::core {

// A backend reply as read: its lines as they came (relayed verbatim to Postfix) and parsed.
struct RawReply {
  protocol::SmtpReply reply;
  std::vector<std::string> lines;
  std::string text() const;
};

// How one LMTP delivery ended, for the session's log line and metrics.
struct DeliveryOutcome {
  std::string_view result;  // relayed, backend_lost, aborted
  std::string_view reason;
  uint64_t size = 0;
  size_t recipients = 0;
  unsigned delivered = 0;  // recipients Dovecot accepted
};

// A message about to be handed over to Dovecot, for its recipients' indicator events (pending
// until Dovecot has answered for each).
struct ReceivedMessage {
  std::string sender;                   // MAIL FROM, lower-cased
  std::vector<std::string> recipients;  // those Dovecot accepted at RCPT, lower-cased, in order
  std::string fingerprint;              // SHA-256 of the content: a redelivery counts once
  uint64_t size = 0;
  protocol::MessageFacts facts;
};

class LmtpEvents : public SessionEvents {
 public:
  virtual void backend_failed(std::string_view step, std::string_view detail) = 0;
  virtual void delivery_finished(const DeliveryOutcome& outcome) = 0;
  virtual void transaction(bool open) = 0;
  // The gateway is stopping: the transaction under way may end, no new one begins.
  virtual bool draining() const = 0;
};

// The LMTP tap between Postfix and Dovecot's LMTP service (RFC 2033): the commands of an LMTP
// delivery (LHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) relayed, any other refused with 502 and
// never offered in the LHLO answer (XCLIENT, AUTH, VRFY, BDAT, STARTTLS...), DATA streamed to
// Dovecot while it is inspected and fingerprinted. Before Dovecot gets the end of the message
// (and delivers it), its events are made durable as pending; Dovecot's per-recipient replies
// then go to Postfix at once, the events settled on the way: nothing slow stands between
// Dovecot's delivery and Postfix's hearing of it, when a crash would make Postfix deliver the
// message again.
class LmtpTapCore {
 public:
  struct Settings {
    std::string hostname;
    size_t max_line_bytes = 4096;
    bool inspect = false;  // messages are inspected (when indicators are recorded)
    // The field that carries each message's delivery id to Dovecot (delivery_id.hpp), first in
    // its header section; empty: none.
    std::string delivery_id_header;
    // Dovecot gets the end of one message at a time per mailbox (kEnter, kLeave).
    bool serial_per_mailbox = false;
  };
  enum class Kind {
    kConnectBackend,  // connect to Dovecot, then on_backend_connected()
    kReadReply,       // read one backend reply, then on_backend_reply()
    kRelay,        // send text (a command line) to the backend, read its reply, on_backend_reply()
    kBackendData,  // send text (message bytes) to the backend, then on_backend_written()
    kRead,         // read client bytes (option: DATA content), then on_client_bytes()
    kWrite,        // write text to the client; option: the answer to the end of a message
    kInspect,      // hand text (the message's content, unstuffed) to its inspection; option: a
                   // new message begins (text empty)
    kInspectEnd,   // the message has ended: its inspection's facts, then on_inspected()
    kRecord,       // record take_received()'s events as pending, then on_recorded()
    kSettle,       // settle them (take_settlement(): delivered or not, per recipient), then
                   // on_settled(); option: once that is durable (a recipient was refused, and
                   // Postfix hears it after); without: at once (Postfix has heard)
    kEnter,        // wait until no other delivery to recipients() is with Dovecot, then
                   // on_entered(): they are this one's until kLeave
    kLeave,        // Dovecot has answered: other deliveries to these mailboxes may go on
    kClose,
  };
  using Action = CoreAction<Kind>;

  LmtpTapCore(Settings settings, LmtpEvents& events);

  Action next();
  void on_client_bytes(std::string_view bytes) { unread_.append(bytes); }
  void on_client_gone();
  void on_backend_connected(bool connected);
  void on_backend_reply(std::optional<RawReply> reply);
  void on_backend_written(bool written);
  void on_inspected(protocol::MessageFacts facts);
  void on_recorded(bool durable);
  void on_settled();
  void on_entered();
  // The mailboxes of the delivery under way: those Dovecot accepted at RCPT, lower-cased.
  const std::vector<std::string>& recipients() const { return recipients_; }
  ReceivedMessage take_received() { return std::move(received_); }
  std::vector<bool> take_settlement() { return std::move(settlement_); }

 private:
  enum class Await {
    kNothing,
    kConnected,
    kGreeting,
    kReply,
    kDataReply,
    kWritten,
    kRecipientReply,
    kInspected,
    kRecorded,
    kSettled,
    kEntered
  };
  enum class Mode { kCommands, kData, kDone };

  bool advance();
  void command(const std::string& line);
  void relayed(const std::string& verb, const std::string& line, RawReply reply);
  void data_opened(const RawReply& reply);
  void read_data();
  void stamp_header();
  void end_of_message();
  void enter_then_terminate();
  void send_terminator();
  void next_recipient_reply();
  void end_of_delivery();
  void leave();
  void answer();
  void backend_gone();
  void write(std::string text);
  void ask(Kind kind, Await await, std::string text = {}, bool option = false);
  void close(std::string_view reason);

  Settings settings_;
  LmtpEvents& events_;
  protocol::LineSplitter lines_;
  std::string unread_;
  struct Queued {
    Action action;
    Await await;
  };
  std::deque<Queued> actions_;
  Await awaiting_ = Await::kNothing;
  Mode mode_ = Mode::kCommands;
  bool command_open_ = false;
  std::string verb_;  // of the command whose reply is awaited
  std::string line_;
  std::string sender_;
  std::vector<std::string> recipients_;  // accepted by Dovecot, in order
  std::optional<MessageStream> message_;
  bool backend_ok_ = true;
  bool terminated_ = false;           // Dovecot has the end of the message
  bool recorded_ = false;             // its events are pending: settled once Dovecot has answered
  bool entered_ = false;              // the recipients' mailboxes are this delivery's (kEnter)
  bool answer_when_settled_ = false;  // a refusal waits for its event's drop
  std::vector<RawReply> replies_;     // one per recipient, after DATA
  ReceivedMessage received_;
  std::vector<bool> settlement_;
};

}  // namespace mssgate::core
