#!/usr/bin/env python3
"""Soak: LPS clients send and read messages through mssgate while the peers fail, the configuration
is reloaded and mssgate is killed (SIGKILL) and started again; then every ledger is reconciled:
what the clients were told was accepted, what Dovecot holds (each message found by its
Message-ID, its IHE_XDM archive compared byte for byte), what the journal counted (database and
JSON-lines log).

    tests/soak/soak.py [--seconds 120] [--clients 4] [--readers 2] [--pause 0] [--kills 2]
                       [--faults] [--fault-every 4] [--reload-every 3] [--xdm-share 0.3]
                       [--build build/release] [--delivery-id-header NAME | --no-delivery-id]
                       [--serial-per-mailbox] [--json OUT] [--seed N]
                       [--backend-dir DIR --tap-port PORT --pki DIR]

The senders sign in to submission one in two by the hospital's organisation certificate (SASL
EXTERNAL) and one in two by a Pro Santé Connect token (XOAUTH2, a new token for each session),
and send to a mailbox that Postfix delivers through mssgate's LMTP tap; a share of their messages
carries an IHE_XDM archive with a CDA document and a qualified INS. The readers open that mailbox
over IMAP, by the laboratory's certificate and by a token, and fetch its latest messages.

With --faults, mssgate reaches each peer through a chaos gate (tests/integration/chaos_gate.py):
Dovecot's IMAP, Postfix's submission, Dovecot's LMTP and the test PSC issuer; every --fault-every
seconds one of them, at random, refuses or resets connections, stalls, trickles, cuts or
corrupts its answers for a moment. --reload-every rewrites the configuration (a limit and the
token cache's age) and sends SIGHUP. The kills come at random moments, one in each equal part of
the sending time.

Without --backend-dir it starts its own backend (scripts/backend, ports 34xxx, Postfix
delivering tap.test.mssante.fr to the tap on 34124, Dovecot's Sieve de-duplication on) and its
own test PKI, and stops them at the end. With --backend-dir it uses that running backend (the
ctest fixture's: tap port 21124). The test PSC issuer (tests/psc_issuer) is always its own. The
gateway's configuration says nothing of lmtp.delivery_id_header nor lmtp.serial_per_mailbox
unless --delivery-id-header, --no-delivery-id or --serial-per-mailbox is given, so that an older
build, which does not know the keys, runs too.

Prints a JSON summary (and writes it to --json): the clients', the readers', the mailbox's, the
journal's and the log's ledgers, the faults, reloads and kills, per kill the duplicates it caused
in the mailbox and the deliveries Dovecot's Sieve script discarded, the tap's answer delays, and
`problems`: what the reconciliation found wrong (empty: nothing acknowledged was lost or altered,
no event lost or counted twice, the log holds each event once, no reload failed, mssgate never
stopped by itself and its log holds no sanitizer report). Exits 1 when there is a problem.

Every loop is bounded by a count and a time.
"""

import argparse
import base64
import email
import email.policy
import email.utils
import hashlib
import imaplib
import io
import json
import os
import random
import re
import shutil
import signal
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from chaos_gate import ChaosGate  # noqa: E402
from harness import PscIssuer, xoauth2  # noqa: E402

SENDER = "app.hopital@test.mssante.fr"  # its organisation certificate opens it (EXTERNAL)
TOKEN_SENDER = "dr.martin@test.mssante.fr"  # PROFESSIONAL's own mailbox, opened by a PSC token
PROFESSIONAL = "810001234567"  # the RPPS-based identifier of the issuer's tokens
RECIPIENT = "labo@tap.test.mssante.fr"  # Postfix delivers it through the tap; the readers open it
TAP_DOMAIN = "tap.test.mssante.fr"
PSC_PATH = "/auth/realms/esante-wallet/protocol/openid-connect"
INS_VALUE = "284032A00412323"
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer")
OWN_PORTS = {"IMAP": 34143, "IMAPS": 34993, "LMTP": 34024, "AUTH": 34012, "SMTP": 34025, "SUBMISSION": 34587}
OWN_TAP_PORT = 34124
DRAIN_SECONDS = 180  # at least; after the sending, Postfix's retries must have delivered everything
STOP_SECONDS = 45  # the final SIGTERM's wait: more than mssgate's own stop_timeout (30 s)
START_SECONDS = 30


def client_context(pki, certificate="org-hopital"):
    """What an LPS uses: TLS 1.2, the test PKI's root, and an organisation certificate (or none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "root.crt"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if certificate:
        ctx.load_cert_chain(os.path.join(pki, certificate + ".chain.pem"), os.path.join(pki, certificate + ".key"))
    return ctx


def backend_env(backend_dir):
    values = {}
    with open(os.path.join(backend_dir, "backend.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value.strip("'\"")
    return values


class OwnBackend:
    """A backend of the soak's own (scripts/backend on 34xxx ports) and its test PKI."""

    def __init__(self, work):
        os.chmod(work, 0o755)  # Dovecot runs as its own user, and must reach its directory
        self.pki = os.path.join(work, "pki")
        subprocess.run([os.path.join(ROOT, "tests", "pki", "make-test-pki"), self.pki], check=True,
                       stdout=subprocess.DEVNULL)
        self.dir = os.path.join(work, "backend")
        self.env = dict(os.environ, MSSGATE_BACKEND_DIR=self.dir, MSSGATE_BACKEND_TAP_DOMAIN=TAP_DOMAIN,
                        MSSGATE_BACKEND_TAP_NEXTHOP="127.0.0.1:%d" % OWN_TAP_PORT,
                        MSSGATE_BACKEND_MAILBOXES="%s %s %s" % (SENDER, TOKEN_SENDER, RECIPIENT))
        for name, port in OWN_PORTS.items():
            self.env["MSSGATE_BACKEND_%s_PORT" % name] = str(port)
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "start"], check=True, env=self.env,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "stop"], env=self.env, stdout=subprocess.DEVNULL)


class Peers:
    """Where mssgate finds each peer: straight at the backend and the issuer, or (with faults)
    through a chaos gate in front of each."""

    NAMES = ("imap", "submission", "lmtp", "psc")

    def __init__(self, backend_dir, issuer, faults):
        backend = backend_env(backend_dir)
        ports = {"imap": int(backend["BACKEND_IMAP_PORT"]), "submission": int(backend["BACKEND_SUBMISSION_PORT"]),
                 "lmtp": int(backend["BACKEND_LMTP_PORT"]), "psc": int(issuer.info["port"])}
        self.gates = {name: ChaosGate(port) for name, port in ports.items()} if faults else {}
        self.ports = {name: (self.gates[name].port if faults else port) for name, port in ports.items()}

    def close(self):
        for gate in self.gates.values():
            gate.close()


class Gateway:
    """One mssgate with its IMAP and submission listeners, its LMTP tap, its journal and JSON-lines
    log, that the soak reloads, kills and starts again (the same files each time)."""

    def __init__(self, mssgate, mssgatectl, pki, backend_dir, tap_port, work, peers, issuer, delivery_id_header=None,
                 serial_per_mailbox=False, extra_env=None):
        self.mssgate = mssgate
        self.dir = tempfile.mkdtemp(prefix="soak-gateway-", dir=work)
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ, **(extra_env or {}))
        backend = backend_env(backend_dir)
        self.master_user = backend["BACKEND_MASTER_USER"]
        self.master_secret_file = backend["BACKEND_MASTER_SECRET_FILE"]
        self.database = os.path.join(self.dir, "directory.db")
        for args in (("mailbox", "add", SENDER, "--type", "APP"), ("mailbox", "add", TOKEN_SENDER, "--type", "PER"),
                     ("mailbox", "add", RECIPIENT, "--type", "APP"),
                     ("certificate", "bind", SENDER, "--cert", os.path.join(pki, "org-hopital.crt")),
                     ("certificate", "bind", RECIPIENT, "--cert", os.path.join(pki, "org-labo.crt"),
                      "--match", "issuer-serial"),
                     ("holder", "add", PROFESSIONAL),
                     ("holder", "attach", PROFESSIONAL, TOKEN_SENDER, "--role", "owner"),
                     ("holder", "attach", PROFESSIONAL, RECIPIENT, "--role", "delegate")):
            subprocess.run([mssgatectl, "--database", self.database, *args], check=True, stdout=subprocess.DEVNULL)
        self.journal = os.path.join(self.dir, "indicators.db")
        self.indicator_log = os.path.join(self.dir, "indicators.jsonl")
        self.log_path = os.path.join(self.dir, "mssgate.log")
        self.lmtp_options = "" if delivery_id_header is None else 'delivery_id_header = "%s"\n' % delivery_id_header
        if serial_per_mailbox:
            self.lmtp_options += "serial_per_mailbox = true\n"
        self.pki = pki
        self.peers = peers
        self.issuer = issuer
        self.tap_port = tap_port
        self.config = os.path.join(self.dir, "mssgate.toml")
        self.generation = 0
        self.write_config()
        self.process = None
        self.submission_port = None
        self.imap_port = None
        self.lock = threading.Lock()  # one of start, kill, reload at a time
        self.expected_exit = True

    def write_config(self):
        """The configuration; each generation changes a limit and the token cache's age, so that a
        reload has something to apply (a new token validator included)."""
        pki, ports = self.pki, self.peers.ports
        base = "https://localhost:%d%s" % (ports["psc"], PSC_PATH)
        psc = self.issuer.config(extra='introspection_url = "%s/token/introspect"\ncache_max_age = "%ds"\n'
                                 % (base, 300 - self.generation % 2))
        with open(self.config + ".new", "w") as f:
            f.write(f"""[server]
io_threads = 2
log_level = "info"
log_repeat_limit = 1000000
[tls]
certificate_chain = "{pki}/server.chain.pem"
private_key = "{pki}/server.key"
client_ca = "{pki}/ca-chain.pem"
crl_files = ["{pki}/crls.pem"]
[imap]
starttls_listen = ["127.0.0.1:0"]
[imap.backend]
address = "127.0.0.1:{ports['imap']}"
master_user = "{self.master_user}"
master_password_file = "{self.master_secret_file}"
response_timeout = "3s"
[smtp]
starttls_listen = ["127.0.0.1:0"]
[smtp.backend]
address = "127.0.0.1:{ports['submission']}"
response_timeout = "3s"
data_response_timeout = "10s"
[lmtp]
listen = ["127.0.0.1:{self.tap_port}"]
backend = "127.0.0.1:{ports['lmtp']}"
backend_response_timeout = "10s"
{self.lmtp_options}{psc}[limits]
max_connections_per_address = {1000000 - self.generation % 2}
connection_rate_per_address = 1000000
failed_sign_in_rate_per_address = 1000000
failure_delay = "0ms"
[directory]
sqlite_path = "{self.database}"
[indicators]
journal = "{self.journal}"
log = "{self.indicator_log}"
operator_domains = ["test.mssante.fr", "{TAP_DOMAIN}"]
""")
        os.replace(self.config + ".new", self.config)

    def log(self, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def start(self):
        with self.lock:
            self._start()

    def _start(self):
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([self.mssgate, "--config", self.config], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.expected_exit = False
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            text = self.log(offset)
            if "event=ready" in text:
                self.submission_port = int(re.search(r"listener=submission address=127\.0\.0\.1:(\d+)", text).group(1))
                self.imap_port = int(re.search(r"listener=imap address=127\.0\.0\.1:(\d+)", text).group(1))
                return
            if self.process.poll() is not None:
                raise RuntimeError("mssgate exited:\n" + text[-3000:])
            time.sleep(0.02)
        raise RuntimeError("mssgate not ready in %d s" % START_SECONDS)

    def kill_and_start(self):
        """SIGKILL, then a new start on the same files."""
        with self.lock:
            self.expected_exit = True
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self._start()

    def reload(self, timeout=15.0):
        """A new generation of the configuration and SIGHUP. Returns "reloaded", "reload_failed",
        or None when mssgate wrote neither in `timeout` seconds."""
        with self.lock:
            self.generation += 1
            self.write_config()
            offset = os.path.getsize(self.log_path)
            self.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = re.search(r"event=(reloaded|reload_failed) ", self.log(offset))
                if found:
                    return found.group(1)
                if self.process.poll() is not None:
                    return None
                time.sleep(0.02)
            return None

    def exited_by_itself(self):
        """The exit code when mssgate stopped while nobody asked it to (a crash), else None."""
        with self.lock:
            if not self.expected_exit and self.process.poll() is not None:
                return self.process.returncode
            return None

    def restart_after_crash(self):
        with self.lock:
            self._start()

    def stop(self):
        with self.lock:
            self.expected_exit = True
            if self.process and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            return self.process.returncode if self.process else None


class Ledgers:
    """What each side saw. The senders': each message's Message-ID, what its client was told
    (acked: 250; refused: a 4xx or 5xx; in_flight: no answer, the gateway was killed or the
    connection lost meanwhile), how its client signed in, and the SHA-256 of its IHE_XDM archive
    (None without one). The readers': messages fetched, archives checked, archives altered. The
    faults, reloads and kills: what came when."""

    def __init__(self, run_id):
        self.run_id = run_id
        self.lock = threading.Lock()
        self.messages = {}  # Message-ID -> "acked" | "refused" | "in_flight"
        self.sent = {}  # Message-ID -> {"auth": "certificate" | "psc", "archive": sha256 | None}
        self.kills = []  # wall-clock times
        self.sign_in_failures = {}  # "submission certificate 454" -> count
        self.connect_failures = 0
        self.reads = {"sessions": 0, "messages": 0, "archives_checked": 0, "archives_altered": [], "unknown": 0}
        self.faults = []  # {"at", "peer", "fault"}
        self.reloads = {"reloaded": 0, "reload_failed": 0, "no_answer": 0}
        self.crashes = []  # exit codes of mssgate when it stopped by itself

    def message_id(self, client, n):
        return "<soak-%s-%d-%d@soak.test>" % (self.run_id, client, n)

    def mark(self, message_id, state):
        with self.lock:
            self.messages[message_id] = state

    def with_state(self, state):
        with self.lock:
            return {m for m, s in self.messages.items() if s == state}

    def count_sign_in_failure(self, what):
        with self.lock:
            self.sign_in_failures[what] = self.sign_in_failures.get(what, 0) + 1


def cda_document():
    """A CDA document with a qualified INS (the INS OID of the référentiel)."""
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1"/>
  <recordTarget><patientRole>
    <id root="1.2.250.1.213.1.4.8" extension="%s"/>
    <patient><name><given>MARIE</given><family qualifier="BR">DURANDEAU</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19480922"/></patient>
  </patientRole></recordTarget>
</ClinicalDocument>""" % INS_VALUE).encode()


def xdm_archive(marker):
    """An IHE_XDM.ZIP with one CDA document; `marker` makes each archive's bytes its own."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.TXT", "soak " + marker)
        z.writestr("IHE_XDM/SUBSET01/METADATA.XML",
                   '<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>')
        z.writestr("IHE_XDM/SUBSET01/DOC0001.XML", cda_document())
    return buffer.getvalue()


def compose(sender, message_id, archive):
    """The message a sender submits: plain text, or with its IHE_XDM archive and the X-MSS headers
    that announce a CDA document and a qualified INS."""
    date = email.utils.formatdate()
    if archive is None:
        return ("From: %s\r\nTo: %s\r\nDate: %s\r\nMessage-ID: %s\r\nSubject: soak %s\r\n\r\n"
                "soak message %s\r\n" % (sender, RECIPIENT, date, message_id, message_id, message_id)).encode()
    encoded = base64.encodebytes(archive).decode().replace("\n", "\r\n")
    boundary = "b-" + hashlib.sha256(message_id.encode()).hexdigest()[:16]
    return ("From: {s}\r\nTo: {r}\r\nDate: {d}\r\nMessage-ID: {m}\r\nMIME-Version: 1.0\r\n"
            "Subject: XDM/1.0/DDM soak\r\nX-MSS-CODECDA: 11488-4\r\nX-MSS-INS: O\r\n"
            "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n"
            "--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsoak message {m}\r\n"
            "--{b}\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
            "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n"
            "{a}--{b}--\r\n").format(s=sender, r=RECIPIENT, d=date, m=message_id, b=boundary, a=encoded).encode()


def archive_digest(data):
    """The Message-ID of a stored message and the SHA-256 of its IHE_XDM.ZIP (None without one)."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    digest = None
    for part in message.walk():
        if part.get_filename() == "IHE_XDM.ZIP":
            digest = hashlib.sha256(part.get_payload(decode=True) or b"").hexdigest()
    return (message.get("Message-ID") or "").strip(), digest


def sign_in_smtp(gateway, ctx_certificate, ctx_plain, issuer, use_token):
    """A submission session signed in by certificate or by a new token; the SMTP object, or the
    failure as text ("submission psc 454")."""
    smtp = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
    try:
        smtp.starttls(context=ctx_plain if use_token else ctx_certificate)
        smtp.ehlo("soak.test")
        if use_token:
            token = issuer.issue(PROFESSIONAL)
            code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(TOKEN_SENDER, token).encode()).decode())
            if code == 334:  # RFC 7628's error challenge: an empty answer gets the final reply
                code, _ = smtp.docmd("")
        else:
            code, _ = smtp.docmd("AUTH", "EXTERNAL =")
        if code != 235:
            smtp.close()
            return "submission %s %d" % ("psc" if use_token else "certificate", code)
        return smtp
    except BaseException:
        smtp.close()
        raise


def client_loop(number, gateway, ctx_certificate, ctx_plain, issuer, ledgers, stop, max_messages, pause,
                xdm_share, rng_seed):
    """One LPS: signs in (by certificate when `number` is even, by a token when odd), sends one
    message after the other on one session (`pause` seconds between two), and opens another
    when the session ends. Bounded by `stop` and by max_messages."""
    rng = random.Random(rng_seed)
    use_token = number % 2 == 1
    sender = TOKEN_SENDER if use_token else SENDER
    n = 0
    while not stop.is_set() and n < max_messages:
        try:
            smtp = sign_in_smtp(gateway, ctx_certificate, ctx_plain, issuer, use_token)
        except (OSError, smtplib.SMTPException, ValueError):
            with ledgers.lock:
                ledgers.connect_failures += 1
            stop.wait(0.1)
            continue
        if isinstance(smtp, str):
            ledgers.count_sign_in_failure(smtp)
            stop.wait(0.2)
            continue
        try:
            while not stop.is_set() and n < max_messages:
                message_id = ledgers.message_id(number, n)
                n += 1
                archive = xdm_archive(message_id) if rng.random() < xdm_share else None
                message = compose(sender, message_id, archive)
                with ledgers.lock:
                    ledgers.sent[message_id] = {"auth": "psc" if use_token else "certificate",
                                                "archive": hashlib.sha256(archive).hexdigest() if archive else None}
                ledgers.mark(message_id, "in_flight")
                try:
                    smtp.sendmail(sender, [RECIPIENT], message)
                    ledgers.mark(message_id, "acked")
                except smtplib.SMTPResponseException as e:
                    # A 4xx or 5xx is never a 250: the message was not taken. The session may
                    # be gone (421): a new one is opened.
                    ledgers.mark(message_id, "refused")
                    if e.smtp_code == 421:
                        raise
                if pause:
                    stop.wait(pause)
        except (OSError, smtplib.SMTPException):
            pass  # the gateway was killed or the connection lost: the message under way stays in_flight
        finally:
            try:
                smtp.close()
            except OSError:
                pass


def reader_loop(number, gateway, pki, issuer, ledgers, stop, pause):
    """One LPS reading the recipient's mailbox over IMAP (STARTTLS), by the laboratory's
    certificate (`number` even) or by a token (odd): SELECT, then the latest messages fetched
    whole; each soak message's archive is compared with what its sender sent. A new session
    after every few rounds, or when the session ends."""
    use_token = number % 2 == 1
    ctx = client_context(pki, None if use_token else "org-labo")
    while not stop.is_set():
        try:
            imap = imaplib.IMAP4("127.0.0.1", gateway.imap_port, timeout=30)
        except OSError:
            stop.wait(0.2)
            continue
        try:
            imap.starttls(ssl_context=ctx)
            if use_token:
                credentials = xoauth2(RECIPIENT, issuer.issue(PROFESSIONAL)).encode()
                # An error challenge gets an empty answer, then the tagged NO.
                imap.authenticate("XOAUTH2", lambda challenge: b"" if challenge else credentials)
            else:
                imap.authenticate("EXTERNAL", lambda challenge: RECIPIENT.encode())
            with ledgers.lock:
                ledgers.reads["sessions"] += 1
            for _ in range(5):
                if stop.is_set():
                    break
                typ, data = imap.select("INBOX", readonly=True)
                count = int(data[0]) if typ == "OK" else 0
                if count:
                    typ, fetched = imap.fetch("%d:%d" % (max(1, count - 4), count), "(BODY.PEEK[])")
                    for item in fetched if typ == "OK" else ():
                        if not isinstance(item, tuple):
                            continue
                        check_read(ledgers, item[1])
                stop.wait(pause)
            imap.logout()
        except (OSError, imaplib.IMAP4.error, imaplib.IMAP4.abort, ssl.SSLError, ValueError):
            stop.wait(0.2)  # a kill, a fault, a refused sign-in: a new session
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass


def check_read(ledgers, data):
    message_id, digest = archive_digest(data)
    with ledgers.lock:
        ledgers.reads["messages"] += 1
        sent = ledgers.sent.get(message_id)
        if sent is None:
            if message_id.startswith("<soak-%s-" % ledgers.run_id):
                ledgers.reads["unknown"] += 1
            return
        if sent["archive"] is not None:
            ledgers.reads["archives_checked"] += 1
            if digest != sent["archive"]:
                ledgers.reads["archives_altered"].append(message_id)


# The faults the soak injects: (peer, name, what to tell the gate). Each holds for a moment, then
# the gate serves faithfully again. None corrupts what mssgate sends a peer (a message altered
# on its way to Postfix would be mssgate's fault for nobody): corruption is of the answers.
FAULTS = (
    ("submission", "refuse new connections (reset)", lambda g, r: g.refuse("reset")),
    ("submission", "reset open connections", lambda g, r: g.close_connections(reset=True)),
    ("submission", "answers stalled past the timeouts", lambda g, r: g.fault("stall", "down", existing=True,
                                                                              seconds=None)),
    ("submission", "answers cut at a random byte", lambda g, r: g.fault("truncate", "down", existing=True,
                                                                         after=r.randrange(1, 400))),
    ("submission", "an answer's byte corrupted", lambda g, r: g.fault("corrupt", "down", existing=True,
                                                                       after=r.randrange(0, 400))),
    ("lmtp", "refuse new connections (reset)", lambda g, r: g.refuse("reset")),
    ("lmtp", "reset both ways at a random byte", lambda g, r: g.fault("reset", "up", existing=True,
                                                                       after=r.randrange(1, 6000))),
    ("lmtp", "answers stalled past the timeouts", lambda g, r: g.fault("stall", "down", existing=True, seconds=None)),
    ("lmtp", "answers trickled", lambda g, r: g.fault("trickle", "down", existing=True, rate=8, interval=0.1)),
    ("imap", "refuse new connections (close)", lambda g, r: g.refuse("close")),
    ("imap", "reset open connections", lambda g, r: g.close_connections(reset=True)),
    ("imap", "answers trickled", lambda g, r: g.fault("trickle", "down", existing=True, rate=64, interval=0.05)),
    ("psc", "refuse new connections (reset)", lambda g, r: g.refuse("reset")),
    ("psc", "answers stalled past the timeout", lambda g, r: g.fault("stall", "down", seconds=None)),
    ("psc", "an answer's byte corrupted", lambda g, r: g.fault("corrupt", "down", after=r.randrange(0, 2000))),
)


def fault_loop(peers, ledgers, stop, every, rng, started):
    """Every `every` seconds (give or take a third), one fault at one peer for 0.5 to 3 seconds."""
    while not stop.wait(every * rng.uniform(0.67, 1.33)):
        peer, name, apply = rng.choice(FAULTS)
        gate = peers.gates[peer]
        apply(gate, rng)
        with ledgers.lock:
            ledgers.faults.append({"at_s": round(time.monotonic() - started, 1), "peer": peer, "fault": name})
        stop.wait(rng.uniform(0.5, 3.0))
        gate.clear()
    for gate in peers.gates.values():
        gate.clear()


def reload_loop(gateway, ledgers, stop, every):
    while not stop.wait(every):
        answer = gateway.reload()
        with ledgers.lock:
            ledgers.reloads[answer or "no_answer"] += 1


class Mailbox:
    """The recipient's maildir: each message's copies, by Message-ID, with the time Dovecot stored
    each (the first field of a maildir file name)."""

    def __init__(self, backend_dir):
        local, domain = RECIPIENT.split("@")
        self.folder = os.path.join(backend_env(backend_dir)["BACKEND_MAILDIR_ROOT"], domain, local)

    def copies(self, run_id, digests=None):
        """Message-ID -> the times its copies were stored; with `digests` (a dict), also fills
        Message-ID -> the SHA-256 of each copy's IHE_XDM archive (None without one)."""
        found = {}
        prefix = ("<soak-%s-" % run_id).encode()
        for sub in ("new", "cur"):
            folder = os.path.join(self.folder, sub)
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                try:
                    with open(os.path.join(folder, name), "rb") as f:
                        data = f.read()
                except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                    continue
                for line in data.split(b"\n"):
                    if line.lower().startswith(b"message-id:"):
                        value = line.split(b":", 1)[1].strip()
                        if value.startswith(prefix):
                            found.setdefault(value.decode(), []).append(int(name.split(".", 1)[0]))
                            if digests is not None:
                                digests.setdefault(value.decode(), []).append(archive_digest(data)[1])
                        break
        return found


def postfix_command(backend_dir, command, *args):
    """postqueue or postsuper on the backend's Postfix; its output."""
    result = subprocess.run([command, "-c", os.path.join(backend_dir, "postfix", "etc"), *args],
                            capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


def postfix_queue_empty(backend_dir):
    return "Mail queue is empty" in postfix_command(backend_dir, "postqueue", "-p")


def queue_ids_of(log_text, message_ids):
    """Postfix's queue ids of these messages, from mssgate's `event=message` lines."""
    found = {}
    for m in re.finditer(r"event=message .*?message_id=(\S+) .*?queue_id=(\w+) result=accepted", log_text):
        if m.group(1) in message_ids:
            found[m.group(1)] = m.group(2)
    return found


def postfix_evidence(backend_dir, queue_ids):
    """What Postfix holds and logged of messages that did not arrive: the queue's listing and
    its log lines naming them (a soak that fails keeps what explains it)."""
    lines = []
    path = os.path.join(backend_dir, "postfix", "log", "maillog")
    if queue_ids and os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if any(q in line for q in queue_ids)]
    return {"queue": postfix_command(backend_dir, "postqueue", "-p").splitlines()[:40], "log": lines[-60:]}


def read_journal(path, run_id):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        like = "<soak-%s-%%" % run_id
        rows = db.execute("SELECT seq, event_key, direction, message_id, auth_mode, xdm, documents "
                          "FROM indicator_event").fetchall()
        pending = db.execute("SELECT COUNT(*) FROM indicator_pending").fetchone()[0] \
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'indicator_pending'").fetchone() else 0
    finally:
        db.close()
    return {"rows": rows, "like": like, "pending": pending}


def read_indicator_log(path):
    lines, partial = [], 0
    with open(path, "rb") as f:
        data = f.read()
    for raw in data.split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            partial += 1
    tail = data.rsplit(b"\n", 1)[-1]
    return lines, partial, len(tail)


def dovecot_discards(backend_dir, since_offset):
    """The times (wall clock) of Dovecot's Sieve discards logged after `since_offset`."""
    path = os.path.join(backend_dir, "dovecot", "log", "dovecot.log")
    times = []
    with open(path, "rb") as f:
        f.seek(since_offset)
        text = f.read().decode("utf-8", "replace")
    year = time.localtime().tm_year
    for line in text.splitlines():
        if "sieve:" in line and "discard action" in line:
            stamp = time.mktime(time.strptime("%d %s" % (year, line[:15]), "%Y %b %d %H:%M:%S"))
            times.append(stamp)
    return times


def percentiles(values):
    if not values:
        return {"count": 0}
    values = sorted(values)

    def at(q):
        return values[min(len(values) - 1, int(q * len(values)))]
    return {"count": len(values), "p50": at(0.50), "p99": at(0.99), "max": values[-1]}


def reconcile(ledgers, copies, digests, journal, log_lines, log_partial, log_tail, discards, gateway_log):
    """What must agree. Returns the summary, its `problems` listing every disagreement."""
    problems = []
    acked = ledgers.with_state("acked")
    in_flight = ledgers.with_state("in_flight")
    refused = ledgers.with_state("refused")
    prefix = journal["like"][:-1]
    ours = [r for r in journal["rows"] if r[3] and r[3].startswith(prefix)]
    sent = {}
    received = {}
    rows_of = {}  # (direction, Message-ID) -> (auth_mode, xdm, documents) of its last event
    for _, _, direction, message_id, auth_mode, xdm, documents in ours:
        (sent if direction == "sent" else received)[message_id] = (sent if direction == "sent" else received).get(
            message_id, 0) + 1
        rows_of[(direction, message_id)] = (auth_mode, xdm, documents)
    delivered = set(copies)

    def problem(name, items):
        items = sorted(items)
        if items:
            problems.append({"problem": name, "count": len(items), "examples": items[:5]})
        return len(items)

    summary = {
        "clients": {"acked": len(acked), "refused": len(refused), "in_flight": len(in_flight),
                    "connect_failures": ledgers.connect_failures},
        "mailbox": {"messages": len(delivered), "copies": sum(len(c) for c in copies.values()),
                    "duplicated_messages": sum(1 for c in copies.values() if len(c) > 1),
                    "extra_copies": sum(len(c) - 1 for c in copies.values())},
        "journal": {"sent_events": sum(sent.values()), "received_events": sum(received.values()),
                    "pending_left": journal["pending"]},
    }
    summary["mailbox"]["accepted_lost"] = problem("acknowledged but not delivered", acked - delivered)
    # Told 4xx, or no answer (a kill, a lost connection), yet delivered: Postfix had taken the
    # message when its answer was lost (RFC 1047's window). Allowed; counted once if at all.
    summary["mailbox"]["delivered_not_acked"] = len(delivered & (in_flight | refused))
    problem("delivered but never sent", delivered - acked - in_flight - refused)
    summary["journal"]["acked_without_sent_event"] = problem("acknowledged without its sent event",
                                                             acked - set(sent))
    problem("sent event for a message never sent", set(sent) - acked - in_flight - refused)
    problem("sent event counted twice", {m for m, n in sent.items() if n > 1})
    summary["journal"]["delivered_uncounted"] = problem("delivered without its received event",
                                                        delivered - set(received))
    summary["journal"]["counted_undelivered"] = problem("received event for a message not delivered",
                                                        set(received) - delivered)
    summary["journal"]["received_doubled"] = problem("received event counted twice",
                                                     {m for m, n in received.items() if n > 1})
    if journal["pending"]:
        problems.append({"problem": "pending events left in the journal", "count": journal["pending"]})

    # What each event says of its message: how its sender signed in, its archive and document.
    with ledgers.lock:
        sent_ledger = dict(ledgers.sent)
    wrong_sent, wrong_received = set(), set()
    for message_id in set(sent) & set(sent_ledger):
        auth_mode, xdm, documents = rows_of[("sent", message_id)]
        has_archive = sent_ledger[message_id]["archive"] is not None
        if auth_mode != sent_ledger[message_id]["auth"] or bool(xdm) != has_archive or documents != int(has_archive):
            wrong_sent.add(message_id)
    for message_id in set(received) & set(sent_ledger):
        _, xdm, documents = rows_of[("received", message_id)]
        has_archive = sent_ledger[message_id]["archive"] is not None
        if bool(xdm) != has_archive or documents != int(has_archive):
            wrong_received.add(message_id)
    summary["journal"]["xdm_sent_events"] = sum(1 for m in sent if rows_of[("sent", m)][1])
    summary["journal"]["xdm_received_events"] = sum(1 for m in received if rows_of[("received", m)][1])
    summary["journal"]["sent_by"] = {mode: sum(1 for m in sent if rows_of[("sent", m)][0] == mode)
                                     for mode in ("certificate", "psc")}
    problem("sent event whose sign-in, archive or documents are not the message's", wrong_sent)
    problem("received event whose archive or documents are not the message's", wrong_received)

    # Every copy in the mailbox holds the archive its sender sent, byte for byte; so did every
    # message a reader fetched.
    altered = {m for m, found in digests.items() if m in sent_ledger
               and any(d != sent_ledger[m]["archive"] for d in found)}
    summary["mailbox"]["with_archive"] = sum(1 for m in delivered if m in sent_ledger and sent_ledger[m]["archive"])
    summary["mailbox"]["archives_altered"] = problem("a stored copy whose archive is not what was sent", altered)
    with ledgers.lock:
        reads = dict(ledgers.reads)
    summary["readers"] = dict(reads, archives_altered=len(reads["archives_altered"]))
    problem("a fetched message whose archive is not what was sent", set(reads["archives_altered"]))
    problem("a fetched soak message no client sent", range(reads["unknown"]))

    # What mssgate wrote: no sanitizer report, no INS value (in its log or the indicator log).
    reports = SANITIZER_REPORT.findall(gateway_log)
    summary["gateway"] = {"sanitizer_reports": len(reports), "crashes": len(ledgers.crashes)}
    problem("a sanitizer report in mssgate's log", range(len(reports)))
    problem("mssgate stopped by itself", ledgers.crashes)
    problem("an INS value in mssgate's log", range(gateway_log.count(INS_VALUE)))
    problem("an INS value in the indicator log", range(sum(1 for line in log_lines if INS_VALUE in json.dumps(line))))

    # The JSON-lines log holds each of the journal's events once, in seq order.
    log_seqs = [line.get("seq") for line in log_lines]
    db_keys = {row[0]: row[1] for row in journal["rows"]}
    log_keys = {}
    doubled = set()
    for line in log_lines:
        if line.get("seq") in log_keys:
            doubled.add(line.get("seq"))
        log_keys[line.get("seq")] = line.get("key")
    summary["log"] = {"lines": len(log_lines), "unreadable_lines": log_partial, "partial_last_line": log_tail,
                      "seq_doubled": problem("log line written twice (same seq)", doubled),
                      "missing": problem("journal event missing from the log", set(db_keys) - set(log_keys)),
                      "extra": problem("log line for no journal event", set(log_keys) - set(db_keys)),
                      "out_of_order": int(log_seqs != sorted(log_seqs))}
    problem("log line whose key is not the journal's",
            {s for s, k in log_keys.items() if s in db_keys and db_keys[s] != k})
    problem("log line that is not JSON", range(log_partial))
    if log_tail:
        problems.append({"problem": "the log ends with a partial line", "count": 1})
    if log_seqs != sorted(log_seqs):
        problems.append({"problem": "log lines out of seq order", "count": 1})

    # Each duplicate (a message stored more than once) and each Sieve discard goes to the last
    # kill before it: a duplicate's first copy was stored just before that kill, the discarded
    # delivery came after the restart that followed it.
    kills = [{"at": round(at, 3), "duplicates": 0, "sieve_discards": 0} for at in ledgers.kills]
    for times in copies.values():
        if len(times) > 1:
            first = min(times)
            index = next((i for i, k in enumerate(ledgers.kills) if k >= first - 1), None)
            if index is not None:
                kills[index]["duplicates"] += len(times) - 1
    for at in discards:
        index = max((i for i, k in enumerate(ledgers.kills) if k <= at + 1), default=None)
        if index is not None:
            kills[index]["sieve_discards"] += 1
    summary["kills"] = kills
    summary["problems"] = problems
    return summary


def wait_for_drain(backend_dir, mailbox, ledgers, seconds):
    """Until Postfix's queue is empty and every acknowledged message is delivered (or `seconds`).
    Every 5 s Postfix is asked to try its deferred mail now (postqueue -f): the soak checks that
    nothing is lost, not Postfix's retry schedule, which once left a message untried for the
    whole 180 s of a CI run's drain."""
    deadline = time.monotonic() + seconds
    next_flush = time.monotonic() + 5
    while time.monotonic() < deadline:
        delivered = set(mailbox.copies(ledgers.run_id))
        if ledgers.with_state("acked") <= delivered and postfix_queue_empty(backend_dir):
            return True
        if time.monotonic() >= next_flush:
            postfix_command(backend_dir, "postqueue", "-f")
            next_flush = time.monotonic() + 5
        time.sleep(1)
    return False


def run(mssgate, mssgatectl, pki, backend_dir, tap_port, seconds=120, clients=4, kills=2,
        delivery_id_header=None, max_messages=100000, seed=None, pause=0.0, serial_per_mailbox=False,
        readers=2, faults=False, fault_every=4.0, reload_every=0.0, xdm_share=0.3, extra_env=None):
    """One soak against a running backend. Returns the summary."""
    rng = random.Random(seed)
    run_id = "%d%04d" % (int(time.time()), rng.randrange(10000))
    work = tempfile.mkdtemp(prefix="mssgate-soak-")
    issuer = PscIssuer(pki)
    peers = Peers(backend_dir, issuer, faults)
    gateway = Gateway(mssgate, mssgatectl, pki, backend_dir, tap_port, work, peers, issuer, delivery_id_header,
                      serial_per_mailbox, extra_env)
    ledgers = Ledgers(run_id)
    mailbox = Mailbox(backend_dir)
    dovecot_log = os.path.join(backend_dir, "dovecot", "log", "dovecot.log")
    dovecot_offset = os.path.getsize(dovecot_log) if os.path.exists(dovecot_log) else 0
    stop = threading.Event()
    ctx_certificate, ctx_plain = client_context(pki), client_context(pki, None)
    started = time.monotonic()
    threads = []
    try:
        gateway.start()
        threads = [threading.Thread(target=client_loop,
                                    args=(n, gateway, ctx_certificate, ctx_plain, issuer, ledgers, stop,
                                          max_messages // clients, pause, xdm_share, rng.randrange(1 << 30)))
                   for n in range(clients)]
        threads += [threading.Thread(target=reader_loop, args=(n, gateway, pki, issuer, ledgers, stop, 0.5))
                    for n in range(readers)]
        if faults:
            threads.append(threading.Thread(target=fault_loop,
                                            args=(peers, ledgers, stop, fault_every, random.Random(rng.random()),
                                                  started)))
        if reload_every:
            threads.append(threading.Thread(target=reload_loop, args=(gateway, ledgers, stop, reload_every)))
        for t in threads:
            t.start()
        # The kills come at random moments, one in each equal part of the sending time. Meanwhile
        # mssgate must not stop by itself; if it does, it is counted and started again.
        part = seconds / (kills + 1)
        schedule = [started + part * (k + 1) + rng.uniform(-part / 3, part / 3) for k in range(kills)]
        while time.monotonic() < started + seconds:
            if schedule and time.monotonic() >= schedule[0]:
                schedule.pop(0)
                gateway.kill_and_start()
                ledgers.kills.append(time.time())
            code = gateway.exited_by_itself()
            if code is not None:
                ledgers.crashes.append(code)
                gateway.restart_after_crash()
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        peers_left_faulty = [name for name, gate in peers.gates.items() if gate.fault_for_new or gate.refusing]
    drain_seconds = max(DRAIN_SECONDS, seconds / 2)  # a backlog of a long run takes its time
    drained = wait_for_drain(backend_dir, mailbox, ledgers, drain_seconds)
    log_text = gateway.log()
    undelivered = queue_ids_of(log_text, (ledgers.with_state("acked") | ledgers.with_state("in_flight")
                                          | ledgers.with_state("refused")) - set(mailbox.copies(run_id)))
    delays = [int(m) for m in re.findall(r"event=delivery .*?answer_delay_us=(\d+)", log_text)]
    truncations = len(re.findall(r"event=indicator_log_truncated ", log_text))
    recovered = sum(int(m) for m in re.findall(r"event=indicator_pending_recovered events=(\d+)", log_text))
    code = gateway.stop()
    log_text = gateway.log()  # with what the stop wrote (LeakSanitizer's report, for one)
    peers.close()
    issuer.stop()
    digests = {}
    copies = mailbox.copies(run_id, digests)
    journal = read_journal(gateway.journal, run_id)
    log_lines, log_partial, log_tail = read_indicator_log(gateway.indicator_log)
    summary = reconcile(ledgers, copies, digests, journal, log_lines, log_partial, log_tail,
                        dovecot_discards(backend_dir, dovecot_offset), log_text)
    with ledgers.lock:
        summary["clients"]["sign_in_failures"] = dict(ledgers.sign_in_failures)
        summary["faults"] = {"count": len(ledgers.faults), "by_peer": {p: sum(1 for f in ledgers.faults
                                                                              if f["peer"] == p) for p in Peers.NAMES},
                             "list": ledgers.faults}
        summary["reloads"] = dict(ledgers.reloads)
    summary["run"] = {"id": run_id, "seconds": seconds, "clients": clients, "readers": readers, "pause": pause,
                      "kills": kills, "faults": faults, "fault_every": fault_every, "reload_every": reload_every,
                      "xdm_share": xdm_share, "mssgate": mssgate,
                      "delivery_id_header": delivery_id_header, "serial_per_mailbox": serial_per_mailbox,
                      "drained": drained, "exit_code": code,
                      "log_truncations": truncations, "pending_recovered": recovered,
                      "elapsed_s": round(time.monotonic() - started, 1)}
    summary["answer_delay_us"] = percentiles(delays)
    if not drained:
        summary["problems"].append({"problem": "Postfix's queue did not drain in %d s" % drain_seconds, "count": 1})
        summary["postfix"] = postfix_evidence(backend_dir, set(undelivered.values()))
    # What this run left in Postfix's queue goes, so that a later user of the same backend (the
    # next test on its LMTP tap port) is not delivered the soak's messages.
    for queue_id in sorted(set(undelivered.values())):
        postfix_command(backend_dir, "postsuper", "-d", queue_id)
    if code != 0:
        summary["problems"].append({"problem": "mssgate stopped with %s" % code, "count": 1})
    if ledgers.reloads["reload_failed"] or ledgers.reloads["no_answer"]:
        summary["problems"].append({"problem": "a reload failed or went unanswered",
                                    "count": ledgers.reloads["reload_failed"] + ledgers.reloads["no_answer"]})
    if peers_left_faulty:
        summary["problems"].append({"problem": "a gate still faulty at the end", "count": len(peers_left_faulty)})
    if not summary["problems"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        summary["run"]["kept_files"] = work
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long the clients send (default 120)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs while the clients send (default 2)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds each client waits between two messages")
    parser.add_argument("--readers", type=int, default=2, help="IMAP readers of the recipient's mailbox (default 2)")
    parser.add_argument("--faults", action="store_true", help="put a chaos gate before each peer and inject faults")
    parser.add_argument("--fault-every", type=float, default=4.0, help="seconds between two faults (default 4)")
    parser.add_argument("--reload-every", type=float, default=0.0, help="seconds between two reloads (default: none)")
    parser.add_argument("--xdm-share", type=float, default=0.3, help="share of messages with an IHE_XDM archive")
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                        help="the build tree with daemon/mssgate and daemon/mssgatectl")
    parser.add_argument("--delivery-id-header", default=None, help="lmtp.delivery_id_header (default: not set)")
    parser.add_argument("--no-delivery-id", action="store_true", help='lmtp.delivery_id_header = ""')
    parser.add_argument("--serial-per-mailbox", action="store_true", help="lmtp.serial_per_mailbox = true")
    parser.add_argument("--backend-dir", help="a running backend to use (default: start one on 34xxx ports)")
    parser.add_argument("--tap-port", type=int, help="where that backend's Postfix delivers %s" % TAP_DOMAIN)
    parser.add_argument("--pki", help="the test PKI of that backend's tests")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()
    header = "" if args.no_delivery_id else args.delivery_id_header
    build = os.path.abspath(args.build)
    mssgate = os.path.join(build, "daemon", "mssgate")
    mssgatectl = os.path.join(build, "daemon", "mssgatectl")
    own = None
    if args.backend_dir:
        if not (args.tap_port and args.pki):
            parser.error("--backend-dir needs --tap-port and --pki")
        backend_dir, tap_port, pki = os.path.abspath(args.backend_dir), args.tap_port, os.path.abspath(args.pki)
    else:
        work = tempfile.mkdtemp(prefix="mssgate-soak-backend-")
        own = OwnBackend(work)
        backend_dir, tap_port, pki = own.dir, OWN_TAP_PORT, own.pki
    try:
        summary = run(mssgate, mssgatectl, pki, backend_dir, tap_port, args.seconds, args.clients, args.kills,
                      header, seed=args.seed, pause=args.pause, serial_per_mailbox=args.serial_per_mailbox,
                      readers=args.readers, faults=args.faults, fault_every=args.fault_every,
                      reload_every=args.reload_every, xdm_share=args.xdm_share)
    finally:
        if own:
            own.stop()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
