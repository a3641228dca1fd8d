#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/ip_address.hpp"
#include "protocol/mailbox.hpp"

namespace mssgate::config {

using Duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

struct Endpoint {
  std::string host;  // numeric address
  uint16_t port = 0;
  std::string text() const;
  bool loopback() const;
  bool operator==(const Endpoint&) const = default;
};

// The four suites of the référentiel (ECO.1.1.3): 0xC030, 0xC02F, 0xC028, 0xC027.
inline constexpr const char* kReferentielTls12Ciphers =
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256";
inline constexpr const char* kDefaultTls13Ciphersuites =
    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

struct ServerConfig {
  // This gateway's name among several (an `instance` label on every metric); empty: none.
  std::string instance;
  unsigned io_threads = 0;  // 0: one per core
  std::string log_level = "info";
  size_t max_connections = 20000;
  // At SIGTERM, mail transactions under way get this long to finish before sessions are closed.
  Duration stop_timeout = 30s;
  std::string log_file;   // empty: standard output (the journal under systemd)
  std::string audit_log;  // empty: audit events go to the main log
  // The same warning or error is written at most this many times per window; the rest are
  // counted and summarised.
  unsigned log_repeat_limit = 10;
  Duration log_repeat_window = 1min;
  // An io thread that has not answered the watchdog thread for this long is stalled: logged,
  // and systemd's watchdog is no longer fed (systemd then restarts the gateway).
  Duration io_stall_timeout = 10s;
  // Once a burst of connections is over, the memory it freed goes back to the system
  // (daemon/app/heap_return.hpp); false: the allocator keeps it for later allocations.
  bool return_freed_memory = true;
};

struct TlsConfig {
  std::string certificate_chain;  // PEM: server certificate then intermediates
  std::string private_key;
  std::string client_ca;  // PEM: CAs that issue client certificates; empty: none requested
  std::vector<std::string> crl_files;
  bool crl_check = true;  // check revocation of every certificate of the client's chain
  // A client certificate must carry the extended key usage clientAuth. False: one without any
  // extended key usage is accepted too (a CA that omits the extension); one whose extended key
  // usage excludes clientAuth is refused either way.
  bool require_client_auth_eku = true;
  // CRLs downloaded on a timer, each verified against client_ca before use; the last good
  // downloads are kept in crl_cache_dir, which is where the TLS context reads them from.
  std::vector<std::string> crl_urls;
  Duration crl_refresh_interval = 1h;
  // The longest download of one CRL, from the connection to the last byte: a source that stalls
  // or trickles holds the round (and the URLs after it) no longer than this.
  Duration crl_download_timeout = 30s;
  std::string crl_cache_dir;
  std::string min_version = "TLSv1.2";
  std::string max_version = "TLSv1.2";
  std::string ciphers = kReferentielTls12Ciphers;
  std::string ciphersuites = kDefaultTls13Ciphersuites;
  Duration handshake_timeout = 15s;
  // With client_ca: sessions kept in memory for resumption (0: none), and how long each may be
  // resumed. A session held only here costs a few KiB (its client certificate).
  size_t session_cache_size = 10000;
  Duration session_lifetime = 5min;
};

struct ImapBackendConfig {
  Endpoint address{"127.0.0.1", 143};
  Duration connect_timeout = 5s;
  Duration response_timeout = 15s;
  std::string master_user;
  std::string master_password_file;
  std::string master_password;  // read from master_password_file at load time
};

struct ImapConfig {
  std::vector<Endpoint> starttls_listen;
  std::vector<Endpoint> tls_listen;
  size_t max_line_bytes = 8192;
  size_t max_literal_bytes = 65536;
  Duration login_timeout = 60s;
  Duration idle_timeout = 30min;
  Duration write_timeout = 60s;
  unsigned max_bad_commands = 10;
  ImapBackendConfig backend;
};

struct SmtpBackendConfig {
  Endpoint address{"127.0.0.1", 587};
  Duration connect_timeout = 5s;
  Duration response_timeout = 30s;
  // The final answer after the message can take long (RFC 5321 §4.5.3.2.6: 10 minutes).
  Duration data_response_timeout = 10min;
  std::string helo_name = "mssgate";
};

struct SmtpConfig {
  std::vector<Endpoint> starttls_listen;
  std::vector<Endpoint> tls_listen;
  std::string hostname = "mssgate";  // in the greeting and the EHLO answer
  size_t max_line_bytes = 12288;     // command lines; RFC 4954 wants AUTH lines of 12288 octets
  size_t max_message_bytes = 50 << 20;
  size_t max_header_bytes = 256 << 10;
  unsigned max_recipients = 100;
  Duration command_timeout = 5min;  // each read while waiting for a command (RFC 5321: 5 min)
  Duration data_timeout = 3min;     // each read inside DATA (RFC 5321: 3 min)
  Duration write_timeout = 60s;
  unsigned max_bad_commands = 10;
  bool allow_null_sender = true;  // MAIL FROM:<> for MDNs; the From header is checked all the same
  SmtpBackendConfig backend;
};

// Pro Santé Connect: how access tokens are validated. Enabled when `issuer` is set.
struct PscConfig {
  std::string mode = "introspection";  // or "jwt": signature against the JWKS, then userinfo
  std::string
      issuer;  // the tokens' "iss", e.g. https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet
  std::string introspection_url;  // default: issuer + /protocol/openid-connect/token/introspect
  std::string jwks_url;           // default: issuer + /protocol/openid-connect/certs
  std::string userinfo_url;       // default: issuer + /protocol/openid-connect/userinfo
  std::string client_id;
  std::string client_secret_file;
  std::string client_secret;       // read from client_secret_file at load time
  std::string client_certificate;  // PEM chain for mutual TLS to PSC (optional)
  std::string client_key;
  std::string ca_file;  // trust for PSC's certificate; empty: the system's
  std::string subject_claim = "SubjectNameID";
  Duration timeout = 3s;
  Duration cache_max_age = 5min;  // a valid token is cached until its exp, at most this long
  Duration negative_cache = 10s;  // an invalid token is remembered this long
  Duration jwks_min_refresh = 30s;
  unsigned max_sessions_per_professional = 50;
  // A signed-in session's token is asked about again this often while it has not expired, so
  // that a revoked token ends its sessions (0: never).
  Duration token_recheck_interval = 60s;
  // A session signed in with a token ends at this age (0: never); PSC's own session lasts 4 h.
  Duration max_session_age = 4h;

  // Which valid tokens are taken (see docs/configuration.md). The LPS clients (azp, client_id)
  // allowed: empty, none (every token is refused); "*", any.
  std::vector<std::string> allowed_clients;
  std::string required_audience;                   // empty: aud not checked
  std::string required_scope;                      // empty: scope not checked
  std::vector<std::string> accepted_acr;           // empty: any acr
  std::vector<std::string> accepted_amr;           // empty: any amr
  std::vector<std::string> token_types{"Bearer"};  // typ; empty: any
  // The look at a token before PSC is asked: "jwt" (a signed compact JWS) or "opaque".
  std::string token_format = "jwt";
  size_t max_token_bytes = 8192;

  // The budget of requests to PSC, for every validation together.
  unsigned issuer_max_in_flight = 32;
  unsigned issuer_max_per_second = 50;
  unsigned issuer_burst = 100;

  bool enabled() const { return !issuer.empty(); }
  bool operator==(const PscConfig&) const = default;
};

// Where the directory (and, in time, the indicator journal) is kept: SQLite, embedded, for one
// host; PostgreSQL for several gateways sharing one directory.
struct StorageConfig {
  std::string backend = "sqlite";  // or "postgresql"
  // A libpq connection string without the password: "host=10.0.0.7 dbname=mssgate user=mssgate"
  std::string postgresql;
  std::string password_file;  // empty: libpq's other ways (a client certificate, .pgpass)
  std::string password;       // read from password_file at load time
  Duration connect_timeout = 5s;
  // The longest a statement may take (a commit of the journal, a read of the directory): past it
  // PostgreSQL cancels it, and the waiters get a temporary error instead of waiting on.
  Duration statement_timeout = 10s;

  bool postgresql_enabled() const { return backend == "postgresql"; }
  bool operator==(const StorageConfig&) const = default;
};

struct DirectoryConfig {
  std::string sqlite_path;  // with storage.backend = "sqlite"
  // How often the database is asked whether it changed; a change is in force at most this long
  // plus the snapshot's build time after its commit.
  Duration refresh_interval = 1s;
};

struct AuthConfig {
  std::vector<protocol::MailboxType> external_mailbox_types{protocol::MailboxType::kApp};
  // Mailbox types that may be opened with a Pro Santé Connect token.
  std::vector<protocol::MailboxType> token_mailbox_types{
      protocol::MailboxType::kPer, protocol::MailboxType::kOrg, protocol::MailboxType::kCab};
  // The subject attributes (OpenSSL's short names) that, with the issuer, make a certificate's
  // organisation identity, which `organisation` bindings name: by default the structure's
  // identifier (OU in IGC-Santé organisation certificates) and the service's name (CN), so
  // that a renewed certificate of the same structure and service opens the same mailboxes.
  std::vector<std::string> organisation_attributes{"OU", "CN"};
};

// The subject attribute names organisation_attributes may hold.
bool known_subject_attribute(std::string_view name);

// The received path: Postfix delivers to mssgate's LMTP listener, which relays to Dovecot's
// LMTP and counts each delivered message per recipient mailbox.
struct LmtpConfig {
  std::vector<Endpoint> listen;  // empty: no LMTP tap
  // The Postfix hosts that may deliver to the tap (addresses or networks). Empty: loopback
  // peers only, and every listen address must be a loopback address.
  std::vector<protocol::IpNetwork> allowed_peers;
  Endpoint backend{"127.0.0.1", 24};  // Dovecot's LMTP (TCP)
  size_t max_line_bytes = 4096;
  Duration command_timeout = 5min;  // Postfix's LMTP client waits this long too
  Duration data_timeout = 10min;
  Duration backend_connect_timeout = 10s;
  Duration backend_response_timeout = 10min;  // Dovecot's replies after the final dot
  // The header field that gives Dovecot each message's delivery id (a Sieve script can then
  // discard a delivery Postfix makes again after a crash); empty: none.
  std::string delivery_id_header = "X-Mssgate-Delivery-Id";
  // Dovecot gets the end of one message at a time per mailbox: set when Dovecot discards
  // deliveries made again by their delivery id (its duplicate database loses ids when two
  // deliveries to one mailbox run together).
  bool serial_per_mailbox = false;

  // Whether a connection from `peer` may deliver (see allowed_peers).
  bool peer_allowed(const protocol::IpAddress& peer) const;
  // Connections open at once, a budget of the tap's own: a flood on the client listeners
  // never refuses a delivery.
  size_t max_connections = 500;
};

// An address range ("192.0.2.0/24", "2001:db8::/48").
struct Network {
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4
  unsigned prefix = 0;
  bool v6 = false;
  // Whether `address` (4 or 16 bytes, as `v6` says) is in the range.
  bool contains(bool address_v6, const std::array<uint8_t, 16>& address) const;
  std::string text() const;
  bool operator==(const Network&) const = default;
};

// What one client address may do on the client listeners (IMAP and submission), and the phase
// before authentication. An IPv6 address counts by its /64.
struct LimitsConfig {
  unsigned max_connections_per_address = 100;  // open at once
  unsigned connection_rate_per_address = 300;  // admitted per rate_time_unit
  // Failed sign-ins per rate_time_unit; over it, sign-ins are refused without asking anyone.
  unsigned failed_sign_in_rate_per_address = 30;
  // Failed sign-ins and refused connections written in full per rate_time_unit; the rest are
  // counted and summed up in one event per address.
  unsigned logged_events_per_address = 10;
  Duration rate_time_unit = 1min;
  // The answer to a failed sign-in waits: nothing the first time in a time unit, then this,
  // doubled at each one, at most max_failure_delay.
  Duration failure_delay = 500ms;
  Duration max_failure_delay = 4s;
  // From the connection to a successful sign-in, whatever the client sends meanwhile.
  Duration pre_auth_timeout = 60s;
  unsigned max_pre_auth_commands = 30;
  unsigned max_sessions_per_certificate = 200;  // per certificate key, across mailboxes
  size_t tracked_addresses = 100000;
  std::vector<Network> exempt_networks;  // not held to the per-address limits

  bool exempt(bool v6, const std::array<uint8_t, 16>& address) const;
};

// What each monthly export file is called and holds. "{month}" is replaced by YYYY-MM and
// "{format}" by csv or json; columns come from the fixed vocabulary of docs/indicators.md.
struct IndicatorExportConfig {
  std::string connections_file = "connexions-{month}.{format}";
  std::string messages_file = "messages-{month}.{format}";
  std::string documents_file = "documents-{month}.{format}";
  std::string acknowledgements_file = "acquittements-{month}.{format}";
  std::vector<std::string> connections_columns;  // empty: the default columns
  std::vector<std::string> messages_columns;
  std::vector<std::string> documents_columns;
  std::vector<std::string> acknowledgements_columns;
  std::string csv_separator = ";";
};

struct IndicatorsConfig {
  std::string journal;  // the SQLite journal; empty: none (or the journal is in PostgreSQL)
  std::string log;      // the JSON-lines indicator log; empty: none
  std::vector<std::string> operator_domains;  // this operator's domains ("same_operator")
  std::vector<std::string> patient_domains{"patient.mssante.fr"};  // Mon Espace Santé
  bool utc_days = false;  // days = "utc"; default "local": the machine's time zone
  // Inspector caps.
  size_t max_archive_bytes = 32 << 20;
  size_t max_zip_entries = 1000;
  size_t max_zip_total_bytes = 64 << 20;
  size_t max_zip_ratio = 200;
  size_t max_xml_bytes = 8 << 20;
  size_t max_xml_depth = 256;
  size_t max_mime_depth = 16;
  size_t max_mime_parts = 1000;
  // Inspection runs on threads of its own, with a budget per message (all its archives).
  unsigned inspection_threads = 0;          // 0: half the cores, at least one
  size_t inspection_queue_bytes = 1 << 20;  // per session: it stops reading above this
  size_t inspection_memory = 256 << 20;     // all messages: bytes queued and archives held
  size_t max_message_inflated_bytes = 128 << 20;
  size_t max_message_xml_documents = 500;
  size_t max_message_xml_nodes = 1000000;
  Duration max_message_cpu_time = 2s;
  IndicatorExportConfig exports;

  // The journal is in PostgreSQL ([storage] backend = "postgresql", indicators.enabled).
  bool in_postgresql = false;

  bool enabled() const { return in_postgresql || !journal.empty(); }
};

// The Thunderbird-style autoconfiguration document (/mail/config-v1.1.xml) served by the admin
// endpoint for e-mail addresses of `domains`.
struct AutoconfigConfig {
  std::vector<std::string> domains;  // empty: no autoconfiguration
  std::string display_name = "MSSanté";
  std::string imap_host;
  uint16_t imap_port = 143;
  std::string smtp_host;
  uint16_t smtp_port = 587;

  bool enabled() const { return !domains.empty(); }
};

// The admin HTTP endpoint: /metrics, /healthz, /readyz, autoconfiguration.
struct AdminConfig {
  std::vector<Endpoint> listen;   // empty: none; loopback only unless client_ca is set
  std::string certificate_chain;  // with private_key and client_ca: TLS with client certificates
  std::string private_key;
  std::string client_ca;
  AutoconfigConfig autoconfig;
  // The client certificates (the lower-case hex SHA-256 of each one's SubjectPublicKeyInfo,
  // as `mssgatectl certificate show` prints it) that may change the directory through the
  // provisioning API; every other client reads only. Needs TLS (client_ca).
  std::vector<std::string> provisioning_writers;
  // The largest body of a bulk import (/api/directory/import); other requests take 64 KiB.
  size_t max_import_bytes = size_t{256} << 20;

  bool tls() const { return !client_ca.empty(); }
};

// The PROXY protocol, version 2: the listeners behind a TCP load balancer (HAProxy in TCP mode,
// `send-proxy-v2`) whose connections start with the balancer's header naming the client. TLS
// stays with mssgate. On those listeners, only the balancers of `trusted_sources` may connect.
struct ProxyProtocolConfig {
  // Among imap, imaps, submission, submissions, lmtp, admin. Empty: no PROXY header anywhere.
  std::vector<std::string> listeners;
  std::vector<protocol::IpNetwork> trusted_sources;  // the balancers' addresses or networks
  Duration header_timeout = 5s;   // from the connection to the header's last byte
  size_t max_header_bytes = 512;  // addresses and TLVs, after the 16 fixed bytes

  // Whether connections to the listener called `name` start with a header.
  bool expected_on(std::string_view name) const;
  bool trusted(const protocol::IpAddress& source) const;
};

struct Config {
  std::string source_path;
  ServerConfig server;
  TlsConfig tls;
  ImapConfig imap;
  SmtpConfig smtp;
  PscConfig psc;
  DirectoryConfig directory;
  AuthConfig auth;
  LmtpConfig lmtp;
  LimitsConfig limits;
  IndicatorsConfig indicators;
  AdminConfig admin;
  ProxyProtocolConfig proxy_protocol;
  StorageConfig storage;
};

// Every problem of a configuration file, one per line, each "file:line:column: key: problem".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& what) : std::runtime_error(what) {}
};

// Parses and validates; relative paths are resolved against the file's directory.
Config load_config(const std::string& path);

// For tests and tools: the same from text, `path` naming it in errors and anchoring paths.
Config parse_config(const std::string& text, const std::string& path);

// What a valid configuration may still get wrong, one sentence per key (for --check-config,
// and logged at start and at each reload): Pro Santé Connect with no LPS client allowed, or
// with any allowed.
struct ConfigWarning {
  std::string key;
  std::string text;
};
std::vector<ConfigWarning> config_warnings(const Config& config);

// A reload applies everything except what only a restart can change (the listening sockets,
// the io threads and their watchdog, the inspection threads, the indicator journal and log, the
// admin endpoint's TLS): those values of
// `next` are set back to the running ones, and the keys that differed are returned.
std::vector<std::string> keep_restart_only_settings(const Config& running, Config& next);

}  // namespace mssgate::config
