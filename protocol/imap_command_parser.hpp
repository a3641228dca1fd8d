#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::protocol {

struct ImapToken {
  enum class Kind { kAtom, kQuoted, kLiteral, kListBegin, kListEnd };
  Kind kind;
  std::string value;  // atom text, unescaped quoted string or literal bytes; empty for lists

  bool is_string() const { return kind != Kind::kListBegin && kind != Kind::kListEnd; }
  bool operator==(const ImapToken&) const = default;
};

struct ImapCommand {
  std::string tag;
  std::string name;  // upper-cased
  std::vector<ImapToken> args;
};

struct ImapParseError {
  enum class Kind { kSyntax, kLineTooLong, kLiteralTooLarge };
  Kind kind = Kind::kSyntax;
  std::string tag;  // "*" when the tag could not be read
  // A fatal error leaves the stream unsynchronised: the session must end.
  bool fatal = false;
  std::string message;  // safe to send to the client
};

// Incremental tokenizer for IMAP client commands (RFC 3501 / RFC 9051 §2.2, LITERAL+).
// Feed it bytes as they arrive; it asks for a "+" continuation before every synchronising
// literal and enforces a cap on the line text and on the literal bytes of one command.
class ImapCommandParser {
 public:
  struct Limits {
    size_t max_line_bytes = 8192;      // text of one command, literals excluded
    size_t max_literal_bytes = 65536;  // all literals of one command
  };
  enum class Status {
    kNeedMore,                 // every input byte was consumed, nothing complete yet
    kCommand,                  // command() is ready
    kNeedLiteralContinuation,  // send "+ ..." to the client, then keep feeding
    kRawLine,                  // raw_line() is ready (after expect_raw_line())
    kError,                    // error() is ready
  };
  struct Result {
    Status status;
    size_t consumed;
  };

  explicit ImapCommandParser(Limits limits) : limits_(limits) {}

  Result feed(std::string_view input);

  // The next complete line is returned verbatim as kRawLine, with no literal processing
  // (used for SASL responses during AUTHENTICATE).
  void expect_raw_line() { raw_line_mode_ = true; }

  const ImapCommand& command() const { return command_; }
  const std::string& raw_line() const { return raw_line_; }
  const ImapParseError& error() const { return error_; }
  // True while the parser holds bytes of an unfinished command.
  bool mid_command() const;
  // The memory the parser holds for the command under way (string capacities), which grows
  // only with the bytes fed, never with a size the client announces.
  size_t held_capacity() const;

 private:
  void start_over();
  Result finish_line(size_t consumed);
  Result fail(ImapParseError::Kind kind, bool fatal, std::string message, size_t consumed);
  bool tokenize();

  Limits limits_;
  bool raw_line_mode_ = false;
  bool completed_ = false;  // the previous feed() returned a terminal status
  bool in_literal_ = false;
  size_t literal_remaining_ = 0;
  size_t literal_total_ = 0;
  size_t text_total_ = 0;
  std::vector<std::string> texts_;     // line segments; each but the last ends with {n}
  std::vector<std::string> literals_;  // literals_[i] follows texts_[i]
  std::string current_;
  ImapCommand command_;
  std::string raw_line_;
  ImapParseError error_;
};

}  // namespace mssgate::protocol
