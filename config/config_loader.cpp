#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "config/config.hpp"
#include "protocol/ascii.hpp"
#include "storage/indicator_report_columns.hpp"

namespace mssgate::config {
namespace {

namespace fs = std::filesystem;

// Collects every problem so that an operator sees them all at once.
struct Problems {
  std::string file;
  std::vector<std::string> lines;

  void add(const toml::source_region& where, std::string_view key, std::string_view problem) {
    if (where.begin.line == 0) return add_global(key, problem);
    std::ostringstream out;
    out << file << ':' << where.begin.line << ':' << where.begin.column << ": " << key << ": "
        << problem;
    lines.push_back(out.str());
  }
  void add_global(std::string_view key, std::string_view problem) {
    lines.push_back(file + ": " + std::string(key) + ": " + std::string(problem));
  }
};

std::optional<Duration> parse_duration(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  uint64_t n = 0;
  std::from_chars(s.data(), s.data() + digits, n);
  std::string_view unit = s.substr(digits);
  if (unit == "ms") return Duration(n);
  if (unit == "s") return Duration(n * 1000);
  if (unit == "m" || unit == "min") return Duration(n * 60'000);
  if (unit == "h") return Duration(n * 3'600'000);
  return std::nullopt;
}

std::optional<size_t> parse_size(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  uint64_t n = 0;
  std::from_chars(s.data(), s.data() + digits, n);
  std::string_view unit = s.substr(digits);
  if (unit.empty() || unit == "B") return n;
  if (unit == "KiB") return n << 10;
  if (unit == "MiB") return n << 20;
  if (unit == "GiB") return n << 30;
  return std::nullopt;
}

std::optional<Endpoint> parse_endpoint(std::string_view s) {
  Endpoint e;
  std::string_view port_text;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return std::nullopt;
    }
    e.host = std::string(s.substr(1, close - 1));
    port_text = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) return std::nullopt;
    e.host = std::string(s.substr(0, colon));
    port_text = s.substr(colon + 1);
  }
  if (e.host.empty() || port_text.empty() || port_text.size() > 5) return std::nullopt;
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  e.port = static_cast<uint16_t>(port);
  return e;
}

// "192.0.2.0/24", "2001:db8::/48", or an address alone (all its bits).
std::optional<Network> parse_network(std::string_view s) {
  size_t slash = s.find('/');
  std::string address(s.substr(0, slash));
  Network n;
  n.v6 = address.find(':') != std::string::npos;
  if (inet_pton(n.v6 ? AF_INET6 : AF_INET, address.c_str(), n.bytes.data()) != 1)
    return std::nullopt;
  unsigned bits = n.v6 ? 128 : 32;
  n.prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = s.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n.prefix);
    if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() ||
        n.prefix > bits)
      return std::nullopt;
  }
  return n;
}

// Reads the keys of one table; whatever is left unread at the end is an unknown key.
class TableReader {
 public:
  TableReader(const toml::table* table, std::string prefix, Problems& problems,
              const fs::path& base_dir)
      : table_(table), prefix_(std::move(prefix)), problems_(problems), base_dir_(base_dir) {}

  ~TableReader() {
    if (!table_) return;
    for (auto&& [key, node] : *table_) {
      if (!known_.count(std::string(key.str()))) {
        problems_.add(key.source(), name(key.str()), "unknown key");
      }
    }
  }

  std::string name(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  const toml::node* take(std::string_view key) {
    known_.insert(std::string(key));
    return table_ ? table_->get(key) : nullptr;
  }

  const toml::table* sub_table(std::string_view key) {
    const toml::node* node = take(key);
    if (!node) return nullptr;
    if (!node->is_table()) {
      problems_.add(node->source(), name(key), "must be a table");
      return nullptr;
    }
    return node->as_table();
  }

  void string(std::string_view key, std::string& out) {
    if (const toml::node* node = take(key)) {
      if (auto v = node->value<std::string>(); v && node->is_string()) {
        out = *v;
      } else {
        problems_.add(node->source(), name(key), "must be a string");
      }
    }
  }

  void path(std::string_view key, std::string& out) {
    string(key, out);
    if (!out.empty()) out = (base_dir_ / out).lexically_normal().string();
  }

  void path_list(std::string_view key, std::vector<std::string>& out) {
    strings(key, out);
    for (auto& p : out)
      p = (base_dir_ / p).lexically_normal().string();
  }

  void strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* node = take(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) {
      problems_.add(node->source(), name(key), "must be an array of strings");
      return;
    }
    out.clear();
    for (const auto& element : *array) {
      if (!element.is_string()) {
        problems_.add(element.source(), name(key), "must be an array of strings");
        return;
      }
      out.push_back(*element.value<std::string>());
    }
  }

  void boolean(std::string_view key, bool& out) {
    if (const toml::node* node = take(key)) {
      if (node->is_boolean()) {
        out = *node->value<bool>();
      } else {
        problems_.add(node->source(), name(key), "must be true or false");
      }
    }
  }

  template <class Integer>
  void integer(std::string_view key, Integer& out, int64_t min, int64_t max) {
    if (const toml::node* node = take(key)) {
      if (!node->is_integer()) {
        problems_.add(node->source(), name(key), "must be an integer");
        return;
      }
      int64_t v = *node->value<int64_t>();
      if (v < min || v > max) {
        problems_.add(node->source(), name(key),
                      "must be between " + std::to_string(min) + " and " + std::to_string(max));
        return;
      }
      out = static_cast<Integer>(v);
    }
  }

  void size(std::string_view key, size_t& out, size_t min, size_t max) {
    const toml::node* node = take(key);
    if (!node) return;
    std::optional<size_t> v;
    if (node->is_integer() && *node->value<int64_t>() >= 0) {
      v = static_cast<size_t>(*node->value<int64_t>());
    } else if (node->is_string()) {
      v = parse_size(*node->value<std::string>());
    }
    if (!v) {
      problems_.add(node->source(), name(key),
                    "must be a size such as 65536, \"64KiB\" or \"1MiB\"");
    } else if (*v < min || *v > max) {
      problems_.add(
          node->source(), name(key),
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
    } else {
      out = *v;
    }
  }

  void duration(std::string_view key, Duration& out, Duration min, Duration max) {
    const toml::node* node = take(key);
    if (!node) return;
    std::optional<Duration> v;
    if (node->is_string()) v = parse_duration(*node->value<std::string>());
    if (!v) {
      problems_.add(node->source(), name(key),
                    "must be a duration such as \"500ms\", \"15s\", \"30m\" or \"1h\"");
    } else if (*v < min || *v > max) {
      problems_.add(node->source(), name(key),
                    "must be between " + std::to_string(min.count()) + "ms and " +
                        std::to_string(max.count()) + "ms");
    } else {
      out = *v;
    }
  }

  void endpoint(std::string_view key, Endpoint& out) {
    const toml::node* node = take(key);
    if (!node) return;
    std::optional<Endpoint> v;
    if (node->is_string()) v = parse_endpoint(*node->value<std::string>());
    if (!v) {
      problems_.add(node->source(), name(key), "must be \"host:port\" or \"[ipv6]:port\"");
    } else {
      out = *v;
    }
  }

  void endpoints(std::string_view key, std::vector<Endpoint>& out) {
    const toml::node* node = take(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) {
      problems_.add(node->source(), name(key), "must be an array of \"host:port\" strings");
      return;
    }
    out.clear();
    for (const auto& element : *array) {
      std::optional<Endpoint> v;
      if (element.is_string()) v = parse_endpoint(*element.value<std::string>());
      if (!v) {
        problems_.add(element.source(), name(key), "must be an array of \"host:port\" strings");
        return;
      }
      out.push_back(*v);
    }
  }

  // Remembers where a key was, for problems found when validating the whole.
  toml::source_region where(std::string_view key) const {
    if (table_) {
      if (const toml::node* node = table_->get(key)) return node->source();
      return table_->source();
    }
    return {};
  }

 private:
  const toml::table* table_;
  std::string prefix_;
  Problems& problems_;
  const fs::path& base_dir_;
  std::set<std::string> known_;
};

// Why a file cannot be read ("No such file or directory", "Permission denied", "is a
// directory"), or "" when it can.
std::string why_unreadable(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  struct stat info {};
  bool directory = ::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode);
  ::close(fd);
  return directory ? "is a directory" : "";
}

// "cannot read [WHAT]PATH: WHY" ("cannot read a password from /etc/...: Permission denied"),
// for a problem's text.
std::string cannot_read(const std::string& path, const std::string& why,
                        std::string_view what = "") {
  std::string text = "cannot read ";
  text += what;
  text += path;
  text += ": ";
  text += why;
  return text;
}

// Reads a secret, the first line of a file, into `secret` (without a final CR when
// `drop_cr`); returns why it cannot, or "" when it did.
std::string read_secret(const std::string& path, std::string& secret, bool drop_cr) {
  std::string why = why_unreadable(path);
  if (!why.empty()) return why;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line) || line.empty() || line == "\r") return "its first line is empty";
  if (drop_cr && line.back() == '\r') line.pop_back();
  secret = std::move(line);
  return "";
}

void read_server(TableReader& parent, ServerConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("server"), "server", problems, base);
  t.string("instance", out.instance);
  bool name_ok = out.instance.size() <= 64 &&
                 std::all_of(out.instance.begin(), out.instance.end(), [](char c) {
                   return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                 });
  if (!name_ok) {
    problems.add(t.where("instance"), "server.instance",
                 "letters, digits, '-', '_' and '.', at most 64 (such as \"gw-1\")");
  }
  t.integer("io_threads", out.io_threads, 0, 256);
  t.string("log_level", out.log_level);
  t.size("max_connections", out.max_connections, 1, 1'000'000);
  t.duration("stop_timeout", out.stop_timeout, 0ms, 1h);
  t.path("log_file", out.log_file);
  t.path("audit_log", out.audit_log);
  t.integer("log_repeat_limit", out.log_repeat_limit, 1, 1'000'000);
  t.duration("log_repeat_window", out.log_repeat_window, 1s, 24h);
  t.duration("io_stall_timeout", out.io_stall_timeout, 100ms, 1h);
  t.boolean("return_freed_memory", out.return_freed_memory);
  if (!out.log_file.empty() && out.log_file == out.audit_log) {
    problems.add(t.where("audit_log"), "server.audit_log",
                 "must not be the same file as server.log_file");
  }
  // The log's own lines say "warning": the word is taken too.
  if (out.log_level == "warning") out.log_level = "warn";
  static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error"};
  if (!kLevels.count(out.log_level)) {
    problems.add(t.where("log_level"), "server.log_level",
                 "must be one of trace, debug, info, warn, error");
  }
}

void read_tls(TableReader& parent, TlsConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("tls"), "tls", problems, base);
  t.path("certificate_chain", out.certificate_chain);
  t.path("private_key", out.private_key);
  t.path("client_ca", out.client_ca);
  t.path_list("crl_files", out.crl_files);
  t.boolean("crl_check", out.crl_check);
  t.boolean("require_client_auth_eku", out.require_client_auth_eku);
  t.string("min_version", out.min_version);
  t.string("max_version", out.max_version);
  t.string("ciphers", out.ciphers);
  t.string("ciphersuites", out.ciphersuites);
  t.duration("handshake_timeout", out.handshake_timeout, 100ms, 5min);
  t.integer("session_cache_size", out.session_cache_size, 0, 10'000'000);
  t.duration("session_lifetime", out.session_lifetime, 1s, 24h);
  t.strings("crl_urls", out.crl_urls);
  t.duration("crl_refresh_interval", out.crl_refresh_interval, 1s, 7 * 24h);
  t.duration("crl_download_timeout", out.crl_download_timeout, 1s, 10min);
  t.path("crl_cache_dir", out.crl_cache_dir);
  for (const auto& url : out.crl_urls) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      problems.add(t.where("crl_urls"), "tls.crl_urls",
                   "\"" + url + "\" must be an http:// or https:// URL");
    }
  }
  if (!out.crl_urls.empty() && out.crl_cache_dir.empty()) {
    problems.add(t.where("crl_urls"), "tls.crl_cache_dir",
                 "is required when tls.crl_urls is set (the last good CRLs are kept there)");
  }
  if (!out.crl_urls.empty() && out.client_ca.empty()) {
    problems.add(t.where("crl_urls"), "tls.crl_urls",
                 "needs tls.client_ca (downloaded CRLs are verified against it)");
  }

  static const std::map<std::string, int> kVersions{{"TLSv1.2", 2}, {"TLSv1.3", 3}};
  auto min = kVersions.find(out.min_version);
  auto max = kVersions.find(out.max_version);
  if (min == kVersions.end())
    problems.add(t.where("min_version"), "tls.min_version", "must be \"TLSv1.2\" or \"TLSv1.3\"");
  if (max == kVersions.end())
    problems.add(t.where("max_version"), "tls.max_version", "must be \"TLSv1.2\" or \"TLSv1.3\"");
  if (min != kVersions.end() && max != kVersions.end() && min->second > max->second) {
    problems.add(t.where("max_version"), "tls.max_version",
                 "must not be lower than tls.min_version");
  }
  for (auto [key, value] : {std::pair{"certificate_chain", &out.certificate_chain},
                            std::pair{"private_key", &out.private_key}}) {
    if (value->empty()) {
      problems.add(t.where(key), std::string("tls.") + key, "is required");
    } else if (auto why = why_unreadable(*value); !why.empty()) {
      problems.add(t.where(key), std::string("tls.") + key, cannot_read(*value, why));
    }
  }
  if (auto why = out.client_ca.empty() ? "" : why_unreadable(out.client_ca); !why.empty()) {
    problems.add(t.where("client_ca"), "tls.client_ca", cannot_read(out.client_ca, why));
  }
  if (!out.client_ca.empty() && out.crl_check && out.crl_files.empty() && out.crl_urls.empty()) {
    problems.add(t.where("crl_files"), "tls.crl_files",
                 "is required when tls.client_ca is set, unless tls.crl_urls is (or set "
                 "tls.crl_check = false)");
  }
  for (const auto& crl : out.crl_files) {
    if (auto why = why_unreadable(crl); !why.empty())
      problems.add(t.where("crl_files"), "tls.crl_files", cannot_read(crl, why));
  }
}

void read_imap(TableReader& parent, ImapConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("imap"), "imap", problems, base);
  t.endpoints("starttls_listen", out.starttls_listen);
  t.endpoints("tls_listen", out.tls_listen);
  t.size("max_line_bytes", out.max_line_bytes, 1024, 1 << 20);
  t.size("max_literal_bytes", out.max_literal_bytes, 1024, 64 << 20);
  t.duration("login_timeout", out.login_timeout, 1s, 30min);
  t.duration("idle_timeout", out.idle_timeout, 1s, 24h);
  t.duration("write_timeout", out.write_timeout, 1s, 1h);
  t.integer("max_bad_commands", out.max_bad_commands, 1, 1000);
  if (out.starttls_listen.empty() && out.tls_listen.empty()) {
    problems.add(t.where("starttls_listen"), "imap.starttls_listen",
                 "at least one of imap.starttls_listen and imap.tls_listen is required");
  }

  TableReader b(t.sub_table("backend"), "imap.backend", problems, base);
  b.endpoint("address", out.backend.address);
  b.duration("connect_timeout", out.backend.connect_timeout, 100ms, 5min);
  b.duration("response_timeout", out.backend.response_timeout, 100ms, 5min);
  b.string("master_user", out.backend.master_user);
  b.path("master_password_file", out.backend.master_password_file);
  if (out.backend.master_user.empty()) {
    problems.add(b.where("master_user"), "imap.backend.master_user", "is required");
  }
  if (out.backend.master_password_file.empty()) {
    problems.add(b.where("master_password_file"), "imap.backend.master_password_file",
                 "is required");
  } else {
    if (auto why = read_secret(out.backend.master_password_file, out.backend.master_password, true);
        !why.empty()) {
      problems.add(b.where("master_password_file"), "imap.backend.master_password_file",
                   cannot_read(out.backend.master_password_file, why, "a password from "));
    }
  }
}

void read_smtp(TableReader& parent, SmtpConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("smtp"), "smtp", problems, base);
  t.endpoints("starttls_listen", out.starttls_listen);
  t.endpoints("tls_listen", out.tls_listen);
  t.string("hostname", out.hostname);
  t.size("max_line_bytes", out.max_line_bytes, 512, 1 << 20);
  t.size("max_message_bytes", out.max_message_bytes, 1024, size_t{4} << 30);
  t.size("max_header_bytes", out.max_header_bytes, 1024, 64 << 20);
  t.integer("max_recipients", out.max_recipients, 1, 100000);
  t.duration("command_timeout", out.command_timeout, 1s, 1h);
  t.duration("data_timeout", out.data_timeout, 1s, 1h);
  t.duration("write_timeout", out.write_timeout, 1s, 1h);
  t.integer("max_bad_commands", out.max_bad_commands, 1, 1000);
  t.boolean("allow_null_sender", out.allow_null_sender);
  if (out.hostname.empty() || out.hostname.find_first_of(" \t\r\n") != std::string::npos) {
    problems.add(t.where("hostname"), "smtp.hostname", "must be a host name");
  }

  TableReader b(t.sub_table("backend"), "smtp.backend", problems, base);
  b.endpoint("address", out.backend.address);
  b.duration("connect_timeout", out.backend.connect_timeout, 100ms, 5min);
  b.duration("response_timeout", out.backend.response_timeout, 100ms, 30min);
  b.duration("data_response_timeout", out.backend.data_response_timeout, 100ms, 1h);
  b.string("helo_name", out.backend.helo_name);
}

// Which tokens are taken, and the budget of requests to PSC.
void read_psc_policy(TableReader& t, PscConfig& out, Problems& problems) {
  t.strings("allowed_clients", out.allowed_clients);
  t.string("required_audience", out.required_audience);
  t.string("required_scope", out.required_scope);
  t.strings("accepted_acr", out.accepted_acr);
  t.strings("accepted_amr", out.accepted_amr);
  t.strings("token_types", out.token_types);
  t.string("token_format", out.token_format);
  t.size("max_token_bytes", out.max_token_bytes, 256, 16384);
  t.integer("issuer_max_in_flight", out.issuer_max_in_flight, 1, 10000);
  t.integer("issuer_max_per_second", out.issuer_max_per_second, 1, 100000);
  t.integer("issuer_burst", out.issuer_burst, 1, 1000000);
  for (const auto& client : out.allowed_clients) {
    if (client.empty())
      problems.add(t.where("allowed_clients"), "psc.allowed_clients",
                   "an empty client id is not allowed");
  }
  if (out.required_scope.find(' ') != std::string::npos) {
    problems.add(t.where("required_scope"), "psc.required_scope", "must be one scope (no space)");
  }
  if (out.token_format != "jwt" && out.token_format != "opaque") {
    problems.add(t.where("token_format"), "psc.token_format", "must be \"jwt\" or \"opaque\"");
  } else if (out.mode == "jwt" && out.token_format != "jwt") {
    problems.add(t.where("token_format"), "psc.token_format",
                 "must be \"jwt\" when psc.mode is \"jwt\"");
  }
}

void read_psc(TableReader& parent, PscConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("psc"), "psc", problems, base);
  t.string("mode", out.mode);
  t.string("issuer", out.issuer);
  t.string("introspection_url", out.introspection_url);
  t.string("jwks_url", out.jwks_url);
  t.string("userinfo_url", out.userinfo_url);
  t.string("client_id", out.client_id);
  t.path("client_secret_file", out.client_secret_file);
  t.path("client_certificate", out.client_certificate);
  t.path("client_key", out.client_key);
  t.path("ca_file", out.ca_file);
  t.string("subject_claim", out.subject_claim);
  t.duration("timeout", out.timeout, 100ms, 1min);
  t.duration("cache_max_age", out.cache_max_age, 0ms, 1h);
  t.duration("negative_cache", out.negative_cache, 0ms, 10min);
  t.duration("jwks_min_refresh", out.jwks_min_refresh, 1s, 1h);
  t.integer("max_sessions_per_professional", out.max_sessions_per_professional, 1, 100000);
  t.duration("token_recheck_interval", out.token_recheck_interval, 0ms, 1h);
  t.duration("max_session_age", out.max_session_age, 0ms, 7 * 24h);
  read_psc_policy(t, out, problems);
  if (!out.enabled()) return;
  if (out.mode != "introspection" && out.mode != "jwt") {
    problems.add(t.where("mode"), "psc.mode", "must be \"introspection\" or \"jwt\"");
  }
  if (out.issuer.rfind("https://", 0) != 0)
    problems.add(t.where("issuer"), "psc.issuer", "must be an https:// URL");
  std::string realm = out.issuer + "/protocol/openid-connect";
  if (out.introspection_url.empty()) out.introspection_url = realm + "/token/introspect";
  if (out.jwks_url.empty()) out.jwks_url = realm + "/certs";
  if (out.userinfo_url.empty()) out.userinfo_url = realm + "/userinfo";
  for (auto [key, url] :
       {std::pair{"introspection_url", &out.introspection_url},
        std::pair{"jwks_url", &out.jwks_url}, std::pair{"userinfo_url", &out.userinfo_url}}) {
    if (url->rfind("https://", 0) != 0)
      problems.add(t.where(key), std::string("psc.") + key, "must be an https:// URL");
  }
  if (out.mode == "introspection") {
    if (out.client_id.empty())
      problems.add(t.where("client_id"), "psc.client_id", "is required for introspection");
    if (out.client_secret_file.empty() && out.client_certificate.empty()) {
      problems.add(t.where("client_secret_file"), "psc.client_secret_file",
                   "introspection needs client_secret_file or client_certificate");
    }
  }
  if (!out.client_secret_file.empty()) {
    if (auto why = read_secret(out.client_secret_file, out.client_secret, false); !why.empty()) {
      problems.add(t.where("client_secret_file"), "psc.client_secret_file",
                   cannot_read(out.client_secret_file, why, "a secret from "));
    }
  }
  if (out.client_certificate.empty() != out.client_key.empty()) {
    problems.add(t.where("client_key"), "psc.client_key",
                 "client_certificate and client_key go together");
  }
  for (auto [key, file] :
       {std::pair{"client_certificate", &out.client_certificate},
        std::pair{"client_key", &out.client_key}, std::pair{"ca_file", &out.ca_file}}) {
    if (auto why = file->empty() ? "" : why_unreadable(*file); !why.empty()) {
      problems.add(t.where(key), std::string("psc.") + key, cannot_read(*file, why));
    }
  }
}

void read_storage(TableReader& parent, StorageConfig& out, Problems& problems,
                  const fs::path& base) {
  TableReader t(parent.sub_table("storage"), "storage", problems, base);
  t.string("backend", out.backend);
  if (out.backend != "sqlite" && out.backend != "postgresql") {
    problems.add(t.where("backend"), "storage.backend", "must be \"sqlite\" or \"postgresql\"");
  }
  t.string("postgresql", out.postgresql);
  t.path("password_file", out.password_file);
  t.duration("connect_timeout", out.connect_timeout, 100ms, 5min);
  t.duration("statement_timeout", out.statement_timeout, 100ms, 1h);
  if (out.postgresql_enabled() && out.postgresql.empty()) {
    problems.add(t.where("postgresql"), "storage.postgresql",
                 "is required with backend = \"postgresql\": a connection string such as "
                 "\"host=10.0.0.7 dbname=mssgate user=mssgate\"");
  }
  if (out.postgresql.find("password") != std::string::npos) {
    problems.add(t.where("postgresql"), "storage.postgresql",
                 "must not hold the password: put it in storage.password_file");
  }
  if (!out.password_file.empty()) {
    if (auto why = read_secret(out.password_file, out.password, true); !why.empty()) {
      problems.add(t.where("password_file"), "storage.password_file",
                   cannot_read(out.password_file, why, "a password from "));
    }
  }
}

void read_directory(TableReader& parent, DirectoryConfig& out, Problems& problems,
                    const fs::path& base, const StorageConfig& storage) {
  TableReader t(parent.sub_table("directory"), "directory", problems, base);
  t.path("sqlite_path", out.sqlite_path);
  if (out.sqlite_path.empty() && !storage.postgresql_enabled())
    problems.add(t.where("sqlite_path"), "directory.sqlite_path", "is required");
  t.duration("refresh_interval", out.refresh_interval, 10ms, 1h);
}

void read_mailbox_types(TableReader& t, std::string_view key,
                        std::vector<protocol::MailboxType>& out, Problems& problems) {
  std::vector<std::string> types;
  t.strings(key, types);
  if (types.empty()) return;  // the default stays
  out.clear();
  for (const auto& s : types) {
    if (auto type = protocol::parse_mailbox_type(s)) {
      out.push_back(*type);
    } else {
      problems.add(t.where(key), t.name(key),
                   "unknown mailbox type \"" + s + "\" (PER, ORG, APP or CAB)");
    }
  }
}

void read_auth(TableReader& parent, AuthConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("auth"), "auth", problems, base);
  read_mailbox_types(t, "external_mailbox_types", out.external_mailbox_types, problems);
  read_mailbox_types(t, "token_mailbox_types", out.token_mailbox_types, problems);
  std::vector<std::string> attributes;
  t.strings("organisation_attributes", attributes);
  if (attributes.empty()) return;  // the default stays
  out.organisation_attributes.clear();
  for (const auto& name : attributes) {
    if (!known_subject_attribute(name)) {
      problems.add(
          t.where("organisation_attributes"), t.name("organisation_attributes"),
          "unknown subject attribute \"" + name +
              "\" (C, ST, L, O, OU, CN, serialNumber, organizationIdentifier, UID, title)");
    } else if (std::find(out.organisation_attributes.begin(), out.organisation_attributes.end(),
                         name) != out.organisation_attributes.end()) {
      problems.add(t.where("organisation_attributes"), t.name("organisation_attributes"),
                   "\"" + name + "\" is named twice");
    } else {
      out.organisation_attributes.push_back(name);
    }
  }
}

}  // namespace

bool known_subject_attribute(std::string_view name) {
  for (std::string_view known : {"C", "ST", "L", "O", "OU", "CN", "serialNumber",
                                 "organizationIdentifier", "UID", "title"}) {
    if (name == known) return true;
  }
  return false;
}

namespace {

// A field name Dovecot's Sieve scripts and every header reader take alike (or empty).
bool header_field_name(std::string_view name) {
  if (name.size() > 76 || name.starts_with('-')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// A list of addresses or networks ("192.0.2.25", "192.0.2.0/24", "2001:db8::/64") into `out`;
// each entry that is neither is a problem. Returns the texts as written.
std::vector<std::string> read_ip_networks(TableReader& t, std::string_view key,
                                          std::vector<protocol::IpNetwork>& out,
                                          Problems& problems) {
  std::vector<std::string> texts;
  t.strings(key, texts);
  for (const auto& text : texts) {
    if (auto network = protocol::parse_ip_network(text)) {
      out.push_back(std::move(*network));
    } else {
      problems.add(t.where(key), t.name(key),
                   "\"" + text + "\" is not an IP address or network (such as \"192.0.2.25\" or " +
                       "\"192.0.2.0/24\")");
    }
  }
  return texts;
}

void read_lmtp(TableReader& parent, LmtpConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("lmtp"), "lmtp", problems, base);
  t.endpoints("listen", out.listen);
  t.endpoint("backend", out.backend);
  t.size("max_line_bytes", out.max_line_bytes, 512, 1 << 20);
  t.duration("command_timeout", out.command_timeout, 1s, 1h);
  t.duration("data_timeout", out.data_timeout, 1s, 1h);
  t.duration("backend_connect_timeout", out.backend_connect_timeout, 100ms, 5min);
  t.duration("backend_response_timeout", out.backend_response_timeout, 100ms, 1h);
  auto peers = read_ip_networks(t, "allowed_peers", out.allowed_peers, problems);
  // The tap trusts what it hears (no TLS, no authentication): off loopback, only named hosts.
  if (out.allowed_peers.empty() && peers.empty()) {
    for (const auto& endpoint : out.listen) {
      if (endpoint.loopback()) continue;
      problems.add(t.where("listen"), "lmtp.listen",
                   endpoint.text() +
                       " is not a loopback address: set lmtp.allowed_peers to the addresses of "
                       "the Postfix hosts that may deliver to the tap");
    }
  }
  t.size("max_connections", out.max_connections, 1, 1'000'000);
  t.string("delivery_id_header", out.delivery_id_header);
  t.boolean("serial_per_mailbox", out.serial_per_mailbox);
  if (out.serial_per_mailbox && out.delivery_id_header.empty()) {
    problems.add(t.where("serial_per_mailbox"), "lmtp.serial_per_mailbox",
                 "is for Dovecot's de-duplication by delivery id: it needs "
                 "lmtp.delivery_id_header");
  }
  if (!header_field_name(out.delivery_id_header)) {
    problems.add(t.where("delivery_id_header"), "lmtp.delivery_id_header",
                 "\"" + out.delivery_id_header +
                     "\" is not a header field name: letters, digits and hyphens, at most 76, "
                     "not starting with a hyphen (or \"\" for none)");
  }
}

void read_limits(TableReader& parent, LimitsConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("limits"), "limits", problems, base);
  t.integer("max_connections_per_address", out.max_connections_per_address, 1, 1'000'000);
  t.integer("connection_rate_per_address", out.connection_rate_per_address, 1, 1'000'000);
  t.integer("failed_sign_in_rate_per_address", out.failed_sign_in_rate_per_address, 1, 1'000'000);
  t.integer("logged_events_per_address", out.logged_events_per_address, 0, 1'000'000);
  t.duration("rate_time_unit", out.rate_time_unit, 1s, 1h);
  t.duration("failure_delay", out.failure_delay, 0ms, 1min);
  t.duration("max_failure_delay", out.max_failure_delay, 0ms, 5min);
  t.duration("pre_auth_timeout", out.pre_auth_timeout, 1s, 1h);
  t.integer("max_pre_auth_commands", out.max_pre_auth_commands, 1, 100'000);
  t.integer("max_sessions_per_certificate", out.max_sessions_per_certificate, 1, 1'000'000);
  t.size("tracked_addresses", out.tracked_addresses, 100, 10'000'000);
  std::vector<std::string> networks;
  t.strings("exempt_networks", networks);
  for (const auto& text : networks) {
    if (auto network = parse_network(text)) {
      out.exempt_networks.push_back(*network);
    } else {
      problems.add(t.where("exempt_networks"), "limits.exempt_networks",
                   "\"" + text + "\" is not an address or a network such as \"192.0.2.0/24\"");
    }
  }
  if (out.max_failure_delay < out.failure_delay) {
    problems.add(t.where("max_failure_delay"), "limits.max_failure_delay",
                 "must not be shorter than limits.failure_delay");
  }
}

void read_columns(TableReader& t, std::string_view key, std::vector<std::string>& out,
                  const std::vector<std::string_view>& vocabulary, Problems& problems) {
  t.strings(key, out);
  for (const auto& column : out) {
    if (std::find(vocabulary.begin(), vocabulary.end(), column) != vocabulary.end()) continue;
    std::string problem = "unknown column \"" + column + "\" (known: ";
    for (size_t i = 0; i < vocabulary.size(); ++i) {
      if (i > 0) problem += ", ";
      problem += vocabulary[i];
    }
    problem += ')';
    problems.add(t.where(key), t.name(key), problem);
  }
}

void read_indicators(TableReader& parent, IndicatorsConfig& out, Problems& problems,
                     const fs::path& base, const StorageConfig& storage) {
  TableReader t(parent.sub_table("indicators"), "indicators", problems, base);
  t.path("journal", out.journal);
  // On by default where there is a journal: PostgreSQL, or the SQLite file named.
  bool enabled = storage.postgresql_enabled() || !out.journal.empty();
  t.boolean("enabled", enabled);
  if (storage.postgresql_enabled()) {
    if (!out.journal.empty()) {
      problems.add(t.where("journal"), "indicators.journal",
                   "is not used with [storage] backend = \"postgresql\": the journal is in "
                   "PostgreSQL (mssgatectl storage migrate --journal sqlite:PATH moves this one "
                   "there)");
    }
    out.in_postgresql = enabled;
  } else if (enabled && out.journal.empty()) {
    problems.add(t.where("enabled"), "indicators.journal",
                 "is required with indicators.enabled = true: the SQLite journal's path");
  } else if (!enabled) {
    out.journal.clear();
  }
  t.path("log", out.log);
  t.strings("operator_domains", out.operator_domains);
  t.strings("patient_domains", out.patient_domains);
  for (auto* domains : {&out.operator_domains, &out.patient_domains}) {
    for (auto& d : *domains)
      d = protocol::ascii_lower(d);
  }
  std::string days = out.utc_days ? "utc" : "local";
  t.string("days", days);
  if (days != "utc" && days != "local") {
    problems.add(t.where("days"), "indicators.days", "must be \"local\" or \"utc\"");
  }
  out.utc_days = days == "utc";
  t.size("max_archive_bytes", out.max_archive_bytes, 1024, size_t{1} << 30);
  t.size("max_zip_entries", out.max_zip_entries, 1, 1000000);
  t.size("max_zip_total_bytes", out.max_zip_total_bytes, 1024, size_t{4} << 30);
  t.size("max_zip_ratio", out.max_zip_ratio, 1, 1000000);
  t.size("max_xml_bytes", out.max_xml_bytes, 1024, size_t{1} << 30);
  t.size("max_xml_depth", out.max_xml_depth, 8, 100000);
  t.size("max_mime_depth", out.max_mime_depth, 1, 1000);
  t.size("max_mime_parts", out.max_mime_parts, 1, 1000000);
  t.integer("inspection_threads", out.inspection_threads, 0, 256);
  t.size("inspection_queue_bytes", out.inspection_queue_bytes, 16 << 10, size_t{1} << 30);
  t.size("inspection_memory", out.inspection_memory, 1 << 20, size_t{1} << 40);
  t.size("max_message_inflated_bytes", out.max_message_inflated_bytes, 1024, size_t{16} << 30);
  t.integer("max_message_xml_documents", out.max_message_xml_documents, 1, 1000000);
  t.integer("max_message_xml_nodes", out.max_message_xml_nodes, 100, 1000000000);
  t.duration("max_message_cpu_time", out.max_message_cpu_time, 10ms, 10min);
  // Room for one archive of the largest size (its buffer may double as it grows) and its queue.
  if (out.inspection_memory < 2 * out.max_archive_bytes + out.inspection_queue_bytes) {
    problems.add(t.where("inspection_memory"), "indicators.inspection_memory",
                 "must be at least twice max_archive_bytes plus inspection_queue_bytes");
  }

  TableReader e(t.sub_table("export"), "indicators.export", problems, base);
  auto& x = out.exports;
  e.string("connections_file", x.connections_file);
  e.string("messages_file", x.messages_file);
  e.string("documents_file", x.documents_file);
  e.string("acknowledgements_file", x.acknowledgements_file);
  for (auto [key, name] : {std::pair{"connections_file", &x.connections_file},
                           std::pair{"messages_file", &x.messages_file},
                           std::pair{"documents_file", &x.documents_file},
                           std::pair{"acknowledgements_file", &x.acknowledgements_file}}) {
    if (name->empty() || name->find('/') != std::string::npos) {
      problems.add(e.where(key), "indicators.export",
                   "file names must be plain names, without \"/\"");
    }
  }
  read_columns(e, "connections_columns", x.connections_columns, storage::kConnectionsFields,
               problems);
  read_columns(e, "messages_columns", x.messages_columns, storage::kMessagesFields, problems);
  read_columns(e, "documents_columns", x.documents_columns, storage::kDocumentsFields, problems);
  read_columns(e, "acknowledgements_columns", x.acknowledgements_columns,
               storage::kAcknowledgementsFields, problems);
  e.string("csv_separator", x.csv_separator);
  if (x.csv_separator.size() != 1 || x.csv_separator == "\"" || x.csv_separator == "\n") {
    problems.add(e.where("csv_separator"), "indicators.export.csv_separator",
                 "must be one character other than a quote or a line break");
  }
}

void read_admin(TableReader& parent, AdminConfig& out, Problems& problems, const fs::path& base) {
  TableReader t(parent.sub_table("admin"), "admin", problems, base);
  t.endpoints("listen", out.listen);
  t.path("certificate_chain", out.certificate_chain);
  t.path("private_key", out.private_key);
  t.path("client_ca", out.client_ca);
  bool any_tls = !out.certificate_chain.empty() || !out.private_key.empty() || out.tls();
  if (any_tls) {
    for (auto [key, value] :
         {std::pair{"certificate_chain", &out.certificate_chain},
          std::pair{"private_key", &out.private_key}, std::pair{"client_ca", &out.client_ca}}) {
      if (value->empty()) {
        problems.add(t.where(key), std::string("admin.") + key,
                     "is required for TLS on the admin endpoint (with the two others)");
      } else if (auto why = why_unreadable(*value); !why.empty()) {
        problems.add(t.where(key), std::string("admin.") + key, cannot_read(*value, why));
      }
    }
  }
  if (!out.tls()) {
    for (const auto& endpoint : out.listen) {
      if (!endpoint.loopback()) {
        problems.add(t.where("listen"), "admin.listen",
                     endpoint.text() +
                         " is not a loopback address: set admin.certificate_chain, "
                         "admin.private_key and admin.client_ca to serve it over TLS with "
                         "client certificates");
      }
    }
  }

  t.strings("provisioning_writers", out.provisioning_writers);
  for (auto& writer : out.provisioning_writers) {
    std::string key = protocol::ascii_lower(writer);
    if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos) {
      problems.add(t.where("provisioning_writers"), "admin.provisioning_writers",
                   "'" + writer +
                       "' is not a certificate's spki-sha256 (64 hex digits, as mssgatectl "
                       "certificate show prints it)");
    }
    writer = std::move(key);
  }
  if (!out.provisioning_writers.empty() && !out.tls()) {
    problems.add(t.where("provisioning_writers"), "admin.provisioning_writers",
                 "names client certificates, so it needs TLS on the admin endpoint "
                 "(admin.certificate_chain, admin.private_key and admin.client_ca)");
  }
  t.size("max_import_bytes", out.max_import_bytes, 1024, size_t{4} << 30);

  AutoconfigConfig& a = out.autoconfig;
  TableReader c(t.sub_table("autoconfig"), "admin.autoconfig", problems, base);
  c.strings("domains", a.domains);
  for (auto& domain : a.domains)
    domain = protocol::ascii_lower(domain);
  c.string("display_name", a.display_name);
  c.string("imap_host", a.imap_host);
  c.integer("imap_port", a.imap_port, 1, 65535);
  c.string("smtp_host", a.smtp_host);
  c.integer("smtp_port", a.smtp_port, 1, 65535);
  if (a.enabled()) {
    if (a.imap_host.empty())
      problems.add(c.where("imap_host"), "admin.autoconfig.imap_host", "is required with domains");
    if (a.smtp_host.empty())
      problems.add(c.where("smtp_host"), "admin.autoconfig.smtp_host", "is required with domains");
    if (out.listen.empty())
      problems.add(c.where("domains"), "admin.autoconfig", "needs admin.listen");
  }
}

void read_proxy_protocol(TableReader& parent, ProxyProtocolConfig& out, Problems& problems,
                         const fs::path& base) {
  TableReader t(parent.sub_table("proxy_protocol"), "proxy_protocol", problems, base);
  t.strings("listeners", out.listeners);
  constexpr std::array<std::string_view, 6> kListeners{"imap",        "imaps", "submission",
                                                       "submissions", "lmtp",  "admin"};
  for (const auto& name : out.listeners) {
    if (std::find(kListeners.begin(), kListeners.end(), name) == kListeners.end()) {
      problems.add(t.where("listeners"), "proxy_protocol.listeners",
                   "unknown listener \"" + name +
                       "\" (known: imap, imaps, submission, submissions, lmtp, admin)");
    }
  }
  auto sources = read_ip_networks(t, "trusted_sources", out.trusted_sources, problems);
  if (!out.listeners.empty() && sources.empty()) {
    problems.add(t.where("trusted_sources"), "proxy_protocol.trusted_sources",
                 "is required with proxy_protocol.listeners: the addresses of the load balancers "
                 "that may send PROXY headers");
  }
  t.duration("header_timeout", out.header_timeout, 100ms, 1min);
  t.size("max_header_bytes", out.max_header_bytes, 64, 65535 - 16);
}

}  // namespace

bool ProxyProtocolConfig::expected_on(std::string_view name) const {
  return std::find(listeners.begin(), listeners.end(), name) != listeners.end();
}

bool ProxyProtocolConfig::trusted(const protocol::IpAddress& source) const {
  return std::any_of(trusted_sources.begin(), trusted_sources.end(),
                     [&](const protocol::IpNetwork& network) { return network.contains(source); });
}

bool Network::contains(bool address_v6, const std::array<uint8_t, 16>& address) const {
  if (address_v6 != v6) return false;
  unsigned whole = prefix / 8;
  for (unsigned i = 0; i < whole; ++i)
    if (address[i] != bytes[i]) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff00U >> rest);
  return (address[whole] & mask) == (bytes[whole] & mask);
}

std::string Network::text() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof buffer);
  return std::string(buffer) + "/" + std::to_string(prefix);
}

bool LimitsConfig::exempt(bool v6, const std::array<uint8_t, 16>& address) const {
  return std::any_of(exempt_networks.begin(), exempt_networks.end(),
                     [&](const Network& network) { return network.contains(v6, address); });
}

bool Endpoint::loopback() const {
  if (host == "::1") return true;
  return host.rfind("127.", 0) == 0;
}

bool LmtpConfig::peer_allowed(const protocol::IpAddress& peer) const {
  if (allowed_peers.empty()) return peer.loopback();
  return std::any_of(allowed_peers.begin(), allowed_peers.end(),
                     [&](const protocol::IpNetwork& network) { return network.contains(peer); });
}

std::string Endpoint::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Config parse_config(const std::string& text, const std::string& path) {
  Problems problems{path, {}};
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << path << ':' << e.source().begin.line << ':' << e.source().begin.column << ": "
        << e.description();
    throw ConfigError(out.str());
  }
  Config config;
  config.source_path = path;
  fs::path base = fs::absolute(fs::path(path)).parent_path();
  {
    TableReader top(&root, "", problems, base);
    read_server(top, config.server, problems, base);
    read_tls(top, config.tls, problems, base);
    read_imap(top, config.imap, problems, base);
    read_smtp(top, config.smtp, problems, base);
    read_psc(top, config.psc, problems, base);
    read_storage(top, config.storage, problems, base);
    read_directory(top, config.directory, problems, base, config.storage);
    read_auth(top, config.auth, problems, base);
    read_lmtp(top, config.lmtp, problems, base);
    read_limits(top, config.limits, problems, base);
    read_indicators(top, config.indicators, problems, base, config.storage);
    if (config.indicators.in_postgresql && config.server.instance.empty()) {
      problems.add_global("server.instance",
                          "is required with the indicator journal in PostgreSQL: each gateway "
                          "keeps its deliveries under way and its log's place under its own name "
                          "(such as \"gw-1\")");
    }
    read_admin(top, config.admin, problems, base);
    read_proxy_protocol(top, config.proxy_protocol, problems, base);
  }
  if (!problems.lines.empty()) {
    std::string all;
    for (const auto& line : problems.lines)
      all += line + "\n";
    all.pop_back();
    throw ConfigError(all);
  }
  return config;
}

std::vector<ConfigWarning> config_warnings(const Config& config) {
  std::vector<ConfigWarning> warnings;
  const auto& clients = config.psc.allowed_clients;
  if (!config.psc.enabled()) return warnings;
  if (clients.empty()) {
    warnings.push_back({"psc.allowed_clients",
                        "is empty: every Pro Sante Connect token will be refused; list the "
                        "client ids (azp) of the LPS allowed to sign in"});
  } else if (std::find(clients.begin(), clients.end(), "*") != clients.end()) {
    warnings.push_back({"psc.allowed_clients",
                        "has \"*\": a token issued to any PSC client is accepted, not only to "
                        "the LPS you know"});
  }
  return warnings;
}

std::vector<std::string> keep_restart_only_settings(const Config& running, Config& next) {
  std::vector<std::string> changed;
  auto keep = [&](const char* key, auto& next_value, const auto& running_value) {
    if (next_value != running_value) {
      changed.emplace_back(key);
      next_value = running_value;
    }
  };
  keep("server.io_threads", next.server.io_threads, running.server.io_threads);
  keep("server.io_stall_timeout", next.server.io_stall_timeout, running.server.io_stall_timeout);
  keep("server.return_freed_memory", next.server.return_freed_memory,
       running.server.return_freed_memory);
  keep("imap.starttls_listen", next.imap.starttls_listen, running.imap.starttls_listen);
  keep("imap.tls_listen", next.imap.tls_listen, running.imap.tls_listen);
  keep("smtp.starttls_listen", next.smtp.starttls_listen, running.smtp.starttls_listen);
  keep("smtp.tls_listen", next.smtp.tls_listen, running.smtp.tls_listen);
  keep("lmtp.listen", next.lmtp.listen, running.lmtp.listen);
  keep("indicators.journal", next.indicators.journal, running.indicators.journal);
  keep("indicators.enabled", next.indicators.in_postgresql, running.indicators.in_postgresql);
  keep("indicators.log", next.indicators.log, running.indicators.log);
  keep("indicators.inspection_threads", next.indicators.inspection_threads,
       running.indicators.inspection_threads);
  keep("indicators.inspection_memory", next.indicators.inspection_memory,
       running.indicators.inspection_memory);
  keep("admin.listen", next.admin.listen, running.admin.listen);
  keep("admin.certificate_chain", next.admin.certificate_chain, running.admin.certificate_chain);
  keep("admin.private_key", next.admin.private_key, running.admin.private_key);
  keep("admin.client_ca", next.admin.client_ca, running.admin.client_ca);
  return changed;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string why = why_unreadable(path);
    throw ConfigError(path + ": cannot open the configuration file" +
                      (why.empty() ? "" : ": " + why));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

}  // namespace mssgate::config
