#pragma once
// Scripted surroundings for the sans-I/O session cores: what the client sends (whole, or cut
// in pieces of any size), what TLS, the sign-in service, the backend and the journal answer;
// and a record of everything the core did and reported.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/session_events.hpp"
#include "protocol/message_inspector.hpp"
#include "protocol/smtp_reply.hpp"

namespace mssgate::test_core {

inline protocol::SmtpReply reply(int code, std::string enhanced = "", std::string text = "ok") {
  protocol::SmtpReply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.lines = {std::move(text)};
  return r;
}

// The client's bytes: segments that arrive one after the other (as separate packets would),
// each handed out `chunk` bytes at a time (0: each segment at once).
class ClientInput {
 public:
  ClientInput(std::vector<std::string> segments, size_t chunk)
      : segments_(std::move(segments)), chunk_(chunk) {}
  bool exhausted() {
    while (segment_ < segments_.size() && offset_ >= segments_[segment_].size()) {
      ++segment_;
      offset_ = 0;
    }
    return segment_ >= segments_.size();
  }
  std::string_view take() {
    if (exhausted()) return {};
    std::string_view bytes = segments_[segment_];
    size_t n = chunk_ ? std::min(chunk_, bytes.size() - offset_) : bytes.size() - offset_;
    auto piece = bytes.substr(offset_, n);
    offset_ += n;
    return piece;
  }

 private:
  std::vector<std::string> segments_;
  size_t chunk_;
  size_t segment_ = 0;
  size_t offset_ = 0;
};

// How a scenario is played: its client segments, and the read sizes it is played with (each
// run must give the same client answers and reports; `same_backend`: the same backend traffic
// too, which a cap that cuts a message where a read ends does not).
struct Plays {
  std::vector<size_t> chunks{0, 1};
  bool same_backend = true;
};

// The inspection of the messages a core hands out, done at once (the daemon does it on its
// inspection pool): the content of each message whose facts were asked for ("|" before each),
// and the bytes handed out before any message began. (A refused message's inspection is
// abandoned where it stands, which depends on the reads: it is not kept.)
struct Inspection {
  std::shared_ptr<protocol::MessageInspector> inspector;  // shared: a world is copied
  std::string current;
  std::string finished;
  std::string ended;  // what had come of each message when it was said to have ended, "|" before
  int orphan_bytes = 0;
  void begin() {
    inspector = std::make_shared<protocol::MessageInspector>();
    current.clear();
  }
  void feed(std::string_view bytes) {
    if (!inspector) {
      orphan_bytes += static_cast<int>(bytes.size());
      return;
    }
    current += bytes;
    inspector->feed(bytes);
  }
  void end() {
    if (inspector) ended += "|" + current;
  }
  protocol::MessageFacts finish() {
    if (!inspector) ADD_FAILURE() << "the facts of a message that never began";
    if (!inspector) return {};
    finished += "|" + current;
    auto facts = inspector->finish();
    inspector.reset();
    return facts;
  }
};

// What every core reports, as lines of text in order. `Events` is the core's listener.
template <class Events>
class ReportLog : public Events {
 public:
  std::vector<std::string> events;    // closing, protocol errors, sign-ins, ...
  std::vector<std::string> commands;  // each command, and "/" when its answers were all given

  void command_started(std::string_view verb) override { commands.emplace_back(verb); }
  void command_finished() override { commands.emplace_back("/"); }
  void protocol_error(std::string_view kind, std::string_view) override {
    events.push_back("protocol_error " + std::string(kind));
  }
  void closing(std::string_view reason) override {
    events.push_back("closing " + std::string(reason));
  }
  void sign_in_attempt(std::string_view mechanism, bool ok, std::string_view reason,
                       std::string_view mailbox) override {
    events.push_back("auth " + std::string(mechanism) + (ok ? " ok " : " failed ") +
                     std::string(reason) + " " + std::string(mailbox));
  }
};

}  // namespace mssgate::test_core
