"""The operator console on the admin endpoint: /api/status, /api/indicators, /api/export and the
page itself, opened in a real headless Chromium after a known traffic (structured messages, a
malformed INS, an end of exchange, two LPS), whose plots must show that traffic's counts. The
screenshot is kept in MSSGATE_TEST_OUTPUT."""

import csv
import email.utils
import http.client
import io
import json
import os
import shutil
import smtplib
import subprocess
import tempfile
import unittest

from harness import APP_HOPITAL, client_context, main, new_marker, wait_for_delivery
from test_indicators import (CABINET, INS_VALUE, LABO, MALFORMED_INS, MATCHING_HEADERS, IndicatorGateway, cda,
                             read_receipt, send, send_as_labo, structured_message, xdm)

ADMIN = """
[admin]
listen = ["127.0.0.1:0"]
"""
CHROMIUM = shutil.which("chromium")
# An LPS name written by a sender, shown by the console: text, never markup.
HOSTILE_NIL = "<img/src=x/onerror=document.title='pwned'>"
OUTPUT = os.environ.get("MSSGATE_TEST_OUTPUT", tempfile.gettempdir())


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    headers = dict(response.getheaders())
    connection.close()
    return response.status, headers, body


def chromium(url, *options):
    profile = tempfile.mkdtemp(prefix="mssgate-chromium-")
    try:
        result = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--user-data-dir=" + profile, "--virtual-time-budget=15000", *options, url],
                                capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return result


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = IndicatorGateway(more_config=ADMIN)
        cls.gateway.start()
        g = cls.gateway
        cls.port = g.ports["admin"]
        # The known traffic: two structured messages with a qualified INS and one whose INS is
        # malformed (LPS-TEST-1), and an end of exchange by its subject from an LPS whose
        # X-MSS-NIL is markup.
        markers = []
        for _ in range(2):
            marker = new_marker("console")
            send(g, CABINET, structured_message(APP_HOPITAL, CABINET, marker, xdm([cda("11488-4")]),
                                                MATCHING_HEADERS))
            markers.append(marker)
        marker = new_marker("console-malformed")
        send(g, CABINET, structured_message(APP_HOPITAL, CABINET, marker,
                                            xdm([cda("11488-4", ins_value=MALFORMED_INS)]), MATCHING_HEADERS))
        markers.append(marker)
        marker = new_marker("console-fin")
        send(g, CABINET, ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: <{m}@test>\r\nSubject: [FIN]\r\n"
                          "X-MSS-NIL: {n}\r\n\r\nFin {m}\r\n").format(
            s=APP_HOPITAL, r=CABINET, d=email.utils.formatdate(), m=marker.decode(), n=HOSTILE_NIL).encode())
        markers.append(marker)
        # The labo's LPS sends one message; the hospital's read receipt comes back for it. And a
        # sign-in the gateway refuses: the hospital's certificate naming the labo's mailbox.
        acknowledged = new_marker("console-ack").decode()
        original = "<%s@labo.test>" % acknowledged
        send_as_labo(g, APP_HOPITAL, ("From: {s}\r\nTo: {r}\r\nMessage-ID: {m}\r\nSubject: CR\r\n\r\nCR\r\n").format(
            s=LABO, r=APP_HOPITAL, m=original).encode())
        g.wait_for_event(lambda e: e["direction"] == "sent" and e.get("message_id") == original)
        send(g, LABO, read_receipt(APP_HOPITAL, LABO, acknowledged, original, "displayed", "Lu"))
        g.wait_for_event(lambda e: e["direction"] == "received" and e.get("original_message_id") == original)
        with smtplib.SMTP("127.0.0.1", g.submission_port, timeout=30) as smtp:
            smtp.starttls(context=client_context("org-hopital"))
            smtp.ehlo("lps.test")
            try:
                smtp.auth("EXTERNAL", lambda challenge=None: LABO, initial_response_ok=True)
                raise AssertionError("the hospital's certificate opened the labo's mailbox")
            except smtplib.SMTPAuthenticationError:
                pass
        g.wait_for_log(r"event=auth session=\w+ mechanism=EXTERNAL result=failed reason=mailbox_not_bound ")
        for marker in markers:
            wait_for_delivery(CABINET, marker)
        ids = {"<%s@test>" % m.decode() for m in markers}
        for direction in ("sent", "received"):
            for message_id in ids:
                g.wait_for_event(lambda e, d=direction, i=message_id: e["direction"] == d and e.get("message_id") == i)
        cls.day = g.events()[-1]["day"]
        cls.month = cls.day[:7]

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def test_the_status_says_ready_with_its_checks_and_sessions(self):
        status, headers, body = get(self.port, "/api/status")
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        document = json.loads(body)
        self.assertTrue(document["ready"])
        self.assertTrue(document["indicators"])
        names = {check["name"] for check in document["checks"]}
        self.assertTrue({"serving", "imap_backend", "submission_backend", "lmtp_backend"} <= names, names)
        self.assertEqual(set(document["sessions"]), {"open", "client_connections", "lmtp_connections",
                                                     "transactions"})

    def test_the_month_as_json_counts_the_traffic(self):
        status, _, body = get(self.port, "/api/indicators?month=" + self.month)
        self.assertEqual(status, 200, body)
        document = json.loads(body)
        self.assertEqual(document["month"], self.month)
        totals = document["totals"]
        self.assertEqual((totals["sent"], totals["received"], totals["sent_with_xdm"], totals["sent_qualified_ins"],
                          totals["sent_malformed_ins"], totals["sent_mes_fin"], totals["sent_with_mismatch"]),
                         (6, 5, 3, 2, 1, 1, 1))
        # The labo's message, displayed; the refused sign-in.
        self.assertEqual((totals["acknowledgement_acknowledged"], totals["acknowledgement_displayed"],
                          totals["acknowledgement_unmatched_reports"], totals["failed_sign_ins"]), (1, 1, 0, 1))
        acks = [d for d in document["acknowledgements"] if d["day"] == self.day][0]
        self.assertIsInstance(acks["displayed_p50_s"], int)
        self.assertEqual(acks["delivered_p50_s"], "")
        self.assertGreaterEqual(totals["certificate_sign_ins"], 4)
        today = [d for d in document["days"] if d["day"] == self.day]
        self.assertEqual(today[0]["sent"], 6)
        self.assertEqual({(r["nil"], r["sent"]) for r in document["lps"]},
                         {("LPS-TEST-1", 3), (HOSTILE_NIL, 1), ("", 2)})
        self.assertNotIn(INS_VALUE, body)
        self.assertNotIn(MALFORMED_INS, body)
        # The current month by default; a month that is not one is refused.
        self.assertEqual(json.loads(get(self.port, "/api/indicators")[2])["month"], self.month)
        status, _, body = get(self.port, "/api/indicators?month=2026-13")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body), {"error": "month is YYYY-MM"})

    def test_every_export_downloads_as_a_named_file(self):
        status, headers, body = get(self.port, "/api/export?month=%s&kind=messages&format=csv" % self.month)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Disposition"], 'attachment; filename="messages-%s.csv"' % self.month)
        rows = {r["mailbox"]: r for r in csv.DictReader(io.StringIO(body), delimiter=";")}
        self.assertEqual(rows[APP_HOPITAL]["sent"], "5")  # four, and the read receipt for the labo
        for kind in ("connections", "documents", "lps", "acknowledgements"):
            status, headers, body = get(self.port, "/api/export?month=%s&kind=%s&format=json" % (self.month, kind))
            self.assertEqual(status, 200, body)
            self.assertIsInstance(json.loads(body), list)
            self.assertIn("%s.json" % self.month, headers["Content-Disposition"])
        for query, error in (("kind=other", "kind is connections, messages, documents, lps or acknowledgements"),
                             ("kind=lps&format=xml", "format is csv or json"),
                             ("kind=lps&month=last", "month is YYYY-MM")):
            status, _, body = get(self.port, "/api/export?" + query)
            self.assertEqual(status, 400, query)
            self.assertEqual(json.loads(body)["error"], error)

    def test_the_page_and_its_files_come_from_the_gateway_only(self):
        status, headers, body = get(self.port, "/console?month=" + self.month)
        self.assertEqual(status, 200)
        self.assertIn("script-src 'self'", headers["Content-Security-Policy"])
        self.assertIn('data-month="%s"' % self.month, body)
        self.assertIn("/api/export?month=%s&amp;kind=lps&amp;format=csv" % self.month, body)
        self.assertNotRegex(body, r"https?://")
        for path, kind in (("/console/console.js", "text/javascript"), ("/console/console.css", "text/css")):
            status, headers, text = get(self.port, path)
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith(kind))
            self.assertNotRegex(text, r"https?://(?!www\.w3\.org/2000/svg)")

    def test_the_page_in_a_browser_shows_the_traffic(self):
        self.assertTrue(CHROMIUM, "Debian's chromium is not installed: scripts/setup installs it")
        url = "http://127.0.0.1:%d/console?month=%s" % (self.port, self.month)
        result = chromium(url, "--dump-dom")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        dom = result.stdout
        self.assertIn('data-loaded="yes"', dom, dom[-3000:])
        # The bars of the day: six sent, five received; the LPS chart: 3 and 1 sent.
        for series, value in (("sent", 6), ("received", 5)):
            self.assertRegex(dom, r'<rect[^>]*data-series="%s" data-category="%s" data-value="%d"' %
                             (series, self.day, value))
        self.assertRegex(dom, r'data-series="sent" data-category="LPS-TEST-1" data-value="3"')
        self.assertRegex(dom, r'data-series="sent_with_mismatch" data-category="LPS-TEST-1" data-value="1"')
        self.assertRegex(dom, r'data-series="certificate" data-category="%s" data-value="\d+"' % self.day)
        # The share of messages sent with an XDM that day: 3 of 4.
        self.assertRegex(dom, r'data-series="xdm_share" data-category="%s" data-value="50"' % self.day)
        self.assertRegex(dom, r'data-total="Messages envoyés"[^>]*>6<')
        # The refused sign-in; the labo's message displayed, and the delay of its receipt.
        self.assertRegex(dom, r'data-series="failed" data-category="%s" data-value="1"' % self.day)
        self.assertRegex(dom, r'data-series="displayed" data-category="%s" data-value="1"' % self.day)
        self.assertRegex(dom, r'data-series="displayed_p50_s" data-category="%s" data-value="\d+"' % self.day)
        self.assertRegex(dom, r'data-total="Lectures confirmées \(MDN\)"[^>]*>1<')
        self.assertIn('data-check="imap_backend"', dom)
        # The sender's markup is shown as text: no element made of it, no script run.
        self.assertIn("&lt;img/src=x/onerror=document.title='pwned'&gt;", dom)
        self.assertNotIn("<img", dom)
        self.assertNotIn("pwned</title>", dom)
        os.makedirs(OUTPUT, exist_ok=True)
        screenshot = os.path.join(OUTPUT, "console-%s.png" % self.month)
        if os.path.exists(screenshot):
            os.remove(screenshot)
        result = chromium(url, "--window-size=1280,1500", "--screenshot=" + screenshot)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        with open(screenshot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(screenshot), 20000)
        print("console screenshot: " + screenshot)


if __name__ == "__main__":
    main()
