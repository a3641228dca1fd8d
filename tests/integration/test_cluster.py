"""Several gateways behind a real HAProxy (TCP mode, PROXY protocol v2, health checks on each
gateway's /readyz), sharing one directory in a real PostgreSQL: clients sign in and send
through the balancer by certificate and by token; Dovecot and Postfix see the client's address,
not the balancer's; a host that may not send PROXY headers is refused; a gateway killed in the
middle of a run of messages loses none that a client was told was accepted; PostgreSQL
restarted in the middle leaves sign-ins working and the directory's changes resuming, without
restarting any gateway.

The gateways share one indicator journal in PostgreSQL: the reconciliation of the kill test
checks what clients were told, what Dovecot holds and what the journal counted, on both sides
(submission, and Postfix's deliveries through the LMTP taps, retried on another gateway when
one dies), and that the monthly export from PostgreSQL grew by exactly that."""

import base64
import email.utils
import json
import os
import re
import signal
import socket
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, PER_MARTIN, Gateway, PscIssuer, RawImap, backend_env, client_context,
                     delivered_messages, main, new_marker, read_text, wait_for_close, wait_for_delivery,
                     wait_for_text, wait_postfix_queue_empty, xoauth2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_postgresql_directory import postgres, postgres_env, psql, psql_rows  # noqa: E402

PROFESSIONAL = "810001234567"
GATEWAYS = 3
TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here: HAProxy's LMTP frontend
TAP_MAILBOX = "labo@tap.test.mssante.fr"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """GATEWAYS gateways, their directory in PostgreSQL, behind HAProxy on ports of its own."""

    def __init__(self, issuer):
        self.env = postgres_env()
        psql(self.env, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        self.dir = tempfile.mkdtemp(prefix="mssgate-cluster-")
        os.chmod(self.dir, 0o755)
        self.gateways = []
        for i in range(1, GATEWAYS + 1):
            self.gateways.append(Gateway(
                postgresql=self.env, populate=(i == 1),
                server_section='instance = "gw-%d"' % i,
                psc_section=issuer.config(),
                extra_config="""
[admin]
listen = ["127.0.0.1:0"]

[proxy_protocol]
listeners = ["imap", "imaps", "submission", "submissions", "lmtp"]
trusted_sources = ["127.0.0.1"]

[lmtp]
listen = ["127.0.0.1:0"]
backend = "127.0.0.1:%s"

[indicators]
log = "%s/gw-%d.indicators.jsonl"
operator_domains = ["test.mssante.fr", "tap.test.mssante.fr"]
""" % (backend_env()["BACKEND_LMTP_PORT"], self.dir, i)))
        first = self.gateways[0]
        first.ctl("holder", "add", PROFESSIONAL, "--label", "Dr Jean Martin")
        first.ctl("holder", "attach", PROFESSIONAL, PER_MARTIN, "--role", "owner")
        first.ctl("mailbox", "add", TAP_MAILBOX, "--type", "APP")
        for gateway in self.gateways:
            gateway.start()
            # The ports it was given, written in its configuration: restarted, it listens there
            # again, where HAProxy sends its share of the clients.
            for table, key, names in (("imap", "starttls_listen", "imap"), ("imap", "tls_listen", "imaps"),
                                      ("smtp", "starttls_listen", "submission"),
                                      ("smtp", "tls_listen", "submissions"), ("admin", "listen", "admin"),
                                      ("lmtp", "listen", "lmtp")):
                gateway.set_option(table, key, '["127.0.0.1:%d"]' % gateway.ports[names])
        self.ports = {name: free_port() for name in ("imap", "imaps", "submission", "submissions")}
        self.ports["lmtp"] = TAP_PORT
        self.haproxy_log = os.path.join(self.dir, "haproxy.log")
        self.haproxy = None
        self.start_haproxy()

    def start_haproxy(self):
        config = os.path.join(self.dir, "haproxy.cfg")
        with open(config, "w") as f:
            f.write("""global
  log stdout format raw local0 info
  maxconn 2000
defaults
  mode tcp
  log global
  option tcplog
  option redispatch
  retries 2
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  timeout check 1s
  option httpchk GET /readyz
  http-check expect status 200
  balance roundrobin
""")
            for name, port in self.ports.items():
                f.write("frontend %s\n  bind 127.0.0.1:%d\n  default_backend %s\nbackend %s\n" % (name, port, name, name))
                for i, gateway in enumerate(self.gateways, 1):
                    f.write("  server gw-%d 127.0.0.1:%d send-proxy-v2 check port %d inter 500ms fall 2 rise 2\n"
                            % (i, gateway.ports[name], gateway.ports["admin"]))
        log = open(self.haproxy_log, "ab")
        self.haproxy = subprocess.Popen(["haproxy", "-f", config, "-db"], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports["imap"]), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if self.haproxy.poll() is not None:
                raise AssertionError("haproxy exited:\n" + read_text(self.haproxy_log))
            time.sleep(0.1)
        raise AssertionError("haproxy not serving in 10 s:\n" + read_text(self.haproxy_log))

    def stop(self):
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.send_signal(signal.SIGTERM)
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
        for gateway in self.gateways:
            gateway.stop()

    def journal(self, sql):
        """Rows of the shared journal in PostgreSQL."""
        return psql_rows(self.env, sql)

    def exported_messages(self):
        """This month's messages report, exported from PostgreSQL by mssgatectl: {mailbox: row}."""
        out = tempfile.mkdtemp(dir=self.dir)
        month = time.strftime("%Y-%m")
        self.gateways[0].ctl("indicators", "export", "--month", month, "--format", "json", "--out", out)
        with open(os.path.join(out, "messages-%s.json" % month)) as f:
            return {row["mailbox"]: row for row in json.load(f)}

    def events(self):
        """The events in the gateways' logs, each marked with the gateway that logged it."""
        found = []
        for i in range(1, GATEWAYS + 1):
            path = os.path.join(self.dir, "gw-%d.indicators.jsonl" % i)
            if os.path.exists(path):
                with open(path) as f:
                    found += [dict(json.loads(line), gateway=i) for line in f if line.strip()]
        return found


def sign_in_on_each(test, port, expected):
    """GATEWAYS certificate sign-ins through the balancer (round robin: one on each gateway);
    each answer starts with `expected`."""
    for _ in range(GATEWAYS):
        client = RawImap(port, implicit_ctx=client_context("org-hopital"))
        _, tagged = client.authenticate_external()
        test.assertTrue(tagged.startswith(expected), tagged)
        client.close()


def message(marker, sender=APP_HOPITAL, recipient=APP_LABO):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@cluster.test>\r\n\r\nBonjour.\r\n"
            % (sender, recipient, marker, email.utils.formatdate(), marker)).encode()


def submit(port, marker, source=None, recipient=APP_LABO):
    """One message through the balancer's submission port, signed in by certificate."""
    smtp = smtplib.SMTP(timeout=15, source_address=(source, 0) if source else None)
    smtp._host = "localhost"
    try:
        smtp.connect("127.0.0.1", port)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.cluster.test")
        code, _ = smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
        assert code == 235, code
        smtp.sendmail(APP_HOPITAL, [recipient], message(marker, recipient=recipient))
        smtp.quit()
    finally:
        smtp.close()


class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.issuer = PscIssuer()
        cls.cluster = Cluster(cls.issuer)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cluster.stop()
        finally:
            cls.issuer.stop()
            postgres("start")

    def setUp(self):
        for gateway in self.cluster.gateways:
            gateway.mark()

    def test_certificates_and_tokens_through_the_balancer_reach_every_gateway(self):
        c = self.cluster
        for _ in range(GATEWAYS):
            client = RawImap(c.ports["imaps"], implicit_ctx=client_context("org-hopital"))
            _, tagged = client.authenticate_external()
            self.assertTrue(tagged.startswith("a1 OK"), tagged)
            client.close()
            token = self.issuer.issue(PROFESSIONAL)
            client = RawImap(c.ports["imap"])
            client.starttls(client_context())
            encoded = base64.b64encode(xoauth2(PER_MARTIN, token).encode()).decode()
            _, tagged = client.command("a1", "AUTHENTICATE XOAUTH2 " + encoded)
            self.assertTrue(tagged.startswith("a1 OK"), tagged)
            client.close()
        # Round robin: each gateway had its share of both kinds of sign-in.
        for gateway in c.gateways:
            gateway.wait_for_log(r"event=auth session=\S+ mechanism=EXTERNAL result=ok")
            gateway.wait_for_log(r"event=auth session=\S+ mechanism=XOAUTH2 result=ok")
        marker = new_marker("through").decode()
        submit(c.ports["submission"], marker)
        wait_for_delivery(APP_LABO, marker.encode())

    def test_dovecot_and_postfix_see_the_client_not_the_balancer(self):
        c = self.cluster
        client = RawImap(c.ports["imaps"], implicit_ctx=client_context("org-hopital"), source="127.0.0.7")
        _, tagged = client.authenticate_external()
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        client.close()
        backend = backend_env()["BACKEND_DIR"]
        wait_for_text(os.path.join(backend, "dovecot", "log", "dovecot.log"),
                      r"Login: user=<%s>, method=PLAIN, rip=127\.0\.0\.7, lip=127\.0\.0\.1" % re.escape(APP_HOPITAL))
        marker = new_marker("client-address").decode()
        submit(c.ports["submission"], marker, source="127.0.0.8")
        wait_for_delivery(APP_LABO, marker.encode())
        queue_id = None
        for gateway in c.gateways:
            found = re.search(r"event=message \S+ mailbox=%s message_id=<%s@cluster.test> .*queue_id=(\w+)"
                              % (re.escape(APP_HOPITAL), marker), gateway.log())
            if found:
                queue_id = found.group(1)
                self.assertRegex(gateway.log(), r"event=connect session=\S+ listener=submission "
                                                r"peer=127\.0\.0\.8:\d+ via=127\.0\.0\.1:\d+")
        self.assertIsNotNone(queue_id, "no gateway logged the message")
        wait_for_text(os.path.join(backend, "postfix", "log", "maillog"),
                      r"%s: client=unknown\[127\.0\.0\.8\], sasl_method=XCLIENT" % queue_id)

    def test_postfix_delivers_through_the_balancer_to_the_lmtp_taps(self):
        c = self.cluster
        run = new_marker("tap").decode()
        markers = ["%s-%d" % (run, k) for k in range(6)]
        for marker in markers:
            smtp = smtplib.SMTP(timeout=15)
            smtp._host = "localhost"
            smtp.connect("127.0.0.1", c.ports["submission"])
            smtp.starttls(context=client_context("org-hopital"))
            smtp.ehlo("lps.cluster.test")
            smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
            smtp.sendmail(APP_HOPITAL, [TAP_MAILBOX], message(marker, recipient=TAP_MAILBOX))
            smtp.quit()
        for marker in markers:
            wait_for_delivery(TAP_MAILBOX, marker.encode(), timeout=30)
        # Each delivery counted once as received, by the gateway whose tap relayed it.
        deadline = time.monotonic() + 20
        while True:
            received = [e for e in c.events() if e.get("direction") == "received" and run in (e.get("message_id") or "")]
            if len(received) >= len(markers) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(sorted(e["message_id"] for e in received), sorted("<%s@cluster.test>" % m for m in markers))
        self.assertEqual(len({e["key"] for e in received}), len(markers))
        # The taps heard Postfix's own address through HAProxy's header.
        heard = [g for g in c.gateways
                 if re.search(r"event=connect session=\S+ listener=lmtp peer=127\.0\.0\.1:\d+ via=127\.0\.0\.1:\d+",
                              g.log())]
        self.assertTrue(heard, "no tap logged a connection through the balancer")

    def test_a_host_that_may_not_send_proxy_headers_is_refused(self):
        gateway = self.cluster.gateways[0]
        sock = socket.create_connection(("127.0.0.1", gateway.ports["imap"]), timeout=10,
                                        source_address=("127.0.0.2", 0))
        sock.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("192.0.2.1") +
                     socket.inet_aton("127.0.0.1") + b"\x00\x01\x00\x8f")
        self.assertEqual(wait_for_close(sock.recv, sock), ("eof", b""))
        sock.close()
        gateway.wait_for_log(r"event=connection_refused listener=imap peer=127\.0\.0\.2:\d+ "
                             r"reason=proxy_source_not_trusted")

    def test_a_gateway_killed_mid_run_loses_no_accepted_message(self):
        """Messages to the tap's mailbox: each is submitted through one gateway and delivered by
        Postfix through another one's tap (or the same), and gw-2 dies in the middle of both."""
        c = self.cluster
        victim = c.gateways[1]
        before = c.exported_messages()
        acknowledged, attempts = [], [0]
        lock = threading.Lock()
        stop = threading.Event()
        run = new_marker("kill").decode()

        def sender(n):
            k = 0
            while not stop.is_set():
                marker = "%s-%d-%d" % (run, n, k)
                k += 1
                with lock:
                    attempts[0] += 1
                try:
                    submit(c.ports["submission"], marker, recipient=TAP_MAILBOX)
                except (OSError, smtplib.SMTPException, AssertionError):
                    continue  # not acknowledged: the client would try again; this one moves on
                with lock:
                    acknowledged.append(marker)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        time.sleep(3)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join(60)
        self.assertGreater(len(acknowledged), 20, "too few messages to say anything")
        # HAProxy took the dead gateway out, and clients went on through the others.
        wait_for_text(c.haproxy_log, r"Server submission/gw-2 is DOWN")
        # The killed gateway comes back and is taken in again: a delivery it had under way
        # counts now (once, even when Postfix gave it to another gateway meanwhile).
        victim.start()
        wait_for_text(c.haproxy_log, r"Server submission/gw-2 is UP", timeout=15)
        wait_postfix_queue_empty()
        # Every message a client was told was accepted is in the recipient's mailbox.
        for marker in acknowledged:
            wait_for_delivery(TAP_MAILBOX, marker.encode(), timeout=30)
        held = set()
        for data in delivered_messages(TAP_MAILBOX, run.encode()):
            held.add(re.search(rb"Message-ID: <([^@>]+)@cluster\.test>", data).group(1).decode())

        def counted(direction):
            return {row[0]: int(row[1]) for row in c.journal(
                "SELECT message_id, count(*) FROM indicator_event WHERE direction = '%s' AND message_id "
                "LIKE '<%s-%%' GROUP BY message_id" % (direction, run))}

        # Sent: each acknowledged message once, recorded by the gateway that answered.
        sent = counted("sent")
        for marker in acknowledged:
            self.assertEqual(sent.get("<%s@cluster.test>" % marker), 1, marker)
        # Received: each message Dovecot holds counted once, whichever tap delivered it.
        deadline = time.monotonic() + 20
        while True:
            received = counted("received")
            if set(received) >= {"<%s@cluster.test>" % m for m in held} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(received, {"<%s@cluster.test>" % m: 1 for m in held})
        origins = dict(c.journal("SELECT origin, count(*) FROM indicator_event WHERE message_id LIKE '<%s-%%' "
                                 "GROUP BY origin" % run))
        # The monthly export from PostgreSQL grew by exactly what was sent and received.
        after = c.exported_messages()
        grown = {mailbox: {k: after[mailbox][k] - before.get(mailbox, {}).get(k, 0) for k in ("sent", "received")}
                 for mailbox in (APP_HOPITAL, TAP_MAILBOX)}
        self.assertEqual(grown[APP_HOPITAL]["sent"], len(sent))
        self.assertEqual(grown[TAP_MAILBOX]["received"], len(received))
        print("cluster kill: %d attempts, %d acknowledged, %d sent and %d received events (by gateway: %s), "
              "%d held by Dovecot" % (attempts[0], len(acknowledged), len(sent), len(received), origins, len(held)),
              file=sys.stderr)

    def test_a_postgresql_restart_leaves_sign_ins_working_and_changes_resuming(self):
        c = self.cluster
        postgres("stop")
        try:
            for gateway in c.gateways:
                gateway.wait_for_log(r"event=directory_refresh_failed source=postgresql://")
            sign_in_on_each(self, c.ports["imaps"], "a1 OK")
        finally:
            offsets = [g.log_size() for g in c.gateways]
            postgres("start")
        for gateway, offset in zip(c.gateways, offsets):
            gateway.wait_for_log(r"event=directory_loaded source=postgresql://", since=offset)
        # The journal is written again, on every gateway, with no restart: each one's message
        # counted (round robin: one on each).
        run = new_marker("after-restart").decode()
        markers = ["%s-%d" % (run, k) for k in range(GATEWAYS)]
        for marker in markers:
            submit(c.ports["submission"], marker)
        counted = c.journal("SELECT origin, message_id FROM indicator_event WHERE message_id LIKE '<%s-%%' "
                            "ORDER BY message_id" % run)
        self.assertEqual([row[1] for row in counted], ["<%s@cluster.test>" % m for m in markers])
        self.assertEqual(sorted(row[0] for row in counted), ["gw-%d" % i for i in range(1, GATEWAYS + 1)])
        # A change made on one host is in force on every gateway.
        offsets = [g.log_size() for g in c.gateways]
        c.gateways[0].ctl("mailbox", "set-status", APP_HOPITAL, "suspended")
        try:
            for gateway, offset in zip(c.gateways, offsets):
                gateway.wait_for_log(r"event=directory_loaded ", since=offset)
            sign_in_on_each(self, c.ports["imaps"], "a1 NO")
        finally:
            offsets = [g.log_size() for g in c.gateways]
            c.gateways[0].ctl("mailbox", "set-status", APP_HOPITAL, "active")
            for gateway, offset in zip(c.gateways, offsets):
                gateway.wait_for_log(r"event=directory_loaded ", since=offset)


if __name__ == "__main__":
    main()
