#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mssgate::protocol {

// What the indicators need from a CDA R2 document header — never the INS value itself.
struct CdaFacts {
  enum class Status { kRead, kNotCda, kMalformed, kTooLarge, kTooDeep, kDoctypeRefused };
  enum class Ins { kAbsent, kProduction, kTemporary, kTest, kDemo };

  Status status = Status::kMalformed;
  std::string code;         // ClinicalDocument/code/@code (document type)
  std::string code_system;  // its @codeSystem
  Ins ins = Ins::kAbsent;   // from recordTarget/patientRole/id/@root
  // Whether that id's @extension is a well-formed matricule (check_ins_matricule); the value
  // itself is never kept.
  bool ins_well_formed = false;
  bool birth_name = false;  // patient/name/family (qualifier BR when given)
  bool given_name = false;  // patient/name/given
  bool sex = false;         // patient/administrativeGenderCode/@code
  bool birth_date = false;  // patient/birthTime/@value

  bool all_traits() const { return birth_name && given_name && sex && birth_date; }
  // A real patient's INS (NIR or NIA OID), or a test or demo one, counted apart.
  bool production_ins() const { return ins == Ins::kProduction || ins == Ins::kTemporary; }
  bool test_ins() const { return ins == Ins::kTest || ins == Ins::kDemo; }
  // An INS with its OID, a well-formed matricule and the four identity traits (Référentiel #2,
  // ECO.2.4.2; the matricule's rule in docs/indicators.md).
  bool qualified_ins() const { return production_ins() && ins_well_formed && all_traits(); }
  bool qualified_test_ins() const { return test_ins() && ins_well_formed && all_traits(); }
  // A production INS whose value is not a matricule: never qualified, counted apart.
  bool malformed_ins() const { return production_ins() && !ins_well_formed; }
};

struct CdaLimits {
  size_t max_bytes = 8 << 20;
  size_t max_depth = 256;
};

// OIDs of the INS (FR Core): .8 NIR, .9 NIA, .10 NIR test, .11 NIR demo.
CdaFacts::Ins ins_kind_of_oid(std::string_view oid);

// Reads a CDA document. A DOCTYPE (and with it any entity declaration) is refused, never
// expanded, whatever the document's encoding; size and nesting depth are capped. Only elements
// in CDA's namespace (urn:hl7-org:v3) are read: a ClinicalDocument in another one is kNotCda.
CdaFacts read_cda(std::string_view xml, const CdaLimits& limits = {});

std::string_view to_string(CdaFacts::Status status);
std::string_view to_string(CdaFacts::Ins ins);

}  // namespace mssgate::protocol
