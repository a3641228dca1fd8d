"""Faults injected where none is expected (the test build's MSSGATE_INJECT_FAULTS): a session
that throws in the middle of a command, a session that cannot start, an indicator journal whose
log catch-up fails. Each ends only what it must: the gateway goes on serving, the session's
connection and its professional's slot are freed, and the metrics and the log say what
happened."""

import base64
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import unittest

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, PER_MARTIN, SMTP, Gateway, PscIssuer, RawImap, client_context,
                     main, new_marker, wait_for_close, wait_for_delivery, xoauth2)

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:  # the interpreter CMake found may not see Debian's python3 packages
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

PROFESSIONAL = "810001234567"
ADMIN = '\n[admin]\nlisten = ["127.0.0.1:0"]\n'


def metric(gateway, name, **labels):
    """One sample of /metrics; a sample that is not there fails the test."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["admin"], timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError("no sample %s%s in /metrics" % (name, labels))


def message(sender, recipient, marker):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nBonjour\r\n"
            % (sender, recipient, marker.decode(), marker.decode())).encode()


class Faults(unittest.TestCase):
    def start(self, faults, **options):
        gateway = Gateway(**options)
        self.addCleanup(gateway.stop)
        gateway.start(extra_env={"MSSGATE_INJECT_FAULTS": faults})
        return gateway

    def test_a_session_that_throws_is_closed_and_its_slot_freed(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = self.start("submission.NOOP:1", extra_config=ADMIN,
                             psc_section=issuer.config(extra="max_sessions_per_professional = 1"))
        # One command per change_directory: a read that a first command started could otherwise
        # be taken for the read of the second.
        gateway.change_directory("holder", "add", PROFESSIONAL)
        gateway.change_directory("holder", "attach", PROFESSIONAL, PER_MARTIN, "--role", "owner")
        token = issuer.issue(PROFESSIONAL)

        def sign_in():
            smtp = SMTP("127.0.0.1", gateway.submission_port, timeout=10)
            smtp.starttls(context=client_context())
            smtp.ehlo("lps.test")
            payload = base64.b64encode(xoauth2(PER_MARTIN, token).encode()).decode()
            self.assertEqual(smtp.docmd("AUTH", "XOAUTH2 " + payload)[0], 235)
            return smtp

        smtp = sign_in()
        session = gateway.session_of(smtp.sock)
        self.assertEqual(metric(gateway, "mssgate_sessions", listener="submission", state="authenticated"), 1)
        # The first NOOP throws inside the session: its connection is closed, nothing answered.
        smtp.send(b"NOOP\r\n")
        how, data = wait_for_close(smtp.file.read1, smtp.sock)
        self.assertEqual((how, data), ("eof", b""))
        smtp.close()
        gateway.wait_for_log(r'event=session_failed session=%s error="injected fault at submission.NOOP"' % session)
        gateway.wait_for_log(r"event=close session=%s mailbox=%s reason=internal_error " % (session, re.escape(PER_MARTIN)))
        self.assertEqual(metric(gateway, "mssgate_sessions_failed_total", protocol="submission"), 1)
        self.assertEqual(metric(gateway, "mssgate_sessions", listener="submission", state="authenticated"), 0)
        # The professional's only slot was freed: the same professional signs in again, and sends.
        marker = new_marker("after-fault")
        with sign_in() as again:
            self.assertEqual(again.sendmail(PER_MARTIN, [APP_LABO], message(PER_MARTIN, APP_LABO, marker)), {})
        wait_for_delivery(APP_LABO, marker)

    def test_a_session_that_cannot_start_costs_only_its_connection(self):
        gateway = self.start("start_session:2", extra_config=ADMIN)
        first = RawImap(gateway.imap_port)
        self.assertTrue(first.greeting.startswith("* OK"), first.greeting)
        first.close()
        # The second connection is accepted, then its session fails to start: closed at once.
        sock = socket.create_connection(("127.0.0.1", gateway.imap_port), timeout=10)
        how, data = wait_for_close(sock.recv, sock)
        self.assertEqual((how, data), ("eof", b""))
        sock.close()
        gateway.wait_for_log(r'event=session_start_failed listener=imap error="injected fault at start_session"')
        # The listener goes on: a full sign-in and SELECT.
        third = RawImap(gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        _, tagged = third.authenticate_external(APP_HOPITAL)
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        _, tagged = third.command("b1", "SELECT INBOX")
        self.assertTrue(tagged.startswith("b1 OK"), tagged)
        third.close()
        self.assertEqual(metric(gateway, "mssgate_connections_refused_total", listener="imap", reason="start_failed"), 1)

    def test_a_journal_catch_up_that_fails_is_reported_and_recording_goes_on(self):
        journal_dir = tempfile.mkdtemp(prefix="mssgate-faults-")
        self.addCleanup(shutil.rmtree, journal_dir, True)
        log_path = os.path.join(journal_dir, "indicators.jsonl")
        indicators = ('\n[indicators]\njournal = "%s/indicators.db"\nlog = "%s"\noperator_domains = ["%s"]\n'
                      % (journal_dir, log_path, DOMAIN))
        gateway = self.start("journal.catch_up:1", extra_config=ADMIN + indicators)
        # The catch-up at opening threw: reported, and the gateway came up all the same.
        gateway.wait_for_log(r'event=indicator_journal_failed reason=".*injected fault at journal.catch_up', since=0)
        marker = new_marker("journal")
        with SMTP("127.0.0.1", gateway.submission_port, timeout=10) as smtp:
            smtp.starttls(context=client_context("org-hopital"))
            smtp.ehlo("lps.test")
            self.assertEqual(smtp.docmd("AUTH", "EXTERNAL =")[0], 235)
            self.assertEqual(smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, marker)), {})
        wait_for_delivery(APP_LABO, marker)
        self.assertEqual(metric(gateway, "mssgate_indicator_events_total", direction="sent", result="recorded"), 1)
        with open(log_path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        sent = [e for e in events if e["direction"] == "sent" and e.get("message_id") == "<%s@test>" % marker.decode()]
        self.assertEqual(len(sent), 1, events)
        self.assertEqual(sent[0]["mailbox"], APP_HOPITAL)


if __name__ == "__main__":
    main()
