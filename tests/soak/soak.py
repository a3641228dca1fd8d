#!/usr/bin/env python3
"""Soak: clients send messages through mssgate's submission to a mailbox that Postfix delivers
through mssgate's LMTP tap, while mssgate is killed (SIGKILL) and started again; then every
ledger is reconciled: what the clients were told was accepted, what Dovecot holds (each message
found by its Message-ID), what the journal counted (database and JSON-lines log).

    tests/soak/soak.py [--seconds 120] [--clients 4] [--pause 0] [--kills 2] [--build build/release]
                       [--delivery-id-header NAME | --no-delivery-id] [--serial-per-mailbox]
                       [--json OUT]
                       [--backend-dir DIR --tap-port PORT]

Without --backend-dir it starts its own backend (scripts/backend, ports 34xxx, Postfix
delivering tap.test.mssante.fr to the tap on 34124, Dovecot's Sieve de-duplication on) and its
own test PKI, and stops them at the end. With --backend-dir it uses that running backend (the
ctest fixture's: tap port 21124). The gateway's configuration says nothing of
lmtp.delivery_id_header nor lmtp.serial_per_mailbox unless --delivery-id-header,
--no-delivery-id or --serial-per-mailbox is given, so that an older build, which does not know
the keys, runs too.

Prints a JSON summary (and writes it to --json): the clients', the mailbox's, the journal's and
the log's ledgers, per kill the duplicates it caused in the mailbox and the deliveries Dovecot's
Sieve script discarded, the tap's answer delays, and `problems`: what the reconciliation found
wrong (empty: nothing acknowledged was lost, no event lost or counted twice, the log holds each
event once). Exits 1 when there is a problem.

Grows by adding to Ledgers (what each side saw), to reconcile() (what must agree) and to the
schedule of faults (today only kills; reloads and injected faults are to come). Every loop is
bounded by a count and a time.
"""

import argparse
import email.utils
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENDER = "app.hopital@test.mssante.fr"  # its organisation certificate opens it (EXTERNAL)
RECIPIENT = "labo@tap.test.mssante.fr"  # Postfix delivers it through the tap
TAP_DOMAIN = "tap.test.mssante.fr"
OWN_PORTS = {"IMAP": 34143, "IMAPS": 34993, "LMTP": 34024, "AUTH": 34012, "SMTP": 34025, "SUBMISSION": 34587}
OWN_TAP_PORT = 34124
DRAIN_SECONDS = 180  # after the last kill, Postfix's retries must have delivered everything
START_SECONDS = 30


def client_context(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "root.crt"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(pki, "org-hopital.chain.pem"), os.path.join(pki, "org-hopital.key"))
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
                        MSSGATE_BACKEND_MAILBOXES="%s %s" % (SENDER, RECIPIENT))
        for name, port in OWN_PORTS.items():
            self.env["MSSGATE_BACKEND_%s_PORT" % name] = str(port)
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "start"], check=True, env=self.env,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "stop"], env=self.env, stdout=subprocess.DEVNULL)


class Gateway:
    """One mssgate with its SMTP submission and LMTP tap, its journal and JSON-lines log, that the
    soak kills and starts again (the same files each time)."""

    def __init__(self, mssgate, mssgatectl, pki, backend_dir, tap_port, work, delivery_id_header=None,
                 serial_per_mailbox=False, extra_env=None):
        self.mssgate = mssgate
        self.dir = tempfile.mkdtemp(prefix="soak-gateway-", dir=work)
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ, **(extra_env or {}))
        backend = backend_env(backend_dir)
        self.database = os.path.join(self.dir, "directory.db")
        for args in (("mailbox", "add", SENDER, "--type", "APP"), ("mailbox", "add", RECIPIENT, "--type", "APP"),
                     ("certificate", "bind", SENDER, "--cert", os.path.join(pki, "org-hopital.crt"))):
            subprocess.run([mssgatectl, "--database", self.database, *args], check=True, stdout=subprocess.DEVNULL)
        self.journal = os.path.join(self.dir, "indicators.db")
        self.indicator_log = os.path.join(self.dir, "indicators.jsonl")
        self.log_path = os.path.join(self.dir, "mssgate.log")
        header = "" if delivery_id_header is None else 'delivery_id_header = "%s"\n' % delivery_id_header
        if serial_per_mailbox:
            header += "serial_per_mailbox = true\n"
        self.config = os.path.join(self.dir, "mssgate.toml")
        with open(self.config, "w") as f:
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
address = "127.0.0.1:{backend['BACKEND_IMAP_PORT']}"
master_user = "{backend['BACKEND_MASTER_USER']}"
master_password_file = "{backend['BACKEND_MASTER_SECRET_FILE']}"
[smtp]
starttls_listen = ["127.0.0.1:0"]
[smtp.backend]
address = "127.0.0.1:{backend['BACKEND_SUBMISSION_PORT']}"
data_response_timeout = "60s"
[lmtp]
listen = ["127.0.0.1:{tap_port}"]
backend = "127.0.0.1:{backend['BACKEND_LMTP_PORT']}"
{header}[limits]
max_connections_per_address = 1000000
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
        self.process = None
        self.submission_port = None

    def log(self, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def start(self):
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([self.mssgate, "--config", self.config], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            text = self.log(offset)
            if "event=ready" in text:
                self.submission_port = int(re.search(r"listener=submission address=127\.0\.0\.1:(\d+)", text).group(1))
                return
            if self.process.poll() is not None:
                raise RuntimeError("mssgate exited:\n" + text[-3000:])
            time.sleep(0.02)
        raise RuntimeError("mssgate not ready in %d s" % START_SECONDS)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None


class Ledgers:
    """What each side saw. The clients': each message's Message-ID and what its client was told
    (acked: 250; refused: a 4xx or 5xx; in_flight: no answer, the gateway was killed meanwhile).
    The kills: when each came."""

    def __init__(self, run_id):
        self.run_id = run_id
        self.lock = threading.Lock()
        self.messages = {}  # Message-ID -> "acked" | "refused" | "in_flight"
        self.kills = []  # wall-clock times
        self.connect_failures = 0

    def message_id(self, client, n):
        return "<soak-%s-%d-%d@soak.test>" % (self.run_id, client, n)

    def mark(self, message_id, state):
        with self.lock:
            self.messages[message_id] = state

    def with_state(self, state):
        with self.lock:
            return {m for m, s in self.messages.items() if s == state}


def client_loop(number, gateway, ctx, ledgers, stop, max_messages, pause):
    """One LPS: sends one message after the other on one session (`pause` seconds between two),
    and opens another when the gateway goes away. Bounded by `stop` and by max_messages."""
    n = 0
    while not stop.is_set() and n < max_messages:
        try:
            smtp = smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30)
            smtp.starttls(context=ctx)
            smtp.ehlo("soak.test")
            smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
        except (OSError, smtplib.SMTPException):
            with ledgers.lock:
                ledgers.connect_failures += 1
            time.sleep(0.1)
            continue
        try:
            while not stop.is_set() and n < max_messages:
                message_id = ledgers.message_id(number, n)
                n += 1
                message = ("From: %s\r\nTo: %s\r\nDate: %s\r\nMessage-ID: %s\r\nSubject: soak %s\r\n\r\n"
                           "soak message %s\r\n" % (SENDER, RECIPIENT, email.utils.formatdate(), message_id, message_id,
                                                    message_id)).encode()
                ledgers.mark(message_id, "in_flight")
                try:
                    smtp.sendmail(SENDER, [RECIPIENT], message)
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
            pass  # the gateway was killed: the message under way stays in_flight
        finally:
            try:
                smtp.close()
            except OSError:
                pass


class Mailbox:
    """The recipient's maildir: each message's copies, by Message-ID, with the time Dovecot stored
    each (the first field of a maildir file name)."""

    def __init__(self, backend_dir):
        local, domain = RECIPIENT.split("@")
        self.folder = os.path.join(backend_env(backend_dir)["BACKEND_MAILDIR_ROOT"], domain, local)

    def copies(self, run_id):
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
                        break
        return found


def postfix_queue_empty(backend_dir):
    result = subprocess.run(["postqueue", "-c", os.path.join(backend_dir, "postfix", "etc"), "-p"],
                            capture_output=True, text=True, timeout=30)
    return "Mail queue is empty" in result.stdout


def read_journal(path, run_id):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        like = "<soak-%s-%%" % run_id
        rows = db.execute("SELECT seq, event_key, direction, message_id FROM indicator_event").fetchall()
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


def reconcile(ledgers, copies, journal, log_lines, log_partial, log_tail, discards):
    """What must agree. Returns the summary, its `problems` listing every disagreement."""
    problems = []
    acked = ledgers.with_state("acked")
    in_flight = ledgers.with_state("in_flight")
    refused = ledgers.with_state("refused")
    prefix = journal["like"][:-1]
    ours = [r for r in journal["rows"] if r[3] and r[3].startswith(prefix)]
    sent = {}
    received = {}
    for _, _, direction, message_id in ours:
        (sent if direction == "sent" else received)[message_id] = (sent if direction == "sent" else received).get(
            message_id, 0) + 1
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

    # The JSON-lines log holds each of the journal's events once, in seq order.
    log_seqs = [line.get("seq") for line in log_lines]
    db_keys = {seq: key for seq, key, _, _ in journal["rows"]}
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
    """Until Postfix's queue is empty and every acknowledged message is delivered (or `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        delivered = set(mailbox.copies(ledgers.run_id))
        if ledgers.with_state("acked") <= delivered and postfix_queue_empty(backend_dir):
            return True
        time.sleep(1)
    return False


def run(mssgate, mssgatectl, pki, backend_dir, tap_port, seconds=120, clients=4, kills=2,
        delivery_id_header=None, max_messages=100000, seed=None, pause=0.0, serial_per_mailbox=False):
    """One soak against a running backend. Returns the summary."""
    rng = random.Random(seed)
    run_id = "%d%04d" % (int(time.time()), rng.randrange(10000))
    work = tempfile.mkdtemp(prefix="mssgate-soak-")
    gateway = Gateway(mssgate, mssgatectl, pki, backend_dir, tap_port, work, delivery_id_header,
                      serial_per_mailbox)
    ledgers = Ledgers(run_id)
    mailbox = Mailbox(backend_dir)
    dovecot_log = os.path.join(backend_dir, "dovecot", "log", "dovecot.log")
    dovecot_offset = os.path.getsize(dovecot_log) if os.path.exists(dovecot_log) else 0
    stop = threading.Event()
    ctx = client_context(pki)
    started = time.monotonic()
    gateway.start()
    threads = [threading.Thread(target=client_loop,
                                args=(n, gateway, ctx, ledgers, stop, max_messages // clients, pause))
               for n in range(clients)]
    try:
        for t in threads:
            t.start()
        # The kills come at random moments, one in each equal part of the sending time.
        part = seconds / (kills + 1)
        for k in range(kills):
            due = started + part * (k + 1) + rng.uniform(-part / 3, part / 3)
            time.sleep(max(0.0, due - time.monotonic()))
            gateway.kill()
            ledgers.kills.append(time.time())
            gateway.start()
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    drained = wait_for_drain(backend_dir, mailbox, ledgers, DRAIN_SECONDS)
    delays = [int(m) for m in re.findall(r"event=delivery .*?answer_delay_us=(\d+)", gateway.log())]
    truncations = len(re.findall(r"event=indicator_log_truncated ", gateway.log()))
    recovered = sum(int(m) for m in re.findall(r"event=indicator_pending_recovered events=(\d+)", gateway.log()))
    code = gateway.stop()
    copies = mailbox.copies(run_id)
    journal = read_journal(gateway.journal, run_id)
    log_lines, log_partial, log_tail = read_indicator_log(gateway.indicator_log)
    summary = reconcile(ledgers, copies, journal, log_lines, log_partial, log_tail,
                        dovecot_discards(backend_dir, dovecot_offset))
    summary["run"] = {"id": run_id, "seconds": seconds, "clients": clients, "pause": pause, "kills": kills,
                      "mssgate": mssgate,
                      "delivery_id_header": delivery_id_header, "serial_per_mailbox": serial_per_mailbox,
                      "drained": drained, "exit_code": code,
                      "log_truncations": truncations, "pending_recovered": recovered,
                      "elapsed_s": round(time.monotonic() - started, 1)}
    summary["answer_delay_us"] = percentiles(delays)
    if not drained:
        summary["problems"].append({"problem": "Postfix's queue did not drain in %d s" % DRAIN_SECONDS, "count": 1})
    if code != 0:
        summary["problems"].append({"problem": "mssgate stopped with %s" % code, "count": 1})
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
                      header, seed=args.seed, pause=args.pause, serial_per_mailbox=args.serial_per_mailbox)
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
