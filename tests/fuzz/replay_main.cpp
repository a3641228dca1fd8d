// Runs a fuzz target without libFuzzer (any compiler): every seed, then a bounded number of
// deterministic mutations of them. ctest runs this under the sanitizers; a real fuzzing run
// uses the libFuzzer build (see README.md).
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  const std::vector<std::string> seeds = {
      "a1 CAPABILITY\r\n",
      "a2 ID (\"name\" \"client\" \"version\" NIL)\r\n",
      "a3 AUTHENTICATE EXTERNAL\r\nYXBwQHRlc3QuZnI=\r\n",
      "a4 AUTHENTICATE EXTERNAL =\r\n",
      "a5 LOGIN {4}\r\nuser {6+}\r\nsecret\r\n",
      "a6 APPEND INBOX (\\Seen) {10}\r\n0123456789\r\n",
      // One seed in two literals, for the line length; so are the two after a \x01 below, whose
      // escape would otherwise take the next hex digits.
      // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): the literals are joined on purpose.
      "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\nM2 OK [CAPABILITY IMAP4rev1 IDLE] "
      "Logged in\r\n",
      "a7 X \"quoted \\\"string\\\"\" ((nested) list)\r\n~{3}\r\nabc\r\n",
      "From: \"A, B\" <a@b.fr>, c@d.fr (x)\r\nTo: g: e@f.fr;\r\n\r\n..body\r\n.\r\n",
      "From: =?utf-8?q?H=C3=B4?= =?iso-8859-1?b?SPQ=?= (c (d) \\) e)\r\n <@r.fr:\"x y\"@[1.2.3.4]>,"
      "\r\n\tg: a . b@c . d;\r\nSender: x@y.fr\r\n\r\n",
      "250-mx\r\n250-SIZE 100\r\n250 DSN\r\n550 5.1.1 no\r\n",
      "FROM:<a@b.fr> SIZE=10 BODY=8BITMIME",
      "user=a@b.fr\x01"
      "auth=Bearer abc.def-ghi\x01\x01",
      "n,a=a=2Cb@c.fr,\x01"
      "auth=Bearer tok\x01\x01",
      "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln",
      "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
  };
  long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
  std::mt19937_64 random(20261123);
  long runs = 0;
  for (const auto& seed : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++runs;
  }
  static const char kInteresting[] = "{}()\"\\+*=~ \r\n\0aZ09";
  for (long i = 0; i < iterations; ++i) {
    std::string input = seeds[random() % seeds.size()];
    int mutations = 1 + static_cast<int>(random() % 8);
    for (int m = 0; m < mutations; ++m) {
      size_t at = input.empty() ? 0 : random() % input.size();
      switch (random() % 5) {
        case 0:
          if (!input.empty()) input[at] = static_cast<char>(random());
          break;
        case 1:
          input.insert(at, 1, kInteresting[random() % (sizeof kInteresting - 1)]);
          break;
        case 2:
          if (!input.empty()) input.erase(at, 1 + random() % 4);
          break;
        case 3:
          input.insert(at, seeds[random() % seeds.size()]);
          break;
        case 4:
          input.insert(at, std::to_string(random() % 5000));
          break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    ++runs;
  }
  std::printf("%ld inputs ran without a fault\n", runs);
  return 0;
}
