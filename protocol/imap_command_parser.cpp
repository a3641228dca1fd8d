#include "protocol/imap_command_parser.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "protocol/ascii.hpp"

namespace mssgate::protocol {
namespace {

bool is_atom_char(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return false;
  return c != '(' && c != ')' && c != '{' && c != '"';
}

struct LiteralMarker {
  size_t length;
  bool synchronising;
  size_t marker_start;  // index of '{' in the segment
};

// Recognises "{n}", "{n+}" and "~{n}" (RFC 3516 binary) at the end of a line segment.
std::optional<LiteralMarker> literal_marker_at_end(std::string_view text) {
  if (text.empty() || text.back() != '}') return std::nullopt;
  size_t open = text.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inside = text.substr(open + 1, text.size() - open - 2);
  bool sync = true;
  if (!inside.empty() && inside.back() == '+') {
    sync = false;
    inside.remove_suffix(1);
  }
  if (inside.empty() || inside.size() > 19) return std::nullopt;
  size_t n = 0;
  for (char c : inside) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return LiteralMarker{n, sync, open};
}

// Reads the quoted string whose opening quote is text[p], unescaped, into `value`; p ends past
// the closing quote. Returns what is wrong with it, or nullptr.
const char* read_quoted(std::string_view text, size_t& p, std::string& value) {
  ++p;
  while (p < text.size()) {
    char q = text[p++];
    if (q == '"') return nullptr;
    if (q == '\\') {
      if (p >= text.size() || (text[p] != '"' && text[p] != '\\')) {
        return "Invalid escape in quoted string";
      }
      q = text[p++];
    } else if (q == '\0' || q == '\r') {
      return "Invalid character in quoted string";
    }
    value += q;
  }
  return "Unterminated quoted string";
}

// Appends the tokens of one line segment to `tokens`; `depth` counts the lists open across
// segments. `literal` is the literal that follows the segment (nullptr after the last one): its
// marker, which must end the segment, becomes its token. Returns what is wrong, or nullptr.
const char* tokenize_segment(std::string_view text, std::string* literal,
                             std::vector<ImapToken>& tokens, int& depth) {
  size_t p = 0;
  while (p < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[p]);
    if (c == ' ') {
      ++p;
    } else if (c == '(') {
      tokens.push_back({ImapToken::Kind::kListBegin, {}});
      ++depth;
      ++p;
    } else if (c == ')') {
      if (--depth < 0) return "Unbalanced parentheses";
      tokens.push_back({ImapToken::Kind::kListEnd, {}});
      ++p;
    } else if (c == '"') {
      std::string value;
      if (const char* problem = read_quoted(text, p, value)) return problem;
      tokens.push_back({ImapToken::Kind::kQuoted, std::move(value)});
    } else if (c == '{' || (c == '~' && p + 1 < text.size() && text[p + 1] == '{')) {
      // Only valid as the marker that ends a segment followed by its literal.
      if (!literal || literal_marker_at_end(text)->marker_start != (c == '~' ? p + 1 : p)) {
        return "Misplaced literal";
      }
      tokens.push_back({ImapToken::Kind::kLiteral, std::move(*literal)});
      p = text.size();
    } else if (is_atom_char(c)) {
      size_t start = p;
      while (p < text.size() && is_atom_char(static_cast<unsigned char>(text[p])))
        ++p;
      tokens.push_back({ImapToken::Kind::kAtom, std::string(text.substr(start, p - start))});
    } else {
      return "Invalid character";
    }
  }
  return nullptr;
}

}  // namespace

size_t ImapCommandParser::held_capacity() const {
  size_t held = current_.capacity();
  for (const auto& text : texts_)
    held += text.capacity();
  for (const auto& literal : literals_)
    held += literal.capacity();
  return held;
}

bool ImapCommandParser::mid_command() const {
  return !completed_ && (in_literal_ || !current_.empty() || !texts_.empty());
}

void ImapCommandParser::start_over() {
  completed_ = false;
  in_literal_ = false;
  literal_remaining_ = 0;
  literal_total_ = 0;
  text_total_ = 0;
  texts_.clear();
  literals_.clear();
  current_.clear();
}

ImapCommandParser::Result ImapCommandParser::fail(ImapParseError::Kind kind, bool fatal,
                                                  std::string message, size_t consumed) {
  error_.kind = kind;
  error_.fatal = fatal;
  error_.message = std::move(message);
  error_.tag = "*";
  // Report the tag when the first segment starts with a plausible one.
  std::string_view first = texts_.empty() ? std::string_view(current_) : texts_.front();
  size_t end = 0;
  while (end < first.size() && end < 64 && is_atom_char(first[end]) && first[end] != '+')
    ++end;
  if (end > 0 && (end == first.size() || first[end] == ' ')) error_.tag = first.substr(0, end);
  completed_ = true;
  return {Status::kError, consumed};
}

ImapCommandParser::Result ImapCommandParser::feed(std::string_view input) {
  if (completed_) start_over();
  size_t i = 0;
  while (i < input.size()) {
    if (in_literal_) {
      size_t take = std::min(literal_remaining_, input.size() - i);
      literals_.back().append(input.data() + i, take);
      i += take;
      literal_remaining_ -= take;
      if (literal_remaining_ == 0) in_literal_ = false;
      continue;
    }
    char c = input[i++];
    if (c == '\n') return finish_line(i);
    if (current_.size() >= limits_.max_line_bytes + 1 ||
        text_total_ + current_.size() >= limits_.max_line_bytes + 1) {
      return fail(ImapParseError::Kind::kLineTooLong, true, "Line too long", i);
    }
    current_ += c;
  }
  return {Status::kNeedMore, i};
}

ImapCommandParser::Result ImapCommandParser::finish_line(size_t consumed) {
  if (!current_.empty() && current_.back() == '\r') current_.pop_back();
  if (raw_line_mode_) {
    raw_line_mode_ = false;
    raw_line_ = std::move(current_);
    current_.clear();
    completed_ = true;
    return {Status::kRawLine, consumed};
  }
  if (auto marker = literal_marker_at_end(current_)) {
    if (marker->length >
        limits_.max_literal_bytes - std::min(literal_total_, limits_.max_literal_bytes)) {
      // A synchronising literal was not sent yet: refuse the command and stay in sync.
      // A non-synchronising one is already on its way: the stream cannot be resynchronised.
      return fail(ImapParseError::Kind::kLiteralTooLarge, !marker->synchronising,
                  "Literal too large", consumed);
    }
    literal_total_ += marker->length;
    text_total_ += current_.size();
    texts_.push_back(std::move(current_));
    current_.clear();
    // Nothing is reserved for the literal: its memory grows with the bytes that arrive, so an
    // announced size costs nothing until the client sends it.
    literals_.emplace_back();
    literal_remaining_ = marker->length;
    in_literal_ = marker->length > 0;
    if (marker->synchronising) return {Status::kNeedLiteralContinuation, consumed};
    return {Status::kNeedMore, consumed};
  }
  texts_.push_back(std::move(current_));
  current_.clear();
  if (!tokenize()) return fail(ImapParseError::Kind::kSyntax, false, error_.message, consumed);
  completed_ = true;
  return {Status::kCommand, consumed};
}

bool ImapCommandParser::tokenize() {
  std::vector<ImapToken> tokens;
  int depth = 0;
  for (size_t seg = 0; seg < texts_.size(); ++seg) {
    // Every segment but the last ends with the marker of the literal that follows it.
    std::string* literal = seg + 1 < texts_.size() ? &literals_[seg] : nullptr;
    if (const char* problem = tokenize_segment(texts_[seg], literal, tokens, depth)) {
      error_.message = problem;
      return false;
    }
  }
  if (depth != 0) {
    error_.message = "Unbalanced parentheses";
    return false;
  }
  if (tokens.size() < 2 || tokens[0].kind != ImapToken::Kind::kAtom ||
      tokens[0].value.find('+') != std::string::npos || tokens[1].kind != ImapToken::Kind::kAtom) {
    error_.message = tokens.empty() ? "Empty command" : "Missing tag or command name";
    return false;
  }
  command_.tag = std::move(tokens[0].value);
  command_.name = ascii_upper(tokens[1].value);
  command_.args.assign(std::make_move_iterator(tokens.begin() + 2),
                       std::make_move_iterator(tokens.end()));
  return true;
}

}  // namespace mssgate::protocol
