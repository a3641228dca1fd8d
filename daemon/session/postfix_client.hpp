#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "daemon/core/postfix_dialogue.hpp"
#include "daemon/session/connection.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::daemon {

// What the submission sessions learn of the backend's extensions, shared so that the EHLO
// answer before authentication advertises what the backend will accept.
struct SmtpBackendFeatures {
  std::atomic<bool> known{false};
  // While unknown, EHLO asks the backend at most once per probe interval, gateway-wide: an
  // unauthenticated client must not make mssgate connect to Postfix again and again.
  std::atomic<int64_t> next_probe_ms{0};
  std::atomic<bool> dsn{false};
  std::atomic<bool> smtputf8{false};
  std::atomic<bool> pipelining{false};
  std::atomic<bool> chunking{false};
};

// A submission session's client of Postfix, over the session's backend link: connected and
// greeted (EHLO) when first needed, introduced with XCLIENT as the signed-in mailbox, then one
// command at a time and the message's bytes. A failure closes the link; the next need opens a
// new one.
class PostfixClient {
 public:
  PostfixClient(Connection& connection, const config::SmtpConfig& smtp,
                std::shared_ptr<SmtpBackendFeatures> shared);

  // The backend's features as known gateway-wide; when unknown and `may_probe`, learnt by
  // connecting if no other session tried in the last 10 s.
  boost::asio::awaitable<core::PostfixFeatures> features(bool may_probe);
  // Connected, greeted and introduced as `identity`.
  boost::asio::awaitable<bool> ready(const core::XclientIdentity& identity);
  const core::PostfixFeatures& known_features() const { return features_; }

  // One command line and its reply; nothing when the backend is gone (the link is closed).
  boost::asio::awaitable<std::optional<protocol::SmtpReply>> command(std::string_view line);
  // The reply to a command sent with an earlier one (pipelined); nothing when the backend is gone.
  boost::asio::awaitable<std::optional<protocol::SmtpReply>> reply();
  // Message bytes; false when the backend is gone.
  boost::asio::awaitable<bool> send(std::string_view bytes);
  // The message's end and the backend's verdict on it (its own, longer, deadline).
  boost::asio::awaitable<std::optional<protocol::SmtpReply>> end_data(std::string_view terminator);
  void drop();

 private:
  boost::asio::awaitable<bool> connect();
  boost::asio::awaitable<bool> converse(core::PostfixDialogue& dialogue,
                                        Connection::Clock::time_point start);
  bool probe_due() const;

  Connection& connection_;
  const config::SmtpConfig& smtp_;
  std::shared_ptr<SmtpBackendFeatures> shared_;
  core::PostfixFeatures features_;
  bool connected_ = false;
  bool ready_ = false;
};

}  // namespace mssgate::daemon
