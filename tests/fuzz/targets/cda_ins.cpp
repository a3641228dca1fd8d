// Fuzz target "cda_ins": a CDA R2 document (pugixml, no DTD) as an IHE_XDM archive holds it, and
// the INS OIDs it names. Whatever the bytes: a DOCTYPE is refused, never expanded; the caps of
// size and depth hold (a document refused for its depth reads the same with more room); a
// document is read the same twice; the OID classification agrees with the facts; nothing of
// the content is kept but the document's code and code system.
#include <string>
#include <string_view>

#include "protocol/cda_document.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using mssgate::fuzz::check;
using mssgate::protocol::CdaFacts;

std::string describe(const CdaFacts& f) {
  return std::string(to_string(f.status)) + "|" + f.code + "|" + f.code_system + "|" +
         std::string(to_string(f.ins)) + "|" + std::to_string(f.birth_name) +
         std::to_string(f.given_name) + std::to_string(f.sex) + std::to_string(f.birth_date);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = mssgate::fuzz::bytes_of(data, size);
  mssgate::protocol::CdaLimits limits;
  limits.max_bytes = 64 << 10;
  limits.max_depth = 32;
  auto facts = mssgate::protocol::read_cda(input, limits);
  check(describe(mssgate::protocol::read_cda(input, limits)) == describe(facts),
        "cda_ins: the same document reads the same");
  if (input.size() > limits.max_bytes)
    check(facts.status == CdaFacts::Status::kTooLarge, "cda_ins: the size cap holds");
  if (facts.status == CdaFacts::Status::kRead) {
    check(input.find("<!DOCTYPE") == std::string_view::npos,
          "cda_ins: a document with a DOCTYPE is never read");
    check(facts.code.size() <= input.size() && facts.code_system.size() <= input.size(),
          "cda_ins: what is kept comes from the document");
  }
  if (facts.status != CdaFacts::Status::kTooDeep) {
    // With more room for nesting, a document not refused for its depth reads the same.
    mssgate::protocol::CdaLimits deeper = limits;
    deeper.max_depth = 4096;
    check(describe(mssgate::protocol::read_cda(input, deeper)) == describe(facts),
          "cda_ins: the depth cap changes nothing below it");
  }
  // The input as an OID: only the four INS roots, and what starts with them, are INS kinds.
  auto kind = mssgate::protocol::ins_kind_of_oid(input);
  if (kind != CdaFacts::Ins::kAbsent)
    check(input.starts_with("1.2.250.1.213.1.4."), "cda_ins: an INS OID is under the INS root");
  return 0;
}
