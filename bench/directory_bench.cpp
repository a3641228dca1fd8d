// The directory snapshot at scale: build time, memory and lookup latency.
//
//   mssgate_directory_bench [--mailboxes N] [--runs R] [--dir DIR] [--markdown FILE]
//
// A SQLite directory is generated in a temporary folder (under DIR, default the system's
// temporary directory; removed at the end): N mailboxes (default 1,000,000; realistic addresses,
// about 70 % PER, 12 % ORG, 15 % APP, 3 % CAB), 150,000 SPKI bindings (one per applicative
// mailbox) and 50,000 issuer-serial bindings (12,500 certificates of 4 issuers, 4 mailboxes
// each), 300,000 professionals each owning a personal mailbox plus 100,000 delegations and
// 30,000 co-holdings, 10,000 allowed senders; written in one transaction (import time and file
// size reported for context). Then:
// (a) the snapshot is built R times (default 5) from the file, as the refresh thread does (read
//     every table in one transaction, build): the median, fastest and slowest;
// (b) its memory: the bytes malloc holds (mallinfo2: in-use arena bytes plus mmapped chunks)
//     before and after one build, the source closed and malloc_trim'd, so that only what the
//     snapshot keeps counts; the resident set's growth and its peak during the build
//     (/proc/self/clear_refs, VmHWM); the snapshot's own count of its tables' capacity; and for
//     comparison the same mailboxes alone in a std::unordered_map<std::string, Mailbox>;
// (c) lookups through DirectoryLookup, keys drawn at random: mean over a batch, and p50/p99/max
//     of 200,000 calls timed one by one (the clock's own cost, measured, included), plus the same
//     questions asked of the SQLite store, as the daemon did before the snapshot.
// With --markdown, the section "## Directory snapshot" of FILE is replaced (or appended).

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/directory_bench_data.hpp"
#include "bench/directory_bench_report.hpp"
#include "storage/directory_source.hpp"

namespace {

using namespace mssgate;
using namespace mssgate::bench;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr uint64_t kSeed = 20261130;
constexpr size_t kBatchLookups = 1'000'000;
constexpr size_t kTimedLookups = 200'000;
constexpr size_t kStoreLookups = 20'000;

double seconds_since(Clock::time_point begin) {
  return std::chrono::duration<double>(Clock::now() - begin).count();
}

size_t malloc_bytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// A "Key: value kB" line of /proc/self/status, in bytes.
size_t status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

MemoryResult measure_memory(const std::string& path, size_t mailboxes_alone_count,
                            const GeneratedDirectory& directory,
                            std::shared_ptr<const storage::DirectorySnapshot>& kept) {
  MemoryResult r;
  malloc_trim(0);
  size_t before = malloc_bytes();
  size_t rss_before = status_bytes("VmRSS");
  std::ofstream("/proc/self/clear_refs") << "5";  // the peak starts again from here
  {
    auto source = storage::open_sqlite_directory_source(path);
    kept = storage::load_snapshot(*source);
  }
  malloc_trim(0);
  r.retained_malloc = malloc_bytes() - before;
  r.rss_growth = status_bytes("VmRSS") - rss_before;
  r.peak_rss_growth = status_bytes("VmHWM") - rss_before;
  r.snapshot_count = kept->memory_bytes();
  before = malloc_bytes();
  {
    std::unordered_map<std::string, storage::Mailbox> map;
    map.reserve(mailboxes_alone_count);
    for (size_t i = 0; i < mailboxes_alone_count; ++i)
      map.emplace(directory.mailboxes[i].address, directory.mailboxes[i]);
    r.node_map = malloc_bytes() - before;
  }
  return r;
}

BuildResult measure_builds(const std::string& path, int runs) {
  BuildResult r;
  for (int i = 0; i < runs; ++i) {
    auto source = storage::open_sqlite_directory_source(path);
    auto begin = Clock::now();
    auto snapshot = storage::load_snapshot(*source);
    r.seconds.push_back(seconds_since(begin));
    r.counts = snapshot->counts();
  }
  std::sort(r.seconds.begin(), r.seconds.end());
  return r;
}

// `ask(i)` for i in [0, count): the mean of a batch, then calls timed one by one; at most
// `limit` calls each.
template <class Ask>
LookupResult measure_lookups(std::string what, size_t count, size_t limit, Ask&& ask) {
  LookupResult r;
  r.what = std::move(what);
  size_t sink = 0;
  size_t batch = std::min(kBatchLookups, limit);
  auto begin = Clock::now();
  for (size_t i = 0; i < batch; ++i)
    sink += ask(i % count);
  r.mean_ns = seconds_since(begin) * 1e9 / static_cast<double>(batch);
  r.calls = batch;
  std::vector<double> samples;
  size_t timed = std::min(kTimedLookups, limit);
  samples.reserve(timed);
  for (size_t i = 0; i < timed; ++i) {
    auto one = Clock::now();
    sink += ask(i % count);
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - one).count());
  }
  std::sort(samples.begin(), samples.end());
  r.p50_ns = samples[samples.size() / 2];
  r.p99_ns = samples[samples.size() * 99 / 100];
  r.max_ns = samples.back();
  r.answered = sink;
  return r;
}

// What reading the clock twice costs, the median of many: it is inside every timed call.
double clock_cost_ns() {
  std::vector<double> samples;
  for (int i = 0; i < 100'000; ++i) {
    auto one = Clock::now();
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - one).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// The questions of a sign-in and of the indicators, with keys drawn from the directory.
struct Questions {
  std::vector<std::string> present, absent, senders_of;
  std::vector<storage::CertificateKeys> certificates;
  std::vector<storage::HolderAttachment> attachments;
};

Questions draw_questions(const GeneratedDirectory& d) {
  std::mt19937_64 random(kSeed + 1);
  Questions q;
  for (size_t i = 0; i < 1'000'000; ++i) {
    const std::string& address = d.mailboxes[random() % d.mailboxes.size()].address;
    q.present.push_back(address);
    // Another operator's, or an unknown name at one of this operator's domains.
    q.absent.push_back(i % 2 ? "x" + address : "labo" + std::to_string(i) + "@autre.mssante.fr");
    q.senders_of.push_back(d.mailboxes[random() % d.mailboxes.size()].address);
  }
  for (size_t i = 0; i < 200'000; ++i) {
    const auto& b = d.bindings[random() % d.bindings.size()];
    bool spki = b.match == storage::CertificateMatch::kSpkiSha256;
    q.certificates.push_back(
        {spki ? b.value : std::string(64, 'f'), spki ? "CN=OTHER CA|01" : b.value});
    q.attachments.push_back(d.attachments[random() % d.attachments.size()]);
  }
  return q;
}

std::vector<LookupResult> measure_directory(const storage::DirectoryLookup& directory,
                                            const Questions& q, size_t limit) {
  std::vector<LookupResult> out;
  out.push_back(measure_lookups("find_mailbox, present", q.present.size(), limit, [&](size_t i) {
    return directory.find_mailbox(q.present[i]).value ? 1u : 0u;
  }));
  out.push_back(measure_lookups("find_mailbox, absent", q.absent.size(), limit, [&](size_t i) {
    return directory.find_mailbox(q.absent[i]).value ? 1u : 0u;
  }));
  out.push_back(
      measure_lookups("mailboxes_for_certificate", q.certificates.size(), limit, [&](size_t i) {
        return directory.mailboxes_for_certificate(q.certificates[i]).value.size();
      }));
  out.push_back(measure_lookups("holder_role", q.attachments.size(), limit, [&](size_t i) {
    const auto& a = q.attachments[i];
    return directory.holder_role(a.holder, a.mailbox).value ? 1u : 0u;
  }));
  out.push_back(measure_lookups("allowed_senders", q.senders_of.size(), limit, [&](size_t i) {
    return directory.allowed_senders(q.senders_of[i]).value.size();
  }));
  return out;
}

// find_mailbox from `threads` threads at once: lookups per second in all.
double parallel_lookups_per_second(const storage::DirectoryLookup& directory, const Questions& q,
                                   unsigned threads) {
  std::vector<std::thread> workers;
  auto begin = Clock::now();
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      size_t found = 0;
      for (size_t i = t; i < q.present.size(); i += threads)
        found += directory.find_mailbox(q.present[i]).value ? 1 : 0;
      if (found == 0) std::fprintf(stderr, "no lookup found anything\n");
    });
  }
  for (auto& w : workers)
    w.join();
  return static_cast<double>(q.present.size()) / seconds_since(begin);
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  Context context = machine_context();
  fs::path folder = options.parent / ("mssgate-directory-bench-" + std::to_string(::getpid()));
  fs::create_directories(folder);
  std::string path = (folder / "directory.db").string();

  DirectoryShape shape = shape_for(options.mailboxes);
  auto begin = Clock::now();
  GeneratedDirectory directory = generate_directory(shape, kSeed);
  std::fprintf(stderr, "generated %zu mailboxes in %.1f s\n", directory.mailboxes.size(),
               seconds_since(begin));
  ImportResult import{import_directory(directory, path), fs::file_size(path)};
  std::fprintf(stderr, "imported in %.1f s, %zu bytes\n", import.seconds, import.file_bytes);

  BuildResult builds = measure_builds(path, options.runs);
  std::fprintf(stderr, "built %d times, median %.3f s\n", options.runs,
               builds.seconds[builds.seconds.size() / 2]);
  std::shared_ptr<const storage::DirectorySnapshot> snapshot;
  MemoryResult memory = measure_memory(path, directory.mailboxes.size(), directory, snapshot);

  Questions questions = draw_questions(directory);
  auto lookups = measure_directory(*snapshot, questions, SIZE_MAX);
  std::vector<std::pair<unsigned, double>> parallel;
  for (unsigned threads : {1u, 2u})
    parallel.emplace_back(threads, parallel_lookups_per_second(*snapshot, questions, threads));
  auto store = storage::open_sqlite_directory(path);
  auto store_lookups = measure_directory(*store, questions, kStoreLookups);
  store.reset();
  context.load_after = read_loadavg();

  Report report{context, shape,    directory,     import,  builds,         memory,
                lookups, parallel, store_lookups, options, clock_cost_ns()};
  std::string section = markdown_section(report);
  std::printf("%s\n", section.c_str());
  if (!options.markdown.empty()) write_section(options.markdown, section);
  fs::remove_all(folder);
  return 0;
}
