"""Faults between mssgate and a CRL source (a ChaosGate in front of the HTTP source): a download
refused, reset, stalled, trickled, truncated or corrupted is given up within
tls.crl_download_timeout, logged (`crl_refresh_failed` with its reason), and the last good CRL stays
in force: a revoked certificate is still refused, a good one still taken. Once the source answers
again, the next round succeeds; the gateway's memory and descriptors are back."""

import os
import shutil
import tempfile
import time
import unittest

from chaos_gate import ChaosGate
from chaos_support import ADMIN, Footprint, asan_env
from harness import PKI, Gateway, main
from test_crl import CrlSource, handshake, openssl_ca

DOWNLOAD_TIMEOUT = 1.0  # [tls] crl_download_timeout of the test gateway


class CrlChaos(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mssgate-crl-chaos-")
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        # A copy of the test PKI, whose organisations CA revokes org-hopital.
        self.pki = os.path.join(self.work, "pki")
        shutil.copytree(PKI, self.pki)
        self.source = CrlSource()
        self.addCleanup(self.source.stop)
        time.sleep(1.1)  # the new CRL's lastUpdate is later than the test PKI's (1 s precision)
        openssl_ca(self.pki, "organisations", "-revoke", "org-hopital.crt", "-crl_reason", "keyCompromise")
        openssl_ca(self.pki, "organisations", "-gencrl", "-crlexts", "crl_ext", "-out", "revoked.crl.pem")
        with open(os.path.join(self.pki, "revoked.crl.pem"), "rb") as f:
            self.source.body = f.read()
        self.gate = ChaosGate(self.source.port)
        self.addCleanup(self.gate.close)
        tls = ('crl_urls = ["http://127.0.0.1:%d/organisations.crl"]\ncrl_refresh_interval = "1s"\n'
               'crl_download_timeout = "%gs"\ncrl_cache_dir = "%s"'
               % (self.gate.port, DOWNLOAD_TIMEOUT, os.path.join(self.work, "crl-cache")))
        self.gateway = Gateway(tls_section=tls, extra_config=ADMIN)
        self.gateway.start(extra_env=asan_env())
        self.addCleanup(self.gateway.stop)

    def round_after(self, offset, pattern, timeout=10):
        return self.gateway.wait_for_log(pattern, since=offset, timeout=timeout)

    def assert_revocation_in_force(self, why):
        self.assertFalse(handshake(self.gateway.imaps_port, "org-hopital"), why)
        self.assertTrue(handshake(self.gateway.imaps_port, "org-labo"), why)

    def test_a_failed_download_keeps_the_last_good_crl_and_the_next_one_recovers(self):
        self.round_after(0, r"event=crl_updated url=http://127\.0\.0\.1:\d+/organisations\.crl ")
        self.round_after(0, r"event=tls_context_rebuilt ")
        self.assert_revocation_in_force("the downloaded CRL is in force")
        footprint = Footprint(self.gateway).take()
        body = b"\r\n\r\n"  # where the HTTP body starts
        faults = [
            ("refused", lambda g: g.refuse("unlisten"), "unreachable"),
            ("reset at accept", lambda g: g.refuse("reset"), "(unreachable|bad_response)"),
            ("stalled", lambda g: g.fault("stall", "down"), "timeout"),
            ("trickled", lambda g: g.fault("trickle", "down", rate=10, interval=0.05), "timeout"),
            ("reset in the body", lambda g: g.fault("reset", "down", at=body, after=100), "bad_response"),
            ("truncated body", lambda g: g.fault("truncate", "down", at=body, after=100), "bad_response"),
            ("corrupted CRL", lambda g: g.fault("corrupt", "down", at=b"-----BEGIN X509 CRL-----\n", after=60,
                                                data=b"A"), "(not_a_crl|bad_signature)"),
        ]
        for name, apply, reason in faults:
            with self.subTest(fault=name):
                self.gate.clear()
                offset = self.gateway.log_size()
                apply(self.gate)
                start = time.monotonic()
                self.round_after(offset, r"event=crl_refresh_failed url=\S+ reason=%s .*action=\"last good CRL kept\""
                                 % reason, timeout=DOWNLOAD_TIMEOUT + 5)
                self.assertLess(time.monotonic() - start, DOWNLOAD_TIMEOUT + 3)
                self.assert_revocation_in_force(name)
        # The source answers again: the next round verifies the same CRL, nothing to change.
        self.gate.clear()
        offset = self.gateway.log_size()
        self.round_after(offset, r"event=crl_refresh url=\S+ result=unchanged")
        self.assert_revocation_in_force("after the faults")
        footprint.check(self)


if __name__ == "__main__":
    main()
