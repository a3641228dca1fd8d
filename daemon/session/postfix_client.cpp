#include "daemon/session/postfix_client.hpp"

#include <chrono>

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
using Clock = Connection::Clock;

}  // namespace

PostfixClient::PostfixClient(Connection& connection, const config::SmtpConfig& smtp,
                             std::shared_ptr<SmtpBackendFeatures> shared)
    : connection_(connection), smtp_(smtp), shared_(std::move(shared)) {}

bool PostfixClient::probe_due() const {
  constexpr int64_t kProbeIntervalMs = 10'000;
  int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count();
  int64_t due = shared_->next_probe_ms.load();
  return now >= due && shared_->next_probe_ms.compare_exchange_strong(due, now + kProbeIntervalMs);
}

asio::awaitable<core::PostfixFeatures> PostfixClient::features(bool may_probe) {
  if (may_probe && !shared_->known && probe_due()) co_await connect();
  co_return core::PostfixFeatures{features_.xclient, shared_->dsn, shared_->smtputf8,
                                  shared_->pipelining, shared_->chunking};
}

// Runs one opening exchange; a failure is logged and counted, and the link closed.
asio::awaitable<bool> PostfixClient::converse(core::PostfixDialogue& dialogue,
                                              Clock::time_point start) {
  auto& link = connection_.backend();
  for (;;) {
    auto action = dialogue.next();
    switch (action.kind) {
      case core::PostfixDialogue::Kind::kWrite:
        if (!co_await connection_.write_backend(action.text)) dialogue.on_reply(std::nullopt);
        break;
      case core::PostfixDialogue::Kind::kReadReply: {
        auto reply = co_await link.read_reply(connection_.timeouts().backend_response);
        dialogue.on_reply(reply);
        break;
      }
      case core::PostfixDialogue::Kind::kDone:
        co_return true;
      case core::PostfixDialogue::Kind::kFailed:
        connection_.backend_failed(dialogue.step(), action.text, start);
        drop();
        co_return false;
    }
  }
}

asio::awaitable<bool> PostfixClient::connect() {
  if (connected_) co_return true;
  auto start = Clock::now();
  if (!co_await connection_.connect_backend(smtp_.backend.address)) co_return false;
  auto dialogue = core::PostfixDialogue::greet(smtp_.backend.helo_name);
  if (!co_await converse(dialogue, start)) co_return false;
  features_ = dialogue.features();
  shared_->dsn = features_.dsn;
  shared_->smtputf8 = features_.smtputf8;
  shared_->pipelining = features_.pipelining;
  shared_->chunking = features_.chunking;
  shared_->known = true;
  connected_ = true;
  co_return true;
}

asio::awaitable<bool> PostfixClient::ready(const core::XclientIdentity& identity) {
  if (ready_) co_return true;
  auto start = Clock::now();
  if (!co_await connect()) co_return false;
  auto dialogue = core::PostfixDialogue::introduce(identity, features_, smtp_.backend.helo_name);
  if (!co_await converse(dialogue, start)) co_return false;
  connection_.telemetry().backend_ready(identity.mailbox, start);
  ready_ = true;
  co_return true;
}

asio::awaitable<std::optional<protocol::SmtpReply>> PostfixClient::command(std::string_view line) {
  if (!co_await connection_.write_backend(line)) {
    drop();
    co_return std::nullopt;
  }
  // (A named result: GCC 12 mishandles `co_return co_await`'s temporary.)
  auto answer = co_await reply();
  co_return answer;
}

asio::awaitable<std::optional<protocol::SmtpReply>> PostfixClient::reply() {
  std::optional<protocol::SmtpReply> reply;
  if (connected_)
    reply = co_await connection_.backend().read_reply(connection_.timeouts().backend_response);
  if (!reply) drop();
  co_return reply;
}

asio::awaitable<bool> PostfixClient::send(std::string_view bytes) {
  bool written = co_await connection_.write_backend(bytes);
  if (!written) drop();
  co_return written;
}

asio::awaitable<std::optional<protocol::SmtpReply>> PostfixClient::end_data(
    std::string_view terminator) {
  std::optional<protocol::SmtpReply> reply;
  if (co_await connection_.write_backend(terminator))
    reply = co_await connection_.backend().read_reply(smtp_.backend.data_response_timeout);
  if (!reply) drop();
  co_return reply;
}

void PostfixClient::drop() {
  connected_ = false;
  ready_ = false;
  connection_.backend().close();
}

}  // namespace mssgate::daemon
