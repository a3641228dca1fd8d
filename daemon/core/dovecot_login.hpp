#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/core/action.hpp"

namespace mssgate::core {

// The login to Dovecot as the mailbox: the greeting read (SASL-IR learnt from its
// capabilities), ID with the client's and the listener's addresses and the session id (Dovecot
// logs them), AUTHENTICATE PLAIN with the master user (RFC 4616: authzid = mailbox), then the
// capabilities the client will see after login (from the answer, else asked with CAPABILITY).
class DovecotLogin {
 public:
  struct Request {
    std::string mailbox;
    std::string master_user;
    std::string master_password;  // sent base64-encoded in AUTHENTICATE, never logged
    std::string client_address;
    uint16_t client_port = 0;
    std::string local_address;
    uint16_t local_port = 0;
    std::string session_id;
  };
  enum class Kind {
    kReadLine,  // read one backend line, then on_line()
    kWrite,     // write text to the backend
    kDone,      // logged in: text is the capabilities for the client
    kFailed,    // text is the detail for the log, step() the step that failed
  };
  using Action = CoreAction<Kind>;

  explicit DovecotLogin(const Request& request);

  Action next();
  void on_line(std::string_view line);
  // A read or a write on the backend connection failed.
  void on_connection_lost(bool while_writing);
  // greeting, login or capability: for the backend failure's log and metric.
  std::string_view step() const { return step_; }

 private:
  enum class State { kGreeting, kLogin, kCapability, kEnded };
  void greeting(std::string_view line);
  void login_answer(std::string_view line);
  void capability_answer(std::string_view line);
  void done(std::string capabilities);
  void fail(std::string detail);

  State state_ = State::kGreeting;
  std::string_view step_ = "greeting";
  std::string id_command_;
  std::string plain_;  // base64 of mailbox NUL master NUL password
  bool sasl_ir_ = false;
  std::optional<std::string> capabilities_;
  std::deque<Action> actions_;
};

}  // namespace mssgate::core
