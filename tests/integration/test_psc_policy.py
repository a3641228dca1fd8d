"""Which Pro Santé Connect tokens mssgate takes, beyond "PSC says it is valid": the LPS clients
they were issued to, their audience, scope, type, acr and amr ([psc] policy); and how much it
asks of PSC when clients send random tokens (the issuer budget). Against the test issuer."""

import base64
import http.client
import json
import math
import os
import re
import signal
import smtplib
import subprocess
import threading
import time
import unittest

from harness import (DOMAIN, MSSGATE, Gateway, GatewayTestCase, PscIssuer, RawImap, client_context, ctl, main,
                     random_jwt, xoauth2)

PROFESSIONAL = "810001234567"
PER = "dr.martin@" + DOMAIN
OTHER_CLIENT = "lps-inconnu"  # a PSC client that is not an LPS of this operator


def setup_directory(gateway):
    ctl(gateway.database, "holder", "add", PROFESSIONAL)
    ctl(gateway.database, "holder", "attach", PROFESSIONAL, PER, "--role", "owner")


def imap_sign_in(port, token, mailbox=PER, client=None, timeout=10):
    """AUTHENTICATE XOAUTH2 (SASL-IR) over implicit TLS. Returns (the RFC 7628 error challenge
    decoded, or None; the tagged answer). The session stays open in `client` when given."""
    own = client is None
    client = client or RawImap(port, implicit_ctx=client_context(), timeout=timeout)
    encoded = base64.b64encode(xoauth2(mailbox, token).encode()).decode()
    client.send(("a1 AUTHENTICATE XOAUTH2 %s\r\n" % encoded).encode())
    line = client.read_line()
    challenge = None
    if line.startswith("+ "):
        challenge = json.loads(base64.b64decode(line[2:]))
        client.send(b"\r\n")
        line = client.read_line()
    if own:
        client.close()
    return challenge, line


def smtp_sign_in(port, token, mailbox=PER):
    """AUTH XOAUTH2 after STARTTLS; the final (code, text), the error challenge answered."""
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(mailbox, token).encode()).decode())
        if code == 334:
            code, text = smtp.docmd("")
        return code, text.decode()
    finally:
        smtp.close()


def metric(gateway, name, **labels):
    """The value of one sample of /metrics (0 when mssgate has not counted it yet)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["admin"], timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    wanted = ",".join('%s="%s"' % item for item in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"(\w+)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == wanted:
            return float(m.group(3))
    return 0.0


class PolicyTestCase(GatewayTestCase):
    """One test issuer and one gateway with the [psc] policy `policy` for the whole class."""

    mode = "introspection"
    policy = ""
    allowed_clients = (PscIssuer.LPS_CLIENT,)

    @classmethod
    def make_gateway(cls):
        gateway = Gateway(psc_section=cls.issuer.config(mode=cls.mode, extra=cls.policy,
                                                        allowed_clients=cls.allowed_clients),
                          extra_config='[admin]\nlisten = ["127.0.0.1:0"]\n')
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

    def setUp(self):
        super().setUp()
        self.issuer.reset()

    def assert_accepted(self, token):
        _, line = imap_sign_in(self.gateway.imaps_port, token)
        self.assertTrue(line.startswith("a1 OK"), line)

    def assert_refused_by_policy(self, token, reason):
        challenge, line = imap_sign_in(self.gateway.imaps_port, token)
        self.assertEqual(line, "a1 NO [AUTHORIZATIONFAILED] This token is not accepted here")
        self.assertEqual(challenge, {"status": "invalid_token", "scope": "openid"})
        self.gateway.wait_for_log(r"event=auth session=\S+ mechanism=XOAUTH2 result=failed reason=token_%s mailbox=%s"
                                  % (reason, re.escape(PER)))


class ClientAllowList(PolicyTestCase):

    def test_a_token_issued_to_another_client_does_not_open_the_mailbox(self):
        refusals = metric(self.gateway, "mssgate_token_refusals_total", reason="client_not_allowed")
        foreign = self.issuer.issue(PROFESSIONAL, azp=OTHER_CLIENT)
        self.assert_refused_by_policy(foreign, "client_not_allowed")
        self.gateway.wait_for_log(r"result=failed reason=token_client_not_allowed mailbox=%s azp=%s"
                                  % (re.escape(PER), OTHER_CLIENT))
        code, text = smtp_sign_in(self.gateway.submission_port, foreign)
        self.assertEqual((code, text), (535, "5.7.8 This token is not accepted here"))
        # The same professional, through the LPS this operator knows, gets in.
        self.assert_accepted(self.issuer.issue(PROFESSIONAL))
        self.assertEqual(smtp_sign_in(self.gateway.submission_port, self.issuer.issue(PROFESSIONAL))[0], 235)
        # One decision: the submission attempt was answered from the cache.
        self.assertEqual(metric(self.gateway, "mssgate_token_refusals_total", reason="client_not_allowed"),
                         refusals + 1)
        self.assertEqual(self.issuer.stats()["introspect"], 3)
        log = self.gateway.log()
        for part in foreign.split("."):
            self.assertNotIn(part, log, "no token in the log")

    def test_the_client_is_read_from_client_id_when_there_is_no_azp(self):
        self.assert_accepted(self.issuer.issue(PROFESSIONAL, azp=None, client_id=PscIssuer.LPS_CLIENT))
        self.assert_refused_by_policy(self.issuer.issue(PROFESSIONAL, azp=None, client_id=OTHER_CLIENT),
                                      "client_not_allowed")
        self.assert_refused_by_policy(self.issuer.issue(PROFESSIONAL, azp=None), "client_not_allowed")

    def test_refresh_and_id_tokens_are_refused(self):
        for typ in ("Refresh", "ID", None):
            self.assert_refused_by_policy(self.issuer.issue(PROFESSIONAL, typ=typ), "type")

    def test_a_token_of_the_wrong_shape_costs_no_introspection(self):
        for garbage in ("not-a-jwt", "a.b.c", random_jwt() + ".x", random_jwt().rsplit(".", 1)[0] + "."):
            _, line = imap_sign_in(self.gateway.imaps_port, garbage)
            self.assertEqual(line, "a1 NO [AUTHENTICATIONFAILED] The token is not valid")
        self.gateway.wait_for_log(r"result=failed reason=token_malformed\n")
        malformed = re.findall(r"result=failed reason=token_malformed\n", self.gateway.log(since=self.gateway.log_start))
        self.assertEqual(len(malformed), 4)
        self.assertEqual(self.issuer.stats()["introspect"], 0)


class AudienceScopeAcrAmr(PolicyTestCase):
    policy = ('required_audience = "mssante-api"\nrequired_scope = "mss"\n'
              'accepted_acr = ["eidas2"]\naccepted_amr = ["card", "otp"]\n')

    def token(self, **changes):
        claims = dict(aud=["mssante-api", "account"], scope="openid mss", acr="eidas2", amr=["card"])
        claims.update(changes)
        return self.issuer.issue(PROFESSIONAL, **claims)

    def test_a_token_keeping_every_rule_opens_the_mailbox(self):
        self.assert_accepted(self.token())
        self.assert_accepted(self.token(aud="mssante-api", amr=["pwd", "otp"]))

    def test_each_rule_broken_is_refused_with_its_reason(self):
        for changes, reason in ((dict(aud="account"), "audience"), (dict(aud=None), "audience"),
                                (dict(scope="openid mss_read"), "scope"), (dict(acr="eidas1"), "acr"),
                                (dict(acr=None), "acr"), (dict(amr=["pwd"]), "amr"),
                                (dict(azp=OTHER_CLIENT), "client_not_allowed")):
            with self.subTest(reason=reason, changes=changes):
                self.assert_refused_by_policy(self.token(**changes), reason)


class JwtMode(PolicyTestCase):
    mode = "jwt"

    def test_the_policy_is_checked_before_userinfo_and_a_forged_token_asks_nothing(self):
        self.assert_accepted(self.issuer.issue(PROFESSIONAL))  # the key set is loaded
        self.issuer.reset()
        self.assert_refused_by_policy(self.issuer.issue(PROFESSIONAL, azp=OTHER_CLIENT, include_subject=False),
                                      "client_not_allowed")
        self.assertEqual(self.issuer.stats()["userinfo"], 0, "refused before userinfo")
        self.assert_accepted(self.issuer.issue(PROFESSIONAL, include_subject=False))
        self.assertEqual(self.issuer.stats()["userinfo"], 1)
        # A forged signature (the issuer's key id): refused against the cached keys.
        header, payload, signature = self.issuer.issue(PROFESSIONAL).split(".")
        forged = header + "." + payload + "." + ("B" if signature[0] == "A" else "A") + signature[1:]
        _, line = imap_sign_in(self.gateway.imaps_port, forged)
        self.assertIn("NO [AUTHENTICATIONFAILED]", line)
        stats = self.issuer.stats()
        self.assertEqual((stats["certs"], stats["userinfo"], stats["introspect"]), (0, 1, 0))


class PolicyReload(unittest.TestCase):
    def test_a_cached_token_is_refused_once_a_reload_changes_the_policy(self):
        # Before and after each reload, the same token: taken, refused, taken again.
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = Gateway(psc_section=issuer.config())
        setup_directory(gateway)
        gateway.start()
        self.addCleanup(gateway.stop)
        token = issuer.issue(PROFESSIONAL)
        for _ in range(2):
            _, line = imap_sign_in(gateway.imaps_port, token)
            self.assertTrue(line.startswith("a1 OK"), line)
        self.assertEqual(issuer.stats()["introspect"], 1, "the second sign-in came from the cache")

        def reload_with(clients):
            with open(gateway.config_path) as f:
                text = f.read()
            text, count = re.subn(r"allowed_clients = \[[^\]]*\]", "allowed_clients = [%s]" % clients, text)
            self.assertEqual(count, 1)
            with open(gateway.config_path, "w") as f:
                f.write(text)
            since = gateway.log_size()
            gateway.process.send_signal(signal.SIGHUP)
            return gateway.wait_for_log(r"event=reloaded .*", since=since).group(0)

        # A session opened before the reload and signing in after it gets the new policy too.
        opened_before = RawImap(gateway.imaps_port, implicit_ctx=client_context())
        self.addCleanup(opened_before.close)
        self.assertIn("psc_cache=new", reload_with('"%s"' % OTHER_CLIENT))
        _, line = imap_sign_in(gateway.imaps_port, token)
        self.assertEqual(line, "a1 NO [AUTHORIZATIONFAILED] This token is not accepted here")
        _, line = imap_sign_in(None, token, client=opened_before)
        self.assertEqual(line, "a1 NO [AUTHORIZATIONFAILED] This token is not accepted here")
        self.assertIn("psc_cache=new", reload_with('"%s", "%s"' % (OTHER_CLIENT, PscIssuer.LPS_CLIENT)))
        _, line = imap_sign_in(gateway.imaps_port, token)
        self.assertTrue(line.startswith("a1 OK"), line)
        self.assertEqual(issuer.stats()["introspect"], 3)


class ClientListWarnings(unittest.TestCase):
    def start(self, issuer, clients):
        gateway = Gateway(psc_section=issuer.config(allowed_clients=clients))
        setup_directory(gateway)
        gateway.start()
        self.addCleanup(gateway.stop)
        return gateway

    def test_no_client_allowed_refuses_every_token_and_check_config_says_so(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = self.start(issuer, None)
        gateway.wait_for_log(r'event=config_warning key=psc.allowed_clients warning="is empty: every Pro Sante '
                             r'Connect token will be refused', since=0)
        _, line = imap_sign_in(gateway.imaps_port, issuer.issue(PROFESSIONAL))
        self.assertEqual(line, "a1 NO [AUTHORIZATIONFAILED] This token is not accepted here")
        check = subprocess.run([MSSGATE, "--check-config", gateway.config_path], capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("mssgate: warning: psc.allowed_clients: is empty: every Pro Sante Connect token will be "
                      "refused", check.stderr)

    def test_a_star_takes_any_client_and_is_logged_as_a_warning(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = self.start(issuer, ("*",))
        gateway.wait_for_log(r'event=config_warning key=psc.allowed_clients warning="has \\"\*\\": a token issued '
                             r'to any PSC client is accepted', since=0)
        _, line = imap_sign_in(gateway.imaps_port, issuer.issue(PROFESSIONAL, azp=OTHER_CLIENT))
        self.assertTrue(line.startswith("a1 OK"), line)


class IssuerBudget(PolicyTestCase):
    """Random tokens must not turn into as many requests to PSC."""

    IN_FLIGHT, PER_SECOND, BURST = 4, 2, 10
    policy = ("issuer_max_in_flight = %d\nissuer_max_per_second = %d\nissuer_burst = %d\n"
              % (IN_FLIGHT, PER_SECOND, BURST))
    SESSIONS, TOKENS = 200, 3

    def attack(self, session_answers, paused, resume):
        """One session trying TOKENS random tokens, its answers appended; before the last one it
        says it is `paused` and waits for `resume` (with a NOOP each second: the login timeout)."""
        try:
            client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context(), timeout=30)
            try:
                for i in range(self.TOKENS):
                    if i == self.TOKENS - 1:
                        paused.release()
                        deadline = time.monotonic() + 60
                        while not resume.wait(1.0) and time.monotonic() < deadline:
                            client.command("n", "NOOP")
                    session_answers.append(imap_sign_in(None, random_jwt(), client=client)[1])
            finally:
                client.close()
        except Exception as e:  # noqa: BLE001 - reported as an answer, checked below
            session_answers.append("error: %r" % e)

    def budget_refusals(self):
        return sum(metric(self.gateway, "mssgate_issuer_budget_refusals_total", endpoint="introspection", limit=limit)
                   for limit in ("rate", "in_flight"))

    def test_submission_gets_its_temporary_failure_when_the_budget_is_spent(self):
        smtp = smtplib.SMTP("127.0.0.1", self.gateway.submission_port, timeout=20)
        self.addCleanup(smtp.close)
        smtp.starttls(context=client_context())
        smtp.ehlo("lps.test")
        # IN_FLIGHT sign-ins wait for a slow issuer: no request may start until one ends.
        self.issuer.mode("slow", 3)
        slow = [threading.Thread(target=imap_sign_in, args=(self.gateway.imaps_port, random_jwt()),
                                 kwargs={"timeout": 30}) for _ in range(self.IN_FLIGHT)]
        for t in slow:
            t.start()
        deadline = time.monotonic() + 10
        while self.issuer.stats()["introspect"] < self.IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.issuer.stats()["introspect"], self.IN_FLIGHT)
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(PER, random_jwt()).encode()).decode())
        for t in slow:
            t.join(30)
        self.issuer.mode("normal")
        self.assertEqual(self.issuer.stats()["introspect"], self.IN_FLIGHT, "the refused sign-in asked nothing")
        self.assertEqual((code, text.decode()), (454, "4.7.0 Mail service temporarily unavailable, try again later"))
        self.gateway.wait_for_log(r"event=issuer_budget_spent endpoint=introspection limit=in_flight")
        # The issuer still answers the requests mssgate gave up on: let it finish them first.
        deadline = time.monotonic() + 10
        while self.issuer.stats()["introspect_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)

    def test_two_hundred_sessions_of_random_tokens_stay_within_the_budget(self):
        cached = self.issuer.issue(PROFESSIONAL)
        self.assert_accepted(cached)  # validated once, now answered from the cache
        self.issuer.reset()
        budget_refusals_before = self.budget_refusals()
        self.issuer.mode("slow", 0.2)  # requests last: the cap on requests in flight is put to use
        # The bucket holds at most BURST requests now, and gains PER_SECOND each second.
        start = time.monotonic()
        answers = [[] for _ in range(self.SESSIONS)]
        paused, resume = threading.Semaphore(0), threading.Event()
        threads = [threading.Thread(target=self.attack, args=(answers[i], paused, resume))
                   for i in range(self.SESSIONS)]
        for t in threads:
            t.start()
        # Every session has tried all its tokens but one, and waits: the budget is spent. A token
        # already validated signs in all the same, from the cache.
        for _ in threads:
            self.assertTrue(paused.acquire(timeout=60), "an attacking session did not get this far")
        spent_before = sum(1 for session in answers for a in session if "[UNAVAILABLE]" in a)
        try:
            during = imap_sign_in(self.gateway.imaps_port, cached, timeout=30)[1]
        finally:
            resume.set()
        for t in threads:
            t.join(60)
        introspections = self.issuer.stats()
        elapsed = time.monotonic() - start
        self.issuer.mode("normal")
        flat = [answer for session in answers for answer in session]
        unavailable = sum(1 for a in flat if a == "a1 NO [UNAVAILABLE] Sign-in is temporarily unavailable, try again later")
        refused = sum(1 for a in flat if a == "a1 NO [AUTHENTICATIONFAILED] The token is not valid")
        bound = self.BURST + math.ceil(self.PER_SECOND * elapsed)
        print("%d sign-ins in %.1f s: %d introspections (bound %d), at most %d at once; %d refused as invalid, "
              "%d as unavailable; the cached token during the attack (%d refused as unavailable before it): %s"
              % (len(flat), elapsed, introspections["introspect"], bound, introspections["introspect_max_in_flight"],
                 refused, unavailable, spent_before, during[:40]))
        self.assertLessEqual(introspections["introspect"], bound)
        self.assertLessEqual(introspections["introspect_max_in_flight"], self.IN_FLIGHT)
        self.assertEqual(len(flat), self.SESSIONS * self.TOKENS, [a for a in flat if a.startswith("error")][:5])
        self.assertEqual(unavailable + refused, len(flat), sorted(set(flat))[:5])
        self.assertGreater(spent_before, 0, "the budget was spent when the cached token was tried")
        self.assertTrue(during.startswith("a1 OK"), during)
        self.gateway.wait_for_log(r"result=failed reason=token_check_unavailable:issuer_budget")
        self.assertEqual(self.budget_refusals() - budget_refusals_before, unavailable)
        # Afterwards a new good token signs in as soon as the bucket has a request again.
        time.sleep(1.0 / self.PER_SECOND)
        self.assert_accepted(self.issuer.issue(PROFESSIONAL))


if __name__ == "__main__":
    main()
