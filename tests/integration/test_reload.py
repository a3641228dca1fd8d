"""Reload (SIGHUP) under traffic: sessions open across a reload that changes the server
certificate and the directory keep working, new sessions see the change; an invalid
configuration is refused and the running one stays; settings that need a restart are named;
the log level changes."""

import base64
import hashlib
import os
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import threading
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, Gateway, PscIssuer, RawImap, client_context, ctl, main, new_marker,
                     pki, wait_for_delivery)


def make_server_certificate(directory):
    """A second server certificate for localhost, issued by the test PKI's organisations CA."""
    key = os.path.join(directory, "server2.key")
    request = os.path.join(directory, "server2.csr")
    certificate = os.path.join(directory, "server2.crt")
    chain = os.path.join(directory, "server2.chain.pem")
    extensions = os.path.join(directory, "server2.ext")
    with open(extensions, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-subj", "/C=FR/O=TEST MSSGATE RELOADED/CN=localhost", "-out", request],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", request, "-CA", pki("organisations-ca.crt"),
                    "-CAkey", pki("ca/organisations/ca.key"), "-set_serial", str(int(time.time())),
                    "-days", "30", "-sha256", "-extfile", extensions, "-out", certificate],
                   check=True, capture_output=True)
    with open(chain, "w") as out:
        for part in (certificate, pki("organisations-ca.crt")):
            with open(part) as f:
                out.write(f.read())
    with open(certificate) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return chain, key, hashlib.sha256(der).hexdigest()


def peer_fingerprint(imap):
    return hashlib.sha256(imap.sock.getpeercert(binary_form=True)).hexdigest()


def signed_in_session(port, cert="org-hopital", authzid=None):
    imap = RawImap(port)
    imap.starttls(client_context(cert))
    _, tagged = imap.authenticate_external(authzid)
    if not tagged.startswith("a1 OK"):
        raise AssertionError(tagged)
    return imap


def sign_in_once(port):
    imap = signed_in_session(port)
    fingerprint = peer_fingerprint(imap)
    _, tagged = imap.command("n1", "NOOP")
    if not tagged.startswith("n1 OK"):
        raise AssertionError(tagged)
    imap.command("z1", "LOGOUT")
    imap.close()
    return fingerprint


def reload(gateway, event="reloaded"):
    """SIGHUP, then waits for the `event` line written after it; returns that line."""
    since = gateway.log_size()
    gateway.process.send_signal(signal.SIGHUP)
    return gateway.wait_for_log(r".*event=%s .*" % event, timeout=15, since=since).group(0)


def edit_config(gateway, *replacements):
    with open(gateway.config_path) as f:
        text = f.read()
    for old, new in replacements:
        if old not in text:
            raise AssertionError("%r not in the configuration" % old)
        text = text.replace(old, new)
    with open(gateway.config_path, "w") as f:
        f.write(text)


class Reload(unittest.TestCase):
    def setUp(self):
        self.gateway = Gateway()
        self.gateway.start()
        self.addCleanup(self.gateway.stop)

    def test_certificate_and_directory_change_under_traffic(self):
        gateway = self.gateway
        other_directory = os.path.join(gateway.dir, "directory2.db")
        ctl(other_directory, "mailbox", "add", APP_LABO, "--type", "APP")
        ctl(other_directory, "certificate", "bind", APP_LABO, "--cert", pki("org-hopital.crt"))
        # org-labo opens app.hopital in both directories.
        ctl(other_directory, "mailbox", "add", APP_HOPITAL, "--type", "APP")
        ctl(other_directory, "certificate", "bind", APP_HOPITAL, "--cert", pki("org-labo.crt"), "--match",
            "issuer-serial")
        gateway.change_directory("certificate", "bind", APP_HOPITAL, "--cert", pki("org-labo.crt"), "--match",
                                 "issuer-serial")
        chain, key, new_fingerprint = make_server_certificate(gateway.dir)

        # Sessions open before the reload, still allowed after it: an IMAP mailbox selected, an
        # SMTP session signed in.
        old_imap = signed_in_session(gateway.imap_port, "org-labo", APP_HOPITAL)
        old_fingerprint = peer_fingerprint(old_imap)
        _, tagged = old_imap.command("s1", "SELECT INBOX")
        self.assertTrue(tagged.startswith("s1 OK"), tagged)
        old_smtp = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=20)
        old_smtp.starttls(context=client_context("org-labo"))
        old_smtp.ehlo()
        authzid = base64.b64encode(APP_HOPITAL.encode()).decode()
        self.assertEqual(old_smtp.docmd("AUTH", "EXTERNAL " + authzid)[0], 235)
        # A session the new directory no longer allows (org-hopital opens app.labo instead).
        withdrawn_imap = signed_in_session(gateway.imap_port)
        withdrawn_session = gateway.session_of(withdrawn_imap.sock)
        reload_offset = gateway.log_size()

        # Sign-ins in a loop through every reload below.
        stop = threading.Event()
        outcomes = []

        def traffic():
            for _ in range(2000):
                if stop.is_set():
                    return
                try:
                    sign_in_once(gateway.imap_port)
                    outcomes.append("ok")
                except Exception as error:  # any failure is a dropped session
                    outcomes.append(repr(error))

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            time.sleep(0.3)
            edit_config(gateway,
                        (pki("server.chain.pem"), chain),
                        (pki("server.key"), key),
                        (gateway.database, other_directory))
            line = reload(gateway)
            self.assertRegex(line, r"duration_us=\d+")
            for _ in range(3):
                time.sleep(0.2)
                reload(gateway)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(timeout=60)
        failures = [o for o in outcomes if o != "ok"]
        self.assertEqual(failures, [])
        self.assertGreaterEqual(len(outcomes), 5)

        # The session the new directory no longer allows was ended; those it allows go on with
        # what they had.
        self.assertTrue(withdrawn_imap.closed_by_server())
        withdrawn_imap.close()
        gateway.wait_for_log(r"event=authorization_withdrawn session=%s reason=mailbox_not_bound" % withdrawn_session,
                             since=reload_offset)
        _, tagged = old_imap.command("n2", "NOOP")
        self.assertTrue(tagged.startswith("n2 OK"), tagged)
        _, tagged = old_imap.command("s2", "SELECT INBOX")
        self.assertTrue(tagged.startswith("s2 OK"), tagged)
        old_imap.command("z2", "LOGOUT")
        old_imap.close()
        marker = new_marker("reload")
        message = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nacross a reload\r\n"
                   % (APP_HOPITAL, APP_HOPITAL, marker, marker))
        old_smtp.sendmail(APP_HOPITAL, [APP_HOPITAL], message)
        old_smtp.quit()
        wait_for_delivery(APP_HOPITAL, marker)

        # New sessions: the new certificate, and the new directory (org-hopital opens app.labo).
        since = gateway.log_size()
        self.assertEqual(sign_in_once(gateway.imap_port), new_fingerprint)
        self.assertNotEqual(new_fingerprint, old_fingerprint)
        opened = re.findall(r"event=auth .*result=ok mailbox=" + re.escape(APP_LABO), gateway.log(since=since))
        self.assertEqual(len(opened), 1)

    def test_a_reload_keeps_the_directory_snapshot_and_its_refresh(self):
        gateway = self.gateway
        loads = len(re.findall(r"event=directory_loaded ", gateway.log()))
        edit_config(gateway, ('refresh_interval = "100ms"', 'refresh_interval = "50ms"'))
        self.assertIn("psc_cache=none", reload(gateway), "no [psc], no token cache")
        self.assertEqual(len(re.findall(r"event=directory_loaded ", gateway.log())), loads,
                         "the same directory is not read again")
        # The directory kept still follows the database.
        offset = gateway.log_size()
        gateway.change_directory("mailbox", "set-status", APP_HOPITAL, "suspended")
        imap = RawImap(gateway.imap_port)
        imap.starttls(client_context("org-hopital"))
        _, tagged = imap.authenticate_external()
        imap.close()
        self.assertTrue(tagged.startswith("a1 NO"), tagged)
        gateway.wait_for_log(r"event=auth .*reason=mailbox_suspended", since=offset)

    def test_invalid_configuration_leaves_the_running_one(self):
        gateway = self.gateway
        fingerprint = sign_in_once(gateway.imap_port)
        with open(gateway.config_path) as f:
            good = f.read()

        # A certificate that is not there.
        edit_config(gateway, (pki("server.chain.pem"), "/nonexistent/server.chain.pem"))
        line = reload(gateway, "reload_failed")
        self.assertIn("tls.certificate_chain", line)
        self.assertIn("cannot read /nonexistent/server.chain.pem", line)
        self.assertEqual(sign_in_once(gateway.imap_port), fingerprint)

        # A key that does not match the certificate: found only when loading it.
        with open(gateway.config_path, "w") as f:
            f.write(good.replace(pki("server.key"), pki("org-labo.key")))
        line = reload(gateway, "reload_failed")
        self.assertIn("tls.private_key", line)
        self.assertIn("mismatch", line)
        self.assertEqual(sign_in_once(gateway.imap_port), fingerprint)

        # Not TOML.
        with open(gateway.config_path, "w") as f:
            f.write(good + "\n[server\n")
        reload(gateway, "reload_failed")
        self.assertEqual(sign_in_once(gateway.imap_port), fingerprint)

        # Back to a good file: reloads again.
        with open(gateway.config_path, "w") as f:
            f.write(good)
        reload(gateway)

    def test_restart_only_settings_are_named_and_log_level_changes(self):
        gateway = self.gateway
        port = gateway.imap_port
        edit_config(gateway,
                    ('starttls_listen = ["127.0.0.1:0"]\ntls_listen = ["127.0.0.1:0"]\nmax_line_bytes = 4096',
                     'starttls_listen = ["127.0.0.1:1"]\ntls_listen = ["127.0.0.1:0"]\nmax_line_bytes = 4096'),
                    ('log_level = "debug"', 'log_level = "warning"'))  # as the log writes it
        line = reload(gateway, "reload_restart_needed")
        self.assertIn("keys=imap.starttls_listen", line)
        # The listener stays where it was; at level warn, connections are no longer logged, and
        # the audit trail (sign-ins) is written whatever the level.
        since = gateway.log_size()
        sign_in_once(port)
        time.sleep(0.2)
        log = gateway.log(since=since)
        self.assertEqual(len(re.findall(r"event=connect ", log)), 0, log)
        self.assertEqual(len(re.findall(r"event=auth ", log)), 1, log)


class PscReload(unittest.TestCase):
    def test_token_cache_kept_unless_psc_settings_or_files_change(self):
        issuer = PscIssuer()
        self.addCleanup(issuer.stop)
        gateway = Gateway(psc_section=issuer.config())
        ca_copy = os.path.join(gateway.dir, "psc-ca.pem")
        shutil.copy(pki("root.crt"), ca_copy)
        edit_config(gateway, ('ca_file = "%s"' % pki("root.crt"), 'ca_file = "%s"' % ca_copy))
        gateway.start()
        self.addCleanup(gateway.stop)
        self.assertIn("psc_cache=kept", reload(gateway))
        # The PSC CA renewed at the same path: a new validator reads it.
        time.sleep(0.01)
        shutil.copy(pki("root.crt"), ca_copy + ".new")
        os.replace(ca_copy + ".new", ca_copy)
        os.utime(ca_copy, (time.time() + 5, time.time() + 5))
        self.assertIn("psc_cache=new", reload(gateway))
        self.assertIn("psc_cache=kept", reload(gateway))
        edit_config(gateway, ('timeout = "1s"', 'timeout = "2s"'))
        self.assertIn("psc_cache=new", reload(gateway))


if __name__ == "__main__":
    main()
