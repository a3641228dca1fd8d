#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "protocol/jwt.hpp"

namespace mssgate::daemon {

// Which tokens mssgate takes, beyond "Pro Santé Connect says it is valid": the LPS clients it
// was issued to, its audience, scope, type and how the professional authenticated. Pure logic:
// the same rules for an introspection answer and for the claims of a verified JWT.
struct TokenPolicy {
  // The azp / client_id values allowed; "*" allows any client, an empty list none.
  std::vector<std::string> allowed_clients;
  std::string required_audience;          // empty: aud not checked; else it must be one of aud
  std::string required_scope;             // empty: scope not checked; else one of its words
  std::vector<std::string> accepted_acr;  // empty: any; else acr must be one of them
  std::vector<std::string> accepted_amr;  // empty: any; else one of amr must be one of them
  std::vector<std::string> token_types;   // empty: any; else typ must be one (any case)

  static TokenPolicy from(const config::PscConfig& psc);
  bool any_client() const;
};

// The first rule `claims` break, as a short word for the log ("type",
// "client_not_allowed", "audience", "scope", "acr", "amr"), or nullopt when they keep every one.
// The client is the token's azp and its client_id: each one present must be allowed, and a
// token naming neither is allowed only by "*".
std::optional<std::string_view> check_token_policy(const TokenPolicy& policy,
                                                   const protocol::TokenClaims& claims);

// The client a token was issued to, for the log: azp, else client_id.
std::string token_client(const protocol::TokenClaims& claims);

// The cheap look at a token before anyone is asked about it: "too_long" over `max_bytes`, and
// for the "jwt" format "malformed" unless it is a signed compact JWS whose header and payload
// decode to JSON objects (the header naming its alg), "unsupported_algorithm" for alg "none".
// nullopt: worth asking the issuer.
std::optional<std::string_view> screen_token(std::string_view token, std::string_view format,
                                             size_t max_bytes);

}  // namespace mssgate::daemon
