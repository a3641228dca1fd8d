"""Behind a load balancer: the PROXY protocol v2 header on the listeners of
proxy_protocol.listeners. The client's address the header names is the one the log, the
per-address limits, Dovecot (ID x-originating-ip) and Postfix (XCLIENT ADDR) see; only the
balancers of proxy_protocol.trusted_sources may connect; a header that is late, cut, or not a
version 2 header closes the connection. The balancer is played by the test (127.0.0.1), other
hosts by 127.0.0.2, ...; HAProxy itself is in the cluster tests."""

import email.utils
import http.client
import os
import re
import smtplib
import socket
import struct
import time

from harness import (APP_HOPITAL, APP_LABO, CLOSE_TIMEOUT, Gateway, GatewayTestCase, RawImap, backend_env,
                     client_context, main, new_marker, wait_for_close, wait_for_delivery, wait_for_text)
from test_client_limits import metric

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_TIMEOUT = 1.0


def proxy_header(source=None, destination=("203.0.113.10", 993), tlvs=b""):
    """A version 2 header as HAProxy writes it: PROXY over TCP from `source` ((address, port),
    IPv4 or IPv6) to `destination`, or LOCAL (a health check) when `source` is None."""
    if source is None:
        return SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    v6 = ":" in source[0]
    family = socket.AF_INET6 if v6 else socket.AF_INET
    addresses = (socket.inet_pton(family, source[0]) + socket.inet_pton(family, destination[0]) +
                 struct.pack("!HH", source[1], destination[1]))
    body = addresses + tlvs
    return SIGNATURE + bytes([0x21, 0x21 if v6 else 0x11]) + struct.pack("!H", len(body)) + body


def connect(port, header=b"", source=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0) if source else None)
    if header:
        sock.sendall(header)
    return sock


class ProxiedImap(RawImap):
    """RawImap over a connection that starts with `header`."""

    def __init__(self, port, header, implicit_ctx=None, source=None):
        sock = connect(port, header, source)
        if implicit_ctx:
            sock = implicit_ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buffer = b""
        self.greeting = self.read_line()


class ProxiedSMTP(smtplib.SMTP):
    """smtplib's client, its connection starting with `header`."""

    def __init__(self, header, *args, **kwargs):
        self.header = header
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        sock.sendall(self.header)
        return sock


def behind_balancer(listeners, trusted="127.0.0.1", **options):
    """A gateway whose `listeners` take PROXY headers from `trusted`, with an admin endpoint."""
    return Gateway(extra_config="""
[admin]
listen = ["127.0.0.1:0"]

[proxy_protocol]
listeners = [%s]
trusted_sources = ["%s"]
header_timeout = "%gs"
""" % (", ".join('"%s"' % name for name in listeners), trusted, HEADER_TIMEOUT), **options)


class ProxyProtocolTest(GatewayTestCase):
    @classmethod
    def make_gateway(cls):
        return behind_balancer(["imap", "imaps", "submission", "submissions"], limits_section="""
max_connections_per_address = 2
connection_rate_per_address = 1000
failure_delay = "0ms"
""")

    def test_an_imap_client_is_known_by_the_address_the_balancer_names(self):
        g = self.gateway
        header = proxy_header(("192.0.2.44", 50123), ("203.0.113.10", 993))
        client = ProxiedImap(g.imaps_port, header, implicit_ctx=client_context("org-hopital"))
        self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        _, tagged = client.authenticate_external()
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        _, tagged = client.command("a2", "NOOP")
        self.assertTrue(tagged.startswith("a2 OK"), tagged)
        client.close()
        g.wait_for_log(r"event=connect session=\S+ listener=imaps peer=192\.0\.2\.44:50123 via=127\.0\.0\.1:\d+")
        # Dovecot logs the client's address (ID x-originating-ip) and the one it reached.
        dovecot_log = os.path.join(backend_env()["BACKEND_DIR"], "dovecot", "log", "dovecot.log")
        wait_for_text(dovecot_log, r"Login: user=<%s>, method=PLAIN, rip=192\.0\.2\.44, lip=203\.0\.113\.10"
                      % re.escape(APP_HOPITAL))

    def test_a_header_in_pieces_and_an_ipv6_client(self):
        g = self.gateway
        header = proxy_header(("2001:db8::44", 40000), ("2001:db8::1", 143))
        sock = connect(g.imap_port)
        for i in range(len(header)):
            sock.sendall(header[i:i + 1])
            time.sleep(0.002)
        sock.settimeout(10)
        self.assertTrue(sock.recv(1024).startswith(b"* OK"))
        sock.close()
        g.wait_for_log(r"event=connect session=\S+ listener=imap peer=\[2001:db8::44\]:40000 via=127\.0\.0\.1:\d+")

    def test_a_message_reaches_postfix_with_the_clients_address(self):
        g = self.gateway
        marker = new_marker("proxied")
        header = proxy_header(("192.0.2.45", 50200), ("203.0.113.10", 587))
        with ProxiedSMTP(header, "127.0.0.1", g.submission_port, timeout=30) as smtp:
            smtp.starttls(context=client_context("org-hopital"))
            smtp.ehlo("lps_not_a_domain")  # replaced by the client's address literal
            code, _ = smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
            self.assertEqual(code, 235)
            text = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\nBonjour.\r\n"
                    % (APP_HOPITAL, APP_LABO, marker.decode(), email.utils.formatdate(), marker.decode()))
            self.assertEqual(smtp.sendmail(APP_HOPITAL, [APP_LABO], text.encode()), {})
        wait_for_delivery(APP_LABO, marker)
        queue_id = g.wait_for_log(r"event=message \S+ mailbox=%s message_id=<%s@test> .*queue_id=(\w+) "
                                  r"result=accepted" % (re.escape(APP_HOPITAL), marker.decode())).group(1)
        maillog = os.path.join(backend_env()["BACKEND_DIR"], "postfix", "log", "maillog")
        wait_for_text(maillog, r"%s: client=unknown\[192\.0\.2\.45\], sasl_method=XCLIENT, sasl_username=%s"
                      % (queue_id, re.escape(APP_HOPITAL)))

    def test_per_address_limits_count_the_client_not_the_balancer(self):
        g = self.gateway
        header = proxy_header(("192.0.2.50", 1000), ("203.0.113.10", 143))
        held = [ProxiedImap(g.imap_port, header) for _ in range(2)]
        for client in held:
            self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        refused = ProxiedImap(g.imap_port, header)
        self.assertEqual(refused.greeting,
                         "* BYE [UNAVAILABLE] Too many connections from your address, try again later")
        # Another client behind the same balancer is served.
        other = ProxiedImap(g.imap_port, proxy_header(("192.0.2.51", 1000), ("203.0.113.10", 143)))
        self.assertTrue(other.greeting.startswith("* OK"), other.greeting)
        for client in held + [refused, other]:
            client.close()
        g.wait_for_log(r"event=connection_refused listener=imap peer=192\.0\.2\.50:1000 via=127\.0\.0\.1:\d+ "
                       r"address=192\.0\.2\.50 reason=address_connections")

    def test_a_health_check_is_the_balancers_own_connection(self):
        g = self.gateway
        client = ProxiedImap(g.imap_port, proxy_header(None))
        self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        client.close()
        g.wait_for_log(r"event=connect session=\S+ listener=imap peer=127\.0\.0\.1:\d+ via=127\.0\.0\.1:\d+")

    def test_a_source_not_trusted_is_closed_before_a_byte(self):
        g = self.gateway
        before = metric(g, "mssgate_connections_refused_total", listener="submission",
                        reason="proxy_source_not_trusted")
        sock = connect(g.submission_port, proxy_header(("192.0.2.60", 1), ("203.0.113.10", 587)), source="127.0.0.2")
        self.assertEqual(wait_for_close(sock.recv, sock), ("eof", b""))
        sock.close()
        g.wait_for_log(r"event=connection_refused listener=submission peer=127\.0\.0\.2:\d+ "
                       r"reason=proxy_source_not_trusted")
        self.assertEqual(metric(g, "mssgate_connections_refused_total", listener="submission",
                                reason="proxy_source_not_trusted"), before + 1)
        self.assertNotIn("192.0.2.60", g.log())

    def test_no_header_in_time_closes_the_connection(self):
        g = self.gateway
        sock = connect(g.imaps_port)
        start = time.monotonic()
        self.assertEqual(wait_for_close(sock.recv, sock, timeout=HEADER_TIMEOUT + CLOSE_TIMEOUT), ("eof", b""))
        self.assertGreaterEqual(time.monotonic() - start, HEADER_TIMEOUT - 0.05)
        sock.close()
        g.wait_for_log(r"event=proxy_header_refused listener=imaps peer=127\.0\.0\.1:\d+ reason=timeout")

    def test_a_client_speaking_first_is_refused_at_its_first_byte(self):
        g = self.gateway
        # A client that bypassed nothing but speaks IMAP or TLS at once, or an old balancer
        # sending the text header of version 1.
        for first in (b"a1 CAPABILITY\r\n", b"\x16\x03\x01\x02\x00\x01", b"PROXY TCP4 192.0.2.1 203.0.113.10 1 143\r\n"):
            sock = connect(g.imap_port, first)
            start = time.monotonic()
            self.assertEqual(wait_for_close(sock.recv, sock), ("eof", b""), first)
            self.assertLess(time.monotonic() - start, HEADER_TIMEOUT, first)
            sock.close()
        g.wait_for_log(r"event=proxy_header_refused listener=imap peer=127\.0\.0\.1:\d+ "
                       r"reason=\"not a PROXY protocol v2 header\"")

    def test_bad_headers_are_refused_with_their_reason(self):
        g = self.gateway
        good = proxy_header(("192.0.2.70", 1), ("203.0.113.10", 143))
        cases = [
            (SIGNATURE + b"\x11" + good[13:], "PROXY protocol version other than 2"),
            (SIGNATURE + b"\x21\x31" + good[14:], "address family other than IPv4, IPv6 or unspecified"),
            (SIGNATURE + b"\x21\x12" + good[14:], "transport other than TCP"),
            (SIGNATURE + b"\x21\x11\x00\x04" + good[16:20], "PROXY header shorter than its addresses"),
            (SIGNATURE + b"\x21\x11\xff\xff", "PROXY header longer than allowed"),
        ]
        for header, reason in cases:
            sock = connect(g.imap_port, header)
            self.assertEqual(wait_for_close(sock.recv, sock), ("eof", b""), reason)
            sock.close()
            g.wait_for_log(r"event=proxy_header_refused listener=imap peer=127\.0\.0\.1:\d+ reason=\"%s\""
                           % re.escape(reason))
        # A header cut short: the deadline ends it.
        sock = connect(g.imap_port, good[:20])
        self.assertEqual(wait_for_close(sock.recv, sock, timeout=HEADER_TIMEOUT + CLOSE_TIMEOUT), ("eof", b""))
        sock.close()
        self.assertGreaterEqual(metric(g, "mssgate_connections_refused_total", listener="imap",
                                       reason="proxy_header"), len(cases) + 1)

    def test_listeners_not_named_take_no_header(self):
        # The admin endpoint is not in proxy_protocol.listeners: plain HTTP as before.
        connection = http.client.HTTPConnection("127.0.0.1", self.gateway.ports["admin"], timeout=10)
        connection.request("GET", "/healthz")
        self.assertEqual(connection.getresponse().status, 200)
        connection.close()


class PendingHeadersTest(GatewayTestCase):
    """Connections waiting for their header hold places in the connection budget."""

    @classmethod
    def make_gateway(cls):
        return behind_balancer(["imap"], server_section="max_connections = 3")

    def test_connections_that_never_send_a_header_cannot_pass_the_budget(self):
        g = self.gateway
        silent = [connect(g.imap_port) for _ in range(3)]
        time.sleep(0.2)  # accepted, each waiting for its header
        extra = connect(g.imap_port, proxy_header(("192.0.2.90", 1), ("203.0.113.10", 143)))
        start = time.monotonic()
        self.assertEqual(wait_for_close(extra.recv, extra), ("eof", b""))
        self.assertLess(time.monotonic() - start, HEADER_TIMEOUT, "refused at once, not at the deadline")
        extra.close()
        g.wait_for_log(r"event=connection_refused listener=imap peer=127\.0\.0\.1:\d+ reason=max_connections")
        # Their deadline passes: the places are given back, and a client with its header is served.
        for sock in silent:
            self.assertEqual(wait_for_close(sock.recv, sock, timeout=HEADER_TIMEOUT + CLOSE_TIMEOUT), ("eof", b""))
            sock.close()
        client = ProxiedImap(g.imap_port, proxy_header(("192.0.2.91", 1), ("203.0.113.10", 143)))
        self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        client.close()


class ProxiedAdminTest(GatewayTestCase):
    """The admin endpoint behind the balancer (its health checks send LOCAL headers)."""

    @classmethod
    def make_gateway(cls):
        return behind_balancer(["admin"], trusted="127.0.0.1/32")

    def get(self, header):
        sock = connect(self.gateway.ports["admin"], header)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:  # closed with the request unread: a reset
                break
            if not chunk:
                break
            answer += chunk
        sock.close()
        return answer

    def test_a_health_check_and_a_relayed_request(self):
        self.assertTrue(self.get(proxy_header(None)).startswith(b"HTTP/1.1 200"))
        self.assertTrue(self.get(proxy_header(("192.0.2.80", 5), ("203.0.113.10", 9100))).startswith(b"HTTP/1.1 200"))

    def test_a_request_without_header_is_refused(self):
        self.assertEqual(self.get(b""), b"")
        self.gateway.wait_for_log(r"event=proxy_header_refused listener=admin peer=127\.0\.0\.1:\d+ "
                                  r"reason=\"not a PROXY protocol v2 header\"")

    def test_the_imap_listeners_are_not_behind_it(self):
        client = RawImap(self.gateway.imap_port)
        self.assertTrue(client.greeting.startswith("* OK"), client.greeting)
        client.close()


if __name__ == "__main__":
    main()
