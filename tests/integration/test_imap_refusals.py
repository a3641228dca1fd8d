"""Everything mssgate must refuse, each with the answer the client gets and the event logged."""

import re
import socket
import ssl

from harness import (GatewayTestCase, APP_GHOST, APP_HOPITAL, APP_LABO, APP_SUSPENDED, PER_MARTIN, Gateway, RawImap, client_context,
                     main, pki)


class CertificateRefusalTest(GatewayTestCase):
    def assert_handshake_refused(self, cert, certificate_error, implicit):
        """The TLS handshake fails for `cert`, and the log says why: a line written after this
        attempt began (a test may try twice), for a session of the listener tried, with exactly
        that error."""
        since = self.gateway.log_size()
        ctx = client_context(cert)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, EOFError)):
            if implicit:
                client = RawImap(self.gateway.imaps_port, implicit_ctx=ctx)
            else:
                client = RawImap(self.gateway.imap_port)
                client.starttls(ctx)
            # Under TLS 1.3 the refusal arrives on the first read.
            client.command("a1", "NOOP")
        self.gateway.wait_for_log(r"event=connect session=(\w+) listener=%s (?s:.*)event=tls_failed session=\1 peer=\S+ "
                                  r"reason=client_certificate certificate_error=\"%s\""
                                  % ("imaps" if implicit else "imap", re.escape(certificate_error)), since=since)

    def test_refuses_self_signed_certificate(self):
        self.assert_handshake_refused("self-signed", "self-signed certificate", implicit=True)

    def test_refuses_certificate_of_an_unknown_ca(self):
        # The client sends its foreign root along: OpenSSL names the chain's self-signed root.
        self.assert_handshake_refused("foreign", "self-signed certificate in certificate chain", implicit=False)

    def test_refuses_revoked_certificate(self):
        self.assert_handshake_refused("org-revoked", "certificate revoked", implicit=True)
        self.assert_handshake_refused("org-revoked", "certificate revoked", implicit=False)

    def test_refuses_expired_certificate(self):
        self.assert_handshake_refused("org-expired", "certificate has expired", implicit=True)

    def test_refuses_certificate_without_client_authentication_usage(self):
        self.assert_handshake_refused("org-wrong-usage", "unsuitable certificate purpose", implicit=True)

    def test_refuses_certificate_without_any_extended_key_usage(self):
        # OpenSSL's purpose check takes it; tls.require_client_auth_eku (true by default) does not.
        self.assert_handshake_refused("org-no-eku", "unsuitable certificate purpose", implicit=True)
        self.assert_handshake_refused("org-no-eku", "unsuitable certificate purpose", implicit=False)

    def test_refuses_a_certificate_not_yet_valid(self):
        self.assert_handshake_refused("org-not-yet-valid", "certificate is not yet valid", implicit=True)
        self.assert_handshake_refused("org-not-yet-valid", "certificate is not yet valid", implicit=False)

    def test_refuses_a_certificate_whose_signature_was_altered(self):
        self.assert_handshake_refused("org-bad-signature", "certificate signature failure", implicit=True)
        self.assert_handshake_refused("org-bad-signature", "certificate signature failure", implicit=False)

    def test_refuses_a_chain_of_more_than_four_cas_and_takes_four(self):
        # Five CAs between the leaf and the root: over the verify depth (4).
        self.assert_handshake_refused("org-chain-too-long", "certificate chain too long", implicit=True)
        self.assert_handshake_refused("org-chain-too-long", "certificate chain too long", implicit=False)
        # Four: the handshake passes; the certificate opens nothing, being bound to no mailbox.
        since = self.gateway.log_size()
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-chain-4"))
        _, tagged = client.authenticate_external(None)
        client.close()
        self.assertEqual(tagged, "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox")
        self.gateway.wait_for_log(r"event=tls session=\S+ \S+ \S+ client_certificate=\"CN=LPS_TEST_CHAIN_4,", since=since)

    def test_refuses_a_certificate_under_a_ca_its_parent_may_not_issue(self):
        # ORGANISATIONS has pathlen:0: a CA under it issues nothing that verifies.
        self.assert_handshake_refused("org-path-length", "path length constraint exceeded", implicit=True)

    def test_refuses_a_certificate_signed_by_a_client_certificate(self):
        # org-labo (CA:false) used as a CA.
        self.assert_handshake_refused("org-issued-by-leaf", "invalid CA certificate", implicit=True)

    def test_a_nul_byte_in_the_name_is_escaped_in_the_log_and_the_key_decides(self):
        # The chain is good: the handshake passes. The name is written escaped, never raw.
        since = self.gateway.log_size()
        tagged = self.authenticate("org-nul-name", APP_HOPITAL)
        self.assertEqual(tagged, "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox")
        self.gateway.wait_for_log(r'event=tls session=\S+ \S+ \S+ client_certificate="CN=LPS_TEST_NUL\\\\00EVIL,',
                                  since=since)
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=certificate_not_registered "
                                  r"mailbox=%s" % re.escape(APP_HOPITAL), since=since)
        with open(self.gateway.log_path, "rb") as f:
            f.seek(since)
            self.assertNotIn(b"\0", f.read(), "a NUL byte reached the log")
        # Bound by its key, it opens the mailbox it is bound to, and only that one.
        self.gateway.change_directory("certificate", "bind", APP_LABO, "--cert", pki("org-nul-name.crt"))
        try:
            self.assertIn("a1 OK", self.authenticate("org-nul-name", APP_LABO))
            self.assertEqual(self.authenticate("org-nul-name", APP_HOPITAL),
                             "a1 NO [AUTHORIZATIONFAILED] This certificate may not open that mailbox")
        finally:
            self.gateway.change_directory("certificate", "unbind", APP_LABO, "--cert", pki("org-nul-name.crt"))

    def authenticate(self, cert, authzid):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context(cert))
        _, tagged = client.authenticate_external(authzid)
        client.close()
        return tagged

    def test_refuses_external_without_a_client_certificate(self):
        tagged = self.authenticate(None, None)
        self.assertEqual(tagged, "a1 NO [AUTHENTICATIONFAILED] No verified client certificate was presented")
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=no_client_certificate")

    def test_refuses_a_valid_certificate_bound_to_no_mailbox(self):
        tagged = self.authenticate("cps-dupont", None)
        self.assertEqual(tagged, "a1 NO [AUTHENTICATIONFAILED] This certificate is not registered for any mailbox")
        refused = self.gateway.wait_for_log(r"result=failed reason=certificate_not_registered "
                                            r"certificate_sha256=[0-9a-f]{64} spki_sha256=([0-9a-f]{64})")
        # The key's hash the line gives is what a binding takes: bound by it, the certificate
        # opens the mailbox.
        spki = refused.group(1)
        self.gateway.wait_for_log(r"event=tls \S+ version=\S+ cipher=\S+ client_certificate=.* "
                                  r"certificate_sha256=[0-9a-f]{64} spki_sha256=%s" % spki)
        self.gateway.change_directory("certificate", "bind", APP_LABO, "--spki-sha256", spki)
        try:
            self.assertTrue(self.authenticate("cps-dupont", APP_LABO).startswith("a1 OK "))
            self.gateway.wait_for_log(r"mechanism=EXTERNAL result=ok mailbox=%s certificate_sha256=[0-9a-f]{64} "
                                      r"spki_sha256=%s" % (re.escape(APP_LABO), spki))
        finally:
            self.gateway.change_directory("certificate", "unbind", APP_LABO, "--spki-sha256", spki)

    def test_refuses_a_mailbox_the_certificate_is_not_bound_to(self):
        tagged = self.authenticate("org-hopital", APP_LABO)
        self.assertEqual(tagged, "a1 NO [AUTHORIZATIONFAILED] This certificate may not open that mailbox")
        self.gateway.wait_for_log(r"result=failed reason=mailbox_not_bound mailbox=" + re.escape(APP_LABO))

    def test_refuses_a_suspended_mailbox(self):
        tagged = self.authenticate("org-labo", APP_SUSPENDED)
        self.assertEqual(tagged, "a1 NO [AUTHORIZATIONFAILED] The mailbox is not active")
        self.gateway.wait_for_log(r"result=failed reason=mailbox_suspended mailbox=" + re.escape(APP_SUSPENDED))

    def test_refuses_a_personal_mailbox_to_a_certificate(self):
        tagged = self.authenticate("org-labo", PER_MARTIN)
        self.assertEqual(tagged, "a1 NO [AUTHORIZATIONFAILED] This mailbox does not accept certificate authentication")

    def test_asks_to_name_the_mailbox_when_the_certificate_opens_several(self):
        tagged = self.authenticate("org-labo", None)
        self.assertEqual(tagged,
                         "a1 NO [AUTHORIZATIONFAILED] This certificate opens several mailboxes: name one as authorization identity")

    def test_backend_refusal_is_a_clean_unavailable(self):
        tagged = self.authenticate("org-labo", APP_GHOST)
        self.assertEqual(tagged, "a1 NO [UNAVAILABLE] The mailbox service is temporarily unavailable, try again later")
        self.gateway.wait_for_log(r"event=backend \S+ result=failed step=login detail=\"refused: NO")
        self.assertNotIn("Authentication failed", tagged)

    def test_refuses_login(self):
        client = RawImap(self.gateway.imap_port)
        _, tagged = client.command("l1", "LOGIN user password")
        self.assertEqual(tagged, "l1 NO [PRIVACYREQUIRED] LOGIN is disabled: use STARTTLS, then AUTHENTICATE")
        client.starttls(client_context("org-hopital"))
        _, tagged = client.command("l2", "LOGIN %s password" % APP_HOPITAL)
        self.assertEqual(tagged, "l2 NO [CANNOT] LOGIN is disabled: use AUTHENTICATE EXTERNAL with a client certificate")
        # The session is still usable.
        _, tagged = client.authenticate_external(None, tag="a3")
        self.assertIn("a3 OK", tagged)
        client.close()
        self.assertNotIn("password", self.gateway.log())
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=LOGIN result=failed reason=login_disabled")

    def test_refuses_authenticate_before_starttls(self):
        client = RawImap(self.gateway.imap_port)
        _, tagged = client.authenticate_external(APP_HOPITAL)
        self.assertEqual(tagged, "a1 NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS first")
        # Without an initial response, the refusal comes before any continuation.
        _, tagged = client.command("a2", "AUTHENTICATE EXTERNAL")
        self.assertEqual(tagged, "a2 NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS first")
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=no_tls")
        client.close()

    def test_refuses_an_unsupported_mechanism(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        _, tagged = client.command("a1", "AUTHENTICATE PLAIN AGZvbwBiYXI=")
        self.assertEqual(tagged, "a1 NO [CANNOT] Unsupported authentication mechanism")
        client.close()
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=PLAIN result=failed reason=unsupported_mechanism")

    def test_cancelled_authentication(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        client.send(b"a1 AUTHENTICATE EXTERNAL\r\n")
        self.assertTrue(client.read_line().startswith("+"))
        client.send(b"*\r\n")
        _, tagged = client.read_until_tagged("a1")
        self.assertEqual(tagged, "a1 BAD Authentication cancelled")
        client.close()
        self.gateway.wait_for_log(r"event=auth \S+ mechanism=EXTERNAL result=failed reason=cancelled")

    def test_too_many_authentication_failures_close_the_session(self):
        client = RawImap(self.gateway.imaps_port, implicit_ctx=client_context("org-hopital"))
        session = self.gateway.session_of(client.sock)
        for i in range(2):
            _, tagged = client.authenticate_external(APP_LABO, tag="a%d" % i)
            self.assertEqual(tagged, "a%d NO [AUTHORIZATIONFAILED] This certificate may not open that mailbox" % i)
        client.send(b"a9 AUTHENTICATE EXTERNAL " + b"YXBwLmxhYm9AdGVzdC5tc3NhbnRlLmZy" + b"\r\n")
        lines = [client.read_line(), client.read_line()]
        self.assertEqual(lines, ["a9 NO [AUTHORIZATIONFAILED] This certificate may not open that mailbox",
                                 "* BYE Too many authentication failures"])
        self.assertTrue(client.closed_by_server(), "the connection is still open")
        self.gateway.wait_for_log(r"event=close session=%s reason=too_many_auth_failures" % session)


class TlsPolicyTest(GatewayTestCase):
    def handshake(self, ctx):
        sock = socket.create_connection(("127.0.0.1", self.gateway.imaps_port), timeout=10)
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.version(), tls.cipher()[0]

    def test_accepts_each_of_the_four_referentiel_suites_over_tls12(self):
        for suite in ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA384",
                      "ECDHE-RSA-AES128-SHA256"):
            self.assertEqual(self.handshake(client_context(ciphers=suite)), ("TLSv1.2", suite))

    def test_refuses_a_cipher_outside_the_four_suites(self):
        for suite in ("ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES256-SHA", "AES256-GCM-SHA384"):
            with self.assertRaises(ssl.SSLError) as caught:
                self.handshake(client_context(ciphers=suite))
            self.assertIn("HANDSHAKE_FAILURE", str(caught.exception).upper(), suite)
        self.gateway.wait_for_log(r"event=tls_failed \S+ \S+ reason=\"no shared cipher")

    def test_refuses_tls_1_1(self):
        ctx = client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError) as caught:
            self.handshake(ctx)
        # The server answered with a protocol_version alert: the refusal is the server's.
        self.assertIn("PROTOCOL_VERSION", str(caught.exception).upper())
        self.gateway.wait_for_log(r"event=tls_failed \S+ \S+ reason=\"unsupported protocol")

    def test_refuses_tls_1_3_under_the_default_policy(self):
        ctx = client_context(minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
        with self.assertRaises(ssl.SSLError) as caught:
            self.handshake(ctx)
        self.assertIn("PROTOCOL_VERSION", str(caught.exception).upper())
        self.gateway.wait_for_log(r"event=tls_failed \S+ \S+ reason=\"unsupported protocol")

    def test_tls_1_3_when_enabled_by_configuration(self):
        gateway = Gateway(extra_config="")
        # Replace the policy in the [tls] section of this gateway's own configuration.
        with open(gateway.config_path) as f:
            text = f.read()
        with open(gateway.config_path, "w") as f:
            f.write(text.replace('handshake_timeout = "5s"', 'handshake_timeout = "5s"\nmax_version = "TLSv1.3"'))
        with gateway:
            ctx = client_context("org-hopital", minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
            client = RawImap(gateway.imaps_port, implicit_ctx=ctx)
            self.assertEqual(client.sock.version(), "TLSv1.3")
            _, tagged = client.authenticate_external(None)
            self.assertIn("a1 OK", tagged)
            client.close()
            # Under TLS 1.3 a revoked certificate is refused on the first read.
            revoked = client_context("org-revoked", minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
            with self.assertRaises((ssl.SSLError, ConnectionResetError, EOFError)):
                client = RawImap(gateway.imaps_port, implicit_ctx=revoked)
                client.command("a1", "NOOP")
            gateway.wait_for_log(r"reason=client_certificate certificate_error=\"certificate revoked\"")


if __name__ == "__main__":
    main()
