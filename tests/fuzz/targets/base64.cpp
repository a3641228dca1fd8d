// Fuzz target "base64": the strict base64 codec (RFC 4648) that reads SASL messages and
// base64url tokens. What it accepts is canonical (encoding it again gives the same text); it
// decodes what it encodes; a decoded text is three bytes for every four characters.
#include "protocol/base64.hpp"

#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mssgate::fuzz::check;
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  if (auto decoded = mssgate::protocol::base64_decode(input)) {
    check(input.size() % 4 == 0, "base64: accepted text is in blocks of four");
    check(decoded->size() <= input.size() / 4 * 3, "base64: three bytes per block at most");
    check(mssgate::protocol::base64_encode(*decoded) == input,
          "base64: accepted text is canonical");
  }
  std::string encoded = mssgate::protocol::base64_encode(input);
  check(encoded.size() == (input.size() + 2) / 3 * 4, "base64: the encoded size");
  check(mssgate::protocol::base64_decode(encoded) == std::string(input),
        "base64: decodes what it encodes");
  return 0;
}
