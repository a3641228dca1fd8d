#include "daemon/services/crl_refresher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "daemon/net/http_client.hpp"
#include "daemon/net/spawn.hpp"
#include "daemon/net/tls_policy.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "protocol/http_url.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxCrlBytes = 64 << 20;

struct Download {
  std::string body;
  std::string failure;  // empty when the body is the resource
};

// Writes `content` to `path` so that a reader sees the old file or the new one, never half.
bool write_file_atomically(const std::string& path, const std::string& content,
                           std::string& error) {
  std::string temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = "cannot write " + temporary + ": " + std::strerror(errno);
    return false;
  }
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  bool ok = written == content.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(temporary.c_str(), path.c_str()) != 0) {
    error = "cannot write " + path + ": " + std::strerror(errno);
    std::remove(temporary.c_str());
    return false;
  }
  return true;
}

}  // namespace

class CrlRefresher::Impl : public std::enable_shared_from_this<CrlRefresher::Impl> {
 public:
  Impl(asio::io_context& io, std::shared_ptr<HttpClient> http, CurrentEnvironment current,
       std::function<void()> on_updated)
      : io_(io),
        current_(std::move(current)),
        on_updated_(std::move(on_updated)),
        timer_(io),
        http_(std::move(http)),
        client_tls_(std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client)) {
    client_tls_->set_default_verify_paths();
    client_tls_->set_verify_mode(asio::ssl::verify_peer);
  }

  // A round that throws is logged (task_failed); the rounds start again after the interval.
  void start() {
    auto self = shared_from_this();
    spawn_task(io_.get_executor(), rounds(self), "crl_refresh", [self] {
      if (self->stopped_) return;
      self->timer_.expires_after(self->current_()->config.tls.crl_refresh_interval);
      self->timer_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec && !self->stopped_) self->start();
      });
    });
  }

  void refresh_now() {
    again_ = true;
    timer_.cancel();
  }

  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

 private:
  asio::awaitable<void> rounds([[maybe_unused]] std::shared_ptr<Impl> self) {
    while (!stopped_) {
      again_ = false;
      auto env = current_();
      const config::TlsConfig& tls = env->config.tls;
      bool changed = false;
      for (const auto& url : tls.crl_urls) {
        bool updated = co_await refresh(url, tls);
        changed = changed || updated;
        if (stopped_) co_return;
      }
      if (changed) on_updated_();
      if (again_) continue;
      timer_.expires_after(tls.crl_refresh_interval);
      co_await timer_.async_wait(kTuple);
    }
  }

  // One URL: true when a newer CRL was kept.
  asio::awaitable<bool> refresh(const std::string& url, const config::TlsConfig& tls) {
    auto started = std::chrono::steady_clock::now();
    Download download = co_await fetch(url, tls.crl_download_timeout);
    if (!download.failure.empty()) {
      failed(url, download.failure, "");
      co_return false;
    }
    int64_t now = static_cast<int64_t>(metrics::unix_now());
    DownloadedCrl crl = check_downloaded_crl(download.body, tls.client_ca, now);
    if (!crl.refusal.empty()) {
      failed(url, crl.refusal, crl.issuer);
      co_return false;
    }
    std::string cached = crl_cache_file(tls.crl_cache_dir, url);
    int64_t kept_update = crl_file_last_update(cached);
    if (crl.last_update < kept_update) {
      failed(url, "older_than_kept", crl.issuer);
      co_return false;
    }
    metrics::gateway().crl_last_success.with({url}).set(metrics::unix_now());
    if (crl.last_update == kept_update) {
      metrics::gateway().crl_refreshes.with({"unchanged"}).inc();
      Event("crl_refresh").add("url", url).add("result", "unchanged").debug();
      co_return false;
    }
    std::string error;
    std::error_code ec;
    std::filesystem::create_directories(tls.crl_cache_dir, ec);
    if (!write_file_atomically(cached, crl.pem, error)) {
      failed(url, "cache_write_failed", crl.issuer, error);
      co_return false;
    }
    metrics::gateway().crl_refreshes.with({"updated"}).inc();
    Event("crl_updated")
        .add("url", url)
        .add("issuer", crl.issuer)
        .add("last_update", crl.last_update)
        .add("next_update", crl.next_update)
        .add("bytes", static_cast<uint64_t>(download.body.size()))
        .add("duration_ms",
             static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - started)
                                      .count()))
        .audit()
        .info();
    co_return true;
  }

  void failed(const std::string& url, std::string_view reason, const std::string& issuer,
              const std::string& detail = {}) {
    metrics::gateway().crl_refresh_failures.with({reason}).inc();
    Event event("crl_refresh_failed");
    event.add("url", url).add("reason", reason);
    if (!issuer.empty()) event.add("issuer", issuer);
    if (!detail.empty()) event.add("detail", detail);
    event.add("action", "last good CRL kept").audit().warn();
  }

  asio::awaitable<Download> fetch(const std::string& text,
                                  std::chrono::steady_clock::duration timeout) {
    auto url = protocol::parse_http_url(text);
    if (!url) co_return Download{{}, "bad_url"};
    HttpRequest request;
    request.url = std::move(*url);
    request.max_response_bytes = kMaxCrlBytes;
    request.timeout = timeout;
    request.keep_alive = false;
    HttpResponse response = co_await http_->send(std::move(request), client_tls_);
    if (response.failure != HttpFailure::kNone)
      co_return Download{{}, std::string(describe(response.failure))};
    if (response.status != 200) co_return Download{{}, "http_" + std::to_string(response.status)};
    co_return Download{std::move(response.body), {}};
  }

  asio::io_context& io_;
  CurrentEnvironment current_;
  std::function<void()> on_updated_;
  asio::steady_timer timer_;
  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<asio::ssl::context> client_tls_;
  bool again_ = false;
  bool stopped_ = false;
};

CrlRefresher::CrlRefresher(asio::io_context& io, std::shared_ptr<HttpClient> http,
                           CurrentEnvironment current, std::function<void()> on_updated)
    : impl_(
          std::make_shared<Impl>(io, std::move(http), std::move(current), std::move(on_updated))) {}

CrlRefresher::~CrlRefresher() {
  impl_->stop();
}

void CrlRefresher::start() {
  impl_->start();
}

void CrlRefresher::refresh_now() {
  impl_->refresh_now();
}

void CrlRefresher::stop() {
  impl_->stop();
}

}  // namespace mssgate::daemon
