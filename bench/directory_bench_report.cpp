#include "bench/directory_bench_report.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "bench/markdown_section.hpp"

#ifndef MSSGATE_BUILD_TYPE
#define MSSGATE_BUILD_TYPE "unknown"
#endif

namespace mssgate::bench {
namespace {

constexpr std::string_view kSectionHeading = "## Directory snapshot";

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string mib(size_t bytes) {
  return format("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string per_mailbox(size_t bytes, size_t mailboxes) {
  return format("%.1f", static_cast<double>(bytes) / static_cast<double>(mailboxes));
}

void describe(std::ostringstream& out, const Report& r) {
  const auto& d = r.directory;
  const auto& c = r.builds.counts;
  out << "`bench/directory_bench.cpp`, run as `build/release/bench/mssgate_directory_bench "
         "--markdown docs/benchmarks.md` (CMake build type "
      << MSSGATE_BUILD_TYPE << ", " << r.context.cpu << ", " << r.context.cores
      << " cores shared with other work: load average " << r.context.load_before << " before, "
      << r.context.load_after
      << " after). The directory, generated (fixed seed) then written into a SQLite directory in "
         "one transaction: "
      << c.mailboxes << " mailboxes (" << d.per << " PER, " << d.org << " ORG, " << d.app
      << " APP, " << d.cab
      << " CAB; 96 % active; addresses such as "
         "`jean.martin.12@medecin.mssante.fr`, `secretariat.cardiologie@ch-lyon.mssante.fr`, "
         "`app.dxcare.3@clinique-nantes.mssante.fr`, "
      << d.domains << " domains, " << per_mailbox(d.address_bytes, d.mailboxes.size())
      << " bytes of address on average), " << c.bindings
      << " certificate bindings (one SPKI SHA-256 per applicative mailbox, and certificates of 4 "
         "issuers bound by issuer and serial to 4 mailboxes each), "
      << c.holders << " professionals with " << c.attachments
      << " attachments (each the owner of a personal mailbox; delegations to ORG and co-holdings "
         "of CAB mailboxes), "
      << c.senders << " allowed senders. Import (one transaction, WAL, `synchronous = NORMAL`): "
      << format("%.1f", r.import.seconds)
      << " s; the file after a checkpoint: " << mib(r.import.file_bytes) << ".\n\n";
  out << "Build: what the refresh thread does, reading every table in one transaction and "
         "building the snapshot, "
      << r.options.runs
      << " times. Memory: the bytes malloc holds (glibc `mallinfo2`: arena bytes in use plus "
         "mmapped chunks) after one build minus before, the SQLite connection closed and "
         "`malloc_trim` called on both sides, so only what the snapshot keeps counts; the "
         "resident set's growth and its peak during the build (`VmHWM`, reset through "
         "`/proc/self/clear_refs`) come with it. Lookups: through `DirectoryLookup`, keys drawn "
         "at random from the directory (absent: another operator's address, or an unknown name "
         "at a known domain); the mean of a batch of up to 1,000,000 calls, then p50/p99/max of "
         "up to 200,000 calls timed one by one (each time includes reading the clock twice, "
      << format("%.0f ns", r.clock_ns)
      << " here); a batch's mean can be below the p50 of calls timed alone, as calls back to back "
         "overlap their cache misses. The SQLite store (one connection, a mutex, prepared "
         "statements: the daemon's path before the snapshot) is asked the same questions, 20,000 "
         "calls each.\n\n";
}

void build_table(std::ostringstream& out, const Report& r) {
  const auto& s = r.builds.seconds;
  size_t mailboxes = r.builds.counts.mailboxes;
  const auto& m = r.memory;
  out << "| snapshot of " << mailboxes << " mailboxes | figure |\n|---|---|\n";
  out << "| build, median of " << s.size() << " | " << format("%.3f s", s[s.size() / 2])
      << " (fastest " << format("%.3f", s.front()) << ", slowest " << format("%.3f", s.back())
      << ") |\n";
  out << "| memory the snapshot holds (malloc, after − before) | " << mib(m.retained_malloc) << ", "
      << per_mailbox(m.retained_malloc, mailboxes) << " bytes per mailbox |\n";
  out << "| its tables' capacity, as it counts them (`memory_bytes()`) | " << mib(m.snapshot_count)
      << " |\n";
  out << "| resident set: growth after the build, peak growth during it | " << mib(m.rss_growth)
      << ", " << mib(m.peak_rss_growth) << " |\n";
  out << "| for comparison: the mailboxes alone in `std::unordered_map<std::string, Mailbox>` "
         "(malloc) | "
      << mib(m.node_map) << ", " << per_mailbox(m.node_map, mailboxes) << " bytes per mailbox |\n";
  out << "| staleness with `refresh_interval = \"1s\"`: interval + median build | "
      << format("%.2f s", 1.0 + s[s.size() / 2]) << " at most |\n\n";
}

void lookup_table(std::ostringstream& out, const Report& r) {
  out << "| lookup | snapshot: mean | p50 | p99 | max | SQLite store: mean |\n";
  out << "|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < r.lookups.size(); ++i) {
    const auto& l = r.lookups[i];
    out << "| " << l.what << " | " << format("%.0f ns", l.mean_ns) << " | "
        << format("%.0f ns", l.p50_ns) << " | " << format("%.0f ns", l.p99_ns) << " | "
        << format("%.1f µs", l.max_ns / 1000) << " | ";
    if (i < r.store_lookups.size()) out << format("%.1f µs", r.store_lookups[i].mean_ns / 1000);
    out << " |\n";
  }
  out << "\n| threads | find_mailbox per second (present), all threads |\n|---|---|\n";
  for (const auto& [threads, rate] : r.parallel)
    out << "| " << threads << " | " << format("%.0f", rate) << " |\n";
}

}  // namespace

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--mailboxes" && has_value) {
      o.mailboxes = std::stoull(argv[++i]);
    } else if (a == "--runs" && has_value) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--dir" && has_value) {
      o.parent = argv[++i];
    } else if (a == "--markdown" && has_value) {
      o.markdown = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--mailboxes N] [--runs R] [--dir DIR] [--markdown FILE]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  if (o.mailboxes < 1000) o.mailboxes = 1000;
  return o;
}

std::string read_loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

Context machine_context() {
  Context c;
  c.cores = std::thread::hardware_concurrency();
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      c.cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  if (c.cpu.empty()) c.cpu = "unknown CPU";
  c.load_before = read_loadavg();
  return c;
}

std::string markdown_section(const Report& report) {
  std::ostringstream out;
  out << kSectionHeading << "\n\n";
  describe(out, report);
  build_table(out, report);
  lookup_table(out, report);
  return out.str();
}

void write_section(const std::filesystem::path& path, const std::string& section) {
  if (!write_markdown_section(path, kSectionHeading, section)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace mssgate::bench
