#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/message_header.hpp"
#include "protocol/smtp_data.hpp"

namespace mssgate::core {

// One message on its way from a client to a backend, as DATA (dot-stuffed) or BDAT chunks
// (raw) bring it: its size counted against a cap, its header section held (when asked) until
// the session has checked it, its content handed out for inspection (the inspector runs off the
// io thread, see daemon/services/inspection_pool.hpp) and fingerprinted (when asked), and what
// goes to the backend stuffed again, bare LFs made CRLF. Shared by the submission core and the
// LMTP tap. Holds at most the header section and the bytes of the last read, never the message.
class MessageStream {
 public:
  struct Settings {
    uint64_t max_message_bytes = 0;  // 0: no cap of its own
    bool hold_header = false;        // the header section waits for release_header()
    size_t max_header_bytes = 256 << 10;
    // A held header section over its cap goes on to the backend as it is (header_too_large()
    // says so), rather than ending the message (kHeaderTooLarge).
    bool pass_large_header = false;
    bool inspect = false;      // the content is handed out for inspection
    bool fingerprint = false;  // SHA-256 of the content
  };
  enum class Fed {
    kMore,            // go on
    kHeaderReady,     // the header section is complete: release_header() or discard()
    kTooLarge,        // over max_message_bytes: nothing more goes to the backend
    kHeaderTooLarge,  // the header section is over its cap: nothing goes to the backend
  };

  explicit MessageStream(const Settings& settings);
  ~MessageStream();
  MessageStream(MessageStream&&) noexcept;
  MessageStream& operator=(MessageStream&&) noexcept;

  // DATA: the client's dot-stuffed bytes; `consumed` of them were used, `complete` once the
  // terminator was read (the bytes after it are the next command).
  struct DataFed {
    size_t consumed = 0;
    bool complete = false;
    Fed fed = Fed::kMore;
  };
  DataFed feed_data(std::string_view wire);
  // BDAT: bytes of the message as they are; `last`: the message ends with them.
  Fed feed_content(std::string_view content, bool last);

  const protocol::HeaderSectionReader& headers() const { return headers_; }
  // The held header section (and what came with it) goes to the backend.
  void release_header();
  // The same, changed: `bytes` go to the backend instead of what is held.
  void release_header(std::string bytes);
  // What is held (kHeaderReady): the header section, its first header_bytes() bytes, then the
  // content that came with it.
  std::string_view held() const { return held_; }
  size_t header_bytes() const { return header_bytes_; }
  // The held message, whole (its last bytes fed), for the backend as one BDAT chunk: its line
  // ends made CRLF as for DATA, not stuffed, a CRLF added when its last line lacks one.
  std::string release_whole();
  // Nothing more for the backend: the message is refused, or its backend is gone.
  void discard();
  bool streaming() const { return state_ == State::kStreaming; }
  bool discarded() const { return state_ == State::kDiscarded; }
  bool header_too_large() const { return header_too_large_; }
  bool too_large() const { return too_large_; }

  // The stuffed bytes for the backend since the last call.
  std::string take_backend_bytes() { return std::exchange(backend_bytes_, {}); }
  // The end of the message for the backend ("." line, after a CRLF if the content lacked one).
  std::string backend_terminator();

  // The content (unstuffed) since the last call, for the message's inspection: only when
  // inspecting, and none once the message is discarded.
  std::string take_inspection_bytes() { return std::exchange(inspection_bytes_, {}); }

  uint64_t size() const { return size_; }
  bool inspecting() const { return settings_.inspect; }
  // Lower-case hex SHA-256 of the content: only when fingerprinting.
  std::string fingerprint();

 private:
  enum class State { kHolding, kHeaderReady, kStreaming, kDiscarded };
  class Digest;

  Settings settings_;
  State state_;
  uint64_t size_ = 0;
  bool too_large_ = false;
  bool header_too_large_ = false;
  protocol::SmtpDataReader reader_;
  protocol::SmtpDataWriter writer_;
  protocol::HeaderSectionReader headers_;
  std::string held_;
  size_t header_bytes_ = 0;
  std::string content_;  // unstuffed bytes of the last DATA read, reused
  std::string backend_bytes_;
  std::string inspection_bytes_;
  std::unique_ptr<Digest> digest_;
};

}  // namespace mssgate::core
