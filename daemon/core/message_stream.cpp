#include "daemon/core/message_stream.hpp"

#include <openssl/evp.h>

#include "protocol/ascii.hpp"

namespace mssgate::core {

// SHA-256 fed piece by piece.
class MessageStream::Digest {
 public:
  Digest() : context_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(context_, EVP_sha256(), nullptr); }
  ~Digest() { EVP_MD_CTX_free(context_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void update(std::string_view bytes) { EVP_DigestUpdate(context_, bytes.data(), bytes.size()); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(context_, digest, &size);
    return protocol::hex_lower({reinterpret_cast<const char*>(digest), size});
  }

 private:
  EVP_MD_CTX* context_;
};

MessageStream::MessageStream(const Settings& settings)
    : settings_(settings),
      state_(settings.hold_header ? State::kHolding : State::kStreaming),
      headers_(settings.max_header_bytes) {
  if (settings.fingerprint) digest_ = std::make_unique<Digest>();
}

MessageStream::~MessageStream() = default;
MessageStream::MessageStream(MessageStream&&) noexcept = default;
MessageStream& MessageStream::operator=(MessageStream&&) noexcept = default;

MessageStream::DataFed MessageStream::feed_data(std::string_view wire) {
  content_.clear();
  auto read = reader_.feed(wire, content_);
  Fed fed = feed_content(content_, read.complete);
  return DataFed{read.consumed, read.complete, fed};
}

MessageStream::Fed MessageStream::feed_content(std::string_view content, bool last) {
  size_ += content.size();
  if (digest_) digest_->update(content);
  if (settings_.inspect && state_ != State::kDiscarded) inspection_bytes_ += content;
  if (settings_.max_message_bytes && size_ > settings_.max_message_bytes && !too_large_ &&
      state_ != State::kDiscarded) {
    too_large_ = true;
    state_ = State::kDiscarded;
    held_ = std::string();
    return Fed::kTooLarge;
  }
  switch (state_) {
    case State::kHolding: {
      auto header = headers_.feed(content);
      header_bytes_ = held_.size() + header.consumed;
      held_ += content;
      if (header.status == protocol::HeaderSectionReader::Status::kTooLarge) {
        header_too_large_ = true;
        if (settings_.pass_large_header) {
          release_header();
          return Fed::kMore;
        }
        discard();
        return Fed::kHeaderTooLarge;
      }
      if (header.status == protocol::HeaderSectionReader::Status::kComplete || last) {
        if (last) headers_.end_of_message();
        state_ = State::kHeaderReady;
        return Fed::kHeaderReady;
      }
      return Fed::kMore;
    }
    case State::kHeaderReady:
      held_ += content;  // the session has not decided yet
      return Fed::kMore;
    case State::kStreaming:
      writer_.encode(content, backend_bytes_);
      return Fed::kMore;
    case State::kDiscarded:
      return Fed::kMore;
  }
  return Fed::kMore;
}

void MessageStream::release_header() {
  state_ = State::kStreaming;
  writer_.encode(held_, backend_bytes_);
  held_ = std::string();
}

void MessageStream::release_header(std::string bytes) {
  held_ = std::move(bytes);
  release_header();
}

std::string MessageStream::release_whole() {
  std::string out;
  protocol::SmtpDataWriter lines(false);
  lines.encode(held_, out);
  lines.end_line(out);
  state_ = State::kStreaming;
  held_ = std::string();
  return out;
}

void MessageStream::discard() {
  state_ = State::kDiscarded;
  held_ = std::string();
  backend_bytes_ = std::string();
  inspection_bytes_ = std::string();
}

std::string MessageStream::backend_terminator() {
  std::string out;
  writer_.finish(out);
  return out;
}

std::string MessageStream::fingerprint() {
  return digest_->hex();
}

}  // namespace mssgate::core
