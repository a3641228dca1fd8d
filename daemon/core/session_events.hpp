#pragma once

#include <string_view>

namespace mssgate::core {

// What a core tells its session as it goes: facts for the log and the metrics, never a request
// to do something (those are actions). Each session implements it; tests record it.
class SessionEvents {
 public:
  virtual ~SessionEvents() = default;
  // A client command was read, and then its answers are all given (the next read ends it).
  virtual void command_started(std::string_view verb) = 0;
  virtual void command_finished() = 0;
  // The client broke the protocol: `kind` is a short word (line_too_long, pipelined_starttls).
  virtual void protocol_error(std::string_view kind, std::string_view detail) = 0;
  // Why the session is about to end; the first reason given wins.
  virtual void closing(std::string_view reason) = 0;
  // One sign-in attempt ended: the audit trail. `reason` is a short word, never a secret.
  virtual void sign_in_attempt(std::string_view mechanism, bool ok, std::string_view reason,
                               std::string_view mailbox) = 0;
};

}  // namespace mssgate::core
