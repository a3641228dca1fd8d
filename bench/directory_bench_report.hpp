#pragma once
// What the directory benchmark measured, and its section of docs/benchmarks.md.

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "bench/directory_bench_data.hpp"
#include "storage/directory_snapshot.hpp"

namespace mssgate::bench {

struct Options {
  size_t mailboxes = 1'000'000;
  int runs = 5;
  std::filesystem::path parent = std::filesystem::temp_directory_path();
  std::string markdown;
};

// Exits with a usage line on a bad argument.
Options parse_options(int argc, char** argv);

struct Context {
  std::string cpu;
  unsigned cores = 0;
  std::string load_before, load_after;  // /proc/loadavg's first three figures
};

Context machine_context();
std::string read_loadavg();

struct ImportResult {
  double seconds = 0;
  size_t file_bytes = 0;
};

struct BuildResult {
  std::vector<double> seconds;  // sorted
  storage::DirectoryCounts counts;
};

struct MemoryResult {
  size_t retained_malloc = 0;  // mallinfo2 in use after the build minus before
  size_t rss_growth = 0;
  size_t peak_rss_growth = 0;
  size_t snapshot_count = 0;  // DirectorySnapshot::memory_bytes()
  size_t node_map = 0;        // the mailboxes alone in an unordered_map<string, Mailbox>
};

struct LookupResult {
  std::string what;
  size_t calls = 0;
  double mean_ns = 0, p50_ns = 0, p99_ns = 0, max_ns = 0;
  size_t answered = 0;
};

struct Report {
  Context context;
  DirectoryShape shape;
  const GeneratedDirectory& directory;
  ImportResult import;
  BuildResult builds;
  MemoryResult memory;
  std::vector<LookupResult> lookups;
  std::vector<std::pair<unsigned, double>> parallel;  // threads, find_mailbox per second
  std::vector<LookupResult> store_lookups;
  Options options;
  double clock_ns = 0;  // reading the clock twice, inside every call timed alone
};

std::string markdown_section(const Report& report);

// Replaces the section under its heading (up to the next "## " heading or the end), or appends
// it; the rest of the file is kept as it is.
void write_section(const std::filesystem::path& path, const std::string& section);

}  // namespace mssgate::bench
