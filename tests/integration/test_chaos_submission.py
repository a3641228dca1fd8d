"""Faults between mssgate and Postfix's submission service (a ChaosGate in between), before, in and
after a message: the client gets a temporary failure (`454 4.7.0` at AUTH, `451 4.4.1` at RCPT,
with which MAIL goes to Postfix, `451 4.4.2` for the message, sent as DATA or, when small, as one
BDAT), never a 250 that Postfix did not give; a message Postfix did
not take is neither delivered nor counted; when Postfix took it but its answer was lost, the client
hears 451, the message is delivered (RFC 1047's window) and only the retry that got 250 is counted;
afterwards sessions work again and the gateway's memory and descriptors are back."""

import email.utils
import json
import os
import shutil
import smtplib
import tempfile
import time
import unittest

from chaos_gate import ChaosGate
from chaos_support import ADMIN, Footprint, asan_env
from harness import (APP_HOPITAL, APP_LABO, DOMAIN, SMTP, Gateway, backend_env, client_context, delivered_messages, main,
                     new_marker, wait_for_delivery)

RESPONSE_TIMEOUT = 1.0  # [smtp.backend] response_timeout of the test gateway
DATA_RESPONSE_TIMEOUT = 2.0  # [smtp.backend] data_response_timeout
LOST = (451, b"4.4.2 Connection to the mail system lost, message not accepted: try again")
UNAVAILABLE_AT_MAIL = (451, b"4.4.1 Mail service temporarily unavailable, try again later")
UNAVAILABLE_AT_AUTH = (454, b"4.7.0 Mail service temporarily unavailable, try again later")


# Larger than one read of the client's bytes: its header is checked before it is whole, and it goes
# to Postfix as DATA. SMALL is whole in one read, and goes as one BDAT.
LARGE = 100_000
SMALL = 2_000


def message(marker, size=LARGE):
    header = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\n"
              % (APP_HOPITAL, APP_LABO, marker.decode(), email.utils.formatdate(), marker.decode())).encode()
    return header + (b"x" * 70 + b"\r\n") * (size // 72)


class SubmissionChaos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gate = ChaosGate(int(backend_env()["BACKEND_SUBMISSION_PORT"]))
        cls.journal = tempfile.mkdtemp(prefix="mssgate-chaos-")
        try:
            indicators = ('\n[indicators]\njournal = "%s/indicators.db"\nlog = "%s/indicators.jsonl"\n'
                          'operator_domains = ["%s"]\n' % (cls.journal, cls.journal, DOMAIN))
            cls.gateway = Gateway(smtp_backend_address="127.0.0.1:%d" % cls.gate.port, extra_config=ADMIN + indicators)
            cls.gateway.set_option("smtp.backend", "response_timeout", '"%gs"' % RESPONSE_TIMEOUT)
            cls.gateway.set_option("smtp.backend", "data_response_timeout", '"%gs"' % DATA_RESPONSE_TIMEOUT)
            cls.gateway.set_option("smtp.backend", "connect_timeout", '"1s"')
            cls.gateway.start(extra_env=asan_env())
        except BaseException:
            cls.gate.close()
            shutil.rmtree(cls.journal, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gateway.stop()
        finally:
            cls.gate.close()
            shutil.rmtree(cls.journal, ignore_errors=True)

    def setUp(self):
        self.gateway.mark()
        self.gate.clear()

    def sent_events(self, marker):
        """The `sent` indicator events of the message with this marker."""
        path = os.path.join(self.journal, "indicators.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        return [e for e in events if e["direction"] == "sent" and e.get("message_id") == "<%s@test>" % marker.decode()]

    def wait_for_events(self, marker, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.sent_events(marker)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # and no more than that
        self.assertEqual(len(self.sent_events(marker)), count)

    def session(self):
        smtp = SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        self.addCleanup(smtp.close)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        return smtp

    def signed_in(self):
        smtp = self.session()
        self.assertEqual(smtp.docmd("AUTH", "EXTERNAL =")[0], 235)
        return smtp

    def transaction(self, smtp, marker, size=LARGE):
        """MAIL, RCPT, DATA and the message: (the step that failed or "sent", code, text)."""
        reply = smtp.mail(APP_HOPITAL)
        if reply[0] != 250:
            return ("MAIL",) + reply
        reply = smtp.rcpt(APP_LABO)
        if reply[0] != 250:
            return ("RCPT",) + reply
        try:
            return ("sent",) + smtp.data(message(marker, size))
        except smtplib.SMTPDataError as error:
            return "DATA", error.smtp_code, error.smtp_error

    def send_good(self):
        marker = new_marker("chaos-good")
        smtp = self.signed_in()
        step, code, _ = self.transaction(smtp, marker)
        self.assertEqual((step, code), ("sent", 250))
        smtp.quit()
        wait_for_delivery(APP_LABO, marker)
        return marker

    def test_postfix_unavailable_at_sign_in_gives_454(self):
        self.send_good()
        footprint = None
        faults = [
            ("refused", lambda g: g.refuse("unlisten"), "connect"),
            ("reset at accept", lambda g: g.refuse("reset"), "(connect|greeting)"),
            ("greeting stalled", lambda g: g.fault("stall", "down"), "greeting"),
            ("greeting trickled", lambda g: g.fault("trickle", "down", rate=1, interval=0.1), "greeting"),
            ("greeting corrupted", lambda g: g.fault("corrupt", "down", data=b"X"), "greeting"),
            ("reset at XCLIENT", lambda g: g.fault("reset", "up", at=b"XCLIENT"), "xclient"),
        ]
        for number, (name, apply, step) in enumerate(faults * 2):
            if number == len(faults):  # after a first round that warms up
                self.gate.clear()
                footprint = Footprint(self.gateway).take()
            with self.subTest(fault=name, round=number // len(faults)):
                self.gate.clear()
                apply(self.gate)
                smtp = self.session()
                start = time.monotonic()
                self.assertEqual(smtp.docmd("AUTH", "EXTERNAL ="), UNAVAILABLE_AT_AUTH)
                elapsed = time.monotonic() - start
                self.assertLess(elapsed, RESPONSE_TIMEOUT + 1.5, "AUTH took %.1f s" % elapsed)
                session = self.gateway.session_of(smtp.sock)
                self.gateway.wait_for_log(r"event=backend session=%s result=failed step=%s " % (session, step))
                smtp.quit()
        self.gate.clear()
        self.send_good()
        footprint.check(self)

    def test_postfix_lost_before_it_took_the_message_gives_a_temporary_failure_and_nothing_counted(self):
        self.send_good()
        footprint = None
        faults = [
            # MAIL goes with the first RCPT: what befalls it is heard at the RCPT, once tried again.
            ("reset at MAIL", dict(kind="reset", direction="up", at=b"MAIL FROM"), ("RCPT",) + UNAVAILABLE_AT_MAIL),
            ("MAIL answer stalled", dict(kind="stall", direction="down", at=b"250 2.1.0"),
             ("RCPT",) + UNAVAILABLE_AT_MAIL),
            ("reset at RCPT", dict(kind="reset", direction="up", at=b"RCPT TO"), ("RCPT",) + UNAVAILABLE_AT_MAIL),
            ("reset at DATA", dict(kind="reset", direction="up", at=b"DATA\r\n"), ("sent",) + LOST),
            ("reset at BDAT", dict(kind="reset", direction="up", at=b"BDAT ", size=SMALL), ("sent",) + LOST),
            ("truncated in the BDAT", dict(kind="truncate", direction="up", at=b"BDAT ", after=500, size=SMALL),
             ("sent",) + LOST),
            ("DATA answer corrupted", dict(kind="corrupt", direction="down", at=b"354 ", data=b"\xff"),
             ("sent",) + LOST),
            ("closed in the message", dict(kind="close", direction="up", at=b"DATA\r\n", after=30_000),
             ("sent",) + LOST),
            ("reset in the message", dict(kind="reset", direction="up", at=b"DATA\r\n", after=30_000),
             ("sent",) + LOST),
            ("stalled in the message", dict(kind="stall", direction="up", at=b"DATA\r\n", after=30_000),
             ("sent",) + LOST),
            ("truncated before the end", dict(kind="truncate", direction="up", at=b"\r\n.\r\n"), ("sent",) + LOST),
            ("trickled to the end", dict(kind="trickle", direction="up", at=b"DATA\r\n", rate=200, interval=0.05),
             ("sent",) + LOST),
        ]
        failed = []
        for number, (name, fault, expected) in enumerate(faults * 2):
            if number == len(faults):  # after a first round that warms up
                self.gate.clear()
                footprint = Footprint(self.gateway).take()
            with self.subTest(fault=name, round=number // len(faults)):
                self.gate.clear()
                marker = new_marker("chaos-lost")
                failed.append(marker)
                smtp = self.signed_in()
                options = dict(fault)
                size = options.pop("size", LARGE)
                fired = self.gate.fired()
                self.gate.fault(options.pop("kind"), options.pop("direction"), existing=True, **options)
                start = time.monotonic()
                self.assertEqual(self.transaction(smtp, marker, size), expected)
                elapsed = time.monotonic() - start
                self.assertLess(elapsed, 2 * RESPONSE_TIMEOUT + DATA_RESPONSE_TIMEOUT + 2, "%.1f s" % elapsed)
                self.assertGreater(self.gate.fired(), fired, "the fault did not take hold")
                if expected[0] == "sent":
                    self.gateway.wait_for_log(r"message_id=<%s@test> size=\d+ recipients=1 result=failed "
                                              r"reason=backend_lost" % marker.decode())
                # The same session goes on, once Postfix is back.
                self.gate.close_connections(reset=True)  # what the fault held back never arrives
                self.gate.clear()
                self.assertEqual(smtp.rset()[0], 250)
                self.assertEqual(self.transaction(smtp, new_marker("chaos-after"))[:2], ("sent", 250))
                smtp.quit()
        last = self.send_good()
        wait_for_delivery(APP_LABO, last)
        time.sleep(1.0)  # Postfix delivers in order of arrival, within a second here
        for marker in failed:
            self.assertEqual(delivered_messages(APP_LABO, marker), [], "%s was delivered" % marker)
            self.assertEqual(self.sent_events(marker), [], "%s was counted" % marker)
        footprint.check(self)

    def test_postfix_answer_lost_after_it_took_the_message(self):
        """RFC 1047's window: Postfix queued the message, its 250 never reached mssgate. The client
        hears 451 (mssgate cannot know), the message is delivered, and is not counted; the client's
        retry is delivered again and counted once."""
        for _ in range(3):  # warms the gateway up before its footprint is taken
            self.send_good()
        footprint = Footprint(self.gateway).take()
        faults = [
            ("reset", dict(kind="reset")),
            ("closed", dict(kind="close")),
            ("truncated", dict(kind="truncate", after=3)),
            ("corrupted", dict(kind="corrupt", data=b"X")),
            ("stalled", dict(kind="stall")),
            ("reset, after one BDAT", dict(kind="reset", size=SMALL)),
            ("stalled, after one BDAT", dict(kind="stall", size=SMALL)),
        ]
        for name, fault in faults:
            with self.subTest(fault=name):
                self.gate.clear()
                marker = new_marker("chaos-window")
                smtp = self.signed_in()
                options = dict(fault)
                size = options.pop("size", LARGE)
                fired = self.gate.fired()
                # Postfix's verdict on the message: "250 2.0.0 Ok: queued as …" after DATA, "250 2.0.0 Ok: 1234
                # bytes queued as …" after BDAT.
                self.gate.fault(options.pop("kind"), "down", at=b"250 2.0.0 Ok: ", existing=True, **options)
                start = time.monotonic()
                self.assertEqual(self.transaction(smtp, marker, size), ("sent",) + LOST)
                self.assertLess(time.monotonic() - start, DATA_RESPONSE_TIMEOUT + 2)
                self.gate.wait_fired(count=fired + 1)
                wait_for_delivery(APP_LABO, marker)
                self.assertEqual(self.sent_events(marker), [])
                self.gate.close_connections(reset=True)
                self.gate.clear()
                # The client tries again, as it was told: delivered twice, counted once.
                self.assertEqual(self.transaction(smtp, marker, size)[:2], ("sent", 250))
                smtp.quit()
                wait_for_delivery(APP_LABO, marker, count=2)
                self.wait_for_events(marker, 1)
        self.send_good()
        footprint.check(self)


if __name__ == "__main__":
    main()
