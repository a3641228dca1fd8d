"""Faults between mssgate and Dovecot IMAP (a ChaosGate in between): at the backend login the
client gets `NO [UNAVAILABLE]` within the backend timeouts; in the middle of a session (FETCH,
APPEND) it gets `* BYE [UNAVAILABLE]` where the stream allows one, and the connection is closed,
never left hanging; what Dovecot did not take is not there afterwards; once the fault is gone
sessions work again, and the gateway's memory and descriptors are back to where they were."""

import socket
import ssl
import time
import unittest

from chaos_gate import ChaosGate
from chaos_support import ADMIN, Footprint, asan_env
from harness import (APP_HOPITAL, CLOSE_TIMEOUT, Gateway, RawImap, backend_env, client_context, deliver_through_postfix,
                     main, new_marker, wait_for_close, wait_for_delivery)

RESPONSE_TIMEOUT = 1.0  # [imap.backend] response_timeout of the test gateway
IDLE_TIMEOUT = 3.0  # [imap] idle_timeout
BYE = "* BYE [UNAVAILABLE] Connection to the mailbox service lost, try again later"
BIG = 300_000  # bytes of the message fetched while Dovecot fails


class ImapChaos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gate = ChaosGate(int(backend_env()["BACKEND_IMAP_PORT"]))
        try:
            cls.gateway = Gateway(backend_address="127.0.0.1:%d" % cls.gate.port, extra_config=ADMIN,
                                  imap_section='idle_timeout = "%gs"' % IDLE_TIMEOUT)
            cls.gateway.set_option("imap.backend", "response_timeout", '"%gs"' % RESPONSE_TIMEOUT)
            cls.gateway.set_option("imap.backend", "connect_timeout", '"1s"')
            cls.gateway.start(extra_env=asan_env())
        except BaseException:
            cls.gate.close()
            raise
        # A message big enough to be cut in the middle of its FETCH.
        cls.marker = new_marker("chaos-imap").decode()
        deliver_through_postfix(APP_HOPITAL, cls.marker, body=("0123456789" * 7 + "\r\n") * (BIG // 72))
        wait_for_delivery(APP_HOPITAL, cls.marker.encode())

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gateway.stop()
        finally:
            cls.gate.close()

    def setUp(self):
        self.gateway.mark()
        self.gate.clear()

    def sign_in(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        self.addCleanup(client.close)
        _, tagged = client.authenticate_external(APP_HOPITAL)
        return client, tagged

    def signed_in(self):
        client, tagged = self.sign_in()
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        _, tagged = client.command("a2", "SELECT INBOX")
        self.assertTrue(tagged.startswith("a2 OK"), tagged)
        return client

    def uid_of_marker(self, client):
        untagged, tagged = client.command("s1", 'UID SEARCH HEADER Subject "%s"' % self.marker)
        self.assertTrue(tagged.startswith("s1 OK"), tagged)
        uids = [line.split()[2:] for line in untagged if line.startswith("* SEARCH")][0]
        self.assertEqual(len(uids), 1, untagged)
        return uids[0]

    def assert_normal_session(self):
        client = self.signed_in()
        uid = self.uid_of_marker(client)
        client.send(("f1 UID FETCH %s BODY.PEEK[]\r\n" % uid).encode())
        untagged, tagged = client.read_until_tagged("f1")
        self.assertTrue(tagged.startswith("f1 OK"), tagged)
        self.assertGreater(len(client.buffer) + sum(len(line) for line in untagged), BIG * 9 // 10)
        client.command("z", "LOGOUT")
        client.close()

    def assert_ends(self, client, timeout, bye):
        """The session ends within `timeout` s: closed, with the BYE as its last line when `bye`."""
        start = time.monotonic()
        how, data = wait_for_close(client.sock.recv, client.sock, timeout)
        elapsed = time.monotonic() - start
        self.assertIn(how, ("eof", "reset"), "the session is still open %g s after the fault" % timeout)
        lines = (client.buffer + data).split(b"\r\n")
        if bye:
            self.assertEqual(lines[-2:], [BYE.encode(), b""], "the last bytes: %r" % (client.buffer + data)[-200:])
        else:
            self.assertNotIn(BYE.encode(), client.buffer + data)
        return elapsed

    def test_faults_at_the_backend_login_give_unavailable_and_pass(self):
        self.assert_normal_session()
        footprint = None
        faults = [
            ("refused", lambda g: g.refuse("unlisten"), "connect"),
            ("reset at accept", lambda g: g.refuse("reset"), "(connect|greeting)"),
            ("closed at accept", lambda g: g.refuse("close"), "greeting"),
            ("greeting stalled", lambda g: g.fault("stall", "down"), "greeting"),
            ("greeting trickled", lambda g: g.fault("trickle", "down", rate=2, interval=0.05), "greeting"),
            ("greeting corrupted", lambda g: g.fault("corrupt", "down", data=b"X"), "greeting"),
            ("reset at the master login", lambda g: g.fault("reset", "up", at=b"M2 AUTHENTICATE"), "login"),
            ("login answer truncated", lambda g: g.fault("truncate", "down", at=b"M2 OK", after=2), "login"),
            ("login answer stalled", lambda g: g.fault("stall", "down", at=b"M2 OK"), "login"),
        ]
        for rounds in range(3):  # the first warms up; the next two must not grow the footprint
            if rounds == 1:
                self.gate.clear()
                footprint = Footprint(self.gateway).take()
            for name, apply, step in faults:
                with self.subTest(fault=name, round=rounds):
                    self.gate.clear()
                    apply(self.gate)
                    offset = self.gateway.log_size()
                    start = time.monotonic()
                    client, tagged = self.sign_in()
                    elapsed = time.monotonic() - start
                    self.assertEqual(tagged, "a1 NO [UNAVAILABLE] The mailbox service is temporarily unavailable, "
                                             "try again later")
                    # Each Dovecot answer has RESPONSE_TIMEOUT; the TLS handshake and sign-in come first.
                    self.assertLess(elapsed, RESPONSE_TIMEOUT + 1.5, "the client waited %.1f s" % elapsed)
                    session = self.gateway.session_of(client.sock, since=offset)
                    self.gateway.wait_for_log(r"event=backend session=%s result=failed step=%s " % (session, step),
                                              since=offset)
                    client.close()
        self.gate.clear()
        self.assert_normal_session()
        footprint.check(self)

    def fetch_cut(self, apply, bye, timeout=CLOSE_TIMEOUT):
        """Signs in, applies the fault to the session's Dovecot connection, fetches the big message."""
        client = self.signed_in()
        uid = self.uid_of_marker(client)
        session = self.gateway.session_of(client.sock)
        apply(self.gate)
        client.send(("f1 UID FETCH %s BODY.PEEK[]\r\n" % uid).encode())
        elapsed = self.assert_ends(client, timeout, bye)
        client.close()
        return session, elapsed

    def idle_cut(self, kind):
        """Signs in, then Dovecot's connection is closed or reset at once, nothing under way."""
        client = self.signed_in()
        session = self.gateway.session_of(client.sock)
        self.gate.fault(kind, "down", existing=True, new=False)
        self.assert_ends(client, CLOSE_TIMEOUT, True)
        client.close()
        return session

    def test_dovecot_lost_in_the_middle_of_a_fetch_ends_the_session(self):
        self.assert_normal_session()
        footprint = None
        for rounds in range(3):  # the first warms up
            if rounds == 1:
                footprint = Footprint(self.gateway).take()
            # Dovecot gone while the session is idle: the client is told why.
            for kind, reason in (("close", "backend_closed"), ("reset", "\"backend_error")):
                session = self.idle_cut(kind)
                self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=%s" % (session, reason))
                self.gateway.wait_for_log(r"event=backend_lost session=%s client_told=yes" % session)
            # Between two responses of a FETCH (the bytes before the cut all arrive): told too.
            session, _ = self.fetch_cut(lambda g: g.fault("close", "down", at=b"f1 OK", existing=True, new=False), True)
            self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=backend_closed " % session)
            self.fetch_cut(lambda g: g.fault("truncate", "down", at=b"f1 OK", existing=True, new=False), True)
            # Inside the message's literal: a BYE there would be read as the message's bytes.
            session, _ = self.fetch_cut(lambda g: g.fault("reset", "down", after=50_000, existing=True, new=False),
                                        False)
            self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=\"backend_error" % session)
            self.fetch_cut(lambda g: g.fault("close", "down", after=50_000, existing=True, new=False), False)
        # Dovecot silent in the middle: the client's idle timeout ends the session, not later.
        session, elapsed = self.fetch_cut(lambda g: g.fault("stall", "down", after=50_000, existing=True, new=False),
                                          False, timeout=IDLE_TIMEOUT + 2)
        self.assertGreater(elapsed, IDLE_TIMEOUT - 1)
        self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=client_read_timeout" % session)
        self.gate.clear()
        self.assert_normal_session()
        footprint.check(self)

    def test_dovecot_lost_in_the_middle_of_an_append_stores_nothing(self):
        self.assert_normal_session()
        footprint = None
        for number, kind in enumerate(("reset", "close", "reset", "close", "reset", "close")):
            if number == 2:  # after a warm-up of each
                footprint = Footprint(self.gateway).take()
            marker = new_marker("chaos-append").decode()
            message = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n" % (APP_HOPITAL, APP_HOPITAL, marker)).encode()
            message += (b"x" * 70 + b"\r\n") * 3000
            client = self.signed_in()
            session = self.gateway.session_of(client.sock)
            self.gate.fault(kind, "up", at=b"p1 APPEND", after=100_000, existing=True, new=False)
            client.send(b"p1 APPEND INBOX {%d}\r\n" % len(message))
            self.assertTrue(client.read_line().startswith("+"))
            try:
                client.sock.settimeout(10)
                client.sock.sendall(message + b"\r\n")
            except (ConnectionError, ssl.SSLError, socket.timeout):
                pass  # the gateway closed while the literal was coming: what it said is read below
            self.assert_ends(client, CLOSE_TIMEOUT, True)
            client.close()
            self.gateway.wait_for_log(r"event=close session=%s " % session)
            # Nothing of it reached the mailbox.
            other = self.signed_in()
            untagged, tagged = other.command("s2", 'UID SEARCH HEADER Subject "%s"' % marker)
            self.assertTrue(tagged.startswith("s2 OK"), tagged)
            self.assertEqual([line for line in untagged if line.startswith("* SEARCH")], ["* SEARCH"])
            other.close()
        self.gate.clear()
        self.assert_normal_session()
        footprint.check(self)


if __name__ == "__main__":
    main()
