#pragma once
// What the fuzz targets share: the failure of a checked property (an abort, which libFuzzer and
// the replay driver both report as a crash, with the property named on stderr), and the ways
// an incremental parser is fed the same bytes whole and in pieces.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace mssgate::fuzz {

// A property that does not hold: named on stderr, then abort().
[[noreturn]] inline void fail(const char* property) {
  std::fprintf(stderr, "fuzz property broken: %s\n", property);
  std::fflush(stderr);
  std::abort();
}

inline void check(bool holds, const char* property) {
  if (!holds) fail(property);
}

inline std::string_view bytes_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// How the bytes are cut: 0 is the whole input at once, 1 one byte at a time, any other n pieces
// of n bytes. kUneven cuts pieces of 1, 2, 3, 5, 8, 13, ... bytes (then again from 1), so that
// pieces end at every kind of place.
constexpr size_t kWhole = 0;
constexpr size_t kUneven = static_cast<size_t>(-1);

// The cuts every target feeds its incremental parsers with, besides the whole input.
inline std::vector<size_t> piece_sizes() {
  return {1, 7, kUneven};
}

inline std::vector<std::string_view> cut(std::string_view input, size_t how) {
  std::vector<std::string_view> pieces;
  if (how == kWhole) {
    if (!input.empty()) pieces.push_back(input);
    return pieces;
  }
  size_t a = 1;
  size_t b = 1;
  size_t offset = 0;
  while (offset < input.size()) {
    size_t n = how;
    if (how == kUneven) {
      n = a;
      size_t next = a + b;
      a = b;
      b = next;
      if (a > 64) a = b = 1;
    }
    pieces.push_back(input.substr(offset, n));
    offset += n;
  }
  return pieces;
}

// Whether each input is cut every way (the replay: a few thousand inputs, each checked fully) or
// one way, chosen by its length (libFuzzer: each way still meets millions of inputs, and the
// slow targets, whose time goes into feeding a byte at a time, run about twice as fast).
inline bool& every_cut() {
  static bool every = false;
  return every;
}

// Runs `run(input, how)` whole and in pieces (every_cut()); every answer must equal the whole one.
template <class Run>
auto same_whole_and_in_pieces(std::string_view input, Run run, const char* property) {
  auto whole = run(input, kWhole);
  const std::vector<size_t> sizes = piece_sizes();
  if (every_cut()) {
    for (size_t how : sizes) {
      if (run(input, how) != whole) fail(property);
    }
  } else if (run(input, sizes[input.size() % sizes.size()]) != whole) {
    fail(property);
  }
  return whole;
}

// The input split at the first occurrence of `separator`: before it and after it (all of it,
// and an empty rest, when it is absent). Lets one input carry two values.
struct Halves {
  std::string_view first;
  std::string_view second;
};
inline Halves split_once(std::string_view input, std::string_view separator) {
  size_t at = input.find(separator);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + separator.size())};
}

}  // namespace mssgate::fuzz
