"""Pro Santé Connect sign-in (XOAUTH2, OAUTHBEARER) through mssgate, against the test issuer."""

import base64
import email.utils
import imaplib
import json
import re
import smtplib
import threading
import unittest

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, Gateway, GatewayTestCase, PscIssuer, RawImap, client_context, ctl, main,
                     new_marker, oauthbearer, wait_for_delivery, xoauth2)

PROFESSIONAL = "810001234567"
OTHER_PROFESSIONAL = "810009876543"
PER = "dr.martin@" + DOMAIN
ORG = "secretariat@" + DOMAIN
CAB = "cabinet@" + DOMAIN
SUSPENDED = "ancien@" + DOMAIN


def setup_directory(gateway):
    db = gateway.database
    ctl(db, "mailbox", "add", ORG, "--type", "ORG")
    ctl(db, "mailbox", "add", CAB, "--type", "CAB")
    ctl(db, "mailbox", "add", SUSPENDED, "--type", "PER", "--status", "suspended")
    ctl(db, "holder", "add", PROFESSIONAL, "--label", "Dr Jean Martin")
    ctl(db, "holder", "add", OTHER_PROFESSIONAL)
    ctl(db, "holder", "attach", PROFESSIONAL, PER, "--role", "owner")
    ctl(db, "holder", "attach", "10001234567", ORG, "--role", "delegate")  # the bare RPPS works too
    ctl(db, "holder", "attach", PROFESSIONAL, CAB, "--role", "co-holder")
    ctl(db, "holder", "attach", OTHER_PROFESSIONAL, CAB, "--role", "co-holder")
    ctl(db, "holder", "attach", PROFESSIONAL, SUSPENDED, "--role", "owner")
    ctl(db, "holder", "attach", PROFESSIONAL, APP_HOPITAL, "--role", "delegate")


def message(sender, recipient, marker):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\nBonjour\r\n"
            % (sender, recipient, marker.decode(), email.utils.formatdate(), marker.decode())).encode()


class PscGatewayTestCase(GatewayTestCase):
    """One test issuer and one gateway validating its tokens, for the whole class."""

    psc_mode = "introspection"
    psc_extra = ""

    @classmethod
    def make_gateway(cls):
        gateway = Gateway(psc_section=cls.issuer.config(mode=cls.psc_mode, extra=cls.psc_extra))
        setup_directory(gateway)
        return gateway

    @classmethod
    def setUpClass(cls):
        cls.issuer = PscIssuer()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.issuer.stop()


class PscSignInTest(PscGatewayTestCase):

    def setUp(self):
        super().setUp()
        self.issuer.reset()

    def imap(self, mailbox, token, mechanism="XOAUTH2"):
        imap = imaplib.IMAP4("127.0.0.1", self.gateway.imap_port, timeout=20)
        imap.starttls(client_context())
        encode = xoauth2 if mechanism == "XOAUTH2" else oauthbearer
        imap.authenticate(mechanism, lambda _: encode(mailbox, token).encode())
        return imap

    def smtp(self, mailbox, token, mechanism="XOAUTH2"):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        encode = xoauth2 if mechanism == "XOAUTH2" else oauthbearer
        code, _ = smtp.docmd("AUTH", mechanism + " " + base64.b64encode(encode(mailbox, token).encode()).decode())
        self.assertEqual(code, 235)
        return smtp

    def test_advertises_the_token_mechanisms(self):
        imap = imaplib.IMAP4("127.0.0.1", self.gateway.imap_port, timeout=20)
        imap.starttls(client_context())
        self.assertIn("AUTH=XOAUTH2", imap.capabilities)
        self.assertIn("AUTH=OAUTHBEARER", imap.capabilities)
        imap.logout()
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.esmtp_features["auth"].split(), ["EXTERNAL", "XOAUTH2", "OAUTHBEARER"])
        smtp.quit()

    def test_a_professional_opens_the_personal_organisational_and_cabinet_mailboxes(self):
        token = self.issuer.issue(PROFESSIONAL)
        for mailbox, mechanism in ((PER, "XOAUTH2"), (ORG, "OAUTHBEARER"), (CAB, "XOAUTH2")):
            imap = self.imap(mailbox, token, mechanism)
            self.assertEqual(imap.select("INBOX")[0], "OK")
            imap.logout()
            marker = new_marker("psc")
            with self.smtp(mailbox, token, mechanism) as smtp:
                self.assertEqual(smtp.sendmail(mailbox, [APP_LABO], message(mailbox, APP_LABO, marker)), {})
            wait_for_delivery(APP_LABO, marker)
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=OAUTHBEARER result=ok mailbox=%s professional=%s azp=lps-test"
                                  % (re.escape(ORG), PROFESSIONAL))
        self.assertEqual(self.issuer.stats()["introspect"], 1, "one token, one introspection")

    def test_sasl_ir_and_the_error_challenge_on_imap(self):
        token = self.issuer.issue(PROFESSIONAL)
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        encoded = base64.b64encode(xoauth2(APP_LABO, token).encode()).decode()
        client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
        challenge = client.read_line()
        self.assertTrue(challenge.startswith("+ "), challenge)
        self.assertEqual(json.loads(base64.b64decode(challenge[2:])), {"status": "invalid_token", "scope": "openid"})
        client.send(b"\r\n")
        _, tagged = client.read_until_tagged("a1")
        self.assertEqual(tagged, "a1 NO [AUTHORIZATIONFAILED] This professional may not open that mailbox")
        client.send(("a2 AUTHENTICATE XOAUTH2 %s\r\n" % base64.b64encode(xoauth2(PER, token).encode()).decode()).encode())
        _, tagged = client.read_until_tagged("a2")
        self.assertTrue(tagged.startswith("a2 OK [CAPABILITY"), tagged)
        client.close()

    def assert_refused(self, mailbox, token, code="AUTHENTICATIONFAILED", text=None):
        imap = imaplib.IMAP4("127.0.0.1", self.gateway.imap_port, timeout=20)
        imap.starttls(client_context())
        with self.assertRaises(imaplib.IMAP4.error) as caught:
            imap.authenticate("XOAUTH2", lambda challenge: b"" if challenge else xoauth2(mailbox, token).encode())
        self.assertIn("[%s]" % code, str(caught.exception))
        if text:
            self.assertIn(text, str(caught.exception))
        imap.logout()
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        code_smtp, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(mailbox, token).encode()).decode())
        if code_smtp == 334:  # the error challenge: answered with an empty line
            code_smtp, _ = smtp.docmd("")
        self.assertEqual(code_smtp, 454 if code == "UNAVAILABLE" else 535)
        smtp.quit()

    def test_refusals(self):
        token = self.issuer.issue(PROFESSIONAL)
        self.assert_refused("patient.test@" + DOMAIN, token, "AUTHORIZATIONFAILED", "may not open that mailbox")
        self.assert_refused(SUSPENDED, token, "AUTHORIZATIONFAILED", "not active")
        self.assert_refused(APP_HOPITAL, token, "AUTHORIZATIONFAILED", "does not accept Pro Sante Connect")
        self.assert_refused(PER, self.issuer.issue(PROFESSIONAL, lifetime=-5), text="The token is not valid")
        revoked = self.issuer.issue(PROFESSIONAL)
        self.issuer.revoke(revoked)
        self.assert_refused(PER, revoked, text="The token is not valid")
        # A JWT signed by someone else: the issuer does not know it.
        header, payload, _ = token.split(".")
        self.assert_refused(PER, header + "." + payload + "." + base64.urlsafe_b64encode(b"x" * 256).decode().rstrip("="))
        self.gateway.wait_for_log(r"result=failed reason=token_inactive")

    def test_issuer_down_slow_or_garbage_is_a_temporary_failure_and_certificates_still_work(self):
        for mode, delay in (("down", 0), ("slow", 3), ("garbage", 0), ("error", 0)):
            token = self.issuer.issue(PROFESSIONAL)  # a new token each time: no cache
            self.issuer.mode(mode, delay)
            self.assert_refused(PER, token, "UNAVAILABLE")
            client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
            _, tagged = client.authenticate_external(APP_HOPITAL)
            self.assertIn("a1 OK", tagged, "certificate sign-in goes on while the issuer is " + mode)
            client.close()
        self.issuer.mode("normal")
        self.gateway.wait_for_log(r"reason=token_check_unavailable:issuer_unreachable")
        self.gateway.wait_for_log(r"reason=token_check_unavailable:issuer_answer_malformed")

    def test_a_hundred_sign_ins_with_one_token_cost_one_introspection(self):
        token = self.issuer.issue(PROFESSIONAL)
        for _ in range(100):
            smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
            smtp.starttls(context=client_context())
            smtp.ehlo("lps.test")
            self.assertEqual(smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(PER, token).encode()).decode())[0], 235)
            smtp.quit()
        self.assertEqual(self.issuer.stats()["introspect"], 1)

    def test_concurrent_sign_ins_with_one_token_share_one_introspection(self):
        token = self.issuer.issue(PROFESSIONAL)
        self.issuer.mode("slow", 0.5)
        results = []

        def sign_in():
            imap = self.imap(PER, token)
            results.append(imap.select("INBOX")[0])
            imap.logout()

        threads = [threading.Thread(target=sign_in) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.issuer.mode("normal")
        self.assertEqual(results, ["OK"] * 8)
        self.assertEqual(self.issuer.stats()["introspect"], 1)

    def test_no_token_reaches_the_log(self):
        tokens = [self.issuer.issue(PROFESSIONAL) for _ in range(2)]
        self.imap(PER, tokens[0]).logout()
        self.assert_refused(APP_LABO, tokens[1], "AUTHORIZATIONFAILED")
        log = self.gateway.log()
        for token in tokens:
            for part in token.split("."):
                self.assertNotIn(part, log)


class PscMutualTlsTest(unittest.TestCase):
    def test_introspection_authenticated_by_client_certificate(self):
        issuer = PscIssuer()
        try:
            gateway = Gateway(psc_section=issuer.config(client_certificate="org-labo"))
            setup_directory(gateway)
            with gateway:
                client = RawImap(gateway.imaps_port, implicit_ctx=client_context())
                encoded = base64.b64encode(xoauth2(PER, issuer.issue(PROFESSIONAL)).encode()).decode()
                _, tagged = client.command("a1", "AUTHENTICATE XOAUTH2 " + encoded)
                self.assertTrue(tagged.startswith("a1 OK"), tagged)
                client.close()
                self.assertEqual(issuer.stats()["mtls"], 1)
        finally:
            issuer.stop()


class PscJwtModeTest(PscGatewayTestCase):
    psc_mode = "jwt"
    psc_extra = 'jwks_min_refresh = "60s"\nmax_sessions_per_professional = 2'

    def sign_in(self, token, mailbox=PER):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        encoded = base64.b64encode(xoauth2(mailbox, token).encode()).decode()
        client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
        line = client.read_line()
        if line.startswith("+"):
            client.send(b"\r\n")
            line = client.read_line()
        return client, line

    def test_rs256_and_es256_tokens_are_checked_locally(self):
        self.issuer.reset()
        for alg in ("RS256", "ES256"):
            client, line = self.sign_in(self.issuer.issue(PROFESSIONAL, alg=alg))
            self.assertTrue(line.startswith("a1 OK"), line)
            client.close()
        self.assertEqual(self.issuer.stats()["introspect"], 0)
        self.assertLessEqual(self.issuer.stats()["certs"], 1)

    def test_an_unknown_key_id_refreshes_the_key_set_once(self):
        self.sign_in(self.issuer.issue(PROFESSIONAL))[0].close()  # keys loaded
        self.issuer.reset()
        for _ in range(5):
            client, line = self.sign_in(self.issuer.issue(PROFESSIONAL, kid="rotated"))
            self.assertIn("NO [AUTHENTICATIONFAILED]", line)
            client.close()
        self.assertEqual(self.issuer.stats()["certs"], 1, "one refresh, not one per request")
        self.gateway.wait_for_log(r"reason=token_unknown_key")

    def test_expired_forged_and_foreign_tokens_are_refused(self):
        for token in (self.issuer.issue(PROFESSIONAL, lifetime=-60),
                      self.issuer.issue(PROFESSIONAL, issuer="https://evil.test/realms/x"),
                      self.issuer.issue(PROFESSIONAL, not_before=600)):
            client, line = self.sign_in(token)
            self.assertIn("NO [AUTHENTICATIONFAILED] The token is not valid", line)
            client.close()
        none = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + "." + \
            self.issuer.issue(PROFESSIONAL).split(".")[1] + "."
        client, line = self.sign_in(none)
        self.assertIn("NO [AUTHENTICATIONFAILED]", line)
        client.close()
        self.gateway.wait_for_log(r"reason=token_expired")
        self.gateway.wait_for_log(r"reason=token_wrong_issuer")
        self.gateway.wait_for_log(r"reason=token_not_yet_valid")
        self.gateway.wait_for_log(r"reason=token_unsupported_algorithm")

    def test_userinfo_names_the_professional_when_the_token_does_not(self):
        self.issuer.reset()
        client, line = self.sign_in(self.issuer.issue(PROFESSIONAL, include_subject=False))
        self.assertTrue(line.startswith("a1 OK"), line)
        client.close()
        self.assertEqual(self.issuer.stats()["userinfo"], 1)

    def test_sessions_per_professional_are_capped_across_tokens(self):
        held = []
        for _ in range(2):
            client, line = self.sign_in(self.issuer.issue(OTHER_PROFESSIONAL), CAB)
            self.assertTrue(line.startswith("a1 OK"), line)
            held.append(client)
        client, line = self.sign_in(self.issuer.issue(OTHER_PROFESSIONAL), CAB)
        self.assertEqual(line, "a1 NO [LIMIT] Too many sessions for this professional")
        client.close()
        released = held.pop()
        session = self.gateway.session_of(released.sock)
        released.close()
        self.gateway.wait_for_log(r"event=close session=%s mailbox=%s" % (session, re.escape(CAB)))
        import time
        time.sleep(0.3)
        client, line = self.sign_in(self.issuer.issue(OTHER_PROFESSIONAL), CAB)
        self.assertTrue(line.startswith("a1 OK"), line)
        client.close()
        for c in held:
            c.close()


if __name__ == "__main__":
    main()
