// Throughput of the message inspector (the indicator journal's benchmark is journal_bench.cpp).
//
//   mssgate_inspector_bench [--markdown FILE]
//
// Two messages, about 1 MiB and 20 MiB, each a multipart/mixed message with the X-MSS-*
// headers and one base64 IHE_XDM.ZIP attachment holding a CDA document and a large
// incompressible PDF-like entry, are fed to a MessageInspector in 16 KiB pieces (as the daemon
// reads them), round after round; the figure is the median of the rounds' MiB/s.
//
// Every loop is bounded by a count and a time limit. With --markdown, the section
// "## Message inspector" of FILE is replaced (or appended); the rest of
// the file is kept.

#include <sys/statfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "bench/markdown_section.hpp"
#include "protocol/base64.hpp"
#include "protocol/message_inspector.hpp"
#include "storage/clock.hpp"
#include "tests/unit/samples.hpp"

#ifndef MSSGATE_BUILD_TYPE
#define MSSGATE_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

namespace fs = std::filesystem;
namespace protocol = mssgate::protocol;
namespace storage = mssgate::storage;
namespace samples = mssgate::test_samples;

constexpr std::string_view kSectionHeading = "## Message inspector";
constexpr std::string_view kDocumentCode = "11488-4";

// Inspector loop: the daemon's read size, and the bounds on the rounds of each message.
constexpr size_t kFeedPieceBytes = 16 << 10;
constexpr int kMinRounds = 3;
constexpr int kMaxRounds = 60;
constexpr Seconds kMinSecondsPerMessage{2.0};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "mssgate_inspector_bench: %s\n", message.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------------------------
// The messages.

std::string base64_lines(std::string_view bytes) {
  std::string flat = protocol::base64_encode(bytes);
  std::string lines;
  lines.reserve(flat.size() + flat.size() / 76 * 2 + 2);
  for (size_t offset = 0; offset < flat.size(); offset += 76) {
    lines.append(flat, offset, 76);
    lines += "\r\n";
  }
  return lines;
}

// A PDF-like file of `size` bytes: a PDF header and trailer around random (incompressible)
// bytes, so that the archive is about as large as its content.
std::string incompressible_pdf(size_t size, uint64_t seed) {
  const std::string header = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n";
  const std::string trailer = "\n%%EOF\n";
  std::string pdf = header;
  pdf.reserve(size);
  std::mt19937_64 random(seed);
  size_t random_bytes =
      size > header.size() + trailer.size() ? size - header.size() - trailer.size() : 0;
  while (random_bytes >= 8) {
    uint64_t word = random();
    pdf.append(reinterpret_cast<const char*>(&word), 8);
    random_bytes -= 8;
  }
  for (; random_bytes > 0; --random_bytes)
    pdf += static_cast<char>(random() & 0xFF);
  return pdf + trailer;
}

std::string structured_message(const std::string& archive, const std::string& message_id) {
  const std::string boundary = "mssgate-bench-boundary";
  std::string message =
      "From: dr.martin@hopital.mssante.fr\r\n"
      "To: labo@labo.mssante.fr\r\n"
      "Subject: XDM/1.0/DDM Compte rendu\r\n"
      "Date: Mon, 23 Nov 2026 12:00:00 +0100\r\n"
      "Message-ID: <" +
      message_id +
      "@hopital.mssante.fr>\r\n"
      "MIME-Version: 1.0\r\n"
      "X-MSS-CODECDA: " +
      std::string(kDocumentCode) +
      "\r\n"
      "X-MSS-INS: O\r\n"
      "X-MSS-NIL: DEV935997\r\n"
      "Content-Type: multipart/mixed; boundary=\"" +
      boundary + "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n";
  message += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  message += "Bonjour, veuillez trouver le compte rendu ci-joint.\r\n";
  message += "--" + boundary +
             "\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             "Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n";
  message += base64_lines(archive);
  message += "\r\n--" + boundary + "--\r\n";
  return message;
}

// A message of about `target_bytes`: the PDF is sized so that base64 (4/3, plus CRLF every 76
// characters: 78 bytes per 57) and the rest bring the whole near the target.
std::string make_message(size_t target_bytes, uint64_t seed) {
  const size_t pdf_bytes = target_bytes / 78 * 57 - 4096;
  std::string archive =
      samples::xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", samples::cda(std::string(kDocumentCode))},
                    {"IHE_XDM/SUBSET01/DOC0002.PDF", incompressible_pdf(pdf_bytes, seed)}});
  return structured_message(archive, "bench-" + std::to_string(target_bytes));
}

// ---------------------------------------------------------------------------------------------
// (a) The inspector.

struct InspectorResult {
  std::string label;
  size_t message_bytes = 0;
  int rounds = 0;
  double median_mib_per_s = 0;
  double slowest_mib_per_s = 0;
  double fastest_mib_per_s = 0;
  size_t peak_held_bytes = 0;
};

protocol::MessageFacts inspect_in_pieces(const std::string& message, size_t* peak_held_bytes) {
  protocol::MessageInspector inspector;
  std::string_view remaining = message;
  while (!remaining.empty()) {
    std::string_view piece = remaining.substr(0, kFeedPieceBytes);
    inspector.feed(piece);
    remaining.remove_prefix(piece.size());
  }
  protocol::MessageFacts facts = inspector.finish();
  if (peak_held_bytes) *peak_held_bytes = inspector.peak_held_bytes();
  return facts;
}

double mib_per_s(size_t bytes, Seconds elapsed) {
  return static_cast<double>(bytes) / (1 << 20) / elapsed.count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// Every round must read the whole message: inspected, one IHE_XDM archive, its CDA code found.
void check_fully_inspected(const std::string& label, const protocol::MessageFacts& facts) {
  if (!facts.inspected) fail(label + " message not inspected: " + facts.uninspectable_reason);
  if (facts.xdm_archives != 1 ||
      facts.codes() != std::vector<std::string>{std::string(kDocumentCode)})
    fail(label + " message: the IHE_XDM archive or its CDA code " + std::string(kDocumentCode) +
         " was not found");
}

InspectorResult measure_inspector(const std::string& label, const std::string& message) {
  InspectorResult result;
  result.label = label;
  result.message_bytes = message.size();

  // A first round, not counted, warms the caches.
  check_fully_inspected(label, inspect_in_pieces(message, &result.peak_held_bytes));

  std::vector<double> rates;
  Seconds measured{0};
  while (static_cast<int>(rates.size()) < kMaxRounds &&
         (static_cast<int>(rates.size()) < kMinRounds || measured < kMinSecondsPerMessage)) {
    auto start = Clock::now();
    protocol::MessageFacts facts = inspect_in_pieces(message, nullptr);
    Seconds elapsed = Clock::now() - start;
    check_fully_inspected(label, facts);
    measured += elapsed;
    rates.push_back(mib_per_s(message.size(), elapsed));
  }
  result.rounds = static_cast<int>(rates.size());
  result.median_mib_per_s = median(rates);
  result.slowest_mib_per_s = *std::min_element(rates.begin(), rates.end());
  result.fastest_mib_per_s = *std::max_element(rates.begin(), rates.end());
  return result;
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// The report.

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string kib(size_t bytes) {
  return format("%.0f KiB", static_cast<double>(bytes) / 1024);
}

void print_summary(const std::vector<InspectorResult>& inspections) {
  std::printf("Message inspector (%s build, fed in %zu KiB pieces)\n", MSSGATE_BUILD_TYPE,
              kFeedPieceBytes >> 10);
  for (const auto& r : inspections) {
    std::printf(
        "  %-7s %10zu bytes  %2d rounds  median %7.1f MiB/s  (%.1f to %.1f)  peak held %s\n",
        r.label.c_str(), r.message_bytes, r.rounds, r.median_mib_per_s, r.slowest_mib_per_s,
        r.fastest_mib_per_s, kib(r.peak_held_bytes).c_str());
  }
}

std::string markdown_section(const std::vector<InspectorResult>& inspections) {
  std::ostringstream out;
  out << kSectionHeading << "\n\n";
  out << "`bench/inspector_bench.cpp`, run as `build/release/bench/mssgate_inspector_bench "
         "--markdown docs/benchmarks.md` (CMake build type "
      << MSSGATE_BUILD_TYPE << ", " << std::thread::hardware_concurrency()
      << " cores). Inspector: each message is multipart/mixed with the X-MSS-* headers and one "
         "base64 `IHE_XDM.ZIP` holding a CDA document and an incompressible PDF-like entry, fed "
         "to a `MessageInspector` in "
      << (kFeedPieceBytes >> 10)
      << " KiB pieces as the daemon reads them, with the default caps; every round reads the "
         "archive and finds the CDA code. Rounds: at least "
      << kMinRounds << " and 2 s of rounds per message, at most " << kMaxRounds
      << "; MiB/s is message bytes over wall time, the median of the rounds.\n\n";
  out << "| message | bytes | rounds | median MiB/s | slowest–fastest MiB/s | peak held |\n";
  out << "|---|---|---|---|---|---|\n";
  for (const auto& r : inspections) {
    out << "| " << r.label << " | " << r.message_bytes << " | " << r.rounds << " | "
        << format("%.1f", r.median_mib_per_s) << " | " << format("%.1f", r.slowest_mib_per_s) << "–"
        << format("%.1f", r.fastest_mib_per_s) << " | " << kib(r.peak_held_bytes) << " |\n";
  }
  return out.str();
}

void write_section(const fs::path& path, const std::string& section) {
  if (!mssgate::bench::write_markdown_section(path, kSectionHeading, section))
    fail("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) {
  std::string markdown_path;
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    if (argument == "--markdown" && i + 1 < argc) {
      markdown_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--markdown FILE]\n", argv[0]);
      return 2;
    }
  }
  try {
    std::vector<InspectorResult> inspections;
    const std::pair<const char*, size_t> sizes[] = {{"1 MiB", size_t{1} << 20},
                                                    {"20 MiB", size_t{20} << 20}};
    uint64_t seed = 1;
    for (const auto& [label, target_bytes] : sizes) {
      std::string message = make_message(target_bytes, seed++);
      inspections.push_back(measure_inspector(label, message));
    }

    print_summary(inspections);
    if (!markdown_path.empty()) {
      write_section(markdown_path, markdown_section(inspections));
      std::printf("Section \"%s\" written to %s\n", std::string(kSectionHeading).c_str(),
                  markdown_path.c_str());
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return 0;
}
