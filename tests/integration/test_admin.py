"""The admin endpoint: /metrics parses as OpenMetrics and its counters move with traffic,
/healthz, /readyz (unready while Dovecot is stopped), the autoconfiguration document, TLS with
client certificates; and the logs: a log file, the audit trail apart, repeats summarised."""

import base64
import http.client
import os
import re
import resource
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import xml.etree.ElementTree as ElementTree

from harness import (APP_HOPITAL, DOMAIN, PER_MARTIN, Gateway, GatewayTestCase, PscIssuer, RawImap, admin_tls_section,
                     client_context, main, new_marker, random_jwt, wait_for_delivery, xoauth2)

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:  # the interpreter CMake found may not see Debian's python3 packages
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ADMIN = """
[admin]
listen = ["127.0.0.1:0"]

[admin.autoconfig]
domains = ["%s"]
display_name = "MSSanté test"
imap_host = "imap.%s"
smtp_host = "smtp.%s"
""" % (DOMAIN, DOMAIN, DOMAIN)


def get(port, path, context=None):
    if context:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, response.getheader("Content-Type"), body


def samples(text):
    """{(sample name, frozenset of labels): value}, parsed strictly as OpenMetrics."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def value(values, name, **labels):
    """The value of one sample; a sample that is not there fails the test (it is not 0)."""
    key = (name, frozenset(labels.items()))
    if key not in values:
        present = sorted(sorted(k[1]) for k in values if k[0] == name)
        raise AssertionError("no sample %s%s; the samples of that name: %s" % (name, labels, present))
    return values[key]


def value_before(values, name, **labels):
    """The value of a counter before the traffic a test makes: one that was never incremented
    yet may be absent (a labelled sample appears on first use), which is 0; any other absence
    is for value() to refuse."""
    return values.get((name, frozenset(labels.items())), 0)


def sign_in_imap(port):
    imap = RawImap(port)
    imap.starttls(client_context("org-hopital"))
    _, tagged = imap.authenticate_external()
    assert tagged.startswith("a1 OK"), tagged
    _, tagged = imap.command("n1", "NOOP")
    assert tagged.startswith("n1 OK"), tagged
    imap.command("z1", "LOGOUT")
    imap.close()


def send_message(port, marker):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 235, code
        message = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nbody\r\n"
                   % (APP_HOPITAL, APP_HOPITAL, marker, marker))
        smtp.sendmail(APP_HOPITAL, [APP_HOPITAL], message)


class AdminEndpoint(GatewayTestCase):
    @classmethod
    def make_gateway(cls):
        return Gateway(extra_config=ADMIN)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.port = cls.gateway.ports["admin"]

    def metrics(self):
        status, content_type, body = get(self.port, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("application/openmetrics-text"), content_type)
        self.assertTrue(body.endswith("# EOF\n"))
        return samples(body)

    def test_metrics_parse_and_move_with_traffic(self):
        before = self.metrics()
        sign_in_imap(self.gateway.imap_port)
        marker = new_marker("metrics")
        send_message(self.gateway.submission_port, marker)
        wait_for_delivery(APP_HOPITAL, marker)
        # A handshake that fails: TLS 1.1 is refused by the référentiel policy.
        raw = socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=5)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError):
            old.wrap_socket(raw)
        raw.close()
        self.gateway.wait_for_log(r"event=tls_failed")
        time.sleep(0.3)  # the sessions' closing counts land

        after = self.metrics()

        def moved(name, **labels):
            return value(after, name, **labels) - value_before(before, name, **labels)
        self.assertGreaterEqual(moved("mssgate_connections_total", listener="imap"), 1)
        self.assertGreaterEqual(moved("mssgate_connections_total", listener="submission"), 1)
        self.assertGreaterEqual(
            moved("mssgate_authentications_total", protocol="imap", mechanism="EXTERNAL", result="ok"), 1)
        self.assertGreaterEqual(
            moved("mssgate_authentications_total", protocol="submission", mechanism="EXTERNAL", result="ok"), 1)
        self.assertEqual(moved("mssgate_messages_total", direction="sent"), 1)
        self.assertGreater(moved("mssgate_message_bytes_total", direction="sent"), 50)
        self.assertGreater(moved("mssgate_relayed_bytes_total", protocol="imap", direction="to_client"), 0)
        self.assertGreater(moved("mssgate_relayed_bytes_total", protocol="submission", direction="to_backend"), 0)
        self.assertGreaterEqual(moved("mssgate_tls_handshakes_total", listener="imap", kind="full"), 1)
        self.assertGreaterEqual(moved("mssgate_tls_handshake_failures_total", listener="imaps",
                                      reason="protocol_version"), 1)
        self.assertGreaterEqual(moved("mssgate_command_duration_seconds_count", protocol="submission",
                                      command="MAIL"), 1)
        self.assertGreaterEqual(moved("mssgate_command_duration_seconds_count", protocol="imap",
                                      command="AUTHENTICATE"), 1)
        self.assertGreaterEqual(moved("mssgate_session_duration_seconds_count", protocol="imap"), 1)
        # Histograms are consistent: +Inf bucket = count.
        self.assertEqual(value(after, "mssgate_session_duration_seconds_bucket", protocol="imap", le="+Inf"),
                         value(after, "mssgate_session_duration_seconds_count", protocol="imap"))
        # Sessions that ended are no longer open.
        self.assertEqual(value(after, "mssgate_sessions", listener="imap", state="authenticated"), 0)
        build = [v for (name, _), v in after.items() if name == "mssgate_build_info"]
        self.assertEqual(build, [1])

    def test_open_session_shows_as_authenticated(self):
        imap = RawImap(self.gateway.imap_port)
        imap.starttls(client_context("org-hopital"))
        imap.authenticate_external()
        try:
            deadline = time.monotonic() + 5
            key = ("mssgate_sessions", frozenset({"listener": "imap", "state": "authenticated"}.items()))
            while time.monotonic() < deadline:
                if self.metrics().get(key) == 1:  # absent until the first session signs in
                    break
                time.sleep(0.05)
            self.assertEqual(value(self.metrics(), "mssgate_sessions", listener="imap", state="authenticated"), 1)
        finally:
            imap.close()

    def test_quiet_sessions_hold_no_relay_buffer(self):
        # Sessions that relayed commands and their answers, then fell quiet: each direction gave
        # its buffer back once its side had nothing more to read.
        sessions = []
        try:
            for index in range(3):
                imap = RawImap(self.gateway.imap_port)
                sessions.append(imap)
                imap.starttls(client_context("org-hopital"))
                _, tagged = imap.authenticate_external()
                self.assertTrue(tagged.startswith("a1 OK"), tagged)
                _, tagged = imap.command("b%d" % index, "SELECT INBOX")
                self.assertTrue(tagged.startswith("b%d OK" % index), tagged)
                _, tagged = imap.command("c%d" % index, "NOOP")
                self.assertTrue(tagged.startswith("c%d OK" % index), tagged)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                after = self.metrics()
                if value(after, "mssgate_relay_buffers") == 0:
                    break
                time.sleep(0.05)
            self.assertIn(("mssgate_relay_buffers", frozenset()), after)  # exported once used
            self.assertEqual(value(after, "mssgate_relay_buffers"), 0)
            self.assertGreaterEqual(value(after, "mssgate_sessions", listener="imap", state="authenticated"), 3)
        finally:
            for imap in sessions:
                imap.close()

    def test_stalled_and_silent_connections_do_not_hold_back_a_handshake(self):
        # At most 64 handshakes hold a turn at once on each of the 2 io threads. A connection that
        # sends nothing takes no turn; one that stalls inside its handshake keeps its turn 100 ms.
        # A queue forms once every turn is held: 160 connections that send their ClientHello a
        # byte every 20 ms keep theirs (each byte comes within the grace), whatever the speed of
        # the build. Then they stop, and 500 that stall hold a turn for the grace only.
        silent, stalled, trickling = [], [], []
        done = threading.Event()

        def trickle():
            while not done.is_set():
                for sock in trickling:
                    try:
                        sock.send(b"\x00")
                    except OSError:
                        pass
                time.sleep(0.02)

        trickler = threading.Thread(target=trickle, daemon=True)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2048 and (hard == resource.RLIM_INFINITY or hard >= 2048):
            resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
        try:
            for _ in range(150):
                silent.append(socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=10))
            for _ in range(160):
                sock = socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=10)
                sock.sendall(b"\x16\x03\x01\x3f\xff")  # a record of 16 KiB, sent slowly
                trickling.append(sock)
            trickler.start()
            waited = 0.0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not waited:
                waited = self.metrics().get(("mssgate_tls_handshakes_waiting", frozenset()), 0)
                time.sleep(0.01)
            done.set()
            trickler.join()
            self.assertGreater(waited, 0, "160 handshakes under way, none waited for a turn")
            for _ in range(500):
                sock = socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=10)
                sock.sendall(b"\x16\x03\x01")  # the start of a record, then nothing
                stalled.append(sock)
            start = time.monotonic()
            imap = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
            _, tagged = imap.authenticate_external(APP_HOPITAL)
            took = time.monotonic() - start
            self.assertTrue(tagged.startswith("a1 OK"), tagged)
            imap.close()
            # Well under the handshake timeout (5 s) the stalled ones would hold their turns for.
            self.assertLess(took, 2.0)
        finally:
            done.set()
            for sock in silent + stalled + trickling:
                sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and value(self.metrics(), "mssgate_tls_handshakes_waiting") != 0:
            time.sleep(0.05)
        self.assertEqual(value(self.metrics(), "mssgate_tls_handshakes_waiting"), 0)

    def test_healthz_and_readyz_follow_dovecot(self):
        self.assertEqual(get(self.port, "/healthz")[0], 200)
        status, _, body = get(self.port, "/readyz")
        self.assertEqual(status, 200, body)
        self.assertIn("imap_backend ok", body)
        self.assertIn("submission_backend ok", body)
        env = dict(os.environ)
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "stop-dovecot"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        try:
            status, _, body = get(self.port, "/readyz")
            self.assertEqual(status, 503, body)
            self.assertIn("imap_backend failed", body)
            self.assertIn("submission_backend ok", body)
            self.assertEqual(value(self.metrics(), "mssgate_backend_up", backend="imap_backend"), 0)
        finally:
            subprocess.run([os.path.join(ROOT, "scripts", "backend"), "start-dovecot"], env=env, check=True,
                           stdout=subprocess.DEVNULL, timeout=60)
        status, _, body = get(self.port, "/readyz")
        self.assertEqual(status, 200, body)
        sign_in_imap(self.gateway.imap_port)  # and the gateway serves again

    def test_autoconfig_document(self):
        status, content_type, body = get(self.port, "/mail/config-v1.1.xml?emailaddress=dr.martin%40" + DOMAIN)
        self.assertEqual(status, 200, body)
        self.assertTrue(content_type.startswith("application/xml"))
        root = ElementTree.fromstring(body)
        provider = root.find("emailProvider")
        self.assertEqual(provider.find("domain").text, DOMAIN)
        incoming = provider.find("incomingServer")
        self.assertEqual(incoming.get("type"), "imap")
        self.assertEqual(incoming.find("hostname").text, "imap." + DOMAIN)
        self.assertEqual(incoming.find("port").text, "143")
        self.assertEqual(incoming.find("socketType").text, "STARTTLS")
        self.assertIn("OAuth2", [a.text for a in incoming.findall("authentication")])
        outgoing = provider.find("outgoingServer")
        self.assertEqual(outgoing.get("type"), "smtp")
        self.assertEqual(outgoing.find("hostname").text, "smtp." + DOMAIN)
        self.assertEqual(outgoing.find("port").text, "587")
        self.assertEqual(outgoing.find("socketType").text, "STARTTLS")
        self.assertEqual(get(self.port, "/mail/config-v1.1.xml?emailaddress=someone%40example.org")[0], 404)
        self.assertEqual(get(self.port, "/mail/config-v1.1.xml")[0], 400)
        self.assertEqual(get(self.port, "/nothing-here")[0], 404)

    def test_bad_requests_close_the_connection_and_the_endpoint_goes_on(self):
        for request, status in (
                (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n", b"431"),
                (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, b"400"),
                (b"NOT HTTP AT ALL\r\n\r\n", b"400")):
            answer = raw_answer(self.port, request)
            self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), answer[:100])
        self.assertEqual(get(self.port, "/healthz")[0], 200)

    def test_the_header_limit_holds_however_the_request_arrives(self):
        # 8,192 bytes of header section are read; one more is refused, whether the request
        # arrives in one write or in pieces (Beast's own limit took a slightly longer header
        # that came whole: the admin_http fuzz target found the difference).
        def request(size):
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
            return head + b"a" * (size - len(head) - 4) + b"\r\n\r\n"

        def answer_to(data, piece):
            return raw_answer(self.port, data, piece)[:12]

        for piece in (1 << 20, 1000):
            self.assertEqual(answer_to(request(8192), piece), b"HTTP/1.1 200", piece)
            self.assertEqual(answer_to(request(8193), piece), b"HTTP/1.1 431", piece)
            self.assertEqual(answer_to(request(8400), piece), b"HTTP/1.1 431", piece)

    def test_a_chunked_body_is_refused_before_it_is_read(self):
        request = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6;"
                   + b"\t" * 3000 + b"x=\"")
        for piece in (None, 500):
            self.assertEqual(raw_answer(self.port, request, piece)[:12], b"HTTP/1.1 411", piece)
        self.assertEqual(get(self.port, "/healthz")[0], 200)

    def test_other_methods_refused(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("POST", "/metrics", body="x")
        self.assertEqual(connection.getresponse().status, 405)
        connection.close()


def raw_answer(port, data, piece=None):
    """What the admin endpoint answers to `data`, sent whole or in pieces of `piece` bytes, read
    until it closes the connection or has sent its header section."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    piece = piece or len(data)
    try:
        for at in range(0, len(data), piece):
            raw.sendall(data[at:at + piece])
            if piece < len(data):
                time.sleep(0.002)
    except (BrokenPipeError, ConnectionResetError):
        pass  # it answered and closed before the end of the request: its answer is read below
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            chunk = raw.recv(65536)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    raw.close()
    return answer


class ReadinessWithIssuer(unittest.TestCase):
    def test_issuer_is_checked_and_its_last_answer_shown(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = Gateway(psc_section=issuer.config(), extra_config="[admin]\nlisten = [\"127.0.0.1:0\"]\n")
        gateway.start()
        self.addCleanup(gateway.stop)
        port = gateway.ports["admin"]
        status, _, body = get(port, "/readyz")
        self.assertEqual(status, 200, body)
        self.assertRegex(body, r"issuer ok \S+:\d+\n")
        # A sign-in with a token the issuer does not know: an answer all the same.
        imap = RawImap(gateway.imap_port)
        imap.starttls(client_context())
        imap.send(b"a1 AUTHENTICATE XOAUTH2 " + base64.b64encode(xoauth2(PER_MARTIN, random_jwt()).encode())
                  + b"\r\n")
        line = imap.read_line()
        if line.startswith("+"):  # the error details of XOAUTH2, then an empty answer
            imap.send(b"\r\n")
            line = imap.read_line()
        self.assertTrue(line.startswith("a1 NO"), line)
        imap.close()
        status, _, body = get(port, "/readyz")
        self.assertRegex(body, r"issuer ok \S+:\d+; last answer \d+ s ago\n")
        issuer.stop()
        status, _, body = get(port, "/readyz")
        self.assertEqual(status, 503, body)
        self.assertIn("issuer failed", body)


class AdminOverTls(unittest.TestCase):
    def test_client_certificate_required(self):
        with Gateway(extra_config=admin_tls_section()) as gateway:
            port = gateway.ports["admin"]
            status, _, body = get(port, "/metrics", client_context("org-hopital"))
            self.assertEqual(status, 200)
            samples(body)
            with self.assertRaises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
                get(port, "/metrics", client_context())
            with self.assertRaises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
                get(port, "/metrics")  # plain HTTP to a TLS endpoint


class Logging(unittest.TestCase):
    def test_log_file_audit_trail_and_repeats(self):
        gateway = Gateway()
        audit_path = os.path.join(gateway.dir, "audit.log")
        # The main log goes to the harness's file, now written by mssgate itself.
        with open(gateway.config_path) as f:
            text = f.read()
        text = text.replace('log_level = "debug"\nlog_repeat_limit = 1000000',
                            'log_level = "info"\nlog_file = "%s"\naudit_log = "%s"\n'
                            'log_repeat_limit = 3\nlog_repeat_window = "5s"' % (gateway.log_path, audit_path))
        with open(gateway.config_path, "w") as f:
            f.write(text)
        gateway.start()
        try:
            sign_in_imap(gateway.imap_port)
            for _ in range(8):  # the same TLS failure, eight times
                raw = socket.create_connection(("127.0.0.1", gateway.imaps_port), timeout=5)
                raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
                raw.recv(100)
                raw.close()
            summary = gateway.wait_for_log(r"event=log_suppressed repeated_event=tls_failed .*suppressed=(\d+)",
                                           timeout=15)
            log = gateway.log()
            # Eight failures in one window: three written, five counted in the summary.
            self.assertEqual(len(re.findall(r" event=tls_failed ", log)), 3, log)
            self.assertEqual(int(summary.group(1)), 5)
            with open(audit_path) as f:
                audit = f.read()
            self.assertRegex(audit, r"event=auth .*mechanism=EXTERNAL result=ok mailbox=" + re.escape(APP_HOPITAL))
            self.assertNotIn("event=auth ", log)  # the audit trail is apart from the main log
            self.assertIn("event=connect ", log)
            self.assertNotIn("event=connect ", audit)
            # Rotation: both files are reopened on SIGHUP.
            os.rename(audit_path, audit_path + ".1")
            gateway.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not os.path.exists(audit_path):
                time.sleep(0.05)
            with open(audit_path) as f:
                self.assertIn("event=reloaded", f.read())
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
