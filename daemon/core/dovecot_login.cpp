#include "daemon/core/dovecot_login.hpp"

#include <algorithm>
#include <vector>

#include "protocol/base64.hpp"
#include "protocol/imap_response.hpp"

namespace mssgate::core {
namespace {

using Line = protocol::ImapResponseLine;

std::string id_command(const DovecotLogin::Request& r) {
  using protocol::imap_quote;
  return "M1 ID (\"x-originating-ip\" " + imap_quote(r.client_address) +
         " \"x-originating-port\" \"" + std::to_string(r.client_port) + "\" \"x-connected-ip\" " +
         imap_quote(r.local_address) + " \"x-connected-port\" \"" + std::to_string(r.local_port) +
         "\" \"x-session-ext-id\" " + imap_quote(r.session_id) + ")\r\n";
}

}  // namespace

DovecotLogin::DovecotLogin(const Request& request)
    : id_command_(id_command(request)),
      plain_(protocol::base64_encode(request.mailbox + '\0' + request.master_user + '\0' +
                                     request.master_password)) {}

DovecotLogin::Action DovecotLogin::next() {
  if (actions_.empty()) return Action{Kind::kReadLine};
  Action action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

void DovecotLogin::on_line(std::string_view line) {
  switch (state_) {
    case State::kGreeting:
      return greeting(line);
    case State::kLogin:
      return login_answer(line);
    case State::kCapability:
      return capability_answer(line);
    case State::kEnded:
      return;
  }
}

void DovecotLogin::on_connection_lost(bool while_writing) {
  if (state_ == State::kEnded) return;
  if (state_ == State::kGreeting) return fail("no greeting");
  fail(while_writing ? "write failed" : "connection lost");
}

void DovecotLogin::greeting(std::string_view line) {
  auto response = protocol::parse_imap_response_line(line);
  if (!response || response->kind != Line::Kind::kUntagged || response->status != "OK")
    return fail("unexpected greeting");
  std::vector<std::string> caps;
  if (response->code == "CAPABILITY") caps = protocol::split_capabilities(response->code_args);
  sasl_ir_ = std::find(caps.begin(), caps.end(), "SASL-IR") != caps.end();
  state_ = State::kLogin;
  step_ = "login";
  actions_.emplace_back(Kind::kWrite, id_command_ + "M2 AUTHENTICATE PLAIN" +
                                          (sasl_ir_ ? " " + plain_ : std::string()) + "\r\n");
  if (sasl_ir_) plain_.clear();
}

void DovecotLogin::login_answer(std::string_view line) {
  auto response = protocol::parse_imap_response_line(line);
  if (!response) return;
  if (response->kind == Line::Kind::kContinuation && !plain_.empty()) {
    actions_.emplace_back(Kind::kWrite, plain_ + "\r\n");
    plain_.clear();
    return;
  }
  if (response->kind == Line::Kind::kUntagged && response->status == "CAPABILITY") {
    capabilities_ = protocol::post_login_capabilities(protocol::split_capabilities(response->text));
    return;
  }
  if (response->kind != Line::Kind::kTagged || response->tag != "M2") return;
  if (response->status != "OK") return fail("refused: " + response->status + " " + response->code);
  if (response->code == "CAPABILITY") {
    capabilities_ =
        protocol::post_login_capabilities(protocol::split_capabilities(response->code_args));
  }
  if (capabilities_) return done(std::move(*capabilities_));
  state_ = State::kCapability;
  step_ = "capability";
  actions_.emplace_back(Kind::kWrite, "M3 CAPABILITY\r\n");
}

void DovecotLogin::capability_answer(std::string_view line) {
  auto response = protocol::parse_imap_response_line(line);
  if (!response) return;
  if (response->kind == Line::Kind::kUntagged && response->status == "CAPABILITY")
    capabilities_ = protocol::post_login_capabilities(protocol::split_capabilities(response->text));
  if (response->kind == Line::Kind::kTagged && response->tag == "M3")
    done(capabilities_.value_or("IMAP4rev1"));
}

void DovecotLogin::done(std::string capabilities) {
  state_ = State::kEnded;
  actions_.emplace_back(Kind::kDone, std::move(capabilities));
}

void DovecotLogin::fail(std::string detail) {
  actions_.emplace_back(Kind::kFailed, std::move(detail));
  state_ = State::kEnded;
}

}  // namespace mssgate::core
