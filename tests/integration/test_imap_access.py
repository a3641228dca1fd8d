"""An applicative mailbox used through mssgate exactly as through Dovecot."""

import base64
import imaplib
import os
import re
import socket
import subprocess
import time
import unittest

from harness import (GatewayTestCase, APP_HOPITAL, APP_LABO, Gateway, RawImap, client_context, deliver_through_postfix, main,
                     pki)


def external(_challenge):
    return b""


class ImapAccessTest(GatewayTestCase):
    def starttls_client(self, cert="org-hopital"):
        imap = imaplib.IMAP4("127.0.0.1", self.gateway.imap_port, timeout=10)
        imap.starttls(client_context(cert))
        return imap

    def test_starttls_then_external_without_authzid_opens_the_bound_mailbox(self):
        imap = imaplib.IMAP4("127.0.0.1", self.gateway.imap_port, timeout=10)
        session = self.gateway.session_of(imap.sock)
        self.assertIn("STARTTLS", imap.capabilities)
        self.assertIn("LOGINDISABLED", imap.capabilities)
        self.assertNotIn("AUTH=EXTERNAL", imap.capabilities)
        imap.starttls(client_context("org-hopital"))
        self.assertIn("AUTH=EXTERNAL", imap.capabilities)
        self.assertNotIn("STARTTLS", imap.capabilities)
        typ, data = imap.authenticate("EXTERNAL", external)
        self.assertEqual(typ, "OK")
        # The tagged OK carries Dovecot's post-login capabilities, without AUTH ones.
        self.assertIn(b"CAPABILITY", data[0])
        self.assertIn(b"IDLE", data[0])
        self.assertNotIn(b"AUTH=", data[0])
        typ, folders = imap.list()
        self.assertEqual(typ, "OK")
        names = b"\n".join(folders)
        for folder in (b"INBOX", b"Sent", b"Drafts", b"Trash"):
            self.assertIn(folder, names)
        typ, _ = imap.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(imap.logout()[0], "BYE")
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=EXTERNAL result=ok mailbox=%s"
                                  % (session, re.escape(APP_HOPITAL)))
        self.gateway.wait_for_log(r"event=close session=%s mailbox=%s reason=\w+ bytes_in=\d+ bytes_out=\d+ duration_ms=\d+"
                                  % (session, re.escape(APP_HOPITAL)))

    def test_implicit_tls_with_authzid_answered_after_continuation(self):
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.gateway.imaps_port, ssl_context=client_context("org-hopital"), timeout=10)
        self.assertIn("AUTH=EXTERNAL", imap.capabilities)
        typ, _ = imap.authenticate("EXTERNAL", lambda _: APP_HOPITAL.encode())
        self.assertEqual(typ, "OK")
        self.assertEqual(imap.select("INBOX")[0], "OK")
        imap.logout()

    def test_sasl_ir_with_and_without_authzid(self):
        for authzid in (None, APP_HOPITAL, APP_HOPITAL.upper()):
            client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
            _, tagged = client.authenticate_external(authzid, initial_response=True)
            self.assertRegex(tagged, r"^a1 OK \[CAPABILITY [^\]]*IMAP4rev1[^\]]*\] Logged in", authzid)
            untagged, tagged = client.command("b1", "SELECT INBOX")
            self.assertTrue(tagged.startswith("b1 OK"), tagged)
            client.command("z", "LOGOUT")
            client.close()

    def test_pipelined_commands_after_authenticate_reach_dovecot(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        client.send(b"a1 AUTHENTICATE EXTERNAL =\r\nb1 SELECT INBOX\r\nc1 NOOP\r\n")
        _, tagged = client.read_until_tagged("a1")
        self.assertIn("OK", tagged)
        _, tagged = client.read_until_tagged("b1")
        self.assertTrue(tagged.startswith("b1 OK"), tagged)
        _, tagged = client.read_until_tagged("c1")
        self.assertTrue(tagged.startswith("c1 OK"), tagged)
        client.close()

    def test_id_and_noop_before_authentication(self):
        client = RawImap(self.gateway.imap_port)
        untagged, tagged = client.command("i1", 'ID ("name" "test-lps" "version" "1.0")')
        self.assertEqual(untagged, ['* ID ("name" "mssgate")'])
        self.assertTrue(tagged.startswith("i1 OK"))
        _, tagged = client.command("n1", "NOOP")
        self.assertTrue(tagged.startswith("n1 OK"))
        untagged, tagged = client.command("l1", "LOGOUT")
        self.assertTrue(untagged[0].startswith("* BYE"))
        self.assertTrue(tagged.startswith("l1 OK"))
        self.assertTrue(client.closed_by_server(), "the connection is still open")

    def test_append_one_mebibyte_then_fetch_back_byte_identical(self):
        imap = self.starttls_client()
        imap.authenticate("EXTERNAL", external)
        body = os.urandom(1 << 20)
        # A MIME message whose body is base64 of random bytes: 1 MiB of message text.
        encoded = base64.encodebytes(body)[: (1 << 20)]
        message = (b"From: test@test.mssante.fr\r\nTo: " + APP_HOPITAL.encode() + b"\r\nSubject: big\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded.replace(b"\n", b"\r\n"))
        typ, data = imap.append("INBOX", None, None, message)
        self.assertEqual(typ, "OK")
        uid = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], message)
        # SEARCH, STORE and EXPUNGE go through too.
        typ, data = imap.uid("SEARCH", None, "SUBJECT", "big")
        self.assertIn(uid.encode(), data[0].split())
        typ, data = imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"\\Deleted", data[0])
        self.assertEqual(imap.expunge()[0], "OK")
        typ, data = imap.uid("SEARCH", None, "UID", uid)
        self.assertEqual(data[0], b"")
        imap.logout()

    def test_a_client_reading_slowly_gets_a_large_fetch_whole_and_in_order(self):
        """The gateway gathers a write's TLS records and sends them together; when the client's
        socket is full (a small receive buffer, the client not reading for a while), the rest
        waits, and the client still gets every byte in order, then the answer to the command it
        pipelined after the FETCH. (Without the wait for the rest, the client never gets it.)"""
        imap = self.starttls_client()
        imap.authenticate("EXTERNAL", external)
        encoded = base64.encodebytes(os.urandom(3 << 20)).replace(b"\n", b"\r\n")
        message = (b"From: test@test.mssante.fr\r\nTo: " + APP_HOPITAL.encode() + b"\r\nSubject: slow reader\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded)
        typ, data = imap.append("INBOX", None, None, message)
        self.assertEqual(typ, "OK")
        uid = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()
        imap.logout()

        raw = RawImap(self.gateway.imap_port, timeout=30)
        raw.starttls(client_context("org-hopital"))
        _, tagged = raw.authenticate_external()
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        _, tagged = raw.command("e1", "EXAMINE INBOX")
        self.assertTrue(tagged.startswith("e1 OK"), tagged)
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        raw.send(("f1 UID FETCH %s (BODY.PEEK[])\r\nn1 NOOP\r\n" % uid).encode())
        time.sleep(1.5)  # the gateway meets a full socket
        header = raw.read_line()
        literal = re.search(r"\{(\d+)\}$", header)
        self.assertIsNotNone(literal, header)
        size = int(literal.group(1))
        while len(raw.buffer) < size:
            chunk = raw.sock.recv(65536)
            self.assertTrue(chunk, "the connection closed inside the message")
            raw.buffer += chunk
        body, raw.buffer = raw.buffer[:size], raw.buffer[size:]
        self.assertEqual(body, message)
        self.assertTrue(raw.read_line().endswith(")"))
        _, tagged = raw.read_until_tagged("f1")
        self.assertTrue(tagged.startswith("f1 OK"), tagged)
        _, tagged = raw.read_until_tagged("n1")
        self.assertTrue(tagged.startswith("n1 OK"), tagged)
        raw.command("l1", "LOGOUT")

    def test_idle_receives_a_message_delivered_through_postfix(self):
        imap = self.starttls_client()
        imap.authenticate("EXTERNAL", external)
        typ, data = imap.select("INBOX")
        before = int(data[0])
        tag = imap._new_tag().decode()
        imap.send(("%s IDLE\r\n" % tag).encode())
        self.assertTrue(imap.readline().startswith(b"+"))
        deliver_through_postfix(APP_HOPITAL, "during idle %d" % time.time())
        imap.sock.settimeout(20)
        line = imap.readline()
        self.assertRegex(line.decode(), r"^\* (\d+) EXISTS")
        self.assertGreater(int(line.split()[1]), before)
        imap.send(b"DONE\r\n")
        while True:
            line = imap.readline()
            if line.startswith(tag.encode()):
                break
        self.assertIn(b"OK", line)
        imap.logout()

    def test_curl_reads_the_mailbox_over_implicit_tls_and_starttls(self):
        deliver_through_postfix(APP_HOPITAL, "for curl")
        common = ["curl", "--silent", "--show-error", "--max-time", "20", "--cacert", pki("root.crt"),
                  "--cert", pki("org-hopital.chain.pem"), "--key", pki("org-hopital.key"),
                  "--login-options", "AUTH=EXTERNAL", "--user", APP_HOPITAL + ":"]
        for url, extra in (("imaps://localhost:%d/INBOX" % self.gateway.imaps_port, []),
                           ("imap://localhost:%d/INBOX" % self.gateway.imap_port, ["--ssl-reqd"])):
            result = subprocess.run(common + extra + ["--request", "EXAMINE INBOX", url], capture_output=True, text=True,
                                    timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertRegex(result.stdout, r"\* \d+ EXISTS")
        # A second mailbox in the directory is not opened with this certificate.
        result = subprocess.run(common[:-2] + ["--user", APP_LABO + ":", "imaps://localhost:%d/INBOX" % self.gateway.imaps_port],
                                capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)


if __name__ == "__main__":
    main()
