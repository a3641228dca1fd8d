#!/usr/bin/env python3
"""The cost of the cluster path: three gateways behind HAProxy (TCP mode, PROXY protocol v2),
their directory and indicator journal in PostgreSQL, against one gateway alone on its SQLite
directory and journal, in the same
run, with the same clients: IMAP sessions per second (implicit TLS 1.2 with the client
certificate, AUTHENTICATE EXTERNAL, Dovecot login as the mailbox, LOGOUT) and submission
messages per second (4 KiB, one STARTTLS session per client that authenticates once).

    bench/cluster.py [--build build/release] [--out docs/benchmarks.md] [--rounds 3]

Starts its own backend (scripts/backend, ports 33xxx), its own PostgreSQL (scripts/postgres,
port 33432), the gateways and HAProxy, and stops them all. The two set-ups are measured one
after the other, alternated over the rounds; every loop is bounded by a count. On 2 cores the
three gateways share the cores the one gateway has alone: the figure is what the extra hop,
the PROXY header and PostgreSQL (directory and journal) cost, not what scaling out gains (see
docs/deployment.md for that arithmetic).
"""

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_submission import (MAILBOX, ROOT, context, make_message, start_backend, stop_all, wait_delivered,  # noqa: E402
                             wait_ready, write_config, write_section)
import smtplib  # noqa: E402

BACKEND_PORTS = {"IMAP": 33143, "IMAPS": 33993, "LMTP": 33024, "AUTH": 33012, "SMTP": 33025, "SUBMISSION": 33587}
PG_PORT = 33432
GATEWAYS = 3
CLIENTS = 4


def imap_sessions(args):
    """`count` IMAP sessions one after the other: TLS, EXTERNAL, LOGOUT."""
    port, pki, count = args
    ctx = context(pki, "org-hopital")
    ctx.check_hostname = False
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                data = b""
                while b"\r\n" not in data:
                    data += tls.recv(4096)
                tls.sendall(b"a1 AUTHENTICATE EXTERNAL =\r\n")
                while b"a1 " not in data:
                    data += tls.recv(4096)
                assert b"a1 OK" in data, data[-200:]
                tls.sendall(b"a2 LOGOUT\r\n")
                while b"a2 " not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
    return count


def submissions(args):
    port, pki, count, index = args
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
    smtp.starttls(context=context(pki, "org-hopital"))
    smtp.ehlo("bench")
    smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
    for i in range(count):
        smtp.sendmail(MAILBOX, ["app.labo@test.mssante.fr"], make_message(4096, i, index))
    smtp.quit()
    return count


def rate(function, jobs):
    start = time.monotonic()
    with multiprocessing.Pool(len(jobs)) as pool:
        done = sum(pool.map(function, jobs))
    return done / (time.monotonic() - start), done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(build, config, log_path):
    log = open(log_path, "w")
    process = subprocess.Popen([os.path.join(build, "daemon", "mssgate"), "--config", config],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process, {name: int(port) for name, port in wait_ready(log_path, process).items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=100, help="IMAP sessions per client per round")
    parser.add_argument("--messages", type=int, default=100, help="messages per client per round")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="mssgate-bench-cluster-")
    import smtp_submission
    smtp_submission.BACKEND_PORTS = BACKEND_PORTS  # write_config and start_backend read it
    pki, env, backend = start_backend(work, BACKEND_PORTS)
    pg_env = dict(os.environ, MSSGATE_PG_DIR=os.path.join(work, "postgres"), MSSGATE_PG_PORT=str(PG_PORT))
    postgres = os.path.join(ROOT, "scripts", "postgres")
    processes = []
    haproxy = None
    try:
        subprocess.run([postgres, "start"], check=True, env=pg_env, stdout=subprocess.DEVNULL)
        pg = {}
        for line in open(os.path.join(work, "postgres", "postgres.env")):
            key, _, value = line.strip().partition("=")
            pg[key] = value.strip("'")
        secret_file = os.path.join(work, "backend", "master.secret")
        ctl = os.path.join(args.build, "daemon", "mssgatectl")

        # One gateway alone, its directory in SQLite: the reference.
        single = os.path.join(work, "single.toml")
        write_config(single, pki, secret_file, os.path.join(work, "directory.db"))
        text = open(single).read().replace('[imap]\nstarttls_listen = ["127.0.0.1:0"]',
                                           '[imap]\ntls_listen = ["127.0.0.1:0"]')
        # Both set-ups count what they relay: this one in its SQLite journal.
        text += '[indicators]\njournal = "%s"\noperator_domains = ["test.mssante.fr"]\n' % os.path.join(
            work, "indicators.db")
        open(single, "w").write(text)
        for command in (["mailbox", "add", MAILBOX, "--type", "APP"],
                        ["mailbox", "add", "app.labo@test.mssante.fr", "--type", "APP"],
                        ["certificate", "bind", MAILBOX, "--cert", pki + "/org-hopital.crt"]):
            subprocess.run([ctl, "--database", os.path.join(work, "directory.db"), *command], check=True,
                           stdout=subprocess.DEVNULL)
        process, single_ports = start_gateway(args.build, single, os.path.join(work, "single.log"))
        processes.append(process)

        # Three gateways, their directory in PostgreSQL, behind HAProxy.
        cluster_ports = []
        for i in range(1, GATEWAYS + 1):
            config = os.path.join(work, "gw-%d.toml" % i)
            write_config(config, pki, secret_file, "")
            text = open(config).read()
            text = text.replace('[imap]\nstarttls_listen = ["127.0.0.1:0"]', '[imap]\ntls_listen = ["127.0.0.1:0"]')
            text = text.replace('[directory]\nsqlite_path = ""', "[directory]")
            text = text.replace('log_level = "info"', 'log_level = "info"\ninstance = "gw-%d"' % i)
            text += ('[storage]\nbackend = "postgresql"\npostgresql = "%s"\npassword_file = "%s"\n'
                     '[proxy_protocol]\nlisteners = ["imaps", "submission"]\ntrusted_sources = ["127.0.0.1"]\n'
                     '[admin]\nlisten = ["127.0.0.1:0"]\n'
                     # The three count in the journal they share in PostgreSQL.
                     '[indicators]\noperator_domains = ["test.mssante.fr"]\n' % (pg["PG_URL"], pg["PG_PASSWORD_FILE"]))
            open(config, "w").write(text)
            if i == 1:
                for command in (["mailbox", "add", MAILBOX, "--type", "APP"],
                                ["mailbox", "add", "app.labo@test.mssante.fr", "--type", "APP"],
                                ["certificate", "bind", MAILBOX, "--cert", pki + "/org-hopital.crt"]):
                    subprocess.run([ctl, "--config", config, *command], check=True, stdout=subprocess.DEVNULL)
            process, ports = start_gateway(args.build, config, os.path.join(work, "gw-%d.log" % i))
            processes.append(process)
            cluster_ports.append(ports)
        front = {"imaps": free_port(), "submission": free_port()}
        haproxy_config = os.path.join(work, "haproxy.cfg")
        with open(haproxy_config, "w") as f:
            f.write("global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
                    "  timeout server 60s\n  option httpchk GET /readyz\n  balance roundrobin\n")
            for name, port in front.items():
                f.write("frontend %s\n  bind 127.0.0.1:%d\n  default_backend %s\nbackend %s\n" % (name, port, name, name))
                for i, ports in enumerate(cluster_ports, 1):
                    f.write("  server gw-%d 127.0.0.1:%d send-proxy-v2 check port %d inter 2s\n"
                            % (i, ports[name], ports["admin"]))
        haproxy_log = open(os.path.join(work, "haproxy.log"), "w")
        haproxy = subprocess.Popen(["haproxy", "-f", haproxy_config, "-db"], stdin=subprocess.DEVNULL,
                                   stdout=haproxy_log, stderr=subprocess.STDOUT)
        haproxy_log.close()
        time.sleep(1)
        if haproxy.poll() is not None:
            raise SystemExit("haproxy exited: " + open(os.path.join(work, "haproxy.log")).read())

        setups = {"one gateway, SQLite": single_ports, "three gateways, HAProxy, PostgreSQL": front}
        results = {label: {"sessions": [], "messages": []} for label in setups}
        sent = 0
        for label, ports in setups.items():  # warm-up: TLS contexts, connections to the backends
            rate(imap_sessions, [(ports["imaps"], pki, 5)] * CLIENTS)
            rate(submissions, [(ports["submission"], pki, 2, i) for i in range(CLIENTS)])
            sent += 2 * CLIENTS
        wait_delivered(work, sent)
        for round_ in range(args.rounds):
            order = list(setups.items()) if round_ % 2 == 0 else list(reversed(setups.items()))
            for label, ports in order:
                per_second, _ = rate(imap_sessions, [(ports["imaps"], pki, args.sessions)] * CLIENTS)
                results[label]["sessions"].append(per_second)
                per_second, done = rate(submissions, [(ports["submission"], pki, args.messages, i) for i in range(CLIENTS)])
                results[label]["messages"].append(per_second)
                sent += done
                wait_delivered(work, sent, timeout=300)
                print("round %d %-36s %.1f sessions/s %.1f msg/s" % (round_ + 1, label, results[label]["sessions"][-1],
                                                                     per_second), flush=True)
        load = open("/proc/loadavg").read().split()[:3]
    finally:
        if haproxy and haproxy.poll() is None:
            haproxy.send_signal(signal.SIGTERM)
            haproxy.wait(10)
        for process in processes[1:]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
        subprocess.run([postgres, "stop"], env=pg_env, stdout=subprocess.DEVNULL)
        stop_all(processes[0] if processes else None, backend, env, work)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    single_label, cluster_label = list(setups)
    section = ["## Several gateways behind HAProxy", "",
               "`bench/cluster.py`: the same %d clients against one gateway alone (directory and indicator journal "
               "in SQLite) and against three gateways behind HAProxy 2.6 in TCP mode (PROXY protocol v2, round "
               "robin, health checks on `/readyz`) sharing their directory and journal in PostgreSQL 15 (every "
               "sign-in and every message counted there), in front of the same Dovecot and Postfix, on "
               "the same 2 cores (load average %s at the end). A session: implicit TLS 1.2 with the client "
               "certificate, `AUTHENTICATE EXTERNAL`, Dovecot login as the mailbox, `LOGOUT` (%d per client per "
               "round). Messages: 4 KiB, one STARTTLS session per client, authenticated once (%d per client per "
               "round), each measurement starting once Postfix has delivered what came before. %d rounds, the "
               "two set-ups alternated; the median of the rounds. Three gateways on 2 cores share what one has "
               "alone: the ratio is the cost of the cluster path, not a gain from scaling out." %
               (CLIENTS, " ".join(load), args.sessions, args.messages, args.rounds), "",
               "| figure | one gateway, SQLite | three gateways, HAProxy, PostgreSQL | ratio |",
               "|---|---|---|---|"]
    for key, unit in (("sessions", "IMAP sessions/s"), ("messages", "messages/s (4 KiB)")):
        one, three = median(results[single_label][key]), median(results[cluster_label][key])
        rounds = ", ".join("%.1f" % v for v in results[cluster_label][key])
        section.append("| %s | %.1f | %.1f (rounds: %s) | %.2f |" % (unit, one, three, rounds, three / one))
    section.append("")
    write_section(args.out, "## Several gateways behind HAProxy", "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    sys.exit(main())
