#!/usr/bin/env python3
"""Good clients' sign-in rate while one address attacks: IMAP sessions of good clients
(connect, STARTTLS, client certificate, AUTHENTICATE EXTERNAL, Dovecot login, LOGOUT) per
second, quiet and while 500 hostile connections from 127.0.0.3 try to hold slots and send
garbage (the two alternated, several times), under the default per-address limits, then with
them switched off; in the same run, against the same gateway configuration otherwise.

    bench/hostile_clients.py [--build build/release] [--out docs/benchmarks.md]

Starts its own backend (scripts/backend, ports 32xxx) and mssgate, and stops them. Every loop is
bounded by a count (good clients) or a time (hostile connections).
"""

import argparse
import multiprocessing
import os
import random
import selectors
import socket
import subprocess
import sys
import tempfile
import time

from smtp_submission import ROOT, context, start_backend, stop_all, wait_ready, write_section

MAILBOX = "app.hopital@test.mssante.fr"
PORTS = {"IMAP": 32143, "IMAPS": 32993, "LMTP": 32024, "AUTH": 32012, "SMTP": 32025, "SUBMISSION": 32587}
HOSTILE_SOURCE = "127.0.0.3"
# Each good sign-in comes from the next of these addresses, as sign-ins from many practices
# would: no single good address goes near the per-address limits.
GOOD_SOURCES = ["127.0.1.%d" % i for i in range(1, 251)]
HEADING = "## Good clients under a hostile address"


def sign_in(args):
    """`count` sign-ins, one after the other; a connection refused at once (no "* OK") is tried
    again 50 ms later. Stops after `limit` seconds. Returns (sign-ins, refused connections)."""
    port, pki, count, offset, limit = args
    ctx = context(pki, "org-hopital")
    done = refused = 0
    deadline = time.monotonic() + limit
    i = 0
    while done < count and time.monotonic() < deadline:
        source = GOOD_SOURCES[(offset + i) % len(GOOD_SOURCES)]
        i += 1
        raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
        f = raw.makefile("rb")
        if not f.readline().startswith(b"* OK"):
            refused += 1
            raw.close()
            time.sleep(0.05)
            continue
        raw.sendall(b"s STARTTLS\r\n")
        assert f.readline().startswith(b"s OK"), "starttls"
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        f = tls.makefile("rb")
        tls.sendall(b"a AUTHENTICATE EXTERNAL =\r\n")
        line = f.readline()
        assert line.startswith(b"a OK"), line
        tls.sendall(b"z LOGOUT\r\n")
        while not f.readline().startswith(b"z "):
            pass
        tls.close()
        done += 1
    return done, refused


def measure(port, pki, clients, count, limit):
    """(sign-ins per second, sign-ins, seconds, connections refused) of `clients` processes."""
    jobs = [(port, pki, count, i * 61, limit) for i in range(clients)]
    start = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(sign_in, jobs)
    elapsed = time.monotonic() - start
    total = sum(r[0] for r in results)
    return total / elapsed, total, elapsed, sum(r[1] for r in results)


class Hostile:
    """`connections` sockets from HOSTILE_SOURCE that try to stay connected to the IMAP port and
    send garbage: half send a line of random bytes every 2 s (each gets BAD, ten end the
    session), half send one byte every 2 s and never end their line. A socket the gateway closes
    connects again after 1 s. Runs until `stop` is set, at most `limit` seconds."""

    def __init__(self, port, connections):
        self.port = port
        self.connections = connections
        self.stats = {"connects": 0, "refused": 0, "closed_later": 0, "garbage_lines": 0, "held_max": 0}

    def run(self, stop, limit, results):
        selector = selectors.DefaultSelector()
        slots = [{"sock": None, "next": 0.0, "greeted": False, "slow": i % 2 == 1, "started": 0.0}
                 for i in range(self.connections)]
        end = time.monotonic() + limit
        rng = random.Random(1)
        while not stop.is_set() and time.monotonic() < end:
            now = time.monotonic()
            held = 0
            for slot in slots:
                if slot["sock"] is None and now >= slot["next"]:
                    self.connect(selector, slot, now)
                elif slot["sock"] is not None and slot["greeted"]:
                    held += 1
                    if now >= slot["next"]:
                        self.send_garbage(slot, rng, now)
            self.stats["held_max"] = max(self.stats["held_max"], held)
            for key, _ in selector.select(timeout=0.05):
                self.readable(selector, key.data, time.monotonic())
        for slot in slots:
            if slot["sock"] is not None:
                selector.unregister(slot["sock"])
                slot["sock"].close()
        results.put(self.stats)

    def connect(self, selector, slot, now):
        sock = socket.socket()
        sock.setblocking(False)
        # The port is chosen at connect (IP_BIND_ADDRESS_NO_PORT): thousands of reconnections
        # from one address do not run out of ports held by closed connections.
        sock.setsockopt(socket.IPPROTO_IP, 24, 1)
        sock.bind((HOSTILE_SOURCE, 0))
        try:
            sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            slot["next"] = now + 1.0
            return
        slot.update(sock=sock, greeted=False, next=now + 2.0, started=now)
        selector.register(sock, selectors.EVENT_READ, slot)
        self.stats["connects"] += 1

    def send_garbage(self, slot, rng, now):
        if slot["slow"]:
            data = bytes([rng.randrange(33, 127)])
        else:
            data = bytes(rng.randrange(33, 256) for _ in range(60)) + b"\r\n"
            self.stats["garbage_lines"] += 1
        try:
            slot["sock"].send(data)
        except OSError:
            pass
        slot["next"] = now + 2.0

    def readable(self, selector, slot, now):
        try:
            data = slot["sock"].recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if not slot["greeted"]:
                slot["greeted"] = data.startswith(b"* OK")
                if not slot["greeted"]:
                    self.stats["refused"] += 1
            return
        if slot["greeted"]:
            self.stats["closed_later"] += 1
        selector.unregister(slot["sock"])
        slot["sock"].close()
        slot.update(sock=None, next=now + 1.0)


def hostile_main(port, connections, stop, limit, results):
    Hostile(port, connections).run(stop, limit, results)


def write_config(path, pki, secret_file, database, limits, max_connections):
    with open(path, "w") as f:
        f.write(f"""[server]
log_level = "info"
max_connections = {max_connections}
[tls]
certificate_chain = "{pki}/server.chain.pem"
private_key = "{pki}/server.key"
client_ca = "{pki}/ca-chain.pem"
crl_files = ["{pki}/crls.pem"]
[imap]
starttls_listen = ["127.0.0.1:0"]
[imap.backend]
address = "127.0.0.1:{PORTS['IMAP']}"
master_user = "mssgate"
master_password_file = "{secret_file}"
[smtp]
starttls_listen = ["127.0.0.1:0"]
[smtp.backend]
address = "127.0.0.1:{PORTS['SUBMISSION']}"
[directory]
sqlite_path = "{database}"
[limits]
{limits}
""")


def attacked(port, pki, args):
    """One measurement of the good clients while the hostile connections run; their counts."""
    stop = multiprocessing.Event()
    results = multiprocessing.Queue()
    attacker = multiprocessing.Process(target=hostile_main, args=(port, args.hostile, stop, args.attack_limit, results))
    attacker.start()
    time.sleep(args.ramp)  # the hostile connections take their slots first
    row = measure(port, pki, args.clients, args.count, args.limit)
    stop.set()
    stats = results.get(timeout=60)
    attacker.join(timeout=30)
    return row, stats


def run_gateway(args, work, pki, limits, label):
    """Starts mssgate with `limits`; measures the good clients quiet and under attack, alternated
    `args.rounds` times (the order's bias cancels out); returns {condition: [(rate, total,
    elapsed), ...]} and the hostile side's counts of each round."""
    secret_file = os.path.join(work, "backend", "master.secret")
    config = os.path.join(work, "mssgate-%s.toml" % label)
    database = os.path.join(work, "directory.db")
    write_config(config, pki, secret_file, database, limits, args.max_connections)
    log_path = os.path.join(work, "mssgate-%s.log" % label)
    with open(log_path, "w") as log:
        gateway = subprocess.Popen([os.path.join(args.build, "daemon", "mssgate"), "--config", config],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = int(wait_ready(log_path, gateway)["imap"])
        measure(port, pki, args.clients, args.count // 4, args.limit)  # warm-up
        runs = {"quiet": [], "hostile": []}
        stats = []
        for i in range(args.rounds):
            order = ("quiet", "hostile") if i % 2 == 0 else ("hostile", "quiet")
            for condition in order:
                if condition == "quiet":
                    runs["quiet"].append(measure(port, pki, args.clients, args.count, args.limit))
                else:
                    row, counts = attacked(port, pki, args)
                    runs["hostile"].append(row)
                    stats.append(counts)
                print(label, condition, "%.1f sign-ins/s" % runs[condition][-1][0], flush=True)
        return runs, stats
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--clients", type=int, default=4, help="good client processes")
    parser.add_argument("--count", type=int, default=150, help="sign-ins per good client")
    parser.add_argument("--hostile", type=int, default=500, help="hostile connections")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds the attack runs before measuring")
    parser.add_argument("--attack-limit", type=float, default=240.0, help="longest attack, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="quiet and attacked measurements, alternated")
    parser.add_argument("--limit", type=float, default=30.0, help="longest measurement, seconds")
    parser.add_argument("--max-connections", type=int, default=400,
                        help="the gateway's server.max_connections: the slots the hostile connections go for")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="mssgate-bench-")
    pki, env, backend = start_backend(work, PORTS)
    try:
        ctl = os.path.join(args.build, "daemon", "mssgatectl")
        database = os.path.join(work, "directory.db")
        subprocess.run([ctl, "--database", database, "mailbox", "add", MAILBOX, "--type", "APP"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([ctl, "--database", database, "certificate", "bind", MAILBOX, "--cert",
                        os.path.join(pki, "org-hopital.crt")], check=True, stdout=subprocess.DEVNULL)
        with_limits, stats_on = run_gateway(args, work, pki, "", "default")
        off = ("max_connections_per_address = 1000000\nconnection_rate_per_address = 1000000\n"
               "failed_sign_in_rate_per_address = 1000000\nlogged_events_per_address = 1000000\n")
        without, stats_off = run_gateway(args, work, pki, off, "off")
    finally:
        stop_all(None, backend, env, work)

    def total(runs):
        count = sum(r[1] for r in runs)
        seconds = sum(r[2] for r in runs)
        return count, seconds, count / seconds, sum(r[3] for r in runs)

    rows = []
    for limits, runs in (("default", with_limits), ("per-address limits off", without)):
        quiet = total(runs["quiet"])
        for condition in ("quiet", "hostile"):
            count, seconds, rate, refused = total(runs[condition])
            each = ", ".join("%.0f" % r[0] for r in runs[condition])
            name = "quiet" if condition == "quiet" else "%d hostile connections" % args.hostile
            rows.append((limits, name, count, refused, seconds, rate, each, rate / quiet[2]))
    for row in rows:
        print("%-24s %-26s %5d sign-ins (%d refused) in %5.1f s: %6.1f/s (%s), ratio %.2f" % row)
    print("hostile side, default limits:", stats_on)
    print("hostile side, limits off:", stats_off)

    section = [HEADING, "",
               "`bench/hostile_clients.py`: %d good client processes, each doing %d IMAP sign-ins one after the other "
               "per measurement (connect, STARTTLS with TLS 1.2, client certificate, AUTHENTICATE EXTERNAL, Dovecot "
               "login as the mailbox, LOGOUT), each sign-in from the next of 250 loopback addresses (127.0.1.x). "
               "Quiet, or while one process keeps %d connections from %s trying to hold a slot: half send a line of "
               "random bytes every 2 s, half one byte every 2 s without ever ending the line; a socket the gateway "
               "closes connects again after 1 s; the attack starts %.0f s before the good clients and stops after "
               "them. Quiet and attacked measurements alternate, %d of each per gateway; one gateway with the "
               "default `[limits]`, one with the per-address limits switched off (every other setting the same). "
               "The gateway has `server.max_connections = %d`: the slots the hostile connections go for. A good "
               "client refused at connection tries again 50 ms later; a measurement stops after %.0f s. "
               "One run, one machine (2 cores shared by the clients, the attacker, mssgate and Dovecot, and other "
               "work on the machine: the figures of one measurement vary); release build." % (
                   args.clients, args.count, args.hostile, HOSTILE_SOURCE, args.ramp, args.rounds,
                   args.max_connections, args.limit), "",
               "| `[limits]` | good clients | sign-ins | good connections refused | seconds | sign-ins/s | "
               "each measurement | ratio to quiet |",
               "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        section.append("| %s | %s | %d | %d | %.1f | %.1f | %s | %.2f |" % row)
    section += ["", "The hostile side in each attacked measurement, in order:", "",
                "| `[limits]` | measurement | connections made | refused at once | slots held at most | "
                "garbage lines sent | closed by mssgate later |",
                "|---|---|---|---|---|---|---|"]
    for label, stats in (("default", stats_on), ("per-address limits off", stats_off)):
        for i, s in enumerate(stats):
            section.append("| %s | %d | %d | %d | %d | %d | %d |" % (label, i + 1, s["connects"], s["refused"],
                                                                     s["held_max"], s["garbage_lines"],
                                                                     s["closed_later"]))
    section.append("")
    write_section(args.out, HEADING, "\n".join(section))


if __name__ == "__main__":
    sys.exit(main())
