// Fuzz target "zip_xdm": an IHE_XDM archive (a zip held in memory, read with libzip) as an
// attachment brings it. Whatever the bytes: the caps hold (entries, documents, the message's
// budget of inflated bytes and XML documents), the shared memory taken is all given back, and
// the same archive read twice gives the same facts.
#include <string>
#include <string_view>

#include "protocol/inspection_budget.hpp"
#include "protocol/xdm_archive.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::XdmFacts;

class CountedMemory : public mssgate::protocol::SharedMemory {
 public:
  bool take(size_t bytes) override {
    if (held_ + bytes > (4 << 20)) return false;
    held_ += bytes;
    return true;
  }
  void give(size_t bytes) override {
    check(bytes <= held_, "zip_xdm: gives back no more memory than it took");
    held_ -= bytes;
  }
  size_t held() const { return held_; }

 private:
  size_t held_ = 0;
};

std::string describe(const XdmFacts& facts) {
  std::string out = std::string(to_string(facts.status)) + "|" +
                    std::to_string(facts.has_xdm_folder) + "|" + std::to_string(facts.subsets) +
                    "|" + std::to_string(facts.unreadable_documents) + "|" +
                    std::to_string(facts.suspicious_names);
  for (const auto& d : facts.documents)
    out +=
        "|" + std::string(to_string(d.status)) + ":" + d.code + ":" + std::string(to_string(d.ins));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::protocol::XdmLimits limits;
  limits.max_entries = 32;
  limits.max_total_bytes = 1 << 20;
  limits.cda.max_bytes = 256 << 10;
  limits.cda.max_depth = 64;
  mssgate::protocol::InspectionBudget budget;
  budget.max_inflated_bytes = 2 << 20;
  budget.max_xml_documents = 8;
  budget.max_xml_nodes = 50000;

  CountedMemory memory;
  mssgate::protocol::InspectionMeter meter(budget);
  meter.set_shared_memory(&memory);
  auto facts = mssgate::protocol::read_xdm(input, limits, &meter);
  check(memory.held() == 0, "zip_xdm: the shared memory is all given back");
  check(facts.documents.size() <= budget.max_xml_documents, "zip_xdm: documents within the budget");
  check(facts.documents.size() <= limits.max_entries, "zip_xdm: documents within the entries");
  check(facts.status != XdmFacts::Status::kRead || meter.stopped().empty(),
        "zip_xdm: a stopped read is not a full read");

  // The same bytes, read again with a fresh budget: the same facts.
  mssgate::protocol::InspectionMeter again(budget);
  check(describe(mssgate::protocol::read_xdm(input, limits, &again)) == describe(facts),
        "zip_xdm: the same archive gives the same facts");
  return 0;
}
