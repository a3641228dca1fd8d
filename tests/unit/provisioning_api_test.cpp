// The provisioning API (daemon/services/provisioning_api.hpp) against a real SQLite directory:
// each resource created, read, listed a page at a time, replaced and deleted; every refusal a
// problem document with its status; the bulk import and export as mssgatectl's.
#include "daemon/services/provisioning_api.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/services/console_assets.hpp"
#include "storage/directory_file.hpp"
#include "storage/directory_store.hpp"

using namespace mssgate;
using daemon::AdminResponse;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::string_view kWriterKey =
    "1111111111111111111111111111111111111111111111111111111111111111";

class ProvisioningApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() /
            ("mssgate-provisioning-test-" + std::to_string(::getpid()) + ".db");
    fs::remove(path_);
    store_ = storage::open_sqlite_directory(path_.string());
    writer_.may_write = true;
    writer_.spki_sha256 = kWriterKey;
    writer_.subject = "CN=provisioning,O=Operateur";
    writer_.address = "127.0.0.1";
    reader_.address = "127.0.0.1";
  }
  void TearDown() override {
    store_.reset();
    fs::remove(path_);
    fs::remove(path_.string() + "-wal");
    fs::remove(path_.string() + "-shm");
  }

  AdminResponse call(std::string_view method, std::string_view target, std::string_view body = {},
                     std::string_view content_type = "application/json",
                     const daemon::ProvisioningClient* client = nullptr) {
    daemon::ProvisioningRequest request;
    request.method = method;
    request.target = target;
    request.body = body;
    request.content_type = body.empty() ? std::string_view() : content_type;
    request.client = client ? *client : writer_;
    AdminResponse answer = daemon::handle_provisioning(request, *store_);
    // Every refusal is an RFC 9457 problem document whose status is the answer's.
    EXPECT_NE(answer.status, 500u) << target;
    if (answer.status >= 400) {
      EXPECT_EQ(answer.content_type, "application/problem+json") << answer.body;
      json::object problem = json::parse(answer.body).as_object();
      EXPECT_EQ(problem.at("status").as_int64(), answer.status);
      EXPECT_TRUE(problem.at("type").as_string().starts_with("/api/problems/"));
      EXPECT_FALSE(problem.at("title").as_string().empty());
      EXPECT_FALSE(problem.at("detail").as_string().empty());
    }
    return answer;
  }

  static std::string problem_type(const AdminResponse& answer) {
    return std::string(json::parse(answer.body).as_object().at("type").as_string());
  }
  static json::object object_of(const AdminResponse& answer) {
    return json::parse(answer.body).as_object();
  }

  fs::path path_;
  std::unique_ptr<storage::DirectoryStore> store_;
  daemon::ProvisioningClient writer_;
  daemon::ProvisioningClient reader_;
};

TEST_F(ProvisioningApiTest, AMailboxIsCreatedReadReplacedAndDeleted) {
  auto created = call("POST", "/api/directory/mailboxes",
                      R"({"mailbox": "App.Hopital@Test.fr", "type": "app"})");
  ASSERT_EQ(created.status, 201u) << created.body;
  // Normalised as an imported row is, and named by its Location.
  EXPECT_EQ(
      object_of(created),
      (json::object{{"mailbox", "app.hopital@test.fr"}, {"type", "APP"}, {"status", "active"}}));
  ASSERT_EQ(created.headers.size(), 1u);
  EXPECT_EQ(created.headers[0].first, "Location");
  EXPECT_EQ(created.headers[0].second, "/api/directory/mailboxes/app.hopital@test.fr");
  auto stored = store_->find_mailbox("app.hopital@test.fr");
  ASSERT_TRUE(stored.value);
  EXPECT_EQ(stored.value->type, protocol::MailboxType::kApp);

  auto read = call("GET", "/api/directory/mailboxes/app.hopital%40test.fr");
  EXPECT_EQ(read.status, 200u);
  EXPECT_EQ(object_of(read).at("type"), "APP");

  auto again = call("POST", "/api/directory/mailboxes",
                    R"({"mailbox": "app.hopital@test.fr", "type": "APP"})");
  EXPECT_EQ(again.status, 409u);
  EXPECT_EQ(problem_type(again), "/api/problems/already-exists");

  auto suspended = call("PUT", "/api/directory/mailboxes/app.hopital@test.fr",
                        R"({"type": "APP", "status": "suspended"})");
  EXPECT_EQ(suspended.status, 200u) << suspended.body;
  EXPECT_EQ(store_->find_mailbox("app.hopital@test.fr").value->status,
            protocol::MailboxStatus::kSuspended);
  // The same PUT again changes nothing and says so with 200.
  EXPECT_EQ(call("PUT", "/api/directory/mailboxes/app.hopital@test.fr",
                 R"({"type": "APP", "status": "suspended"})")
                .status,
            200u);
  // A PUT of a mailbox not there creates it.
  auto put_new = call("PUT", "/api/directory/mailboxes/cabinet@test.fr", R"({"type": "CAB"})");
  EXPECT_EQ(put_new.status, 201u);

  EXPECT_EQ(call("DELETE", "/api/directory/mailboxes/app.hopital@test.fr").status, 204u);
  EXPECT_FALSE(store_->find_mailbox("app.hopital@test.fr").value);
  auto gone = call("GET", "/api/directory/mailboxes/app.hopital@test.fr");
  EXPECT_EQ(gone.status, 404u);
  EXPECT_EQ(problem_type(gone), "/api/problems/not-found");
  EXPECT_EQ(call("DELETE", "/api/directory/mailboxes/app.hopital@test.fr").status, 404u);
}

TEST_F(ProvisioningApiTest, EveryoneReadsButOnlyAWriterChanges) {
  store_->add_mailbox(
      {"dr.martin@test.fr", protocol::MailboxType::kPer, protocol::MailboxStatus::kActive});
  EXPECT_EQ(call("GET", "/api/directory/mailboxes", {}, {}, &reader_).status, 200u);
  for (auto [method, target] : {std::pair{"POST", "/api/directory/mailboxes"},
                                std::pair{"PUT", "/api/directory/mailboxes/dr.martin@test.fr"},
                                std::pair{"DELETE", "/api/directory/mailboxes/dr.martin@test.fr"},
                                std::pair{"POST", "/api/directory/import"}}) {
    auto refused = call(method, target, R"({"type": "PER"})", "application/json", &reader_);
    EXPECT_EQ(refused.status, 403u) << method << " " << target;
    EXPECT_EQ(problem_type(refused), "/api/problems/write-forbidden");
    EXPECT_NE(refused.body.find("admin.provisioning_writers"), std::string::npos);
  }
  // A certificate that is not a writer's is named in the refusal.
  daemon::ProvisioningClient other = reader_;
  other.spki_sha256 = std::string(64, '2');
  auto refused = call("DELETE", "/api/directory/mailboxes/dr.martin@test.fr", {}, {}, &other);
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.body.find(std::string(64, '2')), std::string::npos);
  EXPECT_TRUE(store_->find_mailbox("dr.martin@test.fr").value);
}

TEST_F(ProvisioningApiTest, BadContentIsRefusedWithWhatIsWrongAndNothingChanges) {
  struct Case {
    std::string_view method, target, body, content_type;
    unsigned status;
    std::string_view type, says;
  };
  const Case cases[] = {
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "not an address", "type": "APP"})",
       "application/json", 422, "invalid-rows", "is not a mailbox address"},
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr", "type": "BAL"})",
       "application/json", 422, "invalid-rows", "unknown type 'BAL'"},
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr"})", "application/json", 422,
       "invalid-rows", "needs 'type'"},
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr", "type": "APP", "x": "1"})",
       "application/json", 422, "invalid-rows", "has no field 'x'"},
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr", "type": 3})",
       "application/json", 422, "invalid-rows", ""},
      {"POST", "/api/directory/mailboxes", R"({"kind": "holder", "holder": "810001234567"})",
       "application/json", 422, "invalid-rows", "the path says it"},
      {"PUT", "/api/directory/mailboxes/a@test.fr", R"({"mailbox": "b@test.fr", "type": "APP"})",
       "application/json", 422, "invalid-rows", "differs from the path's"},
      {"POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr", "type": "APP")",
       "application/json", 400, "bad-request", "not JSON"},
      {"POST", "/api/directory/mailboxes", R"(["a@test.fr"])", "application/json", 400,
       "bad-request", "not a JSON object"},
      {"POST", "/api/directory/mailboxes", "", "application/json", 400, "bad-request", "empty"},
      {"POST", "/api/directory/mailboxes", "mailbox=a@test.fr&type=APP",
       "application/x-www-form-urlencoded", 415, "unsupported-media-type", "application/json"},
      {"POST", "/api/directory/holders", R"({"holder": "12"})", "application/json", 422,
       "invalid-rows", "is not an idNat"},
      {"POST", "/api/directory/bindings",
       R"({"mailbox": "a@test.fr", "match": "spki-sha256", "value": "abc"})", "application/json",
       422, "invalid-rows", "64 hex digits"},
      {"PATCH", "/api/directory/mailboxes/a@test.fr", R"({"type": "APP"})", "application/json", 405,
       "method-not-allowed", "GET, HEAD, PUT, DELETE"},
      {"GET", "/api/directory/mailboxes/a%zz", "", "", 400, "bad-request", "hex digits"},
      {"GET", "/api/directory/senders/a@test.fr", "", "", 404, "not-found", "2 path segments"},
      {"GET", "/api/directory/nothing", "", "", 404, "not-found", "mailboxes, senders"},
      {"GET", "/api/directory/mailboxes?limit=0", "", "", 400, "bad-request", "limit"},
      {"GET", "/api/directory/mailboxes?limit=1001", "", "", 400, "bad-request", "limit"},
      {"GET", "/api/directory/mailboxes?limit=ten", "", "", 400, "bad-request", "limit"},
      {"GET", "/api/directory/mailboxes?after=zz", "", "", 400, "bad-request", "next"},
      {"GET", "/api/directory/senders?after=61", "", "", 400, "bad-request", "next"},
      {"GET", "/api/directory/holders?mailbox=a@test.fr", "", "", 400, "bad-request",
       "not filtered by mailbox"},
      {"GET", "/api/directory/bindings?mailbox=nope", "", "", 400, "bad-request", "not a mailbox"},
  };
  for (const auto& c : cases) {
    auto answer = call(c.method, c.target, c.body, c.content_type);
    EXPECT_EQ(answer.status, c.status) << c.method << " " << c.target << " " << c.body << "\n"
                                       << answer.body;
    if (answer.status < 400) continue;
    EXPECT_EQ(problem_type(answer), "/api/problems/" + std::string(c.type)) << answer.body;
    EXPECT_NE(answer.body.find(c.says), std::string::npos) << answer.body;
  }
  EXPECT_TRUE(store_->read_whole() == storage::DirectoryContents{});
}

TEST_F(ProvisioningApiTest, RowsThatNameWhatIsNotThereConflict) {
  auto sender = call("POST", "/api/directory/senders",
                     R"({"mailbox": "dr.martin@test.fr", "sender": "secretariat@test.fr"})");
  EXPECT_EQ(sender.status, 409u);
  EXPECT_EQ(problem_type(sender), "/api/problems/missing-reference");
  EXPECT_NE(sender.body.find("no mailbox dr.martin@test.fr"), std::string::npos);
  ASSERT_EQ(
      call("POST", "/api/directory/mailboxes", R"({"mailbox": "dr.martin@test.fr", "type": "PER"})")
          .status,
      201u);
  auto attachment = call("PUT", "/api/directory/attachments/810001234567/dr.martin@test.fr",
                         R"({"role": "owner"})");
  EXPECT_EQ(attachment.status, 409u);
  EXPECT_NE(attachment.body.find("no holder 810001234567"), std::string::npos);
  EXPECT_EQ(call("POST", "/api/directory/holders", R"({"holder": "10001234567", "label": "Dr M"})")
                .status,
            201u);
  // An RPPS number is taken as its idNat, as in an imported file.
  EXPECT_EQ(store_->list_holders(), (std::vector<storage::Holder>{{"810001234567", "Dr M"}}));
  auto attached = call("PUT", "/api/directory/attachments/810001234567/dr.martin@test.fr",
                       R"({"role": "owner"})");
  EXPECT_EQ(attached.status, 201u) << attached.body;
  EXPECT_EQ(store_->holder_role("810001234567", "dr.martin@test.fr").value,
            storage::HolderRole::kOwner);
  EXPECT_EQ(call("PUT", "/api/directory/attachments/810001234567/dr.martin@test.fr",
                 R"({"role": "delegate"})")
                .status,
            200u);
  EXPECT_EQ(store_->holder_role("810001234567", "dr.martin@test.fr").value,
            storage::HolderRole::kDelegate);
  EXPECT_EQ(call("POST", "/api/directory/senders",
                 R"({"mailbox": "dr.martin@test.fr", "sender": "secretariat@test.fr"})")
                .status,
            201u);
  EXPECT_EQ(store_->allowed_senders("dr.martin@test.fr").value,
            (std::vector<std::string>{"secretariat@test.fr"}));
  // A PUT of a sender needs no body: its path says it all.
  EXPECT_EQ(call("PUT", "/api/directory/senders/dr.martin@test.fr/accueil@test.fr").status, 201u);
  EXPECT_EQ(call("PUT", "/api/directory/senders/dr.martin@test.fr/accueil@test.fr").status, 200u);
  EXPECT_EQ(store_->allowed_senders("dr.martin@test.fr").value,
            (std::vector<std::string>{"accueil@test.fr", "secretariat@test.fr"}));
  // A PUT of a mailbox with no body lacks its type.
  EXPECT_EQ(call("PUT", "/api/directory/mailboxes/dr.martin@test.fr").status, 422u);
  // Deleting the holder takes its attachments; deleting the mailbox its senders.
  EXPECT_EQ(call("DELETE", "/api/directory/holders/810001234567").status, 204u);
  EXPECT_TRUE(store_->list_attachments().empty());
  EXPECT_EQ(call("DELETE", "/api/directory/mailboxes/dr.martin@test.fr").status, 204u);
  EXPECT_TRUE(store_->list_senders().empty());
}

TEST_F(ProvisioningApiTest, BindingsAreNamedByTheirEncodedValue) {
  ASSERT_EQ(call("POST", "/api/directory/mailboxes",
                 R"({"mailbox": "app.hopital@test.fr", "type": "APP"})")
                .status,
            201u);
  auto bound = call("POST", "/api/directory/bindings",
                    R"({"mailbox": "app.hopital@test.fr", "match": "issuer-serial",
                        "value": "CN=AC IGC-SANTE ORGANISATIONS,O=ASIP-SANTE,C=FR|0a1b",
                        "label": "LPS hopital"})");
  ASSERT_EQ(bound.status, 201u) << bound.body;
  std::string location = bound.headers.at(0).second;
  EXPECT_EQ(location,
            "/api/directory/bindings/app.hopital@test.fr/issuer-serial/"
            "CN%3DAC%20IGC-SANTE%20ORGANISATIONS%2CO%3DASIP-SANTE%2CC%3DFR%7CA1B");
  auto read = call("GET", location);
  ASSERT_EQ(read.status, 200u);
  EXPECT_EQ(object_of(read).at("label"), "LPS hopital");
  auto relabelled = call("PUT", location, R"({"label": "LPS hopital, radiologie"})");
  EXPECT_EQ(relabelled.status, 200u) << relabelled.body;
  EXPECT_EQ(store_->list_certificate_bindings().at(0).label, "LPS hopital, radiologie");
  auto listed = call("GET", "/api/directory/bindings?mailbox=APP.hopital@test.fr");
  EXPECT_EQ(object_of(listed).at("items").as_array().size(), 1u);
  EXPECT_TRUE(object_of(call("GET", "/api/directory/bindings?mailbox=other@test.fr"))
                  .at("items")
                  .as_array()
                  .empty());
  EXPECT_EQ(call("DELETE", location).status, 204u);
  EXPECT_TRUE(store_->list_certificate_bindings().empty());
}

TEST_F(ProvisioningApiTest, ListsComeAPageAtATimeInKeyOrder) {
  storage::DirectoryChanges changes;
  std::set<std::string> expected;
  for (int i = 0; i < 250; ++i) {
    std::string address = "app." + std::to_string(1000 + (i * 37) % 250) + "@test.fr";
    changes.mailboxes.added.push_back(
        {address, protocol::MailboxType::kApp, protocol::MailboxStatus::kActive});
    expected.insert(address);
  }
  store_->apply_changes(changes);
  std::vector<std::string> seen;
  std::string next;
  int pages = 0;
  do {
    std::string target = "/api/directory/mailboxes?limit=100";
    if (!next.empty()) target += "&after=" + next;
    json::object page = object_of(call("GET", target));
    for (const auto& item : page.at("items").as_array())
      seen.emplace_back(item.as_object().at("mailbox").as_string());
    next = page.contains("next") ? std::string(page.at("next").as_string()) : "";
    ++pages;
  } while (!next.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(expected.begin(), expected.end()));
  // A page that ends exactly at the last row says there is no next one.
  json::object all = object_of(call("GET", "/api/directory/mailboxes?limit=250"));
  EXPECT_EQ(all.at("items").as_array().size(), 250u);
  EXPECT_FALSE(all.contains("next"));
}

TEST_F(ProvisioningApiTest, TheBulkImportIsMssgatectlsAllOrNothing) {
  const std::string file =
      "kind,mailbox,type,status,holder,role,label\n"
      "mailbox,dr.martin@test.fr,PER,active,,,\n"
      "mailbox,cabinet@test.fr,CAB,active,,,\n"
      "holder,,,,810001234567,,Dr Martin\n"
      "attachment,dr.martin@test.fr,,,810001234567,owner,\n";
  auto dry = call("POST", "/api/directory/import?dry_run=true", file, "text/csv");
  ASSERT_EQ(dry.status, 200u) << dry.body;
  EXPECT_EQ(object_of(dry).at("change_count").as_int64(), 4);
  EXPECT_TRUE(store_->read_whole() == storage::DirectoryContents{});

  auto imported = call("POST", "/api/directory/import", file, "text/csv; charset=utf-8");
  ASSERT_EQ(imported.status, 200u) << imported.body;
  EXPECT_EQ(object_of(imported).at("counts").at("mailboxes").at("added").as_int64(), 2);
  EXPECT_EQ(store_->list_mailboxes().size(), 2u);

  // Bad rows: each named by its line, and nothing changed.
  auto bad = call("POST", "/api/directory/import",
                  "{\"kind\":\"mailbox\",\"mailbox\":\"x@test.fr\",\"type\":\"APP\"}\n"
                  "{\"kind\":\"mailbox\",\"mailbox\":\"y@test.fr\",\"type\":\"BAL\"}\n"
                  "{\"kind\":\"sender\",\"mailbox\":\"nobody@test.fr\",\"sender\":\"a@test.fr\"}\n",
                  "application/jsonl");
  ASSERT_EQ(bad.status, 422u);
  json::object problem = object_of(bad);
  EXPECT_EQ(problem.at("errors").as_array().at(0).at("line").as_int64(), 2);
  EXPECT_FALSE(store_->find_mailbox("x@test.fr").value);
  auto unknown =
      call("POST", "/api/directory/import",
           "{\"kind\":\"sender\",\"mailbox\":\"nobody@test.fr\",\"sender\":\"a@test.fr\"}\n",
           "application/x-ndjson");
  ASSERT_EQ(unknown.status, 422u);
  EXPECT_EQ(object_of(unknown).at("errors").as_array().at(0).at("line").as_int64(), 1);

  // A sync makes the directory the file: the mailbox it lacks is removed, as asked.
  auto synced = call("POST", "/api/directory/import?sync=true&absent=remove",
                     "kind,mailbox,type\nmailbox,dr.martin@test.fr,PER\n", "text/csv");
  ASSERT_EQ(synced.status, 200u) << synced.body;
  EXPECT_EQ(store_->list_mailboxes().size(), 1u);
  EXPECT_TRUE(store_->list_holders().empty());

  EXPECT_EQ(call("POST", "/api/directory/import", file, "text/plain").status, 415u);
  EXPECT_EQ(call("POST", "/api/directory/import?format=csv", file, "text/plain").status, 200u);
  EXPECT_EQ(call("POST", "/api/directory/import?absent=remove", file, "text/csv").status, 400u);
  EXPECT_EQ(call("POST", "/api/directory/import?sync=maybe", file, "text/csv").status, 400u);
  EXPECT_EQ(call("GET", "/api/directory/import").status, 405u);
}

TEST_F(ProvisioningApiTest, TheExportIsTheFileMssgatectlWrites) {
  ASSERT_EQ(call("POST", "/api/directory/import",
                 "kind,mailbox,type,sender\nmailbox,a@test.fr,APP,\nsender,a@test.fr,,b@test.fr\n",
                 "text/csv")
                .status,
            200u);
  for (auto format :
       {storage::DirectoryFileFormat::kCsv, storage::DirectoryFileFormat::kJsonLines}) {
    std::ostringstream expected;
    storage::write_directory_file(store_->read_whole(), format, expected);
    auto answer = call("GET", "/api/directory/export?format=" + std::string(to_string(format)));
    ASSERT_EQ(answer.status, 200u);
    EXPECT_EQ(answer.body, expected.str());
  }
  EXPECT_EQ(call("GET", "/api/directory/export?format=xml").status, 400u);
}

TEST_F(ProvisioningApiTest, ADirectoryThatFailsAnswers503NotAServerError) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE mailbox_sender", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  ASSERT_EQ(
      call("POST", "/api/directory/mailboxes", R"({"mailbox": "a@test.fr", "type": "APP"})").status,
      201u);
  auto failed = call("GET", "/api/directory/senders");
  EXPECT_EQ(failed.status, 503u);
  EXPECT_EQ(problem_type(failed), "/api/problems/directory-unavailable");
  EXPECT_EQ(
      call("POST", "/api/directory/senders", R"({"mailbox": "a@test.fr", "sender": "b@test.fr"})")
          .status,
      503u);
}

TEST(ProvisioningRoutes, TheApiTakesEveryMethodAndTheImportALargerBody) {
  using daemon::AdminRoute;
  EXPECT_EQ(daemon::admin_route("DELETE", "/api/directory/mailboxes/a@b.fr"),
            AdminRoute::kApiDirectory);
  EXPECT_EQ(daemon::admin_route("POST", "/api/directory"), AdminRoute::kApiDirectory);
  EXPECT_EQ(daemon::admin_route("POST", "/api/directoryx"), AdminRoute::kMethodNotAllowed);
  EXPECT_EQ(daemon::admin_route("GET", "/api/openapi.json"), AdminRoute::kApiOpenApi);
  EXPECT_EQ(daemon::admin_route("POST", "/api/openapi.json"), AdminRoute::kMethodNotAllowed);
  EXPECT_EQ(daemon::provisioning_body_limit("/api/directory/import?sync=true", 1 << 30), 1u << 30);
  EXPECT_EQ(daemon::provisioning_body_limit("/api/directory/mailboxes", 1 << 30),
            daemon::kAdminBodyBytes);
  EXPECT_EQ(daemon::provisioning_body_limit("/metrics", 1 << 30), daemon::kAdminBodyBytes);
}

}  // namespace

TEST(OpenApiDocument, TheServedDocumentIsTheOneInDocsAndDescribesEveryRoute) {
  std::ifstream file(std::string(MSSGATE_SOURCE_DIR) + "/docs/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  ASSERT_EQ(daemon::openapi_document(), text.str());
  json::object document = json::parse(daemon::openapi_document()).as_object();
  EXPECT_EQ(document.at("openapi"), "3.1.0");
  const json::object& paths = document.at("paths").as_object();
  for (std::string_view path :
       {"/api/directory", "/api/directory/mailboxes", "/api/directory/mailboxes/{mailbox}",
        "/api/directory/senders", "/api/directory/senders/{mailbox}/{sender}",
        "/api/directory/holders", "/api/directory/holders/{holder}", "/api/directory/attachments",
        "/api/directory/attachments/{holder}/{mailbox}", "/api/directory/bindings",
        "/api/directory/bindings/{mailbox}/{match}/{value}", "/api/directory/import",
        "/api/directory/export"})
    EXPECT_TRUE(paths.contains(path)) << path;
  EXPECT_EQ(paths.size(), 13u);
}
