"""Hostile or broken clients: each gets a protocol answer or a clean close, and others go on."""

import base64
import os
import socket
import time
import unittest

from harness import (APP_HOPITAL, HANDSHAKE_TIMEOUT, LOGIN_TIMEOUT, Gateway, GatewayTestCase, RawImap, client_context,
                     main, wait_for_close)

# A deadline is met when the close comes after it (less this slack: the timer and the test read
# the same monotonic clock, the slack only absorbs rounding) and before it plus this margin (the
# watchdog wakes at the deadline; the margin absorbs a loaded machine).
CLOCK_SLACK = 0.1
DEADLINE_MARGIN = 2.0


class BadInputTest(GatewayTestCase):
    def tearDown(self):
        self.assert_still_serving()

    def assert_still_serving(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        _, tagged = client.authenticate_external(APP_HOPITAL)
        self.assertIn("a1 OK", tagged)
        _, tagged = client.command("b1", "SELECT INBOX")
        self.assertTrue(tagged.startswith("b1 OK"), tagged)
        client.close()

    def test_line_over_the_cap_ends_the_session(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        client.send(b"a1 NOOP " + b"x" * 10000 + b"\r\n")
        self.assertEqual(client.read_line(), "* BYE Line too long")
        self.assertTrue(client.closed_by_server(), "the connection is still open")
        self.gateway.wait_for_log(r"event=protocol_error session=%s kind=line_too_long" % session)

    def test_synchronising_literal_over_the_cap_is_refused_without_reading_it(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        untagged, tagged = client.command("a1", "ID {999999}")
        self.assertEqual(tagged, "a1 NO [TOOBIG] Literal too large")
        _, tagged = client.command("a2", "NOOP")
        self.assertTrue(tagged.startswith("a2 OK"))
        client.close()
        self.gateway.wait_for_log(r"event=protocol_error session=%s kind=literal_too_large" % session)

    def test_non_synchronising_literal_over_the_cap_ends_the_session(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        client.send(b"a1 ID {999999+}\r\n" + b"y" * 4096)
        self.assertEqual(client.read_line(), "* BYE [TOOBIG] Literal too large")
        self.assertTrue(client.closed_by_server(), "the connection is still open")
        self.gateway.wait_for_log(r"event=close session=%s reason=literal_too_large" % session)

    def test_client_writing_a_whole_literal_over_the_cap_still_gets_the_answer(self):
        # A client library writes a command with its literal before it reads: the gateway's
        # answer must reach it, not a reset from a close with the literal still arriving.
        for implicit in (False, True):
            with self.subTest(tls=implicit):
                ctx = client_context("org-hopital") if implicit else None
                client = RawImap(self.gateway.imaps_port if implicit else self.gateway.imap_port,
                                 implicit_ctx=ctx)
                session = self.gateway.session_of(client.sock)
                size = 3 << 20
                client.send(b"a1 ID {%d+}\r\n" % size + b"y" * size + b"\r\n")
                self.assertEqual(client.read_line(), "* BYE [TOOBIG] Literal too large")
                self.assertTrue(client.closed_by_server(), "the connection is still open")
                client.close()
                self.gateway.wait_for_log(r"event=close session=%s reason=literal_too_large" % session)

    def test_literal_within_the_cap_is_read(self):
        client = RawImap(self.gateway.imap_port)
        client.send(b"a1 ID ({4}\r\n")
        self.assertTrue(client.read_line().startswith("+"))
        client.send(b'name "x")\r\n')
        _, tagged = client.read_until_tagged("a1")
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        client.close()

    def test_garbage_before_tls_gets_errors_then_a_close(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        garbage = os.urandom(2000).replace(b"\n", b"")
        # A TLS ClientHello sent to the STARTTLS port, then binary noise, in short lines.
        # All in one write: the gateway closes after its count of bad commands, and a write
        # after that close would meet a broken pipe.
        client.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n" +
                    b"".join(garbage[i:i + 100] + b"\r\n" for i in range(0, len(garbage), 100)))
        lines = []
        try:
            while True:
                lines.append(client.read_line())
        except (EOFError, ConnectionResetError):
            pass
        self.assertTrue(any(" BAD " in line for line in lines), lines[:5])
        self.assertIn("* BYE Too many invalid commands", lines)
        self.gateway.wait_for_log(r"event=protocol_error session=%s kind=syntax" % session)
        self.gateway.wait_for_log(r"event=close session=%s reason=too_many_bad_commands" % session)

    def test_commands_pipelined_after_starttls_are_refused(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        client.send(b"s1 STARTTLS\r\nx1 CAPABILITY\r\n")
        line = client.read_line()
        self.assertEqual(line, "s1 BAD STARTTLS must be the last command before the TLS handshake")
        self.assertTrue(client.closed_by_server(), "the connection is still open")
        self.gateway.wait_for_log(r"event=protocol_error session=%s kind=pipelined_starttls" % session)

    def test_a_silent_client_is_disconnected_at_the_deadline(self):
        # The login timer starts once the server has sent its greeting, after this start: the
        # close comes LOGIN_TIMEOUT after it at the earliest, and soon after that.
        start = time.monotonic()
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        latest = LOGIN_TIMEOUT + DEADLINE_MARGIN
        closed = client.closed_by_server(timeout=start + latest - time.monotonic())
        elapsed = time.monotonic() - start
        self.assertTrue(closed, "still open %.1f s after connecting (login_timeout %g s)" % (elapsed, LOGIN_TIMEOUT))
        self.assertGreaterEqual(elapsed, LOGIN_TIMEOUT - CLOCK_SLACK)
        self.assertLess(elapsed, latest)
        self.gateway.wait_for_log(r"event=close session=%s reason=client_read_timeout" % session)

    def assert_cut_at_the_handshake_deadline(self, first_bytes, stage):
        """A connection to the TLS port that sends `first_bytes`, then nothing, is closed at the
        handshake's deadline, and its tls_failed line names the `stage` it was cut in."""
        start = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=15)
        if first_bytes:
            sock.sendall(first_bytes)
        session = self.gateway.session_of(sock)
        latest = HANDSHAKE_TIMEOUT + DEADLINE_MARGIN
        how, data = wait_for_close(sock.recv, sock, timeout=start + latest - time.monotonic())
        elapsed = time.monotonic() - start
        self.assertEqual((how, data), ("eof", b""),
                         "%.1f s after connecting (handshake_timeout %g s)" % (elapsed, HANDSHAKE_TIMEOUT))
        self.assertGreaterEqual(elapsed, HANDSHAKE_TIMEOUT - CLOCK_SLACK)
        self.assertLess(elapsed, latest)
        sock.close()
        self.gateway.wait_for_log(r"event=tls_failed session=%s \S+ reason=timeout stage=%s turn_wait_ms=0\n"
                                  % (session, stage))

    def test_a_client_that_stalls_inside_the_tls_handshake_is_disconnected(self):
        self.assert_cut_at_the_handshake_deadline(b"\x16\x03\x01", "handshake")  # the start of a record

    def test_a_client_that_says_nothing_on_the_tls_port_is_disconnected(self):
        # As a client that expects a greeting first (configured for STARTTLS) would.
        self.assert_cut_at_the_handshake_deadline(b"", "first_bytes")

    def test_a_nul_byte_or_a_bare_cr_in_a_command_is_a_syntax_error(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        for tag, line, error in (("a1", b"a1 NOOP\x00", "Invalid character"),
                                 ("a2", b'a2 ID ("name" "x\x00y")', "Invalid character in quoted string"),
                                 ("a3", b"a3 NOOP\rb3 LOGOUT", "Invalid character"),
                                 ("a4", b'a4 ID ("name" "x\ry")', "Invalid character in quoted string")):
            client.send(line + b"\r\n")
            _, tagged = client.read_until_tagged(tag)
            self.assertEqual(tagged, "%s BAD Error in IMAP command: %s" % (tag, error))
        # A bare LF ends a line as CRLF does, and the session goes on.
        client.send(b"a5 NOOP\n")
        _, tagged = client.read_until_tagged("a5")
        self.assertEqual(tagged, "a5 OK NOOP completed.")
        client.close()
        self.gateway.wait_for_log(r'event=protocol_error session=%s kind=syntax detail="Invalid character"' % session)

    def test_eight_bit_bytes_in_a_command(self):
        client = RawImap(self.gateway.imap_port)
        # In a quoted string (ID's values are free text): taken as they are.
        untagged, tagged = client.command("a1", 'ID ("name" "h\u00f4pital")')
        self.assertEqual(tagged, "a1 OK ID completed.")
        # In a command name: no command of that name.
        _, tagged = client.command("a2", "N\u00d4OP")
        self.assertEqual(tagged, "a2 BAD Command unknown or not available before authentication")
        _, tagged = client.command("a3", "NOOP")
        self.assertEqual(tagged, "a3 OK NOOP completed.")
        client.close()

    def test_bad_base64_or_a_hostile_authorization_identity_in_authenticate(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        session = self.gateway.session_of(client.sock)
        _, tagged = client.command("a1", "AUTHENTICATE EXTERNAL !!!!")
        self.assertEqual(tagged, "a1 BAD Invalid SASL EXTERNAL response")
        # A NUL byte in the identity asked for: refused before the directory is asked.
        encoded = base64.b64encode(APP_HOPITAL.encode() + b"\x00" + b"app.labo@test.mssante.fr").decode()
        _, tagged = client.command("a2", "AUTHENTICATE EXTERNAL " + encoded)
        self.assertEqual(tagged, "a2 BAD Invalid SASL EXTERNAL response")
        # Two failures: the third would end the session; a good sign-in is taken.
        _, tagged = client.authenticate_external(APP_HOPITAL, tag="a3")
        self.assertTrue(tagged.startswith("a3 OK"), tagged)
        client.close()
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=EXTERNAL result=failed reason=bad_base64" % session)
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=EXTERNAL result=failed reason=invalid_authzid"
                                  % session)

    def test_unknown_commands_before_authentication(self):
        client = RawImap(self.gateway.imap_port)
        _, tagged = client.command("a1", "SELECT INBOX")
        self.assertEqual(tagged, "a1 BAD Command unknown or not available before authentication")
        client.close()


class BackendDownTest(unittest.TestCase):
    def test_an_unreachable_backend_gives_a_clean_unavailable(self):
        # A port with nothing behind it.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with Gateway(backend_address="127.0.0.1:%d" % port) as gateway:
            client = RawImap(gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
            _, tagged = client.authenticate_external(None)
            self.assertEqual(tagged, "a1 NO [UNAVAILABLE] The mailbox service is temporarily unavailable, try again later")
            _, tagged = client.command("n1", "NOOP")
            self.assertTrue(tagged.startswith("n1 OK"))
            client.close()
            gateway.wait_for_log(r"event=backend \S+ result=failed step=connect")


if __name__ == "__main__":
    main()
