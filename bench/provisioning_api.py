#!/usr/bin/env python3
"""The provisioning API at operator scale, on a running mssgate (release build) whose admin
endpoint speaks TLS with client certificates: the bulk import of a 1,000,000-mailbox file
through the API against `mssgatectl directory import` of the same file; then, on that
directory, single-row requests over one kept-alive TLS connection (create, read, replace,
delete: requests a second and latency percentiles) and the whole mailbox list read a page of
1,000 at a time (the first pages against the last ones). On SQLite, and on PostgreSQL.

    bench/provisioning_api.py [--build build/release] [--out docs/benchmarks.md]
                              [--mailboxes 1000000] [--requests 2000] [--no-postgresql]

Makes its own test PKI (tests/pki/make-test-pki) and starts its own PostgreSQL (scripts/postgres,
port 34433, its own data folder); mssgate's backends are not started (nothing signs in).
Everything is removed at the end.
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from directory_import import OwnPostgresql, write_file  # noqa: E402
from smtp_submission import ROOT, write_section  # noqa: E402

PG_PORT = 34433
HEADING = "## Provisioning API"


def spki_sha256(pki, name):
    public_key = subprocess.run(["openssl", "x509", "-in", os.path.join(pki, name + ".crt"), "-noout", "-pubkey"],
                                check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=public_key, check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


class Admin:
    """One kept-alive TLS connection to the admin endpoint, with the writer's certificate."""

    def __init__(self, port, pki):
        context = ssl.create_default_context(cafile=os.path.join(pki, "ca-chain.pem"))
        context.load_cert_chain(os.path.join(pki, "cps-dupont.crt"), os.path.join(pki, "cps-dupont.key"))
        self.connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=600, context=context)

    def call(self, method, path, body=None, content_type="application/json"):
        headers = {}
        if body is not None:
            headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def peak_rss_mib(pid, field="VmHWM"):
    """The process's peak resident memory so far (VmHWM), or another field of its status, in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def single_rows(admin, requests):
    """Each kind of single-row request, `requests` times: (name, per second, p50 ms, p99 ms)."""
    out = []
    addresses = ["api%06d@provisioning.mssante.fr" % i for i in range(requests)]
    steps = (
        ("POST a mailbox", lambda a: ("POST", "/api/directory/mailboxes",
                                      json.dumps({"mailbox": a, "type": "APP"}).encode(), 201)),
        ("GET a mailbox", lambda a: ("GET", "/api/directory/mailboxes/" + a, None, 200)),
        ("PUT a mailbox (suspend)", lambda a: ("PUT", "/api/directory/mailboxes/" + a,
                                               json.dumps({"type": "APP", "status": "suspended"}).encode(), 200)),
        ("POST a binding", lambda a: ("POST", "/api/directory/bindings",
                                      json.dumps({"mailbox": a, "match": "spki-sha256",
                                                  "value": "%064x" % int(a[3:9])}).encode(), 201)),
        ("DELETE a mailbox (and its binding)", lambda a: ("DELETE", "/api/directory/mailboxes/" + a, None, 204)),
    )
    for name, request in steps:
        latencies = []
        start = time.monotonic()
        for address in addresses:
            method, path, body, expected = request(address)
            began = time.monotonic()
            status, answer = admin.call(method, path, body)
            latencies.append(time.monotonic() - began)
            if status != expected:
                raise SystemExit("%s %s: %d %s" % (method, path, status, answer[:300]))
        elapsed = time.monotonic() - start
        out.append((name, requests / elapsed, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000))
    return out


def list_all(admin):
    """Every mailbox, a page of 1,000 at a time: (pages, rows, seconds, ms of the first 10 pages, of the last 10)."""
    times = []
    rows = 0
    after = ""
    start = time.monotonic()
    while True:
        began = time.monotonic()
        status, body = admin.call("GET", "/api/directory/mailboxes?limit=1000" + ("&after=" + after if after else ""))
        times.append(time.monotonic() - began)
        if status != 200:
            raise SystemExit("list: %d %s" % (status, body[:300]))
        page = json.loads(body)
        rows += len(page["items"])
        after = page.get("next", "")
        if not after:
            break
    elapsed = time.monotonic() - start
    first = sum(times[:10]) / len(times[:10]) * 1000
    last = sum(times[-10:]) / len(times[-10:]) * 1000
    return len(times), rows, elapsed, first, last


def run_gateway(mssgate, work, config_text):
    config = os.path.join(work, "mssgate.toml")
    with open(config, "w") as f:
        f.write(config_text)
    log_path = os.path.join(work, "mssgate.log")
    log = open(log_path, "wb")  # a log of its own: the port read from it is this gateway's
    process = subprocess.Popen([mssgate, "--config", config], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = open(log_path).read()
        found = re.search(r"event=listening listener=admin address=127\.0\.0\.1:(\d+)", text)
        if found and "event=ready" in text:
            return process, int(found.group(1)), config
        if process.poll() is not None:
            raise SystemExit("mssgate exited: " + text[-3000:])
        time.sleep(0.05)
    process.kill()
    raise SystemExit("mssgate not ready: " + open(log_path).read()[-3000:])


def measure(store, mssgate, ctl, work, pki, storage_section, reset, file, requests):
    """The steps on one store; returns the table's rows for it."""
    writer = spki_sha256(pki, "cps-dupont")
    with open(os.path.join(work, "master.secret"), "w") as f:
        f.write("bench\n")
    config_text = ('[server]\ninstance = "bench"\nlog_level = "info"\n\n'
                   '[tls]\ncertificate_chain = "%s"\nprivate_key = "%s"\n\n'
                   '[imap]\nstarttls_listen = ["127.0.0.1:0"]\n\n'
                   '[imap.backend]\naddress = "127.0.0.1:1"\nmaster_user = "mssgate"\n'
                   'master_password_file = "master.secret"\n\n'
                   '[admin]\nlisten = ["127.0.0.1:0"]\ncertificate_chain = "%s"\nprivate_key = "%s"\n'
                   'client_ca = "%s"\nprovisioning_writers = ["%s"]\n\n%s'
                   % (os.path.join(pki, "server.chain.pem"), os.path.join(pki, "server.key"),
                      os.path.join(pki, "server.chain.pem"), os.path.join(pki, "server.key"),
                      os.path.join(pki, "ca-chain.pem"), writer, storage_section))
    rows = []
    reset()
    process, port, config = run_gateway(mssgate, work, config_text)
    try:
        # The same file by mssgatectl, then (emptied) through the API.
        start = time.monotonic()
        subprocess.run([ctl, "--config", config, "directory", "import", file], check=True, stdout=subprocess.DEVNULL)
        by_ctl = time.monotonic() - start
        reset()
        with open(file, "rb") as f:
            body = f.read()
        admin = Admin(port, pki)
        before = peak_rss_mib(process.pid)
        start = time.monotonic()
        status, answer = admin.call("POST", "/api/directory/import", body, "text/csv")
        by_api = time.monotonic() - start
        if status != 200:
            raise SystemExit("import: %d %s" % (status, answer[:500]))
        time.sleep(2)  # the gateway's directory refresh after the import, and memory given back
        rows.append("| %s | bulk import of the file, in one transaction | %.1f s (mssgatectl: %.1f s); mssgate's peak "
                    "memory %.0f MiB, %.0f MiB before the import, %.0f MiB resident after it |" % (
                        store, by_api, by_ctl, peak_rss_mib(process.pid), before,
                        peak_rss_mib(process.pid, "VmRSS")))
        for name, per_second, p50, p99 in single_rows(admin, requests):
            rows.append("| %s | %s, %d times, one connection | %.0f a second; p50 %.2f ms, p99 %.2f ms |" % (
                store, name, requests, per_second, p50, p99))
        pages, listed, seconds, first, last = list_all(admin)
        rows.append("| %s | every mailbox listed, %s pages of 1,000 (%s rows) | %.1f s; a page %.1f ms among the "
                    "first ten, %.1f ms among the last ten |" % (store, format(pages, ","), format(listed, ","),
                                                                seconds, first, last))
    except BaseException:
        print(open(os.path.join(work, "mssgate.log")).read()[-3000:], file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--mailboxes", type=int, default=1000000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()

    mssgate = os.path.join(args.build, "daemon", "mssgate")
    ctl = os.path.join(args.build, "daemon", "mssgatectl")
    work = tempfile.mkdtemp(prefix="mssgate-bench-provisioning-")
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user, which must reach its folder
    postgresql = OwnPostgresql(work, PG_PORT)
    rows = []
    try:
        pki = os.path.join(work, "pki")
        subprocess.run([os.path.join(ROOT, "tests", "pki", "make-test-pki"), pki], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        file = os.path.join(work, "directory.csv")
        write_file(file, args.mailboxes)
        size_mib = os.path.getsize(file) / (1 << 20)
        lines = sum(1 for _ in open(file)) - 1

        database = os.path.join(work, "directory.db")

        def reset_sqlite():
            # Emptied in place, not removed: the running gateway keeps reading the same file.
            if os.path.exists(database):
                with sqlite3.connect(database) as db:
                    for table in ("certificate_binding", "mailbox_holder", "mailbox_sender", "holder", "mailbox"):
                        db.execute("DELETE FROM " + table)

        rows += measure("SQLite", mssgate, ctl, work, pki,
                        '[directory]\nsqlite_path = "%s"\n' % database, reset_sqlite, file, args.requests)
        if not args.no_postgresql:
            postgresql.start()
            rows += measure("PostgreSQL", mssgate, ctl, work, pki, postgresql.storage_section(),
                            postgresql.empty_directory, file, args.requests)
    finally:
        postgresql.stop()
        shutil.rmtree(work, True)

    text = "\n".join([
        HEADING, "",
        "`bench/provisioning_api.py --mailboxes %d --requests %d`: a running mssgate (release build), its admin "
        "endpoint over TLS with the writer's client certificate, Python's `http.client` as the client (its own "
        "time included). The bulk import sends the CSV file of `Directory import at operator scale` (%s rows, "
        "%.0f MiB) as one request body into an empty directory, timed from the request to the answer, beside "
        "`mssgatectl directory import` of the same file on the same gateway's directory, with the gateway's peak "
        "resident memory (VmHWM) before and after it. The single-row "
        "requests then run on that directory of %s mailboxes, one after the other on one kept-alive "
        "connection. %d cores." % (args.mailboxes, args.requests, format(lines, ","), size_mib,
                                   format(args.mailboxes, ","), os.cpu_count()),
        "",
        "| store | what | figure |",
        "|---|---|---|",
        *rows,
        "",
        "Each change is in force on the gateways at their next directory refresh "
        "(`directory.refresh_interval`), as a change by `mssgatectl` is.",
    ]) + "\n"
    write_section(args.out, HEADING, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
