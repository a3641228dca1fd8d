#include "daemon/net/client_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <list>
#include <utility>

#include "daemon/net/client_certificate_policy.hpp"
#include "daemon/net/connection_churn.hpp"

namespace mssgate::daemon {

namespace {

// The TLS handshakes of one io context (its io thread): how many hold a turn, and the
// connections waiting for one, first come first served. An Asio service, so that it lives as
// long as its context and is shut down before the operations that refer to it are destroyed.
class HandshakeTurns : public boost::asio::execution_context::service {
 public:
  using key_type = HandshakeTurns;
  static boost::asio::execution_context::id id;

  explicit HandshakeTurns(boost::asio::execution_context& context) : service(context) {}

  size_t in_flight = 0;
  std::list<HandshakeWaiter*> waiting;
  bool shut_down = false;

  // A turn ends: it goes to the first connection waiting, if any.
  void pass();

 private:
  void shutdown() override { shut_down = true; }
};

boost::asio::execution_context::id HandshakeTurns::id;

HandshakeTurns& handshake_turns(const boost::asio::any_io_executor& executor) {
  return boost::asio::use_service<HandshakeTurns>(
      boost::asio::query(executor, boost::asio::execution::context));
}

// The write side of a client's TLS (ClientStream::WriteSide): each record to the socket at
// once, as OpenSSL's socket BIO would, or gathered for the write under way to send.
int write_records(BIO* bio, const char* data, int length) {
  auto* side = static_cast<ClientStream::WriteSide*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (side->gathering || side->sending) {
    (side->gathering ? *side->gathering : side->unsent).append(data, static_cast<size_t>(length));
    return length;
  }
  ssize_t sent = ::send(side->socket, data, static_cast<size_t>(length), MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
  }
  return static_cast<int>(sent);
}

long control_records(BIO*, int command, long, void*) {
  // Nothing is held back from OpenSSL's point of view: a flush has nothing to do.
  return command == BIO_CTRL_FLUSH || command == BIO_CTRL_DUP ? 1 : 0;
}

// The io thread's buffer for the records of one write, kept from write to write (sessions take
// it in turn: a write fills it and sends it before it waits for anything).
std::string& gathering_buffer() {
  thread_local std::string buffer;
  buffer.clear();
  return buffer;
}

// Where the io thread's refused clients' last bytes land, unread (a buffer of the thread's: the
// reads of its connections complete one at a time, and nothing reads what they wrote).
boost::asio::mutable_buffer dropped_input_buffer() {
  thread_local std::array<char, 16384> bytes;
  return boost::asio::buffer(bytes);
}

const BIO_METHOD* records_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "client records");
    if (m) {
      BIO_meth_set_write(m, &write_records);
      BIO_meth_set_ctrl(m, &control_records);
    }
    return m;
  }();
  return method;
}

metrics::Gauge& handshakes_waiting() {
  static metrics::Gauge& gauge = metrics::gateway().tls_handshakes_waiting.with();
  return gauge;
}

}  // namespace

// A connection waiting for a turn; it leaves the queue if its wait is destroyed unfinished.
struct HandshakeWaiter {
  HandshakeWaiter(HandshakeTurns& queue, const boost::asio::any_io_executor& executor)
      : turns(queue), wake(executor, std::chrono::steady_clock::time_point::max()) {
    place = turns.waiting.insert(turns.waiting.end(), this);
    handshakes_waiting().add(1);
  }
  HandshakeWaiter(const HandshakeWaiter&) = delete;
  HandshakeWaiter& operator=(const HandshakeWaiter&) = delete;
  ~HandshakeWaiter() {
    if (listed) turns.waiting.erase(place);
    handshakes_waiting().add(-1);
  }

  HandshakeTurns& turns;
  boost::asio::steady_timer wake;
  std::list<HandshakeWaiter*>::iterator place;
  bool listed = true;
  bool granted = false;
};

void HandshakeTurns::pass() {
  if (shut_down) return;
  if (waiting.empty()) {
    --in_flight;
    return;
  }
  HandshakeWaiter* next = waiting.front();
  waiting.pop_front();
  next->listed = false;
  next->granted = true;
  next->wake.cancel();
}

// Held by a handshake under way, and by its grace timer while the client keeps it waiting
// (which may outlive the handshake): the turn is passed on once, whichever comes first.
class HandshakeTurn {
 public:
  explicit HandshakeTurn(HandshakeTurns& turns) : turns_(turns) {}
  HandshakeTurn(const HandshakeTurn&) = delete;
  HandshakeTurn& operator=(const HandshakeTurn&) = delete;
  ~HandshakeTurn() { give_up(); }
  bool held() const { return held_; }
  void give_up() {
    if (!held_) return;
    held_ = false;
    turns_.pass();
  }

 private:
  HandshakeTurns& turns_;
  bool held_ = true;
};

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Slot = DeadlineWatch::Slot;

// A TLS failure's reason as a small fixed set, for metric labels.
std::string tls_failure_class(const boost::system::error_code& ec) {
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated ||
      ec == asio::error::connection_reset)
    return "closed_by_client";
  if (ec.category() == asio::error::get_ssl_category()) {
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_NO_SHARED_CIPHER) return "no_shared_cipher";
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_WRONG_VERSION_NUMBER ||
        reason == SSL_R_VERSION_TOO_LOW || reason == SSL_R_VERSION_TOO_HIGH)
      return "protocol_version";
    if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) return "not_tls";
  }
  return "other";
}

// An OpenSSL failure as the error codes Asio's TLS stream gave, which the sessions compare:
// eof for close_notify, stream_truncated for a connection cut without it.
boost::system::error_code tls_error(int reason) {
  unsigned long queued = ERR_peek_last_error();
  if (reason == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (reason == SSL_ERROR_SYSCALL && queued == 0) {
    if (errno != 0) return {errno, boost::system::system_category()};
    return ssl::error::stream_truncated;
  }
  if (ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
    return ssl::error::stream_truncated;
  if (queued != 0) return {static_cast<int>(queued), asio::error::get_ssl_category()};
  return ssl::error::stream_truncated;
}

std::string endpoint_text(const tcp::endpoint& e) {
  auto address = e.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(e.port());
  return address.to_string() + ":" + std::to_string(e.port());
}

}  // namespace

ConnectionEnds socket_ends(const tcp::socket& socket) {
  ConnectionEnds ends;
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (!ec) {
    ends.peer_address = remote.address().to_string();
    ends.peer_port = remote.port();
    ends.peer = endpoint_text(remote);
  }
  auto local = socket.local_endpoint(ec);
  if (!ec) {
    ends.local_address = local.address().to_string();
    ends.local_port = local.port();
  }
  return ends;
}

void ClientStream::SslFree::operator()(SSL* ssl) const {
  // As closed cleanly, so that OpenSSL keeps the session resumable: a client that drops its
  // connection without a close_notify may still resume. (A fatal alert has already made the
  // session unresumable.)
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl);
}

ClientStream::ClientStream(tcp::socket socket, ConnectionEnds ends, ssl::context& tls,
                           DeadlineWatch& deadlines, metrics::Counter& to_backend,
                           metrics::Counter& to_client)
    : socket_(std::move(socket)),
      tls_(tls),
      deadlines_(deadlines),
      to_backend_(to_backend),
      to_client_(to_client),
      ends_(std::move(ends)) {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  note_connection_churn();
}

ClientStream::~ClientStream() {
  note_connection_churn();
}

template <typename Step>
asio::awaitable<std::tuple<ClientStream::error_code, size_t>> ClientStream::drive(
    Step step, const std::shared_ptr<HandshakeTurn>& turn) {
  for (;;) {
    if (closed_) co_return std::tuple{error_code(asio::error::operation_aborted), size_t{0}};
    ERR_clear_error();
    errno = 0;  // read by tls_error for a failed system call: never a stale one
    size_t done = 0;
    int result = step(ssl_.get(), &done);
    if (result == 1) co_return std::tuple{error_code(), done};
    int reason = SSL_get_error(ssl_.get(), result);
    if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) {
      auto wait = reason == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
      std::optional<asio::steady_timer> grace;
      if (turn && turn->held()) {
        grace.emplace(socket_.get_executor(), kHandshakeTurnGrace);
        grace->async_wait([turn](const error_code& expired) {
          if (!expired) turn->give_up();
        });
      }
      auto [ec] = co_await socket_.async_wait(wait, kTuple);
      if (grace) grace->cancel();
      if (ec) co_return std::tuple{ec, size_t{0}};
      continue;
    }
    co_return std::tuple{tls_error(reason), size_t{0}};
  }
}

asio::awaitable<std::shared_ptr<HandshakeTurn>> ClientStream::take_handshake_turn() {
  HandshakeTurns& turns = handshake_turns(socket_.get_executor());
  if (turns.in_flight < kHandshakesInFlight && turns.waiting.empty()) {
    ++turns.in_flight;
    co_return std::make_shared<HandshakeTurn>(turns);
  }
  HandshakeWaiter waiter(turns, socket_.get_executor());
  waiting_turn_ = &waiter;
  co_await waiter.wake.async_wait(kTuple);
  waiting_turn_ = nullptr;
  if (!waiter.granted) co_return nullptr;
  auto turn = std::make_shared<HandshakeTurn>(turns);
  if (closed_ || cancelled_) co_return nullptr;  // the turn goes to the next at once
  co_return turn;
}

bool ClientStream::has_decrypted_bytes() const {
  return SSL_has_pending(ssl_.get()) == 1;
}

size_t ClientStream::read_held_records(asio::mutable_buffer rest) {
  size_t total = 0;
  while (total < rest.size() && has_decrypted_bytes()) {
    size_t done = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_.get(), static_cast<char*>(rest.data()) + total, rest.size() - total,
                    &done) != 1) {
      // A record not all there yet, or an error: the next read waits for it, or meets the error
      // again (OpenSSL keeps a connection's failure).
      ERR_clear_error();
      break;
    }
    total += done;
  }
  return total;
}

bool ClientStream::readable_now() const {
  if (closed_) return false;
  if (tls_active_ && has_decrypted_bytes()) return true;
  error_code ec;
  return socket_.available(ec) > 0 && !ec;
}

asio::awaitable<std::tuple<ClientStream::error_code, size_t>> ClientStream::read_some(
    asio::mutable_buffer buffer, Clock::duration timeout) {
  deadlines_.arm(Slot::kClientRead, timeout);
  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  std::tuple<error_code, size_t> result;
  if (tls_active_) {
    result = co_await drive([buffer](SSL* ssl, size_t* done) {
      return SSL_read_ex(ssl, buffer.data(), buffer.size(), done);
    });
    // OpenSSL gives a record a call: the records that came with it fill the rest of the buffer.
    if (!std::get<0>(result))
      std::get<1>(result) += read_held_records(buffer + std::get<1>(result));
  } else {
    result = co_await socket_.async_read_some(buffer, kTuple);
  }
  deadlines_.disarm(Slot::kClientRead);
  if (!std::get<0>(result)) {
    bytes_in_ += std::get<1>(result);
    to_backend_.inc(std::get<1>(result));
  }
  co_return result;
}

asio::awaitable<ClientStream::error_code> ClientStream::write(std::string_view data,
                                                              Clock::duration timeout) {
  deadlines_.arm(Slot::kClientWrite, timeout);
  error_code ec;
  size_t written = 0;
  if (tls_active_) {
    while (written < data.size() && !ec) {
      std::string_view slice = data.substr(written, kWriteSlice);
      // The slice's records are gathered (OpenSSL cannot wait on the write side meanwhile),
      // then sent in one call.
      size_t taken = 0;
      std::string& records = gathering_buffer();
      write_side_.gathering = &records;
      while (taken < slice.size()) {
        ERR_clear_error();
        size_t done = 0;
        if (SSL_write_ex(ssl_.get(), slice.data() + taken, slice.size() - taken, &done) != 1) break;
        taken += done;
      }
      write_side_.gathering = nullptr;
      ERR_clear_error();
      ec = co_await send_gathered(records);
      written += taken;
      if (ec || taken == slice.size()) continue;
      // OpenSSL would not take the rest at once (it waits for the client, or failed): the
      // same call again, waiting as it asks.
      std::string_view rest = slice.substr(taken);
      auto [step_ec, n] = co_await drive([rest](SSL* ssl, size_t* done) {
        return SSL_write_ex(ssl, rest.data(), rest.size(), done);
      });
      written += n;
      ec = step_ec;
    }
  } else {
    std::tie(ec, written) = co_await asio::async_write(socket_, asio::buffer(data), kTuple);
  }
  deadlines_.disarm(Slot::kClientWrite);
  bytes_out_ += written;
  to_client_.inc(written);
  co_return ec;
}

asio::awaitable<ClientStream::error_code> ClientStream::send_gathered(std::string_view records) {
  // `records` is the io thread's scratch buffer: what the socket takes now goes before this
  // coroutine waits for anything; only the rest is copied, to wait.
  error_code ec;
  size_t sent = 0;
  while (sent < records.size() && !ec)
    sent += socket_.send(asio::buffer(records.substr(sent)), 0, ec);
  if (ec == asio::error::would_block) ec = error_code();
  if (ec || sent == records.size()) co_return ec;
  // The socket is full: the rest is the stream's own to send, and any record OpenSSL adds
  // meanwhile (a reply the read side owes) goes after it.
  write_side_.unsent.assign(records.substr(sent));
  write_side_.sending = true;
  while (!ec && !write_side_.unsent.empty()) {
    std::string rest = std::exchange(write_side_.unsent, std::string());
    std::tie(ec, std::ignore) = co_await asio::async_write(socket_, asio::buffer(rest), kTuple);
  }
  write_side_.sending = false;
  write_side_.unsent = std::string();  // after a failure, the connection ends
  co_return ec;
}

asio::awaitable<std::shared_ptr<HandshakeTurn>> ClientStream::first_bytes_then_turn(
    Clock::time_point& deadline, TlsOutcome& outcome) {
  // A connection that has sent nothing holds no TLS state and no turn. The handshake's
  // deadline counts the client's waits, not the wait for a turn: under a storm of reconnecting
  // clients that wait is the gateway's, and the deadline moves by it (the phase before
  // authentication, limits.pre_auth_timeout, still bounds it: its expiry ends the wait).
  deadlines_.arm_until(Slot::kClientRead, deadline);
  auto [waited] = co_await socket_.async_wait(tcp::socket::wait_read, kTuple);
  deadlines_.disarm(Slot::kClientRead);
  if (waited || closed_ || cancelled_) co_return nullptr;
  outcome.stage = TlsOutcome::Stage::kTurn;
  auto asked = Clock::now();
  auto turn = co_await take_handshake_turn();
  auto waited_for_turn = Clock::now() - asked;
  deadline += waited_for_turn;
  outcome.turn_wait = std::chrono::duration_cast<std::chrono::milliseconds>(waited_for_turn);
  co_return turn;
}

asio::awaitable<TlsOutcome> ClientStream::handshake(Clock::duration timeout) {
  TlsOutcome outcome;
  auto deadline = Clock::now() + timeout;
  std::shared_ptr<HandshakeTurn> turn = co_await first_bytes_then_turn(deadline, outcome);
  if (!turn) {
    outcome.timed_out = timed_out_ || cancelled_;
    outcome.failure_class = outcome.timed_out ? "timeout" : "other";
    outcome.failure = "closed before its handshake began";
    co_return outcome;
  }
  ssl_.reset(SSL_new(tls_.native_handle()));
  error_code ec;
  // OpenSSL reads the socket itself; it writes through the stream's write side.
  write_side_.socket = socket_.native_handle();
  BIO* reads = ssl_ ? BIO_new_socket(write_side_.socket, BIO_NOCLOSE) : nullptr;
  BIO* writes = reads && records_method() ? BIO_new(records_method()) : nullptr;
  if (writes) {
    BIO_set_data(writes, &write_side_);
    BIO_set_init(writes, 1);
    SSL_set_bio(ssl_.get(), reads, writes);
  } else {
    BIO_free(reads);
    auto failure = ERR_get_error();
    ec = failure ? error_code(static_cast<int>(failure), asio::error::get_ssl_category())
                 : error_code(asio::error::no_memory);
  }
  if (!ec) {
    // OpenSSL meets a full socket or an empty one as WANT_WRITE/WANT_READ, and the
    // coroutine waits; its buffers go back whenever they are empty.
    socket_.non_blocking(true, ec);
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    // A read takes what the socket holds, not a record's header then its body: a stream of
    // records costs a system call per buffer, not two per record.
    SSL_set_read_ahead(ssl_.get(), 1);
    SSL_set_accept_state(ssl_.get());
  }
  if (!ec) {
    outcome.stage = TlsOutcome::Stage::kHandshake;
    deadlines_.arm_until(Slot::kClientRead, deadline);
    std::tie(ec, std::ignore) =
        co_await drive([](SSL* ssl, size_t*) { return SSL_do_handshake(ssl); }, turn);
    deadlines_.disarm(Slot::kClientRead);
  }
  turn->give_up();
  turn.reset();
  note_connection_churn();  // the handshake's buffers are freed
  // The handshake's own decoding of the client's certificate, if it took the shared one.
  if (ssl_) release_replaced_decoding(ssl_.get());
  long verify = ssl_ ? SSL_get_verify_result(ssl_.get()) : X509_V_OK;
  if (ec) {
    outcome.timed_out = timed_out_ || cancelled_;
    if (outcome.timed_out) {
      outcome.failure_class = "timeout";
    } else if (verify != X509_V_OK) {
      outcome.failure_class = "client_certificate";
      outcome.certificate_error = X509_verify_cert_error_string(verify);
    } else {
      outcome.failure_class = tls_failure_class(ec);
      outcome.failure = ec.message();
    }
    co_return outcome;
  }
  SSL* ssl = ssl_.get();
  tls_active_ = true;
  outcome.ok = true;
  outcome.version = SSL_get_version(ssl);
  outcome.cipher = SSL_get_cipher_name(ssl);
  outcome.resumed = SSL_session_reused(ssl) == 1;
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer && verify == X509_V_OK) outcome.certificate = shared_identity_of(peer);
  co_return outcome;
}

asio::awaitable<void> ClientStream::shutdown_tls() {
  if (!tls_active_ || closed_) co_return;
  // Our close_notify only: the client's answer is not awaited (the connection closes next).
  deadlines_.arm(Slot::kClientWrite, std::chrono::seconds(1));
  co_await drive([](SSL* ssl, size_t*) { return SSL_shutdown(ssl) >= 0 ? 1 : -1; });
  deadlines_.disarm(Slot::kClientWrite);
}

asio::awaitable<void> ClientStream::end_dropping_input(Clock::duration limit, uint64_t max_bytes) {
  co_await shutdown_tls();
  if (closed_) co_return;
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  deadlines_.arm(Slot::kClientRead, limit);
  uint64_t dropped = 0;
  while (!ec && !closed_ && dropped < max_bytes) {
    size_t n = 0;
    std::tie(ec, n) = co_await socket_.async_read_some(dropped_input_buffer(), kTuple);
    dropped += n;
  }
  deadlines_.disarm(Slot::kClientRead);
}

void ClientStream::expire() {
  timed_out_ = true;
  close();
}

void ClientStream::cancel() {
  cancelled_ = true;
  if (waiting_turn_) waiting_turn_->wake.cancel();
  error_code ignored;
  socket_.cancel(ignored);
}

void ClientStream::close() {
  if (closed_) return;
  closed_ = true;
  if (waiting_turn_) waiting_turn_->wake.cancel();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace mssgate::daemon
