"""Each counted message once, whatever the moment mssgate is killed: the JSON-lines indicator log
holds each journal event exactly once after SIGKILLs while events are written (a line cut short
is removed at the next start)."""

import json
import smtplib
import sqlite3
import threading
import time
import unittest

from harness import main, new_marker
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


def deliver_direct(marker):
    with smtplib.LMTP("127.0.0.1", TAP_PORT, timeout=10) as lmtp:
        lmtp.sendmail("expediteur@test.mssante.fr", [LABO],
                      "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\nx\r\n" % (marker, marker))


if __name__ == "__main__":
    main()
