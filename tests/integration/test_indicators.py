"""Indicators end to end: messages sent through mssgate's submission and received through its LMTP
tap (Postfix -> mssgate -> Dovecot), their events in the journal and the JSON-lines log, the monthly
export, durability across SIGKILL, and no INS value or content anywhere."""

import base64
import csv
import email.utils
import io
import json
import os
import re
import signal
import smtplib
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import zipfile

from harness import (APP_HOPITAL, Gateway, backend_env, client_context, ctl, delivered_messages, drain_postfix_queue,
                     main, new_marker, pki, postfix_queue, wait_for_delivery, MSSGATECTL)

TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here
LABO = "labo@tap.test.mssante.fr"
CABINET = "cabinet@tap.test.mssante.fr"
SECRETARIAT = "secretariat@tap.test.mssante.fr"  # only the export test writes to these two
INS_VALUE = "284032A00412323"  # well formed; must never appear in a log, an event or an export
PATIENT_NAME = "DURANDEAU"
BODY_TEXT = "Texte confidentiel du compte rendu"
MALFORMED_INS = "284032A00412324"  # the control key is wrong


def cda(code, ins_oid="1.2.250.1.213.1.4.8", birth_time=True, ins_value=INS_VALUE):
    birth = '<birthTime value="19480922"/>' if birth_time else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code="{code}" codeSystem="2.16.840.1.113883.6.1"/>
  <recordTarget><patientRole>
    <id root="{ins_oid}" extension="{ins_value}"/>
    <patient>
      <name><given>MARIE</given><family qualifier="BR">{PATIENT_NAME}</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      {birth}
    </patient>
  </patientRole></recordTarget>
</ClinicalDocument>""".encode()


def xdm(documents):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.TXT", "readme")
        z.writestr("IHE_XDM/SUBSET01/METADATA.XML",
                   '<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>')
        for i, document in enumerate(documents):
            z.writestr("IHE_XDM/SUBSET01/DOC%04d.XML" % (i + 1), document)
    return buffer.getvalue()


def structured_message(sender, recipient, marker, archive, headers):
    encoded = base64.encodebytes(archive).decode().replace("\n", "\r\n")
    return ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{m}@test>\r\nMIME-Version: 1.0\r\n{h}"
            "Content-Type: multipart/mixed; boundary=\"b-{m}\"\r\n\r\n"
            "--b-{m}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body} {m}\r\n"
            "--b-{m}\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
            "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n"
            "{a}--b-{m}--\r\n").format(s=sender, r=recipient, d=email.utils.formatdate(), m=marker.decode(),
                                       h=headers, body=BODY_TEXT, a=encoded).encode()


MATCHING_HEADERS = ("Subject: XDM/1.0/DDM Compte rendu\r\nX-MSS-CODECDA: 11488-4\r\nX-MSS-INS: O\r\n"
                    "X-MSS-NIL: LPS-TEST-1\r\n")


class IndicatorGateway(Gateway):
    def __init__(self, journal_dir=None, more_config=""):
        self.journal_dir = journal_dir or tempfile.mkdtemp(prefix="mssgate-journal-")
        os.chmod(self.journal_dir, 0o755)
        lmtp_port = backend_env()["BACKEND_LMTP_PORT"]
        super().__init__(extra_config=f"""
[lmtp]
listen = ["127.0.0.1:{TAP_PORT}"]
backend = "127.0.0.1:{lmtp_port}"
command_timeout = "10s"
data_timeout = "10s"

[indicators]
journal = "{self.journal_dir}/indicators.db"
log = "{self.journal_dir}/indicators.jsonl"
operator_domains = ["test.mssante.fr", "tap.test.mssante.fr"]
""" + more_config)
        self.journal = os.path.join(self.journal_dir, "indicators.db")
        self.indicator_log = os.path.join(self.journal_dir, "indicators.jsonl")
        ctl(self.database, "mailbox", "add", LABO, "--type", "APP")
        ctl(self.database, "mailbox", "add", CABINET, "--type", "CAB")
        ctl(self.database, "mailbox", "add", SECRETARIAT, "--type", "ORG")
        # The labo's LPS signs in to its tap mailbox with its organisation's certificate, naming
        # it: its messages' reports come back through the tap.
        ctl(self.database, "certificate", "bind", LABO, "--cert", pki("org-labo.crt"), "--match", "issuer-serial")

    def stop(self):
        # This gateway is on the LMTP tap's port: what Postfix still holds is delivered to it
        # first, so that no message of this test reaches the next test's gateway there.
        if self.process and self.process.poll() is None:
            drain_postfix_queue()
        super().stop()

    def events(self):
        if not os.path.exists(self.indicator_log):
            return []
        with open(self.indicator_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_for_event(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.1)
        raise AssertionError("no indicator event as expected; log has:\n%s" % "\n".join(
            json.dumps(e) for e in self.events()[-10:]))

    def journal_rows(self, sql, *parameters):
        db = sqlite3.connect("file:%s?mode=ro" % self.journal, uri=True, timeout=10)
        try:
            return db.execute(sql, parameters).fetchall()
        finally:
            db.close()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None


def send(gateway, recipient, message, timeout=30):
    with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=timeout) as smtp:
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
        refused = smtp.sendmail(APP_HOPITAL, [recipient], message)
        assert refused == {}, refused


def send_as_labo(gateway, recipient, message, notify_success=False, envelope_id=None):
    """Submits `message` as the labo's LPS (org-labo, SASL EXTERNAL naming LABO), with an ENVID
    (`envelope_id`, xtext) when given."""
    with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as smtp:
        smtp.starttls(context=client_context("org-labo"))
        smtp.ehlo("lps.labo.test")
        smtp.auth("EXTERNAL", lambda challenge=None: LABO, initial_response_ok=True)
        refused = smtp.sendmail(LABO, [recipient], message,
                                mail_options=["ENVID=" + envelope_id] if envelope_id else [],
                                rcpt_options=["NOTIFY=SUCCESS"] if notify_success else [])
        assert refused == {}, refused


def read_receipt(sender, recipient, marker, original_id, disposition, subject):
    """An MDN (RFC 8098) for the message `original_id`."""
    return ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{p}-{m}@test>\r\nSubject: {k}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r\"\r\n\r\n"
            "--r\r\nContent-Type: text/plain\r\n\r\n{k}\r\n"
            "--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
            "Original-Message-ID: {o}\r\n"
            "Disposition: automatic-action/MDN-sent-automatically; {p}\r\n\r\n--r--\r\n").format(
        s=sender, r=recipient, d=email.utils.formatdate(), p=disposition, m=marker, k=subject,
        o=original_id).encode()


def export(gateway, month, fmt, out):
    result = subprocess.run([MSSGATECTL, "--config", gateway.config_path, "indicators", "export", "--month", month,
                             "--format", fmt, "--out", out], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


class IndicatorsEndToEnd(unittest.TestCase):
    def setUp(self):
        self.gateway = IndicatorGateway()
        self.gateway.start()

    def tearDown(self):
        if self.gateway.process:
            self.gateway.stop()

    def test_sent_and_received_events_and_the_monthly_export(self):
        g = self.gateway
        marker = new_marker("structured")
        archive = xdm([cda("11488-4")])
        send(g, CABINET, structured_message(APP_HOPITAL, CABINET, marker, archive, MATCHING_HEADERS))
        wait_for_delivery(CABINET, marker)
        message_id = "<%s@test>" % marker.decode()
        sent = g.wait_for_event(lambda e: e["direction"] == "sent" and e.get("message_id") == message_id)
        received = g.wait_for_event(lambda e: e["direction"] == "received" and e.get("message_id") == message_id)
        for event, mailbox, mailbox_type in ((sent, APP_HOPITAL, "APP"), (received, CABINET, "CAB")):
            self.assertEqual(event["mailbox"], mailbox)
            self.assertEqual(event["mailbox_type"], mailbox_type)
            self.assertTrue(event["inspected"])
            self.assertTrue(event["xdm"])
            self.assertEqual(event["documents"], [{"code": "11488-4", "code_system": "2.16.840.1.113883.6.1",
                                                   "ins": "qualified"}])
            self.assertEqual(event["ins"], "qualified")
            self.assertEqual(event["mismatches"], [])
            self.assertEqual(event["nil"], "LPS-TEST-1")
            self.assertEqual(event["claims"], {"codecda": "11488-4", "ins": "O", "xdm_subject": True})
        self.assertEqual(sent["auth_mode"], "certificate")
        self.assertEqual(sent["to_same_operator"], 1)
        self.assertRegex(sent["queue_id"], r"^\w+$")
        self.assertEqual(received["counterpart"], "same_operator")
        self.assertEqual(received["auth_mode"], "none")
        # The delivered message is the one sent, byte for byte after Postfix's own headers.
        delivered = delivered_messages(CABINET, marker)[0]
        self.assertIn(base64.encodebytes(archive).replace(b"\n", b"\r\n").replace(b"\r\n", b"\n"), delivered)

        # A second message whose headers claim a qualified INS the document does not have.
        marker2 = new_marker("mismatch")
        send(g, SECRETARIAT, structured_message(APP_HOPITAL, SECRETARIAT, marker2,
                                            xdm([cda("11488-4", birth_time=False), cda("34112-3")]),
                                            MATCHING_HEADERS))
        wait_for_delivery(SECRETARIAT, marker2)
        mismatch = g.wait_for_event(lambda e: e["direction"] == "received" and e.get("message_id") ==
                                    "<%s@test>" % marker2.decode())
        self.assertEqual(mismatch["mailbox_type"], "ORG")
        self.assertEqual(mismatch["mismatches"], ["codecda_differs"])
        self.assertEqual([d["ins"] for d in mismatch["documents"]], ["unqualified", "qualified"])

        month = received["day"][:7]
        out = tempfile.mkdtemp(prefix="mssgate-export-")
        printed = export(g, month, "csv", out)
        self.assertIn("messages-%s.csv" % month, printed)
        with open(os.path.join(out, "messages-%s.csv" % month), newline="") as f:
            rows = {r["mailbox"]: r for r in csv.DictReader(f, delimiter=";")}
        self.assertEqual(rows[APP_HOPITAL]["sent"], "2")
        self.assertEqual(rows[APP_HOPITAL]["sent_with_xdm"], "2")
        self.assertEqual(rows[APP_HOPITAL]["sent_qualified_ins"], "2")
        self.assertEqual(rows[APP_HOPITAL]["nil"], "LPS-TEST-1")
        self.assertEqual(rows[CABINET]["received"], "1")
        self.assertEqual(rows[CABINET]["received_qualified_ins"], "1")
        self.assertEqual(rows[SECRETARIAT]["received"], "1")
        with open(os.path.join(out, "documents-%s.csv" % month), newline="") as f:
            documents = [(r["mailbox"], r["direction"], r["code"], r["documents"], r["qualified_ins"])
                         for r in csv.DictReader(f, delimiter=";")]
        self.assertIn((APP_HOPITAL, "sent", "11488-4", "2", "1"), documents)
        self.assertIn((APP_HOPITAL, "sent", "34112-3", "1", "1"), documents)
        self.assertIn((CABINET, "received", "11488-4", "1", "1"), documents)
        with open(os.path.join(out, "connexions-%s.csv" % month), newline="") as f:
            connections = {r["mailbox"]: r for r in csv.DictReader(f, delimiter=";")}
        self.assertEqual(connections[APP_HOPITAL]["auth_mode"], "certificate")
        self.assertEqual(connections[APP_HOPITAL]["last_connection"], received["day"])
        export(g, month, "json", out)
        with open(os.path.join(out, "messages-%s.json" % month)) as f:
            by_mailbox = {r["mailbox"]: r for r in json.load(f)}
        self.assertEqual(by_mailbox[APP_HOPITAL]["sent"], 2)
        shown = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "show", "--mailbox", APP_HOPITAL,
                                "--from", month + "-01", "--to", received["day"]],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(received["day"], shown.stdout)
        self.assertIn("11488-4", shown.stdout)
        # The sign-ins of the day, as the journal counts them.
        by_certificate = g.journal_rows("SELECT SUM(connections) FROM connection_day WHERE mailbox = ? AND day = ? "
                                        "AND auth_mode = 'certificate'", APP_HOPITAL, received["day"])[0][0]
        self.assertGreater(by_certificate, 0)
        self.assertRegex(shown.stdout, r"sign-ins\nday +signed_in_certificate +signed_in_psc +imap +submission +"
                                       r"refused *\n%s +%d +0 " % (re.escape(received["day"]), by_certificate))

        # Nothing of the content, and no INS value, anywhere.
        texts = [g.log(), open(g.indicator_log).read()]
        for name in os.listdir(out):
            texts.append(open(os.path.join(out, name)).read())
        texts.append("\n".join(str(row) for row in g.journal_rows("SELECT * FROM indicator_event")))
        texts.append("\n".join(str(row) for row in g.journal_rows("SELECT * FROM indicator_document")))
        for text in texts:
            for secret in (INS_VALUE, PATIENT_NAME, BODY_TEXT, "MARIE", "19480922"):
                self.assertNotIn(secret, text)

    def test_a_malformed_ins_a_fin_subject_and_the_per_lps_report(self):
        g = self.gateway
        # Every trait is there and the headers claim a qualified INS; the matricule's key is wrong.
        marker = new_marker("malformed")
        send(g, CABINET, structured_message(APP_HOPITAL, CABINET, marker,
                                            xdm([cda("11488-4", ins_value=MALFORMED_INS)]), MATCHING_HEADERS))
        # The end of an exchange said by the subject alone, from another LPS.
        fin_marker = new_marker("fin").decode()
        fin = ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{m}@test>\r\nSubject: [FIN]\r\n"
               "X-MSS-NIL: LPS-TEST-2\r\n\r\nFin de l'echange {m}\r\n").format(
            s=APP_HOPITAL, r=CABINET, d=email.utils.formatdate(), m=fin_marker).encode()
        send(g, CABINET, fin)
        wait_for_delivery(CABINET, marker)
        wait_for_delivery(CABINET, fin_marker.encode())
        malformed = g.wait_for_event(lambda e: e["direction"] == "sent" and
                                     e.get("message_id") == "<%s@test>" % marker.decode())
        self.assertEqual(malformed["ins"], "malformed")
        self.assertEqual(malformed["documents"][0]["ins"], "malformed")
        self.assertEqual(malformed["mismatches"], ["ins_o_not_qualified"])
        ended = g.wait_for_event(lambda e: e["direction"] == "sent" and
                                 e.get("message_id") == "<%s@test>" % fin_marker)
        self.assertTrue(ended["mes_fin"])
        self.assertEqual(ended["nil"], "LPS-TEST-2")

        month = malformed["day"][:7]
        report = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "lps", "--month", month,
                                 "--format", "json"], capture_output=True, text=True, timeout=30)
        self.assertEqual(report.returncode, 0, report.stderr)
        rows = {r["nil"]: r for r in json.loads(report.stdout)}
        self.assertEqual(set(rows), {"LPS-TEST-1", "LPS-TEST-2"})
        first, second = rows["LPS-TEST-1"], rows["LPS-TEST-2"]
        self.assertEqual((first["azp"], first["sent"], first["sent_with_xdm"], first["sent_qualified_ins"],
                          first["sent_malformed_ins"], first["mismatch_ins_o_not_qualified"],
                          first["sent_with_mismatch"]), ("", 1, 1, 0, 1, 1, 1))
        self.assertEqual((second["sent"], second["sent_with_xdm"], second["sent_with_mismatch"]), (1, 0, 0))
        # The monthly export counts the end of exchange, and the malformed INS apart.
        out = tempfile.mkdtemp(prefix="mssgate-export-")
        export(g, month, "json", out)
        with open(os.path.join(out, "messages-%s.json" % month)) as f:
            hospital = {r["mailbox"]: r for r in json.load(f)}[APP_HOPITAL]
        self.assertEqual((hospital["sent"], hospital["sent_mes_fin"], hospital["sent_qualified_ins"]), (2, 1, 0))
        # One kind of report at a time: the per-LPS one, the connections alone.
        kinds = tempfile.mkdtemp(prefix="mssgate-export-")
        printed = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "export", "--month", month,
                                  "--kind", "lps", "--out", kinds], capture_output=True, text=True, timeout=30)
        self.assertEqual(printed.returncode, 0, printed.stderr)
        self.assertEqual(os.listdir(kinds), ["lps-%s.csv" % month])
        # Again into the same folder: refused, the file left as it was, unless --overwrite.
        lps_file = os.path.join(kinds, "lps-%s.csv" % month)
        with open(lps_file, "a") as f:
            f.write("kept\n")
        again = [MSSGATECTL, "--config", g.config_path, "indicators", "export", "--month", month, "--kind", "lps",
                 "--out", kinds]
        refused = subprocess.run(again, capture_output=True, text=True, timeout=30)
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertEqual(refused.stderr, "mssgatectl: indicators export: %s exists; nothing was written "
                                         "(--overwrite replaces it)\n" % lps_file)
        with open(lps_file) as f:
            self.assertTrue(f.read().endswith("kept\n"))
        replaced = subprocess.run(again + ["--overwrite"], capture_output=True, text=True, timeout=30)
        self.assertEqual(replaced.returncode, 0, replaced.stderr)
        with open(lps_file) as f:
            self.assertNotIn("kept", f.read())
        with open(os.path.join(kinds, "lps-%s.csv" % month), newline="") as f:
            self.assertEqual({r["nil"]: r["sent"] for r in csv.DictReader(f, delimiter=";")},
                             {"LPS-TEST-1": "1", "LPS-TEST-2": "1"})
        export_connections = [MSSGATECTL, "--config", g.config_path, "indicators", "export", "--month", month,
                              "--format", "json", "--out", kinds, "--kind"]
        printed = subprocess.run(export_connections + ["connections"], capture_output=True, text=True, timeout=30)
        self.assertEqual(printed.returncode, 0, printed.stderr)
        self.assertEqual(sorted(os.listdir(kinds)), ["connexions-%s.json" % month, "lps-%s.csv" % month])
        refused = subprocess.run(export_connections + ["everything"], capture_output=True, text=True, timeout=30)
        self.assertEqual(refused.returncode, 2)
        self.assertIn("--kind is all, connections, messages, documents, lps or acknowledgements", refused.stderr)
        table = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "lps", "--month", month],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("LPS-TEST-2", table.stdout)
        self.assertRegex(table.stdout, r"sent_malformed_ins +1")
        with open(g.indicator_log) as f:
            indicator_log = f.read()
        for text in (report.stdout, table.stdout, g.log(), indicator_log):
            self.assertNotIn(MALFORMED_INS, text)
            self.assertNotIn(MALFORMED_INS[:13], text)

    def test_reports_are_matched_to_the_messages_they_acknowledge(self):
        g = self.gateway
        month = time.strftime("%Y-%m")
        # The labo's LPS sends a message asking for a success notice; Postfix's DSN and two read
        # receipts from the hospital (displayed, then an integration error) come back to LABO
        # through the tap.
        marker = new_marker("acks").decode()
        original = "<%s@labo.test>" % marker
        send_as_labo(g, APP_HOPITAL, ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: {m}\r\nSubject: CR {k}\r\n"
                                      "\r\nCompte rendu {k}\r\n").format(
            s=LABO, r=APP_HOPITAL, d=email.utils.formatdate(), m=original, k=marker).encode(), notify_success=True)
        sent = g.wait_for_event(lambda e: e["direction"] == "sent" and e.get("message_id") == original)
        self.assertEqual(sent["mailbox"], LABO)
        dsn = g.wait_for_event(lambda e: e["direction"] == "received" and e["mailbox"] == LABO and e["dsn"] and
                               e.get("original_message_id") == original)
        self.assertFalse(dsn["mdn"], dsn)
        # Dovecot's LMTP offers no DSN: Postfix says "relayed" of the hand-over.
        self.assertIn(dsn["dsn_actions"], (["relayed"], ["delivered"]), dsn)
        self.assertEqual((dsn["disposition"], dsn["integration_error"], dsn["xdm"]), ("", False, False))
        for subject, disposition in (("Lu", "displayed"), ("[KO] Integration impossible", "processed")):
            send(g, LABO, read_receipt(APP_HOPITAL, LABO, marker, original, disposition, subject))
            event = g.wait_for_event(lambda e, p=disposition: e["direction"] == "received" and
                                     e.get("message_id") == "<%s-%s@test>" % (p, marker))
            self.assertEqual((event["mailbox"], event["mdn"], event["dsn"], event["disposition"],
                              event["original_message_id"], event["integration_error"], event["dsn_actions"]),
                             (LABO, True, False, disposition, original, subject.startswith("[KO"), []), event)
        # A second message with an envelope id (ENVID, xtext): kept decoded with the message,
        # given back as Postfix's DSN's Original-Envelope-Id, by which it is matched too.
        second = "<%s-envid@labo.test>" % marker
        send_as_labo(g, APP_HOPITAL, ("From: {s}\r\nTo: {r}\r\nMessage-ID: {m}\r\nSubject: CR\r\n\r\nCR\r\n").format(
            s=LABO, r=APP_HOPITAL, m=second).encode(), notify_success=True, envelope_id="acks+2B" + marker)
        sent_second = g.wait_for_event(lambda e: e["direction"] == "sent" and e.get("message_id") == second)
        self.assertEqual(sent_second.get("envelope_id"), "acks+" + marker, sent_second)
        dsn = g.wait_for_event(lambda e: e["direction"] == "received" and e["dsn"] and
                               e.get("original_message_id") == second)
        self.assertEqual(dsn.get("original_envelope_id"), "acks+" + marker, dsn)
        # A read receipt for a message this journal does not hold.
        send(g, LABO, read_receipt(APP_HOPITAL, LABO, marker, "<elsewhere-%s@test>" % marker, "deleted", "Lu"))
        g.wait_for_event(lambda e: e.get("message_id") == "<deleted-%s@test>" % marker and e["direction"] == "received")

        out = tempfile.mkdtemp(prefix="mssgate-acks-")
        result = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "export", "--month", month,
                                 "--kind", "acknowledgements", "--format", "json", "--out", out],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("acknowledgements: ", result.stdout)
        with open(os.path.join(out, "acquittements-%s.json" % month)) as f:
            rows = {(row["mailbox"], row["day"]): row for row in json.load(f)}
        labo = rows[(LABO, sent["day"])]
        self.assertEqual((labo["sent"], labo["acknowledged"], labo["delivered"] + labo["relayed"], labo["failed"],
                          labo["displayed"], labo["processed"], labo["integration_errors"],
                          labo["unmatched_reports"]),
                         (2, 2, 2, 0, 1, 1, 1, 1), labo)
        # Each delay: from the sending to the report's arrival, a few seconds at most here.
        kind = "delivered" if labo["delivered"] else "relayed"
        for column in (kind + "_p50_s", kind + "_p90_s", "displayed_p50_s"):
            self.assertIsInstance(labo[column], int, labo)
            self.assertLess(labo[column], 60, labo)
        # No failure came back: its delay is empty, not 0.
        self.assertEqual(labo["delivered_p50_s" if kind == "relayed" else "relayed_p50_s"], "", labo)

    def test_sign_ins_are_counted_with_their_refusals_and_lps(self):
        self.gateway.stop()
        self.gateway = g = IndicatorGateway(more_config="""
[indicators.export]
connections_columns = ["mailbox", "mailbox_type", "connections", "submission_connections", "failed_sign_ins",
                       "failure_reasons", "professionals", "lps"]
""")
        g.start()
        # Refused: the hospital's certificate naming the labo's mailbox, twice, and a mechanism
        # the gateway does not offer. Then the labo's LPS signs in and sends.
        for mechanism, initial in (("EXTERNAL", LABO), ("EXTERNAL", LABO), ("PLAIN", "\0x\0y")):
            with smtplib.SMTP("127.0.0.1", g.submission_port, timeout=30) as smtp:
                smtp.starttls(context=client_context("org-hopital"))
                smtp.ehlo("lps.test")
                with self.assertRaises(smtplib.SMTPException):
                    smtp.auth(mechanism, lambda challenge=None, i=initial: i, initial_response_ok=True)
        marker = new_marker("signins").decode()
        send_as_labo(g, APP_HOPITAL, ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nx\r\n" %
                                      (LABO, APP_HOPITAL, marker)).encode())
        g.wait_for_event(lambda e: e["direction"] == "sent" and e["mailbox"] == LABO)
        deadline = time.monotonic() + 10
        while True:
            rows = g.journal_rows("SELECT mailbox, protocol, auth_mode, failure, lps, sign_ins FROM sign_in_day "
                                  "ORDER BY failure, mailbox")
            if len(rows) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # The refusals for the labo's mailbox are the labo's, with the organisation that tried;
        # the one that named no mailbox the directory knows goes to "".
        self.assertEqual(rows, [(LABO, "submission", "certificate", "", "LABORATOIRE TEST", 1),
                                (LABO, "submission", "certificate", "mailbox_not_bound", "HOPITAL TEST", 2),
                                ("", "submission", "none", "unsupported_mechanism", "HOPITAL TEST", 1)])
        month = time.strftime("%Y-%m")
        out = tempfile.mkdtemp(prefix="mssgate-signins-")
        result = subprocess.run([MSSGATECTL, "--config", g.config_path, "indicators", "export", "--month", month,
                                 "--kind", "connections", "--format", "json", "--out", out],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(out, "connexions-%s.json" % month)) as f:
            rows = {row["mailbox"]: row for row in json.load(f)}
        self.assertEqual(rows[LABO], {"mailbox": LABO, "mailbox_type": "APP", "connections": 1,
                                      "submission_connections": 1, "failed_sign_ins": 2,
                                      "failure_reasons": "mailbox_not_bound=2", "professionals": 0,
                                      "lps": "LABORATOIRE TEST"})

    def test_a_sign_in_is_in_the_journal_before_its_answer(self):
        # The journal's first commit is held 3 s (the test build's fault point): the answer to
        # the sign-in waits for it, so that a kill -9 just after the answer loses nothing. Once
        # for a sign-in, once for a refusal.
        self.gateway.stop()
        for label, mailbox, accepted in (("sign-in", "", True), ("refusal", LABO, False)):
            g = self.gateway = IndicatorGateway()
            g.start(extra_env={"MSSGATE_INJECT_FAULTS": "journal.commit:1@3000"})
            with smtplib.SMTP("127.0.0.1", g.submission_port, timeout=30) as smtp:
                smtp.starttls(context=client_context("org-hopital"))
                smtp.ehlo("lps.test")
                started = time.monotonic()
                code, _ = smtp.docmd("AUTH", "EXTERNAL " + (base64.b64encode(mailbox.encode()).decode() or "="))
                waited = time.monotonic() - started
                g.kill()
            self.assertEqual(code, 235 if accepted else 535, label)
            self.assertGreaterEqual(waited, 2.5, "the %s was answered before the journal had it" % label)
            g.start()  # the journal opened again, as after a crash
            rows = g.journal_rows("SELECT mailbox, protocol, auth_mode, failure, sign_ins FROM sign_in_day")
            g.stop()
            self.assertEqual(rows, [(APP_HOPITAL, "submission", "certificate", "", 1)] if accepted else
                             [(LABO, "submission", "certificate", "mailbox_not_bound", 1)], label)

    def test_a_read_receipt_that_attaches_the_original_archive_counts_no_document(self):
        g = self.gateway
        marker = new_marker("mdn").decode()
        encoded = base64.encodebytes(xdm([cda("11488-4")])).decode().replace("\n", "\r\n")
        receipt = ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{m}@test>\r\nMIME-Version: 1.0\r\n{h}"
                   "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r-{m}\"\r\n\r\n"
                   "--r-{m}\r\nContent-Type: text/plain\r\n\r\nLu {m}\r\n"
                   "--r-{m}\r\nContent-Type: message/disposition-notification\r\n\r\n"
                   "Original-Message-ID: <original-{m}@test>\r\n"
                   "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
                   "--r-{m}\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n{a}--r-{m}--\r\n").format(
            s=APP_HOPITAL, r=CABINET, d=email.utils.formatdate(), m=marker, h=MATCHING_HEADERS, a=encoded).encode()
        send(g, CABINET, receipt)
        wait_for_delivery(CABINET, marker.encode())
        for direction in ("sent", "received"):
            event = g.wait_for_event(lambda e, d=direction: e["direction"] == d and
                                     e.get("message_id") == "<%s@test>" % marker)
            self.assertTrue(event["mdn"], event)
            self.assertEqual((event["xdm"], event["documents"], event["ins"], event["mismatches"]),
                             (False, [], "absent", []), event)

    def test_what_a_sender_writes_is_capped_cleaned_and_never_a_formula_in_the_export(self):
        g = self.gateway
        marker = new_marker("formula")
        nil = '=HYPERLINK("http://x.example/a?b",1)'
        message = ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{m}\x07x\x1b[2J@test>\r\n"
                   "X-MSS-NIL: {n}\r\nSubject: {m}\r\n\r\nhello {m}\r\n").format(
                       s=APP_HOPITAL, r=LABO, d=email.utils.formatdate(), m=marker.decode(), n=nil).encode()
        send(g, LABO, message)
        wait_for_delivery(LABO, marker)
        clean_id = "<%s?x?[2J@test>" % marker.decode()
        for direction in ("sent", "received"):
            event = g.wait_for_event(lambda e: e["direction"] == direction and marker.decode() in e.get("message_id", ""))
            self.assertEqual(event["message_id"], clean_id, direction)
            self.assertEqual(event["nil"], nil, direction)
        stored = g.journal_rows("SELECT message_id FROM indicator_event WHERE message_id LIKE ?",
                                "%%%s%%" % marker.decode())
        self.assertEqual({row[0] for row in stored}, {clean_id})

        month = event["day"][:7]
        out = tempfile.mkdtemp(prefix="mssgate-export-")
        export(g, month, "csv", out)
        with open(os.path.join(out, "messages-%s.csv" % month), newline="") as f:
            rows = {r["mailbox"]: r for r in csv.DictReader(f, delimiter=";")}
        # A spreadsheet shows the sender's "formula" as text.
        self.assertEqual(rows[APP_HOPITAL]["nil"], "'" + nil)
        export(g, month, "json", out)
        with open(os.path.join(out, "messages-%s.json" % month)) as f:
            self.assertEqual({r["mailbox"]: r for r in json.load(f)}[APP_HOPITAL]["nil"], nil)

    def test_an_uninspectable_message_is_still_delivered(self):
        g = self.gateway
        marker = new_marker("garbage")
        send(g, LABO, structured_message(APP_HOPITAL, LABO, marker, b"this is no zip at all" * 50, MATCHING_HEADERS))
        wait_for_delivery(LABO, marker)
        message_id = "<%s@test>" % marker.decode()
        for direction in ("sent", "received"):
            event = g.wait_for_event(lambda e: e["direction"] == direction and e.get("message_id") == message_id)
            self.assertFalse(event["inspected"])
            self.assertEqual(event["uninspectable_reason"], "xdm_not_zip")

    def test_hostile_archives_are_delivered_and_counted_with_their_reason(self):
        # Each archive is sent through submission and received through the LMTP tap: accepted,
        # delivered unchanged, and counted, uninspected with its reason or without a document.
        def zip_of(entries):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("IHE_XDM/SUBSET01/METADATA.XML",
                           '<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>')
                for name, content in entries:
                    z.writestr(name, content)
            return buffer.getvalue()

        doc = "IHE_XDM/SUBSET01/DOC0001.XML"
        laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY l0 "lol">' +
                  "".join('<!ENTITY l%d "%s">' % (i, "&l%d;" % (i - 1) * 10) for i in range(1, 10)) +
                  ']><ClinicalDocument xmlns="urn:hl7-org:v3"><code code="&l9;"/></ClinicalDocument>')
        external = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                    '<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="&e;"/></ClinicalDocument>')
        deep = ('<ClinicalDocument xmlns="urn:hl7-org:v3">' + "<a>" * 300 + "</a>" * 300 + "</ClinicalDocument>")
        foreign = cda("11488-4").replace(b"urn:hl7-org:v3", b"urn:evil:v3")
        good = xdm([cda("11488-4")])
        cases = [
            ("bomb", zip_of([(doc, b"\0" * (32 << 20))]), "zip_ratio"),
            ("laughs", zip_of([(doc, laughs)]), "cda_unreadable"),
            ("external", zip_of([(doc, external)]), "cda_unreadable"),
            ("deep", zip_of([(doc, deep)]), "cda_unreadable"),
            ("entries", zip_of([("IHE_XDM/SUBSET01/F%d.TXT" % i, "x") for i in range(1500)]), "zip_too_many_entries"),
            ("truncated", good[:len(good) // 2], "not_zip"),
            ("traversal", zip_of([("../../etc/passwd", "root"), ("IHE_XDM/SUBSET01/../../DOC.XML", cda("11488-4"))]),
             None),
            ("nested", zip_of([("IHE_XDM/SUBSET01/IHE_XDM.ZIP", good)]), None),
            ("namespace", zip_of([(doc, foreign)]), None),
        ]
        g = self.gateway
        markers = {}
        for label, archive, _ in cases:
            markers[label] = new_marker(label)
            send(g, LABO, structured_message(APP_HOPITAL, LABO, markers[label], archive, MATCHING_HEADERS))
        for label, _, reason in cases:
            with self.subTest(archive=label):
                wait_for_delivery(LABO, markers[label])
                message_id = "<%s@test>" % markers[label].decode()
                for direction in ("sent", "received"):
                    event = g.wait_for_event(lambda e: e["direction"] == direction and e.get("message_id") == message_id)
                    self.assertTrue(event["xdm"], direction)
                    self.assertEqual(event["documents"], [], direction)
                    self.assertEqual(event["ins"], "absent", direction)
                    if reason:
                        self.assertFalse(event["inspected"], direction)
                        self.assertEqual(event["uninspectable_reason"], reason, direction)
                    else:
                        self.assertTrue(event["inspected"], direction)

    def test_the_log_is_reopened_on_sighup(self):
        g = self.gateway
        send(g, LABO, structured_message(APP_HOPITAL, LABO, new_marker("before"), xdm([cda("11488-4")]),
                                         MATCHING_HEADERS))
        g.wait_for_event(lambda e: e["direction"] == "received")
        os.rename(g.indicator_log, g.indicator_log + ".1")
        since = g.log_size()
        g.process.send_signal(signal.SIGHUP)
        g.wait_for_log(r"event=indicator_log_reopened cause=SIGHUP", since=since)
        marker = new_marker("after")
        send(g, LABO, structured_message(APP_HOPITAL, LABO, marker, xdm([cda("11488-4")]), MATCHING_HEADERS))
        event = g.wait_for_event(lambda e: e.get("message_id") == "<%s@test>" % marker.decode())
        self.assertEqual(event["direction"], "sent")


class Durability(unittest.TestCase):
    """SIGKILL while clients send: every message that got 250 has its event, and only messages
    Postfix took have one; each delivery is counted once on the receiving side."""

    CLIENTS = 3

    def test_kill_during_a_sending_loop(self):
        g = IndicatorGateway()
        g.start()
        self.addCleanup(lambda: g.process and g.stop())
        acked, in_flight = set(), set()
        lock = threading.Lock()
        stop = threading.Event()
        run = new_marker("durability").decode()

        def client(number):
            sent = 0
            try:
                smtp = smtplib.SMTP("127.0.0.1", g.submission_port, timeout=20)
                smtp.starttls(context=client_context("org-hopital"))
                smtp.ehlo("lps.test")
                smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
                while not stop.is_set() and sent < 400:
                    message_id = "<%s-%d-%d@test>" % (run, number, sent)
                    message = ("From: %s\r\nTo: %s\r\nDate: %s\r\nMessage-ID: %s\r\nSubject: %s\r\n\r\nsmall\r\n"
                               % (APP_HOPITAL, LABO, email.utils.formatdate(), message_id, run)).encode()
                    with lock:
                        in_flight.add(message_id)
                    smtp.sendmail(APP_HOPITAL, [LABO], message)
                    with lock:
                        in_flight.discard(message_id)
                        acked.add(message_id)
                    sent += 1
            except (OSError, smtplib.SMTPException):
                pass  # the gateway was killed

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(acked) < 60:
            time.sleep(0.05)
        g.kill()
        stop.set()
        for t in threads:
            t.join(30)
        self.assertGreaterEqual(len(acked), 20, "the clients sent too little before the kill")

        g.start()  # the journal is opened again; Postfix retries the deliveries the tap missed
        recorded = {row[0] for row in g.journal_rows(
            "SELECT message_id FROM indicator_event WHERE direction = 'sent' AND message_id LIKE ?", "<%s-%%" % run)}
        self.assertLessEqual(acked, recorded, "a message that got 250 has no event")
        self.assertLessEqual(recorded, acked | in_flight, "an event for a message the client never sent")
        self.assertLessEqual(len(recorded - acked), self.CLIENTS)

        # Receiving side: every message Postfix accepted reaches the mailbox, each counted once.
        # (Postfix retries a delivery the kill cut; the test backend retries within seconds, but
        # its queue manager may leave a message it met "still being delivered" until its next
        # full scan, two minutes later in a CI run: the test asks for the deferred ones every
        # few seconds, as wait_postfix_queue_empty does.)
        deadline = time.monotonic() + 120
        next_flush = time.monotonic() + 5
        while time.monotonic() < deadline:
            if time.monotonic() >= next_flush:
                postfix_queue("-f")
                next_flush = time.monotonic() + 5
            delivered = {line.split(b":", 1)[1].strip().decode()
                         for data in delivered_messages(LABO, run.encode())
                         for line in data.splitlines() if line.lower().startswith(b"message-id:")}
            counted = g.journal_rows("SELECT message_id, COUNT(*) FROM indicator_event WHERE direction = 'received' "
                                     "AND message_id LIKE ? GROUP BY message_id", "<%s-%%" % run)
            if acked <= delivered and len(counted) == len(delivered):
                break
            time.sleep(0.5)
        self.assertLessEqual(acked, delivered, "a message that got 250 was not delivered")
        self.assertEqual({m for m, _ in counted}, delivered)
        self.assertTrue(all(n == 1 for _, n in counted), "a delivery counted twice")
        # The log caught up with the journal: every journal event is in the log.
        logged = {e["key"] for e in g.events()}
        keys = {row[0] for row in g.journal_rows("SELECT event_key FROM indicator_event")}
        self.assertEqual(keys - logged, set())


if __name__ == "__main__":
    main()
