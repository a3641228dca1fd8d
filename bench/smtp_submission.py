#!/usr/bin/env python3
"""Submission throughput: messages accepted per second through mssgate and directly to Postfix,
in the same run, with the same kind of session (STARTTLS, TLS 1.2, one authentication, then a
series of messages), for 4 KiB and 1 MiB messages; mssgate inspects each message and records
its indicator event in its journal before the 250, as in production. The two are alternated in
every round (the order swapped each round); the CPU each spent per message is measured too.
Postfix holds what it accepts during a measurement and delivers it after (hold_deliveries).

    bench/smtp_submission.py [--build build/release] [--out docs/benchmarks.md] [--rounds 3]

Starts its own backend (scripts/backend, ports 31xxx) and mssgate, and stops them. Every loop
is bounded by a message count.
"""

import argparse
import base64
import multiprocessing
import os
import re
import shutil
import statistics
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILBOX = "app.hopital@test.mssante.fr"
RECIPIENT = "app.labo@test.mssante.fr"
BACKEND_PORTS = {"IMAP": 31143, "IMAPS": 31993, "LMTP": 31024, "AUTH": 31012, "SMTP": 31025, "SUBMISSION": 31587}


def context(pki, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "root.crt"))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE if cert is None else ssl.CERT_REQUIRED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.check_hostname = True
        ctx.load_cert_chain(os.path.join(pki, cert + ".chain.pem"), os.path.join(pki, cert + ".key"))
    return ctx


def make_message(size, index, worker):
    header = ("From: %s\r\nTo: %s\r\nSubject: bench %d-%d\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
              "Message-ID: <bench-%d-%d-%d@test>\r\n\r\n" % (MAILBOX, RECIPIENT, worker, index, worker, index, time.time_ns()))
    line = b"x" * 74 + b"\r\n"
    body = line * max(1, (size - len(header)) // len(line))
    return header.encode() + body


def worker(args):
    mode, port, pki, secret, size, count, index = args
    if mode == "mssgate":
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
        smtp.starttls(context=context(pki, "org-hopital"))
        smtp.ehlo("bench")
        smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
    else:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
        smtp.starttls(context=context(pki))
        smtp.ehlo("bench")
        plain = base64.b64encode(("%s\0mssgate\0%s" % (MAILBOX, secret)).encode()).decode()
        code, _ = smtp.docmd("AUTH", "PLAIN " + plain)
        assert code == 235, code
    for i in range(count):
        smtp.sendmail(MAILBOX, [RECIPIENT], make_message(size, i, index))
    smtp.quit()
    return count


def measure(mode, port, pki, secret, size, count, clients):
    jobs = [(mode, port, pki, secret, size, count, i) for i in range(clients)]
    start = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        sent = sum(pool.map(worker, jobs))
    elapsed = time.monotonic() - start
    return sent / elapsed, sent, elapsed


def delivered(work):
    """How many messages Dovecot has stored for the recipient so far."""
    values = {}
    for line in open(os.path.join(work, "backend", "backend.env")):
        if "=" in line:
            key, value = line.strip().split("=", 1)
            values[key] = value.strip("'\"")
    local, domain = RECIPIENT.split("@")
    folder = os.path.join(values["BACKEND_MAILDIR_ROOT"], domain, local)
    return sum(len(os.listdir(os.path.join(folder, sub))) for sub in ("new", "cur")
               if os.path.isdir(os.path.join(folder, sub)))


def wait_delivered(work, expected, timeout=120):
    """Waits until Postfix has delivered every message sent so far: a measurement must not pay
    for the deliveries of the one before it (Postfix and Dovecot share the 2 cores)."""
    deadline = time.monotonic() + timeout
    while delivered(work) < expected:
        if time.monotonic() > deadline:
            raise SystemExit("%d of %d messages delivered after %d s" % (delivered(work), expected, timeout))
        time.sleep(0.2)


def hold_deliveries(work):
    """Postfix keeps every message it accepts in its hold queue (cleanup's header check HOLD),
    so that no delivery runs during a measurement: a delivery costs as much CPU as a submission
    on these shared cores, and a measurement would otherwise pay for as many of them as its
    own pace lets through (the slower one more). release_deliveries() lets them go."""
    etc = os.path.join(work, "backend", "postfix", "etc")
    subprocess.run(["postconf", "-c", etc, "-e", "header_checks = static:HOLD"], check=True)
    subprocess.run(["postfix", "-c", etc, "reload"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def release_deliveries(work, expected):
    """The held messages go to their delivery; returns once every one sent so far is delivered."""
    etc = os.path.join(work, "backend", "postfix", "etc")
    subprocess.run(["postsuper", "-c", etc, "-H", "ALL"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wait_delivered(work, expected)


def wait_ready(log_path, process):
    for _ in range(300):
        with open(log_path) as f:
            text = f.read()
        if "event=ready" in text:
            return dict(re.findall(r"event=listening listener=(\w+) address=127\.0\.0\.1:(\d+)", text))
        if process.poll() is not None:
            raise SystemExit("mssgate exited:\n" + text)
        time.sleep(0.05)
    raise SystemExit("mssgate not ready")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from imap_peers import cpu_seconds  # it imports this module: imported once this one is loaded

    work = tempfile.mkdtemp(prefix="mssgate-bench-")
    pki, env, backend = start_backend(work)
    gateway = None
    try:
        secret_file = os.path.join(work, "backend", "master.secret")
        secret = open(secret_file).read().strip()
        config = os.path.join(work, "mssgate.toml")
        write_config(config, pki, secret_file, work + "/directory.db", journal=work + "/indicators.db")
        ctl = os.path.join(args.build, "daemon", "mssgatectl")
        subprocess.run([ctl, "--database", work + "/directory.db", "mailbox", "add", MAILBOX, "--type", "APP"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([ctl, "--database", work + "/directory.db", "certificate", "bind", MAILBOX, "--cert",
                        pki + "/org-hopital.crt"], check=True, stdout=subprocess.DEVNULL)
        log_path = os.path.join(work, "mssgate.log")
        with open(log_path, "w") as log:
            # The default log level: the events of each session and message are part of the cost.
            gateway = subprocess.Popen([os.path.join(args.build, "daemon", "mssgate"), "--config", config],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        ports = wait_ready(log_path, gateway)
        hold_deliveries(work)
        postfix_master = int(open(os.path.join(work, "backend", "postfix", "spool", "pid", "master.pid")).read())
        rows = []
        sent = 0
        targets = [("postfix", BACKEND_PORTS["SUBMISSION"]), ("mssgate", int(ports["submission"]))]
        for label, size, count in (("4 KiB", 4096, 250), ("1 MiB", 1 << 20, 25)):
            rates = {mode: [] for mode, _ in targets}
            cpu = {mode: [] for mode, _ in targets}  # (mssgate, Postfix) ms per message, each round
            for round_index in range(args.rounds):
                for mode, port in (targets if round_index % 2 == 0 else targets[::-1]):
                    measure(mode, port, pki, secret, size, 2, args.clients)  # warm-up
                    sent += 2 * args.clients
                    release_deliveries(work, sent)
                    before = (cpu_seconds(gateway.pid), cpu_seconds(postfix_master))
                    rate, messages, _ = measure(mode, port, pki, secret, size, count, args.clients)
                    after = (cpu_seconds(gateway.pid), cpu_seconds(postfix_master))
                    sent += count * args.clients
                    release_deliveries(work, sent)
                    rates[mode].append(rate)
                    cpu[mode].append(tuple(1000 * (a - b) / messages for a, b in zip(after, before)))
                    print("%-6s round %d %-8s %.1f msg/s, CPU per message: mssgate %.2f ms, Postfix %.2f ms"
                          % (label, round_index + 1, mode, rate, *cpu[mode][-1]), flush=True)
            direct, through = statistics.median(rates["postfix"]), statistics.median(rates["mssgate"])
            rows.append((label, args.clients, args.clients * count, rates, cpu, direct, through))
            print("%-6s direct %.1f msg/s, through mssgate %.1f msg/s, ratio %.2f" % (label, direct, through, through / direct))
    finally:
        stop_all(gateway, backend, env, work)

    section = ["## SMTP submission", "",
               "`bench/smtp_submission.py --rounds %d`: %d clients, each one STARTTLS session (TLS 1.2) that "
               "authenticates once and sends its messages one after the other (Python's smtplib: no pipelining); "
               "messages accepted (`250`) per second. Direct: Postfix's submission port, AUTH PLAIN through Dovecot. "
               "Through mssgate: client certificate, AUTH EXTERNAL, XCLIENT to the same Postfix port; each message "
               "inspected and its indicator event durable in the SQLite journal before the `250`. Same machine "
               "(2 cores shared by clients, mssgate, Postfix and Dovecot); the two alternated in each round, their "
               "order swapped every round. Postfix holds the messages it accepts (a header check, `HOLD`) and "
               "delivers them after each measurement, which starts once every message of the one before is "
               "delivered: a delivery costs these shared cores about what a submission does, and without the hold "
               "each measurement paid for as many as its own pace let through (the slower one more). Each figure "
               "the median of the rounds. CPU per message: mssgate's process, and Postfix's processes (master and "
               "its children: smtpd, cleanup, the queue manager)." % (args.rounds, args.clients), "",
               "| message | clients | messages a round | direct to Postfix (msg/s) | through mssgate (msg/s) | ratio "
               "| rounds, direct / through (msg/s) | CPU per message, direct: Postfix (ms) "
               "| CPU per message, through: mssgate + Postfix (ms) |",
               "|---|---|---|---|---|---|---|---|---|"]
    for label, clients, total, rates, cpu, direct, through in rows:
        spread = ", ".join("%.0f / %.0f" % pair for pair in zip(rates["postfix"], rates["mssgate"]))
        direct_cpu = statistics.median(c[1] for c in cpu["postfix"])
        through_cpu = (statistics.median(c[0] for c in cpu["mssgate"]), statistics.median(c[1] for c in cpu["mssgate"]))
        section.append("| %s | %d | %d | %.1f | %.1f | %.2f | %s | %.2f | %.2f + %.2f |"
                       % (label, clients, total, direct, through, through / direct, spread, direct_cpu, *through_cpu))
    section.append("")
    write_section(args.out, "## SMTP submission", "\n".join(section))


def start_backend(work, ports=None):
    """The test PKI in WORK/pki and a backend (scripts/backend) on the bench's ports (or `ports`,
    a dict like BACKEND_PORTS) in WORK/backend; returns (pki, environment for scripts/backend,
    path of scripts/backend)."""
    os.chmod(work, 0o755)  # the backend runs Dovecot as its own user, which must reach its directory
    pki = os.path.join(work, "pki")
    subprocess.run([os.path.join(ROOT, "tests", "pki", "make-test-pki"), pki], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, MSSGATE_BACKEND_DIR=os.path.join(work, "backend"))
    for name, port in (ports or BACKEND_PORTS).items():
        env["MSSGATE_BACKEND_%s_PORT" % name] = str(port)
    backend = os.path.join(ROOT, "scripts", "backend")
    subprocess.run([backend, "start"], check=True, env=env, stdout=subprocess.DEVNULL)
    return pki, env, backend


def stop_all(gateway, backend, env, work):
    """Stops the gateway (if it runs) and the backend, and removes the work directory."""
    if gateway and gateway.poll() is None:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=20)
    subprocess.run([backend, "stop"], env=env, stdout=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def write_config(path, pki, secret_file, database, journal=None):
    """A gateway configuration: IMAP and submission with STARTTLS on free ports, in front of the
    bench's backend, client certificates from the test PKI; with `journal`, indicators on (each
    message inspected, its event in that SQLite journal before the 250)."""
    with open(path, "w") as f:
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
master_password_file = "{secret_file}"
[smtp]
starttls_listen = ["127.0.0.1:0"]
[smtp.backend]
address = "127.0.0.1:{BACKEND_PORTS['SUBMISSION']}"
[directory]
sqlite_path = "{database}"
# Every client of a benchmark comes from this machine: held to the per-address limits, the
# benchmark would measure them instead of the relay.
[limits]
exempt_networks = ["127.0.0.0/8"]
""")
        if journal:
            f.write(f"""[indicators]
journal = "{journal}"
""")


def write_section(path, heading, text):
    """Replaces the section under `heading` in the benchmarks file, or appends it."""
    existing = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nWritten by the scripts in `bench/`.\n\n"
    pattern = re.compile(r"%s\n.*?(?=\n## |\Z)" % re.escape(heading), re.S)
    if pattern.search(existing):
        # The blank line before the next section stays (a function: no escapes read in `text`).
        existing = pattern.sub(lambda _: text.rstrip("\n") + "\n", existing)
    else:
        existing = existing.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(existing.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
