// RFC 5322 address lists: a tokenizer (folds, comments, quoted strings, domain literals, atoms)
// and a reader of the current syntax that names the obsolete one (§4.4) instead of reading it.
#include "protocol/address_list.hpp"

#include <optional>
#include <utility>

#include "protocol/display_text.hpp"

namespace mssgate::protocol {
namespace {

enum class Type { kAtom, kQuoted, kLiteral, kSpecial, kEnd };

struct Token {
  Type type;
  std::string text;  // an atom as written; a quoted string's or literal's content; the special
  bool gap = false;  // white space or a comment before it
  bool quoted_pair = false;  // a literal with a quoted pair (obsolete)
};

bool atext(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) return true;  // only reached when UTF-8 is allowed
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool wsp(char c) {
  return c == ' ' || c == '\t';
}

bool dot_atom_text(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos)
    return false;
  for (char c : s) {
    if (c != '.' && (!atext(c) || static_cast<unsigned char>(c) >= 0x80)) return false;
  }
  return true;
}

// Turns the value into tokens; the comments go to `out`.
class Tokenizer {
 public:
  Tokenizer(std::string_view value, const AddressListOptions& options, AddressList& out)
      : raw_(value), options_(options), out_(out) {}

  std::optional<std::vector<Token>> run() {
    if (!unfold()) return std::nullopt;
    std::vector<Token> tokens;
    bool gap = false;
    while (i_ < text_.size()) {
      char c = text_[i_];
      if (wsp(c)) {
        gap = true;
        ++i_;
        continue;
      }
      std::optional<Token> token;
      if (c == '(') {
        if (!comment()) return std::nullopt;
        gap = true;
        continue;
      }
      if (c == '"') {
        token = delimited(Type::kQuoted, '"', "unterminated_quote");
      } else if (c == '[') {
        token = delimited(Type::kLiteral, ']', "unterminated_literal");
      } else if (c == ')') {
        fail("unbalanced_comment");
      } else if (std::string_view("<>@,;:.").find(c) != std::string_view::npos) {
        token = Token{Type::kSpecial, std::string(1, c)};
        ++i_;
      } else if (atext(c)) {
        size_t start = i_;
        while (i_ < text_.size() && atext(text_[i_]))
          ++i_;
        token = Token{Type::kAtom, std::string(text_.substr(start, i_ - start))};
      } else {
        fail("unreadable");  // '\', ']' outside what they belong to
      }
      if (!token) return std::nullopt;
      token->gap = std::exchange(gap, false);
      tokens.push_back(std::move(*token));
    }
    tokens.push_back(Token{Type::kEnd, "", gap});
    return tokens;
  }

 private:
  // Notes the first problem; false.
  bool fail(std::string_view problem) {
    if (out_.problem.empty()) out_.problem = problem;
    return false;
  }

  // Folds (CRLF or LF, then a space or tab) are removed; any other control is refused.
  bool unfold() {
    for (size_t k = 0; k < raw_.size(); ++k) {
      char c = raw_[k];
      auto u = static_cast<unsigned char>(c);
      if (c == '\r' && k + 2 < raw_.size() && raw_[k + 1] == '\n' && wsp(raw_[k + 2])) {
        ++k;
        continue;
      }
      if (c == '\n' && k + 1 < raw_.size() && wsp(raw_[k + 1])) continue;
      if ((u < 0x20 && c != '\t') || u == 0x7F) return fail("control_character");
      if (u >= 0x80 && !options_.utf8) return fail("eight_bit");
      text_ += c;
    }
    if (options_.utf8 && !valid_utf8(text_)) return fail("bad_utf8");
    return true;
  }

  // A quoted string or a domain literal, from its opening character; quoted pairs undone.
  std::optional<Token> delimited(Type type, char close, std::string_view unterminated) {
    Token token{type, ""};
    for (++i_; i_ < text_.size(); ++i_) {
      char c = text_[i_];
      if (c == close) {
        ++i_;
        return token;
      }
      if (c == '\\') {
        if (++i_ == text_.size()) break;
        token.quoted_pair = true;
        c = text_[i_];
      } else if (type == Type::kLiteral && c == '[') {
        fail("unreadable");
        return std::nullopt;
      }
      token.text += c;
    }
    fail(unterminated);
    return std::nullopt;
  }

  // A comment, nested ones inside it kept whole.
  bool comment() {
    size_t depth = 0;
    std::string text;
    for (; i_ < text_.size(); ++i_) {
      char c = text_[i_];
      if (c == '\\') {
        if (++i_ == text_.size()) break;
        text += text_[i_];
        continue;
      }
      if (c == '(' && depth++ == 0) continue;
      if (c == ')' && --depth == 0) {
        ++i_;
        out_.decoded_comments.push_back(decode_words(text));
        out_.comments.push_back(std::move(text));
        return true;
      }
      text += c;
    }
    return fail("unterminated_comment");
  }

  // The text with each of its space-separated encoded words decoded; others left as they are.
  static std::string decode_words(std::string_view text) {
    std::string out;
    size_t k = 0;
    while (k < text.size()) {
      size_t end = k;
      while (end < text.size() && !wsp(text[end]) && text[end] != '(' && text[end] != ')')
        ++end;
      std::string_view word = text.substr(k, end - k);
      std::string_view problem;
      auto decoded = encoded_word_outline(word) ? decode_encoded_word(word, problem) : std::nullopt;
      out += decoded ? *decoded : std::string(word);
      if (end < text.size()) out += text[end];
      k = end + 1;
    }
    return out;
  }

  std::string_view raw_;
  const AddressListOptions& options_;
  AddressList& out_;
  std::string text_;  // unfolded
  size_t i_ = 0;
};

// The grammar over the tokens.
class Reader {
 public:
  Reader(std::vector<Token> tokens, AddressList& out) : tokens_(std::move(tokens)), out_(out) {}

  void list() {
    if (at_end()) return void(fail("empty"));
    while (true) {
      if (special(',')) return void(fail("obsolete_empty_element"));
      if (!address(false)) return;
      if (at_end()) return;
      if (!special(',')) return void(fail("text_after_address"));
      ++pos_;
      if (at_end()) return void(fail("obsolete_empty_element"));
    }
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool at_end() const { return peek().type == Type::kEnd; }
  bool special(char c) const { return peek().type == Type::kSpecial && peek().text[0] == c; }
  bool word() const { return peek().type == Type::kAtom || peek().type == Type::kQuoted; }
  bool fail(std::string_view problem) {
    if (out_.problem.empty()) out_.problem = problem;
    return false;
  }

  // A mailbox or a group: words (and dots) first, then what follows them tells which.
  bool address(bool in_group) {
    size_t start = pos_;
    while (word() || special('.'))
      ++pos_;
    size_t end = pos_;
    if (special('<')) {
      std::string name;
      return phrase(start, end, name) && angle(std::move(name));
    }
    if (special(':')) {
      if (in_group) return fail("nested_group");
      std::string name;
      if (start == end) return fail("unreadable");
      return phrase(start, end, name) && group();
    }
    if (special('@')) {
      ListedMailbox mailbox;
      return addr_spec(start, end, mailbox) && push(std::move(mailbox));
    }
    return fail(start == end ? "unreadable" : "no_domain");
  }

  bool push(ListedMailbox mailbox) {
    out_.mailboxes.push_back(std::move(mailbox));
    return true;
  }

  bool group() {
    ++pos_;  // ':'
    while (!special(';')) {
      if (at_end()) return fail("unterminated_group");
      if (special(',')) return fail("obsolete_empty_element");
      if (!address(true)) return false;
      if (special(',')) {
        ++pos_;
        if (special(';')) return fail("obsolete_empty_element");
      } else if (!special(';')) {
        return fail(at_end() ? "unterminated_group" : "text_after_address");
      }
    }
    ++pos_;  // ';'
    ++out_.groups;
    return true;
  }

  bool angle(std::string name) {
    ++pos_;  // '<'
    if (special('@')) return fail("obsolete_route");
    if (special('>')) return fail("empty_address");
    size_t start = pos_;
    while (word() || special('.'))
      ++pos_;
    if (!special('@')) {
      if (at_end()) return fail("unterminated_angle");
      return fail(special('>') && start != pos_ ? "no_domain" : "unreadable");
    }
    ListedMailbox mailbox{"", std::move(name)};
    if (!addr_spec(start, pos_, mailbox)) return false;
    if (!special('>')) return fail(at_end() ? "unterminated_angle" : "unreadable");
    ++pos_;
    return push(std::move(mailbox));
  }

  // tokens_[from, to) are the local part; the '@' is at `to`, the domain after it.
  bool addr_spec(size_t from, size_t to, ListedMailbox& mailbox) {
    if (!local_part(from, to, mailbox.address)) return false;
    pos_ = to + 1;
    std::string domain_text;
    if (!domain(domain_text)) return false;
    mailbox.address += '@';
    mailbox.address += domain_text;
    return true;
  }

  bool local_part(size_t from, size_t to, std::string& out) {
    if (from == to) return fail("empty_local_part");
    bool quoted = false;
    for (size_t k = from; k < to; ++k) {
      bool dot = tokens_[k].type == Type::kSpecial;
      if (dot != ((k - from) % 2 == 1)) return fail(dot ? "bad_dot" : "unreadable");
      if (k > from && tokens_[k].gap) return fail("obsolete_local_part");
      quoted = quoted || tokens_[k].type == Type::kQuoted;
    }
    if (tokens_[to - 1].type == Type::kSpecial) return fail("bad_dot");
    if (quoted && to - from > 1) return fail("obsolete_local_part");
    if (quoted) {
      const std::string& content = tokens_[from].text;
      if (content.empty()) return fail("empty_local_part");
      out = dot_atom_text(content) ? content : quote(content);
    } else {
      for (size_t k = from; k < to; ++k)
        out += tokens_[k].text;
    }
    if (out.find("=?") != std::string::npos) return fail("encoded_word_in_address");
    return true;
  }

  static std::string quote(std::string_view content) {
    std::string out = "\"";
    for (char c : content) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }

  bool domain(std::string& out) {
    if (peek().type == Type::kLiteral) {
      if (peek().quoted_pair) return fail("obsolete_quoted_pair");
      out = "[" + peek().text + "]";
      ++pos_;
      return true;
    }
    if (peek().type != Type::kAtom) {
      if (special('.')) return fail("bad_dot");
      return fail(at_end() || peek().type == Type::kSpecial ? "empty_domain" : "unreadable");
    }
    out = peek().text;
    ++pos_;
    while (special('.')) {
      if (peek().gap) return fail("obsolete_domain");
      ++pos_;
      if (peek().type != Type::kAtom) return fail("bad_dot");
      if (peek().gap) return fail("obsolete_domain");
      out += '.';
      out += peek().text;
      ++pos_;
    }
    if (out.find("=?") != std::string::npos) return fail("encoded_word_in_address");
    return true;
  }

  // A display name: words only (a dot makes it obs-phrase); encoded words decoded.
  bool phrase(size_t from, size_t to, std::string& out) {
    bool previous_encoded = false;
    for (size_t k = from; k < to; ++k) {
      const Token& t = tokens_[k];
      if (t.type == Type::kSpecial) return fail("obsolete_phrase");
      bool encoded = false;
      std::string text = t.text;
      if (t.type == Type::kQuoted && t.text.find("=?") != std::string::npos)
        return fail("encoded_word_in_quotes");
      if (t.type == Type::kAtom && t.text.find("=?") != std::string::npos) {
        // An encoded word is a word of its own, apart from the words around it.
        bool apart = (k == from || t.gap) && (k + 1 == to || tokens_[k + 1].gap);
        std::string_view problem = "bad_encoded_word";
        auto decoded = apart ? decode_encoded_word(t.text, problem) : std::nullopt;
        if (!decoded) return fail(problem);
        text = std::move(*decoded);
        encoded = true;
      }
      if (k > from && !(encoded && previous_encoded)) out += ' ';
      out += text;
      previous_encoded = encoded;
    }
    return true;
  }

  std::vector<Token> tokens_;
  AddressList& out_;
  size_t pos_ = 0;
};

}  // namespace

AddressList read_address_list(std::string_view value, const AddressListOptions& options) {
  AddressList out;
  auto tokens = Tokenizer(value, options, out).run();
  if (!tokens) return out;
  Reader(std::move(*tokens), out).list();
  if (!out.readable()) out.mailboxes.clear();
  return out;
}

}  // namespace mssgate::protocol
