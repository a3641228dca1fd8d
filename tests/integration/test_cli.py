"""The operator's commands: mssgate --check-config, start-up errors, and mssgatectl."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import MSSGATE, MSSGATECTL, Gateway, main, pki


def run(*args, **kwargs):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, **kwargs)


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mssgate-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.secret = os.path.join(self.dir, "master.secret")
        with open(self.secret, "w") as f:
            f.write("not-a-real-secret\n")
        self.path = os.path.join(self.dir, "mssgate.toml")

    def write(self, tls_extra="", key="server.key", listen="127.0.0.1:0", extra=""):
        with open(self.path, "w") as f:
            f.write(f"""[tls]
certificate_chain = "{pki('server.chain.pem')}"
private_key = "{pki(key)}"
client_ca = "{pki('ca-chain.pem')}"
crl_files = ["{pki('crls.pem')}"]
{tls_extra}

[imap]
starttls_listen = ["{listen}"]

[imap.backend]
address = "127.0.0.1:1"
master_user = "mssgate"
master_password_file = "master.secret"

[directory]
sqlite_path = "directory.db"
{extra}
""")

    def test_accepts_a_valid_configuration(self):
        self.write()
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("is valid", result.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "directory.db")), "a check creates nothing")

    def test_lists_every_problem_with_file_line_and_key(self):
        self.write(tls_extra='privat_key = "x"\nmax_version = "SSLv3"')
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(self.path + ":6:1: tls.privat_key: unknown key", result.stderr)
        self.assertIn(self.path + ":7:15: tls.max_version: must be \"TLSv1.2\" or \"TLSv1.3\"", result.stderr)

    def test_refuses_a_key_that_does_not_match_the_certificate(self):
        self.write(key="org-hopital.key")
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot load tls.private_key", result.stderr)
        self.assertIn("key values mismatch", result.stderr)

    def test_refuses_a_cipher_list_openssl_does_not_know(self):
        self.write(tls_extra='ciphers = "NOT-A-CIPHER"')
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 1)
        self.assertIn('tls.ciphers "NOT-A-CIPHER"', result.stderr)

    def test_start_fails_clearly_when_the_port_is_taken(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self.write(listen="127.0.0.1:%d" % taken.getsockname()[1])
        result = run(MSSGATE, "--config", self.path)
        taken.close()
        self.assertEqual(result.returncode, 1)
        port = self.path and open(self.path).read().split("starttls_listen = [\"127.0.0.1:")[1].split("\"")[0]
        self.assertIn("cannot listen on 127.0.0.1:%s (imap): Address already in use" % port, result.stderr)

    def test_refuses_an_lmtp_tap_off_loopback_without_allowed_peers(self):
        self.write(extra='[lmtp]\nlisten = ["127.0.0.1:10024", "0.0.0.0:10024"]\n')
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("lmtp.listen: 0.0.0.0:10024 is not a loopback address: set lmtp.allowed_peers to the "
                      "addresses of the Postfix hosts that may deliver to the tap", result.stderr)
        self.assertNotIn("127.0.0.1:10024", result.stderr)
        # The same listener with the Postfix hosts named is valid.
        self.write(extra='[lmtp]\nlisten = ["0.0.0.0:10024"]\nallowed_peers = ["192.0.2.25", "198.51.100.0/24"]\n')
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.write(extra='[lmtp]\nlisten = ["0.0.0.0:10024"]\nallowed_peers = ["postfix.example.fr"]\n')
        result = run(MSSGATE, "--check-config", self.path)
        self.assertEqual(result.returncode, 1)
        self.assertIn('lmtp.allowed_peers: "postfix.example.fr" is not an IP address or network', result.stderr)

    def test_missing_file(self):
        result = run(MSSGATE, "--check-config", os.path.join(self.dir, "absent.toml"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot open the configuration file: No such file or directory", result.stderr)


class PidFileTest(unittest.TestCase):
    def test_the_pid_file_names_the_process_while_it_serves(self):
        gateway = Gateway()
        self.addCleanup(gateway.stop)
        pid_path = os.path.join(gateway.dir, "run", "mssgate.pid")
        os.makedirs(os.path.dirname(pid_path))
        gateway.start(extra_args=("--pid-file", pid_path))
        with open(pid_path) as f:
            self.assertEqual(f.read(), "%d\n" % gateway.process.pid)
        gateway.process.send_signal(signal.SIGTERM)
        self.assertEqual(gateway.process.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(pid_path), "removed at exit")
        # A PID file that cannot be written: a clear error, and no service.
        refused = run(MSSGATE, "--config", gateway.config_path, "--pid-file",
                      os.path.join(gateway.dir, "absent", "mssgate.pid"))
        self.assertEqual(refused.returncode, 1)
        self.assertIn("cannot write the PID file", refused.stderr)
        self.assertIn("No such file or directory", refused.stderr)


class MssgatectlTest(unittest.TestCase):
    def setUp(self):
        folder = tempfile.mkdtemp(prefix="mssgate-ctl-")
        self.addCleanup(shutil.rmtree, folder, True)
        self.db = os.path.join(folder, "directory.db")

    def ctl(self, *args):
        return run(MSSGATECTL, "--database", self.db, *args)

    def test_manages_mailboxes(self):
        self.assertEqual(self.ctl("mailbox", "add", "App.Test@Example.fr", "--type", "APP").returncode, 0)
        self.assertEqual(self.ctl("mailbox", "add", "per@example.fr", "--type", "PER", "--status", "suspended").returncode, 0)
        listing = self.ctl("mailbox", "list").stdout
        self.assertRegex(listing, r"app\.test@example\.fr\s+APP\s+active")
        self.assertRegex(listing, r"per@example\.fr\s+PER\s+suspended")
        duplicate = self.ctl("mailbox", "add", "app.test@example.fr", "--type", "APP")
        self.assertEqual(duplicate.returncode, 1)
        self.assertIn("already exists", duplicate.stderr)
        self.assertEqual(self.ctl("mailbox", "set-status", "per@example.fr", "active").returncode, 0)
        self.assertRegex(self.ctl("mailbox", "list").stdout, r"per@example\.fr\s+PER\s+active")
        self.assertEqual(self.ctl("mailbox", "remove", "per@example.fr").returncode, 0)
        self.assertNotIn("per@example.fr", self.ctl("mailbox", "list").stdout)
        missing = self.ctl("mailbox", "remove", "per@example.fr")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no mailbox per@example.fr", missing.stderr)

    def test_refuses_bad_arguments_with_usage(self):
        for args in (("mailbox", "add", "x@example.fr", "--type", "XYZ"), ("mailbox", "add", "not-an-address", "--type", "APP"),
                     ("mailbox", "frobnicate"), ("certificate", "bind", "x@example.fr")):
            result = self.ctl(*args)
            self.assertEqual(result.returncode, 2, args)
            # What is wrong, how the command goes, where the rest is: not the whole usage.
            lines = result.stderr.splitlines()
            self.assertLessEqual(len(lines), 3, result.stderr)
            self.assertTrue(lines[0].startswith("mssgatectl: "), result.stderr)
            self.assertEqual(lines[-1], "(mssgatectl --help lists every command)")
            self.assertNotIn("CERTIFICATE-SELECTOR is one of", result.stderr)
        self.assertIn("usage: mssgatectl mailbox add ADDRESS --type PER|ORG|APP|CAB",
                      self.ctl("mailbox", "add", "x@example.fr", "--type", "XYZ").stderr)
        self.assertIn("mailbox commands: add, set-status, remove, list",
                      self.ctl("mailbox", "frobnicate").stderr)

    def test_binds_certificates_by_public_key_and_by_issuer_and_serial(self):
        self.ctl("mailbox", "add", "app@example.fr", "--type", "APP")
        cert = pki("org-hopital.crt")
        self.assertEqual(self.ctl("certificate", "bind", "app@example.fr", "--cert", cert).returncode, 0)
        self.assertEqual(self.ctl("certificate", "bind", "app@example.fr", "--cert", cert, "--match", "issuer-serial").returncode, 0)
        again = self.ctl("certificate", "bind", "app@example.fr", "--cert", cert)
        self.assertEqual(again.returncode, 1)
        self.assertIn("already bound", again.stderr)
        nobody = self.ctl("certificate", "bind", "nobody@example.fr", "--cert", cert)
        self.assertEqual(nobody.returncode, 1)
        self.assertIn("no mailbox nobody@example.fr", nobody.stderr)
        listing = self.ctl("certificate", "list").stdout.splitlines()
        self.assertEqual(len(listing), 2)
        self.assertIn("LPS_TEST_HOPITAL", listing[0])
        self.assertEqual(self.ctl("certificate", "unbind", "app@example.fr", "--cert", cert).returncode, 0)
        self.assertEqual(len(self.ctl("certificate", "list").stdout.splitlines()), 1)
        self.assertEqual(self.ctl("certificate", "unbind", "app@example.fr", "--cert", cert).returncode, 1)

    def test_imports_exports_and_syncs_a_directory_file(self):
        folder = os.path.dirname(self.db)
        csv_path = os.path.join(folder, "annuaire.csv")
        with open(csv_path, "w", encoding="utf-8") as f:
            f.write("kind,mailbox,type,status,holder,role,match,value,label\n"
                    "mailbox,App.Labo@Example.fr,APP,,,,,,\n"
                    "mailbox,dr.martin@example.fr,PER,,,,,,\n"
                    "mailbox,old@example.fr,ORG,,,,,,\n"
                    "holder,,,,810001234567,,,,\"Martin, Jeanne\"\n"
                    "attachment,dr.martin@example.fr,,,810001234567,owner,,,\n"
                    "binding,app.labo@example.fr,,,,,spki-sha256," + "ab" * 32 + ",CN=Labo\n")
        imported = self.ctl("directory", "import", csv_path)
        self.assertEqual(imported.returncode, 0, imported.stderr)
        self.assertIn("mailboxes: 3 added", imported.stdout)
        self.assertRegex(self.ctl("mailbox", "list").stdout, r"app\.labo@example\.fr\s+APP\s+active")

        # Export, then import into an empty directory and export again: the same file.
        exported = os.path.join(folder, "export.jsonl")
        self.assertEqual(self.ctl("directory", "export", "--out", exported).returncode, 0)
        other = os.path.join(folder, "other.db")
        again = run(MSSGATECTL, "--database", other, "directory", "import", exported)
        self.assertEqual(again.returncode, 0, again.stderr)
        with open(exported, encoding="utf-8") as f:
            self.assertEqual(run(MSSGATECTL, "--database", other, "directory", "export", "--format", "jsonl").stdout,
                             f.read())
        refused = self.ctl("directory", "export", "--out", exported)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("exists; nothing was written (--overwrite replaces it)", refused.stderr)

        # A file with bad rows: each named by its line, nothing changed.
        before = self.ctl("directory", "export").stdout
        bad_path = os.path.join(folder, "bad.csv")
        with open(bad_path, "w", encoding="utf-8") as f:
            f.write("kind,mailbox,type,holder,role\n"
                    "mailbox,new@example.fr,APP,,\n"
                    "mailbox,broken,APP,,\n"
                    "attachment,nobody@example.fr,,810001234567,owner\n")
        bad = self.ctl("directory", "import", bad_path)
        self.assertEqual(bad.returncode, 1)
        self.assertIn(bad_path + ":3: 'broken' is not a mailbox address", bad.stderr)
        self.assertIn("nothing was changed", bad.stderr)
        self.assertEqual(self.ctl("directory", "export").stdout, before)
        unknown = self.ctl("directory", "import", bad_path.replace("bad", "absent"))
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("No such file or directory", unknown.stderr)

        # A sync from a file without old@: the dry run says so and changes nothing, the sync
        # suspends it (or removes it, when asked).
        sync_path = os.path.join(folder, "sync.csv")
        with open(csv_path, encoding="utf-8") as f, open(sync_path, "w", encoding="utf-8") as g:
            g.write("".join(line for line in f if "old@" not in line))
        dry = self.ctl("directory", "import", sync_path, "--sync", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("~ mailbox old@example.fr ORG suspended", dry.stdout)
        self.assertEqual(self.ctl("directory", "export").stdout, before)
        self.assertEqual(self.ctl("directory", "import", sync_path, "--sync").returncode, 0)
        self.assertRegex(self.ctl("mailbox", "list").stdout, r"old@example\.fr\s+ORG\s+suspended")
        removed = self.ctl("directory", "import", sync_path, "--sync", "--absent", "remove")
        self.assertIn("mailboxes: 0 added, 0 changed, 1 removed", removed.stdout)
        self.assertNotIn("old@example.fr", self.ctl("mailbox", "list").stdout)
        self.assertEqual(self.ctl("directory", "import", sync_path, "--absent", "remove").returncode, 2)

    def test_if_missing_makes_adds_and_binds_repeatable(self):
        steps = (("mailbox", "add", "app@example.fr", "--type", "APP"),
                 ("mailbox", "allow-sender", "app@example.fr", "service@example.fr"),
                 ("holder", "add", "810001234567"),
                 ("holder", "attach", "810001234567", "app@example.fr", "--role", "owner"),
                 ("certificate", "bind", "app@example.fr", "--cert", pki("org-hopital.chain.pem")))
        for step in steps:
            self.assertEqual(self.ctl(*step).returncode, 0, step)
        before = self.ctl("directory", "export").stdout
        for step in steps:
            again = self.ctl(*step, "--if-missing")
            self.assertEqual(again.returncode, 0, (step, again.stderr))
            self.assertIn("already (--if-missing): nothing changed", again.stdout)
            self.assertEqual(self.ctl(*step).returncode, 1, "without it, still refused")
        self.assertEqual(self.ctl("directory", "export").stdout, before)
        # There, but not as asked: an error all the same.
        other = self.ctl("mailbox", "add", "app@example.fr", "--type", "PER", "--if-missing")
        self.assertEqual(other.returncode, 1)
        self.assertIn("already exists as APP active", other.stderr)
        role = self.ctl("holder", "attach", "810001234567", "app@example.fr", "--role", "delegate", "--if-missing")
        self.assertEqual(role.returncode, 1)
        self.assertIn("already attached to app@example.fr as owner", role.stderr)

    def test_holder_list_gives_each_professional_its_mailboxes(self):
        for step in (("mailbox", "add", "a@example.fr", "--type", "PER"),
                     ("mailbox", "add", "b@example.fr", "--type", "CAB"),
                     ("holder", "add", "810001234567", "--label", "Dr Martin"),
                     ("holder", "add", "010000001"),
                     ("holder", "add", "810009999999"),
                     ("holder", "attach", "810001234567", "b@example.fr", "--role", "co-holder"),
                     ("holder", "attach", "810001234567", "a@example.fr", "--role", "owner"),
                     ("holder", "attach", "810009999999", "b@example.fr", "--role", "delegate")):
            self.assertEqual(self.ctl(*step).returncode, 0, step)
        self.assertEqual(self.ctl("holder", "list").stdout,
                         "0010000001\n"  # an ADELI number, as its idNat
                         "810001234567  (Dr Martin)\n  owner  a@example.fr\n  co-holder  b@example.fr\n"
                         "810009999999\n  delegate  b@example.fr\n")

    def test_certificate_fingerprints_match_openssl(self):
        cert = pki("org-hopital.crt")
        output = run(MSSGATECTL, "certificate", "show", cert).stdout
        # "name:   value" lines, then the selectors ("  spki-sha256    value").
        shown = dict(line.split(":", 1) for line in output.splitlines() if re.match(r"^\w+:", line))
        shown.update(re.findall(r"^  (spki-sha256|issuer-serial|organisation) +(.+)$", output, re.M))
        self.assertEqual(shown["organisation"], shown["issuer"].strip() + "|OU=330000000,CN=LPS_TEST_HOPITAL")
        pubkey = run("openssl", "x509", "-in", cert, "-noout", "-pubkey").stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey.encode(), capture_output=True).stdout
        self.assertEqual(shown["spki-sha256"].strip(), hashlib.sha256(der).hexdigest())
        fingerprint = run("openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256").stdout
        self.assertEqual(shown["sha256"].strip(), fingerprint.split("=", 1)[1].strip().replace(":", "").lower())
        serial = run("openssl", "x509", "-in", cert, "-noout", "-serial").stdout.split("=", 1)[1].strip().lstrip("0")
        self.assertEqual(shown["serial"].strip(), serial)


if __name__ == "__main__":
    main()
