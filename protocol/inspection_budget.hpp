#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// What the inspection of one message may spend, summed over every archive and document of the
// message (the caps of XdmLimits and CdaLimits are per archive and per document: a message of
// many archives, each just under them, would otherwise cost their sum).
struct InspectionBudget {
  uint64_t max_inflated_bytes = 128 << 20;  // zip entries inflated, all archives together
  size_t max_xml_documents = 500;           // XML documents parsed
  // XML nodes, counted before a document is parsed, from its markup: each '<' (an element, a
  // comment, a processing instruction, CDATA) and each '=' (an attribute). An upper bound of
  // what the parser would build, so that a document over the budget is never parsed.
  uint64_t max_xml_nodes = 1000000;
};

// Memory shared by the inspection of every message: what all the archives being read hold,
// together. Taken before an archive's buffer grows, given back when it is freed; thread-safe
// (the caller's, see daemon/services/inspection_pool.hpp).
class SharedMemory {
 public:
  virtual ~SharedMemory() = default;
  virtual bool take(size_t bytes) = 0;  // false: over the limit, nothing taken
  virtual void give(size_t bytes) = 0;
};

// The budget as it is spent while one message is read, and the caller's own check (its CPU
// time, or that nobody waits for the result any more), asked between steps: before each
// piece of the message, each zip entry, every 256 KiB inflated and each document parsed.
class InspectionMeter {
 public:
  // A reason word to stop the inspection now, or an empty view to go on.
  using Interrupt = std::function<std::string_view()>;

  explicit InspectionMeter(const InspectionBudget& budget = {})
      : inflated_left_(budget.max_inflated_bytes),
        documents_left_(budget.max_xml_documents),
        nodes_left_(budget.max_xml_nodes) {}

  void set_interrupt(Interrupt interrupt) { interrupt_ = std::move(interrupt); }
  // Without one, archives take what they need (within max_archive_bytes).
  void set_shared_memory(SharedMemory* memory) { memory_ = memory; }
  bool take_memory(size_t bytes) { return !memory_ || memory_->take(bytes); }
  void give_memory(size_t bytes) {
    if (memory_ && bytes > 0) memory_->give(bytes);
  }

  // Each is false once the budget (or the interrupt) says stop; stopped() then says why.
  bool spend_inflated(uint64_t bytes) {
    return spend(inflated_left_, bytes, "budget_inflated_bytes");
  }
  bool spend_document() { return spend(documents_left_, 1, "budget_xml_documents"); }
  bool spend_nodes(uint64_t nodes) { return spend(nodes_left_, nodes, "budget_xml_nodes"); }
  bool go_on() {
    if (!stopped_.empty()) return false;
    if (interrupt_) {
      std::string_view reason = interrupt_();
      if (!reason.empty()) stopped_ = std::string(reason);
    }
    return stopped_.empty();
  }

  const std::string& stopped() const { return stopped_; }

 private:
  template <class Count>
  bool spend(Count& left, uint64_t amount, std::string_view reason) {
    if (!stopped_.empty()) return false;
    if (amount > left) {
      stopped_ = std::string(reason);
      return false;
    }
    left -= static_cast<Count>(amount);
    return true;
  }

  uint64_t inflated_left_;
  size_t documents_left_;
  uint64_t nodes_left_;
  Interrupt interrupt_;
  SharedMemory* memory_ = nullptr;
  std::string stopped_;
};

// The nodes a document would make, counted from its markup as InspectionBudget says.
inline uint64_t count_xml_markup(std::string_view xml) {
  uint64_t count = 0;
  for (char c : xml)
    count += static_cast<uint64_t>(c == '<' || c == '=');
  return count;
}

}  // namespace mssgate::protocol
