"""Starts a real mssgate in front of the test backend, and talks to it like a client would.

The ctest fixtures start the backend (scripts/backend) and make the test PKI
(tests/pki/make-test-pki); their locations come from the environment:
MSSGATE_BIN, MSSGATECTL_BIN, MSSGATE_TEST_PKI, MSSGATE_BACKEND_DIR.
"""

import base64
import os
import re
import resource
import shutil
import signal
import smtplib
import sys
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from chaos_gate import ChaosGate

PKI = os.environ.get("MSSGATE_TEST_PKI", "")
BACKEND_DIR = os.environ.get("MSSGATE_BACKEND_DIR", "")
MSSGATE = os.environ.get("MSSGATE_BIN", "")
MSSGATECTL = os.environ.get("MSSGATECTL_BIN", "")

DOMAIN = "test.mssante.fr"
APP_HOPITAL = "app.hopital@" + DOMAIN
APP_LABO = "app.labo@" + DOMAIN
APP_SUSPENDED = "app.suspendue@" + DOMAIN
APP_GHOST = "app.fantome@" + DOMAIN  # in the directory, unknown to Dovecot
PER_MARTIN = "dr.martin@" + DOMAIN


def backend_env():
    """The variables scripts/backend wrote for this run."""
    values = {}
    with open(os.path.join(BACKEND_DIR, "backend.env")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    return values


def pki(name):
    return os.path.join(PKI, name)


def admin_tls_section(writers=(), extra=""):
    """An [admin] section: the endpoint on loopback over TLS with the test PKI's client
    certificates, and the provisioning API's writers (their spki-sha256)."""
    text = ('[admin]\nlisten = ["127.0.0.1:0"]\ncertificate_chain = "%s"\nprivate_key = "%s"\nclient_ca = "%s"\n'
            % (pki("server.chain.pem"), pki("server.key"), pki("ca-chain.pem")))
    if writers:
        text += "provisioning_writers = [%s]\n" % ", ".join('"%s"' % w for w in writers)
    return text + extra


def client_context(cert=None, maximum=ssl.TLSVersion.TLSv1_2, minimum=ssl.TLSVersion.TLSv1_2, ciphers=None):
    """A client TLS context that trusts the test PKI, optionally with a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("root.crt"))
    ctx.minimum_version = minimum
    ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(pki(cert + ".chain.pem"), pki(cert + ".key"))
    return ctx


def ctl(database, *args, check=True, config=None):
    """mssgatectl on the SQLite directory `database`, or on the store of the configuration file
    `config` when given (a PostgreSQL directory)."""
    where = ["--config", config] if config else ["--database", database]
    result = subprocess.run([MSSGATECTL, *where, *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError("mssgatectl %s failed: %s" % (" ".join(args), result.stderr))
    return result


# The configuration's client timeouts (see Gateway), which tests measure.
LOGIN_TIMEOUT = 3.0  # [imap] login_timeout: a client silent before signing in is closed then
HANDSHAKE_TIMEOUT = 5.0  # [tls] handshake_timeout
COMMAND_TIMEOUT = 5.0  # [smtp] command_timeout
# How long a test waits for a close that the server owes at once (after a BYE, a 421, ...).
# It must stay below the client timeouts above: a session the server wrongly leaves open is
# then closed by its idle timer only after this wait, and the check fails as it should.
CLOSE_TIMEOUT = 2.0
assert CLOSE_TIMEOUT < min(LOGIN_TIMEOUT, COMMAND_TIMEOUT)


def wait_for_close(read, sock, timeout=CLOSE_TIMEOUT):
    """Reads with `read` (a recv-like callable on `sock`, or on a buffered reader of it) until the
    server closes the connection or `timeout` seconds have passed. Returns (how, data): how is
    "eof" (end of stream, or a TLS close), "reset" (a reset or a TLS alert) or "open" (nothing
    ended the connection in time: a timeout is never a close); data is what was received."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "open", data
        sock.settimeout(remaining)
        try:
            chunk = read(65536)
        # socket.timeout is TimeoutError, a subclass of OSError: it must be caught first.
        except TimeoutError:
            return "open", data
        except (ConnectionError, ssl.SSLError):
            return "reset", data
        if not chunk:
            return "eof", data
        data += chunk


# The [limits] of a test gateway when the test gives none: far above what any test does.
LIMITS_OFF = """max_connections_per_address = 1000000
connection_rate_per_address = 1000000
failed_sign_in_rate_per_address = 1000000
logged_events_per_address = 1000000
failure_delay = "0ms"
"""


class Gateway:
    """One mssgate process with its own configuration, directory and log."""

    def __init__(self, extra_config="", backend_address=None, imap_section="", smtp_section="",
                 smtp_backend_address=None, max_message_bytes="30MiB", psc_section="",
                 server_section="", tls_section="", limits_section=None, postgresql=None,
                 populate=True):
        self.dir = tempfile.mkdtemp(prefix="mssgate-it-")
        self.log_path = os.path.join(self.dir, "mssgate.log")
        self.database = os.path.join(self.dir, "directory.db")
        env = backend_env()
        self.backend = env
        address = backend_address or "127.0.0.1:%s" % env["BACKEND_IMAP_PORT"]
        smtp_address = smtp_backend_address or "127.0.0.1:%s" % env["BACKEND_SUBMISSION_PORT"]
        self.config_path = os.path.join(self.dir, "mssgate.toml")
        # Tests provoke the same refusal many times: every line stays, unless a test says otherwise.
        repeat_limit = "" if "log_repeat_limit" in server_section else "log_repeat_limit = 1000000"
        literal_cap = "" if "max_literal_bytes" in imap_section else "max_literal_bytes = 16384"
        # Every test connects from 127.0.0.1 and many fail sign-ins on purpose: the per-address
        # limits stay out of their way (no cap reached, no delay, every audit event written),
        # unless a test gives its own [limits] lines (LIMITS_OFF's defaults are then not set).
        limits = LIMITS_OFF if limits_section is None else limits_section
        # `postgresql`: the variables of scripts/postgres's postgres.env; the directory is then
        # PostgreSQL's, and mssgatectl reaches it through the configuration.
        self.postgresql = postgresql
        storage = ""
        if postgresql:
            storage = ('[storage]\nbackend = "postgresql"\npostgresql = "%s"\npassword_file = "%s"\n'
                       % (postgresql["PG_URL"], postgresql["PG_PASSWORD_FILE"]))
            # The shared indicator journal knows each gateway by its name.
            if "instance" not in server_section:
                server_section += '\ninstance = "%s"' % os.path.basename(self.dir)
        with open(self.config_path, "w") as f:
            f.write(f"""
[server]
io_threads = 2
log_level = "debug"
{repeat_limit}
{server_section}

[tls]
certificate_chain = "{pki('server.chain.pem')}"
private_key = "{pki('server.key')}"
client_ca = "{pki('ca-chain.pem')}"
crl_files = ["{pki('crls.pem')}"]
handshake_timeout = "{HANDSHAKE_TIMEOUT:g}s"
{tls_section}

[imap]
starttls_listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
max_line_bytes = 4096
{literal_cap}
login_timeout = "{LOGIN_TIMEOUT:g}s"
{imap_section}

[imap.backend]
address = "{address}"
master_user = "{env['BACKEND_MASTER_USER']}"
master_password_file = "{env['BACKEND_MASTER_SECRET_FILE']}"
connect_timeout = "2s"
response_timeout = "5s"

[smtp]
starttls_listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
max_message_bytes = "{max_message_bytes}"
command_timeout = "{COMMAND_TIMEOUT:g}s"
data_timeout = "3s"
{smtp_section}

[smtp.backend]
address = "{smtp_address}"
connect_timeout = "2s"
response_timeout = "5s"
data_response_timeout = "30s"

{psc_section}

{storage}

[limits]
{limits}

[directory]
sqlite_path = "{self.database}"
# Changes made while the gateway runs are in force within this interval (plus the read).
refresh_interval = "100ms"
{extra_config}
""")
        # A gateway sharing a directory another one populated (PostgreSQL) does not add to it.
        if populate:
            self.populate_directory()
        self.process = None
        self.ports = {}
        # Where log searches start by default (see mark()).
        self.log_start = 0

    def set_option(self, table, key, value):
        """Sets `key = value` (value: TOML text, '"1s"') in [table] of the configuration file, before
        start(): the key's line is replaced, or added under the table's header."""
        with open(self.config_path) as f:
            lines = f.read().split("\n")
        header = lines.index("[%s]" % table)
        end = next((i for i in range(header + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        setting = "%s = %s" % (key, value)
        for i in range(header + 1, end):
            if re.match(r"%s\s*=" % re.escape(key), lines[i]):
                lines[i] = setting
                break
        else:
            lines.insert(header + 1, setting)
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines))

    def ctl(self, *args, check=True):
        """mssgatectl on this gateway's directory, SQLite or PostgreSQL."""
        return ctl(self.database, *args, check=check, config=self.config_path if self.postgresql else None)

    def populate_directory(self):
        self.ctl("mailbox", "add", APP_HOPITAL, "--type", "APP")
        self.ctl("mailbox", "add", APP_LABO, "--type", "APP")
        self.ctl("mailbox", "add", APP_SUSPENDED, "--type", "APP", "--status", "suspended")
        self.ctl("mailbox", "add", APP_GHOST, "--type", "APP")
        self.ctl("mailbox", "add", PER_MARTIN, "--type", "PER")
        # org-hopital opens exactly one mailbox, recognised by its public key.
        self.ctl("certificate", "bind", APP_HOPITAL, "--cert", pki("org-hopital.crt"))
        # org-labo opens several, recognised by issuer and serial number.
        for mailbox in (APP_SUSPENDED, APP_GHOST, PER_MARTIN):
            self.ctl("certificate", "bind", mailbox, "--cert", pki("org-labo.crt"), "--match", "issuer-serial")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, extra_env=None, extra_args=(), open_file_limit=None):
        # A restart appends to the same log: only what this process writes counts.
        offset = self.mark()
        log = open(self.log_path, "ab")
        env = dict(os.environ, **(extra_env or {}))
        # `open_file_limit`: the process's RLIMIT_NOFILE, soft and hard (it raises the soft one).
        limit = None if open_file_limit is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_file_limit, open_file_limit)))
        self.process = subprocess.Popen([MSSGATE, "--config", self.config_path, *extra_args], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=limit)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = self.log(since=offset)
            if "event=ready" in text:
                for name, port in re.findall(r"event=listening listener=(\w+) address=127\.0\.0\.1:(\d+)", text):
                    self.ports[name] = int(port)
                return
            if self.process.poll() is not None:
                raise AssertionError("mssgate exited with %s:\n%s" % (self.process.returncode, text))
            time.sleep(0.02)
        raise AssertionError("mssgate not ready in 15 s:\n" + self.log())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.returncode not in (0, None):
            # The directory stays, with the log, for a look at what went wrong.
            raise AssertionError("mssgate exited with %s (files in %s):\n%s"
                                 % (self.process.returncode, self.dir, self.log()[-4000:]))
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_size(self):
        """The log's length now, in bytes: an offset for log() and wait_for_log()."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def mark(self):
        """Log searches (wait_for_log) look from here on by default, and returns this offset.
        start() marks the start of the process; GatewayTestCase.setUp marks the start of each
        test, so that a check is never met by a line an earlier test caused."""
        self.log_start = self.log_size()
        return self.log_start

    def log(self, since=0):
        """The log's text, from byte offset `since` (the whole log by default)."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, pattern, timeout=10.0, since=None):
        """Waits until the log written after byte offset `since` matches `pattern` (a regex) and
        returns the match. `since` is the last mark() when not given: the start of the current
        test, or of the process for a gateway a test started itself. A test that needs a line
        written before says so with an explicit offset (0: the whole log)."""
        if since is None:
            since = self.log_start
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log(since=since))
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("no log line written since offset %d matches %r:\n%s"
                             % (since, pattern, self.log(since=since)[-3000:]))

    def session_of(self, sock, timeout=10.0, since=None):
        """The id of the session that the client socket `sock` opened, from its connect line
        (written after offset `since`, the last mark() by default, and matched by the client's
        port). The kernel reuses ephemeral ports, so a test that opens many connections may see
        an earlier session on the same port: the latest connect line is the one taken, and such
        a test passes an offset taken before it connected."""
        address, port = sock.getsockname()[:2]
        pattern = r"event=connect session=(\w+) listener=\w+ peer=%s:%d(?:\s|$)" % (re.escape(address), port)
        self.wait_for_log(pattern, timeout=timeout, since=since)
        matches = re.findall(pattern, self.log(since=self.log_start if since is None else since))
        return matches[-1]

    def change_directory(self, *args):
        """Runs one mssgatectl command that changes the directory of the running gateway, then
        waits until the gateway has the change in force: mssgate reads the directory again when
        it sees a commit (every directory.refresh_interval), and logs directory_loaded. The log
        is searched from an offset taken before the command, so the event found comes from a read
        made after the commit. One command per call: a read between two commands would miss
        the second."""
        offset = self.log_size()
        result = self.ctl(*args)
        self.wait_for_log(r"event=directory_loaded ", since=offset)
        return result

    @property
    def imap_port(self):
        return self.ports["imap"]

    @property
    def imaps_port(self):
        return self.ports["imaps"]

    @property
    def submission_port(self):
        return self.ports["submission"]

    @property
    def submissions_port(self):
        return self.ports["submissions"]


class RawImap:
    """A line-level IMAP client, for checking exact protocol behaviour."""

    def __init__(self, port, implicit_ctx=None, timeout=10, source=None):
        # `source`: another loopback address (127.0.0.2, ...) to connect from, as another client.
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        if implicit_ctx:
            sock = implicit_ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buffer = b""
        self.greeting = self.read_line()

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; buffered: %r" % self.buffer)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def command(self, tag, text):
        """Sends one command and returns (untagged lines, tagged line)."""
        self.send(("%s %s\r\n" % (tag, text)).encode())
        return self.read_until_tagged(tag)

    def read_until_tagged(self, tag):
        untagged = []
        while True:
            line = self.read_line()
            if line.startswith(tag + " "):
                return untagged, line
            untagged.append(line)

    def starttls(self, ctx, tag="s1"):
        _, tagged = self.command(tag, "STARTTLS")
        if not tagged.startswith(tag + " OK"):
            raise AssertionError(tagged)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def authenticate_external(self, authzid=None, initial_response=True, tag="a1"):
        encoded = base64.b64encode(authzid.encode()).decode() if authzid else "="
        if initial_response:
            return self.command(tag, "AUTHENTICATE EXTERNAL " + encoded)
        self.send(("%s AUTHENTICATE EXTERNAL\r\n" % tag).encode())
        line = self.read_line()
        if not line.startswith("+"):
            raise AssertionError("expected a continuation, got " + line)
        self.send((encoded if authzid else "").encode() + b"\r\n")
        return self.read_until_tagged(tag)

    def closed_by_server(self, timeout=CLOSE_TIMEOUT):
        """True when the server closes the connection (end of stream, reset, TLS alert) within
        `timeout` seconds, False when it is still open then. What arrives meanwhile is kept in
        the buffer, for the test to look at."""
        how, data = wait_for_close(self.sock.recv, self.sock, timeout)
        self.buffer += data
        return how != "open"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class StrictSmtpMixin:
    """smtplib's `with` sends QUIT and takes a closed connection for an answer: a session the
    server ended too early passed unnoticed. Here QUIT must get its 221."""

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                code, text = self.docmd("QUIT")
                if code != 221:
                    raise AssertionError("QUIT answered %d %s" % (code, text.decode(errors="replace")))
        finally:
            self.close()


class SMTP(StrictSmtpMixin, smtplib.SMTP):
    pass


class SMTP_SSL(StrictSmtpMixin, smtplib.SMTP_SSL):
    pass


def assert_smtp_session_ends(test, smtp, reply, timeout=CLOSE_TIMEOUT):
    """The server answers exactly `reply` ((code, text) as smtplib's getreply() returns it; a
    missing answer is a failure), then closes the connection (end of stream, or reset) within
    `timeout` seconds without sending anything more. A timeout is a failure, not a close."""
    test.assertEqual(smtp.getreply(), reply)
    how, data = wait_for_close(smtp.file.read1, smtp.sock, timeout)
    test.assertEqual(data, b"", "sent after the answer")
    test.assertIn(how, ("eof", "reset"), "the session is still open %g s after the answer" % timeout)
    smtp.close()


def maildir(mailbox):
    local, domain = mailbox.split("@")
    return os.path.join(backend_env()["BACKEND_MAILDIR_ROOT"], domain, local)


def delivered_messages(mailbox, marker):
    """The messages in `mailbox` whose bytes contain `marker` (bytes)."""
    found = []
    for sub in ("new", "cur"):
        folder = os.path.join(maildir(mailbox), sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                continue
            if marker in data:
                found.append(data)
    return found


def wait_for_delivery(mailbox, marker, count=1, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = delivered_messages(mailbox, marker)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError("%d message(s) with %r not delivered to %s in %.0f s" % (count, marker, mailbox, timeout))


def read_text(path):
    """A log file as text (bytes that are not UTF-8 replaced)."""
    with open(path, errors="replace") as f:
        return f.read()


def wait_for_text(path, pattern, timeout=10.0):
    """Waits until the file at `path` (a backend's log, HAProxy's) matches `pattern`, a regex."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, read_text(path)):
            return
        time.sleep(0.05)
    raise AssertionError("%r not in %s" % (pattern, path))


def postfix_queue(*args):
    """postqueue on the test backend's Postfix (-p lists the queue, -f flushes it)."""
    return subprocess.run(["postqueue", "-c", os.path.join(BACKEND_DIR, "postfix", "etc"), *args],
                          capture_output=True, text=True, timeout=30)


def postfix_queue_drained(timeout, pause):
    """Asks Postfix to try its deferred mail now (its own retry may come a minute later), every
    `pause` seconds, until its queue is empty: None once it is, or the queue's listing when
    `timeout` seconds passed first."""
    deadline = time.monotonic() + timeout
    while True:
        listing = postfix_queue("-p").stdout
        if "Mail queue is empty" in listing:
            return None
        if time.monotonic() > deadline:
            return listing
        postfix_queue("-f")
        time.sleep(pause)


def wait_postfix_queue_empty(timeout=60.0):
    """Until Postfix has no message left to deliver; fails the test after `timeout` seconds."""
    listing = postfix_queue_drained(timeout, 1.0)
    if listing is not None:
        raise AssertionError("Postfix's queue not empty after %.0f s:\n%s" % (timeout, listing))


def drain_postfix_queue(timeout=30.0):
    """Lets Postfix deliver what it holds, for at most `timeout` seconds; what is still queued
    then is deleted, and listed on stderr. For a test that stops the gateway on the LMTP tap's
    port: a message it left queued would otherwise reach the next test's gateway on that port
    and change that test's counts."""
    listing = postfix_queue_drained(timeout, 0.2)
    if listing is None:
        return
    print("Postfix's queue not drained in %.0f s; deleted:\n%s" % (timeout, listing), file=sys.stderr)
    subprocess.run(["postsuper", "-c", os.path.join(BACKEND_DIR, "postfix", "etc"), "-d", "ALL"],
                   capture_output=True, text=True, timeout=30)


def new_marker(label="m"):
    return ("%s-%d-%d" % (label, os.getpid(), time.monotonic_ns())).encode()


def deliver_through_postfix(recipient, subject, body="hello\r\n", sender="expediteur@" + DOMAIN):
    """Sends a message straight to the backend Postfix, which delivers it to Dovecot over LMTP."""
    import smtplib

    port = int(backend_env()["BACKEND_SMTP_PORT"])
    message = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" % (sender, recipient, subject, body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail(sender, [recipient], message)


# How a test file ends (read by ctest, see tests/integration/CMakeLists.txt).
EXIT_NO_TESTS = 5  # no test was collected (a wrong -k, a renamed class...): a failure
EXIT_ALL_SKIPPED = 77  # every test was skipped: ctest's SKIP_RETURN_CODE, reported as skipped


def main():
    """Runs the file's tests as unittest.main() does, then exits: 0 when tests ran and passed;
    1 when one failed; EXIT_NO_TESTS when none was collected (Python 3.11's unittest exits 0
    then); EXIT_ALL_SKIPPED when every test was skipped, so that ctest shows the file as skipped,
    not passed. A file where only some tests were skipped passes, its skips listed above."""
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    # A test skipped by its decorator or skipTest() is counted in testsRun; a class skipped in
    # setUpClass is not (its entry in `skipped` is not a test case).
    skipped_tests = sum(1 for test, _ in result.skipped if isinstance(test, unittest.TestCase))
    if result.testsRun - skipped_tests > 0:
        sys.exit(0)
    if result.skipped:
        print("harness: every test was skipped (%d skip(s))" % len(result.skipped), file=sys.stderr)
        sys.exit(EXIT_ALL_SKIPPED)
    print("harness: no test was collected", file=sys.stderr)
    sys.exit(EXIT_NO_TESTS)


class GatewayTestCase(unittest.TestCase):
    """Test cases sharing one gateway (make_gateway's), started before the first test and
    stopped after the last. Each test's log checks see only what was written after it began."""

    gateway = None

    @classmethod
    def make_gateway(cls):
        return Gateway()

    @classmethod
    def setUpClass(cls):
        cls.gateway = cls.make_gateway()
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def setUp(self):
        self.gateway.mark()


class PscIssuer:
    """The Pro Santé Connect stand-in (tests/psc_issuer), on a port of its own."""

    def __init__(self, pki_dir=None):
        """`pki_dir`: the test PKI to use (default: the fixtures', MSSGATE_TEST_PKI)."""
        import json

        self.pki_dir = pki_dir or PKI
        self.dir = tempfile.mkdtemp(prefix="mssgate-psc-")
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "psc_issuer", "psc_issuer.py")
        log = open(os.path.join(self.dir, "issuer.log"), "ab")
        self.process = subprocess.Popen([sys.executable, script, "--dir", self.dir, "--cert", self.pki("server.chain.pem"),
                                         "--key", self.pki("server.key"), "--client-ca", self.pki("ca-chain.pem")],
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        path = os.path.join(self.dir, "issuer.json")
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the test issuer did not start")
            time.sleep(0.05)
        with open(path) as f:
            self.info = json.load(f)
        self.secret_file = os.path.join(self.dir, "client.secret")
        with open(self.secret_file, "w") as f:
            f.write(self.info["client_secret"] + "\n")

    # The LPS client the issuer's tokens are issued to by default (their azp).
    LPS_CLIENT = "lps-test"

    def pki(self, name):
        return os.path.join(self.pki_dir, name)

    def config(self, mode="introspection", extra="", client_certificate=None, allowed_clients=(LPS_CLIENT,)):
        """The [psc] section for this issuer. `allowed_clients`: the LPS clients whose tokens are
        taken (None: the key is left out, so that `extra` may set it)."""
        if client_certificate:
            credentials = (f'client_certificate = "{self.pki(client_certificate + ".chain.pem")}"\n'
                           f'client_key = "{self.pki(client_certificate + ".key")}"\n')
        else:
            credentials = f'client_secret_file = "{self.secret_file}"\n'
        clients = ""
        if allowed_clients is not None:
            clients = "allowed_clients = [%s]\n" % ", ".join('"%s"' % c for c in allowed_clients)
        return (f'[psc]\nmode = "{mode}"\nissuer = "{self.info["issuer"]}"\nclient_id = "{self.info["client_id"]}"\n'
                f'{credentials}ca_file = "{self.pki("root.crt")}"\ntimeout = "1s"\n{clients}{extra}\n')

    def call(self, method, path, body=None):
        import json
        import urllib.request

        request = urllib.request.Request(self.info["base"] + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        ctx = ssl.create_default_context(cafile=self.pki("root.crt"))
        with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
            return json.load(response)

    def issue(self, subject, **options):
        return self.call("POST", "/admin/issue", dict(options, subject=subject))["access_token"]

    def revoke(self, token):
        self.call("POST", "/admin/revoke", {"token": token})

    def mode(self, mode, delay=0):
        self.call("POST", "/admin/mode", {"mode": mode, "delay": delay})

    def reset(self):
        self.call("POST", "/admin/reset", {})

    def stats(self):
        return self.call("GET", "/admin/stats")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def random_jwt(azp="lps-test"):
    """A token of PSC's shape (a signed JWT, issued to `azp`) that no issuer made: it passes
    mssgate's look at a token's shape, and only the issuer can tell that it is not valid."""
    import json
    import secrets

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "JWT", "kid": "rsa-" + secrets.token_hex(4)}
    payload = {"jti": "trrtag:" + secrets.token_hex(16), "azp": azp, "typ": "Bearer",
               "exp": int(time.time()) + 300, "SubjectNameID": "810001234567"}
    return ".".join((b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(secrets.token_bytes(256))))


def xoauth2(user, token):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


def oauthbearer(user, token):
    return "n,a=%s,\x01host=localhost\x01port=143\x01auth=Bearer %s\x01\x01" % (user.replace(",", "=2C"), token)


class CuttableForwarder(ChaosGate):
    """A TCP relay between mssgate and a backend that can cut every connection at a chosen point
    of the client-to-backend stream, as a backend that dies would (a ChaosGate's close fault)."""

    def __init__(self, target_port, record=False):
        self._cut_after = None
        super().__init__(target_port, record=record)

    @property
    def cut_after(self):
        """Bytes of the client-to-backend stream, from each connection's start, after which it is
        closed both ways; None: never (set on the open connections and the new ones)."""
        return self._cut_after

    @cut_after.setter
    def cut_after(self, value):
        self._cut_after = value
        if value is None:
            self.clear()
        else:
            self.fault("close", "up", after=value, from_start=True, existing=True)

    @property
    def cuts(self):
        """How many connections were cut."""
        return self.fired("close")

    def drop_all(self):
        """Closes every open connection, as a backend that times out idle clients does."""
        self.close_connections()
