// Durable events per second of the indicator journal, and how long a producer waits, on SQLite
// and on PostgreSQL.
//
//   mssgate_journal_bench [--markdown FILE] [--journal-dir DIR] [--postgresql-env FILE]
//                         [--only sqlite|postgresql] [--rounds N]
//
// Each producer records one event and waits until the journal says it is durable before it
// records the next, as a session does (its reply waits for the event). Producers are chained
// callbacks, not threads: the next event of a producer is recorded from the callback of its
// last one, so a thousand producers cost no thousand threads. Runs: 1, 8 and 1000 producers,
// each bounded by a count of events and a time limit; then an open loop that records 10,000
// events a second on a fixed schedule for a few seconds, whatever the answers, and reports the
// wait of each event (p50, p99, max).
//
// SQLite: a journal (WAL, synchronous = FULL, with its JSON-lines log) in a temporary directory
// under DIR (default the system's temporary directory), removed at the end. PostgreSQL, when
// --postgresql-env names a postgres.env written by scripts/postgres: its database emptied
// first (the bench's own server, never one in use). With --markdown, the section
// "## Indicator journal" of FILE is replaced (or appended); the rest of the file is kept.

#include <sys/statfs.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "bench/markdown_section.hpp"
#include "storage/clock.hpp"
#include "storage/indicator_journal.hpp"
#include "storage/journal_store.hpp"
#include "storage/postgresql.hpp"
#include "tests/postgresql/postgres_env.hpp"

#ifndef MSSGATE_BUILD_TYPE
#define MSSGATE_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
namespace fs = std::filesystem;
namespace storage = mssgate::storage;

constexpr std::string_view kSectionHeading = "## Indicator journal";
constexpr std::string_view kDocumentCode = "11488-4";

struct ClosedRun {
  int producers;
  uint64_t events;  // the run's count, shared by the producers
};
constexpr ClosedRun kClosedRuns[] = {{1, 2000}, {8, 8000}, {1000, 200000}};
constexpr Seconds kRunLimit{20.0};
constexpr double kOpenLoopRate = 10000;  // events a second
constexpr Seconds kOpenLoopLength{3.0};

[[noreturn]] void fail(const std::string& why) {
  throw std::runtime_error(why);
}

// An event as a session records it for a sent message with one CDA document.
storage::IndicatorEvent sample_event(const std::string& key) {
  storage::IndicatorEvent event;
  event.key = key;
  event.at_ms = storage::now_ms();
  event.day = storage::day_of(event.at_ms, true);
  event.direction = storage::Direction::kSent;
  event.mailbox = "app.hopital@test.mssante.fr";
  event.mailbox_type = mssgate::protocol::MailboxType::kApp;
  event.auth_mode = storage::AuthMode::kCertificate;
  event.nil = "DEV935997";
  event.message_id = "<" + key + "@hopital.mssante.fr>";
  event.queue_id = "4Xb3kQ1zYHz9sW";
  event.size = 1 << 20;
  event.recipients = 1;
  event.to_same_operator = 1;
  event.xdm = true;
  event.documents.push_back(
      {std::string(kDocumentCode), "2.16.840.1.113883.6.1", storage::InsClass::kQualified});
  event.ins = storage::InsClass::kQualified;
  event.claim_codecda = std::string(kDocumentCode);
  event.claim_ins = storage::ClaimedIns::kYes;
  event.claim_xdm_subject = true;
  return event;
}

// Where a journal is: the options that open it, a name for the report.
struct Store {
  std::string label;
  std::function<storage::IndicatorJournal::Options(const std::string& run)> options;
};

// Waits of events, in microseconds.
struct Waits {
  std::vector<double> micros;
  double percentile(double p) {
    if (micros.empty()) return 0;
    std::sort(micros.begin(), micros.end());
    size_t index = static_cast<size_t>(p * static_cast<double>(micros.size() - 1));
    return micros[index];
  }
};

struct Result {
  std::string store;
  std::string run;  // "1000 producers", "10,000/s"
  uint64_t durable = 0;
  uint64_t failed = 0;
  uint64_t commits = 0;
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::string rounds;  // every round's figure the median was taken by, in the order run
  double events_per_s() const { return seconds > 0 ? static_cast<double>(durable) / seconds : 0; }
};

// The producers of a closed-loop run. A producer's event answered, its next one is made and
// recorded on a thread of its own (as a session's would be on an io thread), not on the
// journal's writer thread that runs the callback.
class ChainedProducers {
 public:
  ChainedProducers(storage::IndicatorJournal& journal, std::string prefix, uint64_t events,
                   Clock::time_point deadline)
      : journal_(journal), prefix_(std::move(prefix)), events_(events), deadline_(deadline) {}

  // Starts `producers` chains and returns once every chain has ended.
  void run(int producers) {
    std::thread maker([this] { make(); });
    {
      std::lock_guard lock(mutex_);
      ready_ += static_cast<uint64_t>(producers);
    }
    wake_.notify_all();
    maker.join();
  }

  uint64_t durable = 0, failed = 0;
  Waits waits;

 private:
  // Makes and records the next event of each producer whose last one was answered.
  void make() {
    for (;;) {
      uint64_t count = 0;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return ready_ > 0 || (in_flight_ == 0 && started_); });
        if (ready_ == 0) return;  // nothing in flight and nothing to start: the run is over
        started_ = true;
        bool over = issued_ >= events_ || Clock::now() >= deadline_;
        count = over ? 0 : std::min(ready_, events_ - issued_);
        ready_ = 0;
        in_flight_ += count;
        if (count == 0 && in_flight_ == 0) return;
      }
      for (uint64_t i = 0; i < count; ++i) {
        auto sent = Clock::now();
        journal_.record(sample_event(prefix_ + std::to_string(issued_++)), [this, sent](bool ok) {
          double micros = std::chrono::duration<double, std::micro>(Clock::now() - sent).count();
          bool first_ready = false;
          {
            std::lock_guard lock(mutex_);
            (ok ? durable : failed) += 1;
            waits.micros.push_back(micros);
            --in_flight_;
            first_ready = ready_++ == 0;
          }
          // The maker takes every ready producer at once: woken once, not once an answer.
          if (first_ready) wake_.notify_one();
        });
      }
    }
  }

  storage::IndicatorJournal& journal_;
  std::string prefix_;
  uint64_t events_;
  Clock::time_point deadline_;
  std::mutex mutex_;
  std::condition_variable wake_;
  uint64_t ready_ = 0;      // producers whose next event is to be made
  uint64_t in_flight_ = 0;  // events recorded, not yet answered
  uint64_t issued_ = 0;     // only the maker thread changes it
  bool started_ = false;
};

// Every round has a journal and keys of its own: an event met again would be a duplicate, not
// a new event to make durable.
void check_all_new(const storage::IndicatorJournal& journal, const Result& r) {
  if (journal.stats().recorded != r.durable)
    fail(r.store + ", " + r.run + ": " + std::to_string(r.durable) + " events answered, " +
         std::to_string(journal.stats().recorded) + " recorded as new");
}

Result closed_loop(const Store& store, const ClosedRun& run, int round) {
  std::string name = "closed-" + std::to_string(run.producers) + "-round-" + std::to_string(round);
  storage::IndicatorJournal journal(store.options(name));
  auto start = Clock::now();
  ChainedProducers producers(journal, name + "-", run.events,
                             start + std::chrono::duration_cast<Clock::duration>(kRunLimit));
  producers.run(run.producers);
  Seconds elapsed = Clock::now() - start;
  journal.stop();
  Result r;
  r.store = store.label;
  r.run = std::to_string(run.producers) + (run.producers == 1 ? " producer" : " producers");
  r.durable = producers.durable;
  r.failed = producers.failed;
  r.commits = journal.stats().commits;
  r.seconds = elapsed.count();
  r.p50_ms = producers.waits.percentile(0.50) / 1000;
  r.p99_ms = producers.waits.percentile(0.99) / 1000;
  r.max_ms = producers.waits.percentile(1.0) / 1000;
  check_all_new(journal, r);
  return r;
}

// Events recorded on a fixed schedule, whatever the answers: the wait of each.
Result open_loop(const Store& store, int round) {
  std::string name = "open-round-" + std::to_string(round);
  storage::IndicatorJournal journal(store.options(name));
  std::mutex mutex;
  std::condition_variable done;
  Waits waits;
  uint64_t durable = 0, failed = 0, answered = 0;
  const auto total = static_cast<uint64_t>(kOpenLoopRate * kOpenLoopLength.count());
  auto start = Clock::now();
  for (uint64_t i = 0; i < total; ++i) {
    auto due = start + std::chrono::duration_cast<Clock::duration>(
                           Seconds(static_cast<double>(i) / kOpenLoopRate));
    std::this_thread::sleep_until(due);
    auto sent = Clock::now();
    journal.record(sample_event(name + "-" + std::to_string(i)), [&, sent](bool ok) {
      double micros = std::chrono::duration<double, std::micro>(Clock::now() - sent).count();
      std::lock_guard lock(mutex);
      (ok ? durable : failed) += 1;
      waits.micros.push_back(micros);
      if (++answered == total) done.notify_all();
    });
  }
  {
    std::unique_lock lock(mutex);
    done.wait(lock, [&] { return answered == total; });
  }
  Seconds elapsed = Clock::now() - start;
  journal.stop();
  Result r;
  r.store = store.label;
  r.run = "10,000 events/s for " + std::to_string(static_cast<int>(kOpenLoopLength.count())) + " s";
  r.durable = durable;
  r.failed = failed;
  r.commits = journal.stats().commits;
  r.seconds = elapsed.count();
  r.p50_ms = waits.percentile(0.50) / 1000;
  r.p99_ms = waits.percentile(0.99) / 1000;
  r.max_ms = waits.percentile(1.0) / 1000;
  check_all_new(journal, r);
  return r;
}

// The file system the journal is on: a tmpfs directory would make every sync free.
std::string file_system_name(const fs::path& directory) {
  struct statfs info {};
  if (statfs(directory.c_str(), &info) != 0) return "unknown";
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    default:
      return "other";
  }
}

class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(const fs::path& parent) {
    std::string pattern = (parent / "mssgate-journal-bench-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      fail("cannot create a temporary directory under " + parent.string());
    path_ = pattern;
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string events_per_commit(const Result& r) {
  return format("%.1f",
                r.commits ? static_cast<double>(r.durable) / static_cast<double>(r.commits) : 0.0);
}

void print(const Result& r) {
  std::printf(
      "%-40s %-26s %7llu durable in %6.2f s %10.1f events/s %6llu commits (%s/commit)  "
      "wait p50 %.2f p99 %.2f max %.2f ms%s\n",
      r.store.c_str(), r.run.c_str(), static_cast<unsigned long long>(r.durable), r.seconds,
      r.events_per_s(), static_cast<unsigned long long>(r.commits), events_per_commit(r).c_str(),
      r.p50_ms, r.p99_ms, r.max_ms, r.failed ? "  FAILED EVENTS" : "");
  std::fflush(stdout);
}

std::string markdown(const std::vector<Result>& results, const std::string& file_system,
                     int rounds) {
  std::ostringstream out;
  out << kSectionHeading << "\n\n";
  out << "`bench/journal_bench.cpp`, run as `build/release/bench/mssgate_journal_bench "
         "--postgresql-env <scripts/postgres's postgres.env> --markdown docs/benchmarks.md` "
         "(CMake build type "
      << MSSGATE_BUILD_TYPE << ", " << std::thread::hardware_concurrency()
      << " cores, the database server on the same cores). Each producer records an event (a "
         "sent message with one CDA document) and waits until the journal says it is durable "
         "before recording the next, as a session waits before its reply; a thousand producers "
         "are a thousand such chains. Closed-loop runs: 1, 8 and 1000 producers, each bounded "
         "by its count of events and "
      << static_cast<int>(kRunLimit.count())
      << " s. The open loop records 10,000 events a second on a fixed schedule, whatever the "
         "answers; its waits are the latency a session sees at that load. Each run "
      << rounds
      << " times, the rounds of a store one after the other; the table shows the median round "
         "(by events/s; the open loop by its p99 wait), and the last column every round's figure. "
         "SQLite: WAL, "
         "`synchronous = FULL`, with the JSON-lines log, on "
      << file_system
      << ". PostgreSQL 15 (`fsync = on`, `synchronous_commit = on`, its own cluster on "
         "127.0.0.1), the store the gateways share, with the JSON-lines log.\n\n";
  out << "| journal | run | durable events | seconds | events/s | commits | events per commit | "
         "wait p50 / p99 / max (ms) | rounds: events/s (open loop: p99 ms) |\n";
  out << "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    out << "| " << r.store << " | " << r.run << " | " << r.durable
        << (r.failed ? " (" + std::to_string(r.failed) + " failed)" : "") << " | "
        << format("%.2f", r.seconds) << " | " << format("%.0f", r.events_per_s()) << " | "
        << r.commits << " | " << events_per_commit(r) << " | " << format("%.2f", r.p50_ms) << " / "
        << format("%.2f", r.p99_ms) << " / " << format("%.2f", r.max_ms) << " | " << r.rounds
        << " |\n";
  }
  return out.str();
}

// Every case of a store `rounds` times; the median round of each (by events a second, by the
// p99 wait for the open loop).
std::vector<Result> measure(const Store& store, int rounds) {
  auto median = [](std::vector<Result> of, auto key, const char* pattern) {
    std::string figures;
    for (const auto& r : of)
      figures += (figures.empty() ? "" : ", ") + format(pattern, key(r));
    std::sort(of.begin(), of.end(),
              [&](const Result& a, const Result& b) { return key(a) < key(b); });
    Result middle = of[of.size() / 2];
    middle.rounds = figures;
    return middle;
  };
  std::vector<Result> results;
  for (const auto& run : kClosedRuns) {
    std::vector<Result> each;
    for (int round = 0; round < rounds; ++round) {
      each.push_back(closed_loop(store, run, round));
      print(each.back());
    }
    results.push_back(median(
        each, [](const Result& r) { return r.events_per_s(); }, "%.0f"));
  }
  std::vector<Result> each;
  for (int round = 0; round < rounds; ++round) {
    each.push_back(open_loop(store, round));
    print(each.back());
  }
  results.push_back(median(
      each, [](const Result& r) { return r.p99_ms; }, "%.2f"));
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  std::string markdown_path, postgresql_env, only;
  int rounds_count = 3;
  fs::path journal_parent;
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    if (argument == "--markdown" && i + 1 < argc) {
      markdown_path = argv[++i];
    } else if (argument == "--journal-dir" && i + 1 < argc) {
      journal_parent = argv[++i];
    } else if (argument == "--postgresql-env" && i + 1 < argc) {
      postgresql_env = argv[++i];
    } else if (argument == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (argument == "--rounds" && i + 1 < argc) {
      rounds_count = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--markdown FILE] [--journal-dir DIR] [--postgresql-env FILE] "
                   "[--only sqlite|postgresql] [--rounds N]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    if (journal_parent.empty()) journal_parent = fs::temp_directory_path();
    TemporaryDirectory directory(journal_parent);
    std::string file_system = file_system_name(directory.path());
    std::vector<Store> stores;
    if (only != "postgresql")
      stores.push_back({"SQLite", [&](const std::string& run) {
                          return storage::IndicatorJournal::Options{
                              (directory.path() / (run + ".db")).string(),
                              (directory.path() / (run + ".jsonl")).string()};
                        }});
    storage::PostgresqlSettings settings;
    if (!postgresql_env.empty() && only != "sqlite") {
      auto env = mssgate::testing_postgres::read_postgres_env(postgresql_env);
      if (env["PG_URL"].empty()) fail("no PG_URL in " + postgresql_env);
      settings.conninfo = env["PG_URL"];
      settings.password = mssgate::testing_postgres::first_line(env["PG_PASSWORD_FILE"]);
      settings.application_name = "mssgate-journal-bench";
      stores.push_back({"PostgreSQL", [&](const std::string& run) {
                          storage::PostgresqlConnection db(settings);
                          db.exec_script("emptying the bench's database",
                                         "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
                          storage::IndicatorJournal::Options options{
                              "", (directory.path() / ("pg-" + run + ".jsonl")).string()};
                          options.open_store = [&settings] {
                            return storage::open_postgresql_journal(settings, "bench");
                          };
                          return options;
                        }});
    }
    std::vector<Result> results;
    for (const auto& store : stores) {
      auto measured = measure(store, rounds_count);
      results.insert(results.end(), measured.begin(), measured.end());
    }
    if (!markdown_path.empty() &&
        !mssgate::bench::write_markdown_section(markdown_path, kSectionHeading,
                                                markdown(results, file_system, rounds_count)))
      fail("cannot write " + markdown_path);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mssgate_journal_bench: %s\n", e.what());
    return 1;
  }
}
