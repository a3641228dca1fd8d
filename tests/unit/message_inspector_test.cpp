#include "protocol/message_inspector.hpp"

#include <gtest/gtest.h>

#include <random>

#include "protocol/base64.hpp"
#include "tests/unit/samples.hpp"

using namespace mssgate::protocol;
using namespace mssgate::test_samples;

namespace {

std::string base64_lines(const std::string& bytes) {
  std::string flat = base64_encode(bytes), out;
  for (size_t i = 0; i < flat.size(); i += 76)
    out += flat.substr(i, 76) + "\r\n";
  return out;
}

// Quoted-printable (RFC 2045 §6.7): every byte outside printable ASCII as =XX, soft line
// breaks every 70 characters.
std::string quoted_printable(const std::string& bytes) {
  std::string out;
  size_t column = 0;
  for (unsigned char c : bytes) {
    std::string piece;
    if (c >= 33 && c <= 126 && c != '=') {
      piece = std::string(1, static_cast<char>(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "=%02X", c);
      piece = hex;
    }
    if (column + piece.size() > 70) {
      out += "=\r\n";
      column = 0;
    }
    out += piece;
    column += piece.size();
  }
  return out;  // the line break before the next delimiter belongs to the delimiter
}

std::string attachment(const std::string& zip, const std::string& name = "IHE_XDM.ZIP",
                       const std::string& encoding = "base64") {
  std::string body = encoding == "base64"             ? base64_lines(zip)
                     : encoding == "quoted-printable" ? quoted_printable(zip)
                                                      : zip;
  return "Content-Type: application/zip; name=\"" + name +
         "\"\r\nContent-Transfer-Encoding: " + encoding +
         "\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n" + body;
}

std::string text_part(const std::string& text) {
  return "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n";
}

std::string multipart(const std::string& subtype, const std::string& boundary,
                      const std::vector<std::string>& parts) {
  std::string out = "Content-Type: multipart/" + subtype + "; boundary=\"" + boundary +
                    "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n";
  for (const auto& p : parts)
    out.append("--").append(boundary).append("\r\n").append(p).append("\r\n");
  return out + "--" + boundary + "--\r\nepilogue\r\n";
}

// A message: the MSSanté headers given, then the body entity (its own headers included).
std::string message(const std::string& mss_headers, const std::string& entity) {
  return "From: dr.martin@hopital.mssante.fr\r\nTo: labo@labo.mssante.fr\r\n"
         "Message-ID: <sample@hopital.mssante.fr>\r\nMIME-Version: 1.0\r\n" +
         mss_headers + entity;
}

const std::string kStructuredHeaders =
    "Subject: XDM/1.0/DDM Compte rendu\r\nX-MSS-CODECDA: 11488-4\r\nX-MSS-INS: O\r\n"
    "X-MSS-NIL: DEV935997\r\n";

MessageFacts inspect(const std::string& m, size_t piece, const InspectorLimits& limits = {}) {
  MessageInspector inspector(limits);
  for (size_t i = 0; i < m.size(); i += piece)
    inspector.feed(std::string_view(m).substr(i, piece));
  return inspector.finish();
}

// The mismatches as the journal and the documentation write them.
std::vector<std::string> words(const std::vector<Mismatch>& mismatches) {
  std::vector<std::string> out;
  out.reserve(mismatches.size());
  for (auto m : mismatches)
    out.emplace_back(to_string(m));
  return out;
}

// Every fact, in one line, to compare two inspections.
std::string describe(const MessageFacts& f) {
  std::string out = std::string(f.inspected ? "inspected" : "uninspectable:") +
                    f.uninspectable_reason + " parts=" + std::to_string(f.parts) +
                    " xdm=" + std::to_string(f.xdm_archives) +
                    " ins=" + std::string(to_string(f.ins)) + " mdn=" + std::to_string(f.mdn) +
                    " suspicious=" + std::to_string(f.suspicious_names) + " codes=";
  for (const auto& d : f.documents)
    out += d.code + "/" + std::string(to_string(d.ins)) + (d.all_traits() ? "+" : "-") + ",";
  out += " mismatches=";
  for (auto m : f.mismatches)
    out += std::string(to_string(m)) + ",";
  out += " nil=" + f.claims.nil + " mid=" + f.message_id;
  const auto& ack = f.acknowledgement;
  out += " ack=" + ack.disposition + "|" + ack.original_message_id + "|" +
         ack.original_envelope_id + "|" + std::to_string(ack.integration_error);
  for (const auto& action : ack.actions)
    out += "|" + action;
  return out;
}

// Inspects whole, one byte at a time and in odd pieces; the three must agree.
MessageFacts inspect_every_way(const std::string& m) {
  MessageFacts whole = inspect(m, m.size() + 1);
  EXPECT_EQ(describe(whole), describe(inspect(m, 1))) << "fed one byte at a time";
  EXPECT_EQ(describe(whole), describe(inspect(m, 7))) << "fed 7 bytes at a time";
  EXPECT_EQ(describe(whole), describe(inspect(m, 4093))) << "fed 4093 bytes at a time";
  return whole;
}

std::string one_cda_xdm(const std::string& document) {
  return xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", document}});
}

}  // namespace

TEST(MessageInspector, QualifiedProductionInsWithItsFourTraits) {
  auto facts = inspect_every_way(message(
      kStructuredHeaders,
      multipart("mixed", "b1", {text_part("Bonjour"), attachment(one_cda_xdm(cda("11488-4")))})));
  EXPECT_TRUE(facts.inspected) << facts.uninspectable_reason;
  EXPECT_EQ(facts.xdm_archives, 1u);
  EXPECT_EQ(facts.parts, 2u);
  EXPECT_EQ(facts.codes(), std::vector<std::string>{"11488-4"});
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kQualified);
  EXPECT_TRUE(facts.mismatches.empty()) << describe(facts);
  EXPECT_EQ(facts.claims.nil, "DEV935997");
  EXPECT_EQ(facts.message_id, "<sample@hopital.mssante.fr>");
}

TEST(MessageInspector, AnInsWithoutItsBirthDateIsNotQualified) {
  auto facts = inspect_every_way(
      message(kStructuredHeaders,
              multipart("mixed", "b1",
                        {attachment(one_cda_xdm(cda("11488-4", "1.2.250.1.213.1.4.8", false)))})));
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kUnqualified);
  EXPECT_EQ(words(facts.mismatches), std::vector<std::string>{"ins_o_not_qualified"});
}

TEST(MessageInspector, AMalformedInsIsCountedApartAndNotQualified) {
  // Its four traits are there, its control key is wrong.
  auto malformed_document = cda("11488-4", "1.2.250.1.213.1.4.8", true, "F", "284032A00412324");
  auto facts = inspect_every_way(message(
      kStructuredHeaders, multipart("mixed", "b1", {attachment(one_cda_xdm(malformed_document))})));
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kMalformed);
  EXPECT_EQ(to_string(facts.ins), "malformed");
  EXPECT_EQ(words(facts.mismatches), std::vector<std::string>{"ins_o_not_qualified"});
  // Beside a well-formed document without its birth date, the message's INS is unqualified;
  // beside a qualified one, qualified.
  std::string with_unqualified =
      xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", malformed_document},
           {"IHE_XDM/SUBSET01/DOC0002.XML", cda("11488-4", "1.2.250.1.213.1.4.8", false)}});
  EXPECT_EQ(inspect_every_way(message(kStructuredHeaders,
                                      multipart("mixed", "b1", {attachment(with_unqualified)})))
                .ins,
            MessageFacts::Ins::kUnqualified);
  std::string with_qualified = xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", malformed_document},
                                    {"IHE_XDM/SUBSET01/DOC0002.XML", cda("11488-4")}});
  auto best = inspect_every_way(
      message(kStructuredHeaders, multipart("mixed", "b1", {attachment(with_qualified)})));
  EXPECT_EQ(best.ins, MessageFacts::Ins::kQualified);
  ASSERT_EQ(best.documents.size(), 2u);
  EXPECT_EQ(ins_class(best.documents[0]), MessageFacts::Ins::kMalformed);
  EXPECT_EQ(ins_class(best.documents[1]), MessageFacts::Ins::kQualified);
}

TEST(MessageInspector, TestOidsAreCountedApart) {
  auto facts = inspect_every_way(message(
      kStructuredHeaders,
      multipart("mixed", "b1", {attachment(one_cda_xdm(cda("11488-4", "1.2.250.1.213.1.4.10")))})));
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kTest);
  EXPECT_TRUE(facts.test_ins_qualified);
  EXPECT_TRUE(facts.mismatches.empty()) << describe(facts);
}

TEST(MessageInspector, TwoDocumentsOfDifferentCodes) {
  std::string zip = xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", cda("11488-4")},
                         {"IHE_XDM/SUBSET01/DOC0002.XML", cda("34112-3")}});
  auto claimed_one = inspect_every_way(
      message(kStructuredHeaders, multipart("mixed", "b1", {attachment(zip, "ihe_xdm.zip")})));
  EXPECT_EQ(claimed_one.codes(), (std::vector<std::string>{"11488-4", "34112-3"}));
  EXPECT_EQ(words(claimed_one.mismatches), std::vector<std::string>{"codecda_differs"});
  auto claimed_both = inspect_every_way(
      message("Subject: XDM/1.0/DDM\r\nX-MSS-CODECDA: 34112-3,11488-4\r\nX-MSS-INS: O\r\n",
              multipart("mixed", "b1", {attachment(zip)})));
  EXPECT_TRUE(claimed_both.mismatches.empty()) << describe(claimed_both);
}

TEST(MessageInspector, AnXdmWithoutCda) {
  auto facts = inspect_every_way(message(
      "Subject: XDM/1.0/DDM\r\n",
      multipart("mixed", "b1", {attachment(xdm({{"IHE_XDM/SUBSET01/DOC0001.PDF", "%PDF-1.4"}}))})));
  EXPECT_EQ(facts.xdm_archives, 1u);
  EXPECT_TRUE(facts.documents.empty());
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kAbsent);
  EXPECT_TRUE(facts.mismatches.empty()) << describe(facts);
}

TEST(MessageInspector, ClaimsWithoutXdm) {
  auto facts = inspect_every_way(
      message(kStructuredHeaders, multipart("mixed", "b1", {text_part("Pas de pièce jointe")})));
  EXPECT_EQ(facts.xdm_archives, 0u);
  EXPECT_EQ(
      words(facts.mismatches),
      (std::vector<std::string>{"codecda_without_cda", "ins_without_cda", "subject_without_xdm"}));
}

TEST(MessageInspector, XdmWithoutClaims) {
  auto facts = inspect_every_way(message(
      "Subject: CR\r\n", multipart("mixed", "b1", {attachment(one_cda_xdm(cda("11488-4")))})));
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kQualified);
  EXPECT_EQ(words(facts.mismatches),
            (std::vector<std::string>{"codecda_missing", "ins_missing", "xdm_without_subject"}));
  EXPECT_TRUE(facts.claims.nil.empty());
}

TEST(MessageInspector, NestedMultipartsAndEncodings) {
  std::string zip = one_cda_xdm(cda("11488-4"));
  std::string inner = multipart("alternative", "inner-b",
                                {text_part("texte"), "Content-Type: text/html\r\n\r\n<p>x</p>"});
  // The archive as quoted-printable, and a zip found by its IHE_XDM/ folder, not its name.
  auto qp = inspect_every_way(message(
      kStructuredHeaders,
      multipart("mixed", "outer-b", {inner, attachment(zip, "IHE_XDM.ZIP", "quoted-printable")})));
  EXPECT_TRUE(qp.inspected) << qp.uninspectable_reason;
  EXPECT_EQ(qp.parts, 3u);
  EXPECT_EQ(qp.codes(), std::vector<std::string>{"11488-4"});
  auto by_content = inspect_every_way(
      message(kStructuredHeaders,
              multipart("related", "r",
                        {multipart("mixed", "outer-b", {inner, attachment(zip, "dmp.zip")})})));
  EXPECT_EQ(by_content.xdm_archives, 1u);
  EXPECT_EQ(by_content.codes(), std::vector<std::string>{"11488-4"});
  // A zip that is not an XDM is not counted.
  auto other_zip = inspect_every_way(message(
      "", multipart("mixed", "b", {attachment(make_zip({{"photos/a.jpg", "jpeg"}}), "a.zip")})));
  EXPECT_EQ(other_zip.xdm_archives, 0u);
  EXPECT_TRUE(other_zip.inspected);
  // A binary (unencoded) archive with bare LF lines.
  auto binary = inspect_every_way(message(
      kStructuredHeaders, multipart("mixed", "b", {attachment(zip, "IHE_XDM.ZIP", "binary")})));
  EXPECT_EQ(binary.codes(), std::vector<std::string>{"11488-4"});
}

TEST(MessageInspector, MdnsAndSinglePartMessages) {
  auto mdn = inspect_every_way(message(
      "Subject: Read: XDM/1.0/DDM\r\n",
      "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r\"\r\n\r\n"
      "--r\r\nContent-Type: text/plain\r\n\r\nlu\r\n--r\r\nContent-Type: "
      "message/disposition-notification\r\n\r\nDisposition: automatic-action/"
      "MDN-sent-automatically; processed\r\n--r--\r\n"));
  EXPECT_TRUE(mdn.mdn);
  auto plain = inspect_every_way("From: a@b.fr\nSubject: bonjour\n\nbody\n--not a boundary\n");
  EXPECT_FALSE(plain.mdn);
  EXPECT_EQ(plain.parts, 1u);
  auto headers_only = inspect_every_way("From: a@b.fr\r\nX-MSS-NIL: LPS1");
  EXPECT_EQ(headers_only.claims.nil, "LPS1");
}

TEST(MessageInspector, AReportThatAttachesTheOriginalArchiveCountsNoDocument) {
  // As the ANS guides show: a read receipt, then a delivery status notification, each with the
  // original message's IHE_XDM.ZIP attached again.
  std::string archive = one_cda_xdm(cda("11488-4"));
  for (const char* report_type : {"disposition-notification", "delivery-status"}) {
    std::string second_part = std::string(report_type) == "delivery-status"
                                  ? "message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
                                    "Final-Recipient: rfc822; a@b.fr\r\nAction: delivered\r\n"
                                    "Status: 2.0.0\r\n"
                                  : "message/disposition-notification\r\n\r\nDisposition: "
                                    "manual-action/MDN-sent-manually; displayed\r\n";
    auto facts = inspect_every_way(message(
        "Subject: XDM/1.0/DDM Compte rendu (lu)\r\nX-MSS-CODECDA: 11488-4\r\nX-MSS-INS: O\r\n",
        std::string("Content-Type: multipart/report; report-type=") + report_type +
            "; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nlu\r\n"
            "--r\r\nContent-Type: " +
            second_part + "--r\r\n" + attachment(archive) + "\r\n--r--\r\n"));
    EXPECT_TRUE(facts.report()) << report_type;
    EXPECT_EQ(facts.mdn, std::string(report_type) == "disposition-notification");
    EXPECT_EQ(facts.dsn, std::string(report_type) == "delivery-status");
    EXPECT_EQ(facts.xdm_archives, 0u) << report_type;
    EXPECT_TRUE(facts.documents.empty()) << report_type;
    EXPECT_EQ(facts.ins, MessageFacts::Ins::kAbsent) << report_type;
    // Its subject and headers, copied from the original, are not matched against it either.
    EXPECT_TRUE(facts.mismatches.empty()) << describe(facts);
  }
  // The same archive in a message that is no report is counted.
  auto structured = inspect_every_way(
      message(kStructuredHeaders, multipart("mixed", "b1", {attachment(archive)})));
  EXPECT_FALSE(structured.report());
  EXPECT_EQ(structured.xdm_archives, 1u);
}

namespace {

std::string report(const std::string& headers, const std::string& report_type,
                   const std::string& machine_part) {
  return message(headers, "Content-Type: multipart/report; report-type=" + report_type +
                              "; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\n"
                              "Votre message\r\n--r\r\nContent-Type: message/" +
                              report_type + "\r\n\r\n" + machine_part + "\r\n--r--\r\n");
}

}  // namespace

TEST(MessageInspector, AReadReceiptSaysItsDispositionAndTheOriginalMessage) {
  auto displayed = inspect_every_way(
      report("Subject: Lu : compte rendu\r\n", "disposition-notification",
             "Reporting-UA: lps.example; LPS 2.1\r\nFinal-Recipient: rfc822; b@c.fr\r\n"
             "Original-Message-ID: <a1b2@hopital.mssante.fr>\r\n"
             "Disposition: manual-action/MDN-sent-manually; displayed\r\n"));
  EXPECT_TRUE(displayed.mdn);
  EXPECT_EQ(displayed.acknowledgement.disposition, "displayed");
  EXPECT_EQ(displayed.acknowledgement.original_message_id, "<a1b2@hopital.mssante.fr>");
  EXPECT_FALSE(displayed.acknowledgement.integration_error);
  // An integration error: the LPS's subject starts with [KO; the disposition folded, a modifier.
  auto ko = inspect_every_way(report(
      "Subject: [KO] Integration impossible\r\n", "disposition-notification",
      "Original-Message-ID: <x@y>\r\nDisposition: automatic-action/MDN-sent-automatically;\r\n"
      " Processed/error\r\n"));
  EXPECT_EQ(ko.acknowledgement.disposition, "processed");
  EXPECT_TRUE(ko.acknowledgement.integration_error);
  // Words outside RFC 8098's, and an id with a space, are not taken as they are.
  auto odd = inspect_every_way(report("", "disposition-notification",
                                      "Original-Message-ID: <a b@c>\r\nDisposition: x/y; lu\r\n"));
  EXPECT_EQ(odd.acknowledgement.disposition, "other");
  EXPECT_EQ(odd.acknowledgement.original_message_id, "");
  // [KO on a message that is no read receipt is no integration error.
  EXPECT_FALSE(
      inspect_every_way(message("Subject: [KO] x\r\n", "Content-Type: text/plain\r\n\r\nx\r\n"))
          .acknowledgement.integration_error);
}

TEST(MessageInspector, ADeliveryStatusSaysEachRecipientsAction) {
  auto dsn = inspect_every_way(
      report("Subject: Delivery Status Notification\r\n", "delivery-status",
             "Reporting-MTA: dns; mx.operateur.fr\r\nOriginal-Envelope-Id:\r\n  env-42\r\n\r\n"
             "Final-Recipient: rfc822; a@b.fr\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
             "Final-Recipient: rfc822; c@d.fr\r\nAction: FAILED\r\nStatus: 5.1.1\r\n\r\n"
             "Final-Recipient: rfc822; e@f.fr\r\nAction: delayed (still trying)\r\n"));
  EXPECT_TRUE(dsn.dsn);
  EXPECT_EQ(dsn.acknowledgement.original_envelope_id, "env-42");
  EXPECT_EQ(dsn.acknowledgement.actions,
            (std::vector<std::string>{"delivered", "failed", "other"}));
  EXPECT_EQ(dsn.acknowledgement.disposition, "");
  // Only the first 8 KiB of the part are read: a recipient after them is not.
  std::string padding = "X-Padding: " + std::string(9000, 'p') + "\r\n";
  auto long_one = inspect_every_way(
      report("", "delivery-status", "Action: delivered\r\n" + padding + "Action: failed\r\n"));
  EXPECT_EQ(long_one.acknowledgement.actions, std::vector<std::string>{"delivered"});
  // The same part in a message that is no report is not read.
  auto not_a_report = inspect_every_way(message(
      "",
      multipart("mixed", "m", {"Content-Type: message/delivery-status\r\n\r\nAction: failed"})));
  EXPECT_TRUE(not_a_report.acknowledgement.actions.empty());
}

TEST(MessageInspector, ADeliveryStatusNamesTheOriginalByTheHeaderSectionItReturns) {
  // Postfix's DSN: the status part, then the original's header section (RET=HDRS, or a
  // success notice) or the whole original (message/rfc822).
  auto with_status_then = [](const std::string& returned_type, const std::string& returned) {
    return message("Subject: Successful Mail Delivery Report\r\n",
                   "Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n"
                   "\r\n--r\r\nContent-Type: text/plain\r\n\r\nDelivered.\r\n"
                   "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
                   "Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; b@c.fr\r\n"
                   "Action: delivered\r\nStatus: 2.0.0\r\n"
                   "\r\n--r\r\nContent-Type: " +
                       returned_type + "\r\n\r\n" + returned + "\r\n--r--\r\n");
  };
  std::string headers =
      "Received: from lps by gw\r\nFrom: a@b.fr\r\nMessage-ID:\r\n <m1.4321@lps.example>\r\n"
      "Subject: CR\r\n";
  auto headers_only = inspect_every_way(with_status_then("text/rfc822-headers", headers));
  EXPECT_TRUE(headers_only.dsn);
  EXPECT_EQ(headers_only.acknowledgement.actions, std::vector<std::string>{"delivered"});
  EXPECT_EQ(headers_only.acknowledgement.original_message_id, "<m1.4321@lps.example>");
  auto whole =
      inspect_every_way(with_status_then("message/rfc822", headers + "\r\nLe compte rendu.\r\n"));
  EXPECT_EQ(whole.acknowledgement.original_message_id, "<m1.4321@lps.example>");
  // A returned section without Message-ID names nothing; nor does one in a message that is no
  // delivery status.
  EXPECT_EQ(inspect_every_way(with_status_then("text/rfc822-headers", "From: a@b.fr\r\n"))
                .acknowledgement.original_message_id,
            "");
  EXPECT_EQ(inspect_every_way(
                message("", multipart("mixed", "m",
                                      {"Content-Type: text/rfc822-headers\r\n\r\n" + headers})))
                .acknowledgement.original_message_id,
            "");
}

TEST(MessageInspector, MessageIdsAreTheirAngleBracketedPart) {
  // A comment or folding around the id makes no other id: the sent message and the report that
  // names it must agree.
  auto sent =
      inspect_every_way("Message-ID: <m2@lps.example> (LPS 2.1)\r\nFrom: a@b.fr\r\n\r\nx\r\n");
  EXPECT_EQ(sent.message_id, "<m2@lps.example>");
  auto read =
      inspect_every_way(report("", "disposition-notification",
                               "Original-Message-ID: (id) <m2@lps.example>\r\n"
                               "Disposition: manual-action/MDN-sent-manually; displayed\r\n"));
  EXPECT_EQ(read.acknowledgement.original_message_id, "<m2@lps.example>");
  // Without angle brackets, the trimmed text.
  EXPECT_EQ(inspect_every_way("Message-ID:  bare-id \r\n\r\nx\r\n").message_id, "bare-id");
}

// ---- hostile samples ------------------------------------------------------------------------

TEST(MessageInspectorHostile, ZipBombsAreStoppedAtTheCaps) {
  auto ratio = inspect_every_way(message(
      kStructuredHeaders, multipart("mixed", "b",
                                    {attachment(make_zip({{"IHE_XDM/SUBSET01/DOC0001.XML",
                                                           std::string(32 << 20, '\0')}}))})));
  EXPECT_FALSE(ratio.inspected);
  EXPECT_EQ(ratio.uninspectable_reason, "zip_ratio");
  std::vector<std::pair<std::string, std::string>> many;
  many.reserve(1500);
  for (int i = 0; i < 1500; ++i)
    many.emplace_back("IHE_XDM/SUBSET01/F" + std::to_string(i) + ".TXT", "x");
  auto entries = inspect(
      message(kStructuredHeaders, multipart("mixed", "b", {attachment(make_zip(many))})), 65536);
  EXPECT_EQ(entries.uninspectable_reason, "zip_too_many_entries");
}

TEST(MessageInspectorHostile, TraversalTruncationAndGarbage) {
  auto traversal = inspect_every_way(
      message(kStructuredHeaders,
              multipart("mixed", "b",
                        {attachment(make_zip({{"../../etc/passwd", "root"},
                                              {"IHE_XDM/SUBSET01/METADATA.XML", kMetadata},
                                              {"IHE_XDM/SUBSET01/../../DOC.XML", cda("1")}}))})));
  EXPECT_EQ(traversal.suspicious_names, 2u);
  EXPECT_TRUE(traversal.documents.empty());

  std::string zip = one_cda_xdm(cda("11488-4"));
  // Cut in half: the end of central directory record is gone, so is any sign of a zip.
  auto truncated = inspect_every_way(message(
      kStructuredHeaders, multipart("mixed", "b", {attachment(zip.substr(0, zip.size() / 2))})));
  EXPECT_FALSE(truncated.inspected);
  EXPECT_EQ(truncated.uninspectable_reason, "not_zip");

  auto garbage = inspect_every_way(message(
      kStructuredHeaders,
      multipart("mixed", "b",
                {"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: "
                 "base64\r\n\r\n!!!!$$$$ not base64 at all ****\r\n%%%%\r\n"})));
  EXPECT_FALSE(garbage.inspected);
  EXPECT_EQ(garbage.uninspectable_reason, "xdm_not_zip");

  auto broken_mime = inspect_every_way(message(
      "", "Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--unterminated\r\n"));
  EXPECT_EQ(broken_mime.xdm_archives, 0u);
}

namespace {

MessageFacts inspect_archive(const std::string& zip) {
  return inspect_every_way(message(kStructuredHeaders, multipart("mixed", "b", {attachment(zip)})));
}

// The zip's end of central directory record (22 bytes, no comment): its fields at `at`.
void poke_end_record(std::string& zip, size_t at, uint32_t value, size_t bytes) {
  size_t record = zip.size() - 22;
  for (size_t i = 0; i < bytes; ++i)
    zip[record + at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

}  // namespace

TEST(MessageInspectorHostile, ACentralDirectoryCutOrOutOfPlaceIsTruncated) {
  std::string zip = one_cda_xdm(cda("11488-4"));
  ASSERT_EQ(zip.substr(zip.size() - 22, 4), "PK\x05\x06") << "an end record without comment";
  // The central directory said to start 64 bytes later than it does: its entries are not there.
  std::string moved = zip;
  uint32_t offset = 0;
  for (size_t i = 0; i < 4; ++i)
    offset |= static_cast<uint32_t>(static_cast<unsigned char>(zip[zip.size() - 22 + 16 + i]))
              << (8 * i);
  poke_end_record(moved, 16, offset + 64, 4);
  auto out_of_place = inspect_archive(moved);
  EXPECT_FALSE(out_of_place.inspected);
  EXPECT_EQ(out_of_place.uninspectable_reason, "zip_truncated");
  EXPECT_EQ(out_of_place.xdm_archives, 1u);
  // The central directory said to hold more entries than it does.
  std::string more = zip;
  poke_end_record(more, 8, 5000, 2);
  poke_end_record(more, 10, 5000, 2);
  auto too_few = inspect_archive(more);
  EXPECT_FALSE(too_few.inspected);
  EXPECT_EQ(too_few.uninspectable_reason, "zip_truncated");
  // The last bytes of the central directory cut away, its end record kept.
  std::string cut = zip.substr(0, zip.size() - 22 - 10) + zip.substr(zip.size() - 22);
  auto short_directory = inspect_archive(cut);
  EXPECT_FALSE(short_directory.inspected);
  EXPECT_EQ(short_directory.uninspectable_reason, "zip_truncated");
}

TEST(MessageInspectorHostile, AnEncryptedEntryMakesTheMessageUninspectableAndIsNamed) {
  for (zip_uint16_t method : {zip_uint16_t{ZIP_EM_TRAD_PKWARE}, zip_uint16_t{ZIP_EM_AES_256}}) {
    std::string zip = make_zip({{"IHE_XDM/SUBSET01/METADATA.XML", kMetadata},
                                {"IHE_XDM/SUBSET01/DOC0001.XML", cda("11488-4")}},
                               "IHE_XDM/SUBSET01/DOC0001.XML", method);
    ASSERT_FALSE(zip.empty()) << "libzip could not encrypt with method " << method;
    auto facts = inspect_archive(zip);
    EXPECT_FALSE(facts.inspected) << method;
    EXPECT_EQ(facts.uninspectable_reason, "zip_encrypted") << method;
    EXPECT_EQ(facts.xdm_archives, 1u);
    EXPECT_TRUE(facts.documents.empty());
  }
}

TEST(MessageInspectorHostile, AZipInsideTheArchiveIsNeverOpened) {
  std::string inner = one_cda_xdm(cda("11488-4"));
  auto nested = inspect_archive(make_zip(
      {{"IHE_XDM/SUBSET01/METADATA.XML", kMetadata}, {"IHE_XDM/SUBSET01/IHE_XDM.ZIP", inner}}));
  EXPECT_TRUE(nested.inspected) << nested.uninspectable_reason;
  EXPECT_EQ(nested.xdm_archives, 1u);
  EXPECT_TRUE(nested.documents.empty()) << "the inner archive's CDA is not counted";
  // Named like a document, it is read as XML, and is none.
  auto disguised = inspect_archive(make_zip(
      {{"IHE_XDM/SUBSET01/METADATA.XML", kMetadata}, {"IHE_XDM/SUBSET01/DOC0001.XML", inner}}));
  EXPECT_FALSE(disguised.inspected);
  EXPECT_EQ(disguised.uninspectable_reason, "cda_unreadable");
  EXPECT_TRUE(disguised.documents.empty());
}

TEST(MessageInspectorHostile, ACdaOutsideTheHl7NamespaceIsNotCounted) {
  std::string document = cda("11488-4");
  std::string foreign = document;
  foreign.replace(foreign.find("urn:hl7-org:v3"), 14, "urn:evil:v3");
  auto facts = inspect_archive(one_cda_xdm(foreign));
  EXPECT_TRUE(facts.inspected) << facts.uninspectable_reason;
  EXPECT_EQ(facts.xdm_archives, 1u);
  EXPECT_TRUE(facts.documents.empty());
  EXPECT_EQ(facts.ins, MessageFacts::Ins::kAbsent) << "no INS is taken from it";
}

TEST(MessageInspectorHostile, XmlAttacksAreRefusedNotExpanded) {
  std::string laughs =
      R"(<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><ClinicalDocument><code code="&lol3;"/></ClinicalDocument>)";
  std::string external =
      R"(<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument><code code="&e;"/></ClinicalDocument>)";
  std::string deep = "<ClinicalDocument>";
  for (int i = 0; i < 10000; ++i)
    deep += "<a>";
  for (int i = 0; i < 10000; ++i)
    deep += "</a>";
  deep += "</ClinicalDocument>";
  InspectorLimits limits;
  limits.xdm.max_ratio =
      1 << 20;  // these compress so well that the ratio cap would stop them first
  for (const auto& document : {laughs, external, deep}) {
    auto facts = inspect(
        message(kStructuredHeaders, multipart("mixed", "b", {attachment(one_cda_xdm(document))})),
        4096, limits);
    EXPECT_FALSE(facts.inspected);
    EXPECT_EQ(facts.uninspectable_reason, "cda_unreadable");
    EXPECT_TRUE(facts.documents.empty());
  }
}

TEST(MessageInspectorHostile, DeepMimeAndManyParts) {
  std::string entity = text_part("x");
  for (int i = 0; i < 40; ++i)
    entity = multipart("mixed", "level" + std::to_string(i), {entity});
  auto deep = inspect_every_way(message("", entity));
  EXPECT_EQ(deep.uninspectable_reason, "mime_too_deep");
  std::vector<std::string> parts(1200, text_part("x"));
  auto many = inspect(message("", multipart("mixed", "b", parts)), 1000);
  EXPECT_EQ(many.uninspectable_reason, "too_many_parts");
}

// A NUL inside Content-Type or Content-Disposition: mimetic compared its words over the longer
// length and read past the end of "multipart" (found by the mime_inspector fuzz target,
// tests/fuzz/regressions/mime_inspector/). Readers disagree on such a field: not read.
TEST(MessageInspectorHostile, ANulInAContentFieldIsNotRead) {
  std::string nul(24, '\0');
  for (const std::string& field : {"Content-Type: multipart" + nul + "/mixed; boundary=b",
                                   std::string("Content-Type: text/plain; na\0me=x", 33),
                                   "Content-Type: text/plain\r\nContent-Disposition: attachment" +
                                       nul + "; filename=IHE_XDM.ZIP"}) {
    auto facts = inspect_every_way(message("", field + "\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"));
    EXPECT_EQ(facts.uninspectable_reason, "mime_header_nul") << field.size();
  }
  auto part = inspect_every_way(message(
      "", multipart("mixed", "b", {"Content-Type: multipart" + nul + "/report\r\n\r\nx\r\n"})));
  EXPECT_EQ(part.uninspectable_reason, "mime_header_nul");
}

TEST(MessageInspectorHostile, A50MiBAttachmentOverTheCapKeepsMemoryBounded) {
  InspectorLimits limits;
  limits.max_archive_bytes = 8 << 20;
  // 50 MiB of zip-looking bytes, base64 encoded, plus a long line that is no delimiter.
  std::mt19937 random(7);
  std::string payload = "PK\x03\x04";
  payload.resize(50 << 20);
  for (size_t i = 4; i < payload.size(); ++i)
    payload[i] = static_cast<char>(random());
  std::string m = message(kStructuredHeaders, multipart("mixed", "b",
                                                        {text_part(std::string(3 << 20, 'y')),
                                                         attachment(payload, "IHE_XDM.ZIP")}));
  payload.clear();
  payload.shrink_to_fit();
  MessageInspector inspector(limits);
  for (size_t i = 0; i < m.size(); i += 16384)
    inspector.feed(std::string_view(m).substr(i, 16384));
  auto facts = inspector.finish();
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "archive_too_large");
  EXPECT_EQ(facts.claims.nil, "DEV935997") << "the headers are still read";
  // Held at most: the archive cap, the header section caps, one line, a few codec bytes.
  EXPECT_LE(inspector.peak_held_bytes(), limits.max_archive_bytes + limits.max_header_bytes +
                                             limits.max_part_header_bytes + 16384);
  EXPECT_GE(inspector.peak_held_bytes(), limits.max_archive_bytes - 1024)
      << "the accounting is live";
}

TEST(MessageInspectorHostile, DocumentsPastTheCapAreNotCounted) {
  InspectorLimits limits;
  limits.max_documents = 2;
  std::string zip = xdm({{"IHE_XDM/SUBSET01/DOC0001.XML", cda("11488-4")},
                         {"IHE_XDM/SUBSET01/DOC0002.XML", cda("11488-4")},
                         {"IHE_XDM/SUBSET01/DOC0003.XML", cda("11488-4")}});
  auto facts =
      inspect(message("Subject: XDM/1.0/DDM\r\n", multipart("mixed", "b1", {attachment(zip)})),
              4093, limits);
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "too_many_documents");
  EXPECT_EQ(facts.documents.size(), 2u);
}

// ---- the budget of a message, over all its archives -----------------------------------------

namespace {

// A CDA document padded to about `bytes` with a comment of letters that deflate about 2:1.
std::string padded_cda(const std::string& code, size_t bytes, unsigned seed) {
  std::mt19937 random(seed);
  std::string padding;
  padding.reserve(bytes);
  for (size_t i = 0; i < bytes; ++i)
    padding += static_cast<char>('a' + random() % 16);
  std::string document = cda(code);
  return document.insert(document.rfind("</ClinicalDocument>"), "<!-- " + padding + " -->");
}

// `archives` IHE_XDM attachments of `documents` documents each.
std::string archives_message(int archives, int documents, size_t padding) {
  std::vector<std::string> parts{text_part("Comptes rendus")};
  for (int a = 0; a < archives; ++a) {
    std::vector<std::pair<std::string, std::string>> files{
        {"IHE_XDM/SUBSET01/METADATA.XML", kMetadata}};
    for (int d = 0; d < documents; ++d) {
      files.emplace_back("IHE_XDM/SUBSET01/DOC000" + std::to_string(d + 1) + ".XML",
                         padded_cda("11488-4", padding, static_cast<unsigned>(a * 10 + d)));
    }
    parts.push_back(attachment(make_zip(files)));
  }
  return message(kStructuredHeaders, multipart("mixed", "b", parts));
}

// Inspects with `limits` whole, one byte at a time and in odd pieces; the three must agree.
MessageFacts inspect_every_way(const std::string& m, const InspectorLimits& limits) {
  MessageFacts whole = inspect(m, m.size() + 1, limits);
  EXPECT_EQ(describe(whole), describe(inspect(m, 1, limits))) << "fed one byte at a time";
  EXPECT_EQ(describe(whole), describe(inspect(m, 4093, limits))) << "fed 4093 bytes at a time";
  return whole;
}

}  // namespace

TEST(MessageInspectorBudget, InflatedBytesAreSummedOverEveryArchive) {
  // Four archives of one 100 KiB document: far under the caps of one archive, 400 KiB in all.
  std::string m = archives_message(4, 1, 100 << 10);
  InspectorLimits limits;
  limits.budget.max_inflated_bytes = 250 << 10;
  auto facts = inspect_every_way(m, limits);
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "budget_inflated_bytes");
  EXPECT_EQ(facts.documents.size(), 2u) << "what was read before the budget ran out is kept";
  EXPECT_EQ(facts.xdm_archives, 3u);
  EXPECT_EQ(facts.claims.nil, "DEV935997");
  EXPECT_EQ(words(facts.mismatches), std::vector<std::string>{}) << "not compared";

  limits.budget.max_inflated_bytes = 1 << 20;
  auto within = inspect_every_way(m, limits);
  EXPECT_TRUE(within.inspected) << within.uninspectable_reason;
  EXPECT_EQ(within.documents.size(), 4u);
}

TEST(MessageInspectorBudget, DocumentsAreSummedOverEveryArchive) {
  InspectorLimits limits;
  limits.budget.max_xml_documents = 5;
  auto facts = inspect_every_way(archives_message(3, 2, 100), limits);
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "budget_xml_documents");
  EXPECT_EQ(facts.documents.size(), 5u);
}

TEST(MessageInspectorBudget, ADocumentOverTheNodeBudgetIsNeverParsed) {
  std::string wide = "<Other>";
  for (int i = 0; i < 20000; ++i)
    wide += "<e v=\"" + std::to_string(i) + "\"/>";
  wide += "</Other>";
  std::string m =
      message(kStructuredHeaders,
              multipart("mixed", "b",
                        {attachment(one_cda_xdm(cda("11488-4"))), attachment(one_cda_xdm(wide))}));
  InspectorLimits limits;
  limits.budget.max_xml_nodes = 30000;  // the first document's few dozen, not 40,000 more
  auto facts = inspect_every_way(m, limits);
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "budget_xml_nodes");
  EXPECT_EQ(facts.codes(), std::vector<std::string>{"11488-4"});
  EXPECT_EQ(count_xml_markup(wide), 40002u);

  limits.budget.max_xml_nodes = 50000;
  auto within = inspect_every_way(m, limits);
  EXPECT_EQ(within.uninspectable_reason, "") << "the wide document is read, and is no CDA";
  EXPECT_EQ(within.documents.size(), 1u);
}

TEST(MessageInspectorBudget, TheReaderStopsItBetweenStepsAndNothingMoreIsRead) {
  std::string m = archives_message(3, 2, 1000);
  int asked = 0;
  MessageInspector inspector;
  // Stops at the 12th question: past the headers.
  inspector.set_interrupt(
      [&asked]() -> std::string_view { return ++asked >= 12 ? "budget_cpu_time" : ""; });
  for (size_t i = 0; i < m.size(); i += 512)
    inspector.feed(std::string_view(m).substr(i, 512));
  EXPECT_TRUE(inspector.stopped());
  int asked_when_stopped = asked;
  inspector.feed("--b\r\nContent-Type: text/plain\r\n\r\nmore\r\n");
  EXPECT_EQ(asked, asked_when_stopped) << "a stopped inspection asks and reads nothing more";
  auto facts = inspector.finish();
  EXPECT_FALSE(facts.inspected);
  EXPECT_EQ(facts.uninspectable_reason, "budget_cpu_time");
  EXPECT_EQ(facts.claims.nil, "DEV935997");
  EXPECT_LT(facts.documents.size(), 6u);
}

namespace {

// Memory shared with other messages, with a limit, counting what is held.
class CountedMemory : public SharedMemory {
 public:
  explicit CountedMemory(size_t limit) : limit_(limit) {}
  bool take(size_t bytes) override {
    if (held + bytes > limit_) return false;
    held += bytes;
    peak = std::max(peak, held);
    return true;
  }
  void give(size_t bytes) override { held -= bytes; }
  size_t held = 0;
  size_t peak = 0;

 private:
  size_t limit_;
};

MessageFacts inspect_sharing(const std::string& m, CountedMemory& memory) {
  MessageInspector inspector;
  inspector.set_shared_memory(&memory);
  for (size_t i = 0; i < m.size(); i += 4096)
    inspector.feed(std::string_view(m).substr(i, 4096));
  return inspector.finish();
}

}  // namespace

TEST(MessageInspectorBudget, ArchivesTakeTheirMemoryFromWhatAllMessagesShare) {
  std::string m = archives_message(2, 1, 200 << 10);
  CountedMemory roomy(4 << 20);
  auto facts = inspect_sharing(m, roomy);
  EXPECT_TRUE(facts.inspected) << facts.uninspectable_reason;
  EXPECT_EQ(facts.documents.size(), 2u);
  EXPECT_GT(roomy.peak, size_t{64} << 10) << "the archive's buffer is taken from it";
  EXPECT_EQ(roomy.held, 0u) << "and given back";

  CountedMemory tight(16 << 10);
  auto refused = inspect_sharing(m, tight);
  EXPECT_FALSE(refused.inspected);
  EXPECT_EQ(refused.uninspectable_reason, "inspection_memory");
  EXPECT_EQ(refused.claims.nil, "DEV935997");
  EXPECT_EQ(tight.held, 0u);

  // An inspection abandoned in the middle of an archive gives its memory back too.
  CountedMemory abandoned(4 << 20);
  {
    MessageInspector inspector;
    inspector.set_shared_memory(&abandoned);
    inspector.feed(std::string_view(m).substr(0, m.size() / 3));
    EXPECT_GT(abandoned.held, 0u);
  }
  EXPECT_EQ(abandoned.held, 0u);
}
