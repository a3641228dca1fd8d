"""Faults between mssgate and Pro Santé Connect (the test issuer behind a ChaosGate, its TLS
passing through): a sign-in whose token must be asked about gets a temporary failure
(`NO [UNAVAILABLE]`, `454 4.7.0`), never a refusal nor an acceptance; a token validated before
keeps working from the cache, certificate sign-ins too; the failure is not remembered, so the
same token is taken once the issuer answers again; the gateway's memory and descriptors are back."""

import base64
import smtplib
import unittest

from chaos_gate import ChaosGate
from chaos_support import ADMIN, Footprint, asan_env
from harness import (APP_HOPITAL, DOMAIN, Gateway, PscIssuer, RawImap, client_context, ctl, main, xoauth2)

PROFESSIONAL = "810001234567"
PER = "dr.martin@" + DOMAIN
PSC_TIMEOUT = 1.0  # [psc] timeout
UNAVAILABLE = "NO [UNAVAILABLE] Sign-in is temporarily unavailable, try again later"
PATH = "/auth/realms/esante-wallet/protocol/openid-connect"


class PscChaos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.issuer = PscIssuer()
        cls.gate = ChaosGate(cls.issuer.info["port"])
        try:
            base = "https://localhost:%d%s" % (cls.gate.port, PATH)
            extra = 'introspection_url = "%s/token/introspect"\nnegative_cache = "60s"\n' % base
            cls.gateway = Gateway(psc_section=cls.issuer.config(extra=extra), extra_config=ADMIN)
            ctl(cls.gateway.database, "holder", "add", PROFESSIONAL)
            ctl(cls.gateway.database, "holder", "attach", PROFESSIONAL, "dr.martin@" + DOMAIN, "--role", "owner")
            cls.gateway.start(extra_env=asan_env())
        except BaseException:
            cls.gate.close()
            cls.issuer.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gateway.stop()
        finally:
            cls.gate.close()
            cls.issuer.stop()

    def setUp(self):
        self.gateway.mark()
        self.gate.clear()

    def imap_sign_in(self, token):
        """The tagged answer to AUTHENTICATE XOAUTH2 (after the error challenge, if any)."""
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        self.addCleanup(client.close)
        encoded = base64.b64encode(xoauth2(PER, token).encode()).decode()
        client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
        line = client.read_line()
        if line.startswith("+"):
            client.send(b"\r\n")
            line = client.read_line()
        client.close()
        return line

    def smtp_sign_in(self, token):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        self.addCleanup(smtp.close)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(PER, token).encode()).decode())
        if code == 334:
            code, _ = smtp.docmd("")
        smtp.quit()
        return code

    def certificate_sign_in(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        self.addCleanup(client.close)
        _, tagged = client.authenticate_external(APP_HOPITAL)
        client.close()
        return tagged

    def test_issuer_faults_are_temporary_failures_and_the_cache_keeps_serving(self):
        cached = self.issuer.issue(PROFESSIONAL)
        self.assertTrue(self.imap_sign_in(cached).startswith("a1 OK"))
        footprint = None
        # Each fault on the connections to come and on the one kept from the last request.
        faults = [
            ("refused", lambda g: g.refuse("unlisten")),
            ("reset at accept", lambda g: g.refuse("reset")),
            ("stalled", lambda g: g.fault("stall", "down", existing=True)),
            ("reset", lambda g: g.fault("reset", "down", after=1, existing=True)),
            ("truncated", lambda g: g.fault("truncate", "down", after=5, existing=True)),
            ("corrupted", lambda g: g.fault("corrupt", "down", after=10, existing=True)),
            ("trickled", lambda g: g.fault("trickle", "down", rate=5, interval=0.05, existing=True)),
        ]
        unavailable_tokens = []
        for number, (name, apply) in enumerate(faults * 2):
            if number == len(faults):  # after a first round that warms up
                self.gate.clear()
                footprint = Footprint(self.gateway).take()
            with self.subTest(fault=name, round=number // len(faults)):
                self.gate.clear()
                introspections = self.issuer.stats()["introspect"]
                apply(self.gate)
                token = self.issuer.issue(PROFESSIONAL)  # new: only the issuer can tell
                unavailable_tokens.append(token)
                self.assertEqual(self.imap_sign_in(token), "a1 " + UNAVAILABLE)
                self.assertEqual(self.smtp_sign_in(self.issuer.issue(PROFESSIONAL)), 454)
                # Without the issuer: a validated token, from the cache, and certificates.
                self.assertTrue(self.imap_sign_in(cached).startswith("a1 OK"))
                self.assertTrue(self.certificate_sign_in().startswith("a1 OK"))
                self.gateway.wait_for_log(r"event=auth \S+ mechanism=XOAUTH2 result=failed .*"
                                          r"reason=token_check_unavailable:issuer_")
                # Each fault fails the request in its own way; at most the requests' beginnings
                # reach the issuer.
                self.assertLessEqual(self.issuer.stats()["introspect"] - introspections, 2)
        self.gate.clear()
        # The issuer answers again: each token refused for want of an answer is taken now.
        for token in unavailable_tokens:
            self.assertTrue(self.imap_sign_in(token).startswith("a1 OK"))
        footprint.check(self)


if __name__ == "__main__":
    main()
