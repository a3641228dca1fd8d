"""No single client can starve the others: per-address caps on connections and failed sign-ins,
the growing delay after failed sign-ins, one deadline and a command cap for the whole phase
before authentication, no memory reserved for an announced literal and the memory of a burst
of connections given back once it is over, sessions capped per certificate, the LMTP tap's own
connection budget, and the audit trail summed up per address under a flood. Clients act as
different hosts by connecting from 127.0.0.2, 127.0.0.3, ..."""

import base64
import http.client
import re
import resource
import smtplib
import socket
import ssl
import sys
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, CLOSE_TIMEOUT, LIMITS_OFF, Gateway, PscIssuer, RawImap, backend_env, client_context, ctl, main,
                     new_marker, pki, random_jwt, wait_for_close, wait_for_delivery, xoauth2)

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:  # the interpreter CMake found may not see Debian's python3 packages
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

ADMIN = '\n[admin]\nlisten = ["127.0.0.1:0"]\n'
PROFESSIONAL = "810001234567"
PER = "dr.martin@test.mssante.fr"
BYE_ADDRESS = "* BYE [UNAVAILABLE] Too many connections from your address, try again later"
# Timing checks: an answer due after a delay comes no earlier than the delay less CLOCK_SLACK
# (rounding only) and before the delay plus MARGIN (a loaded machine, a sanitizer build).
CLOCK_SLACK = 0.05
MARGIN = 0.8


def metric(gateway, name, **labels):
    """One sample of /metrics; 0 when the sample is not there (a counter never moved)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["admin"], timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0


def started(test, gateway):
    gateway.start()
    test.addCleanup(gateway.stop)
    return gateway


def smtp_from(source, port):
    """A submission client connected from `source`, and the greeting it got."""
    smtp = smtplib.SMTP(timeout=10, source_address=(source, 0))
    smtp._host = "127.0.0.1"  # the name STARTTLS checks, as SMTP("127.0.0.1", ...) would set
    return smtp, smtp.connect("127.0.0.1", port)


def fail_external(client, tag):
    """A certificate sign-in that is refused (org-hopital may not open APP_LABO); the seconds
    the answer took."""
    start = time.monotonic()
    _, tagged = client.authenticate_external(APP_LABO, tag=tag)
    elapsed = time.monotonic() - start
    assert "NO [AUTHORIZATIONFAILED]" in tagged, tagged
    return elapsed


def sign_in(port, source, cert="org-hopital", mailbox=None):
    client = RawImap(port, implicit_ctx=client_context(cert), source=source)
    _, tagged = client.authenticate_external(mailbox)
    return client, tagged


class ConnectionCapsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = Gateway(extra_config=ADMIN, limits_section="""
max_connections_per_address = 3
connection_rate_per_address = 6
failure_delay = "0ms"
""")
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def setUp(self):
        self.gateway.mark()

    def test_connections_open_at_once_are_capped_per_address(self):
        g = self.gateway
        held = [RawImap(g.imap_port, source="127.0.0.2") for _ in range(3)]
        for client in held:
            self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        refused = RawImap(g.imap_port, source="127.0.0.2")
        self.assertEqual(refused.greeting, BYE_ADDRESS)
        self.assertTrue(refused.closed_by_server(), "the refused connection is still open")
        # Implicit TLS: closed before the handshake, nothing said.
        sock = socket.create_connection(("127.0.0.1", g.imaps_port), timeout=10, source_address=("127.0.0.2", 0))
        self.assertEqual(wait_for_close(sock.recv, sock), ("eof", b""))
        sock.close()
        # Submission counts with IMAP: the address holds three connections.
        smtp, greeting = smtp_from("127.0.0.2", g.submission_port)
        self.assertEqual(greeting, (421, b"4.7.0 Too many connections from your address, try again later"))
        smtp.close()
        # Another address is served.
        other = RawImap(g.imap_port, source="127.0.0.3")
        self.assertTrue(other.greeting.startswith("* OK"), other.greeting)
        other.close()
        # A connection that ends gives its place back.
        held.pop().close()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while True:
            again = RawImap(g.imap_port, source="127.0.0.2")
            if again.greeting.startswith("* OK") or time.monotonic() > deadline:
                break
            again.close()
            time.sleep(0.1)
        self.assertTrue(again.greeting.startswith("* OK"), again.greeting)
        for client in held + [again]:
            client.close()
        g.wait_for_log(r"event=connection_refused listener=imap peer=127\.0\.0\.2:\d+ address=127\.0\.0\.2 "
                       r"reason=address_connections")
        self.assertGreaterEqual(metric(g, "mssgate_connections_refused_total", listener="imaps",
                                       reason="address_connections"), 1)
        self.assertGreaterEqual(metric(g, "mssgate_connections_refused_total", listener="submission",
                                       reason="address_connections"), 1)

    def test_connections_per_time_unit_are_capped_per_address(self):
        g = self.gateway
        for i in range(6):
            client = RawImap(g.imap_port, source="127.0.0.4")
            self.assertTrue(client.greeting.startswith("* OK"), "connection %d: %s" % (i + 1, client.greeting))
            session = g.session_of(client.sock)
            client.close()
            g.wait_for_log(r"event=close session=%s " % session)
        refused = RawImap(g.imap_port, source="127.0.0.4")
        self.assertEqual(refused.greeting, BYE_ADDRESS)
        self.assertTrue(refused.closed_by_server())
        refused.close()
        other = RawImap(g.imap_port, source="127.0.0.5")
        self.assertTrue(other.greeting.startswith("* OK"), other.greeting)
        other.close()
        g.wait_for_log(r"event=connection_refused listener=imap peer=127\.0\.0\.4:\d+ address=127\.0\.0\.4 "
                       r"reason=address_rate")
        self.assertEqual(metric(g, "mssgate_connections_refused_total", listener="imap", reason="address_rate"), 1)


class FailedSignInsTest(unittest.TestCase):
    def test_failed_sign_ins_per_time_unit_are_capped_per_address_without_asking_the_issuer(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = Gateway(psc_section=issuer.config(), limits_section="""
failed_sign_in_rate_per_address = 3
failure_delay = "0ms"
""")
        ctl(gateway.database, "holder", "add", PROFESSIONAL)
        ctl(gateway.database, "holder", "attach", PROFESSIONAL, PER, "--role", "owner")
        g = started(self, gateway)

        def attempt(token, source):
            client = RawImap(g.imaps_port, implicit_ctx=client_context(), source=source)
            encoded = base64.b64encode(xoauth2(PER, token).encode()).decode()
            client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
            line = client.read_line()
            if line.startswith("+ "):  # RFC 7628's error challenge, then the refusal
                client.send(b"\r\n")
                line = client.read_line()
            client.close()
            return line

        # Random tokens of PSC's shape: each is a failed sign-in that the issuer was asked about.
        for i in range(3):
            self.assertEqual(attempt(random_jwt(), "127.0.0.6"),
                             "a1 NO [AUTHENTICATIONFAILED] The token is not valid", i)
        self.assertEqual(issuer.stats()["introspect"], 3)
        refusal = "a1 NO [LIMIT] Too many failed sign-ins from this address, try again later"
        self.assertEqual(attempt(random_jwt(), "127.0.0.6"), refusal)
        # Even a valid token: the address may not try again in this time unit.
        good = issuer.issue(PROFESSIONAL)
        self.assertEqual(attempt(good, "127.0.0.6"), refusal)
        self.assertEqual(issuer.stats()["introspect"], 3, "the issuer was asked after the cap")
        smtp, greeting = smtp_from("127.0.0.6", g.submission_port)
        self.assertEqual(greeting[0], 220)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(PER, good).encode()).decode())
        self.assertEqual((code, text), (454, b"4.7.0 Too many failed sign-ins from this address, try again later"))
        smtp.close()
        # Another address signs in.
        self.assertTrue(attempt(good, "127.0.0.7").startswith("a1 OK"))
        g.wait_for_log(r"event=auth \S+ mechanism=XOAUTH2 result=failed reason=address_failure_limit")

    def test_the_delay_after_failed_sign_ins_grows_and_holds_no_thread(self):
        g = started(self, Gateway(limits_section="""
failure_delay = "400ms"
max_failure_delay = "1600ms"
"""))
        expected = [0.0, 0.4, 0.8]  # the third failure ends the session
        client = RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"), source="127.0.0.8")
        for i, delay in enumerate(expected):
            elapsed = fail_external(client, "a%d" % i)
            self.assertGreaterEqual(elapsed, delay - CLOCK_SLACK, "failure %d" % (i + 1))
            self.assertLess(elapsed, delay + MARGIN, "failure %d" % (i + 1))
        client.close()
        # The delay is the address's, not the session's: a new session goes on from there.
        client = RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"), source="127.0.0.8")
        for i in range(2):
            elapsed = fail_external(client, "b%d" % i)
            self.assertGreaterEqual(elapsed, 1.6 - CLOCK_SLACK)
            self.assertLess(elapsed, 1.6 + MARGIN)
        client.close()
        # Another address is not delayed.
        client = RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"), source="127.0.0.9")
        self.assertLess(fail_external(client, "c1"), MARGIN)
        client.close()
        # Three sessions waiting out their delay hold no io thread (the gateway has two): a
        # client of another address signs in meanwhile.
        waiting = [RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"), source="127.0.0.8")
                   for _ in range(3)]
        for i, c in enumerate(waiting):
            c.send(b"w%d AUTHENTICATE EXTERNAL %s\r\n" % (i, base64.b64encode(APP_LABO.encode())))
        time.sleep(0.2)
        start = time.monotonic()
        good, tagged = sign_in(g.imaps_port, "127.0.0.10")
        self.assertIn("a1 OK", tagged)
        self.assertLess(time.monotonic() - start, 1.2)
        good.close()
        for i, c in enumerate(waiting):
            _, tagged = c.read_until_tagged("w%d" % i)
            self.assertIn("NO [AUTHORIZATIONFAILED]", tagged)
            c.close()


class PreAuthenticationTest(unittest.TestCase):
    PRE_AUTH = 3.0

    @classmethod
    def setUpClass(cls):
        # The per-read login timeout is 3 s too: a NOOP every 0.5 s keeps every read short.
        cls.gateway = Gateway(smtp_section='max_bad_commands = 100', limits_section="""
pre_auth_timeout = "3s"
max_pre_auth_commands = 20
failure_delay = "0ms"
""")
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def setUp(self):
        self.gateway.mark()

    def test_noop_every_half_second_does_not_keep_an_imap_session_past_the_deadline(self):
        g = self.gateway
        start = time.monotonic()
        client = RawImap(g.imap_port)
        session = g.session_of(client.sock)
        client.starttls(client_context())
        latest = self.PRE_AUTH + 2.0
        lines = []
        n = 0
        while time.monotonic() - start < latest:
            n += 1
            try:
                client.send(b"n%d NOOP\r\n" % n)
                line = client.read_line()
                while line.startswith("* ") and not line.startswith("* BYE"):
                    line = client.read_line()
            except (EOFError, OSError) as e:
                self.fail("closed without a BYE after %.1f s: %s" % (time.monotonic() - start, e))
            lines.append(line)
            if line.startswith("* BYE"):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        self.assertEqual(lines[-1], "* BYE Authentication took too long, closing the connection",
                         "still open %.1f s after connecting" % elapsed)
        self.assertGreaterEqual(elapsed, self.PRE_AUTH - CLOCK_SLACK)
        self.assertTrue(client.closed_by_server(), "open after the BYE")
        client.close()
        g.wait_for_log(r"event=close session=%s reason=pre_auth_timeout" % session)

    def test_noop_every_half_second_does_not_keep_a_submission_session_past_the_deadline(self):
        g = self.gateway
        start = time.monotonic()
        smtp = smtplib.SMTP("127.0.0.1", g.submission_port, timeout=10)
        replies = []
        while time.monotonic() - start < self.PRE_AUTH + 2.0:
            try:
                code, text = smtp.docmd("NOOP")
            except smtplib.SMTPServerDisconnected as e:
                self.fail("closed without a 421 after %.1f s: %s" % (time.monotonic() - start, e))
            replies.append((code, text))
            if code != 250:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        self.assertEqual(replies[-1], (421, b"4.4.2 Authentication took too long, closing the connection"),
                         "still open %.1f s after connecting" % elapsed)
        self.assertGreaterEqual(elapsed, self.PRE_AUTH - CLOCK_SLACK)
        how, data = wait_for_close(smtp.file.read1, smtp.sock)
        self.assertEqual((how, data), ("eof", b""))
        smtp.close()

    def test_a_command_sent_a_byte_at_a_time_does_not_keep_a_session_past_the_deadline(self):
        # Each byte comes well within the per-read timeout (3 s): only the deadline of the whole
        # phase before authentication ends the session.
        g = self.gateway
        for protocol, port, answer in (
                ("imap", g.imap_port, b"* BYE Authentication took too long, closing the connection\r\n"),
                ("submission", g.submission_port, b"421 4.4.2 Authentication took too long, closing the connection\r\n")):
            with self.subTest(protocol=protocol):
                start = time.monotonic()
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                session = g.session_of(sock)
                greeting = sock.recv(1000)
                self.assertTrue(greeting.startswith((b"* OK", b"220 ")), greeting)
                how, data = "open", b""
                while how == "open" and time.monotonic() - start < self.PRE_AUTH + 2.0:
                    try:
                        sock.sendall(b"N")
                    except OSError:
                        how = "reset"
                        break
                    how, more = wait_for_close(sock.recv, sock, timeout=0.5)
                    data += more
                elapsed = time.monotonic() - start
                sock.close()
                self.assertEqual(data, answer, "%.1f s after connecting" % elapsed)
                self.assertIn(how, ("eof", "reset"), "still open %.1f s after connecting" % elapsed)
                self.assertGreaterEqual(elapsed, self.PRE_AUTH - CLOCK_SLACK)
                g.wait_for_log(r"event=close session=%s reason=pre_auth_timeout" % session)

    def test_a_client_that_signs_in_in_time_is_not_concerned(self):
        client, tagged = sign_in(self.gateway.imaps_port, "127.0.0.1")
        self.assertIn("a1 OK", tagged)
        time.sleep(self.PRE_AUTH + 0.5)
        _, tagged = client.command("n1", "NOOP")
        self.assertTrue(tagged.startswith("n1 OK"), tagged)
        client.close()

    def test_commands_before_authentication_are_capped(self):
        client = RawImap(self.gateway.imap_port)
        session = self.gateway.session_of(client.sock)
        for i in range(20):
            _, tagged = client.command("c%d" % i, "CAPABILITY" if i % 2 else "NOOP")
            self.assertIn(" OK", tagged)
        client.send(b"c20 NOOP\r\n")
        self.assertEqual(client.read_line(), "* BYE Too many commands before authentication")
        self.assertTrue(client.closed_by_server())
        client.close()
        self.gateway.wait_for_log(r"event=close session=%s reason=too_many_pre_auth_commands" % session)
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=10)
        for i in range(20):
            self.assertEqual(smtp.docmd("RSET" if i % 2 else "NOOP")[0], 250 if i % 2 == 0 else 530)
        self.assertEqual(smtp.docmd("NOOP"), (421, b"4.7.0 Too many commands before authentication"))
        smtp.close()


def memory_of(pid):
    """(VmRSS, VmSize) of a process, in bytes."""
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmSize"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmSize"]


class LiteralTest(unittest.TestCase):
    def test_a_literal_announced_before_authentication_reserves_no_memory(self):
        g = started(self, Gateway(imap_section='max_literal_bytes = "64MiB"'))
        warm = RawImap(g.imap_port)
        warm.command("w1", "NOOP")
        rss, size = memory_of(g.process.pid)
        # Sixteen clients each announce a literal of 60 MB, under the cap, and send nothing.
        clients = []
        for i in range(16):
            client = RawImap(g.imap_port)
            client.send(b"a1 ID {60000000}\r\n")
            self.assertEqual(client.read_line(), "+ Ready for literal data")
            clients.append(client)
        time.sleep(0.3)
        rss_after, size_after = memory_of(g.process.pid)
        self.assertLess(rss_after - rss, 64 << 20, "resident memory grew by %d MiB" % ((rss_after - rss) >> 20))
        self.assertLess(size_after - size, 256 << 20, "address space grew by %d MiB" % ((size_after - size) >> 20))
        for client in clients:
            client.close()
        # A literal over the cap: refused (synchronising) or the session ends (non-synchronising).
        _, tagged = warm.command("A", "LOGIN {4294967295}")
        self.assertEqual(tagged, "A NO [TOOBIG] Literal too large")
        warm.send(b"B LOGIN {4294967295+}\r\n")
        self.assertEqual(warm.read_line(), "* BYE [TOOBIG] Literal too large")
        self.assertTrue(warm.closed_by_server())
        warm.close()


def tls_connections(test, port, count):
    """`count` connections, each through its TLS handshake to the greeting, then closed."""
    context = client_context("org-hopital")
    for _ in range(count):
        client = RawImap(port, implicit_ctx=context)
        test.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        client.close()


class HeapReturnTest(unittest.TestCase):
    def test_the_memory_of_a_burst_of_connections_goes_back_once_the_burst_is_over(self):
        # Each TLS connection is three moments (opened, its handshake ended, closed); 256 moments
        # since the last time make a burst, and it is over after a second without any.
        g = started(self, Gateway())
        tls_connections(self, g.imaps_port, 40)
        time.sleep(2.5)
        self.assertFalse("event=heap_returned" in g.log(), "given back after 120 moments only")
        tls_connections(self, g.imaps_port, 60)
        burst_over = time.monotonic()
        time.sleep(0.3)
        self.assertFalse("event=heap_returned" in g.log(), "given back before the burst was quiet")
        event = g.wait_for_log(r"event=heap_returned freed_kib=(\d+) resident_kib=(\d+) took_ms=(\d+) "
                               r"connection_moments=(\d+)")
        self.assertGreaterEqual(time.monotonic() - burst_over, 1.0 - CLOCK_SLACK)
        self.assertGreaterEqual(int(event.group(4)), 300)
        self.assertGreater(int(event.group(2)), 0)
        # Once only: no new burst, nothing more to give back.
        time.sleep(1.5)
        self.assertEqual(len(re.findall("event=heap_returned", g.log())), 1, g.log())

    def test_an_operator_can_let_the_allocator_keep_it(self):
        g = started(self, Gateway(server_section="return_freed_memory = false"))
        tls_connections(self, g.imaps_port, 100)
        time.sleep(2.5)
        self.assertFalse("event=heap_returned" in g.log(), "given back though turned off")


class CertificateSessionsTest(unittest.TestCase):
    def test_sessions_per_certificate_are_capped(self):
        gateway = Gateway(limits_section='max_sessions_per_certificate = 2\nfailure_delay = "0ms"')
        ctl(gateway.database, "certificate", "bind", APP_LABO, "--cert", pki("org-labo.crt"), "--match", "issuer-serial")
        g = started(self, gateway)
        held = []
        for source in ("127.0.0.2", "127.0.0.3"):
            client, tagged = sign_in(g.imaps_port, source)
            self.assertIn("a1 OK", tagged)
            held.append(client)
        client, tagged = sign_in(g.imaps_port, "127.0.0.4")
        self.assertEqual(tagged, "a1 NO [LIMIT] Too many sessions for this certificate")
        client.close()
        g.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=too_many_certificate_sessions")
        # Another certificate is not concerned.
        other, tagged = sign_in(g.imaps_port, "127.0.0.4", cert="org-labo", mailbox=APP_LABO)
        self.assertIn("a1 OK", tagged)
        other.close()
        held.pop().command("z", "LOGOUT")
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while True:
            client, tagged = sign_in(g.imaps_port, "127.0.0.4")
            client.close()
            if "a1 OK" in tagged or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertIn("a1 OK", tagged)
        for c in held:
            c.close()


class LmtpBudgetTest(unittest.TestCase):
    def test_the_lmtp_tap_delivers_while_the_client_listeners_are_full(self):
        lmtp_port = backend_env()["BACKEND_LMTP_PORT"]
        g = started(self, Gateway(server_section="max_connections = 3", extra_config=f"""
[lmtp]
listen = ["127.0.0.1:0"]
backend = "127.0.0.1:{lmtp_port}"
max_connections = 2
""" + ADMIN))
        held = [RawImap(g.imap_port, source="127.0.0.%d" % (20 + i)) for i in range(3)]
        for client in held:
            self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        full = RawImap(g.imap_port, source="127.0.0.30")
        self.assertEqual(full.greeting, "* BYE [UNAVAILABLE] Too many connections, try again later")
        full.close()
        # Postfix's deliveries go on.
        marker = new_marker("tap")
        message = "From: expediteur@test.mssante.fr\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n" % (APP_LABO, marker.decode())
        with smtplib.LMTP("127.0.0.1", g.ports["lmtp"], timeout=10) as lmtp:
            self.assertEqual(lmtp.sendmail("expediteur@test.mssante.fr", [APP_LABO], message), {})
        wait_for_delivery(APP_LABO, marker)
        # The tap's own budget: a third connection while two are open is refused.
        taps = [smtplib.LMTP("127.0.0.1", g.ports["lmtp"], timeout=10) for _ in range(2)]
        third = smtplib.LMTP()
        third.timeout = 10
        code, text = third.connect("127.0.0.1", g.ports["lmtp"])
        self.assertEqual((code, text), (421, b"4.3.2 Too many connections, try again later"))
        third.close()
        for tap in taps:
            tap.quit()
        for client in held:
            client.close()
        self.assertEqual(metric(g, "mssgate_connections_refused_total", listener="imap", reason="max_connections"), 1)
        self.assertEqual(metric(g, "mssgate_connections_refused_total", listener="lmtp", reason="max_connections"), 1)


# An io thread runs this many TLS handshakes at once; the others wait their turn, first come
# first served. A client that stalls inside its handshake gives its turn up after the grace.
HANDSHAKES_IN_FLIGHT = 64
TURN_GRACE = 0.1


def stalled_handshakes(test, port, count):
    """`count` connections to `port` that each send the start of a TLS record, then nothing: each
    takes its turn in the queue and keeps it for the grace. Closed when the test ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    sockets = []
    test.addCleanup(lambda: [s.close() for s in sockets])
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x16\x03\x01")
        sockets.append(s)
    return sockets


def queue_until(test, gateway, enough, timeout=30.0):
    """Waits until `enough(n)` holds of the n connections waiting for a handshake turn; n."""
    start = time.monotonic()
    seen = []
    while time.monotonic() < start + timeout:
        waiting = metric(gateway, "mssgate_tls_handshakes_waiting")
        if enough(waiting):
            return waiting
        seen.append("%.2f s: %d" % (time.monotonic() - start, waiting))
        time.sleep(0.01)
    test.fail("the queue of handshakes never grew long enough; seen: %s" % ", ".join(seen[:50]))


def queue_seconds(waiting):
    """The least time a connection behind `waiting` stalled ones waits for its turn."""
    return waiting / HANDSHAKES_IN_FLIGHT * TURN_GRACE


def greeted_through_tls(sock, context):
    """A TLS handshake on `sock` driven by hand, then the server's first line: (seconds from the
    ClientHello to the server's first bytes, that is to its handshake's turn; the line)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    start = time.monotonic()
    turn = None
    received = b""
    while b"\r\n" not in received:
        try:
            if tls.version() is None:
                tls.do_handshake()
            else:
                received += tls.read(4096)
            continue
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed by the server %.2f s after the ClientHello" % (time.monotonic() - start))
        if turn is None:
            turn = time.monotonic() - start
        incoming.write(chunk)
    return turn, received.split(b"\r\n", 1)[0].decode()


class HandshakeQueueTest(unittest.TestCase):
    """A storm of connections (every client reconnecting after a restart) queues for handshake
    turns. The wait is the gateway's, not the client's: it does not count against the handshake's
    deadline, and the phase before authentication still bounds it."""

    def gateway(self, handshake_timeout, pre_auth_timeout):
        g = Gateway(extra_config=ADMIN, limits_section=LIMITS_OFF + 'pre_auth_timeout = "%gs"\n' % pre_auth_timeout)
        # One io thread: one queue, which the stalled connections fill.
        g.set_option("server", "io_threads", "1")
        g.set_option("tls", "handshake_timeout", '"%gs"' % handshake_timeout)
        return started(self, g)

    def test_a_wait_for_a_handshake_turn_does_not_count_against_the_handshake_deadline(self):
        handshake_timeout = 1.0
        g = self.gateway(handshake_timeout, pre_auth_timeout=60)
        stalled = stalled_handshakes(self, g.imaps_port, 3840)
        # A connection joining now would wait past its deadline.
        ahead = queue_until(self, g, lambda waiting: queue_seconds(waiting) > handshake_timeout + 0.5)
        sock = socket.create_connection(("127.0.0.1", g.imaps_port), timeout=30)
        self.addCleanup(sock.close)
        turn, greeting = greeted_through_tls(sock, client_context("org-hopital"))
        # Behind `ahead` stalled connections: the turn came after the deadline had passed.
        self.assertGreater(turn, handshake_timeout, "%d connections ahead" % ahead)
        self.assertTrue(greeting.startswith("* OK"), greeting)
        # The log tells how long it waited.
        session = g.session_of(sock)
        waited = int(g.wait_for_log(r"event=tls session=%s .* turn_wait_ms=(\d+) " % session).group(1))
        self.assertGreater(waited, handshake_timeout * 1000)
        # Once they have their turn, the stalled connections are cut by their deadline.
        for s in stalled:
            self.assertEqual(wait_for_close(s.recv, s, timeout=10), ("eof", b""))
        # (Each logged once its connection is closed.)
        give_up = time.monotonic() + CLOSE_TIMEOUT
        while True:
            cut = len(re.findall(r"event=tls_failed \S+ \S+ reason=timeout stage=handshake ", g.log()))
            if cut >= len(stalled) or time.monotonic() > give_up:
                break
            time.sleep(0.05)
        self.assertEqual(cut, len(stalled))
        self.assertEqual(metric(g, "mssgate_tls_handshakes_waiting"), 0)

    def test_the_phase_before_authentication_ends_a_wait_for_a_handshake_turn(self):
        pre_auth_timeout = 3.0
        margin = 1.0
        g = self.gateway(handshake_timeout=30, pre_auth_timeout=pre_auth_timeout)
        start = time.monotonic()
        client = RawImap(g.imap_port)
        session = g.session_of(client.sock)
        _, tagged = client.command("s1", "STARTTLS")
        self.assertTrue(tagged.startswith("s1 OK"), tagged)
        # The stalled connections come after this one: their own phase ends after its.
        time.sleep(max(0.0, start + 0.5 - time.monotonic()))
        stalled_handshakes(self, g.imaps_port, 3840)
        # Its handshake begins when its turn would come well after its phase has ended.
        ahead = queue_until(self, g, lambda waiting: time.monotonic() + queue_seconds(waiting) >
                            start + pre_auth_timeout + margin + 0.5)
        with self.assertRaises((ssl.SSLError, OSError), msg="a handshake behind %d waiting connections" % ahead):
            client_context().wrap_socket(client.sock, server_hostname="localhost")
        ended = time.monotonic() - start
        self.assertGreaterEqual(ended, pre_auth_timeout - CLOCK_SLACK)
        self.assertLess(ended, pre_auth_timeout + margin,
                        "closed %.2f s after connecting, behind %d waiting connections" % (ended, ahead))
        g.wait_for_log(r"event=tls_failed session=%s \S+ reason=timeout stage=turn turn_wait_ms=\d+" % session)
        g.wait_for_log(r"event=close session=%s reason=pre_auth_timeout" % session)


class OpenFileLimitTest(unittest.TestCase):
    def test_connections_past_what_the_descriptors_allow_are_refused_at_accept(self):
        # Each session holds two descriptors (its connection, its backend's) and 256 are kept for
        # the rest: a limit of 264 allows 4 client connections, not the 20,000 configured.
        g = Gateway(extra_config=ADMIN)
        g.start(open_file_limit=264)
        self.addCleanup(g.stop)
        events = re.findall(r"event=open_file_limit_low .*", g.log())
        self.assertEqual(len(events), 1, g.log())
        self.assertIn("open_file_limit=264", events[0])
        self.assertIn("max_connections=20000", events[0])
        self.assertIn("connections_allowed=4", events[0])
        held = [RawImap(g.imap_port) for _ in range(3)]
        for client in held:
            self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        # The fourth signs in to its mailbox: its backend connection has its descriptor.
        imap = RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"))
        _, tagged = imap.authenticate_external(APP_HOPITAL)
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        # A fifth would have none for its backend: told at once, before any TLS.
        full = RawImap(g.imap_port)
        self.assertEqual(full.greeting, "* BYE [UNAVAILABLE] Too many connections, try again later")
        full.close()
        self.assertEqual(metric(g, "mssgate_connections_refused_total", listener="imap", reason="max_connections"), 1)
        self.assertNotIn("Too many open files", g.log())
        imap.close()
        for client in held:
            client.close()


class AuditSummaryTest(unittest.TestCase):
    def test_failed_sign_in_events_beyond_the_rate_are_summed_up_per_address(self):
        g = started(self, Gateway(extra_config=ADMIN, limits_section="""
logged_events_per_address = 3
rate_time_unit = "5s"
max_connections_per_address = 1
failure_delay = "0ms"
"""))
        start = g.log_size()
        failures = 0
        for _ in range(3):  # the third failure of a session ends it
            client = RawImap(g.imaps_port, implicit_ctx=client_context("org-hopital"), source="127.0.0.12")
            session = g.session_of(client.sock)
            for i in range(3 if failures < 6 else 2):
                fail_external(client, "a%d" % i)
                failures += 1
            client.close()
            g.wait_for_log(r"event=close session=%s " % session)
        self.assertEqual(failures, 8)
        in_full = re.findall(r"event=auth \S+ mechanism=EXTERNAL result=failed", g.log(since=start))
        self.assertEqual(len(in_full), 3, "failed sign-ins written in full")
        # Refused connections are summed up the same way.
        holder = RawImap(g.imap_port, source="127.0.0.13")
        for _ in range(5):
            refused = RawImap(g.imap_port, source="127.0.0.13")
            self.assertEqual(refused.greeting, BYE_ADDRESS)
            refused.close()
        holder.close()
        self.assertEqual(len(re.findall(r"event=connection_refused \S+ peer=127\.0\.0\.13", g.log(since=start))), 3)
        g.wait_for_log(r"event=sign_in_failures_summarised address=127\.0\.0\.12 count=5 written=3 window_ms=5000",
                       since=start, timeout=15)
        g.wait_for_log(r"event=connections_refused_summarised address=127\.0\.0\.13 count=2 written=3 window_ms=5000",
                       since=start, timeout=15)
        # The metric counts every attempt.
        self.assertEqual(metric(g, "mssgate_authentications_total", protocol="imap", mechanism="EXTERNAL",
                                result="failed"), 8)


if __name__ == "__main__":
    main()
