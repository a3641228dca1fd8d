#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace mssgate::daemon {

// What the admin endpoint answers, apart from the transport.

struct AdminResponse {
  AdminResponse() = default;
  AdminResponse(unsigned status_code, std::string type, std::string text,
                std::vector<std::pair<std::string, std::string>> more_headers = {})
      : status(status_code),
        content_type(std::move(type)),
        body(std::move(text)),
        headers(std::move(more_headers)) {}

  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more fields, as name and value
};

// The Thunderbird-style autoconfiguration document for `email_address` (the decoded
// `emailaddress` query parameter): the API LPS endpoints, STARTTLS, OAuth2 (Pro Santé Connect)
// and client certificates. 404 for a domain not in `autoconfig.domains`, 400 for something
// that is not an address.
AdminResponse autoconfig_document(const config::AutoconfigConfig& autoconfig,
                                  std::string_view email_address);

// What a request asks for, from its method and its target ("/path?query"): the path alone
// decides, the query is the autoconfiguration's.
enum class AdminRoute {
  kMethodNotAllowed,
  kMetrics,
  kHealth,
  kReady,
  kAutoconfig,
  kConsole,        // /console: the page
  kConsoleFile,    // /console/console.js, /console/console.css
  kApiStatus,      // /api/status
  kApiIndicators,  // /api/indicators?month=YYYY-MM
  kApiExport,      // /api/export?month=YYYY-MM&kind=...&format=csv|json
  kApiOpenApi,     // /api/openapi.json: the provisioning API's description
  kApiDirectory,   // /api/directory...: the provisioning API (provisioning_api.hpp), any method
  kNotFound
};
AdminRoute admin_route(std::string_view method, std::string_view target);

// How much of a request the admin server reads. A request whose header section (request line,
// fields, blank line) is over kAdminHeaderBytes is refused (431), however TCP cuts it. Beast's
// header_limit alone does not say that: its parser takes the request line and whole fields
// from the first read, and applies the limit to what is left, so a longer header section that
// arrives in one read passed where the same bytes in pieces were refused. The server counts
// the bytes the parser took for the header instead, and its read buffer (kAdminHeaderBytes)
// bounds what it holds meanwhile; Beast's own limit is set above both, so that it never decides.
constexpr size_t kAdminHeaderBytes = 8192;
constexpr size_t kAdminParserHeaderLimit = 2 * kAdminHeaderBytes;
// The body of a request, but for the provisioning API's bulk import (admin.max_import_bytes).
constexpr size_t kAdminBodyBytes = 65536;
// A chunked body is refused (411) once the header is read, before any of it: Beast's parser of
// chunk extensions, fed a few bytes at a time, spends time that grows fast with their length
// (the admin_http fuzz target met a 6.8 KB request that took seconds when cut in small pieces),
// and a client of the admin endpoint can always give a Content-Length (curl does for -d and
// --data-binary).
constexpr bool kAdminTakesChunkedBodies = false;

// Whether `target` is the provisioning API's (/api/directory and below, provisioning_api.hpp),
// whose routes take other methods than GET and HEAD.
bool is_provisioning_target(std::string_view target);

// The largest body the server reads for a request to `target`: the provisioning API's bulk
// import takes `max_import_bytes`, every other route kAdminBodyBytes. A request whose
// Content-Length is over it is refused (413) once its header is read, before any of its body.
size_t provisioning_body_limit(std::string_view target, size_t max_import_bytes);

// Whether an Expect header's value asks for "100 Continue" before the body is sent (RFC 9110
// section 10.1.1: the one expectation defined, compared case-insensitively).
bool expects_continue(std::string_view expect);

// The value of one query parameter of a request target ("/path?a=1&b=2"), percent-decoded;
// empty when absent.
std::string query_parameter(std::string_view target, std::string_view name);

// One readiness check and its outcome.
struct ReadinessCheck {
  std::string name;  // imap_backend, submission_backend, lmtp_backend, issuer, serving
  bool ok = false;
  std::string detail;  // the address, or why not
};

// 200 "ready" or 503 "not ready", then one line per check.
AdminResponse readiness_document(const std::vector<ReadinessCheck>& checks);

}  // namespace mssgate::daemon
