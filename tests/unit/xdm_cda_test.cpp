#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "protocol/cda_document.hpp"
#include "protocol/mss_headers.hpp"
#include "protocol/xdm_archive.hpp"
#include "tests/unit/samples.hpp"

using namespace mssgate::protocol;
using namespace mssgate::test_samples;

TEST(Cda, ReadsTheCodeAndAQualifiedProductionIns) {
  auto facts = read_cda(cda("11488-4"));
  ASSERT_EQ(facts.status, CdaFacts::Status::kRead);
  EXPECT_EQ(facts.code, "11488-4");
  EXPECT_EQ(facts.code_system, "2.16.840.1.113883.6.1");
  EXPECT_EQ(facts.ins, CdaFacts::Ins::kProduction);
  EXPECT_TRUE(facts.qualified_ins());
  EXPECT_FALSE(facts.qualified_test_ins());
}

TEST(Cda, AnInsWithoutEveryTraitIsNotQualified) {
  EXPECT_FALSE(read_cda(cda("11488-4", "1.2.250.1.213.1.4.8", false)).qualified_ins());
  EXPECT_FALSE(read_cda(cda("11488-4", "1.2.250.1.213.1.4.8", true, "U")).qualified_ins());
  auto none = read_cda(cda("11488-4", "1.2.250.1.213.1.4.99"));
  EXPECT_EQ(none.ins, CdaFacts::Ins::kAbsent);
  EXPECT_FALSE(none.qualified_ins());
}

TEST(Cda, AnInsThatIsNotAWellFormedMatriculeIsMalformedNeverQualified) {
  // Every trait is there; the value's key is wrong, or its length.
  for (const char* value : {"284032A00412324", "248092A123456789", "1", "28403 A00412323"}) {
    auto facts = read_cda(cda("11488-4", "1.2.250.1.213.1.4.8", true, "F", value));
    EXPECT_EQ(facts.ins, CdaFacts::Ins::kProduction) << value;
    EXPECT_FALSE(facts.ins_well_formed) << value;
    EXPECT_TRUE(facts.all_traits()) << value;
    EXPECT_TRUE(facts.malformed_ins()) << value;
    EXPECT_FALSE(facts.qualified_ins()) << value;
  }
  // A test INS must be well formed to count as a qualified test INS.
  auto test = read_cda(cda("11488-4", "1.2.250.1.213.1.4.10", true, "F", "277076322082911"));
  EXPECT_EQ(test.ins, CdaFacts::Ins::kTest);
  EXPECT_FALSE(test.malformed_ins());
  EXPECT_FALSE(test.qualified_test_ins());
}

TEST(Cda, TheBestOfThePatientsIdsIsKept) {
  auto document = [](const std::string& ids) {
    return std::string(R"(<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="11488-4"/>)") +
           "<recordTarget><patientRole>" + ids +
           "<patient><name><given>A</given><family>B</family></name>"
           R"(<administrativeGenderCode code="M"/><birthTime value="19800101"/></patient>)"
           "</patientRole></recordTarget></ClinicalDocument>";
  };
  const std::string malformed_nir = R"(<id root="1.2.250.1.213.1.4.8" extension="123"/>)";
  const std::string good_nia = R"(<id root="1.2.250.1.213.1.4.9" extension="100017510100151"/>)";
  const std::string good_test = R"(<id root="1.2.250.1.213.1.4.10" extension="277076322082910"/>)";
  // A well-formed NIA over a malformed NIR, in either order.
  for (const auto& ids : {malformed_nir + good_nia, good_nia + malformed_nir}) {
    auto facts = read_cda(document(ids));
    EXPECT_EQ(facts.ins, CdaFacts::Ins::kTemporary);
    EXPECT_TRUE(facts.qualified_ins());
  }
  // A production INS, even malformed, over a test one: the patient is real.
  for (const auto& ids : {good_test + malformed_nir, malformed_nir + good_test}) {
    auto facts = read_cda(document(ids));
    EXPECT_EQ(facts.ins, CdaFacts::Ins::kProduction);
    EXPECT_TRUE(facts.malformed_ins());
  }
  // An INS OID with an empty value is no INS.
  auto empty = read_cda(document(R"(<id root="1.2.250.1.213.1.4.8" extension=""/>)"));
  EXPECT_EQ(empty.ins, CdaFacts::Ins::kAbsent);
}

TEST(Cda, TestAndDemoOidsAreCountedApart) {
  auto test = read_cda(cda("11488-4", "1.2.250.1.213.1.4.10"));
  EXPECT_EQ(test.ins, CdaFacts::Ins::kTest);
  EXPECT_FALSE(test.qualified_ins());
  EXPECT_TRUE(test.qualified_test_ins());
  EXPECT_EQ(read_cda(cda("x", "1.2.250.1.213.1.4.11")).ins, CdaFacts::Ins::kDemo);
  EXPECT_EQ(read_cda(cda("x", "1.2.250.1.213.1.4.9")).ins, CdaFacts::Ins::kTemporary);
}

TEST(Cda, RefusesDoctypesAndEntitiesWithoutExpandingThem) {
  std::string laughs =
      R"(<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<ClinicalDocument><code code="&lol2;"/></ClinicalDocument>)";
  EXPECT_EQ(read_cda(laughs).status, CdaFacts::Status::kDoctypeRefused);
  std::string external =
      R"(<?xml version="1.0"?><!doctype x SYSTEM "file:///etc/passwd"><ClinicalDocument/>)";
  EXPECT_EQ(read_cda(external).status, CdaFacts::Status::kDoctypeRefused);
  EXPECT_EQ(read_cda("<ClinicalDocument><!ENTITY x 'y'></ClinicalDocument>").status,
            CdaFacts::Status::kDoctypeRefused);
}

namespace {

// `ascii` in UTF-16 with a byte order mark, little- or big-endian.
std::string utf16(const std::string& ascii, bool little_endian) {
  std::string out = little_endian ? std::string("\xFF\xFE") : std::string("\xFE\xFF");
  for (char c : ascii) {
    out += little_endian ? std::string{c, '\0'} : std::string{'\0', c};
  }
  return out;
}

}  // namespace

TEST(Cda, RefusesADoctypeWhateverTheEncoding) {
  // In UTF-16 the bytes "<!DOCTYPE" never appear: the check of the parsed document finds it.
  std::string laughs =
      R"(<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE lolz [<!ENTITY lol "lol">)"
      R"(<!ENTITY lol2 "&lol;&lol;&lol;&lol;"><!ENTITY oid "1.2.250.1.213.1.4.8">]>)"
      R"(<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="&lol2;"/><recordTarget>)"
      R"(<patientRole><id root="&oid;" extension="248092A123456789"/></patientRole>)"
      R"(</recordTarget></ClinicalDocument>)";
  std::string external =
      R"(<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>)"
      R"(<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="&e;"/></ClinicalDocument>)";
  for (bool little_endian : {true, false}) {
    for (const std::string& document : {laughs, external}) {
      auto facts = read_cda(utf16(document, little_endian));
      EXPECT_EQ(facts.status, CdaFacts::Status::kDoctypeRefused) << to_string(facts.status);
      EXPECT_EQ(facts.ins, CdaFacts::Ins::kAbsent);
    }
  }
  // The same document in UTF-16 without the DOCTYPE is read: the encoding is not the refusal.
  auto plain = read_cda(utf16(cda("11488-4"), true));
  EXPECT_EQ(plain.status, CdaFacts::Status::kRead);
  EXPECT_EQ(plain.code, "11488-4");
}

TEST(Cda, ElementsOutsideTheHl7NamespaceAreNotRead) {
  std::string document = cda("11488-4");
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string out = document;
    out.replace(out.find(from), from.size(), to);
    return out;
  };
  EXPECT_EQ(read_cda(replaced("urn:hl7-org:v3", "urn:evil:v3")).status, CdaFacts::Status::kNotCda);
  EXPECT_EQ(read_cda(replaced(R"( xmlns="urn:hl7-org:v3")", "")).status, CdaFacts::Status::kNotCda)
      << "no namespace at all";
  // A prefix bound to another namespace, with the default one left as HL7's.
  std::string other_prefix =
      replaced("<ClinicalDocument xmlns=\"urn:hl7-org:v3\">",
               "<x:ClinicalDocument xmlns=\"urn:hl7-org:v3\" xmlns:x=\"urn:evil\">");
  other_prefix.replace(other_prefix.rfind("</ClinicalDocument>"), 19, "</x:ClinicalDocument>");
  EXPECT_EQ(read_cda(other_prefix).status, CdaFacts::Status::kNotCda);
  // The patient's part in another namespace: the document is read, its INS is not.
  auto foreign_patient = read_cda(replaced("<recordTarget>", "<recordTarget xmlns=\"urn:evil\">"));
  EXPECT_EQ(foreign_patient.status, CdaFacts::Status::kRead);
  EXPECT_EQ(foreign_patient.code, "11488-4");
  EXPECT_EQ(foreign_patient.ins, CdaFacts::Ins::kAbsent);
  EXPECT_FALSE(foreign_patient.all_traits());
  // HL7's namespace under a prefix is HL7's.
  std::string prefixed =
      R"(<hl7:ClinicalDocument xmlns:hl7="urn:hl7-org:v3"><hl7:code code="11488-4"/>)"
      R"(<hl7:recordTarget><hl7:patientRole><hl7:id root="1.2.250.1.213.1.4.8" extension="1"/>)"
      R"(</hl7:patientRole></hl7:recordTarget></hl7:ClinicalDocument>)";
  auto read = read_cda(prefixed);
  EXPECT_EQ(read.status, CdaFacts::Status::kRead);
  EXPECT_EQ(read.code, "11488-4");
  EXPECT_EQ(read.ins, CdaFacts::Ins::kProduction);
}

TEST(Cda, CapsDepthAndSizeAndRefusesGarbage) {
  std::string deep;
  for (int i = 0; i < 10000; ++i)
    deep += "<a>";
  for (int i = 0; i < 10000; ++i)
    deep += "</a>";
  EXPECT_EQ(read_cda("<ClinicalDocument>" + deep + "</ClinicalDocument>").status,
            CdaFacts::Status::kTooDeep);
  EXPECT_EQ(read_cda(std::string(9 << 20, ' ')).status, CdaFacts::Status::kTooLarge);
  EXPECT_EQ(read_cda("<ClinicalDocument><unclosed></ClinicalDocument>").status,
            CdaFacts::Status::kMalformed);
  EXPECT_EQ(read_cda(kMetadata).status, CdaFacts::Status::kNotCda);
}

TEST(Xdm, ReadsEveryCdaOfTheArchive) {
  auto facts =
      read_xdm(xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", cda("11488-4")},
                    {"IHE_XDM/SUBSET01/DOC0002.xml", cda("34112-3", "1.2.250.1.213.1.4.10")},
                    {"IHE_XDM/SUBSET01/DOC0003.PDF", "%PDF-1.4"}}));
  ASSERT_EQ(facts.status, XdmFacts::Status::kRead);
  EXPECT_TRUE(facts.has_xdm_folder);
  EXPECT_EQ(facts.subsets, 1u);
  ASSERT_EQ(facts.documents.size(), 2u);
  EXPECT_EQ(facts.documents[0].code, "11488-4");
  EXPECT_TRUE(facts.documents[0].qualified_ins());
  EXPECT_EQ(facts.documents[1].code, "34112-3");
  EXPECT_TRUE(facts.documents[1].qualified_test_ins());
}

TEST(Xdm, AnArchiveWithoutCdaHasNoDocument) {
  auto facts = read_xdm(xdm({{"IHE_XDM/SUBSET01/DOC0001.PDF", "%PDF-1.4"}}));
  EXPECT_EQ(facts.status, XdmFacts::Status::kRead);
  EXPECT_EQ(facts.subsets, 1u);
  EXPECT_TRUE(facts.documents.empty());
}

TEST(Xdm, HostileArchivesStopAtTheCaps) {
  EXPECT_EQ(read_xdm("not a zip at all").status, XdmFacts::Status::kNotZip);
  std::string good = xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", cda("11488-4")}});
  EXPECT_NE(read_xdm(good.substr(0, good.size() / 2)).status, XdmFacts::Status::kRead)
      << "truncated";
  // A bomb: 32 MiB of zeros that deflate to a few tens of KiB.
  auto bomb = read_xdm(make_zip({{"IHE_XDM/SUBSET01/DOC0001.XML", std::string(32 << 20, '\0')}}));
  EXPECT_EQ(bomb.status, XdmFacts::Status::kRatio);
  std::vector<std::pair<std::string, std::string>> many;
  many.reserve(1500);
  for (int i = 0; i < 1500; ++i)
    many.emplace_back("IHE_XDM/SUBSET01/F" + std::to_string(i) + ".TXT", "x");
  EXPECT_EQ(read_xdm(make_zip(many)).status, XdmFacts::Status::kTooManyEntries);
  auto traversal = read_xdm(make_zip({{"../../etc/passwd", "root"},
                                      {"/abs/IHE_XDM/x.XML", cda("1")},
                                      {"IHE_XDM/SUBSET01/..\\DOC.XML", cda("2")}}));
  EXPECT_EQ(traversal.status, XdmFacts::Status::kRead);
  EXPECT_EQ(traversal.suspicious_names, 3u);
  EXPECT_TRUE(traversal.documents.empty());
  auto doctype = read_xdm(
      xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", "<!DOCTYPE x [<!ENTITY a 'b'>]><ClinicalDocument/>"}}));
  EXPECT_EQ(doctype.unreadable_documents, 1u);
  XdmLimits small;
  small.max_total_bytes = 500;  // the metadata and the document are about 800 bytes together
  EXPECT_EQ(read_xdm(good, small).status, XdmFacts::Status::kTooLarge);
}

namespace {

MssHeaderClaims claims_of(const std::string& header_section) {
  HeaderSectionReader reader(65536);
  for (char c : header_section)
    reader.feed(std::string_view(&c, 1));
  reader.end_of_message();
  return read_mss_headers(reader);
}

}  // namespace

TEST(MssHeaders, ReadsTheClaimsOfTheLps) {
  auto claims = claims_of(
      "From: a@b.fr\r\nSubject: XDM/1.0/DDM Compte rendu\r\nX-MSS-CODECDA: 34112-3, "
      "PRESC-BIO,34112-3,\r\n"
      " 15508-5\r\nx-mss-ins: O\r\nX-MSS-NIL: DEV935997\r\nX-MSS-MES: "
      "FIN\r\nDisposition-Notification-To: a@b.fr\r\n\r\n");
  EXPECT_EQ(claims.cda_codes, (std::vector<std::string>{"34112-3", "PRESC-BIO", "15508-5"}));
  EXPECT_EQ(claims.ins, true);
  EXPECT_FALSE(claims.ins_invalid);
  EXPECT_EQ(claims.nil, "DEV935997");
  EXPECT_TRUE(claims.mes_fin);
  EXPECT_TRUE(claims.xdm_subject);
  EXPECT_TRUE(claims.mdn_requested);
}

TEST(MssHeaders, AbsentAndInvalidClaims) {
  auto none = claims_of("From: a@b.fr\r\nSubject: bonjour\r\n\r\n");
  EXPECT_TRUE(none.cda_codes.empty());
  EXPECT_FALSE(none.ins.has_value());
  EXPECT_TRUE(none.nil.empty());
  EXPECT_FALSE(none.xdm_subject);
  auto bad = claims_of("X-MSS-INS: yes\r\nX-MSS-NIL: has space inside\r\nX-MSS-MES: STOP\r\n\r\n");
  EXPECT_TRUE(bad.ins_invalid);
  EXPECT_FALSE(bad.ins.has_value());
  EXPECT_TRUE(bad.nil.empty());
  EXPECT_FALSE(bad.mes_fin);
}

TEST(MssHeaders, ASubjectThatIsExactlyFinEndsTheExchange) {
  auto fin = claims_of("From: a@b.fr\r\nSubject: [FIN]\r\n\r\n");
  EXPECT_TRUE(fin.mes_fin);
  EXPECT_TRUE(fin.fin_subject);
  // Blanks around the value are not the value's.
  EXPECT_TRUE(claims_of("Subject:   [FIN]  \r\n\r\n").mes_fin);
  // Another X-MSS-MES after it does not take it back.
  EXPECT_TRUE(claims_of("Subject: [FIN]\r\nX-MSS-MES: STOP\r\n\r\n").mes_fin);
  for (const char* subject : {"[FIN] suite", "Re: [FIN]", "[fin]", "FIN", "[FIN ]"}) {
    auto claims = claims_of(std::string("Subject: ") + subject + "\r\n\r\n");
    EXPECT_FALSE(claims.mes_fin) << subject;
    EXPECT_FALSE(claims.fin_subject) << subject;
  }
}

TEST(Cda, KeepsOnlyCodesThatLookLikeCodes) {
  // A sender's free text never goes to the journal or the exports as a document code.
  EXPECT_EQ(read_cda(cda(std::string(65, '1'))).code, "invalid");
  EXPECT_EQ(read_cda(cda("a code with spaces")).code, "invalid");
  EXPECT_EQ(read_cda(cda(std::string(64, '1'))).code, std::string(64, '1'));
  EXPECT_EQ(read_cda(cda("11488-4")).code_system, "2.16.840.1.113883.6.1");
}
