"""Each counted message once, whatever the moment mssgate is killed: the JSON-lines indicator log
holds each journal event exactly once after SIGKILLs while events are written (a line cut short
is removed at the next start); and a delivery Postfix makes again because a kill kept Dovecot's
answer from it is counted once by the journal and, thanks to the tap's delivery id and the test
backend's Sieve script (RFC 7352 duplicate), stored once by Dovecot."""

import json
import os
import re
import smtplib
import sqlite3
import threading
import time
import unittest

from harness import (backend_env, delivered_messages, main, new_marker, read_text, wait_for_delivery,
                     wait_postfix_queue_empty)
from test_indicators import LABO, IndicatorGateway

TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here


def log_lines(path):
    """The indicator log's lines, parsed; a line that is not JSON is kept as None."""
    with open(path, "rb") as f:
        data = f.read()
    lines = []
    for raw in data.split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            lines.append(None)
    return lines, data.rsplit(b"\n", 1)[-1]


def journal_events(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT seq, event_key FROM indicator_event").fetchall())
    finally:
        db.close()


class TapGateway(IndicatorGateway):
    """The indicator tests' gateway (tap on TAP_PORT, journal and log), with a chosen
    lmtp.delivery_id_header."""

    def __init__(self, delivery_id_header=None):
        super().__init__()
        if delivery_id_header is not None:
            with open(self.config_path) as f:
                text = f.read()
            text = text.replace('command_timeout = "10s"\n',
                                'command_timeout = "10s"\ndelivery_id_header = "%s"\n' % delivery_id_header, 1)
            with open(self.config_path, "w") as f:
                f.write(text)


def lmtp_loop(stop, marker, counter, lock):
    """Delivers one message after the other straight to the tap (as Postfix would), each a new
    event, until `stop` or until the tap goes away."""
    n = 0
    while not stop.is_set() and n < 5000:
        try:
            lmtp = smtplib.LMTP("127.0.0.1", TAP_PORT, timeout=10)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            while not stop.is_set() and n < 5000:
                body = "Subject: %s %d\r\nMessage-ID: <%s-%d-%d@test>\r\n\r\nx\r\n" % (
                    marker, n, marker, threading.get_ident(), n)
                n += 1
                lmtp.sendmail("expediteur@test.mssante.fr", [LABO], body)
                with lock:
                    counter[0] += 1
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            lmtp.close()


class LogExactlyOnce(unittest.TestCase):
    def test_kills_while_events_are_written_leave_each_event_once_in_the_log(self):
        g = TapGateway()
        g.start()
        self.addCleanup(lambda: g.process and g.stop())
        marker = new_marker("log-once").decode()
        stop = threading.Event()
        counter, lock = [0], threading.Lock()
        threads = [threading.Thread(target=lmtp_loop, args=(stop, marker, counter, lock)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for kill in range(4):
                # Some events written since the last start, then SIGKILL in the middle of more.
                target = counter[0] + 40
                deadline = time.monotonic() + 30
                while counter[0] < target and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertGreaterEqual(counter[0], target, "the deliveries stalled")
                g.kill()
                g.start()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        g.stop()

        lines, tail = log_lines(g.indicator_log)
        self.assertEqual(tail, b"", "the log ends with a partial line")
        self.assertNotIn(None, lines)
        seqs = [line["seq"] for line in lines]
        doubled = sorted({s for s in seqs if seqs.count(s) > 1})
        self.assertEqual(doubled, [], "events written twice to the log")
        self.assertEqual(seqs, sorted(seqs))
        events = journal_events(g.journal)
        self.assertGreaterEqual(len(events), 160)
        self.assertEqual({line["seq"]: line["key"] for line in lines}, events)

    def test_a_line_a_kill_cut_short_is_removed_and_written_whole(self):
        g = TapGateway()
        g.start()
        self.addCleanup(lambda: g.process and g.stop())
        for n in range(3):
            deliver_direct(new_marker("cut").decode() + str(n))
        deadline = time.monotonic() + 10
        while len(log_lines(g.indicator_log)[0]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        g.kill()
        # A write the kill cut: the last line lost its end.
        with open(g.indicator_log, "rb") as f:
            data = f.read()
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        with open(g.indicator_log, "wb") as f:
            f.write(data[:len(data) - len(last) - 1 + 25])
        since = g.log_size()
        g.start()
        g.wait_for_log(r"event=indicator_log_truncated bytes=25 resume_after_seq=2(\s|$)", since=since)
        g.wait_for_log(r"event=indicator_log_resumed after_seq=2(\s|$)", since=since)
        deliver_direct(new_marker("after").decode())
        deadline = time.monotonic() + 10
        while len(log_lines(g.indicator_log)[0]) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        g.stop()
        lines, tail = log_lines(g.indicator_log)
        self.assertEqual(tail, b"")
        self.assertEqual([line["seq"] for line in lines], [1, 2, 3, 4])
        self.assertEqual({line["seq"]: line["key"] for line in lines}, journal_events(g.journal))


def send_via_postfix(marker, extra_headers=""):
    """A message to LABO through the backend's Postfix (which delivers it through the tap); its
    Message-ID."""
    message_id = "<%s@test>" % marker
    port = int(backend_env()["BACKEND_SMTP_PORT"])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("expediteur@test.mssante.fr", [LABO],
                      "From: expediteur@test.mssante.fr\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: %s\r\n%s\r\n"
                      "x\r\n" % (LABO, message_id, marker, extra_headers))
    return message_id


def deliver_direct(marker):
    with smtplib.LMTP("127.0.0.1", TAP_PORT, timeout=10) as lmtp:
        lmtp.sendmail("expediteur@test.mssante.fr", [LABO],
                      "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\nx\r\n" % (marker, marker))


class DuplicateWindow(unittest.TestCase):
    """A kill between Dovecot's delivery and the answer to Postfix (held open here by a fault
    point that blocks the answer 3 s): Postfix delivers the message again after the restart."""

    def deliver_then_kill_in_the_window(self, gateway):
        gateway.start(extra_env={"MSSGATE_INJECT_FAULTS": "lmtp.answer:1@3000"})
        self.addCleanup(lambda: gateway.process and gateway.stop())
        marker = new_marker("window")
        message_id = send_via_postfix(marker.decode())
        # Dovecot has stored it; the tap has not answered Postfix yet.
        deadline = time.monotonic() + 20
        while not delivered_messages(LABO, marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(len(delivered_messages(LABO, marker)), 1, "Dovecot did not store the message")
        gateway.kill()
        gateway.start()
        # Postfix delivers again: asked to retry now (its own retry may wait a minute).
        wait_postfix_queue_empty()
        gateway.wait_for_log(r"event=delivery .*delivered=1 result=relayed", timeout=60)
        return marker, message_id

    @staticmethod
    def counted(gateway, message_id):
        return gateway.journal_rows("SELECT COUNT(*) FROM indicator_event WHERE direction = 'received' AND "
                                    "message_id = ?", message_id)[0][0]

    def test_dovecot_discards_the_delivery_made_again(self):
        g = TapGateway()
        marker, message_id = self.deliver_then_kill_in_the_window(g)
        dovecot_log = os.path.join(backend_env()["BACKEND_DIR"], "dovecot", "log", "dovecot.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "discard action" not in read_text(dovecot_log):
            time.sleep(0.1)
        stored = delivered_messages(LABO, marker)
        self.assertEqual(len(stored), 1, "stored twice")
        self.assertRegex(stored[0].decode(errors="replace"), r"(?m)^X-Mssgate-Delivery-Id: [0-9a-f]{32}\r?$")
        self.assertEqual(self.counted(g, message_id), 1)

    def test_without_the_delivery_id_the_message_is_stored_twice_and_counted_once(self):
        g = TapGateway(delivery_id_header="")
        marker, message_id = self.deliver_then_kill_in_the_window(g)
        deadline = time.monotonic() + 20
        while len(delivered_messages(LABO, marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = delivered_messages(LABO, marker)
        self.assertEqual(len(stored), 2)
        self.assertNotIn(b"X-Mssgate-Delivery-Id", stored[0])
        self.assertEqual(self.counted(g, message_id), 1)


class ForgedDeliveryId(unittest.TestCase):
    def test_a_delivery_id_a_sender_wrote_is_replaced_by_the_taps(self):
        g = TapGateway()
        g.start()
        self.addCleanup(lambda: g.process and g.stop())
        first = new_marker("first")
        send_via_postfix(first.decode())
        stored = wait_for_delivery(LABO, first)
        ids = re.findall(rb"(?mi)^X-Mssgate-Delivery-Id: ?(\S*)", stored[0])
        self.assertEqual(len(ids), 1)
        # Another message whose sender copies that id, in two spellings of the field: were it
        # taken, Dovecot's Sieve script would discard this message as a duplicate.
        second = new_marker("second")
        forged = ("X-Mssgate-Delivery-Id: %s\r\nx-mssgate-delivery-id :\r\n %s\r\n"
                  % (ids[0].decode(), ids[0].decode()))
        send_via_postfix(second.decode(), forged)
        stored = wait_for_delivery(LABO, second)
        self.assertEqual(len(stored), 1)
        fields = re.findall(rb"(?mi)^x-mssgate-delivery-id *:.*$", stored[0])
        self.assertEqual(len(fields), 1, stored[0])
        self.assertNotIn(ids[0], stored[0])
        self.assertRegex(fields[0].decode(), r"^X-Mssgate-Delivery-Id: [0-9a-f]{32}\r?$")


if __name__ == "__main__":
    main()
