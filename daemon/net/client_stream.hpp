#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "daemon/net/certificate_identity.hpp"
#include "daemon/net/deadline_watch.hpp"
#include "daemon/telemetry/metrics.hpp"

namespace mssgate::daemon {

// Where a connection comes from and arrives: as the socket says or, behind a load balancer, as
// its PROXY header says (then `via` is the balancer, "address:port").
struct ConnectionEnds {
  std::string peer_address;
  uint16_t peer_port = 0;
  std::string peer;  // "address:port", with brackets around an IPv6 address
  std::string local_address;
  uint16_t local_port = 0;
  std::string via;  // empty: no balancer
};

// The ends of `socket`'s connection, as the socket says.
ConnectionEnds socket_ends(const boost::asio::ip::tcp::socket& socket);

// A connection waiting for its TLS handshake's turn, and a turn (client_stream.cpp).
struct HandshakeWaiter;
class HandshakeTurn;

// How a TLS handshake with the client went.
struct TlsOutcome {
  // How far it went: waiting for the client's first bytes, for a turn among the handshakes under
  // way, or in the handshake itself (what a timeout interrupted).
  enum class Stage { kFirstBytes, kTurn, kHandshake };
  bool ok = false;
  bool timed_out = false;
  Stage stage = Stage::kFirstBytes;
  std::chrono::milliseconds turn_wait{0};  // the wait for a turn
  std::string failure;                     // the error's text, when it failed
  std::string failure_class;               // a small fixed set, for metric labels
  std::string certificate_error;           // when a presented certificate failed verification
  std::string version;
  std::string cipher;
  bool resumed = false;                   // from a session the gateway kept
  SharedCertificateIdentity certificate;  // a verified client certificate
};

// The client's side of a session: plain until STARTTLS, or TLS from the start; every read,
// write and handshake under a deadline of the connection's DeadlineWatch; the bytes counted.
// The one place that knows whether TLS is active.
//
// TLS runs on the socket itself (OpenSSL reads and writes the descriptor, non-blocking; the
// coroutines wait for readiness), with OpenSSL's buffers released whenever they are empty: a
// quiet session holds no buffer of its own, only OpenSSL's connection state. A write's records
// are gathered and sent together (up to kWriteSlice of data at a time).
class ClientStream {
 public:
  using error_code = boost::system::error_code;
  using Clock = DeadlineWatch::Clock;

  // Handshakes under way at once on one io thread, and how long one may wait for its client
  // before its turn goes to the next (it goes on without one).
  static constexpr size_t kHandshakesInFlight = 64;
  static constexpr std::chrono::milliseconds kHandshakeTurnGrace{100};

  // Where OpenSSL's records go (the BIO of client_stream.cpp): to the socket; while a write
  // turns its data into records, into `gathering` (the io thread's scratch buffer: a write of
  // many records costs one system call); while the socket takes the rest of them, into
  // `unsent`, after it, so that nothing overtakes what the write sends.
  struct WriteSide {
    int socket = -1;
    std::string* gathering = nullptr;
    bool sending = false;
    std::string unsent;  // held only while the socket is full
  };
  // At most this much of a write goes into TLS records before they are sent, in one call.
  static constexpr size_t kWriteSlice = 65536;

  // `to_backend` and `to_client` count the relayed bytes of the session's protocol.
  ClientStream(boost::asio::ip::tcp::socket socket, ConnectionEnds ends,
               boost::asio::ssl::context& tls, DeadlineWatch& deadlines,
               metrics::Counter& to_backend, metrics::Counter& to_client);
  ~ClientStream();  // noted as a connection's end (connection_churn.hpp)
  // OpenSSL's write side refers to the stream: it stays where it was made.
  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  const ConnectionEnds& ends() const { return ends_; }
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }

  // Calls `ready(error_code)` on the stream's executor once bytes can be read (some already
  // decrypted, or the socket readable), under the read deadline. A quiet relay waits in this
  // one operation, with no coroutine and no buffer: `ready` starts its next burst.
  template <typename Ready>
  void when_readable(Clock::duration timeout, Ready ready) {
    if (tls_active_ && has_decrypted_bytes()) {
      boost::asio::post(socket_.get_executor(),
                        [ready = std::move(ready)]() mutable { ready(error_code()); });
      return;
    }
    deadlines_.arm(DeadlineWatch::Slot::kClientRead, timeout);
    socket_.async_wait(boost::asio::ip::tcp::socket::wait_read,
                       [this, ready = std::move(ready)](const error_code& ec) mutable {
                         deadlines_.disarm(DeadlineWatch::Slot::kClientRead);
                         ready(ec);
                       });
  }
  // Whether bytes can be read now without waiting (decrypted ones, or some on the socket).
  bool readable_now() const;
  boost::asio::awaitable<std::tuple<error_code, size_t>> read_some(
      boost::asio::mutable_buffer buffer, Clock::duration timeout);
  boost::asio::awaitable<error_code> write(std::string_view data, Clock::duration timeout);
  boost::asio::awaitable<TlsOutcome> handshake(Clock::duration timeout);
  // Sends TLS close_notify (within 1 s).
  boost::asio::awaitable<void> shutdown_tls();
  // Ends the stream while the client may still be sending: TLS close_notify (within 1 s) and
  // the end of the TCP stream after what was written, then what arrives is read and dropped,
  // undecrypted, until the client closes, `max_bytes` have come or `limit` has passed. A close
  // with unread bytes would reset the connection and could lose the client its last answer.
  boost::asio::awaitable<void> end_dropping_input(Clock::duration limit, uint64_t max_bytes);

  // A deadline of the client passed: the connection is closed, the operation fails.
  void expire();
  // The operation under way fails (operation_aborted), a wait for a handshake's turn included;
  // the connection stays open. A handshake cancelled (the phase before authentication took too
  // long) fails as timed out.
  void cancel();
  void close();
  bool tls_active() const { return tls_active_; }
  bool closed() const { return closed_; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  struct SslFree {
    void operator()(SSL* ssl) const;
  };
  // The records gathered: what the socket takes at once, then the rest, and any record OpenSSL
  // adds meanwhile, in order.
  boost::asio::awaitable<error_code> send_gathered(std::string_view records);
  // One step of OpenSSL on the socket: `step` is retried as readiness allows; the result of
  // the call that succeeded, or the error. A handshake's `turn` goes to the next connection
  // when the client keeps it waiting past the grace.
  template <typename Step>
  boost::asio::awaitable<std::tuple<error_code, size_t>> drive(
      Step step, const std::shared_ptr<HandshakeTurn>& turn = nullptr);
  // A turn among the kHandshakesInFlight of this io thread, first come first served; nothing
  // when the connection closed meanwhile. Under a storm of connections (every client
  // reconnecting after a restart) the memory of a handshake under way is held by a few at a
  // time, and each completes sooner; a client that stalls keeps its turn for the grace only.
  boost::asio::awaitable<std::shared_ptr<HandshakeTurn>> take_handshake_turn();
  // The client's first bytes, awaited before `deadline`, then a turn, which moves `deadline` by
  // its wait (told in `outcome`); nothing when the connection was closed or cancelled meanwhile.
  boost::asio::awaitable<std::shared_ptr<HandshakeTurn>> first_bytes_then_turn(
      Clock::time_point& deadline, TlsOutcome& outcome);
  bool has_decrypted_bytes() const;
  // The records OpenSSL already holds, decrypted into `rest` (the room a read left) without
  // waiting; how many bytes.
  size_t read_held_records(boost::asio::mutable_buffer rest);

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ssl::context& tls_;
  std::unique_ptr<SSL, SslFree> ssl_;  // from the handshake on
  WriteSide write_side_;
  DeadlineWatch& deadlines_;
  metrics::Counter& to_backend_;
  metrics::Counter& to_client_;
  HandshakeWaiter* waiting_turn_ = nullptr;  // while waiting: close() ends the wait
  ConnectionEnds ends_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  bool tls_active_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool closed_ = false;
};

}  // namespace mssgate::daemon
