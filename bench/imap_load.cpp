// An IMAP load client: many connections per thread (epoll, non-blocking OpenSSL), implicit TLS or
// STARTTLS, TLS 1.2 or 1.3, a client certificate, SASL EXTERNAL, XOAUTH2 or LOGIN, and one of
// four modes; one JSON line on standard output at the end of the run.
//
//   mssgate_imap_load --port N --mode session|noop|fetch|idle [--host 127.0.0.1]
//       [--tls implicit|starttls] [--tls-version 1.2|1.3] [--ca FILE] [--cert FILE --key FILE]
//       [--auth external|xoauth2|login] [--user NAME] [--secret TEXT | --secret-file FILE]
//       [--connections N] [--threads N] [--seconds S] [--resume] [--label TEXT]
//
// session: connect, TLS, sign in, LOGOUT, again, on each connection until the time is up; the
//   figures are sessions a second and the set-up time (connect to the sign-in's OK).
// noop: sign in once, then NOOP after NOOP; round trips a second and their latency.
// fetch: sign in, SELECT INBOX, then FETCH 1 BODY.PEEK[] again and again; MiB a second.
// idle: sign in, IDLE, and hold until the time is up (for the memory a quiet session costs);
//   the figure is how many sessions reached IDLE.
// --resume offers the last TLS session of the thread again (tickets or the server's cache):
// the line says how many handshakes were resumed. Every loop ends at --seconds.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& why) {
  throw std::runtime_error(why);
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  bool implicit_tls = true;
  std::string tls_version = "1.2";
  std::string ca, cert, key;
  std::string auth = "external";
  std::string user, secret;
  std::string mode = "session";
  int connections = 8;
  int threads = 1;
  double seconds = 10;
  bool resume = false;
  std::string label;
};

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

// What a thread counted; added up at the end.
struct Tally {
  uint64_t sessions = 0;    // session mode: completed sessions
  uint64_t operations = 0;  // noop and fetch: completed commands
  uint64_t bytes = 0;       // fetch: literal bytes received
  uint64_t idle = 0;        // idle mode: sessions that reached IDLE
  uint64_t errors = 0;      // refused sign-ins, closed connections, TLS failures
  uint64_t handshakes = 0;
  uint64_t resumed = 0;
  std::vector<double> latencies_ms;  // set-up (session) or round trip (noop, fetch)
  std::string first_error;

  void add(const Tally& other) {
    sessions += other.sessions;
    operations += other.operations;
    bytes += other.bytes;
    idle += other.idle;
    errors += other.errors;
    handshakes += other.handshakes;
    resumed += other.resumed;
    latencies_ms.insert(latencies_ms.end(), other.latencies_ms.begin(), other.latencies_ms.end());
    if (first_error.empty()) first_error = other.first_error;
  }
};

class Worker;

// One connection's state machine: it reads lines (and FETCH literals) and writes commands.
class Connection {
 public:
  enum class State {
    kConnecting,
    kGreeting,
    kStarttls,
    kHandshake,
    kAuth,
    kLogout,
    kNoop,
    kSelect,
    kFetch,
    kIdleStart,
    kIdle,
    kDone
  };

  explicit Connection(Worker& worker) : worker_(worker) {}
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  void on_event(uint32_t events);
  void close();
  int fd() const { return fd_; }
  State state() const { return state_; }

 private:
  void error(const std::string& why);
  void send(const std::string& command);
  bool flush();           // false: the connection failed
  bool read_available();  // false: the connection failed or closed
  void handle_line(std::string_view line);
  bool handshake();
  void after_sign_in();
  void next_operation();
  void watch(uint32_t events);

  Worker& worker_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  State state_ = State::kDone;
  bool tls_ = false;
  std::string in_;
  std::string out_;
  size_t literal_left_ = 0;
  Clock::time_point started_{};
  uint32_t watching_ = 0;
  uint64_t generation_ = 0;  // one more at each start(): a line of an old socket is not read again
};

class Worker {
 public:
  Worker(const Options& options, SSL_CTX* context, int connections, Clock::time_point end)
      : options_(options), context_(context), end_(end) {
    epoll_ = epoll_create1(0);
    if (epoll_ < 0) fail("epoll_create1: " + std::string(std::strerror(errno)));
    for (int i = 0; i < connections; ++i)
      connections_.push_back(std::make_unique<Connection>(*this));
  }
  ~Worker() {
    connections_.clear();
    if (session_) SSL_SESSION_free(session_);
    ::close(epoll_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run() {
    for (auto& c : connections_)
      c->start();
    std::vector<epoll_event> events(256);
    while (true) {
      auto now = Clock::now();
      bool over = now >= end_;
      if (over) break;
      int timeout = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(end_ - now).count() + 1);
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                         std::min(timeout, 100));
      for (int i = 0; i < n; ++i)
        static_cast<Connection*>(events[static_cast<size_t>(i)].data.ptr)
            ->on_event(events[static_cast<size_t>(i)].events);
    }
  }

  const Options& options() const { return options_; }
  SSL_CTX* context() const { return context_; }
  int epoll() const { return epoll_; }
  bool over() const { return Clock::now() >= end_; }
  Tally& tally() { return tally_; }
  SSL_SESSION* session() const { return session_; }
  void keep_session(SSL* ssl) {
    if (!options_.resume) return;
    SSL_SESSION* s = SSL_get1_session(ssl);
    if (!s) return;
    if (!SSL_SESSION_is_resumable(s)) {
      SSL_SESSION_free(s);
      return;
    }
    if (session_) SSL_SESSION_free(session_);
    session_ = s;
  }

 private:
  const Options& options_;
  SSL_CTX* context_;
  Clock::time_point end_;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;
  Tally tally_;
  SSL_SESSION* session_ = nullptr;
};

void Connection::start() {
  close();
  if (worker_.over()) return;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return error("socket: " + std::string(std::strerror(errno)));
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(worker_.options().port));
  inet_pton(AF_INET, worker_.options().host.c_str(), &address.sin_addr);
  started_ = Clock::now();
  ++generation_;
  state_ = State::kConnecting;
  tls_ = false;
  in_.clear();
  out_.clear();
  literal_left_ = 0;
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
      errno != EINPROGRESS)
    return error("connect: " + std::string(std::strerror(errno)));
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.ptr = this;
  watching_ = EPOLLOUT;
  epoll_ctl(worker_.epoll(), EPOLL_CTL_ADD, fd_, &event);
}

void Connection::watch(uint32_t events) {
  if (fd_ < 0 || events == watching_) return;
  epoll_event event{};
  event.events = events;
  event.data.ptr = this;
  watching_ = events;
  epoll_ctl(worker_.epoll(), EPOLL_CTL_MOD, fd_, &event);
}

void Connection::close() {
  if (ssl_) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    epoll_ctl(worker_.epoll(), EPOLL_CTL_DEL, fd_, nullptr);
    ::close(fd_);
    fd_ = -1;
  }
  state_ = State::kDone;
}

void Connection::error(const std::string& why) {
  auto& tally = worker_.tally();
  ++tally.errors;
  if (tally.first_error.empty()) tally.first_error = why;
  close();
  if (worker_.options().mode == "session") start();  // the next session on this connection
}

void Connection::send(const std::string& command) {
  out_ += command;
  if (!flush()) error("write failed");
}

bool Connection::flush() {
  while (!out_.empty()) {
    ssize_t n;
    if (tls_) {
      ERR_clear_error();
      int written = SSL_write(ssl_, out_.data(), static_cast<int>(out_.size()));
      if (written <= 0) {
        int code = SSL_get_error(ssl_, written);
        if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ) {
          watch(EPOLLIN | EPOLLOUT);
          return true;
        }
        return false;
      }
      n = written;
    } else {
      n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) {
          watch(EPOLLIN | EPOLLOUT);
          return true;
        }
        return false;
      }
    }
    out_.erase(0, static_cast<size_t>(n));
  }
  watch(EPOLLIN);
  return true;
}

bool Connection::read_available() {
  const uint64_t generation = generation_;
  char buffer[64 * 1024];
  while (true) {
    ssize_t n;
    if (tls_) {
      ERR_clear_error();
      int got = SSL_read(ssl_, buffer, sizeof buffer);
      if (got <= 0) {
        int code = SSL_get_error(ssl_, got);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return true;
        return false;
      }
      n = got;
    } else {
      n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n < 0) return errno == EAGAIN;
      if (n == 0) return false;
    }
    size_t at = 0, size = static_cast<size_t>(n);
    while (at < size) {
      if (literal_left_ > 0) {  // a FETCH literal: counted, not kept
        size_t take = std::min(literal_left_, size - at);
        literal_left_ -= take;
        worker_.tally().bytes += take;
        at += take;
        continue;
      }
      const char* end = static_cast<const char*>(std::memchr(buffer + at, '\n', size - at));
      if (!end) {
        in_.append(buffer + at, size - at);
        break;
      }
      in_.append(buffer + at, static_cast<size_t>(end - (buffer + at)));
      at = static_cast<size_t>(end - buffer) + 1;
      std::string line = std::move(in_);
      in_.clear();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      // A line ending in {N} announces N bytes of literal.
      if (!line.empty() && line.back() == '}') {
        size_t open = line.rfind('{');
        if (open != std::string::npos)
          literal_left_ = std::strtoull(line.c_str() + open + 1, nullptr, 10);
      }
      handle_line(line);
      // Closed by the line (LOGOUT, an error), perhaps started again: the rest is not its.
      if (fd_ < 0 || generation != generation_) return true;
      if (state_ == State::kHandshake) return handshake();
    }
    if (!tls_ && state_ == State::kHandshake) return true;
  }
}

bool Connection::handshake() {
  if (!ssl_) {
    ssl_ = SSL_new(worker_.context());
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    if (worker_.session()) SSL_set_session(ssl_, worker_.session());
  }
  ERR_clear_error();
  int rc = SSL_connect(ssl_);
  if (rc == 1) {
    tls_ = true;
    watch(EPOLLIN);
    ++worker_.tally().handshakes;
    if (SSL_session_reused(ssl_)) ++worker_.tally().resumed;
    if (worker_.options().implicit_tls) {
      state_ = State::kGreeting;
    } else {
      after_sign_in();  // STARTTLS: the greeting came before; sign in now
      return true;
    }
    return read_available();
  }
  int code = SSL_get_error(ssl_, rc);
  if (code == SSL_ERROR_WANT_READ) {
    watch(EPOLLIN);
    return true;
  }
  if (code == SSL_ERROR_WANT_WRITE) {
    watch(EPOLLIN | EPOLLOUT);
    return true;
  }
  unsigned long e = ERR_get_error();
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  error(std::string("TLS handshake: ") + text);
  return true;
}

// Signs in (called once TLS is up, and the greeting read).
void Connection::after_sign_in() {
  const auto& o = worker_.options();
  state_ = State::kAuth;
  if (o.auth == "external") {
    send("a AUTHENTICATE EXTERNAL =\r\n");
  } else if (o.auth == "xoauth2") {
    send("a AUTHENTICATE XOAUTH2 " +
         base64("user=" + o.user + "\x01" + "auth=Bearer " + o.secret + "\x01\x01") + "\r\n");
  } else {
    send("a LOGIN \"" + o.user + "\" \"" + o.secret + "\"\r\n");
  }
}

void Connection::next_operation() {
  const auto& mode = worker_.options().mode;
  started_ = Clock::now();
  if (mode == "noop") {
    state_ = State::kNoop;
    send("n NOOP\r\n");
  } else if (mode == "fetch") {
    state_ = State::kFetch;
    send("f FETCH 1 BODY.PEEK[]\r\n");
  }
}

void Connection::handle_line(std::string_view line) {
  auto& tally = worker_.tally();
  auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  };
  switch (state_) {
    case State::kGreeting:
      if (line.substr(0, 4) != "* OK") return error("greeting: " + std::string(line));
      if (!worker_.options().implicit_tls && !tls_) {
        state_ = State::kStarttls;
        send("s STARTTLS\r\n");
      } else {
        after_sign_in();
      }
      return;
    case State::kStarttls:
      if (line.substr(0, 2) == "* ") return;
      if (line.substr(0, 4) != "s OK") return error("STARTTLS: " + std::string(line));
      state_ = State::kHandshake;
      return;
    case State::kAuth:
      if (line.substr(0, 2) == "* ") return;
      if (line.substr(0, 1) == "+") return send("\r\n");
      if (line.substr(0, 4) != "a OK") return error("sign-in: " + std::string(line));
      if (tls_) worker_.keep_session(ssl_);
      if (worker_.options().mode == "session") {
        tally.latencies_ms.push_back(elapsed_ms());
        state_ = State::kLogout;
        send("l LOGOUT\r\n");
      } else if (worker_.options().mode == "fetch") {
        state_ = State::kSelect;
        send("x SELECT INBOX\r\n");
      } else if (worker_.options().mode == "idle") {
        state_ = State::kIdleStart;
        send("i IDLE\r\n");
      } else {
        next_operation();
      }
      return;
    case State::kLogout:
      if (line.substr(0, 4) == "l OK") {
        ++tally.sessions;
        // A polite client's end, its close_notify: OpenSSL takes a connection freed without one
        // for a broken session and makes that session unresumable, so that a client that
        // reconnected alone never resumed (and 8 at once, about half the time).
        if (tls_) SSL_shutdown(ssl_);
        close();
        start();
      }
      return;
    case State::kSelect:
      if (line.substr(0, 2) == "* ") return;
      if (line.substr(0, 4) != "x OK") return error("SELECT: " + std::string(line));
      next_operation();
      return;
    case State::kNoop:
    case State::kFetch: {
      char tag = state_ == State::kNoop ? 'n' : 'f';
      if (line.size() < 4 || line[0] != tag || line[1] != ' ') return;  // untagged, literal rest
      if (line.substr(2, 2) != "OK") return error("command: " + std::string(line));
      ++tally.operations;
      tally.latencies_ms.push_back(elapsed_ms());
      if (!worker_.over()) next_operation();
      return;
    }
    case State::kIdleStart:
      if (line.substr(0, 1) == "+") {
        ++tally.idle;
        state_ = State::kIdle;
      } else if (line.substr(0, 2) != "* ") {
        error("IDLE: " + std::string(line));
      }
      return;
    default:
      return;
  }
}

void Connection::on_event(uint32_t events) {
  if (state_ == State::kConnecting) {
    int problem = 0;
    socklen_t length = sizeof problem;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &problem, &length);
    if (problem != 0) return error("connect: " + std::string(std::strerror(problem)));
    if (worker_.options().implicit_tls) {
      state_ = State::kHandshake;
      handshake();
    } else {
      state_ = State::kGreeting;
      watch(EPOLLIN);
    }
    return;
  }
  if (state_ == State::kHandshake) {
    if (!tls_) {
      handshake();
      return;
    }
  }
  if ((events & EPOLLOUT) && !out_.empty() && !flush()) return error("write failed");
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !read_available()) {
    if (state_ != State::kDone) error("closed by the server");
  }
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

std::string json_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--resume") {
      o.resume = true;
      continue;
    }
    if (i + 1 >= argc) fail(a + " needs a value");
    std::string v = argv[++i];
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = std::atoi(v.c_str());
    else if (a == "--tls")
      o.implicit_tls = v == "implicit";
    else if (a == "--tls-version")
      o.tls_version = v;
    else if (a == "--ca")
      o.ca = v;
    else if (a == "--cert")
      o.cert = v;
    else if (a == "--key")
      o.key = v;
    else if (a == "--auth")
      o.auth = v;
    else if (a == "--user")
      o.user = v;
    else if (a == "--secret")
      o.secret = v;
    else if (a == "--secret-file") {
      std::ifstream in(v);
      if (!std::getline(in, o.secret)) fail("cannot read " + v);
    } else if (a == "--mode")
      o.mode = v;
    else if (a == "--connections")
      o.connections = std::max(1, std::atoi(v.c_str()));
    else if (a == "--threads")
      o.threads = std::max(1, std::atoi(v.c_str()));
    else if (a == "--seconds")
      o.seconds = std::atof(v.c_str());
    else if (a == "--label")
      o.label = v;
    else
      fail("unknown option " + a);
  }
  if (o.port <= 0) fail("--port is required");
  if (o.mode != "session" && o.mode != "noop" && o.mode != "fetch" && o.mode != "idle")
    fail("--mode is session, noop, fetch or idle");
  if (o.auth != "external" && o.auth != "xoauth2" && o.auth != "login")
    fail("--auth is external, xoauth2 or login");
  if (o.seconds <= 0 || o.seconds > 3600) fail("--seconds is between 0 and 3600");
  return o;
}

SSL_CTX* make_context(const Options& o) {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  int version = o.tls_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(context, version);
  SSL_CTX_set_max_proto_version(context, version);
  if (!o.ca.empty()) {
    if (SSL_CTX_load_verify_locations(context, o.ca.c_str(), nullptr) != 1)
      fail("cannot read the CA file " + o.ca);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  }
  if (!o.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(context, o.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(context, o.key.c_str(), SSL_FILETYPE_PEM) != 1)
      fail("cannot read the client certificate " + o.cert + " or its key");
  }
  SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT);
  return context;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL writes to its sockets with write(): a connection the server closed (a handshake it
  // timed out) must be an error of that connection, not a SIGPIPE that ends the whole load.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    Options o = parse(argc, argv);
    SSL_CTX* context = make_context(o);
    auto start = Clock::now();
    auto end = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(o.seconds));
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < o.threads; ++t) {
      int share = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
      workers.push_back(std::make_unique<Worker>(o, context, share, end));
    }
    std::vector<std::thread> threads;
    threads.reserve(workers.size());
    for (auto& w : workers)
      threads.emplace_back([&w] { w->run(); });
    for (auto& t : threads)
      t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    Tally total;
    for (auto& w : workers)
      total.add(w->tally());
    workers.clear();
    SSL_CTX_free(context);
    double p50 = percentile(total.latencies_ms, 0.50);
    double p99 = percentile(total.latencies_ms, 0.99);
    std::printf(
        "{\"label\":\"%s\",\"mode\":\"%s\",\"tls\":\"%s\",\"tls_version\":\"%s\",\"auth\":\"%s\","
        "\"connections\":%d,\"threads\":%d,\"seconds\":%.3f,\"sessions\":%llu,"
        "\"sessions_per_s\":%.1f,\"operations\":%llu,\"operations_per_s\":%.1f,\"bytes\":%llu,"
        "\"mib_per_s\":%.1f,\"idle\":%llu,\"handshakes\":%llu,\"resumed\":%llu,"
        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"errors\":%llu,\"first_error\":\"%s\"}\n",
        json_escaped(o.label).c_str(), o.mode.c_str(), o.implicit_tls ? "implicit" : "starttls",
        o.tls_version.c_str(), o.auth.c_str(), o.connections, o.threads, elapsed,
        static_cast<unsigned long long>(total.sessions),
        static_cast<double>(total.sessions) / elapsed,
        static_cast<unsigned long long>(total.operations),
        static_cast<double>(total.operations) / elapsed,
        static_cast<unsigned long long>(total.bytes),
        static_cast<double>(total.bytes) / elapsed / (1 << 20),
        static_cast<unsigned long long>(total.idle),
        static_cast<unsigned long long>(total.handshakes),
        static_cast<unsigned long long>(total.resumed), p50, p99,
        static_cast<unsigned long long>(total.errors), json_escaped(total.first_error).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mssgate_imap_load: %s\n", e.what());
    return 2;
  }
}
