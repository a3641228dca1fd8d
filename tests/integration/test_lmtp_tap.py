"""The LMTP tap hears only Postfix: a peer outside lmtp.allowed_peers is closed at accept, and of
what a peer sends only the commands of a delivery (LHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
reach the real Dovecot LMTP; XCLIENT, AUTH and the rest get a 5xx from the tap."""

import signal
import socket
import time
import unittest

from harness import APP_HOPITAL, CLOSE_TIMEOUT, Gateway, backend_env, main, wait_for_close
from recording import RecordingForwarder


class TapGateway(Gateway):
    """A gateway whose LMTP tap listens on a port of its own and reaches Dovecot's LMTP through
    a recording relay."""

    def __init__(self, allowed_peers=None):
        self.dovecot = RecordingForwarder(int(backend_env()["BACKEND_LMTP_PORT"]))
        peers = "" if allowed_peers is None else "allowed_peers = [%s]\n" % ", ".join(
            '"%s"' % p for p in allowed_peers)
        super().__init__(extra_config=f"""
[lmtp]
listen = ["127.0.0.1:0"]
backend = "127.0.0.1:{self.dovecot.port}"
command_timeout = "5s"
{peers}""")

    def stop(self):
        try:
            super().stop()
        finally:
            self.dovecot.close()

    @property
    def lmtp_port(self):
        return self.ports["lmtp"]


class LmtpClient:
    """A line-level LMTP client, from a chosen local address."""

    def __init__(self, port, source="127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def reply(self):
        """One reply, its lines without CRLF."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("connection closed after %r" % lines)
            lines.append(line.rstrip(b"\r\n").decode())
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def command(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self):
        self.file.close()
        self.sock.close()


# Each refused at the tap, whatever Dovecot would have made of it.
REFUSED = [b"XCLIENT ADDR=192.0.2.66 LOGIN=app.hopital@test.mssante.fr", b"XCLIENT\tADDR=192.0.2.66",
           b"xclient  addr=192.0.2.66", b"AUTH PLAIN AGFkbWluAHNlY3JldA==", b"AUTH\tLOGIN",
           b"VRFY app.hopital@test.mssante.fr", b"EXPN staff", b"ETRN test.mssante.fr", b"STARTTLS",
           b"HELO postfix", b"EHLO postfix", b"BDAT 10 LAST", b"XFORWARD NAME=evil.example", b"HELP",
           b"NOOP\x00XCLIENT ADDR=192.0.2.66"]
REFUSED_VERBS = [b"XCLIENT", b"AUTH", b"VRFY", b"EXPN", b"ETRN", b"STARTTLS", b"HELO", b"EHLO", b"BDAT",
                 b"XFORWARD", b"HELP"]


class TapCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = TapGateway()
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def setUp(self):
        self.gateway.mark()

    def test_only_the_commands_of_a_delivery_reach_dovecot(self):
        client = LmtpClient(self.gateway.lmtp_port)
        self.addCleanup(client.close)
        self.assertTrue(client.reply()[0].startswith("220 "))
        lhlo = client.command(b"LHLO postfix.test")
        self.assertTrue(all(line.startswith("250") for line in lhlo), lhlo)
        offered = {line[4:].split(" ")[0].upper() for line in lhlo[1:]}
        self.assertEqual(offered - {"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE", "DSN", "SMTPUTF8"},
                         set(), "the tap offers an extension whose command it refuses")
        for line in REFUSED:
            answer = client.command(line)
            expected = ("501 5.5.2 Control character in the command line" if b"\x00" in line
                        else "502 5.5.1 Command not implemented")
            self.assertEqual(answer, [expected], line)
        # A tab between the verb and its argument is a blank like any other: MAIL is MAIL.
        self.assertTrue(client.command(b"MAIL\tFROM:<>")[-1].startswith("250"))
        self.assertTrue(client.command(b"RCPT TO:<%s>" % APP_HOPITAL.encode())[-1].startswith("250"))
        self.assertTrue(client.command(b"RSET")[-1].startswith("250"))
        self.assertTrue(client.command(b"QUIT")[-1].startswith("221"))

        sent = self.gateway.dovecot.sent()
        lines = sent.split(b"\r\n")
        self.assertEqual(lines, [b"LHLO postfix.test", b"MAIL FROM:<>", b"RCPT TO:<%s>" % APP_HOPITAL.encode(),
                                 b"RSET", b"QUIT", b""])
        for verb in REFUSED_VERBS:
            self.assertNotIn(verb, sent.upper())


class TapPeers(unittest.TestCase):
    def test_a_peer_not_in_the_allowed_list_is_closed_at_accept(self):
        gateway = TapGateway(allowed_peers=["127.0.0.1"])
        gateway.start()
        self.addCleanup(gateway.stop)

        # 127.0.0.2 is loopback too, but not in the list: closed before a word, Dovecot not asked.
        # mssgate's start makes one connection to check that the backend listens, before its
        # ready event; the forwarder counts it once its accept returns.
        gateway.wait_for_log(r"event=ready ")
        deadline = time.monotonic() + 5
        while gateway.dovecot.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        connections = gateway.dovecot.connections
        self.assertEqual(connections, 1, "the start's check of the backend was not seen")
        stranger = socket.create_connection(("127.0.0.1", gateway.lmtp_port), timeout=10,
                                            source_address=("127.0.0.2", 0))
        self.addCleanup(stranger.close)
        how, data = wait_for_close(stranger.recv, stranger, CLOSE_TIMEOUT)
        self.assertEqual(data, b"", "the tap spoke to a peer it does not hear")
        self.assertIn(how, ("eof", "reset"))
        gateway.wait_for_log(r"event=peer_refused listener=lmtp peer=127\.0\.0\.2 reason=not_in_allowed_peers")
        self.assertEqual(gateway.dovecot.connections, connections)
        self.assertNotRegex(gateway.log(), r"event=connect \S+ listener=lmtp peer=127\.0\.0\.2:")

        # The allowed peer is greeted and relayed as before.
        postfix = LmtpClient(gateway.lmtp_port, source="127.0.0.1")
        self.addCleanup(postfix.close)
        self.assertTrue(postfix.reply()[0].startswith("220 "))
        self.assertTrue(postfix.command(b"LHLO postfix.test")[-1].startswith("250 "))
        self.assertEqual(gateway.dovecot.connections, connections + 1)



class TapStop(unittest.TestCase):
    def test_at_sigterm_the_delivery_under_way_ends_and_the_next_is_deferred(self):
        """Postfix keeps its LMTP connection for its next delivery. At SIGTERM the message under way
        is delivered; the next MAIL on that connection gets 421 (Postfix defers it), so that the
        gateway stops at once instead of serving Postfix's queue until stop_timeout."""
        gateway = TapGateway()
        gateway.start()
        self.addCleanup(lambda: gateway.process and gateway.process.poll() is None and gateway.stop())
        postfix = LmtpClient(gateway.lmtp_port)
        self.addCleanup(postfix.close)
        postfix.reply()
        postfix.command(b"LHLO postfix.test")
        self.assertTrue(postfix.command(b"MAIL FROM:<expediteur@test.mssante.fr>")[0].startswith("250"))
        self.assertTrue(postfix.command(b"RCPT TO:<%s>" % APP_HOPITAL.encode())[0].startswith("250"))
        self.assertTrue(postfix.command(b"DATA")[0].startswith("354"))
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        gateway.wait_for_log(r"event=stopping signal=SIGTERM \S+ transactions=1")
        self.assertTrue(postfix.command(b"Subject: stop\r\n\r\nbody\r\n.")[0].startswith("250 "),
                        "the message under way is delivered")
        self.assertEqual(postfix.command(b"MAIL FROM:<expediteur@test.mssante.fr>"),
                         ["421 4.3.2 Service shutting down, try again later"])
        self.assertEqual(postfix.file.readline(), b"", "the connection is closed")
        gateway.process.wait(timeout=10)
        self.assertLess(time.monotonic() - started, 10, "the stop waited for more than the transaction")
        self.assertEqual(gateway.process.returncode, 0)
        self.assertRegex(gateway.log(), r"event=stopped_accepting \S+ transactions_cut=0")

if __name__ == "__main__":
    main()
