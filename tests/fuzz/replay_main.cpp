// Runs a fuzz target without libFuzzer (any compiler): every file of the corpus and regression
// folders given, then a bounded number of deterministic mutations of them (byte changes,
// insertions of the target's dictionary words, cuts, splices). ctest runs it under the
// sanitizers of the test build; a real fuzzing run uses the libFuzzer build (README.md).
//   fuzz_replay_TARGET [--mutations N] [--dict FILE] [--max-len N] PATH...
// A PATH is a file or a folder (its files, not its subfolders; names starting with "." and
// README files are skipped). At least one input must be found. When an input breaks, it is
// written to fuzz-replay-failure.bin in the working folder before the process aborts.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input under test, for the abort handler.
const std::string* g_current = nullptr;

void write_current_input(int signal_number) {
  if (g_current != nullptr) {
    int fd = ::open("fuzz-replay-failure.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t written = ::write(fd, g_current->data(), g_current->size());
      (void)written;
      ::close(fd);
    }
    static const char kNote[] = "replay: the failing input is in fuzz-replay-failure.bin\n";
    ssize_t noted = ::write(2, kNote, sizeof kNote - 1);
    (void)noted;
  }
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One dictionary line in libFuzzer's format (name="value", or "value"), with its \\, \" and
// \xNN escapes; nullopt for a comment, a blank line or a line that is not an entry.
std::optional<std::string> dictionary_word(const std::string& line) {
  size_t open = line.find('"');
  size_t close = line.rfind('"');
  if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open)
    return std::nullopt;
  std::string word;
  for (size_t i = open + 1; i < close; ++i) {
    if (line[i] != '\\' || i + 1 >= close) {
      word += line[i];
    } else if (line[i + 1] == 'x' && i + 3 < close && hex_digit(line[i + 2]) >= 0 &&
               hex_digit(line[i + 3]) >= 0) {
      word += static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3]));
      i += 3;
    } else {
      word += line[++i];
    }
  }
  return word;
}

std::vector<std::string> read_dictionary(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read the dictionary %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    if (auto word = dictionary_word(line)) words.push_back(std::move(*word));
  }
  return words;
}

bool skipped(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  return name.empty() || name[0] == '.' || name.rfind("README", 0) == 0;
}

void add_inputs(const std::string& where, std::vector<std::string>& inputs) {
  std::filesystem::path path(where);
  if (std::filesystem::is_regular_file(path)) {
    inputs.push_back(read_file(path));
    return;
  }
  if (!std::filesystem::is_directory(path)) {
    std::fprintf(stderr, "replay: no file or folder %s\n", where.c_str());
    std::exit(2);
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.is_regular_file() && !skipped(entry.path())) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());  // the same order, so the same mutations, every run
  for (const auto& file : files)
    inputs.push_back(read_file(file));
}

struct Mutator {
  const std::vector<std::string>& seeds;
  const std::vector<std::string>& words;
  size_t max_len;
  std::mt19937_64 random{20261201};

  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(random() % n); }

  void mutate_once(std::string& input) {
    size_t at = below(input.size() + 1);
    switch (random() % 7) {
      case 0:
        if (!input.empty()) input[below(input.size())] = static_cast<char>(random());
        break;
      case 1:
        if (!input.empty()) {
          size_t i = below(input.size());
          input[i] = static_cast<char>(input[i] ^ (1 << below(8)));
        }
        break;
      case 2:
        if (!words.empty()) input.insert(at, words[below(words.size())]);
        break;
      case 3:
        if (!input.empty()) input.erase(below(input.size()), 1 + below(16));
        break;
      case 4: {
        const std::string& other = seeds[below(seeds.size())];
        size_t from = below(other.size());
        input.insert(at, other, from, 1 + below(256));
        break;
      }
      case 5:
        if (!input.empty()) {
          size_t from = below(input.size());
          std::string copy = input.substr(from, 1 + below(64));
          input.insert(at, copy);
        }
        break;
      default:
        input.insert(at, std::to_string(random() % 100000));
        break;
    }
  }

  std::string next() {
    std::string input = seeds[below(seeds.size())];
    int mutations = 1 + static_cast<int>(below(8));
    for (int m = 0; m < mutations; ++m)
      mutate_once(input);
    if (input.size() > max_len) input.resize(max_len);
    return input;
  }
};

void run_one(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  mssgate::fuzz::every_cut() = true;  // every input checked whole and in every kind of pieces
  long mutations = 2000;
  size_t max_len = 1 << 20;
  std::vector<std::string> words;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
    } else if (arg == "--dict" && i + 1 < argc) {
      words = read_dictionary(argv[++i]);
    } else if (arg == "--max-len" && i + 1 < argc) {
      max_len = static_cast<size_t>(std::atol(argv[++i]));
    } else {
      add_inputs(arg, seeds);
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "replay: no input found: give the corpus folder\n");
    return 2;
  }
  std::signal(SIGABRT, write_current_input);
  std::signal(SIGSEGV, write_current_input);
  auto started = std::chrono::steady_clock::now();
  for (const auto& seed : seeds)
    run_one(seed);
  Mutator mutator{seeds, words, max_len};
  for (long i = 0; i < mutations; ++i)
    run_one(mutator.next());
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%zu seeds and %ld mutations ran without a fault in %.1f s (%zu dictionary words)\n",
              seeds.size(), mutations, seconds, words.size());
  return 0;
}
