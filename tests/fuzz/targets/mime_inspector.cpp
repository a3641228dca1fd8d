// Fuzz target "mime_inspector": a whole message (the unstuffed DATA content) read by the message
// inspector, which walks the MIME tree, decodes base64 and quoted-printable, opens IHE_XDM
// archives and reads their CDA documents. It must reach the same facts fed whole, one byte at a
// time and in uneven pieces; hold no more than its caps; give back all the shared memory it
// took; and what it records is fit for the journal once sanitized.
#include <string>
#include <string_view>

#include "protocol/ascii.hpp"
#include "protocol/display_text.hpp"
#include "protocol/message_inspector.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::MessageInspector;

// Small caps, so that the fuzzer reaches them.
mssgate::protocol::InspectorLimits limits() {
  mssgate::protocol::InspectorLimits l;
  l.max_header_bytes = 4096;
  l.max_part_header_bytes = 2048;
  l.max_depth = 8;
  l.max_parts = 64;
  l.max_archive_bytes = 256 << 10;
  l.max_documents = 16;
  l.xdm.max_entries = 32;
  l.xdm.max_total_bytes = 1 << 20;
  l.xdm.cda.max_bytes = 256 << 10;
  l.xdm.cda.max_depth = 64;
  l.budget.max_inflated_bytes = 2 << 20;
  l.budget.max_xml_documents = 32;
  l.budget.max_xml_nodes = 100000;
  return l;
}

// The memory all inspections share, as the inspection pool counts it.
class CountedMemory : public mssgate::protocol::SharedMemory {
 public:
  bool take(size_t bytes) override {
    if (held_ + bytes > kLimit) return false;
    held_ += bytes;
    return true;
  }
  void give(size_t bytes) override {
    check(bytes <= held_, "mime_inspector: gives back no more memory than it took");
    held_ -= bytes;
  }
  size_t held() const { return held_; }

 private:
  static constexpr size_t kLimit = 1 << 20;
  size_t held_ = 0;
};

std::string facts_of(std::string_view input, size_t how) {
  CountedMemory memory;
  std::string out;
  {
    auto l = limits();
    MessageInspector inspector(l);
    inspector.set_shared_memory(&memory);
    for (std::string_view piece : mssgate::fuzz::cut(input, how)) {
      if (inspector.stopped()) break;
      inspector.feed(piece);
    }
    auto facts = inspector.finish();
    check(inspector.peak_held_bytes() <=
              l.max_archive_bytes + l.max_header_bytes + l.max_part_header_bytes + 16384,
          "mime_inspector: holds no more than its caps");
    check(facts.parts <= l.max_parts + 1, "mime_inspector: parts within their cap");
    check(facts.documents.size() <= l.max_documents, "mime_inspector: documents within the cap");
    check(facts.inspected == facts.uninspectable_reason.empty(),
          "mime_inspector: uninspectable with a reason");
    out = facts.uninspectable_reason + "|" + std::to_string(facts.parts) + "|" +
          std::to_string(facts.xdm_archives) + "|" + std::to_string(facts.mdn) +
          std::to_string(facts.dsn) + "|" + std::to_string(facts.suspicious_names) + "|" +
          std::string(to_string(facts.ins)) + "|" + facts.message_id + "|" + facts.from + "|" +
          facts.claims.nil;
    for (auto m : facts.mismatches)
      out += "|" + std::string(to_string(m));
    const auto& ack = facts.acknowledgement;
    out += "|ack:" + ack.disposition + ":" + ack.original_message_id + ":" +
           ack.original_envelope_id + ":" + std::to_string(ack.integration_error);
    check(ack.original_message_id.size() <= 250 && ack.original_envelope_id.size() <= 250,
          "mime_inspector: a report's ids within their cap");
    for (const auto& action : ack.actions)
      out += ":" + action;
    for (const auto& c : facts.codes())
      out += "|" + c;
    // What the indicators keep of the content: sanitized, valid UTF-8 within its cap.
    for (const std::string& value : {facts.message_id, facts.claims.nil, facts.from}) {
      std::string kept = mssgate::protocol::sanitized_text(value, 64);
      check(kept.size() <= 64 && mssgate::protocol::valid_utf8(kept),
            "mime_inspector: sanitized values are UTF-8 within their cap");
    }
  }
  check(memory.held() == 0, "mime_inspector: the shared memory is all given back");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::fuzz::same_whole_and_in_pieces(input, facts_of,
                                          "mime_inspector: same facts whole and in pieces");
  return 0;
}
