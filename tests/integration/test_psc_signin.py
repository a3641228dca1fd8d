"""Pro Santé Connect sign-in (XOAUTH2, OAUTHBEARER) through mssgate, against the test issuer."""

import base64
import email.utils
import hashlib
import hmac
import imaplib
import json
import os
import re
import smtplib
import subprocess
import threading
import unittest

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, Gateway, GatewayTestCase, PscIssuer, RawImap, client_context, ctl, main,
                     new_marker, oauthbearer, wait_for_delivery, xoauth2)

PROFESSIONAL = "810001234567"
# RFC 7628 §3.2.2's error, as mssgate sends it before a definitive refusal of a token.
ERROR_CHALLENGE = base64.b64encode(b'{"status":"invalid_token","scope":"openid"}').decode()
OTHER_PROFESSIONAL = "810009876543"
PER = "dr.martin@" + DOMAIN
ORG = "secretariat@" + DOMAIN
CAB = "cabinet@" + DOMAIN
SUSPENDED = "ancien@" + DOMAIN


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_part(value):
    """One part of a compact JWT: `value` as JSON, base64url without padding."""
    return b64url(json.dumps(value).encode())


def smtp_xoauth2(port, mailbox, token):
    """AUTH XOAUTH2 on submission; the final (code, text), the error challenge answered."""
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(mailbox, token).encode()).decode())
        if code == 334:
            code, text = smtp.docmd("")
        smtp.quit()
        return code, text
    finally:
        smtp.close()


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

    def assert_refused(self, mailbox, token, code="AUTHENTICATIONFAILED", text="The token is not valid", reason=None):
        """Both protocols refuse the sign-in with exactly this answer: IMAP `NO [code] text`, after
        RFC 7628's error challenge when the refusal is definitive; submission `535 5.7.8 text`
        (or `454 4.7.0` for a temporary failure); the audit event names `reason` when given."""
        since = self.gateway.log_size()
        client = RawImap(self.gateway.imap_port)
        client.starttls(client_context())
        encoded = base64.b64encode(xoauth2(mailbox, token).encode()).decode()
        client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
        line = client.read_line()
        if code == "UNAVAILABLE":
            self.assertEqual(line, "a1 NO [UNAVAILABLE] Sign-in is temporarily unavailable, try again later")
        else:
            self.assertEqual(line, "+ " + ERROR_CHALLENGE)
            client.send(b"\r\n")
            self.assertEqual(client.read_line(), "a1 NO [%s] %s" % (code, text))
        client.close()
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        answer = smtp.docmd("AUTH", "XOAUTH2 " + encoded)
        if code == "UNAVAILABLE":
            self.assertEqual(answer, (454, b"4.7.0 Mail service temporarily unavailable, try again later"))
        else:
            self.assertEqual(answer, (334, ERROR_CHALLENGE.encode()))
            self.assertEqual(smtp.docmd(""), (535, ("5.7.8 " + text).encode()))
        smtp.quit()
        if reason:
            self.gateway.wait_for_log(r"event=auth \S+ mechanism=XOAUTH2 result=failed reason=%s(?:\s|$)" % reason,
                                      since=since)


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

    def test_refusals(self):
        token = self.issuer.issue(PROFESSIONAL)
        self.assert_refused("patient.test@" + DOMAIN, token, "AUTHORIZATIONFAILED",
                            "This professional may not open that mailbox", "mailbox_not_attached")
        self.assert_refused(SUSPENDED, token, "AUTHORIZATIONFAILED", "The mailbox is not active", "mailbox_suspended")
        self.assert_refused(APP_HOPITAL, token, "AUTHORIZATIONFAILED",
                            "This mailbox does not accept Pro Sante Connect sign-in", "mailbox_type_not_allowed")
        self.assert_refused(PER, self.issuer.issue(PROFESSIONAL, lifetime=-5), reason="token_inactive")
        revoked = self.issuer.issue(PROFESSIONAL)
        self.issuer.revoke(revoked)
        self.assert_refused(PER, revoked, reason="token_inactive")
        # A JWT signed by someone else: the issuer does not know it.
        header, payload, _ = token.split(".")
        self.assert_refused(PER, header + "." + payload + "." + base64.urlsafe_b64encode(b"x" * 256).decode().rstrip("="),
                            reason="token_inactive")

    def test_issuer_down_slow_or_garbage_is_a_temporary_failure_and_certificates_still_work(self):
        for mode, delay in (("down", 0), ("slow", 3), ("garbage", 0), ("error", 0)):
            token = self.issuer.issue(PROFESSIONAL)  # a new token each time: no cache
            self.issuer.mode(mode, delay)
            self.assert_refused(PER, token, "UNAVAILABLE", reason="token_check_unavailable:issuer_\\w+")
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
        self.assert_refused(APP_LABO, tokens[1], "AUTHORIZATIONFAILED", "This professional may not open that mailbox")
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
        # The RSA key's id with ES256: that key never checks an ES256 signature, and the key set
        # just read is not asked for again.
        header, payload, _ = self.issuer.issue(PROFESSIONAL).split(".")
        kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
        es_input = jwt_part({"alg": "ES256", "typ": "JWT", "kid": kid}) + "." + payload
        self.assert_refused(PER, es_input + "." + b64url(os.urandom(64)), reason="token_unknown_key")
        self.assertEqual(self.issuer.stats()["certs"], 1)

    def test_expired_forged_and_foreign_tokens_are_refused(self):
        for token, reason in ((self.issuer.issue(PROFESSIONAL, lifetime=-60), "token_expired"),
                              (self.issuer.issue(PROFESSIONAL, issuer="https://evil.test/realms/x"),
                               "token_wrong_issuer"),
                              (self.issuer.issue(PROFESSIONAL, not_before=600), "token_not_yet_valid")):
            with self.subTest(reason=reason):
                self.assert_refused(PER, token, reason=reason)
        payload = self.issuer.issue(PROFESSIONAL).split(".")[1]
        for alg in ("none", "None", "NONE"):
            with self.subTest(alg=alg):
                header = jwt_part({"alg": alg, "typ": "JWT"})
                self.assert_refused(PER, header + "." + payload + ".", reason="token_unsupported_algorithm")

    def test_a_signature_altered_or_made_with_another_key_or_algorithm_is_refused(self):
        self.sign_in(self.issuer.issue(PROFESSIONAL))[0].close()  # the key set is loaded
        genuine = self.issuer.issue(PROFESSIONAL)
        header, payload, signature = genuine.split(".")
        kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
        self.issuer.reset()
        flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
        self.assert_refused(PER, header + "." + payload + "." + flipped, reason="token_bad_signature")
        # Key confusion: HS256 with the issuer's RSA public key (its PEM) as the HMAC secret.
        public_pem = subprocess.run(["openssl", "pkey", "-in", os.path.join(self.issuer.dir, "issuer-rsa.pem"),
                                     "-pubout"], capture_output=True, check=True).stdout
        hs_input = jwt_part({"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + payload
        mac = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
        self.assert_refused(PER, hs_input + "." + b64url(mac), reason="token_unsupported_algorithm")
        stats = self.issuer.stats()
        self.assertEqual((stats["userinfo"], stats["introspect"]), (0, 0), "PSC was asked about a forged token")

    def test_malformed_and_oversized_tokens_are_refused_before_any_request(self):
        self.sign_in(self.issuer.issue(PROFESSIONAL))[0].close()  # the key set is loaded
        self.issuer.reset()
        genuine = self.issuer.issue(PROFESSIONAL)
        header, payload, signature = genuine.split(".")
        for token in (header + "." + payload.replace("-", "+").replace("_", "/") + "+/." + signature,  # base64
                      jwt_part(["RS256"]) + "." + payload + "." + signature,  # a header that is no object
                      header + "." + payload,  # two parts
                      genuine + ".x"):  # four
            with self.subTest(token=token[:40]):
                self.assert_refused(PER, token, reason="token_malformed")
        # A header of 6 KiB (the token under max_token_bytes, 8 KiB): read, and its signature refused.
        kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
        large = jwt_part({"alg": "RS256", "typ": "JWT", "kid": kid, "x": "a" * 4500}) + "." + payload + "." + signature
        self.assertGreater(len(large), 6000)
        self.assertLess(len(large), 8192)
        code, text = smtp_xoauth2(self.gateway.submission_port, PER, large)
        self.assertEqual((code, text), (535, b"5.7.8 The token is not valid"))
        self.gateway.wait_for_log(r"result=failed reason=token_bad_signature")
        # Over max_token_bytes: refused at sight on submission (its lines take 12 KiB)...
        huge = jwt_part({"alg": "RS256", "typ": "JWT", "kid": kid, "x": "a" * 5800}) + "." + payload + "." + signature
        self.assertGreater(len(huge), 8192)
        self.assertEqual(smtp_xoauth2(self.gateway.submission_port, PER, huge),
                         (535, b"5.7.8 The token is not valid"))
        self.gateway.wait_for_log(r"result=failed reason=token_too_long")
        # ... one that does not fit in a submission line is a line too long...
        longer = jwt_part({"alg": "RS256", "typ": "JWT", "kid": kid, "x": "a" * 9000}) + "." + payload + "." + signature
        self.assertEqual(smtp_xoauth2(self.gateway.submission_port, PER, longer), (500, b"5.5.2 Line too long"))
        # ... and over IMAP's line cap, before it is a token.
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % base64.b64encode(xoauth2(PER, huge).encode()).decode())
                    .encode())
        self.assertEqual(client.read_line(), "* BYE Line too long")
        self.assertTrue(client.closed_by_server())
        stats = self.issuer.stats()
        self.assertEqual((stats["certs"], stats["userinfo"], stats["introspect"]), (0, 0, 0))
        log = self.gateway.log()
        for part in (payload, signature):
            self.assertNotIn(part, log, "a token reached the log")

    def test_bad_sasl_encodings_are_refused_as_such(self):
        token = self.issuer.issue(PROFESSIONAL)
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        session = self.gateway.session_of(client.sock)
        _, tagged = client.command("a1", "AUTHENTICATE XOAUTH2 !!!!")
        self.assertEqual(tagged, "a1 BAD Invalid SASL XOAUTH2 response")
        # A space, or a "!", in the token: not a bearer token (RFC 6750's b64token).
        for tag, bad in (("a2", token[:20] + " " + token[20:]), ("a3", token[:20] + "!!!" + token[20:])):
            encoded = base64.b64encode(xoauth2(PER, bad).encode()).decode()
            _, tagged = client.command(tag, "AUTHENTICATE XOAUTH2 " + encoded)
            self.assertEqual(tagged, tag + " BAD Invalid SASL XOAUTH2 response")
            if tag == "a2":
                # Two failures: the third would end the session.
                client.close()
                client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context())
        client.close()
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=XOAUTH2 result=failed reason=bad_base64" % session)
        self.gateway.wait_for_log(r"event=auth session=%s mechanism=XOAUTH2 result=failed reason=bad_token_syntax"
                                  % session)
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.docmd("AUTH", "OAUTHBEARER !!!!"), (501, b"5.5.2 Invalid SASL OAUTHBEARER response"))
        smtp.quit()

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
