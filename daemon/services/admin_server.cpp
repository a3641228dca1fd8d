#include "daemon/services/admin_server.hpp"

#include <malloc.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <functional>
#include <vector>

#include "config/storage_settings.hpp"
#include "daemon/net/certificate_identity.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/net/listener.hpp"
#include "daemon/net/proxy_protocol.hpp"
#include "daemon/net/spawn.hpp"
#include "daemon/services/admin_documents.hpp"
#include "daemon/services/console_assets.hpp"
#include "daemon/services/console_documents.hpp"
#include "daemon/services/provisioning_api.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"
#include "storage/clock.hpp"
#include "storage/directory_store.hpp"
#include "storage/indicator_reports.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr auto kProbeTimeout = std::chrono::seconds(1);
constexpr auto kReportTimeout = std::chrono::seconds(60);
// How long a refused request's unread body is read and dropped before the connection closes.
constexpr auto kDiscardTimeout = std::chrono::seconds(5);
// After a request or an answer this large (a bulk import, an export), the memory freed is given
// back to the system: glibc keeps it otherwise, and a million-row import left the gateway at
// 670 MiB resident once done.
constexpr size_t kGiveBackAfterBytes = size_t{16} << 20;

// Gives freed memory back to the system when it goes, if a large request or answer asked it.
struct GiveBackMemory {
  bool large = false;
  GiveBackMemory() = default;
  GiveBackMemory(const GiveBackMemory&) = delete;
  GiveBackMemory& operator=(const GiveBackMemory&) = delete;
  ~GiveBackMemory() {
    if (large) malloc_trim(0);
  }
};

// The answer to a request that cannot be read (`error`), before the connection closes.
http::response<http::string_body> refusal_of(const boost::system::error_code& error, bool chunked) {
  bool too_big = error == http::error::buffer_overflow || error == http::error::header_limit;
  bool body_too_big = error == http::error::body_limit;
  http::response<http::string_body> refusal{chunked ? http::status::length_required
                                            : too_big
                                                ? http::status::request_header_fields_too_large
                                            : body_too_big ? http::status::payload_too_large
                                                           : http::status::bad_request,
                                            11};
  refusal.set(http::field::server, "mssgate");
  refusal.set(http::field::content_type, "text/plain; charset=utf-8");
  refusal.keep_alive(false);
  refusal.body() = chunked        ? "send a body with Content-Length, not chunked\n"
                   : too_big      ? "request too large\n"
                   : body_too_big ? "body too large (admin.max_import_bytes for an import, "
                                    "64 KiB otherwise)\n"
                                  : "not an HTTP/1.1 request\n";
  refusal.prepare_payload();
  return refusal;
}

std::string seconds_ago(int64_t now_ms, int64_t then_ms) {
  return std::to_string(std::max<int64_t>(0, now_ms - then_ms) / 1000) + " s ago";
}

std::unique_ptr<ssl::context> admin_tls_context(const config::AdminConfig& admin) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = context->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  boost::system::error_code ec;
  context->use_certificate_chain_file(admin.certificate_chain, ec);
  if (ec)
    throw std::runtime_error("cannot load admin.certificate_chain " + admin.certificate_chain);
  context->use_private_key_file(admin.private_key, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("cannot load admin.private_key " + admin.private_key);
  context->load_verify_file(admin.client_ca, ec);
  if (ec) throw std::runtime_error("cannot load admin.client_ca " + admin.client_ca);
  context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return context;
}

// The journal the console reads, read-only: SQLite's file or the shared PostgreSQL; nullptr
// when indicators are off.
std::unique_ptr<storage::IndicatorReader> open_reader(const config::Config& config) {
  const auto& indicators = config.indicators;
  if (indicators.in_postgresql) {
    auto settings = config::postgresql_settings(config.storage, "admin");
    // A month's report may take longer than a gateway's insert, but not for ever: the console
    // has one reports thread.
    settings.statement_timeout = kReportTimeout;
    return std::make_unique<storage::IndicatorReader>(settings);
  }
  if (indicators.journal.empty()) return nullptr;
  return std::make_unique<storage::IndicatorReader>(indicators.journal);
}

std::string current_month(const config::Config& config) {
  return storage::day_of(storage::now_ms(), config.indicators.utc_days).substr(0, 7);
}

}  // namespace

class AdminServer::Impl : public std::enable_shared_from_this<AdminServer::Impl> {
 public:
  Impl(asio::io_context& io, CurrentEnvironment current, std::shared_ptr<GatewayCounters> counters)
      : io_(io), current_(std::move(current)), counters_(std::move(counters)) {}

  void bind(const GatewayEnvironment& env) {
    const auto& admin = env.config.admin;
    if (admin.tls()) tls_ = admin_tls_context(admin);
    for (const auto& endpoint : admin.listen) {
      auto acceptor = std::make_unique<tcp::acceptor>(open_listener(io_, endpoint, "admin"));
      listening_event("admin", *acceptor).add("tls", tls_ != nullptr).info();
      acceptors_.push_back(std::move(acceptor));
    }
  }

  void start() {
    for (auto& acceptor : acceptors_)
      spawn_accept_loop(*acceptor);
  }

  // A failed accept loop is logged (task_failed) and, after a pause, started again.
  void spawn_accept_loop(tcp::acceptor& acceptor) {
    auto self = shared_from_this();
    spawn_task(io_.get_executor(), accept_loop(self, acceptor), "accept:admin", [self, &acceptor] {
      auto timer = std::make_shared<asio::steady_timer>(self->io_, std::chrono::milliseconds(100));
      timer->async_wait([self, &acceptor, timer](const boost::system::error_code&) {
        if (acceptor.is_open()) self->spawn_accept_loop(acceptor);
      });
    });
  }

  void stop() {
    for (auto& acceptor : acceptors_) {
      boost::system::error_code ignored;
      acceptor->close(ignored);
    }
    reports_.stop();
    reports_.join();
    provisioning_.stop();
    provisioning_.join();
  }

 private:
  asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self, tcp::acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;
      // A request that throws ends its own connection only (logged as task_failed).
      spawn_task(io_.get_executor(), serve(self, std::move(socket)), "admin_request");
    }
  }

  asio::awaitable<void> serve([[maybe_unused]] std::shared_ptr<Impl> self, tcp::socket socket) {
    auto env = current_();
    if (env->config.proxy_protocol.expected_on("admin")) {
      // Behind a load balancer: its header first (a refusal is logged; the socket closes here).
      auto outcome =
          co_await accept_proxy_header(std::move(socket), env->config.proxy_protocol, "admin");
      if (!outcome.ends) co_return;
      socket = std::move(outcome.socket);
    }
    env.reset();
    ProvisioningClient client;
    boost::system::error_code peer_ec;
    auto peer = socket.remote_endpoint(peer_ec);
    if (!peer_ec) client.address = peer.address().to_string();
    beast::tcp_stream stream(std::move(socket));
    if (!tls_) {
      co_await exchange(stream, client);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> tls_stream(std::move(stream), *tls_);
    beast::get_lowest_layer(tls_stream).expires_after(kRequestTimeout);
    auto [ec] = co_await tls_stream.async_handshake(ssl::stream_base::server, kTuple);
    if (ec) {
      Event("admin_tls_failed").add("reason", ec.message()).warn();
      co_return;
    }
    // The client's certificate, verified by the handshake: whether it may change the directory
    // is decided at each request, from the configuration in force.
    if (X509* certificate = SSL_get0_peer_certificate(tls_stream.native_handle())) {
      CertificateIdentity identity = identify_certificate(certificate);
      client.spki_sha256 = identity.spki_sha256;
      client.subject = identity.subject;
    }
    co_await exchange(tls_stream, client);
    co_await tls_stream.async_shutdown(kTuple);
  }

  // Requests on one connection, kept alive while the client wants.
  template <class Stream>
  asio::awaitable<void> exchange(Stream& stream, ProvisioningClient client) {
    beast::flat_buffer buffer(kAdminHeaderBytes);  // bounds the header section (admin_documents)
    for (;;) {
      GiveBackMemory give_back;  // after the request and its answer below are gone
      beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
      http::request_parser<http::string_body> parser;
      parser.header_limit(kAdminParserHeaderLimit);
      const size_t max_import_bytes = current_()->config.admin.max_import_bytes;
      // No limit while the header is read: the target's is checked once it is known, below,
      // so that the parser never stops inside the header and leaves it unread.
      parser.body_limit(boost::none);
      auto [rec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      if (!rec && header_bytes > kAdminHeaderBytes) rec = http::error::header_limit;
      // A chunked body is refused before it is read (admin_documents: kAdminTakesChunkedBodies).
      bool chunked = !rec && !kAdminTakesChunkedBodies && parser.chunked();
      if (chunked) rec = http::error::bad_transfer_encoding;
      if (!rec) {
        // Only the provisioning API's bulk import takes a large body.
        const auto& target = parser.get().target();
        size_t limit = provisioning_body_limit({target.data(), target.size()}, max_import_bytes);
        if (parser.content_length().value_or(0) > limit) rec = http::error::body_limit;
        parser.body_limit(limit);
      }
      // A client that asked to be told before it sends its body (curl does for a large import)
      // hears "100 Continue" only when the body will be read; a refusal comes in its place.
      const auto expect = parser.get()[http::field::expect];
      const bool awaits_continue = expects_continue({expect.data(), expect.size()});
      if (!rec && awaits_continue && !parser.is_done()) {
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        auto [cec, continue_bytes] = co_await http::async_write(stream, go_on, kTuple);
        rec = cec;
      }
      if (!rec) {
        auto [body_ec, body_bytes] = co_await http::async_read(stream, buffer, parser, kTuple);
        rec = body_ec;
      }
      if (rec == http::error::end_of_stream || rec == beast::error::timeout) co_return;
      if (rec) {
        // Not a request we can read: say so, then close (the stream is out of step).
        auto refusal = refusal_of(rec, chunked);
        auto [refusal_ec, refusal_bytes] = co_await http::async_write(stream, refusal, kTuple);
        Event("admin_bad_request").add("error", rec.message()).warn();
        // The client may still be sending the body refused: closing now would reset the
        // connection under it, and it would lose the refusal it has not read yet (RFC 9112
        // section 9.6). What it sends is read and dropped, a few seconds at most; one that
        // awaits "100 Continue" sends nothing more.
        if (!refusal_ec && !awaits_continue && (rec == http::error::body_limit || chunked)) {
          // Both refusals come once the header is read: its Content-Length, if any, is known.
          const boost::optional<uint64_t> announced = parser.content_length();
          co_await discard_incoming(stream, buffer.size(), announced);
        }
        co_return;
      }
      const auto& request = parser.get();
      AdminResponse answer = co_await route(request, client);
      give_back.large = request.body().size() + answer.body.size() > kGiveBackAfterBytes;
      // The answer may have taken long (a bulk import): the write has its own time.
      beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
      http::response<http::string_body> response{static_cast<http::status>(answer.status),
                                                 request.version()};
      response.set(http::field::server, "mssgate");
      response.set(http::field::content_type, answer.content_type);
      response.set(http::field::cache_control, "no-store");
      for (const auto& [name, value] : answer.headers)
        response.set(name, value);
      response.keep_alive(request.keep_alive());
      if (request.method() != http::verb::head) response.body() = std::move(answer.body);
      response.prepare_payload();
      if (request.method() == http::verb::head) response.content_length(answer.body.size());
      auto [wec, written] = co_await http::async_write(stream, response, kTuple);
      if (wec || !response.keep_alive()) co_return;
    }
  }

  // Reads and drops what the client sends: `announced` bytes (of which `buffered` are already
  // read), all it sends when unknown, until it closes or kDiscardTimeout has passed.
  template <class Stream>
  static asio::awaitable<void> discard_incoming(Stream& stream, size_t buffered,
                                                boost::optional<uint64_t> announced) {
    uint64_t left = announced ? (*announced > buffered ? *announced - buffered : 0) : UINT64_MAX;
    beast::get_lowest_layer(stream).expires_after(kDiscardTimeout);
    std::vector<char> dropped(16384);
    while (left > 0) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(dropped), kTuple);
      if (ec) co_return;
      left -= std::min<uint64_t>(left, n);
    }
  }

  asio::awaitable<AdminResponse> route(const http::request<http::string_body>& request,
                                       const ProvisioningClient& client) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view method(request.method_string().data(), request.method_string().size());
    switch (admin_route(method, target)) {
      case AdminRoute::kMethodNotAllowed:
        co_return AdminResponse{405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
      case AdminRoute::kMetrics:
        co_return AdminResponse{
            200, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics::gateway().render_openmetrics(current_()->config.server.instance)};
      case AdminRoute::kHealth:
        co_return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"};
      case AdminRoute::kReady: {
        AdminResponse answer = co_await readiness();
        co_return answer;
      }
      case AdminRoute::kAutoconfig: {
        auto env = current_();
        if (!env->config.admin.autoconfig.enabled()) {
          co_return AdminResponse{404, "text/plain; charset=utf-8", "autoconfiguration is off\n"};
        }
        co_return autoconfig_document(env->config.admin.autoconfig,
                                      query_parameter(target, "emailaddress"));
      }
      case AdminRoute::kConsole: {
        auto month = requested_month(target, current_month(current_()->config));
        if (!month) co_return json_error(400, "month is YYYY-MM");
        co_return console_page(*month);
      }
      case AdminRoute::kConsoleFile:
        co_return console_file(target).value_or(AdminResponse{404, "text/plain", "not found\n"});
      case AdminRoute::kApiStatus: {
        AdminResponse answer = co_await status();
        co_return answer;
      }
      case AdminRoute::kApiIndicators: {
        auto env = current_();
        auto month = requested_month(target, current_month(env->config));
        if (!month) co_return json_error(400, "month is YYYY-MM");
        ReportWork work = [env, month = *month] {
          auto reader = open_reader(env->config);
          if (!reader) return json_error(404, "indicators are off: no journal is configured");
          ConsoleMonth data{month, reader->days_of_month(month), reader->sign_ins_by_day(month),
                            reader->monthly(storage::Report::kLps, month, {}),
                            reader->acknowledgement_days(month)};
          return indicators_document(data);
        };
        AdminResponse answer = co_await off_the_io_thread(std::move(work));
        co_return answer;
      }
      case AdminRoute::kApiExport: {
        auto env = current_();
        std::string why_not;
        auto asked = export_request(target, current_month(env->config), why_not);
        if (!asked) co_return json_error(400, why_not);
        ReportWork work = [env, request = *asked] {
          auto reader = open_reader(env->config);
          if (!reader) return json_error(404, "indicators are off: no journal is configured");
          const auto& exports = env->config.indicators.exports;
          auto file = config::report_file(exports, request.report, request.month, request.format);
          auto table = reader->monthly(request.report, request.month, file.columns);
          return export_document(table, request, file.name,
                                 exports.csv_separator.empty() ? ';' : exports.csv_separator[0]);
        };
        AdminResponse answer = co_await off_the_io_thread(std::move(work));
        co_return answer;
      }
      case AdminRoute::kApiOpenApi:
        co_return AdminResponse{200, "application/json", std::string(openapi_document())};
      case AdminRoute::kApiDirectory: {
        AdminResponse answer = co_await provision(request, client);
        co_return answer;
      }
      case AdminRoute::kNotFound:
        break;
    }
    co_return AdminResponse{404, "text/plain; charset=utf-8", "not found\n"};
  }

  // A request to the provisioning API, answered on the provisioning thread (each is a query,
  // a bulk import may take seconds); the request stays in the caller's frame until then.
  asio::awaitable<AdminResponse> provision(const http::request<http::string_body>& request,
                                           const ProvisioningClient& client) {
    auto env = current_();
    ProvisioningRequest asked;
    asked.method = {request.method_string().data(), request.method_string().size()};
    asked.target = {request.target().data(), request.target().size()};
    auto type = request[http::field::content_type];
    asked.content_type = {type.data(), type.size()};
    asked.body = request.body();
    asked.client = client;
    const auto& writers = env->config.admin.provisioning_writers;
    asked.client.may_write =
        !client.spki_sha256.empty() &&
        std::find(writers.begin(), writers.end(), client.spki_sha256) != writers.end();
    ReportWork work = [this, env, &asked]() -> AdminResponse {
      storage::DirectoryStore* directory = nullptr;
      try {
        directory = &provisioning_store(env->config);
      } catch (const std::exception& e) {
        Event("directory_api_failed").add("error", e.what()).warn();
        return directory_unavailable(e.what());
      }
      AdminResponse answer = handle_provisioning(asked, *directory);
      // The store may be what failed (a lost connection): the next request opens it again.
      if (answer.status == 503) provisioning_store_.reset();
      return answer;
    };
    AdminResponse answer = co_await asio::co_spawn(
        provisioning_.get_executor(), report(std::make_shared<ReportWork>(std::move(work))),
        asio::use_awaitable);
    co_return answer;
  }

  // The directory the provisioning API changes, opened at its first use and again when the
  // configuration names another one (or after a failure). On the provisioning thread only.
  storage::DirectoryStore& provisioning_store(const config::Config& config) {
    bool postgresql = config.storage.postgresql_enabled();
    std::string where =
        postgresql ? "postgresql " + config.storage.postgresql : config.directory.sqlite_path;
    if (!provisioning_store_ || where != provisioning_store_where_) {
      provisioning_store_.reset();
      provisioning_store_ = postgresql
                                ? storage::open_postgresql_directory(
                                      config::postgresql_settings(config.storage, "admin"))
                                : storage::open_sqlite_directory(config.directory.sqlite_path);
      provisioning_store_where_ = where;
    }
    return *provisioning_store_;
  }

  using ReportWork = std::function<AdminResponse()>;

  // Runs a report over the journal (which may take seconds) on the reports thread, so that the
  // io thread goes on serving; a storage error is the answer's, never the server's. The report
  // reaches the coroutines as a shared pointer, as every coroutine here takes what it keeps.
  asio::awaitable<AdminResponse> off_the_io_thread(ReportWork work) {
    return asio::co_spawn(reports_.get_executor(),
                          report(std::make_shared<ReportWork>(std::move(work))),
                          asio::use_awaitable);
  }

  static asio::awaitable<AdminResponse> report(std::shared_ptr<ReportWork> work) {
    try {
      co_return (*work)();
    } catch (const storage::StorageError& e) {
      Event("console_report_failed").add("error", e.what()).warn();
      co_return json_error(503, std::string("the indicator journal cannot be read: ") + e.what());
    } catch (const std::exception& e) {
      Event("console_report_failed").add("error", e.what()).error();
      co_return json_error(500, "the report failed; the gateway's log says why");
    }
  }

  asio::awaitable<AdminResponse> status() {
    auto env = current_();
    ConsoleStatus status;
    status.instance = env->config.server.instance;
    status.version = MSSGATE_VERSION;
    status.checks = co_await readiness_checks();
    status.ready = true;
    for (const auto& check : status.checks)
      status.ready = status.ready && check.ok;
    status.open_sessions = counters_->open_sessions;
    status.client_connections = counters_->client_connections;
    status.lmtp_connections = counters_->lmtp_connections;
    status.transactions = counters_->transactions;
    status.draining = counters_->draining;
    status.indicators = env->config.indicators.enabled();
    co_return status_document(status);
  }

  asio::awaitable<AdminResponse> readiness() {
    co_return readiness_document(co_await readiness_checks());
  }

  asio::awaitable<std::vector<ReadinessCheck>> readiness_checks() {
    auto env = current_();
    const auto& config = env->config;
    std::vector<ReadinessCheck> checks;
    checks.push_back({"serving", !counters_->draining, counters_->draining ? "stopping" : ""});
    auto probe = [&](std::string name, std::string host, std::string port,
                     std::string shown) -> asio::awaitable<void> {
      ReadinessCheck check{name, false, shown};
      HttpFailure failure = co_await probe_connect(host, port, kProbeTimeout);
      check.ok = failure == HttpFailure::kNone;
      if (!check.ok) check.detail += " " + std::string(describe(failure));
      metrics::gateway().backend_up.with({name}).set(check.ok ? 1 : 0);
      checks.push_back(std::move(check));
    };
    auto probe_endpoint = [&](std::string name, const config::Endpoint& e) {
      return probe(std::move(name), e.host, std::to_string(e.port), e.text());
    };
    if (!config.imap.starttls_listen.empty() || !config.imap.tls_listen.empty())
      co_await probe_endpoint("imap_backend", config.imap.backend.address);
    if (!config.smtp.starttls_listen.empty() || !config.smtp.tls_listen.empty())
      co_await probe_endpoint("submission_backend", config.smtp.backend.address);
    if (!config.lmtp.listen.empty()) co_await probe_endpoint("lmtp_backend", config.lmtp.backend);
    if (env->validator) {
      IssuerHealth issuer = env->validator->issuer_health();
      co_await probe("issuer", issuer.host, issuer.port, issuer.host + ":" + issuer.port);
      // What the sign-ins met lately, for the operator reading the answer.
      int64_t now_ms = storage::now_ms();
      if (issuer.last_answer_ms)
        checks.back().detail += "; last answer " + seconds_ago(now_ms, issuer.last_answer_ms);
      if (issuer.last_failure_ms > issuer.last_answer_ms)
        checks.back().detail += "; last failure " + seconds_ago(now_ms, issuer.last_failure_ms);
    }
    co_return checks;
  }

  asio::io_context& io_;
  CurrentEnvironment current_;
  std::shared_ptr<GatewayCounters> counters_;
  std::unique_ptr<ssl::context> tls_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  // The console's reports, one at a time, off the io thread.
  asio::thread_pool reports_{1};
  // The provisioning API's requests, one at a time (so that its checks and changes do not
  // interleave), off the io thread, with the directory store they use.
  asio::thread_pool provisioning_{1};
  std::unique_ptr<storage::DirectoryStore> provisioning_store_;
  std::string provisioning_store_where_;
};

AdminServer::AdminServer(asio::io_context& io, const GatewayEnvironment& env,
                         CurrentEnvironment current, std::shared_ptr<GatewayCounters> counters)
    : impl_(std::make_shared<Impl>(io, std::move(current), std::move(counters))) {
  impl_->bind(env);
  impl_->start();
}

AdminServer::~AdminServer() {
  impl_->stop();
}

void AdminServer::stop() {
  impl_->stop();
}

}  // namespace mssgate::daemon
