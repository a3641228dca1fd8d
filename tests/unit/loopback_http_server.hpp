#pragma once

// A tiny HTTP/1.1 server for unit tests: 127.0.0.1, port 0, its own io context on its own
// thread, plain or TLS. It reads each request (header, then a Content-Length body) and answers
// with one fixed response, or never, as the test says. It counts connections and requests.

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/ascii.hpp"

namespace mssgate::test_support {

class LoopbackHttpServer {
 public:
  enum class Behaviour { kAnswer, kAnswerThenClose, kNeverAnswer };

  // With `tls`, every connection starts with a TLS handshake on that server context.
  explicit LoopbackHttpServer(std::shared_ptr<boost::asio::ssl::context> tls = nullptr)
      : tls_(std::move(tls)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    if (tls_) {
      SSL_CTX_set_tlsext_servername_arg(tls_->native_handle(), this);
      SSL_CTX_set_tlsext_servername_callback(tls_->native_handle(), &remember_server_name);
    }
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LoopbackHttpServer() {
    io_.stop();
    thread_.join();
  }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void behave(Behaviour behaviour) { behaviour_ = behaviour; }
  void answer(std::string response) {
    std::lock_guard lock(mutex_);
    response_ = std::move(response);
  }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  std::string last_request() const {
    std::lock_guard lock(mutex_);
    return last_request_;
  }
  std::string server_name() const {
    std::lock_guard lock(mutex_);
    return server_name_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  static int remember_server_name(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<LoopbackHttpServer*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    std::lock_guard lock(self->mutex_);
    self->server_name_ = name ? name : "";
    return SSL_TLSEXT_ERR_OK;
  }

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec) co_return;
      ++connections_;
      boost::asio::co_spawn(io_, serve(std::move(socket)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(tcp::socket socket) {
    if (!tls_) {
      co_await exchange(socket);
      co_return;
    }
    boost::asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
    auto [ec] = co_await stream.async_handshake(boost::asio::ssl::stream_base::server, kTuple);
    if (!ec) co_await exchange(stream);
  }

  template <class Stream>
  boost::asio::awaitable<void> exchange(Stream& stream) {
    std::string buffer;
    for (;;) {
      auto [ec, header_end] = co_await boost::asio::async_read_until(
          stream, boost::asio::dynamic_buffer(buffer), "\r\n\r\n", kTuple);
      if (ec) co_return;
      size_t length = content_length(buffer.substr(0, header_end));
      if (buffer.size() < header_end + length) {
        auto [bec, n] = co_await boost::asio::async_read(
            stream, boost::asio::dynamic_buffer(buffer),
            boost::asio::transfer_exactly(header_end + length - buffer.size()), kTuple);
        if (bec) co_return;
      }
      std::string response;
      {
        std::lock_guard lock(mutex_);
        last_request_ = buffer.substr(0, header_end + length);
        response = response_;
      }
      buffer.erase(0, header_end + length);
      ++requests_;
      if (behaviour_ == Behaviour::kNeverAnswer) {
        boost::asio::steady_timer never(stream.get_executor(), std::chrono::hours(1));
        co_await never.async_wait(kTuple);
        co_return;
      }
      auto [wec, written] =
          co_await boost::asio::async_write(stream, boost::asio::buffer(response), kTuple);
      if (wec || behaviour_ == Behaviour::kAnswerThenClose) co_return;
    }
  }

  static size_t content_length(const std::string& header) {
    std::string lower = protocol::ascii_lower(header);
    auto at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return 0;
    return std::stoul(lower.substr(at + 17));
  }

  std::shared_ptr<boost::asio::ssl::context> tls_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<Behaviour> behaviour_{Behaviour::kAnswer};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  std::string response_ = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  std::string last_request_;
  std::string server_name_;
};

// A self-signed P-256 certificate for the host name `dns_name`, and a server context that
// presents it.
struct LoopbackCertificate {
  std::shared_ptr<boost::asio::ssl::context> server;
  std::string pem;  // the certificate, for clients to trust

  // A client context that trusts this certificate only and verifies the server.
  std::shared_ptr<boost::asio::ssl::context> client() const {
    auto context =
        std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
    context->add_certificate_authority(boost::asio::buffer(pem));
    context->set_verify_mode(boost::asio::ssl::verify_peer);
    return context;
  }
};

inline LoopbackCertificate make_loopback_certificate(const std::string& dns_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  std::string san = "DNS:" + dns_name;
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  X509_sign(cert, key, EVP_sha256());

  LoopbackCertificate result;
  result.server =
      std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX_use_certificate(result.server->native_handle(), cert);
  SSL_CTX_use_PrivateKey(result.server->native_handle(), key);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  result.pem.assign(data, static_cast<size_t>(size));
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return result;
}

}  // namespace mssgate::test_support
