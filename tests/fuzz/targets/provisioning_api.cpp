// Fuzz target: a request to the provisioning API (daemon/services/provisioning_api) against a
// real SQLite directory in memory that holds one row of each kind. The input is the request:
//   line 1: METHOD TARGET          line 2: the Content-Type (may be empty)
//   then the body; an input that starts with '!' is sent by a client that may not write.
// Properties: never a server error, and never 503 from a directory that works; every refusal is
// an RFC 9457 document whose status is the answer's, every JSON answer parses; a read, a
// refusal or a client that may not write leaves the directory as it was; a change is a change.
#include "daemon/services/provisioning_api.hpp"

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/telemetry/event_log.hpp"
#include "storage/directory_store.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
namespace json = boost::json;
namespace storage = mssgate::storage;

std::unique_ptr<storage::DirectoryStore> fresh_directory() {
  auto store = storage::open_sqlite_directory(":memory:");
  storage::DirectoryChanges rows;
  rows.mailboxes.added = {{"app.hopital@test.fr", mssgate::protocol::MailboxType::kApp,
                           mssgate::protocol::MailboxStatus::kActive},
                          {"dr.martin@test.fr", mssgate::protocol::MailboxType::kPer,
                           mssgate::protocol::MailboxStatus::kSuspended}};
  rows.senders.added = {{"dr.martin@test.fr", "secretariat@test.fr"}};
  rows.holders.added = {{"810001234567", "Dr Martin"}};
  rows.attachments.added = {{"810001234567", "dr.martin@test.fr", storage::HolderRole::kOwner}};
  rows.bindings.added = {{storage::CertificateMatch::kIssuerSerial, "CN=ORG CA,O=TEST|1A2B",
                          "app.hopital@test.fr", "LPS"}};
  store->apply_changes(rows);
  return store;
}

std::string_view line_of(std::string_view& input) {
  size_t end = input.find('\n');
  std::string_view line = input.substr(0, end);
  input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
  return line;
}

bool parses(std::string_view text, json::value& out) {
  boost::system::error_code ec;
  out = json::parse(text, ec);
  return !ec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    // Audit events are written whatever the level: both logs go nowhere.
    mssgate::daemon::LogSettings settings;
    settings.level = "off";
    settings.file = "/dev/null";
    settings.audit_file = "/dev/null";
    mssgate::daemon::configure_logging(settings);
    return true;
  }();
  (void)quiet;
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::daemon::ProvisioningRequest request;
  request.client.address = "127.0.0.1";
  request.client.may_write = true;
  request.client.spki_sha256 = std::string(64, 'a');
  if (!input.empty() && input.front() == '!') {
    request.client.may_write = false;
    input.remove_prefix(1);
  }
  std::string_view first = line_of(input);
  size_t space = first.find(' ');
  request.method = first.substr(0, space);
  request.target = space == std::string_view::npos ? std::string_view() : first.substr(space + 1);
  // The admin server gives only its targets to the API.
  if (!mssgate::daemon::is_provisioning_target(request.target)) return 0;
  request.content_type = line_of(input);
  request.body = input;

  auto directory = fresh_directory();
  storage::DirectoryContents before = directory->read_whole();
  mssgate::daemon::AdminResponse answer = mssgate::daemon::handle_provisioning(request, *directory);
  storage::DirectoryContents after = directory->read_whole();

  check(answer.status != 500 && answer.status != 503,
        "provisioning_api: a working directory never makes a server error");
  bool reads = request.method == "GET" || request.method == "HEAD";
  if (answer.status >= 400) {
    check(answer.content_type == "application/problem+json",
          "provisioning_api: a refusal is a problem document");
    json::value problem;
    check(parses(answer.body, problem) && problem.is_object(),
          "provisioning_api: a problem document is a JSON object");
    const json::object& fields = problem.as_object();
    check(fields.contains("status") && fields.at("status").is_int64() &&
              fields.at("status").as_int64() == static_cast<int64_t>(answer.status),
          "provisioning_api: a problem's status is the answer's");
    for (std::string_view name : {"type", "title", "detail"})
      check(fields.contains(name) && fields.at(name).is_string(),
            "provisioning_api: a problem has its type, title and detail");
    check(fields.at("type").as_string().starts_with("/api/problems/"),
          "provisioning_api: a problem's type is one of the API's");
  } else if (answer.content_type == "application/json" && answer.status != 204) {
    json::value document;
    check(parses(answer.body, document), "provisioning_api: a JSON answer parses");
  }
  if (answer.status >= 400 || reads || !request.client.may_write)
    check(after == before, "provisioning_api: a read or a refusal changes nothing");
  if (answer.status == 201 || answer.status == 204)
    check(!(after == before), "provisioning_api: a creation or a deletion changes the directory");
  if (!request.client.may_write && !reads)
    check(answer.status >= 400, "provisioning_api: a client that may not write is refused");
  return 0;
}
