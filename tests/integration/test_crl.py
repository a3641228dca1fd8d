"""CRLs downloaded on a timer: a certificate revoked after start is refused once the new CRL is
downloaded; an unreachable source, a corrupt file, an older CRL or one from an unknown CA
keep the last good CRL in force; a restart starts from the last good download."""

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import PKI, Gateway, client_context, main


class CrlSource:
    """An HTTP server on loopback answering every GET with `body`."""

    def __init__(self):
        self.body = b""
        source = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(source.body)))
                self.end_headers()
                self.wfile.write(source.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def openssl_ca(pki_copy, ca, *args):
    subprocess.run(["openssl", "ca", "-batch", "-config", "ca/%s/ca.cnf" % ca, *args], cwd=pki_copy,
                   check=True, capture_output=True)


def handshake(port, cert):
    """True when a TLS handshake with client certificate `cert` succeeds on `port`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        tls = client_context(cert).wrap_socket(raw, server_hostname="localhost")
        # TLS 1.2: a refused certificate ends the handshake; read the greeting to be sure.
        tls.recv(100)
        tls.close()
        return True
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        raw.close()


class CrlRefresh(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mssgate-crl-")
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        # A copy of the test PKI, whose organisations CA revokes org-hopital later on.
        self.pki = os.path.join(self.work, "pki")
        shutil.copytree(PKI, self.pki)
        with open(os.path.join(PKI, "organisations-ca.crl.pem"), "rb") as f:
            self.original_crl = f.read()
        self.source = CrlSource()
        self.addCleanup(self.source.stop)
        self.source.body = self.original_crl
        self.cache = os.path.join(self.work, "crl-cache")
        self.tls = ('crl_urls = ["http://127.0.0.1:%d/organisations.crl"]\n'
               'crl_refresh_interval = "1s"\ncrl_cache_dir = "%s"' % (self.source.port, self.cache))
        self.gateway = Gateway(tls_section=self.tls)
        self.gateway.start()
        self.addCleanup(self.gateway.stop)

    def wait_after(self, offset, pattern, timeout=15):
        """A log line matching `pattern`, written after `offset` (a log_size())."""
        return self.gateway.wait_for_log(pattern, timeout=timeout, since=offset)

    def offset(self):
        return self.gateway.log_size()

    def revoked_crl_der(self):
        time.sleep(1.1)  # the new CRL's lastUpdate is later than the original's (1 s precision)
        openssl_ca(self.pki, "organisations", "-revoke", "org-hopital.crt", "-crl_reason", "keyCompromise")
        openssl_ca(self.pki, "organisations", "-gencrl", "-crlexts", "crl_ext", "-out", "new.crl.pem")
        der = os.path.join(self.pki, "new.crl.der")
        subprocess.run(["openssl", "crl", "-in", os.path.join(self.pki, "new.crl.pem"), "-outform", "DER",
                        "-out", der], check=True, capture_output=True)
        with open(der, "rb") as f:
            return f.read()

    def test_revocation_reaches_the_gateway_and_bad_sources_keep_the_last_good_crl(self):
        gateway = self.gateway
        port = gateway.imaps_port
        # The first download, at start-up (setUp started the gateway: this test's own line).
        self.wait_after(gateway.log_start, r"event=crl_updated url=http://127\.0\.0\.1:\d+/organisations\.crl issuer=\S+")
        self.assertTrue(handshake(port, "org-hopital"))

        # org-hopital revoked: the next download (DER this time) is verified and used.
        at = self.offset()
        self.source.body = self.revoked_crl_der()
        self.wait_after(at, r"event=crl_updated ")
        self.wait_after(at, r"event=tls_context_rebuilt ")
        self.assertFalse(handshake(port, "org-hopital"))
        self.assertTrue(handshake(port, "org-labo"))
        self.wait_after(at, r"event=tls_failed .*certificate_error=\"certificate revoked\"")

        # Sources that give nothing usable: the revocation stays in force.
        cases = [
            (b"this is not a CRL", "not_a_crl"),
            (self.original_crl, "older_than_kept"),
        ]
        openssl_ca(self.pki, "foreign", "-gencrl", "-crlexts", "crl_ext", "-out", "foreign.crl.pem")
        with open(os.path.join(self.pki, "foreign.crl.pem"), "rb") as f:
            cases.append((f.read(), "unknown_issuer"))
        for body, reason in cases:
            at = self.offset()
            self.source.body = body
            self.wait_after(at, r"event=crl_refresh_failed .*reason=%s .*action=\"last good CRL kept\"" % reason)
            self.assertFalse(handshake(port, "org-hopital"), reason)
            self.assertTrue(handshake(port, "org-labo"), reason)

        at = self.offset()
        self.source.stop()
        self.wait_after(at, r"event=crl_refresh_failed .*reason=unreachable")
        self.assertFalse(handshake(port, "org-hopital"))
        self.assertTrue(handshake(port, "org-labo"))

        # A restart, the source still down: the last good download is used from the start.
        gateway.stop()
        restarted = Gateway(tls_section=self.tls)  # the same URL and cache
        restarted.start()
        self.addCleanup(restarted.stop)
        self.assertFalse(handshake(restarted.imaps_port, "org-hopital"))
        self.assertTrue(handshake(restarted.imaps_port, "org-labo"))


if __name__ == "__main__":
    main()
