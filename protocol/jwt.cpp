#include "protocol/jwt.hpp"

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>

#include "protocol/base64.hpp"

namespace mssgate::protocol {
namespace {

namespace json = boost::json;

constexpr size_t kMaxTokenBytes = 16384;
constexpr size_t kMaxJsonBytes = 1 << 20;

std::optional<json::object> parse_object(std::string_view text) {
  if (text.size() > kMaxJsonBytes) return std::nullopt;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return value.as_object();
}

const json::string* string_member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? &it->value().as_string() : nullptr;
}

// The field of `claims` that holds the string claim `key`, if it has one.
std::string* string_claim(TokenClaims& claims, std::string_view key) {
  if (key == "iss") return &claims.iss;
  if (key == "sub") return &claims.sub;
  if (key == "azp") return &claims.azp;
  if (key == "client_id") return &claims.client_id;
  if (key == "jti") return &claims.jti;
  if (key == "typ") return &claims.typ;
  if (key == "scope") return &claims.scope;
  if (key == "acr") return &claims.acr;
  return nullptr;
}

// An array of strings, or (when `single_allowed`) one string; nullopt for anything else.
std::optional<std::vector<std::string>> string_list(const json::value& value, bool single_allowed) {
  std::vector<std::string> out;
  if (single_allowed && value.is_string()) {
    out.emplace_back(value.as_string());
    return out;
  }
  if (!value.is_array()) return std::nullopt;
  for (const auto& element : value.as_array()) {
    if (!element.is_string()) return std::nullopt;
    out.emplace_back(element.as_string());
  }
  return out;
}

}  // namespace

// base64url (RFC 4648 §5) is base64 with two other characters and the padding left out: the
// strict base64 codec does the work.
std::optional<std::string> base64url_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);  // tolerated padding
  if (text.size() % 4 == 1) return std::nullopt;
  std::string standard;
  standard.reserve(text.size() + 3);
  for (char c : text) {
    if (c == '+' || c == '/') return std::nullopt;  // not in the URL alphabet
    standard += c == '-' ? '+' : c == '_' ? '/' : c;
  }
  standard.append((4 - standard.size() % 4) % 4, '=');
  return base64_decode(standard);
}

std::string base64url_encode(std::string_view bytes) {
  std::string out = base64_encode(bytes);
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (char& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<TokenClaims> parse_token_claims(std::string_view text) {
  auto object = parse_object(text);
  if (!object) return std::nullopt;
  TokenClaims claims;
  for (const auto& member : *object) {
    std::string_view key = member.key();
    const json::value& value = member.value();
    if (key == "exp" || key == "nbf" || key == "iat") {
      std::optional<int64_t> number;
      if (value.is_int64()) number = value.as_int64();
      if (value.is_uint64() && value.as_uint64() < (uint64_t{1} << 62))
        number = static_cast<int64_t>(value.as_uint64());
      // A double no int64 holds is refused, not converted (that is undefined behaviour).
      if (value.is_double() && std::fabs(value.as_double()) < 0x1p62)
        number = static_cast<int64_t>(value.as_double());
      if (!number) return std::nullopt;
      (key == "exp" ? claims.exp : key == "nbf" ? claims.nbf : claims.iat) = number;
    } else if (key == "active") {
      if (!value.is_bool()) return std::nullopt;
      claims.active = value.as_bool();
    } else if (key == "aud" || key == "amr") {
      auto list = string_list(value, key == "aud");
      if (!list) return std::nullopt;
      (key == "aud" ? claims.aud : claims.amr) = std::move(*list);
    } else if (value.is_string()) {
      std::string s(value.as_string());
      if (std::string* field = string_claim(claims, key)) *field = s;
      claims.strings[std::string(key)] = std::move(s);
    } else if (key != "jti" && string_claim(claims, key)) {
      return std::nullopt;  // a claim mssgate reads that is not a string
    }
  }
  return claims;
}

std::optional<Jwt> parse_jwt(std::string_view compact) {
  if (compact.size() > kMaxTokenBytes) return std::nullopt;
  size_t first = compact.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  auto header_text = base64url_decode(compact.substr(0, first));
  auto payload_text = base64url_decode(compact.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(compact.substr(second + 1));
  if (!header_text || !payload_text || !signature) return std::nullopt;
  auto header = parse_object(*header_text);
  auto claims = parse_token_claims(*payload_text);
  if (!header || !claims) return std::nullopt;
  Jwt jwt;
  if (auto* alg = string_member(*header, "alg")) jwt.alg = std::string(*alg);
  if (auto* kid = string_member(*header, "kid")) jwt.kid = std::string(*kid);
  if (jwt.alg.empty()) return std::nullopt;
  // A token that needs header processing we do not do (RFC 7515 §4.1.11) is refused.
  if (header->contains("crit")) return std::nullopt;
  jwt.signing_input = std::string(compact.substr(0, second));
  jwt.signature = std::move(*signature);
  jwt.claims = std::move(*claims);
  return jwt;
}

std::optional<std::vector<Jwk>> parse_jwks(std::string_view text) {
  auto object = parse_object(text);
  if (!object) return std::nullopt;
  auto keys = object->find("keys");
  if (keys == object->end() || !keys->value().is_array()) return std::nullopt;
  std::vector<Jwk> out;
  for (const auto& entry : keys->value().as_array()) {
    if (!entry.is_object()) continue;
    const auto& o = entry.as_object();
    Jwk key;
    auto text_of = [&](std::string_view name) {
      auto* s = string_member(o, name);
      return s ? std::string(*s) : std::string();
    };
    auto bytes_of = [&](std::string_view name) {
      return base64url_decode(text_of(name)).value_or("");
    };
    key.kty = text_of("kty");
    key.kid = text_of("kid");
    key.alg = text_of("alg");
    key.use = text_of("use");
    if (key.kty == "RSA") {
      key.n = bytes_of("n");
      key.e = bytes_of("e");
      if (key.n.empty() || key.e.empty()) continue;
    } else if (key.kty == "EC") {
      key.crv = text_of("crv");
      key.x = bytes_of("x");
      key.y = bytes_of("y");
      if (key.x.empty() || key.y.empty()) continue;
    } else {
      continue;
    }
    out.push_back(std::move(key));
  }
  return out;
}

}  // namespace mssgate::protocol
