#!/usr/bin/env python3
"""NOOP latency of good sessions while a message built to cost as much inspection as the
per-archive caps allow (20 IHE_XDM archives of 8 entries, each entry a deep or wide XML just
under the caps; tests/integration/test_inspection.py builds it) is submitted through mssgate and
delivered through its LMTP tap, against the same sessions quiet; with every setting at its
default, and with every budget of a message raised but its CPU time.

    bench/inspection_flood.py [--build build/release] [--out docs/benchmarks.md] [--floods 5]
                              [--before-build DIR [--before-label TEXT]]

With --before-build, the same flood is also sent, in the same run, to the gateway built in DIR
(an earlier version, with its default settings: for example one that inspected on the io
threads), for a ratio of the two.

Starts its own backend (scripts/backend, ports 312xx, Postfix delivering the flood's domain
through mssgate's LMTP tap) and mssgate, and stops them. Every loop is bounded by a count and
a time.
"""

import argparse
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from smtp_submission import context, write_section  # noqa: E402
from test_inspection import ProbeProcess, flood_message, percentile  # noqa: E402

MAILBOX = "app.hopital@test.mssante.fr"
RECIPIENT = "labo@tap.test.mssante.fr"
BACKEND_PORTS = {"IMAP": 31243, "IMAPS": 31293, "LMTP": 31224, "AUTH": 31212, "SMTP": 31225, "SUBMISSION": 31687}
TAP_PORT = 31324
PROBES = 4
QUIET_SECONDS = 5
HEADING = "## Inspection flood"
VARIANTS = (
    ("this build, default budget", ""),
    ("this build, every budget but the CPU time raised", 'max_message_inflated_bytes = "16GiB"\nmax_message_xml_documents = 1000000\n'
                                    "max_message_xml_nodes = 1000000000\n"),
)


def start_backend(work):
    os.chmod(work, 0o755)  # Dovecot runs as its own user, and must reach its directory
    pki = os.path.join(work, "pki")
    subprocess.run([os.path.join(ROOT, "tests", "pki", "make-test-pki"), pki], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, MSSGATE_BACKEND_DIR=os.path.join(work, "backend"),
               MSSGATE_BACKEND_TAP_DOMAIN="tap.test.mssante.fr", MSSGATE_BACKEND_TAP_NEXTHOP="127.0.0.1:%d" % TAP_PORT,
               MSSGATE_BACKEND_MAILBOXES="%s %s" % (MAILBOX, RECIPIENT))
    for name, port in BACKEND_PORTS.items():
        env["MSSGATE_BACKEND_%s_PORT" % name] = str(port)
    subprocess.run([os.path.join(ROOT, "scripts", "backend"), "start"], check=True, env=env, stdout=subprocess.DEVNULL)
    return pki, env


def maildir_count(work):
    local, domain = RECIPIENT.split("@")
    folder = os.path.join(work, "backend", "mail", domain, local)
    return sum(len(os.listdir(os.path.join(folder, sub))) for sub in ("new", "cur")
               if os.path.isdir(os.path.join(folder, sub)))


def events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Gateway:
    def __init__(self, build, work, pki, indicators):
        self.dir = tempfile.mkdtemp(prefix="gateway-", dir=work)
        os.chmod(self.dir, 0o755)
        secret = os.path.join(work, "backend", "master.secret")
        database = os.path.join(self.dir, "directory.db")
        ctl = os.path.join(build, "daemon", "mssgatectl")
        for args in (("mailbox", "add", MAILBOX, "--type", "APP"), ("mailbox", "add", RECIPIENT, "--type", "APP"),
                     ("certificate", "bind", MAILBOX, "--cert", os.path.join(pki, "org-hopital.crt"))):
            subprocess.run([ctl, "--database", database, *args], check=True, stdout=subprocess.DEVNULL)
        self.indicator_log = os.path.join(self.dir, "indicators.jsonl")
        config = os.path.join(self.dir, "mssgate.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
log_level = "info"
[tls]
certificate_chain = "{pki}/server.chain.pem"
private_key = "{pki}/server.key"
client_ca = "{pki}/ca-chain.pem"
crl_files = ["{pki}/crls.pem"]
[imap]
starttls_listen = ["127.0.0.1:0"]
[imap.backend]
address = "127.0.0.1:{BACKEND_PORTS['IMAP']}"
master_user = "mssgate"
master_password_file = "{secret}"
[smtp]
starttls_listen = ["127.0.0.1:0"]
[smtp.backend]
address = "127.0.0.1:{BACKEND_PORTS['SUBMISSION']}"
[lmtp]
listen = ["127.0.0.1:{TAP_PORT}"]
backend = "127.0.0.1:{BACKEND_PORTS['LMTP']}"
[directory]
sqlite_path = "{database}"
[indicators]
journal = "{self.dir}/indicators.db"
log = "{self.indicator_log}"
operator_domains = ["test.mssante.fr", "tap.test.mssante.fr"]
{indicators}
""")
        self.log_path = os.path.join(self.dir, "mssgate.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([os.path.join(build, "daemon", "mssgate"), "--config", config],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            text = open(self.log_path).read()
            if "event=ready" in text:
                self.submission = int(re.search(r"listener=submission address=127\.0\.0\.1:(\d+)", text).group(1))
                threads = re.search(r"inspection_threads=(\d+)", text)  # none before there were any
                self.inspection_threads = int(threads.group(1)) if threads else 0
                return
            if self.process.poll() is not None:
                raise SystemExit("mssgate exited:\n" + text)
            time.sleep(0.05)
        raise SystemExit("mssgate not ready")

    def rss(self):
        with open("/proc/%d/status" % self.process.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def measure(build, work, pki, indicators, floods):
    """One gateway: NOOP probes quiet, then during `floods` floods one after the other."""
    gateway = Gateway(build, work, pki, indicators)
    probes = None
    try:
        # The flooding session first: it shares the first io thread with two of the probes.
        flooder = smtplib.SMTP("127.0.0.1", gateway.submission, timeout=600)
        flooder.starttls(context=context(pki, "org-hopital"))
        flooder.ehlo("bench")
        flooder.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
        probes = ProbeProcess(gateway.submission, PROBES, context(pki, "org-hopital"))
        rest_rss = gateway.rss()
        quiet_from = time.monotonic()
        time.sleep(QUIET_SECONDS)
        quiet_to = time.monotonic()
        windows, reasons, durations, peak_rss = [], [], [], rest_rss
        for n in range(floods):
            marker = ("bench-flood-%d-%d" % (os.getpid(), time.monotonic_ns())).encode()
            message = flood_message(MAILBOX, RECIPIENT, marker)
            delivered = maildir_count(work)
            start = time.monotonic()
            flooder.sendmail(MAILBOX, [RECIPIENT], message)
            accepted = time.monotonic()
            deadline = start + 600
            message_id = "<%s@test>" % marker.decode()
            while True:
                found = [e for e in events(gateway.indicator_log) if e.get("message_id") == message_id]
                if maildir_count(work) > delivered and len(found) == 2:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("flood %d not delivered and counted in 600 s" % n)
                peak_rss = max(peak_rss, gateway.rss())
                time.sleep(0.05)
            end = time.monotonic()
            windows.append((start, end))
            durations.append((accepted - start, end - start))
            reasons.extend("%s %s" % (e["direction"], e.get("uninspectable_reason") or "inspected") for e in found)
            time.sleep(1)
        flooder.quit()
        samples, errors = probes.samples()
        probes = None
        if errors:
            raise SystemExit("probe errors: %r" % errors)
    finally:
        if probes:
            probes.kill()
        gateway.stop()
    quiet = [latency for due, latency in samples if quiet_from <= due < quiet_to]
    flood = [latency for due, latency in samples if any(a <= due < b for a, b in windows)]
    return {"quiet": quiet, "flood": flood, "durations": durations, "reasons": sorted(set(reasons)),
            "peak_mib": (peak_rss - rest_rss) / (1 << 20), "threads": gateway.inspection_threads,
            "size_mib": len(message) / (1 << 20)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--floods", type=int, default=5)
    parser.add_argument("--before-build", help="an earlier build to measure in the same run")
    parser.add_argument("--before-label", default="the earlier build",
                        help="what the earlier build is, for the table")
    args = parser.parse_args()
    runs = [(label, args.build, indicators) for label, indicators in VARIANTS]
    if args.before_build:
        runs.insert(0, (args.before_label, args.before_build, ""))

    work = tempfile.mkdtemp(prefix="mssgate-bench-")
    pki, env = start_backend(work)
    rows = []
    try:
        for label, build, indicators in runs:
            r = measure(build, work, pki, indicators, args.floods)
            ms = lambda samples, p: 1000 * percentile(samples, p)  # noqa: E731
            rows.append((label, r, ms(r["quiet"], 50), ms(r["quiet"], 99), ms(r["flood"], 50), ms(r["flood"], 99),
                         1000 * max(r["flood"])))
            print("%s: NOOP quiet p50 %.2f p99 %.2f ms, flood p50 %.2f p99 %.2f max %.1f ms; %s"
                  % (label, rows[-1][2], rows[-1][3], rows[-1][4], rows[-1][5], rows[-1][6], r["reasons"]))
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "backend"), "stop"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    r0 = rows[-1][1]
    section = [HEADING, "",
               "`bench/inspection_flood.py`: the RelWithDebInfo build, 2 cores shared by the clients, mssgate, "
               "Postfix and Dovecot. A flood is one %.1f MiB message of 20 IHE_XDM archives of 8 entries, each "
               "entry a deep or wide XML document just under the caps of one archive (ratio, size, depth; the "
               "message of `tests/integration/test_inspection.py`), submitted through mssgate (STARTTLS, client "
               "certificate) and delivered through its LMTP tap: it is inspected twice. Meanwhile %d other "
               "submission sessions, signed in by certificate, each send a NOOP every 10 ms on a fixed schedule, each round trip timed from "
               "when its NOOP was due (a session held up counts every NOOP it could not send); two of them share "
               "the flooding session's io thread. Quiet: the same sessions for %d s before. %d floods in a row "
               "per row, %d inspection thread(s) (the default). The ratio is the p99 during the floods over the "
               "p99 quiet%s." % (r0["size_mib"], PROBES, QUIET_SECONDS, args.floods, r0["threads"],
                                 "; the last column, this build's p99 during the floods over the earlier build's"
                                 if args.before_build else ""), "",
               "| gateway | NOOPs quiet, during floods | p50 quiet (ms) | p99 quiet (ms) | p50 flood (ms) | "
               "p99 flood (ms) | p99 flood / quiet | max flood (ms) | flood accepted, delivered and counted (s) | "
               "memory peak over rest | counted as |" + (" p99 flood / before |" if args.before_build else ""),
               "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.before_build else "")]
    for label, r, q50, q99, f50, f99, fmax in rows:
        accepted = sorted(a for a, _ in r["durations"])[len(r["durations"]) // 2]
        counted = sorted(b for _, b in r["durations"])[len(r["durations"]) // 2]
        line = ("| %s | %d, %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f, %.1f | %.0f MiB | %s |"
                % (label, len(r["quiet"]), len(r["flood"]), q50, q99, f50, f99, f99 / q99, fmax, accepted, counted,
                   r["peak_mib"], ", ".join(r["reasons"])))
        if args.before_build:
            line += " %s |" % ("—" if r is rows[0][1] else "%.4f" % (f99 / rows[0][5]))
        section.append(line)
    section.append("")
    section.append("Times are the medians over the floods; \"counted as\" is what the `sent` and `received` "
                   "events say (`inspected` is a message read in full). With the default budget the inspection "
                   "stops at the first entry (its nodes are over the budget) and the rest of the message streams at "
                   "full speed through mssgate, Postfix and Dovecot: the NOOPs of that row share the two cores with "
                   "that traffic for the fraction of a second a flood lasts. With the other budgets raised the "
                   "inspection threads read until the CPU time of the message is spent, and the flooding session "
                   "waits for them (back-pressure) meanwhile.")
    write_section(args.out, HEADING, "\n".join(section) + "\n")


if __name__ == "__main__":
    sys.exit(main())
