"""Submission through mssgate to the real Postfix, delivered by Dovecot: what an LPS sends arrives."""

import base64
import email.utils
import imaplib
import os
import re
import smtplib
import socket
import subprocess
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, SMTP, SMTP_SSL, Gateway, GatewayTestCase, backend_env, client_context,
                     delivered_messages, main, new_marker, pki, wait_for_delivery)
from recording import RecordingForwarder


def message(sender, recipients, marker, body="Bonjour.\r\n", extra_headers=""):
    # With a Date, Postfix adds no header of its own (it would for a message without one).
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n%s\r\n%s"
            % (sender, ", ".join(recipients), marker.decode(), email.utils.formatdate(), marker.decode(), extra_headers,
               body)).encode()


class SubmissionTest(GatewayTestCase):
    def client(self, cert="org-hopital", implicit=False, authzid=None):
        """A signed-in session; used with `with`, it must end with QUIT answered by 221."""
        if implicit:
            smtp = SMTP_SSL("127.0.0.1", self.gateway.submissions_port, context=client_context(cert), timeout=30)
        else:
            smtp = SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
            smtp.starttls(context=client_context(cert))
        smtp.ehlo("lps.test")
        code, _ = smtp.auth("EXTERNAL", lambda challenge=None: authzid or "", initial_response_ok=True)
        self.assertEqual(code, 235)
        return smtp

    def test_a_small_message_is_delivered(self):
        marker = new_marker("small")
        with self.client() as smtp:
            self.assertIn("auth", smtp.esmtp_features)
            refused = smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, [APP_LABO], marker))
            self.assertEqual(refused, {})
        delivered = wait_for_delivery(APP_LABO, marker)
        self.assertIn(b"Bonjour.", delivered[0])
        self.gateway.wait_for_log(r"event=message \S+ mailbox=%s message_id=<%s@test> size=\d+ recipients=1 "
                                  r"queue_id=\w+ result=accepted" % (re.escape(APP_HOPITAL), marker.decode()))

    def test_implicit_tls_and_naming_the_mailbox(self):
        marker = new_marker("implicit")
        with self.client(implicit=True, authzid=APP_HOPITAL) as smtp:
            smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, [APP_LABO], marker))
        wait_for_delivery(APP_LABO, marker)

    def test_ehlo_advertises_the_cap_and_the_backend_extensions(self):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        smtp.ehlo("lps.test")
        self.assertIn("starttls", smtp.esmtp_features)
        self.assertNotIn("auth", smtp.esmtp_features, "no AUTH before TLS")
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.esmtp_features["size"], str(30 << 20))
        self.assertEqual(smtp.esmtp_features["auth"].strip(), "EXTERNAL")
        for extension in ("pipelining", "8bitmime", "enhancedstatuscodes", "chunking", "dsn", "smtputf8"):
            self.assertIn(extension, smtp.esmtp_features)
        self.assertNotIn("starttls", smtp.esmtp_features)
        smtp.quit()

    def test_a_twenty_mebibyte_message_arrives_byte_identical(self):
        marker = new_marker("big")
        payload = base64.encodebytes(os.urandom(15 << 20)).replace(b"\n", b"\r\n")
        sent = message(APP_HOPITAL, [APP_HOPITAL], marker,
                       extra_headers="MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                                     "Content-Transfer-Encoding: base64\r\n").replace(b"Bonjour.\r\n", b"") + payload
        self.assertGreater(len(sent), 20 << 20)
        with self.client() as smtp:
            smtp.sendmail(APP_HOPITAL, [APP_HOPITAL], sent)
        wait_for_delivery(APP_HOPITAL, marker, timeout=60)
        # Read it back over IMAP, through mssgate too.
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.gateway.imaps_port, ssl_context=client_context("org-hopital"), timeout=60)
        imap.authenticate("EXTERNAL", lambda _: b"")
        imap.select("INBOX", readonly=True)
        typ, data = imap.search(None, "HEADER", "Message-ID", marker.decode())
        self.assertEqual(typ, "OK")
        numbers = data[0].split()
        self.assertEqual(len(numbers), 1)
        typ, data = imap.fetch(numbers[0], "(BODY.PEEK[])")
        fetched = data[0][1]
        imap.logout()
        # Postfix and Dovecot add trace headers in front; the message itself is unchanged.
        self.assertTrue(fetched.endswith(sent), "the delivered message differs from the sent one")

    def test_several_recipients_with_one_unknown(self):
        marker = new_marker("multi")
        unknown = "inconnu@" + DOMAIN
        recipients = [APP_LABO, unknown, APP_HOPITAL]
        with self.client() as smtp:
            refused = smtp.sendmail(APP_HOPITAL, recipients, message(APP_HOPITAL, recipients, marker))
        self.assertEqual(list(refused), [unknown])
        self.assertEqual(refused[unknown][0], 550)
        self.assertTrue(refused[unknown][1].startswith(b"5.1.1 "))
        wait_for_delivery(APP_LABO, marker)
        wait_for_delivery(APP_HOPITAL, marker)
        self.gateway.wait_for_log(r"message_id=<%s@test> size=\d+ recipients=2 " % marker.decode())

    def test_pipelined_mail_rcpt_data(self):
        marker = new_marker("pipelined")
        with self.client() as smtp:
            sock = smtp.sock
            sock.sendall(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (APP_HOPITAL, APP_LABO, APP_HOPITAL)).encode())
            replies = [smtp.getreply() for _ in range(4)]
            self.assertEqual([code for code, _ in replies], [250, 250, 250, 354])
            sock.sendall(message(APP_HOPITAL, [APP_LABO], marker) + b".\r\nNOOP\r\n")
            code, text = smtp.getreply()
            self.assertEqual(code, 250)
            self.assertRegex(text.decode(), r"^2\.0\.0 Ok: queued as \w+")
            self.assertEqual(smtp.getreply()[0], 250)
        wait_for_delivery(APP_LABO, marker)
        wait_for_delivery(APP_HOPITAL, marker)

    def test_lines_starting_with_dots_and_eight_bit_content(self):
        marker = new_marker("dots")
        body = ".\r\n..\r\n.hidden line\r\n... three\r\nDéjà vu, ñ, 日本\r\n".encode()
        sent = message(APP_HOPITAL, [APP_LABO], marker, body="",
                       extra_headers="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                     "Content-Transfer-Encoding: 8bit\r\n") + body
        with self.client() as smtp:
            smtp.sendmail(APP_HOPITAL, [APP_LABO], sent, mail_options=["BODY=8BITMIME"])
        delivered = wait_for_delivery(APP_LABO, marker)[0]
        # Dovecot stores LF line ends; the content is otherwise the same.
        self.assertIn(body.replace(b"\r\n", b"\n"), delivered)

    def test_dsn_parameters_reach_postfix(self):
        marker = new_marker("dsn")
        envid = "ENV" + marker.decode().replace("-", "")
        with self.client() as smtp:
            smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, [APP_LABO], marker),
                          mail_options=["RET=HDRS", "ENVID=" + envid],
                          rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;" + APP_LABO])
        wait_for_delivery(APP_LABO, marker)
        # Postfix honoured NOTIFY=SUCCESS: its delivery report, with our ENVID, comes back.
        report = wait_for_delivery(APP_HOPITAL, ("Original-Envelope-Id: " + envid).encode())[0]
        # Dovecot's LMTP offers no DSN, so Postfix reports the hand-over as "relayed".
        self.assertRegex(report, rb"Action: (delivered|relayed)\nStatus: 2\.0\.0")
        self.assertIn(b"Content-Type: text/rfc822-headers", report, "RET=HDRS: headers only")
        self.assertIn(("Original-Recipient: rfc822;" + APP_LABO).encode(), report)

    def test_bdat_chunks_split_anywhere_make_one_message(self):
        marker = new_marker("bdat")
        sent = message(APP_HOPITAL, [APP_LABO], marker, body="Corps.\r\n.ligne avec point\r\n" * 50)
        cuts = [0, 17, 60, len(sent) - 10, len(sent)]  # inside the From header, the header section, the body
        with self.client() as smtp:
            self.assertEqual(smtp.mail(APP_HOPITAL)[0], 250)
            self.assertEqual(smtp.rcpt(APP_LABO)[0], 250)
            for i in range(len(cuts) - 1):
                chunk = sent[cuts[i]:cuts[i + 1]]
                last = i == len(cuts) - 2
                smtp.send(("BDAT %d%s\r\n" % (len(chunk), " LAST" if last else "")).encode() + chunk)
                code, text = smtp.getreply()
                if last:
                    self.assertEqual(code, 250)
                    self.assertRegex(text.decode(), r"^2\.0\.0 Ok: queued as \w+")
                else:
                    self.assertEqual((code, text), (250, ("2.0.0 %d octets received" % len(chunk)).encode()))
        delivered = wait_for_delivery(APP_LABO, marker)[0]
        self.assertTrue(delivered.endswith(sent.replace(b"\r\n", b"\n")), "BDAT content arrives unchanged")

    def test_bdat_pipelined_with_an_empty_last_chunk(self):
        marker = new_marker("bdat0")
        sent = message(APP_HOPITAL, [APP_LABO], marker)
        with self.client() as smtp:
            smtp.send(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d\r\n" % (APP_HOPITAL, APP_LABO, len(sent))).encode()
                      + sent + b"BDAT 0 LAST\r\n")
            self.assertEqual([smtp.getreply()[0] for _ in range(4)], [250, 250, 250, 250])
        wait_for_delivery(APP_LABO, marker)

    def test_curl_submits_with_sasl_external(self):
        marker = new_marker("curl")
        path = os.path.join(self.gateway.dir, "curl-message.txt")
        with open(path, "wb") as f:
            f.write(message(APP_HOPITAL, [APP_LABO], marker))
        for url in ("smtp://localhost:%d" % self.gateway.submission_port, "smtps://localhost:%d" % self.gateway.submissions_port):
            result = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "30", "--ssl-reqd",
                                     "--cacert", pki("root.crt"), "--cert", pki("org-hopital.chain.pem"),
                                     "--key", pki("org-hopital.key"), "--login-options", "AUTH=EXTERNAL",
                                     "--user", APP_HOPITAL + ":", "--mail-from", APP_HOPITAL, "--mail-rcpt", APP_LABO,
                                     "--upload-file", path, url], capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
        wait_for_delivery(APP_LABO, marker, count=2)

    def test_swaks_with_a_client_certificate(self):
        # swaks has no SASL EXTERNAL: it proves the TLS side with its certificate, and is told
        # to authenticate before MAIL.
        for listener, tls in (("submission", "--tls"), ("submissions", "--tls-on-connect")):
            port = self.gateway.ports[listener]
            since = self.gateway.log_size()
            result = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), tls, "--tls-cert",
                                     pki("org-hopital.chain.pem"), "--tls-key", pki("org-hopital.key"),
                                     "--tls-ca-path", pki("root.crt"), "--tls-verify", "--ehlo", "swaks.test",
                                     "--from", APP_HOPITAL, "--to", APP_LABO, "--timeout", "20"],
                                    capture_output=True, text=True, timeout=60)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("TLS started", result.stdout)
            self.assertIn("530 5.7.0 Authentication required", result.stdout)
            # This run's session, on this listener, presented the certificate.
            self.gateway.wait_for_log(r"event=connect session=(\w+) listener=%s (?s:.*)event=tls session=\1 version=TLSv1.2 \S+ "
                                      r"client_certificate=\"CN=LPS_TEST_HOPITAL" % listener, since=since)


class EhloNameTest(unittest.TestCase):
    """What Postfix hears of the client's EHLO argument (XCLIENT HELO= and the EHLO after it): a
    domain or an address literal, never anything else the client wrote."""

    @classmethod
    def setUpClass(cls):
        cls.postfix = RecordingForwarder(int(backend_env()["BACKEND_SUBMISSION_PORT"]))
        cls.gateway = Gateway(smtp_backend_address="127.0.0.1:%d" % cls.postfix.port)
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gateway.stop()
        finally:
            cls.postfix.close()

    def introduced_as(self, name):
        """Signs in after `EHLO name` (bytes, sent as they are); returns the XCLIENT line and the
        EHLO line mssgate then sent to Postfix (both before its 235)."""
        before = len(self.postfix.sent())
        with SMTP("127.0.0.1", self.gateway.submission_port, timeout=30) as smtp:
            smtp.starttls(context=client_context("org-hopital"))
            smtp.send(b"EHLO " + name + b"\r\n")
            self.assertEqual(smtp.getreply()[0], 250, name)
            self.assertEqual(smtp.docmd("AUTH", "EXTERNAL =")[0], 235, name)
        lines = self.postfix.sent()[before:].split(b"\r\n")
        xclient = [line for line in lines if line.startswith(b"XCLIENT ")]
        self.assertEqual(len(xclient), 1, lines)
        # The EHLO that follows XCLIENT is the one Postfix keeps for the client.
        ehlo = lines[lines.index(xclient[0]) + 1]
        return xclient[0].decode("latin-1"), ehlo.decode("latin-1")

    def test_a_domain_or_an_address_literal_is_relayed(self):
        for name in ("lps.hopital.test", "[127.0.0.1]", "DESKTOP-4F2K9"):
            xclient, ehlo = self.introduced_as(name.encode())
            self.assertIn(" HELO=%s " % name, xclient)
            self.assertEqual(ehlo, "EHLO " + name)

    def test_anything_else_is_replaced_by_the_clients_address(self):
        for name in (b"lps_hopital", b"x\rRSET", b"a\x0bb", "\u00e9.test".encode(), b"bad>name", b"[999.0.0.1]"):
            xclient, ehlo = self.introduced_as(name)
            self.assertIn(" HELO=[127.0.0.1] ", xclient, name)
            self.assertEqual(ehlo, "EHLO [127.0.0.1]", name)
        self.assertNotIn(b"RSET", self.postfix.sent())
        self.assertNotIn(b"lps_hopital", self.postfix.sent())

if __name__ == "__main__":
    main()
