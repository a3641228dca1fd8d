#include "protocol/http_url.hpp"

namespace mssgate::protocol {

std::optional<HttpUrl> parse_http_url(std::string_view text) {
  HttpUrl url;
  if (text.starts_with("http://")) {
    text.remove_prefix(7);
    url.port = "80";
  } else if (text.starts_with("https://")) {
    text.remove_prefix(8);
    url.tls = true;
    url.port = "443";
  } else {
    return std::nullopt;
  }
  size_t slash = text.find('/');
  std::string_view authority = text.substr(0, slash);
  if (slash != std::string_view::npos) url.target = std::string(text.substr(slash));
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      url.port = std::string(rest.substr(1));
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      url.port = std::string(authority.substr(colon + 1));
      authority = authority.substr(0, colon);
    }
    url.host = std::string(authority);
  }
  if (url.host.empty() || url.port.empty()) return std::nullopt;
  return url;
}

}  // namespace mssgate::protocol
