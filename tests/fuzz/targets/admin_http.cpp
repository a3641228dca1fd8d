// Fuzz target "admin_http": a request to the admin endpoint. Boost.Beast's request parser, with
// the admin server's limits, fed whole and in pieces (as TCP may cut it) must read the same
// request or refuse it the same way; then the server's own code: the route the method and
// target ask for, the percent-decoded `emailaddress` query parameter, and the autoconfiguration
// document made from it, which is always well-formed XML naming the address's domain and
// nothing the client wrote besides.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <pugixml.hpp>
#include <string>
#include <string_view>

#include "daemon/services/admin_documents.hpp"
#include "protocol/ascii.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

namespace http = boost::beast::http;
using mssgate::fuzz::check;

struct Parsed {
  // True when no request was read. Which error Beast gives a refused request may depend on the
  // cuts (a start line ending in a bare LF: "bad method" whole, "partial message" byte by
  // byte), and the server refuses both alike: only whether, and what, request was read is
  // compared.
  bool refused = false;
  std::string method;
  std::string target;
  unsigned version = 0;
  bool keep_alive = false;
  std::string body;
  bool operator==(const Parsed&) const = default;
};

// The request as the admin server reads it (its limits, its read buffer of kAdminHeaderBytes,
// the bytes its parser took for the header counted), the input arriving in the pieces `how`
// cuts.
Parsed parse(std::string_view input, size_t how) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(mssgate::daemon::kAdminParserHeaderLimit);
  const size_t max_import_bytes = mssgate::config::AdminConfig{}.max_import_bytes;
  parser.body_limit(boost::none);  // the target's limit is set once the header is read
  // The header first, on its own (the server's async_read_header), then the body eagerly.
  parser.eager(false);
  std::string buffer;
  boost::system::error_code ec;
  bool overflow = false;
  size_t header_bytes = 0;  // what the parser took before the header was done
  bool chunked = false;
  bool too_large = false;
  for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
    // A read takes what the buffer has room for, as Beast's read into a bounded buffer does.
    while (!piece.empty() && !parser.is_done() && !ec && !overflow && !chunked && !too_large) {
      size_t room = mssgate::daemon::kAdminHeaderBytes - buffer.size();
      if (room == 0) {
        overflow = true;
        break;
      }
      size_t take = std::min(room, piece.size());
      buffer.append(piece.substr(0, take));
      piece.remove_prefix(take);
      while (!buffer.empty() && !parser.is_done() && !ec) {
        bool header_done = parser.is_header_done();
        size_t used = parser.put(boost::asio::buffer(buffer.data(), buffer.size()), ec);
        if (!header_done) header_bytes += used;
        if (parser.is_header_done() && parser.chunked() &&
            !mssgate::daemon::kAdminTakesChunkedBodies) {
          chunked = true;  // refused with 411 before the body is read
          break;
        }
        if (parser.is_header_done() && !header_done) {
          // The server's body limit, chosen by the target once the header is read.
          const auto& target = parser.get().target();
          const size_t limit = mssgate::daemon::provisioning_body_limit(
              {target.data(), target.size()}, max_import_bytes);
          if (parser.content_length().value_or(0) > limit) {
            too_large = true;  // refused with 413 before the body is read
            break;
          }
          parser.body_limit(limit);
        }
        if (parser.is_header_done()) parser.eager(true);
        buffer.erase(0, used);
        if (ec == http::error::need_more) {
          ec = {};
          break;
        }
      }
    }
    if (parser.is_done() || ec || overflow || chunked || too_large) break;
  }
  if (overflow || chunked || too_large || header_bytes > mssgate::daemon::kAdminHeaderBytes) {
    Parsed refusal;
    refusal.refused = true;
    return refusal;
  }
  if (!parser.is_done() && !ec) parser.put_eof(ec);
  Parsed out;
  if (ec || !parser.is_done()) {
    out.refused = true;
    return out;
  }
  const auto& request = parser.get();
  out.method = std::string(request.method_string());
  out.target = std::string(request.target());
  out.version = request.version();
  out.keep_alive = request.keep_alive();
  out.body = request.body();
  return out;
}

mssgate::config::AutoconfigConfig autoconfig() {
  mssgate::config::AutoconfigConfig config;
  config.domains = {"test.mssante.fr", "ex.fr"};
  config.display_name = "MSSanté <test> & \"co\"";
  config.imap_host = "imap.test.mssante.fr";
  config.smtp_host = "smtp.test.mssante.fr";
  return config;
}

void check_autoconfig(std::string_view target) {
  std::string address = mssgate::daemon::query_parameter(target, "emailaddress");
  check(address.size() <= target.size(), "admin_http: a decoded parameter is no longer");
  auto answer = mssgate::daemon::autoconfig_document(autoconfig(), address);
  check(answer.status == 200 || answer.status == 400 || answer.status == 404,
        "admin_http: autoconfiguration answers 200, 400 or 404");
  if (answer.status != 200) return;
  pugi::xml_document document;
  auto loaded = document.load_buffer(answer.body.data(), answer.body.size());
  check(static_cast<bool>(loaded), "admin_http: the autoconfiguration is well-formed XML");
  std::string domain = mssgate::protocol::ascii_lower(address.substr(address.rfind('@') + 1));
  auto provider = document.child("clientConfig").child("emailProvider");
  check(domain == provider.child_value("domain") && domain == provider.attribute("id").value(),
        "admin_http: the document names the address's domain");
  check(std::string_view(provider.child("incomingServer").child_value("username")) ==
            "%EMAILADDRESS%",
        "admin_http: the document holds nothing else of the request");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  auto request =
      mssgate::fuzz::same_whole_and_in_pieces(input, parse, "admin_http: same request in pieces");
  if (!request.refused) {
    auto route = mssgate::daemon::admin_route(request.method, request.target);
    // Only the provisioning API takes other methods than GET and HEAD.
    if (request.method != "GET" && request.method != "HEAD")
      check(route == mssgate::daemon::AdminRoute::kMethodNotAllowed ||
                route == mssgate::daemon::AdminRoute::kApiDirectory,
            "admin_http: only GET and HEAD are served, but by the provisioning API");
    if (route == mssgate::daemon::AdminRoute::kApiDirectory)
      check(mssgate::daemon::is_provisioning_target(request.target),
            "admin_http: the provisioning API's route is its targets'");
    if (route == mssgate::daemon::AdminRoute::kAutoconfig) check_autoconfig(request.target);
  }
  // The first line of the input as a target, whatever Beast would say of it.
  std::string_view target = input.substr(0, input.find('\n'));
  mssgate::daemon::admin_route("GET", target);
  check_autoconfig(target);
  return 0;
}
