#include "daemon/services/token_policy.hpp"

#include <algorithm>

#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool scope_has(std::string_view scope, std::string_view wanted) {
  while (!scope.empty()) {
    size_t space = scope.find(' ');
    if (scope.substr(0, space) == wanted) return true;
    if (space == std::string_view::npos) break;
    scope.remove_prefix(space + 1);
  }
  return false;
}

bool client_allowed(const TokenPolicy& policy, const protocol::TokenClaims& claims) {
  if (policy.any_client()) return true;
  if (claims.azp.empty() && claims.client_id.empty()) return false;
  for (const std::string* client : {&claims.azp, &claims.client_id}) {
    if (!client->empty() && !contains(policy.allowed_clients, *client)) return false;
  }
  return true;
}

bool type_accepted(const TokenPolicy& policy, std::string_view typ) {
  if (policy.token_types.empty()) return true;
  return std::any_of(policy.token_types.begin(), policy.token_types.end(),
                     [&](const std::string& type) { return protocol::ascii_iequals(type, typ); });
}

bool amr_accepted(const TokenPolicy& policy, const std::vector<std::string>& amr) {
  if (policy.accepted_amr.empty()) return true;
  return std::any_of(amr.begin(), amr.end(), [&](const std::string& method) {
    return contains(policy.accepted_amr, method);
  });
}

}  // namespace

TokenPolicy TokenPolicy::from(const config::PscConfig& psc) {
  return TokenPolicy{psc.allowed_clients, psc.required_audience, psc.required_scope,
                     psc.accepted_acr,    psc.accepted_amr,      psc.token_types};
}

bool TokenPolicy::any_client() const {
  return contains(allowed_clients, "*");
}

std::optional<std::string_view> check_token_policy(const TokenPolicy& policy,
                                                   const protocol::TokenClaims& claims) {
  if (!type_accepted(policy, claims.typ)) return "type";
  if (!client_allowed(policy, claims)) return "client_not_allowed";
  if (!policy.required_audience.empty() && !contains(claims.aud, policy.required_audience))
    return "audience";
  if (!policy.required_scope.empty() && !scope_has(claims.scope, policy.required_scope))
    return "scope";
  if (!policy.accepted_acr.empty() && !contains(policy.accepted_acr, claims.acr)) return "acr";
  if (!amr_accepted(policy, claims.amr)) return "amr";
  return std::nullopt;
}

std::string token_client(const protocol::TokenClaims& claims) {
  return claims.azp.empty() ? claims.client_id : claims.azp;
}

std::optional<std::string_view> screen_token(std::string_view token, std::string_view format,
                                             size_t max_bytes) {
  if (token.size() > max_bytes) return "too_long";
  if (format != "jwt") return std::nullopt;
  auto jwt = protocol::parse_jwt(token);
  if (!jwt) return "malformed";
  // An unsigned token is never one of PSC's (the same word as the JWT verifier's).
  if (protocol::ascii_iequals(jwt->alg, "none")) return "unsupported_algorithm";
  if (jwt->signature.empty()) return "malformed";
  return std::nullopt;
}

}  // namespace mssgate::daemon
