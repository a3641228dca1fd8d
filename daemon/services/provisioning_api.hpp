#pragma once
// The provisioning API of the admin endpoint (/api/directory/...): the directory's mailboxes,
// allowed senders, professionals, their attachments and certificate bindings as JSON
// resources, and the bulk import and sync of `mssgatectl directory import` (docs/openapi.json
// describes it, docs/operator-guide.md "Provisioning" explains it). Pure: a request's parts and
// a directory store in, an answer out; the admin server brings the bytes and runs it off the
// io threads, since every call is a query.

#include <cstddef>
#include <string>
#include <string_view>

#include "daemon/services/admin_documents.hpp"
#include "storage/directory_store.hpp"

namespace mssgate::daemon {

// Who sent a request, as the admin server knows it.
struct ProvisioningClient {
  // The client's certificate is in admin.provisioning_writers: it may change the directory.
  bool may_write = false;
  std::string spki_sha256;  // its certificate's key; empty on a plain loopback endpoint
  std::string subject;      // its certificate's subject (RFC 2253)
  std::string address;      // the peer's IP address
};

struct ProvisioningRequest {
  std::string_view method;
  std::string_view target;        // path and query, as sent
  std::string_view content_type;  // the Content-Type field; empty when absent
  std::string_view body;
  ProvisioningClient client;
};

// The most rows a list returns in one page (its `limit`), and by default.
constexpr size_t kMaxPageRows = 1000;
constexpr size_t kDefaultPageRows = 100;

// Answers one request. Never throws: a bad request is a problem document (RFC 9457) with 400,
// 403, 404, 405, 409, 411, 415 or 422; a directory that cannot be read or changed, 503. Each
// change is an audit event naming the client's certificate (`directory_changed`,
// `directory_imported`), and so is a refused write (`directory_change_refused`).
AdminResponse handle_provisioning(const ProvisioningRequest& request,
                                  storage::DirectoryStore& directory);

// The problem document an answer carries when the directory cannot be opened at all.
AdminResponse directory_unavailable(std::string_view why);

}  // namespace mssgate::daemon
