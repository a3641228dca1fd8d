"""mssgate as a service: the systemd notification protocol against a test NOTIFY_SOCKET
(READY, WATCHDOG, RELOADING, STOPPING) and a graceful stop that lets a message in flight
finish."""

import email.utils
import os
import signal
import smtplib
import socket
import tempfile
import time
import unittest

from harness import APP_HOPITAL, APP_LABO, Gateway, client_context, main, new_marker, wait_for_delivery


class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mssgate-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.settimeout(0.2)
        self.messages = []

    def collect(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except socket.timeout:
                pass

    def wait_for(self, field, timeout=10.0):
        """Waits for a datagram holding the line `field` and returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, message in enumerate(self.messages):
                if field in message.split("\n"):
                    del self.messages[: i + 1]
                    return message
            self.collect(0.2)
        raise AssertionError("no %s among %r" % (field, self.messages))

    def close(self):
        self.socket.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class ServiceTest(unittest.TestCase):
    def test_the_notification_protocol(self):
        notify = NotifySocket()
        self.addCleanup(notify.close)
        gateway = Gateway()
        gateway.start(extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
        self.addCleanup(lambda: gateway.process and gateway.stop())
        ready = notify.wait_for("READY=1")
        self.assertIn("STATUS=serving; backends imap:up,submission:up", ready)
        self.assertIn("listener=imap", gateway.log(), "READY comes once the listeners are bound")
        notify.wait_for("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1")  # again, every 200 ms
        gateway.process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1")
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        notify.wait_for("READY=1")
        gateway.process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        self.assertEqual(gateway.process.wait(timeout=10), 0)

    def test_the_watchdog_is_not_fed_while_an_io_thread_is_stuck(self):
        """The keep-alives come from a thread of their own, and only while every io thread
        answers: an io thread stuck (by a test fault, inside a NOOP) stops them after
        server.io_stall_timeout, so that systemd would restart the gateway, while the other io
        thread goes on serving; they come back once the thread turns again."""
        notify = NotifySocket()
        self.addCleanup(notify.close)
        gateway = Gateway(server_section='io_stall_timeout = "1s"')
        gateway.start(extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000",
                                 "MSSGATE_INJECT_FAULTS": "submission.NOOP:1@4000"})
        self.addCleanup(lambda: gateway.process and gateway.stop())
        notify.wait_for("READY=1")
        # Each accept loop takes the next io thread in turn when it starts waiting: with four
        # listeners on two io threads, the first two submission sessions are on the first one
        # (with the listeners and the signals), the third on the second one.
        first = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
        other = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
        second = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
        notify.collect(0.5)
        notify.messages.clear()
        stuck_at = time.monotonic()
        second.sock.sendall(b"NOOP\r\n")  # its io thread is stuck for 4 s
        time.sleep(0.5)
        start = time.monotonic()
        self.assertEqual(first.noop()[0], 250)
        self.assertLess(time.monotonic() - start, 0.5, "the other io thread stopped serving")
        keep_alives = []
        notify.socket.settimeout(0.05)
        while time.monotonic() < stuck_at + 6:
            try:
                if "WATCHDOG=1" in notify.socket.recv(4096).decode().split("\n"):
                    keep_alives.append(time.monotonic() - stuck_at)
            except socket.timeout:
                pass
        # Stalled once its heartbeat has waited 1 s (plus a 200 ms period, and leeway): from
        # then on until the thread turns again at 4 s, no keep-alive.
        during = [t for t in keep_alives if 1.6 < t < 3.9]
        self.assertEqual(during, [], "keep-alives while an io thread was stuck: %r" % keep_alives)
        self.assertTrue([t for t in keep_alives if t >= 4.0], "no keep-alive once the thread turned: %r"
                        % keep_alives)
        gateway.wait_for_log(r"event=io_thread_stalled thread=2 waited_ms=\d+ watchdog=unfed")
        self.assertEqual(second.getreply()[0], 250)
        gateway.wait_for_log(r"event=io_thread_resumed thread=2")
        for session in (first, other, second):  # (idle longer than the command timeout)
            session.close()

    def test_a_message_in_flight_at_sigterm_is_finished(self):
        gateway = Gateway()
        gateway.start()
        self.addCleanup(lambda: gateway.process and gateway.stop())
        marker = new_marker("graceful")
        smtp = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
        smtp.mail(APP_HOPITAL)
        smtp.rcpt(APP_LABO)
        code, _ = smtp.docmd("DATA")
        self.assertEqual(code, 354)
        smtp.send(("From: %s\r\nTo: %s\r\nDate: %s\r\nSubject: %s\r\n\r\n"
                   % (APP_HOPITAL, APP_LABO, email.utils.formatdate(), marker.decode())).encode())
        # An idle session, not in a transaction, is not waited for.
        idle = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
        idle.ehlo("idle.test")
        gateway.process.send_signal(signal.SIGTERM)
        gateway.wait_for_log(r"event=stopping signal=SIGTERM \S+ transactions=1")
        time.sleep(0.5)
        self.assertIsNone(gateway.process.poll(), "mssgate waits for the message under way")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", gateway.submission_port), timeout=2).close()
        smtp.send(b"the rest of the message\r\n.\r\n")
        code, text = smtp.getreply()
        self.assertEqual(code, 250, text)
        self.assertEqual(gateway.process.wait(timeout=10), 0)
        gateway.wait_for_log(r"event=stopped_accepting \S+ transactions_cut=0")
        wait_for_delivery(APP_LABO, marker)
        smtp.close()
        idle.close()


if __name__ == "__main__":
    main()
