#!/usr/bin/env python3
"""Start and reload times: from exec to READY=1 (systemd's notification, read from a test
NOTIFY_SOCKET), and from SIGHUP to READY=1 after RELOADING=1, with a directory of 10,000
mailboxes and each with a certificate binding; both with the gateway's own figure
(`startup_us`, `duration_us`) beside it. While the reloads run, one client signs in again and
again: any failure is reported (a reload must drop nothing).

    bench/service_times.py [--build build/release] [--out docs/benchmarks.md]

Starts its own backend (scripts/backend, ports 31xxx) and mssgate, and stops them. Every loop
is bounded by a count.
"""

import argparse
import os
import re
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from smtp_submission import ROOT, context, start_backend, stop_all, write_config, write_section

MAILBOXES = 10_000
STARTS = 10
RELOADS = 30


class NotifySocket:
    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.settimeout(10)

    def wait_for(self, word):
        """Seconds (monotonic) at which a datagram holding `word` arrived."""
        while True:
            message = self.socket.recv(4096).decode()
            if word in message.split("\n"):
                return time.monotonic()


def populate(ctl, database, pki):
    subprocess.run([ctl, "--database", database, "mailbox", "add", "app.hopital@test.mssante.fr", "--type", "APP"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([ctl, "--database", database, "certificate", "bind", "app.hopital@test.mssante.fr", "--cert",
                    os.path.join(pki, "org-hopital.crt")], check=True, stdout=subprocess.DEVNULL)
    # The other mailboxes straight into the tables mssgatectl made (10,000 runs of it take minutes).
    db = sqlite3.connect(database)
    now = int(time.time())
    db.executemany("INSERT INTO mailbox (address, type, status, created_at) VALUES (?, 'APP', 'active', ?)",
                   [("app%05d@bench.mssante.fr" % i, now) for i in range(MAILBOXES - 1)])
    db.executemany("INSERT INTO certificate_binding (match_kind, match_value, mailbox) VALUES ('spki-sha256', ?, ?)",
                   [("%064x" % i, "app%05d@bench.mssante.fr" % i) for i in range(MAILBOXES - 1)])
    db.commit()
    count = db.execute("SELECT count(*) FROM mailbox").fetchone()[0]
    db.close()
    return count


def sign_in(port, pki):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.recv(4096)
    raw.sendall(b"s1 STARTTLS\r\n")
    raw.recv(4096)
    tls = context(pki, "org-hopital").wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"a1 AUTHENTICATE EXTERNAL =\r\n")
    answer = b""
    while b"a1 " not in answer:
        chunk = tls.recv(4096)
        if not chunk:
            raise ConnectionError("closed: %r" % answer)
        answer += chunk
    if b"a1 OK" not in answer:
        raise AssertionError(answer)
    tls.sendall(b"z1 LOGOUT\r\n")
    tls.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="mssgate-bench-")
    pki, env, backend = start_backend(work)
    gateway = None
    starts, start_reported, reloads, reload_reported, failures, sign_ins = [], [], [], [], [], 0
    try:
        secret_file = os.path.join(work, "backend", "master.secret")
        database = os.path.join(work, "directory.db")
        config = os.path.join(work, "mssgate.toml")
        write_config(config, pki, secret_file, database)
        mailboxes = populate(os.path.join(args.build, "daemon", "mssgatectl"), database, pki)
        log_path = os.path.join(work, "mssgate.log")
        binary = os.path.join(args.build, "daemon", "mssgate")

        def launch():
            notify = NotifySocket(tempfile.mkdtemp(dir=work))
            offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
            with open(log_path, "a") as log:
                began = time.monotonic()
                process = subprocess.Popen([binary, "--config", config], stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, env=dict(os.environ, NOTIFY_SOCKET=notify.path))
            ready = notify.wait_for("READY=1")
            text = open(log_path).read()[offset:]
            reported = int(re.search(r"event=ready .*startup_us=(\d+)", text).group(1))
            return process, notify, ready - began, reported

        for _ in range(STARTS):
            process, _, seconds, reported = launch()
            starts.append(seconds)
            start_reported.append(reported / 1e6)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)

        gateway, notify, _, _ = launch()
        port = int(re.findall(r"event=listening listener=imap address=127\.0\.0\.1:(\d+)", open(log_path).read())[-1])
        stop = threading.Event()

        def traffic():
            nonlocal sign_ins
            for _ in range(100_000):
                if stop.is_set():
                    return
                try:
                    sign_in(port, pki)
                    sign_ins += 1
                except Exception as error:
                    failures.append(repr(error))

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            for _ in range(RELOADS):
                count = len(re.findall(r"event=reloaded ", open(log_path).read()))
                began = time.monotonic()
                gateway.send_signal(signal.SIGHUP)
                notify.wait_for("RELOADING=1")
                ready = notify.wait_for("READY=1")
                reloads.append(ready - began)
                for _ in range(200):
                    found = re.findall(r"event=reloaded .*duration_us=(\d+)", open(log_path).read())
                    if len(found) > count:
                        reload_reported.append(int(found[-1]) / 1e6)
                        break
                    time.sleep(0.01)
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(timeout=60)
    finally:
        stop_all(gateway, backend, env, work)

    rows = [("start: exec to READY=1", starts, start_reported, "startup_us"),
            ("reload: SIGHUP to READY=1", reloads, reload_reported, "duration_us")]
    for label, measured, reported, _ in rows:
        print("%-26s median %.1f ms, max %.1f ms (mssgate's own: median %.1f ms)"
              % (label, 1000 * statistics.median(measured), 1000 * max(measured), 1000 * statistics.median(reported)))
    print("sign-ins during the reloads: %d, failed: %d" % (sign_ins, len(failures)))
    section = ["## Start and reload", "",
               "`bench/service_times.py`: a directory of %d mailboxes, each with a certificate binding; the "
               "RelWithDebInfo build; times from the outside, through a test `NOTIFY_SOCKET` (what systemd waits "
               "for), and mssgate's own figure from its log (`startup_us` on `event=ready`, `duration_us` on "
               "`event=reloaded`: loading the file, the TLS context with its CRLs, and at start reading the "
               "directory into its in-memory snapshot). Start includes the backend probes and the directory's "
               "snapshot (its build time grows with the directory: see \"Directory snapshot\"); a reload that "
               "keeps `directory.sqlite_path` keeps the snapshot, so the directory's size does not weigh on it. "
               "%d starts, %d reloads."
               % (mailboxes, STARTS, RELOADS), "",
               "| what | median (ms) | max (ms) | mssgate's own, median (ms) |", "|---|---|---|---|"]
    for label, measured, reported, _ in rows:
        section.append("| %s | %.1f | %.1f | %.1f |" % (label, 1000 * statistics.median(measured),
                                                      1000 * max(measured), 1000 * statistics.median(reported)))
    section += ["", "During the reloads one client signed in again and again (STARTTLS, client certificate, "
                "AUTHENTICATE EXTERNAL, LOGOUT): %d sign-ins, %d failed." % (sign_ins, len(failures)), ""]
    write_section(args.out, "## Start and reload", "\n".join(section))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
