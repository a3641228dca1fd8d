"""What submission refuses, and the truth the client is told when something fails."""

import base64
import email.utils
import re
import smtplib
import socket
import ssl
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, SMTP, CuttableForwarder, Gateway, GatewayTestCase, assert_smtp_session_ends,
                     backend_env, client_context, ctl, delivered_messages, main, new_marker, wait_for_close,
                     wait_for_delivery)
from recording import RecordingForwarder


def message(sender, recipient, marker, body=b"Bonjour.\r\n"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\n"
            % (sender, recipient, marker.decode(), email.utils.formatdate(), marker.decode())).encode() + body


def authenticated(port, cert="org-hopital"):
    smtp = SMTP("127.0.0.1", port, timeout=30)
    smtp.starttls(context=client_context(cert))
    smtp.ehlo("lps.test")
    code, _ = smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
    assert code == 235
    return smtp


def assert_not_delivered(test, mailbox, marker, wait=2.0):
    time.sleep(wait)
    test.assertEqual(delivered_messages(mailbox, marker), [], "the message must not be delivered")


class SubmissionRefusalTest(GatewayTestCase):
    def test_refuses_auth_and_mail_before_starttls(self):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.docmd("AUTH", "EXTERNAL ="), (530, b"5.7.0 Must issue a STARTTLS command first"))
        self.assertEqual(smtp.docmd("MAIL", "FROM:<%s>" % APP_HOPITAL), (530, b"5.7.0 Must issue a STARTTLS command first"))
        self.assertEqual(smtp.noop(), (250, b"2.0.0 Ok"))
        smtp.quit()

    def test_refuses_mail_before_auth(self):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.docmd("MAIL", "FROM:<%s>" % APP_HOPITAL), (530, b"5.7.0 Authentication required"))
        self.assertEqual(smtp.docmd("DATA"), (530, b"5.7.0 Authentication required"))
        smtp.quit()

    def test_refuses_authentication_without_a_bound_certificate(self):
        for cert, expected in ((None, b"5.7.8 No verified client certificate was presented"),
                               ("cps-dupont", b"5.7.8 This certificate is not registered for any mailbox")):
            smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
            smtp.starttls(context=client_context(cert))
            smtp.ehlo("lps.test")
            self.assertEqual(smtp.docmd("AUTH", "EXTERNAL ="), (535, expected))
            smtp.quit()

    def test_refuses_an_envelope_sender_that_is_not_the_mailbox(self):
        marker = new_marker("envelope")
        with authenticated(self.gateway.submission_port) as smtp:
            session = self.gateway.session_of(smtp.sock)
            with self.assertRaises(smtplib.SMTPSenderRefused) as caught:
                smtp.sendmail(APP_LABO, [APP_LABO], message(APP_LABO, APP_LABO, marker))
            self.assertEqual(caught.exception.smtp_code, 550)
            self.assertEqual(caught.exception.smtp_error, b"5.7.1 Sender address not allowed for this mailbox")
        assert_not_delivered(self, APP_LABO, marker, wait=1.0)
        self.gateway.wait_for_log(r"event=sender_refused session=%s mailbox=%s where=envelope"
                                  % (session, re.escape(APP_HOPITAL)))

    def test_refuses_a_from_header_that_is_not_the_mailbox_and_sends_nothing(self):
        marker = new_marker("header")
        with authenticated(self.gateway.submission_port) as smtp:
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_LABO, APP_LABO, marker))
            self.assertEqual(caught.exception.smtp_code, 550)
            self.assertEqual(caught.exception.smtp_error, b"5.7.1 From header must be the authenticated mailbox")
            # The session goes on, and a correct message passes.
            good = new_marker("after")
            smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, good))
        wait_for_delivery(APP_LABO, good)
        assert_not_delivered(self, APP_LABO, marker, wait=0.5)
        self.gateway.wait_for_log(r"event=message \S+ mailbox=%s message_id=<%s@test> size=\d+ recipients=1 "
                                  r"result=refused reason=from_header" % (re.escape(APP_HOPITAL), marker.decode()))

    def test_bdat_with_a_from_header_not_the_mailbox_is_refused_at_once(self):
        marker = new_marker("bdatfrom")
        sent = message(APP_LABO, APP_LABO, marker)
        with authenticated(self.gateway.submission_port) as smtp:
            smtp.mail(APP_HOPITAL)
            smtp.rcpt(APP_LABO)
            smtp.send(("BDAT %d\r\n" % len(sent)).encode() + sent)
            self.assertEqual(smtp.getreply(), (550, b"5.7.1 From header must be the authenticated mailbox"))
            # The rest of the message finds no transaction, and is read and dropped.
            smtp.send(b"BDAT 5 LAST\r\nabcde")
            self.assertEqual(smtp.getreply(), (503, b"5.5.1 Need MAIL command"))
            self.assertEqual(smtp.noop()[0], 250)
        assert_not_delivered(self, APP_LABO, marker, wait=1.0)

    def test_bdat_without_a_size_ends_the_session(self):
        smtp = authenticated(self.gateway.submission_port)
        smtp.mail(APP_HOPITAL)
        smtp.rcpt(APP_LABO)
        smtp.send(b"BDAT many\r\n")
        assert_smtp_session_ends(self, smtp, (501, b"5.5.4 Syntax: BDAT size [LAST]; closing the connection"))

    def test_a_client_writing_its_chunk_after_a_bad_bdat_still_gets_the_answer(self):
        # The client writes the chunk with the command before it reads, as a client that
        # pipelines BDAT does: the answer must reach it, not a reset from a close with the chunk
        # still arriving.
        smtp = authenticated(self.gateway.submission_port)
        smtp.mail(APP_HOPITAL)
        smtp.rcpt(APP_LABO)
        session = self.gateway.session_of(smtp.sock)
        smtp.sock.settimeout(10)
        smtp.sock.sendall(b"BDAT 3MiB LAST\r\n" + b"x" * (3 << 20))
        assert_smtp_session_ends(self, smtp, (501, b"5.5.4 Syntax: BDAT size [LAST]; closing the connection"))
        self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=bad_bdat" % session)

    def test_an_allowed_extra_sender_may_be_used(self):
        other = "secretariat@test.mssante.fr"
        self.gateway.change_directory("mailbox", "add", other, "--type", "ORG")
        self.gateway.change_directory("mailbox", "allow-sender", APP_HOPITAL, other)
        marker = new_marker("delegated")
        with authenticated(self.gateway.submission_port) as smtp:
            smtp.sendmail(other, [APP_LABO], message(other, APP_LABO, marker))
        wait_for_delivery(APP_LABO, marker)

    def test_refuses_a_declared_size_over_the_cap(self):
        with authenticated(self.gateway.submission_port) as smtp:
            code, text = smtp.docmd("MAIL", "FROM:<%s> SIZE=%d" % (APP_HOPITAL, 31 << 20))
            self.assertEqual((code, text), (552, b"5.3.4 Message size exceeds fixed maximum message size"))

    def test_a_command_line_over_the_cap_is_refused_and_the_session_goes_on(self):
        with authenticated(self.gateway.submission_port) as smtp:
            session = self.gateway.session_of(smtp.sock)
            self.assertEqual(smtp.docmd("NOOP " + "x" * 20000), (500, b"5.5.2 Line too long"))
            self.assertEqual(smtp.noop()[0], 250)
        self.gateway.wait_for_log(r"event=protocol_error session=%s kind=line_too_long" % session)

    def test_commands_pipelined_after_starttls_are_refused(self):
        sock = socket.create_connection(("127.0.0.1", self.gateway.submission_port), timeout=10)
        sock.recv(1000)
        sock.sendall(b"EHLO x\r\n")
        time.sleep(0.2)
        sock.recv(1000)
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<a@b.fr>\r\n")
        # The answer, then the end of the connection; still open after CLOSE_TIMEOUT is a failure.
        how, answer = wait_for_close(sock.recv, sock)
        sock.close()
        self.assertEqual(answer, b"421 4.5.0 STARTTLS must be the last command before the TLS handshake\r\n")
        self.assertIn(how, ("eof", "reset"), "the session is still open after the 421")


class HostileCommandsTest(unittest.TestCase):
    """Command lines with NUL bytes, bare carriage returns, 8-bit bytes or bad base64, too many
    recipients, and messages that try to end early (SMTP smuggling): each gets its answer, the
    session goes on, and what reaches Postfix is recorded to show what never did."""

    MAX_RECIPIENTS = 3

    @classmethod
    def setUpClass(cls):
        cls.postfix = RecordingForwarder(int(backend_env()["BACKEND_SUBMISSION_PORT"]))
        cls.gateway = Gateway(smtp_backend_address="127.0.0.1:%d" % cls.postfix.port,
                              smtp_section="max_recipients = %d" % cls.MAX_RECIPIENTS)
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gateway.stop()
        finally:
            cls.postfix.close()

    def setUp(self):
        self.gateway.mark()

    def answers(self, smtp, lines):
        """Sends each line (bytes, CRLF added) and returns the (code, text) answers."""
        out = []
        for line in lines:
            smtp.send(line + b"\r\n")
            out.append(smtp.getreply())
        return out

    def test_nul_bytes_and_bare_carriage_returns_in_commands_reach_no_one(self):
        before = len(self.postfix.sent())
        with authenticated(self.gateway.submission_port) as smtp:
            session = self.gateway.session_of(smtp.sock)
            self.assertEqual(self.answers(smtp, [
                b"NOOP\x00XCLIENT ADDR=192.0.2.66",
                b"NOOP\rXCLIENT ADDR=192.0.2.66",
                b"MAIL FROM:<%s>\x00 XCLIENT" % APP_HOPITAL.encode(),
                b"MAIL FROM:<app.hopital\x00@test.mssante.fr>",
                b"MAIL FROM:<%s>\r XCLIENT" % APP_HOPITAL.encode(),
            ]), [(500, b"5.5.2 Command unrecognized"), (500, b"5.5.2 Command unrecognized"),
                 (501, b"5.5.4 Syntax: MAIL FROM:<address> [parameters]"),
                 (501, b"5.5.4 Syntax: MAIL FROM:<address> [parameters]"),
                 (501, b"5.5.4 Syntax: MAIL FROM:<address> [parameters]")])
            smtp.mail(APP_HOPITAL)
            self.assertEqual(self.answers(smtp, [
                b"RCPT TO:<%s> NOTIFY=NEVER\x00XCLIENT" % APP_LABO.encode(),
                b"RCPT TO:<%s>\rXCLIENT" % APP_LABO.encode(),
            ]), [(501, b"5.5.4 Syntax: RCPT TO:<address> [parameters]")] * 2)
            # The session goes on: a bare LF ends a command line as CRLF does.
            smtp.send(b"RSET\n")
            self.assertEqual(smtp.getreply(), (250, b"2.0.0 Ok"))
        sent = self.postfix.sent()[before:]
        self.assertNotIn(b"\x00", sent)
        self.assertNotIn(b"XCLIENT ADDR=192.0.2.66", sent)
        self.assertEqual(re.findall(rb"\r(?!\n)", sent), [], "a bare CR reached Postfix")
        self.gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=quit" % session)

    def test_mail_goes_with_the_first_recipient_and_a_message_in_hand_as_one_bdat(self):
        # Postfix offers PIPELINING and CHUNKING: MAIL waits for the first RCPT and goes with it,
        # and a message whole when its header is checked goes as one BDAT, not stuffed.
        marker = new_marker("pipelined")
        body = b"Bonjour.\r\n.une ligne qui commence par un point\r\n"
        sent = message(APP_HOPITAL, APP_LABO, marker, body)
        before = len(self.postfix.sent())
        with authenticated(self.gateway.submission_port) as smtp:
            self.assertEqual(smtp.sendmail(APP_HOPITAL, [APP_LABO], sent), {})
        to_postfix = self.postfix.sent()[before:]
        # (smtplib declares the SIZE.)
        self.assertRegex(to_postfix, rb"MAIL FROM:<%s> size=%d\r\nRCPT TO:<%s>\r\n"
                         % (re.escape(APP_HOPITAL.encode()), len(sent), re.escape(APP_LABO.encode())))
        self.assertIn(b"BDAT %d LAST\r\n" % len(sent) + sent, to_postfix)
        self.assertNotIn(b"DATA\r\n", to_postfix)
        delivered = wait_for_delivery(APP_LABO, marker)
        self.assertIn(b"\n.une ligne qui commence par un point\n", delivered[0])

    def test_a_sender_postfix_refuses_is_answered_at_the_first_recipient(self):
        marker = new_marker("refused-sender")
        with authenticated(self.gateway.submission_port) as smtp:
            # mssgate knows RET (DSN); its value is Postfix's to judge, with the first RCPT.
            self.assertEqual(smtp.docmd("MAIL", "FROM:<%s> RET=NEVER" % APP_HOPITAL), (250, b"2.1.0 Sender OK"))
            self.assertEqual(smtp.rcpt(APP_LABO), (501, b"5.5.4 Sender refused by the mail system"))
            self.assertEqual(smtp.rcpt(APP_LABO), (501, b"5.5.4 Sender refused by the mail system"))
            self.assertEqual(smtp.docmd("DATA"), (554, b"5.5.1 No valid recipients"))
            self.assertEqual(smtp.rset(), (250, b"2.0.0 Ok"))
            # The session goes on: the next transaction is Postfix's to accept.
            self.assertEqual(smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, marker)), {})
        wait_for_delivery(APP_LABO, marker)

    def test_eight_bit_addresses_are_refused_without_smtputf8(self):
        with authenticated(self.gateway.submission_port) as smtp:
            session = self.gateway.session_of(smtp.sock)
            # Not the mailbox, whatever it looks like.
            smtp.send("MAIL FROM:<app.h\u00f4pital@test.mssante.fr>\r\n".encode())
            self.assertEqual(smtp.getreply(), (550, b"5.7.1 Sender address not allowed for this mailbox"))
            smtp.mail(APP_HOPITAL)
            smtp.send("RCPT TO:<d\u00e9st@test.mssante.fr>\r\n".encode())
            # Postfix refuses it (no SMTPUTF8 was declared); the client gets mssgate's own text.
            self.assertEqual(smtp.getreply(), (550, b"5.1.1 Recipient refused by the mail system"))
            self.assertEqual(smtp.rset()[0], 250)
        self.gateway.wait_for_log(r"event=sender_refused session=%s mailbox=%s where=envelope"
                                  % (session, re.escape(APP_HOPITAL)))

    def test_bad_base64_in_auth_is_a_failed_sign_in(self):
        smtp = SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        session = self.gateway.session_of(smtp.sock)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.docmd("AUTH", "EXTERNAL !!!!"), (501, b"5.5.2 Invalid SASL EXTERNAL response"))
        encoded = base64.b64encode(b"app.labo@test.mssante.fr\x00" + APP_HOPITAL.encode()).decode()
        self.assertEqual(smtp.docmd("AUTH", "EXTERNAL " + encoded), (501, b"5.5.2 Invalid SASL EXTERNAL response"))
        # Two failures: the third ends the session; a good sign-in is still taken before it.
        self.assertEqual(smtp.docmd("AUTH", "EXTERNAL =")[0], 235)
        smtp.quit()
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=EXTERNAL result=failed reason=bad_base64" % session)
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=EXTERNAL result=failed reason=invalid_authzid"
                                  % session)

    def test_recipients_over_the_cap_are_refused_and_the_message_goes_to_the_others(self):
        marker = new_marker("recipients")
        with authenticated(self.gateway.submission_port) as smtp:
            smtp.mail(APP_HOPITAL)
            for _ in range(self.MAX_RECIPIENTS):
                self.assertEqual(smtp.rcpt(APP_LABO)[0], 250)
            self.assertEqual(smtp.rcpt(APP_LABO), (452, b"4.5.3 Too many recipients"))
            self.assertEqual(smtp.data(message(APP_HOPITAL, APP_LABO, marker))[0], 250)
        wait_for_delivery(APP_LABO, marker)

    def test_a_message_cannot_end_early_and_smuggle_another(self):
        # Each of these ends a message for some server, never for mssgate (RFC 5321 §4.1.1.4:
        # only CRLF . CRLF): what follows is the message's text, delivered in it. Small, the
        # message reaches Postfix as one BDAT; padded past one read, as DATA, stuffed again.
        for padding in (0, 100_000):
            with self.subTest(padding=padding):
                before = len(self.postfix.sent())
                self.smuggle((b"x" * 70 + b"\r\n") * (padding // 72))
                went_as_bdat = re.search(rb"\r\nBDAT \d+ LAST\r\n", self.postfix.sent()[before:]) is not None
                self.assertEqual(went_as_bdat, padding == 0)

    def smuggle(self, padding):
        marker, smuggled = new_marker("outer"), new_marker("smuggled")
        endings = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r\r\n"]
        body = b"Bonjour.\r\n" + padding
        for i, ending in enumerate(endings):
            body += (b"text" + ending + b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nFrom: %s\r\n"
                     b"Subject: %s-%d\r\n\r\nsmuggled\r\n" % (APP_LABO.encode(), APP_LABO.encode(),
                                                              APP_LABO.encode(), smuggled, i))
        sent = message(APP_HOPITAL, APP_LABO, marker, body)
        with authenticated(self.gateway.submission_port) as smtp:
            smtp.mail(APP_HOPITAL)
            smtp.rcpt(APP_LABO)
            self.assertEqual(smtp.docmd("DATA")[0], 354)
            smtp.send(sent + b"\r\n.\r\n")
            code, text = smtp.getreply()
            self.assertEqual(code, 250, text)
            self.assertEqual(smtp.noop(), (250, b"2.0.0 Ok"), "the smuggled commands were answered")
        delivered = wait_for_delivery(APP_LABO, marker)
        self.assertEqual(len(delivered), 1)
        time.sleep(1.0)
        found = delivered_messages(APP_LABO, smuggled)
        self.assertEqual(len(found), 1, "a smuggled message was delivered on its own")
        self.assertIn(marker, found[0])
        for i in range(len(endings)):
            self.assertIn(b"Subject: %s-%d" % (smuggled, i), found[0])


class SizeCapTest(unittest.TestCase):
    def test_a_message_over_the_cap_is_refused_while_streaming_and_nothing_is_delivered(self):
        with Gateway(max_message_bytes="1MiB") as gateway:
            marker = new_marker("toolarge")
            with authenticated(gateway.submission_port) as smtp:
                # No SIZE parameter (sendmail would declare it): the cap is met while streaming.
                smtp.mail(APP_HOPITAL)
                smtp.rcpt(APP_LABO)
                code, text = smtp.data(message(APP_HOPITAL, APP_LABO, marker, b"0123456789\r\n" * 200000))
                self.assertEqual((code, text), (552, b"5.3.4 Message size exceeds fixed maximum message size"))
                # The backend transaction was abandoned; the next one uses a fresh connection.
                good = new_marker("next")
                smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, good))
            wait_for_delivery(APP_LABO, good)
            assert_not_delivered(self, APP_LABO, marker)
            gateway.wait_for_log(r"message_id=<%s@test> size=\d+ recipients=1 result=refused reason=too_large" % marker.decode())


    def test_a_message_far_over_the_cap_ends_the_session_without_reading_it_all(self):
        with Gateway(max_message_bytes="1MiB") as gateway:
            smtp = authenticated(gateway.submission_port)
            smtp.mail(APP_HOPITAL)
            smtp.rcpt(APP_LABO)
            self.assertEqual(smtp.docmd("DATA")[0], 354)
            session = gateway.session_of(smtp.sock)
            # The gateway reads up to 3 MiB, answers, then reads and drops at most 4 MiB more
            # before it closes: the sending ends on the reset (or broken pipe) that closing with
            # unread data causes, well before 64 MiB. A send that times out (the gateway stopped
            # reading but kept the connection) is a failure.
            smtp.sock.settimeout(10)
            sent = 0
            with self.assertRaises((ConnectionError, ssl.SSLError), msg="mssgate read 64 MiB without closing"):
                while sent < (64 << 20):
                    smtp.sock.sendall(b"x" * 1000 + b"\r\n" * 31000)
                    sent += 63000
            gateway.wait_for_log(r"event=close session=%s mailbox=\S+ reason=message_too_large" % session)
            # The answer came before the reset: it is in the client's receive buffer.
            too_large = (552, b"5.3.4 Message size exceeds fixed maximum message size; closing the connection")
            assert_smtp_session_ends(self, smtp, too_large)
            # BDAT announcing too much is refused before it is read, and ends the session too.
            smtp = authenticated(gateway.submission_port)
            smtp.mail(APP_HOPITAL)
            smtp.rcpt(APP_LABO)
            smtp.send(b"BDAT 999999999 LAST\r\n")
            assert_smtp_session_ends(self, smtp, too_large)


class TruthfulFailureTest(unittest.TestCase):
    def test_backend_dying_during_data_gives_a_temporary_failure_and_no_delivery(self):
        forwarder = CuttableForwarder(int(backend_env()["BACKEND_SUBMISSION_PORT"]))
        try:
            with Gateway(smtp_backend_address="127.0.0.1:%d" % forwarder.port) as gateway:
                marker = new_marker("cut")
                with authenticated(gateway.submission_port) as smtp:
                    forwarder.cut_after = 200_000  # well inside the message's DATA
                    with self.assertRaises(smtplib.SMTPDataError) as caught:
                        smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, marker, b"0123456789\r\n" * 100000))
                    self.assertEqual(caught.exception.smtp_code, 451)
                    self.assertTrue(caught.exception.smtp_error.startswith(b"4.4.2 "))
                    self.assertEqual(forwarder.cuts, 1)
                    # Once the backend is back, the same session sends again.
                    forwarder.cut_after = None
                    good = new_marker("retry")
                    smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, good))
                wait_for_delivery(APP_LABO, good)
                assert_not_delivered(self, APP_LABO, marker, wait=3.0)
                gateway.wait_for_log(r"message_id=<%s@test> size=\d+ recipients=1 result=failed reason=backend_lost"
                                     % marker.decode())
        finally:
            forwarder.close()

    def test_an_idle_backend_connection_closed_by_postfix_is_reopened_for_the_next_message(self):
        forwarder = CuttableForwarder(int(backend_env()["BACKEND_SUBMISSION_PORT"]))
        try:
            with Gateway(smtp_backend_address="127.0.0.1:%d" % forwarder.port) as gateway:
                marker = new_marker("reopened")
                with authenticated(gateway.submission_port) as smtp:
                    forwarder.drop_all()
                    time.sleep(0.2)
                    self.assertEqual(smtp.sendmail(APP_HOPITAL, [APP_LABO], message(APP_HOPITAL, APP_LABO, marker)), {})
                wait_for_delivery(APP_LABO, marker)
                # The same session logged in to Postfix twice.
                gateway.wait_for_log(r"event=backend session=(\w+) result=ok(?s:.*)event=backend session=\1 result=ok")
        finally:
            forwarder.close()

    def test_a_client_silent_in_the_middle_of_data_is_timed_out_and_nothing_is_delivered(self):
        with Gateway() as gateway:
            marker = new_marker("silent")
            smtp = authenticated(gateway.submission_port)
            smtp.mail(APP_HOPITAL)
            smtp.rcpt(APP_LABO)
            self.assertEqual(smtp.docmd("DATA")[0], 354)
            smtp.sock.sendall(message(APP_HOPITAL, APP_LABO, marker, b"partial line\r\n" * 1000))
            start = time.monotonic()
            smtp.sock.settimeout(15)
            self.assertEqual(smtp.sock.recv(100), b"", "mssgate closes the connection")
            self.assertGreaterEqual(time.monotonic() - start, 2.5)  # data_timeout is 3 s
            gateway.wait_for_log(r"event=message \S+ mailbox=%s message_id=<%s@test> \S+ recipients=1 result=aborted "
                                 r"reason=client_gone" % (re.escape(APP_HOPITAL), marker.decode()))
            gateway.wait_for_log(r"reason=client_read_timeout")
            assert_not_delivered(self, APP_LABO, marker, wait=3.0)


if __name__ == "__main__":
    main()
