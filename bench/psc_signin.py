#!/usr/bin/env python3
"""Pro Santé Connect sign-in rate through mssgate: IMAP sessions (connect, STARTTLS, AUTHENTICATE
XOAUTH2 with SASL-IR, backend login, LOGOUT) with one token reused (validation cached) and with
a fresh token per sign-in (one introspection each), in the same run.

    scripts/demo && bench/psc_signin.py [--env /tmp/mssgate-demo/demo.env] [--out docs/benchmarks.md]

Runs against the demo (its release build, its Dovecot and its PSC stand-in). Bounded counts.
"""

import argparse
import base64
import multiprocessing
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_submission import ROOT, write_section  # noqa: E402


def load_env(path):
    env = {}
    for line in open(path):
        if "=" in line:
            key, value = line.rstrip("\n").split("=", 1)
            env[key] = shlex.split(value)[0] if value.startswith('"') else value
    return env


def sign_in(args):
    port, ca, mailbox, tokens = args
    ctx = ssl.create_default_context(cafile=ca)
    for token in tokens:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"s STARTTLS\r\n")
        f.readline()
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        f = tls.makefile("rb")
        payload = base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (mailbox, token)).encode())
        tls.sendall(b"a AUTHENTICATE XOAUTH2 " + payload + b"\r\n")
        line = f.readline()
        assert line.startswith(b"a OK"), line
        tls.sendall(b"z LOGOUT\r\n")
        while not f.readline().startswith(b"z "):
            pass
        tls.close()
    return len(tokens)


def run(env, tokens_per_client, clients):
    jobs = [(int(env["MSSGATE_IMAP_PORT"]), env["MSSGATE_CA_FILE"], env["MSSGATE_PER_MAILBOX"], t) for t in tokens_per_client]
    start = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        total = sum(pool.map(sign_in, jobs))
    return total / (time.monotonic() - start), total


def new_token(env):
    return subprocess.run(env["MSSGATE_PSC_TOKEN_CMD"], shell=True, capture_output=True, text=True, check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="/tmp/mssgate-demo/demo.env")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--count", type=int, default=50, help="sign-ins per client")
    args = parser.parse_args()
    env = load_env(args.env)
    shared = new_token(env)
    cached, n_cached = run(env, [[shared] * args.count] * args.clients, args.clients)
    fresh_tokens = [[new_token(env) for _ in range(args.count)] for _ in range(args.clients)]  # issued before timing
    uncached, n_fresh = run(env, fresh_tokens, args.clients)
    print("cached token %.1f sign-ins/s, fresh token %.1f sign-ins/s" % (cached, uncached))
    section = ["## Pro Santé Connect sign-in", "",
               "`bench/psc_signin.py` against `scripts/demo`: %d clients, each IMAP session is connect, STARTTLS "
               "(TLS 1.2), AUTHENTICATE XOAUTH2 (SASL-IR), Dovecot login as the mailbox, LOGOUT. Cached: every "
               "sign-in shows the same token (validated once). Fresh: a new token per sign-in, each introspected "
               "over a kept HTTPS connection to the PSC stand-in (Python, on the same 2 cores)." % args.clients, "",
               "| token | sign-ins | sign-ins/s |", "|---|---|---|",
               "| cached | %d | %.1f |" % (n_cached, cached), "| fresh (one introspection each) | %d | %.1f |" % (n_fresh, uncached), ""]
    write_section(args.out, "## Pro Santé Connect sign-in", "\n".join(section))


if __name__ == "__main__":
    sys.exit(main())
