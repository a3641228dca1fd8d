#include "daemon/session/lmtp_session.hpp"

#include <openssl/evp.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "daemon/telemetry/event_log.hpp"
#include "daemon/services/indicator_event.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "daemon/session/proxy_connection.hpp"
#include "protocol/ascii.hpp"
#include "protocol/line_splitter.hpp"
#include "protocol/smtp_command.hpp"
#include "protocol/smtp_data.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;

constexpr size_t kReadBytes = 16384;

ProxyConnection::Timeouts lmtp_timeouts(const config::Config& config) {
  return {config.tls.handshake_timeout, config.lmtp.command_timeout,
          config.lmtp.backend_connect_timeout, config.lmtp.backend_response_timeout};
}

// SHA-256 fed piece by piece: the delivered content's fingerprint keys the received events, so
// that Postfix delivering the same message again (after a lost reply) is counted once.
class ContentDigest {
 public:
  ContentDigest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~ContentDigest() { EVP_MD_CTX_free(ctx_); }
  ContentDigest(const ContentDigest&) = delete;
  ContentDigest& operator=(const ContentDigest&) = delete;
  void update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, digest, &size);
    return protocol::hex_lower({reinterpret_cast<const char*>(digest), size});
  }

 private:
  EVP_MD_CTX* ctx_;
};

// The backend's reply as read: its raw lines (relayed as they are) and its parsed form.
struct RawReply {
  protocol::SmtpReply reply;
  std::vector<std::string> lines;

  std::string text() const {
    std::string out;
    for (const auto& line : lines)
      out += line + "\r\n";
    return out;
  }
};

class LmtpSession final : public ProxyConnection {
 public:
  LmtpSession(tcp::socket socket, std::shared_ptr<const GatewayEnvironment> env,
              std::shared_ptr<GatewayCounters> counters)
      : ProxyConnection(std::move(socket), "lmtp", false, env, std::move(counters),
                        lmtp_timeouts(env->config)),
        lmtp_(config_.lmtp),
        lines_(lmtp_.max_line_bytes) {}

 private:
  awaitable<void> run([[maybe_unused]] std::shared_ptr<ProxyConnection> self) override {
    bool opened = co_await open_session("421 4.3.2 Too many connections, try again later\r\n");
    if (!opened) co_return;
    auto start = Clock::now();
    bool connected = co_await connect_backend(lmtp_.backend);
    std::optional<RawReply> greeting;
    if (connected) greeting = co_await read_reply();
    if (!greeting || greeting->reply.code != 220) {
      // (Dovecot's own words stay out of the log, as for the submission backend.)
      if (connected)
        backend_failed("greeting", greeting ? "unexpected greeting" : "no greeting", start);
      set_close_reason("backend_unavailable");
      co_await write_client("421 4.3.0 Mail store unavailable, try again later\r\n");
      close_all();
      co_return;
    }
    bool going = co_await write_client("220 " + config_.smtp.hostname + " LMTP mssgate\r\n");
    while (going && !closed()) {
      auto line = co_await read_command_line();
      if (!line) break;
      auto command_start = Clock::now();
      going = co_await command(*line);
      observe_command(std::string_view(*line).substr(0, line->find(' ')), command_start);
    }
    close_all();
  }

  // ---- client side -------------------------------------------------------------------------
  awaitable<std::optional<std::string>> read_command_line() {
    std::array<char, 4096> buffer;
    for (;;) {
      if (!pending_.empty()) {
        auto r = lines_.feed(pending_);
        pending_.erase(0, r.consumed);
        if (r.status == protocol::LineSplitter::Status::kLine) co_return lines_.line();
        if (r.status == protocol::LineSplitter::Status::kTooLong) {
          set_close_reason("line_too_long");
          co_await write_client("500 5.5.2 Line too long; closing the connection\r\n");
          co_return std::nullopt;
        }
        continue;
      }
      auto [ec, n] = co_await read_client(asio::buffer(buffer), lmtp_.command_timeout);
      if (ec) {
        note_end(ec, "client");
        co_return std::nullopt;
      }
      pending_.assign(buffer.data(), n);
    }
  }

  // ---- backend side ------------------------------------------------------------------------
  awaitable<std::optional<RawReply>> read_reply(std::optional<Clock::duration> timeout = {}) {
    RawReply raw;
    auto reply = co_await read_backend_reply(timeout, &raw.lines);
    if (!reply) co_return std::nullopt;
    raw.reply = std::move(*reply);
    co_return raw;
  }

  // Sends one command line to Dovecot and returns its reply; nullopt when Dovecot is gone.
  awaitable<std::optional<RawReply>> relay_command(const std::string& line) {
    bool written = co_await write_backend(line + "\r\n");
    if (!written) co_return std::nullopt;
    auto reply = co_await read_reply();
    co_return reply;
  }

  // ---- commands ----------------------------------------------------------------------------
  awaitable<bool> command(const std::string& line) {
    std::string verb = line.substr(0, line.find(' '));
    std::string upper = protocol::ascii_upper(verb);
    if (upper == "DATA") {
      bool going = co_await data(line);
      co_return going;
    }
    if (upper == "BDAT" || upper == "STARTTLS" || upper == "XCLIENT" || upper == "AUTH") {
      bool written = co_await write_client("502 5.5.1 Command not implemented\r\n");
      co_return written;
    }
    auto reply = co_await relay_command(line);
    if (!reply) {
      co_await backend_gone();
      co_return false;
    }
    if (upper == "LHLO" && reply->reply.code == 250) {
      // What the tap does not relay is not offered: no BDAT, no TLS, no XCLIENT through it.
      std::vector<std::string> kept;
      for (size_t i = 0; i < reply->lines.size(); ++i) {
        if (reply->lines[i].size() < 4) continue;
        std::string keyword = protocol::ascii_upper(reply->lines[i].substr(4));
        keyword = keyword.substr(0, keyword.find(' '));
        if (i > 0 && (keyword == "CHUNKING" || keyword == "BINARYMIME" || keyword == "STARTTLS" ||
                      keyword == "XCLIENT" || keyword == "AUTH"))
          continue;
        kept.push_back(reply->lines[i].substr(4));
      }
      reply->lines.clear();
      for (size_t i = 0; i < kept.size(); ++i)
        reply->lines.push_back("250" + std::string(i + 1 < kept.size() ? "-" : " ") + kept[i]);
    } else if (upper == "MAIL" && reply->reply.positive()) {
      auto path =
          protocol::parse_path_argument(line.substr(std::min(line.size(), size_t{5})), "FROM");
      sender_ = path ? protocol::ascii_lower(path->address) : std::string();
      recipients_.clear();
      begin_transaction();
    } else if (upper == "RCPT" && reply->reply.positive()) {
      auto path =
          protocol::parse_path_argument(line.substr(std::min(line.size(), size_t{5})), "TO");
      recipients_.push_back(path ? protocol::ascii_lower(path->address) : std::string());
    } else if (upper == "RSET") {
      recipients_.clear();
      end_transaction();
    }
    bool written = co_await write_client(reply->text());
    if (upper == "QUIT") co_return false;
    co_return written;
  }

  awaitable<void> backend_gone() {
    set_close_reason("backend_lost");
    co_await write_client("421 4.4.2 Mail store connection lost, try again later\r\n");
  }

  // DATA: relayed, the content inspected and fingerprinted on the way; then one reply per
  // accepted recipient from Dovecot. The deliveries Dovecot accepted are counted (durably)
  // before Postfix hears of them.
  awaitable<bool> data(const std::string& line) {
    auto reply = co_await relay_command(line);
    if (!reply) {
      co_await backend_gone();
      co_return false;
    }
    if (reply->reply.code != 354) {
      bool written = co_await write_client(reply->text());
      recipients_.clear();
      end_transaction();
      co_return written;
    }
    bool written = co_await write_client(reply->text());
    if (!written) co_return false;

    auto start = Clock::now();
    std::optional<protocol::MessageInspector> inspector;
    if (indicators_enabled()) inspector.emplace(inspector_limits(config_.indicators));
    ContentDigest digest;
    protocol::SmtpDataReader reader;
    protocol::SmtpDataWriter writer;
    std::vector<char> buffer(kReadBytes);
    std::string content, out;
    bool complete = false, backend_ok = true;
    uint64_t size = 0;
    while (!complete) {
      if (pending_.empty()) {
        auto [ec, n] = co_await read_client(asio::buffer(buffer), lmtp_.data_timeout);
        if (ec) {
          note_end(ec, "client");
          log_delivery("aborted", "client_gone", size, 0);
          co_return false;  // closing Dovecot's connection aborts its transaction
        }
        pending_.assign(buffer.data(), n);
      }
      content.clear();
      auto r = reader.feed(pending_, content);
      pending_.erase(0, r.consumed);
      complete = r.complete;
      size += content.size();
      if (inspector) inspector->feed(content);
      digest.update(content);
      if (backend_ok) {
        out.clear();
        writer.encode(content, out);
        if (complete) writer.finish(out);
        if (!out.empty()) backend_ok = co_await write_backend(out);
      }
    }
    // One reply per accepted recipient (RFC 2033 §4.2), in order.
    std::vector<RawReply> replies;
    for (size_t i = 0; backend_ok && i < recipients_.size(); ++i) {
      auto r = co_await read_reply(lmtp_.backend_response_timeout);
      if (!r) {
        backend_ok = false;
        break;
      }
      replies.push_back(std::move(*r));
    }
    std::string fingerprint = digest.hex();
    std::optional<protocol::MessageFacts> facts;
    if (inspector) facts = inspector->finish();
    std::vector<storage::IndicatorEvent> events;
    unsigned delivered = 0;
    // The sender is the same for every recipient: its class is looked up once.
    std::string counterpart;
    if (facts) {
      counterpart = to_string(counterpart_of(sender_.empty() ? facts->from : sender_,
                                             config_.indicators, *env_->directory));
    }
    for (size_t i = 0; i < replies.size(); ++i) {
      if (!replies[i].reply.positive()) continue;
      ++delivered;
      if (facts) {
        events.push_back(received_event(recipients_[i], fingerprint, size, counterpart, *facts));
      }
    }
    if (!events.empty()) co_await record_indicators(std::move(events));
    std::string answer;
    for (const auto& r : replies)
      answer += r.text();
    // Recipients Dovecot did not answer for: Postfix tries them again later.
    for (size_t i = replies.size(); i < recipients_.size(); ++i)
      answer += "451 4.4.2 Mail store connection lost, try again later\r\n";
    log_delivery(backend_ok ? "relayed" : "backend_lost", "", size, delivered,
                 milliseconds_since(start));
    recipients_.clear();
    bool answered = co_await write_client(answer);
    end_transaction();
    if (!backend_ok) {
      set_close_reason("backend_lost");
      co_return false;
    }
    co_return answered;
  }

  storage::IndicatorEvent received_event(const std::string& recipient,
                                         const std::string& fingerprint, uint64_t size,
                                         const std::string& counterpart,
                                         const protocol::MessageFacts& facts) {
    const auto& settings = config_.indicators;
    auto event = new_indicator_event("received", recipient, settings);
    event.key = "received:" + recipient + ":" + fingerprint;
    event.mailbox_type = mailbox_type_of(recipient, *env_->directory);
    event.auth_mode = "none";
    event.size = size;
    event.recipients = 1;
    event.counterpart = counterpart;
    fill_from_facts(event, facts);
    return event;
  }

  void log_delivery(std::string_view result, std::string_view reason, uint64_t size,
                    unsigned delivered, int64_t duration_ms = 0) {
    Event event("delivery");
    event.add("session", id_).add("size", size).add("recipients", recipients_.size());
    event.add("delivered", delivered).add("result", result);
    if (!reason.empty()) event.add("reason", reason);
    event.add("duration_ms", duration_ms);
    if (result == "relayed") {
      metrics::gateway().messages.with({"received"}).inc(delivered);
      metrics::gateway().message_bytes.with({"received"}).inc(size * delivered);
      event.info();
    } else {
      event.warn();
    }
  }

  const config::LmtpConfig& lmtp_;
  protocol::LineSplitter lines_;
  std::string pending_;                  // client bytes read and not yet consumed
  std::string sender_;                   // MAIL FROM of the transaction
  std::vector<std::string> recipients_;  // accepted by Dovecot, in order
};

}  // namespace

void start_lmtp_session(tcp::socket socket, std::shared_ptr<const GatewayEnvironment> environment,
                        std::shared_ptr<GatewayCounters> counters) {
  std::make_shared<LmtpSession>(std::move(socket), std::move(environment), std::move(counters))
      ->start();
}

}  // namespace mssgate::daemon
