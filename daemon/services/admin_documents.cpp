#include "daemon/services/admin_documents.hpp"

#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

std::string xml_escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string server_element(std::string_view element, std::string_view type, const std::string& host,
                           uint16_t port) {
  std::string out;
  out += "    <" + std::string(element) + " type=\"" + std::string(type) + "\">\n";
  out += "      <hostname>" + xml_escaped(host) + "</hostname>\n";
  out += "      <port>" + std::to_string(port) + "</port>\n";
  out += "      <socketType>STARTTLS</socketType>\n";
  out += "      <username>%EMAILADDRESS%</username>\n";
  // Professionals sign in with Pro Santé Connect; organisations' software with a certificate.
  out += "      <authentication>OAuth2</authentication>\n";
  out += "      <authentication>TLS-client-cert</authentication>\n";
  out += "    </" + std::string(element) + ">\n";
  return out;
}

}  // namespace

constexpr std::string_view kProvisioningPrefix = "/api/directory";

bool is_provisioning_target(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  return path == kProvisioningPrefix || path.rfind(std::string(kProvisioningPrefix) + "/", 0) == 0;
}

size_t provisioning_body_limit(std::string_view target, size_t max_import_bytes) {
  std::string_view path = target.substr(0, target.find('?'));
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  return path == std::string(kProvisioningPrefix) + "/import" ? max_import_bytes : kAdminBodyBytes;
}

bool expects_continue(std::string_view expect) {
  return protocol::ascii_iequals(protocol::trim_blanks(expect), "100-continue");
}

AdminRoute admin_route(std::string_view method, std::string_view target) {
  if (is_provisioning_target(target)) return AdminRoute::kApiDirectory;
  std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") return AdminRoute::kMethodNotAllowed;
  if (path == "/api/openapi.json") return AdminRoute::kApiOpenApi;
  if (path == "/metrics") return AdminRoute::kMetrics;
  if (path == "/console" || path == "/console/") return AdminRoute::kConsole;
  if (path == "/console/console.js" || path == "/console/console.css")
    return AdminRoute::kConsoleFile;
  if (path == "/api/status") return AdminRoute::kApiStatus;
  if (path == "/api/indicators") return AdminRoute::kApiIndicators;
  if (path == "/api/export") return AdminRoute::kApiExport;
  if (path == "/healthz") return AdminRoute::kHealth;
  if (path == "/readyz") return AdminRoute::kReady;
  if (path == "/mail/config-v1.1.xml" || path == "/.well-known/autoconfig/mail/config-v1.1.xml")
    return AdminRoute::kAutoconfig;
  return AdminRoute::kNotFound;
}

std::string query_parameter(std::string_view target, std::string_view name) {
  size_t question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        value += ' ';
      } else if (raw[i] == '%' && i + 2 < raw.size() &&
                 protocol::hex_digit_value(raw[i + 1]) >= 0 &&
                 protocol::hex_digit_value(raw[i + 2]) >= 0) {
        value += static_cast<char>(protocol::hex_digit_value(raw[i + 1]) * 16 +
                                   protocol::hex_digit_value(raw[i + 2]));
        i += 2;
      } else {
        value += raw[i];
      }
    }
    return value;
  }
  return {};
}

AdminResponse autoconfig_document(const config::AutoconfigConfig& autoconfig,
                                  std::string_view email_address) {
  size_t at = email_address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == email_address.size() ||
      email_address.size() > 320 ||
      email_address.find_first_of(" \t\r\n<>\"&") != std::string_view::npos) {
    return {400, "text/plain; charset=utf-8", "emailaddress must be an e-mail address\n"};
  }
  std::string domain = protocol::ascii_lower(email_address.substr(at + 1));
  bool served = false;
  for (const auto& d : autoconfig.domains)
    served = served || d == domain;
  if (!served) return {404, "text/plain; charset=utf-8", "no configuration for this domain\n"};
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += "<clientConfig version=\"1.1\">\n";
  xml += "  <emailProvider id=\"" + xml_escaped(domain) + "\">\n";
  xml += "    <domain>" + xml_escaped(domain) + "</domain>\n";
  xml += "    <displayName>" + xml_escaped(autoconfig.display_name) + "</displayName>\n";
  xml += "    <displayShortName>" + xml_escaped(autoconfig.display_name) + "</displayShortName>\n";
  xml += server_element("incomingServer", "imap", autoconfig.imap_host, autoconfig.imap_port);
  xml += server_element("outgoingServer", "smtp", autoconfig.smtp_host, autoconfig.smtp_port);
  xml += "  </emailProvider>\n";
  xml += "</clientConfig>\n";
  return {200, "application/xml; charset=utf-8", std::move(xml)};
}

AdminResponse readiness_document(const std::vector<ReadinessCheck>& checks) {
  bool ready = true;
  for (const auto& check : checks)
    ready = ready && check.ok;
  AdminResponse response;
  response.status = ready ? 200 : 503;
  response.body = ready ? "ready\n" : "not ready\n";
  for (const auto& check : checks) {
    response.body += check.name + (check.ok ? " ok" : " failed");
    if (!check.detail.empty()) response.body += " " + check.detail;
    response.body += "\n";
  }
  return response;
}

}  // namespace mssgate::daemon
