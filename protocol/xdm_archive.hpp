#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/cda_document.hpp"
#include "protocol/inspection_budget.hpp"

namespace mssgate::protocol {

// What an IHE_XDM archive holds, for the indicators (IHE ITI XDM: IHE_XDM/SUBSETnn/METADATA.XML
// and the documents beside it).
struct XdmFacts {
  // kStopped: the message's budget ran out, or its reader said stop (InspectionMeter::stopped()
  // says why); what was read before is kept.
  // kEncrypted: a document of a subset is encrypted, so cannot be read.
  enum class Status {
    kRead,
    kNotZip,
    kTruncated,
    kEncrypted,
    kTooManyEntries,
    kTooLarge,
    kRatio,
    kStopped
  };
  Status status = Status::kNotZip;
  bool has_xdm_folder = false;      // entries under IHE_XDM/
  size_t subsets = 0;               // IHE_XDM/SUBSET*/METADATA.XML found
  std::vector<CdaFacts> documents;  // each XML document of a subset that is a CDA
  size_t unreadable_documents = 0;  // XML documents refused (malformed, DOCTYPE, caps)
  size_t suspicious_names = 0;      // absolute paths, "..", backslashes: never extracted anyway
};

struct XdmLimits {
  size_t max_entries = 1000;
  uint64_t max_total_bytes = 64 << 20;  // all uncompressed entries read
  uint64_t max_ratio = 200;             // uncompressed / compressed, per entry
  CdaLimits cda;
};

// Reads a zip held in memory (libzip). Entries are inflated while counting, so that a zip bomb
// stops at the caps instead of filling memory. Nothing is written to disk. `meter`, when given,
// is the message's budget, spent by this archive after those before it.
XdmFacts read_xdm(std::string_view zip_bytes, const XdmLimits& limits = {},
                  InspectionMeter* meter = nullptr);

std::string_view to_string(XdmFacts::Status status);

}  // namespace mssgate::protocol
