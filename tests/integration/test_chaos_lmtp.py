"""Faults around the LMTP tap: between the tap and Dovecot's LMTP, and between Postfix and the tap
(a ChaosGate on each side). Postfix is told to try again (`421`, `451 4.4.2`), does so, and the
message is then delivered and its `received` event counted exactly once: a retry of a delivery
the journal already holds has the same key (the recipient and the content's fingerprint) and is
not counted again. When Dovecot saved the message but its answer was lost, Postfix's retry
carries the same delivery id (the tap's, from the same queue file) and Dovecot's Sieve script
discards it: one copy, counted once. Afterwards the tap serves normally and the gateway's memory
and descriptors are back."""

import os
import re
import shutil
import smtplib
import sqlite3
import tempfile
import time
import unittest

from chaos_gate import ChaosGate
from chaos_support import ADMIN, Footprint, asan_env
from harness import (Gateway, backend_env, ctl, delivered_messages, main, new_marker, wait_for_delivery,
                     wait_postfix_queue_empty)

TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here
LABO = "labo@tap.test.mssante.fr"
BACKEND_RESPONSE_TIMEOUT = 2.0  # [lmtp] backend_response_timeout of the test gateway


def deliver(marker):
    """A message for LABO, handed to the backend's Postfix, which delivers it through the tap."""
    sender = "expediteur@test.mssante.fr"
    text = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s\r\n"
            % (sender, LABO, marker.decode(), marker.decode(), "ligne de texte\r\n" * 2000))
    with smtplib.SMTP("127.0.0.1", int(backend_env()["BACKEND_SMTP_PORT"]), timeout=10) as smtp:
        smtp.sendmail(sender, [LABO], text)


class TapChaos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dovecot = ChaosGate(int(backend_env()["BACKEND_LMTP_PORT"]))
        cls.journal = tempfile.mkdtemp(prefix="mssgate-chaos-")
        cls.postfix = None
        try:
            cls.gateway = Gateway(extra_config=ADMIN + f"""
[lmtp]
listen = ["127.0.0.1:0"]
backend = "127.0.0.1:{cls.dovecot.port}"
command_timeout = "5s"
data_timeout = "5s"
backend_connect_timeout = "1s"
backend_response_timeout = "{BACKEND_RESPONSE_TIMEOUT:g}s"

[indicators]
journal = "{cls.journal}/indicators.db"
log = "{cls.journal}/indicators.jsonl"
operator_domains = ["test.mssante.fr", "tap.test.mssante.fr"]
""")
            ctl(cls.gateway.database, "mailbox", "add", LABO, "--type", "APP")
            cls.gateway.start(extra_env=asan_env())
            # Postfix reaches the tap through the second gate, on the port it delivers to.
            cls.postfix = ChaosGate(cls.gateway.ports["lmtp"], listen_port=TAP_PORT)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "gateway", None) and cls.gateway.process:
                cls.gateway.stop()
        finally:
            for gate in (cls.postfix, cls.dovecot):
                if gate is not None:
                    gate.close()
            shutil.rmtree(cls.journal, ignore_errors=True)

    def setUp(self):
        self.gateway.mark()
        self.dovecot.clear()
        self.postfix.clear()

    def counted(self, marker):
        """How many `received` events the journal holds for the message."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.journal, "indicators.db"), uri=True, timeout=10)
        try:
            return db.execute("SELECT COUNT(*) FROM indicator_event WHERE direction = 'received' AND message_id = ?",
                              ("<%s@test>" % marker.decode(),)).fetchone()[0]
        finally:
            db.close()

    def wait_counted(self, marker, count, timeout=20.0):
        deadline = time.monotonic() + timeout
        while self.counted(marker) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.counted(marker), count)

    def deliver_normally(self):
        marker = new_marker("chaos-tap-good")
        deliver(marker)
        wait_for_delivery(LABO, marker)
        self.wait_counted(marker, 1)

    def through_fault(self, gate, apply, seen, discarded):
        """Delivers one message while `apply`'s fault is on `gate`; once `seen` (a log pattern of
        the failure) is written, the fault is cleared and Postfix's retry must deliver it: one
        copy, counted once. `discarded`: Dovecot had saved the first delivery, and its Sieve
        script discards the retry (the same delivery id: the tap's, from the same queue file)."""
        marker = new_marker("chaos-tap")
        offset = self.gateway.log_size()
        apply(gate)
        deliver(marker)
        self.gateway.wait_for_log(seen, since=offset, timeout=20)
        # The path stays dead for what it held back (a stalled or trickled message never ends
        # late), then Postfix's retry goes through.
        gate.close_connections(reset=True)
        gate.clear()
        # Postfix's retry may wait: after a connection lost in the middle of a message it may
        # hold the destination back as dead. The retry is asked for now, every second, until
        # Postfix has nothing left (the retry was answered 250), so that the count is due and no
        # retry reaches the next test's gateway.
        wait_postfix_queue_empty()
        found = wait_for_delivery(LABO, marker, count=1, timeout=30)
        self.wait_counted(marker, 1)
        if discarded:
            self.wait_discarded(marker)
        time.sleep(0.5)  # no second count, no extra copy
        self.assertEqual(self.counted(marker), 1)
        self.assertEqual(len(delivered_messages(LABO, marker)), 1, "copies in the mailbox")
        self.assertEqual(self.discards(marker), int(discarded), "Sieve discards")
        return found

    def discards(self, marker):
        """How many deliveries of the message Dovecot's Sieve script discarded (its log)."""
        path = os.path.join(backend_env()["BACKEND_DIR"], "dovecot", "log", "dovecot.log")
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return len(re.findall(r"sieve: msgid=<%s@test>: discard action" % re.escape(marker.decode()), text))

    def wait_discarded(self, marker, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.discards(marker) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)

    def test_dovecot_faults_are_retried_by_postfix_and_counted_once(self):
        for _ in range(4):  # warms the gateway up before its footprint is taken
            self.deliver_normally()
        footprint = Footprint(self.gateway).take()
        unavailable = r"event=backend session=\S+ result=failed step=(connect|greeting) "
        lost = r"event=delivery session=\S+ size=\d+ recipients=1 delivered=0 result=backend_lost "
        cases = [
            ("refused", lambda g: g.refuse("unlisten"), unavailable, False),
            ("greeting stalled", lambda g: g.fault("stall", "down", existing=True), unavailable, False),
            ("greeting corrupted", lambda g: g.fault("corrupt", "down", data=b"X", existing=True), unavailable, False),
            ("reset at DATA", lambda g: g.fault("reset", "up", at=b"DATA\r\n", existing=True),
             r"event=close session=\S+ reason=backend_lost ", False),
            ("reset in the message", lambda g: g.fault("reset", "up", at=b"DATA\r\n", after=5000, existing=True),
             lost, False),
            ("trickled in the message", lambda g: g.fault("trickle", "up", at=b"DATA\r\n", rate=100, interval=0.2,
                                                          existing=True), lost, False),
            # Dovecot saved the message; its answer never came: Postfix delivers again, Dovecot's
            # Sieve script discards that delivery (the same delivery id), one count.
            ("answer reset", lambda g: g.fault("reset", "down", at=b"250 2.0.0 <", existing=True), lost, True),
            ("answer stalled", lambda g: g.fault("stall", "down", at=b"250 2.0.0 <", existing=True), lost, True),
        ]
        for name, apply, seen, discarded in cases:
            with self.subTest(fault=name):
                self.through_fault(self.dovecot, apply, seen, discarded)
        self.deliver_normally()
        footprint.check(self)

    def test_postfix_faults_are_retried_and_a_recorded_delivery_is_not_counted_twice(self):
        for _ in range(4):  # warms the gateway up before its footprint is taken
            self.deliver_normally()
        footprint = Footprint(self.gateway).take()
        cases = [
            # The tap recorded the delivery and relayed Dovecot's 250; Postfix never heard it and
            # delivers again: the same key, not counted again; the same delivery id, discarded.
            # once=True: Postfix's retry, on a new connection, goes through.
            ("answer to Postfix reset",
             lambda g: g.fault("reset", "down", at=b"250 2.0.0 <", existing=True, once=True),
             r"event=delivery session=\S+ size=\d+ recipients=1 delivered=1 result=relayed ", True),
            # Postfix gone in the middle of the message: Dovecot's transaction is dropped too.
            ("Postfix reset in the message", lambda g: g.fault("reset", "up", at=b"DATA\r\n", after=5000,
                                                               existing=True, once=True),
             r"event=delivery session=\S+ size=\d+ recipients=1 delivered=0 result=aborted reason=client_gone ", False),
        ]
        for name, apply, seen, discarded in cases:
            with self.subTest(fault=name):
                self.through_fault(self.postfix, apply, seen, discarded)
        self.deliver_normally()
        footprint.check(self)


if __name__ == "__main__":
    main()
