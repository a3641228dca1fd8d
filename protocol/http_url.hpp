#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// An http:// or https:// URL, cut into what a client needs to connect and ask.
struct HttpUrl {
  bool tls = false;
  std::string host;  // a name or an address; IPv6 without its brackets
  std::string port;  // 80 or 443 unless given
  std::string target = "/";
};

// Reads "http[s]://host[:port][/target]" (host may be "[ipv6]"); nullopt for anything else.
std::optional<HttpUrl> parse_http_url(std::string_view url);

}  // namespace mssgate::protocol
