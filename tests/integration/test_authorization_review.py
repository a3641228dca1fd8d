"""Authorisation is not forever: sessions already signed in end when the directory withdraws
what let them in (a suspended mailbox, a removed certificate binding, a detached holder), when
their token is revoked at the issuer, and when a token session reaches its maximum age; each
with an authorization_withdrawn event, while the sessions not concerned go on."""

import base64
import imaplib
import smtplib
import time
import unittest

from harness import (APP_HOPITAL, CLOSE_TIMEOUT, DOMAIN, Gateway, GatewayTestCase, PscIssuer, RawImap,
                     client_context, ctl, main, pki, xoauth2)

PROFESSIONAL = "810001234567"
PER = "dr.martin@" + DOMAIN
ORG = "secretariat@" + DOMAIN
# The review runs each second; the directory is read again every 100 ms in the tests.
WITHDRAWAL_BOUND = 3.0


class ReviewTestCase(GatewayTestCase):
    psc_extra = 'token_recheck_interval = "1s"\ncache_max_age = "5m"\n'

    @classmethod
    def make_gateway(cls):
        gateway = Gateway(psc_section=cls.issuer.config(extra=cls.psc_extra))
        db = gateway.database
        ctl(db, "mailbox", "add", ORG, "--type", "ORG")
        ctl(db, "holder", "add", PROFESSIONAL)
        ctl(db, "holder", "attach", PROFESSIONAL, PER, "--role", "owner")
        ctl(db, "holder", "attach", PROFESSIONAL, ORG, "--role", "delegate")
        return gateway

    @classmethod
    def setUpClass(cls):
        cls.issuer = PscIssuer()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.issuer.stop()

    def certificate_imap(self):
        """An IMAP session signed in with org-hopital's certificate, relaying to Dovecot."""
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        _, tagged = client.authenticate_external(APP_HOPITAL)
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        _, tagged = client.command("n1", "NOOP")
        self.assertTrue(tagged.startswith("n1 OK"), tagged)
        return client

    def token_imap(self, mailbox, token):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        encoded = base64.b64encode(xoauth2(mailbox, token).encode()).decode()
        _, tagged = client.command("a1", "AUTHENTICATE XOAUTH2 " + encoded)
        self.assertTrue(tagged.startswith("a1 OK"), tagged)
        return client

    def assert_withdrawn(self, client, reason, since):
        session = self.gateway.session_of(client.sock)
        started = time.monotonic()
        self.assertTrue(client.closed_by_server(timeout=WITHDRAWAL_BOUND),
                        "the session stayed open %.1f s after its authorisation was withdrawn" % WITHDRAWAL_BOUND)
        self.assertLess(time.monotonic() - started, WITHDRAWAL_BOUND)
        self.gateway.wait_for_log(r"event=authorization_withdrawn session=%s reason=%s" % (session, reason),
                                  since=since)
        self.gateway.wait_for_log(r"event=close session=%s .*reason=authorization_withdrawn" % session, since=since)

    def assert_still_open(self, client):
        _, tagged = client.command("n9", "NOOP")
        self.assertTrue(tagged.startswith("n9 OK"), tagged)


class DirectoryWithdrawalTest(ReviewTestCase):

    def test_a_suspended_mailbox_ends_its_sessions_and_no_other(self):
        withdrawn = self.certificate_imap()
        token = self.issuer.issue(PROFESSIONAL)
        other = self.token_imap(PER, token)
        offset = self.gateway.log_size()
        self.gateway.change_directory("mailbox", "set-status", APP_HOPITAL, "suspended")
        try:
            self.assert_withdrawn(withdrawn, "mailbox_suspended", offset)
            self.assert_still_open(other)
        finally:
            self.gateway.change_directory("mailbox", "set-status", APP_HOPITAL, "active")
            withdrawn.close()
            other.close()

    def test_a_removed_binding_ends_the_certificate_session(self):
        client = self.certificate_imap()
        offset = self.gateway.log_size()
        self.gateway.change_directory("certificate", "unbind", APP_HOPITAL, "--cert", pki("org-hopital.crt"))
        try:
            self.assert_withdrawn(client, "certificate_not_registered", offset)
        finally:
            self.gateway.change_directory("certificate", "bind", APP_HOPITAL, "--cert", pki("org-hopital.crt"))
            client.close()
        # Bound again, the certificate signs in again.
        self.certificate_imap().close()

    def test_a_detached_holder_ends_the_token_session_on_that_mailbox_only(self):
        token = self.issuer.issue(PROFESSIONAL)
        on_org = self.token_imap(ORG, token)
        on_per = self.token_imap(PER, token)
        offset = self.gateway.log_size()
        self.gateway.change_directory("holder", "detach", PROFESSIONAL, ORG)
        try:
            self.assert_withdrawn(on_org, "mailbox_not_attached", offset)
            self.assert_still_open(on_per)
        finally:
            self.gateway.change_directory("holder", "attach", PROFESSIONAL, ORG, "--role", "delegate")
            on_org.close()
            on_per.close()

    def test_a_submission_session_ends_too(self):
        smtp = smtplib.SMTP_SSL("127.0.0.1", self.gateway.submissions_port, context=client_context("org-hopital"),
                                timeout=10)
        smtp.ehlo("lps.test")
        code, _ = smtp.docmd("AUTH", "EXTERNAL =")
        self.assertEqual(code, 235)
        session = self.gateway.session_of(smtp.sock)
        offset = self.gateway.log_size()
        self.gateway.change_directory("mailbox", "set-status", APP_HOPITAL, "suspended")
        try:
            self.gateway.wait_for_log(r"event=authorization_withdrawn session=%s reason=mailbox_suspended" % session,
                                      since=offset, timeout=WITHDRAWAL_BOUND)
            with self.assertRaises((smtplib.SMTPServerDisconnected, OSError)):
                smtp.docmd("MAIL", "FROM:<%s>" % APP_HOPITAL)
                smtp.docmd("NOOP")
        finally:
            self.gateway.change_directory("mailbox", "set-status", APP_HOPITAL, "active")
            smtp.close()


class TokenWithdrawalTest(ReviewTestCase):

    def test_a_revoked_token_ends_its_sessions_within_the_recheck_interval(self):
        revoked = self.issuer.issue(PROFESSIONAL)
        kept = self.issuer.issue(PROFESSIONAL)
        client = self.token_imap(PER, revoked)
        other = self.token_imap(ORG, kept)
        # Both sessions are checked again each second while their tokens are alive.
        time.sleep(1.5)
        self.assert_still_open(client)
        before = self.issuer.stats()
        offset = self.gateway.log_size()
        self.issuer.revoke(revoked)
        try:
            self.assert_withdrawn(client, r"token_\w+", offset)
            self.assert_still_open(other)
        finally:
            client.close()
            other.close()
        self.assertGreater(self.issuer.stats().get("introspect", 0), before.get("introspect", 0))


class SessionAgeTest(ReviewTestCase):
    psc_extra = 'max_session_age = "3s"\n'

    def test_a_token_session_ends_at_its_maximum_age_a_certificate_session_does_not(self):
        token = self.issuer.issue(PROFESSIONAL)
        offset = self.gateway.log_size()
        started = time.monotonic()
        client = self.token_imap(PER, token)
        certificate = self.certificate_imap()
        try:
            self.assertTrue(client.closed_by_server(timeout=3.0 + WITHDRAWAL_BOUND))
            elapsed = time.monotonic() - started
            self.assertGreater(elapsed, 2.5, "ended before its maximum age")
            session = self.gateway.session_of(client.sock)
            self.gateway.wait_for_log(r"event=authorization_withdrawn session=%s reason=session_age" % session,
                                      since=offset)
            self.assert_still_open(certificate)
        finally:
            client.close()
            certificate.close()


if __name__ == "__main__":
    main()
