#pragma once
// How each kind of field of the journal's records is bound to a statement, read back from a
// row and shown in the JSON line; the column table (journal_columns.cpp) picks them by the
// field's type. Internal to storage/.

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/indicator_event.hpp"
#include "storage/postgresql.hpp"
#include "storage/sqlite_statement.hpp"

namespace mssgate::storage::column_values {

using protocol::Mismatch;

// The columns' texts: the fields that are words of a vocabulary.

// Sent events have no counterpart: an empty text.
inline std::string_view text_of(const std::optional<Counterpart>& counterpart) {
  return counterpart ? to_string(*counterpart) : "";
}
template <class T>
std::string_view text_of(const T& value) {
  return to_string(value);
}

template <class T>
bool assign(const std::optional<T>& parsed, T& out) {
  if (parsed) out = *parsed;
  return parsed.has_value();
}
inline bool from_text(std::string_view text, Direction& out) {
  return assign(parse_direction(text), out);
}
inline bool from_text(std::string_view text, AuthMode& out) {
  return assign(parse_auth_mode(text), out);
}
inline bool from_text(std::string_view text, ClaimedIns& out) {
  return assign(parse_claimed_ins(text), out);
}
inline bool from_text(std::string_view text, InsClass& out) {
  return assign(parse_ins_class(text), out);
}
inline bool from_text(std::string_view text, SessionProtocol& out) {
  return assign(parse_session_protocol(text), out);
}
inline bool from_text(std::string_view text, RecordedMailboxType& out) {
  return assign(parse_recorded_mailbox_type(text), out);
}
inline bool from_text(std::string_view text, DsnAction& out) {
  return assign(parse_dsn_action(text), out);
}
inline bool from_text(std::string_view text, Disposition& out) {
  return assign(parse_disposition(text), out);
}
inline bool from_text(std::string_view text, Mismatch& out) {
  return assign(protocol::parse_mismatch(text), out);
}
inline bool from_text(std::string_view text, std::optional<Counterpart>& out) {
  out.reset();
  if (text.empty()) return true;
  out = parse_counterpart(text);
  return out.has_value();
}

// A field stored as one word of its vocabulary.
template <class T>
concept Word = requires(std::string_view text, T& value) {
  { from_text(text, value) } -> std::same_as<bool>;
};

// How each kind of field is bound, read back (false: a text outside its vocabulary) and shown
// in the JSON line. A row to bind to (`Out`) has bind(index, text) and bind(index, integer); a
// row to read from (`In`) has text(index) and integer(index): SQLite's Statement, and the text
// rows of PostgreSQL (TextParameters, TextRow).

template <class Out>
void bind_value(Out& s, int index, const std::string& value) {
  // The record's own text outlives the statement's step: SQLite need not copy it.
  if constexpr (requires { s.bind_unchanged(index, std::string_view(value)); }) {
    s.bind_unchanged(index, std::string_view(value));
  } else {
    s.bind(index, std::string_view(value));
  }
}
template <class Out>
void bind_value(Out& s, int index, int64_t value) {
  s.bind(index, value);
}
template <class Out>
void bind_value(Out& s, int index, uint64_t value) {
  s.bind(index, static_cast<int64_t>(value));
}
template <class Out>
void bind_value(Out& s, int index, unsigned value) {
  s.bind(index, int64_t{value});
}
template <class Out>
void bind_value(Out& s, int index, bool value) {
  s.bind(index, int64_t{value});
}
template <class Out, Word T>
void bind_value(Out& s, int index, const T& value) {
  s.bind(index, text_of(value));
}
// A list of words, comma-separated (no word holds a comma).
template <class Out, Word T>
void bind_value(Out& s, int index, const std::vector<T>& values) {
  std::string words;
  for (const auto& value : values)
    words += (words.empty() ? "" : ",") + std::string(text_of(value));
  s.bind(index, std::string_view(words));
}

template <class In>
bool read_value(const In& s, int index, std::string& out) {
  out = s.text(index);
  return true;
}
template <class In>
bool read_value(const In& s, int index, int64_t& out) {
  out = s.integer(index);
  return true;
}
template <class In>
bool read_value(const In& s, int index, uint64_t& out) {
  out = static_cast<uint64_t>(s.integer(index));
  return true;
}
template <class In>
bool read_value(const In& s, int index, unsigned& out) {
  out = static_cast<unsigned>(s.integer(index));
  return true;
}
template <class In>
bool read_value(const In& s, int index, bool& out) {
  out = s.integer(index) != 0;
  return true;
}
template <class In, Word T>
bool read_value(const In& s, int index, T& out) {
  return from_text(s.text(index), out);
}
template <class In, Word T>
bool read_value(const In& s, int index, std::vector<T>& out) {
  out.clear();
  std::string words(s.text(index));
  for (size_t start = 0; start < words.size();) {
    size_t comma = std::min(words.find(',', start), words.size());
    if (!from_text(std::string_view(words).substr(start, comma - start), out.emplace_back()))
      return false;
    start = comma + 1;
  }
  return true;
}

// A value as JSON text, appended to `out`, as Boost.JSON's serializer writes it (the log's lines
// have kept that form): strings quoted, '"' and '\\' escaped, control characters as \b, \f, \n,
// \r, \t or \u00xx; numbers in decimal; booleans as true and false.
inline void json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // where the run of characters written as they are starts
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}
inline void json_value(std::string& out, const std::string& value) {
  json_string(out, value);
}
inline void json_value(std::string& out, int64_t value) {
  out += std::to_string(value);
}
inline void json_value(std::string& out, uint64_t value) {
  out += std::to_string(value);
}
inline void json_value(std::string& out, unsigned value) {
  out += std::to_string(value);
}
inline void json_value(std::string& out, bool value) {
  out += value ? "true" : "false";
}
template <Word T>
void json_value(std::string& out, const T& value) {
  json_string(out, text_of(value));
}
template <Word T>
void json_value(std::string& out, const std::vector<T>& values) {
  out += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    json_string(out, text_of(values[i]));
  }
  out += ']';
}

// A row of PostgreSQL parameters: each value's text, in the order bound.
struct TextParameters {
  std::vector<std::string>& values;
  void bind(int, std::string_view text) { values.emplace_back(text); }
  void bind(int, int64_t value) { values.push_back(std::to_string(value)); }
};
// One row of a PostgreSQL result.
struct TextRow {
  const PostgresqlResult& result;
  int row = 0;
  std::string text(int column) const { return std::string(result.text(row, column)); }
  int64_t integer(int column) const { return result.integer(row, column); }
};

template <class M>
struct MemberOf;
template <class R, class T>
struct MemberOf<T R::*> {
  using Record = R;
};
template <auto Member>
using RecordOf = typename MemberOf<decltype(Member)>::Record;

template <auto Member, class Out>
void bind_member(Out& s, int index, const RecordOf<Member>& record) {
  bind_value(s, index, record.*Member);
}
template <auto Member, class In>
bool read_member(const In& s, int index, RecordOf<Member>& record) {
  return read_value(s, index, record.*Member);
}
template <auto Member>
void json_member(std::string& out, const RecordOf<Member>& record) {
  json_value(out, record.*Member);
}

}  // namespace mssgate::storage::column_values
