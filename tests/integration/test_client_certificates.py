"""Client certificates are client certificates, and stay valid for as long as a session uses them:
the clientAuth extended key usage is required (unless tls.require_client_auth_eku = false), and a
TLS session resumed from a ticket is refused when its certificate has expired or been revoked
since, or signs in to nothing when its binding was removed."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import APP_HOPITAL, APP_LABO, PKI, Gateway, RawImap, client_context, main, pki
from test_crl import CrlSource, openssl_ca

VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# Both versions are offered, so that tickets of each are tried.
BOTH_VERSIONS = 'max_version = "TLSv1.3"\n'


class Imaps(RawImap):
    """RawImap over implicit TLS, offering `session` to be resumed."""

    def __init__(self, port, ctx, session=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            self.sock = ctx.wrap_socket(sock, server_hostname="localhost", session=session)
        except BaseException:
            sock.close()
            raise
        self.buffer = b""
        self.greeting = self.read_line()


def context(chain, key, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("root.crt"))
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    ctx.load_cert_chain(chain, key)
    return ctx


def sign_in(port, ctx, session=None):
    """Opens APP_HOPITAL with EXTERNAL; returns (tagged answer, the TLS session to resume, whether
    this one was resumed)."""
    client = Imaps(port, ctx, session)
    try:
        _, tagged = client.authenticate_external(APP_HOPITAL)
        reused = client.sock.session_reused
        resumable = client.sock.session
        if tagged.startswith("a1 OK"):
            client.command("z", "LOGOUT")
        return tagged, resumable, reused
    finally:
        client.close()


def assert_refused(test, port, ctx, session, what):
    """Offering `session` gets no signed-in session: the handshake, or its first read, fails."""
    try:
        tagged, _, reused = sign_in(port, ctx, session)
    except (ssl.SSLError, ConnectionError, EOFError):
        return
    test.fail("%s: signed in (%s), session resumed: %s" % (what, tagged, reused))


class ShortLivedCertificate:
    """An organisation certificate from a copy of the test PKI's CA, valid for `seconds`."""

    def __init__(self, work, seconds):
        self.pki = os.path.join(work, "pki")
        shutil.copytree(PKI, self.pki)
        self.key = os.path.join(self.pki, "short.key")
        self.crt = os.path.join(self.pki, "short.crt")
        self.chain = os.path.join(self.pki, "short.chain.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        self.key], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-config", "ca/req.cnf", "-key", self.key, "-subj",
                        "/C=FR/O=HOPITAL TEST/OU=330000000/CN=LPS_TEST_SHORT_LIVED", "-out", "short.csr"],
                       cwd=self.pki, check=True, capture_output=True)
        self.not_after = int(time.time()) + seconds
        openssl_ca(self.pki, "organisations", "-extensions", "v3_organisation", "-in", "short.csr", "-out",
                   self.crt, "-notext", "-enddate", time.strftime("%Y%m%d%H%M%SZ", time.gmtime(self.not_after)))
        with open(self.chain, "wb") as out:
            for part in (self.crt, os.path.join(self.pki, "ca", "organisations", "ca.crt")):
                with open(part, "rb") as f:
                    out.write(f.read())


class ResumedSessions(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mssgate-resume-")
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)

    def start(self, gateway):
        gateway.start()
        self.addCleanup(gateway.stop)
        return gateway

    def resumable_sessions(self, port, chain, key):
        """For each TLS version: a context and a ticket of a session that signed in, after
        checking that a session resumed from it signs in too."""
        tickets = {}
        for version in VERSIONS:
            ctx = context(chain, key, version)
            tagged, session, _ = sign_in(port, ctx)
            self.assertTrue(tagged.startswith("a1 OK"), (version, tagged))
            tagged, session, reused = sign_in(port, ctx, session)
            self.assertTrue(reused, "%s: the session was not resumed: the test proves nothing" % version)
            self.assertTrue(tagged.startswith("a1 OK"), (version, tagged))
            tickets[version] = (ctx, session)
        return tickets

    def test_a_certificate_expired_since_its_ticket_was_issued_is_not_resumed(self):
        certificate = ShortLivedCertificate(self.work, seconds=12)
        gateway = self.start(Gateway(tls_section=BOTH_VERSIONS))
        gateway.change_directory("certificate", "bind", APP_HOPITAL, "--cert", certificate.crt)
        tickets = self.resumable_sessions(gateway.imaps_port, certificate.chain, certificate.key)
        self.assertLess(time.time(), certificate.not_after, "too slow: the certificate expired during the set-up")

        time.sleep(max(0.0, certificate.not_after - time.time()) + 1.5)
        for version, (ctx, session) in tickets.items():
            since = gateway.log_size()
            assert_refused(self, gateway.imaps_port, ctx, session, version)
            gateway.wait_for_log(r'event=tls_ticket_refused certificate_error="certificate has expired" '
                                 r'certificate_sha256=[0-9a-f]{64}', since=since)
            gateway.wait_for_log(r'event=tls_failed \S+ peer=\S+ reason=client_certificate '
                                 r'certificate_error="certificate has expired"', since=since)

    def test_a_certificate_revoked_since_its_ticket_was_issued_is_not_resumed(self):
        source = CrlSource()
        self.addCleanup(source.stop)
        with open(pki("organisations-ca.crl.pem"), "rb") as f:
            source.body = f.read()
        tls = ('crl_urls = ["http://127.0.0.1:%d/organisations.crl"]\ncrl_refresh_interval = "1s"\n'
               'crl_cache_dir = "%s"\n' % (source.port, os.path.join(self.work, "crl-cache")))
        gateway = self.start(Gateway(tls_section=BOTH_VERSIONS + tls))
        gateway.wait_for_log(r"event=crl_updated ")
        tickets = self.resumable_sessions(gateway.imaps_port, pki("org-hopital.chain.pem"), pki("org-hopital.key"))

        # org-hopital revoked by its CA (in a copy of the test PKI), the CRL downloaded.
        copy = os.path.join(self.work, "pki")
        shutil.copytree(PKI, copy)
        time.sleep(1.1)  # the new CRL's lastUpdate must be later than the original's
        openssl_ca(copy, "organisations", "-revoke", "org-hopital.crt", "-crl_reason", "keyCompromise")
        openssl_ca(copy, "organisations", "-gencrl", "-crlexts", "crl_ext", "-out", "new.crl.pem")
        since = gateway.log_size()
        with open(os.path.join(copy, "new.crl.pem"), "rb") as f:
            source.body = f.read()
        gateway.wait_for_log(r"event=tls_context_rebuilt ", since=since)

        for version, (ctx, session) in tickets.items():
            since = gateway.log_size()
            assert_refused(self, gateway.imaps_port, ctx, session, version)
            gateway.wait_for_log(r'event=tls_failed \S+ peer=\S+ reason=client_certificate '
                                 r'certificate_error="certificate revoked"', since=since)

    def test_a_session_cut_without_the_closing_alert_is_resumed(self):
        # Most clients close the socket without TLS's close_notify: their session stays resumable.
        gateway = self.start(Gateway(tls_section=BOTH_VERSIONS))
        for version in VERSIONS:
            ctx = context(pki("org-hopital.chain.pem"), pki("org-hopital.key"), version)
            since = gateway.log_size()
            client = Imaps(gateway.imaps_port, ctx)
            _, tagged = client.authenticate_external(APP_HOPITAL)
            self.assertTrue(tagged.startswith("a1 OK"), (version, tagged))
            session = client.sock.session
            client.sock.close()  # no LOGOUT, no close_notify: the TCP connection ends
            gateway.wait_for_log(r"event=close \S+ mailbox=%s reason=client_closed" % re.escape(APP_HOPITAL),
                                 since=since)
            gateway.wait_for_log(r"event=tls session=\S+ version=%s [^\n]* resumed=no\n" % version, since=since)
            since = gateway.log_size()
            tagged, _, reused = sign_in(gateway.imaps_port, ctx, session)
            self.assertTrue(reused, version)
            self.assertTrue(tagged.startswith("a1 OK"), (version, tagged))
            # The log says which handshakes were resumed.
            gateway.wait_for_log(r"event=tls session=\S+ version=%s [^\n]* resumed=yes\n" % version, since=since)

    def test_a_resumed_session_whose_binding_was_removed_signs_in_to_nothing(self):
        gateway = self.start(Gateway(tls_section=BOTH_VERSIONS))
        tickets = self.resumable_sessions(gateway.imaps_port, pki("org-hopital.chain.pem"), pki("org-hopital.key"))
        gateway.change_directory("certificate", "unbind", APP_HOPITAL, "--cert", pki("org-hopital.crt"))
        for version, (ctx, session) in tickets.items():
            tagged, _, reused = sign_in(gateway.imaps_port, ctx, session)
            # The certificate itself is still good: the session resumes, the directory says no.
            self.assertTrue(reused, version)
            self.assertEqual(tagged, "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any "
                                     "mailbox", version)
        gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=certificate_not_registered "
                             r"mailbox=%s" % re.escape(APP_HOPITAL))


def external_sign_in(gateway, cert):
    """The tagged answer to AUTHENTICATE EXTERNAL over implicit TLS with `cert`."""
    client = RawImap(gateway.imaps_port, implicit_ctx=client_context(cert))
    try:
        return client.authenticate_external()[1]
    finally:
        client.close()


class OrganisationBindings(unittest.TestCase):
    """A binding by organisation identity (the issuer, OU and CN) opens the mailbox to the
    certificate's renewal, with a new key and serial, and to no other service of the structure."""

    def sign_in(self, gateway, cert):
        return external_sign_in(gateway, cert)

    def test_a_renewed_certificate_signs_in_with_no_change_and_another_service_does_not(self):
        gateway = Gateway()
        gateway.start()
        self.addCleanup(gateway.stop)
        self.assertTrue(self.sign_in(gateway, "org-hopital").startswith("a1 OK"))
        not_registered = "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox"
        self.assertEqual(self.sign_in(gateway, "org-hopital-renewed"), not_registered, "bound by its old key only")
        # The binding by key gives way to one by organisation identity, made from the old
        # certificate: the new one (another key, another serial) opens the mailbox.
        gateway.change_directory("certificate", "unbind", APP_HOPITAL, "--cert", pki("org-hopital.crt"))
        bound = gateway.change_directory("certificate", "bind", APP_HOPITAL, "--cert",
                                         pki("org-hopital.chain.pem"), "--match", "organisation")
        self.assertIn("|OU=330000000,CN=LPS_TEST_HOPITAL to " + APP_HOPITAL, bound.stdout)
        for cert in ("org-hopital", "org-hopital-renewed"):
            self.assertTrue(self.sign_in(gateway, cert).startswith("a1 OK"), cert)
        gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=ok mailbox=%s" % re.escape(APP_HOPITAL))
        self.assertEqual(self.sign_in(gateway, "org-hopital-radiologie"), not_registered)
        # Bound by its key to another mailbox as well: the two bindings disagree, it is refused.
        gateway.change_directory("certificate", "bind", APP_LABO, "--cert", pki("org-hopital-renewed.crt"))
        self.assertEqual(self.sign_in(gateway, "org-hopital-renewed"),
                         "a1 NO [AUTHENTICATIONFAILED] This certificate's bindings disagree: ask the operator")
        gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=certificate_bindings_differ")
        self.assertTrue(self.sign_in(gateway, "org-hopital").startswith("a1 OK"), "the others go on")


class DirectoryImportInForce(unittest.TestCase):
    def test_a_running_gateway_takes_an_import_and_a_sync_without_a_restart(self):
        gateway = Gateway()
        gateway.start()
        self.addCleanup(gateway.stop)
        path = os.path.join(gateway.dir, "annuaire.csv")
        with open(path, "w") as f:
            f.write("kind,mailbox,type,match,value\n"
                    "mailbox,%s,APP,,\n"
                    "binding,%s,,organisation,\"%s|OU=330000000,CN=LPS_TEST_HOPITAL_RADIOLOGIE\"\n"
                    % (APP_LABO, APP_LABO, self.issuer()))
        not_registered = "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox"
        self.assertEqual(self.sign_in(gateway, "org-hopital-radiologie"), not_registered)
        imported = gateway.change_directory("directory", "import", path)
        self.assertIn("bindings: 1 added", imported.stdout)
        self.assertTrue(self.sign_in(gateway, "org-hopital-radiologie").startswith("a1 OK"))
        # The same file as a sync: every mailbox it lacks is suspended, APP_HOPITAL among them.
        self.assertTrue(self.sign_in(gateway, "org-hopital").startswith("a1 OK"))
        gateway.change_directory("directory", "import", path, "--sync")
        self.assertEqual(self.sign_in(gateway, "org-hopital"),
                         "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox")
        self.assertTrue(self.sign_in(gateway, "org-hopital-radiologie").startswith("a1 OK"))

    def issuer(self):
        out = subprocess.run(["openssl", "x509", "-in", pki("org-hopital-radiologie.crt"), "-noout", "-issuer",
                              "-nameopt", "RFC2253"], capture_output=True, text=True, check=True).stdout
        return out.strip().split("=", 1)[1]

    def sign_in(self, gateway, cert):
        return external_sign_in(gateway, cert)


class ExtendedKeyUsage(unittest.TestCase):
    def handshake(self, gateway, cert):
        """The TLS event of an implicit-TLS connection with `cert`, or None when refused."""
        since = gateway.log_size()
        try:
            client = RawImap(gateway.imaps_port, implicit_ctx=client_context(cert))
            client.command("a1", "NOOP")
            client.close()
        except (ssl.SSLError, ConnectionError, EOFError):
            gateway.wait_for_log(r"event=tls_failed \S+ peer=\S+ reason=client_certificate", since=since)
            return None
        return gateway.wait_for_log(r"event=tls session=\S+ .*", since=since).group(0)

    def test_a_ca_that_omits_the_extension_can_be_allowed(self):
        gateway = Gateway(tls_section="require_client_auth_eku = false\n")
        gateway.start()
        self.addCleanup(gateway.stop)
        accepted = self.handshake(gateway, "org-no-eku")
        self.assertIsNotNone(accepted, "a certificate without extended key usage was refused")
        self.assertIn("CN=LPS_TEST_NO_EKU", accepted)
        # An extended key usage without clientAuth is still refused.
        self.assertIsNone(self.handshake(gateway, "org-wrong-usage"))
        self.assertIsNotNone(self.handshake(gateway, "org-hopital"))


if __name__ == "__main__":
    main()
