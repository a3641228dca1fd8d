#!/usr/bin/env python3
"""IMAP through mssgate against its peers, in one run on one machine, targets alternated inside
each round: Dovecot serving TLS itself ("Dovecot direct", which verifies no client), Dovecot as a
proxy doing mssgate's job (client certificate and CRLs required, SASL EXTERNAL, the user from the
certificate, a static passdb that proxies to the backend with the master user, imap-login in
high-performance mode), nginx's mail proxy (auth_http answered by nginx itself, LOGIN) without
and with client-certificate and CRL verification, and mssgate (client certificate and CRLs,
EXTERNAL, the directory, the master login), all in front of the same Dovecot.

    bench/imap_peers.py [--build build/release] [--out docs/benchmarks.md] [--rounds 2]
                        [--seconds 8] [--idle 2000] [--only session,resumed,fetch,noop,idle]
                        [--targets dovecot,...]

Figures: sessions a second (connect, TLS, sign-in, LOGOUT; full handshakes, and resumed ones
apart) for TLS 1.2 with STARTTLS and TLS 1.3 on the implicit port, 8 and 32 clients; FETCH of a
1 MiB message by 4 clients (MiB/s); NOOP round trips of one client (p50/p99); the memory
(PSS) each idle session (signed in, IDLE) costs a freshly started front, once the sessions are
quiet (the hold's last seconds) and at its highest (the burst of sign-ins included). Beside each figure the
CPU time the front's processes spent per operation (/proc, every process of its tree), and the
backend Dovecot's. Starts its own backend (scripts/backend, ports 34xxx), the two Dovecot and
nginx fronts and mssgate, and stops them by their PIDs. Needs root, Debian's dovecot-imapd,
nginx and libnginx-mod-mail, and `mssgate_imap_load` (built here if missing). About 12 minutes
with the defaults.
"""

import argparse
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import start_gateway  # noqa: E402
from smtp_submission import MAILBOX, ROOT, start_backend, write_section  # noqa: E402

BACKEND_PORTS = {"IMAP": 34143, "IMAPS": 34993, "LMTP": 34024, "AUTH": 34012, "SMTP": 34025, "SUBMISSION": 34587}
# (STARTTLS, implicit TLS) port of each front; Dovecot direct is the backend's own pair.
FRONT_PORTS = {
    "dovecot": (BACKEND_PORTS["IMAP"], BACKEND_PORTS["IMAPS"]),
    "dovecot-proxy": (34243, 34293),
    "nginx": (34343, 34393),
    "nginx-verify": (34443, 34493),
    "mssgate": (34543, 34593),
    "mssgate-journal": (34643, 34693),
}
NGINX_AUTH_PORT = 34080
TARGETS = ["dovecot", "dovecot-proxy", "nginx", "nginx-verify", "mssgate"]
# Measured only when named in --targets: mssgate counting its sign-ins in an indicator journal
# (SQLite), each written before the sign-in's answer, as an operator counting its indicators
# runs it. Its figures go to a section of their own.
OPTIONAL_TARGETS = ["mssgate-journal"]
DEFAULT_TARGETS = list(TARGETS)
DEFAULT_ONLY = "session,resumed,fetch,noop,idle"
LABELS = {
    "dovecot": "Dovecot direct",
    "dovecot-proxy": "Dovecot proxy (certificate + CRL + EXTERNAL + master login)",
    "nginx": "nginx (LOGIN)",
    "nginx-verify": "nginx verifying the certificate + CRLs (LOGIN)",
    "mssgate": "mssgate (certificate + CRL + EXTERNAL + master login)",
    "mssgate-journal": "mssgate, each sign-in in the indicator journal before its answer",
}
NGINX_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
DOVECOT_USER = "dovecot"
FETCH_MESSAGE_BYTES = 1 << 20


def log(text):
    print("imap_peers: " + text, flush=True)


# ---- processes, CPU and memory ------------------------------------------------------------------

def children_of():
    """Parent PID -> child PIDs, for every process now."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(root):
    tree = children_of()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def cpu_seconds(root):
    """CPU time of a process, its live descendants and those they reaped (utime, stime and the
    children's), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def pss_kib(root):
    total = 0
    for pid in process_tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def read_pid(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    raise SystemExit("imap_peers: no PID in %s" % path)


def stop_pid(pid, how=signal.SIGTERM, timeout=20.0):
    try:
        os.kill(pid, how)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # a child of ours is reaped here
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def wait_port(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("imap_peers: nothing listens on %d" % port)


# ---- the fronts -------------------------------------------------------------------------------

class Front:
    """One target: how to start and stop it, the root of its process tree, how clients sign in."""

    def __init__(self, name, bench):
        self.name = name
        self.bench = bench
        self.root = None

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def restart(self):
        self.stop()
        self.start()

    def load_args(self):
        raise NotImplementedError


class DovecotDirect(Front):
    """The backend's own TLS ports; the client logs in as the mailbox through the master user."""

    def start(self):
        self.root = read_pid(os.path.join(self.bench.backend_dir, "dovecot", "run", "master.pid"))

    def stop(self):
        pass  # the backend, stopped at the end

    def load_args(self):
        return ["--auth", "login", "--user", "%s*%s" % (MAILBOX, self.bench.master_user),
                "--secret-file", self.bench.secret_file]


class DovecotProxy(Front):
    def start(self):
        b = self.bench
        d = os.path.join(b.work, "dovecot-proxy")
        for sub in ("run", "state", "log", "tls"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        shutil.copy(os.path.join(b.pki, "server.chain.pem"), os.path.join(d, "tls", "server.chain.pem"))
        shutil.copy(os.path.join(b.pki, "server.key"), os.path.join(d, "tls", "server.key"))
        with open(os.path.join(d, "tls", "ca-and-crls.pem"), "w") as out:
            for name in ("ca-chain.pem", "crls.pem"):
                out.write(open(os.path.join(b.pki, name)).read())
        secret = open(b.secret_file).read().strip()
        starttls, implicit = FRONT_PORTS[self.name]
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""instance_name = mssgate-bench-dovecot-proxy
base_dir = {d}/run
state_dir = {d}/state
listen = 127.0.0.1
protocols = imap
log_path = {d}/log/dovecot.log
default_internal_user = {DOVECOT_USER}
default_internal_group = {DOVECOT_USER}
default_login_user = {DOVECOT_USER}
ssl = required
ssl_cert = <{d}/tls/server.chain.pem
ssl_key = <{d}/tls/server.key
ssl_ca = <{d}/tls/ca-and-crls.pem
ssl_verify_client_cert = yes
ssl_require_crl = yes
ssl_min_protocol = TLSv1.2
ssl_cert_username_field = commonName
auth_mechanisms = external
auth_ssl_require_client_cert = yes
auth_ssl_username_from_cert = yes
auth_failure_delay = 0
passdb {{
  driver = static
  args = proxy=y host=127.0.0.1 port={BACKEND_PORTS['IMAP']} nopassword=y destuser={MAILBOX} master={b.master_user} pass={secret}
}}
userdb {{
  driver = static
  args = uid={DOVECOT_USER} gid={DOVECOT_USER} home=/nonexistent
}}
default_process_limit = 100
default_client_limit = 30000
default_vsz_limit = 2G
service anvil {{
  chroot =
  client_limit = 40000
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  client_limit = 40000
}}
service imap-login {{
  chroot =
  # high-performance mode: each login process serves many clients, one per core
  service_count = 0
  process_min_avail = {os.cpu_count()}
  client_limit = 30000
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {implicit}
    ssl = yes
  }}
}}
""")
        subprocess.run(["chown", "-R", "%s:%s" % (DOVECOT_USER, DOVECOT_USER), d], check=True)
        os.chmod(conf, 0o600)  # it holds the master user's password
        self.conf = conf
        subprocess.run(["setpriv", "--reuid=" + DOVECOT_USER, "--regid=" + DOVECOT_USER, "--init-groups", "--",
                        "/usr/sbin/dovecot", "-c", conf], check=True, stdin=subprocess.DEVNULL,
                       stdout=open(os.path.join(d, "start.log"), "a"), stderr=subprocess.STDOUT)
        self.root = read_pid(os.path.join(d, "run", "master.pid"))
        wait_port(implicit)

    def stop(self):
        if self.root:
            stop_pid(self.root)
            self.root = None

    def load_args(self):
        return ["--auth", "external", "--cert", self.bench.cert, "--key", self.bench.key]


class Nginx(Front):
    def __init__(self, name, bench, verify):
        super().__init__(name, bench)
        self.verify = verify

    def start(self):
        b = self.bench
        d = os.path.join(b.work, self.name)
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        secret = open(b.secret_file).read().strip()
        starttls, implicit = FRONT_PORTS[self.name]
        verify = ""
        if self.verify:
            verify = f"""    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_client_certificate {b.pki}/ca-chain.pem;
    ssl_crl {b.pki}/crls.pem;
"""
        auth_port = NGINX_AUTH_PORT + (1 if self.verify else 0)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module {NGINX_MODULE};
user root;
worker_processes {os.cpu_count()};
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
  worker_connections 30000;
}}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  # nginx answers its own auth_http: every sign-in goes to the backend as the mailbox through
  # the master user (the client's LOGIN is not checked: the cost of an auth service is left out)
  server {{
    listen 127.0.0.1:{auth_port};
    location = /auth {{
      add_header Auth-Status OK;
      add_header Auth-Server 127.0.0.1;
      add_header Auth-Port {BACKEND_PORTS['IMAP']};
      add_header Auth-User "{MAILBOX}*{b.master_user}";
      add_header Auth-Pass "{secret}";
      return 204;
    }}
  }}
}}
mail {{
  auth_http 127.0.0.1:{auth_port}/auth;
  proxy_pass_error_message on;
  imap_capabilities IMAP4rev1 IDLE LITERAL+;
  ssl_certificate {b.pki}/server.chain.pem;
  ssl_certificate_key {b.pki}/server.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:MAIL:10m;
  ssl_session_timeout 5m;
  server {{
    listen 127.0.0.1:{starttls};
    protocol imap;
    starttls only;
{verify}  }}
  server {{
    listen 127.0.0.1:{implicit} ssl;
    protocol imap;
{verify}  }}
}}
""")
        os.chmod(conf, 0o600)  # it holds the master user's password
        subprocess.run(["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")], check=True,
                       stdin=subprocess.DEVNULL, stdout=open(os.path.join(d, "start.log"), "a"),
                       stderr=subprocess.STDOUT)
        self.root = read_pid(os.path.join(d, "nginx.pid"))
        wait_port(implicit)

    def stop(self):
        if self.root:
            stop_pid(self.root, signal.SIGQUIT)
            self.root = None

    def load_args(self):
        args = ["--auth", "login", "--user", "bench", "--secret", "bench"]
        if self.verify:
            args += ["--cert", self.bench.cert, "--key", self.bench.key]
        return args


class Mssgate(Front):
    def __init__(self, name, bench):
        super().__init__(name, bench)
        self.process = None

    def start(self):
        b = self.bench
        starttls, implicit = FRONT_PORTS[self.name]
        config = os.path.join(b.work, self.name + ".toml")
        with open(config, "w") as f:
            f.write(f"""[server]
log_level = "info"
[tls]
certificate_chain = "{b.pki}/server.chain.pem"
private_key = "{b.pki}/server.key"
client_ca = "{b.pki}/ca-chain.pem"
crl_files = ["{b.pki}/crls.pem"]
max_version = "TLSv1.3"
[imap]
starttls_listen = ["127.0.0.1:{starttls}"]
tls_listen = ["127.0.0.1:{implicit}"]
[imap.backend]
address = "127.0.0.1:{BACKEND_PORTS['IMAP']}"
master_user = "{b.master_user}"
master_password_file = "{b.secret_file}"
[directory]
sqlite_path = "{b.work}/directory.db"
# Every client of a benchmark comes from this machine, and one certificate opens every session.
[limits]
exempt_networks = ["127.0.0.0/8"]
max_sessions_per_certificate = 100000
""")
            if self.name == "mssgate-journal":
                f.write('[indicators]\njournal = "%s/indicators.db"\noperator_domains = ["test.mssante.fr"]\n'
                        % b.work)
        self.process, _ = start_gateway(b.build, config, os.path.join(b.work, self.name + ".log"))
        self.root = self.process.pid

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None
        self.root = None

    def load_args(self):
        return ["--auth", "external", "--cert", self.bench.cert, "--key", self.bench.key]


# ---- the load ---------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.work = tempfile.mkdtemp(prefix="mssgate-bench-peers-")
        self.load = os.path.join(self.build, "bench", "mssgate_imap_load")
        self.fronts = {}

    def run_load(self, front, mode, connections, seconds, tls="implicit", version="1.2", resume=False,
                 threads=1):
        starttls, implicit = FRONT_PORTS[front.name]
        command = [self.load, "--port", str(implicit if tls == "implicit" else starttls), "--tls", tls,
                   "--tls-version", version, "--mode", mode, "--connections", str(connections),
                   "--threads", str(threads), "--seconds", str(seconds), "--label", front.name]
        if resume:
            command.append("--resume")
        command += front.load_args()
        backend_root = self.fronts["dovecot"].root
        cpu_front = cpu_seconds(front.root)
        cpu_backend = cpu_seconds(backend_root)
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode != 0:
            raise SystemExit("imap_peers: %s failed: %s" % (" ".join(command), done.stderr.strip()))
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["cpu_front"] = cpu_seconds(front.root) - cpu_front
        result["cpu_backend"] = cpu_seconds(backend_root) - cpu_backend
        if result["errors"]:
            log("%s %s: %d error(s), the first: %s" % (front.name, mode, result["errors"], result["first_error"]))
        return result

    def put_fetch_message(self):
        """A 1 MiB message in the mailbox's INBOX (the maildir, as Dovecot's user)."""
        maildir = os.path.join(self.backend_dir, "mail", "test.mssante.fr", MAILBOX.split("@")[0], "cur")
        body = ("x" * 76 + "\r\n") * (FETCH_MESSAGE_BYTES // 78)
        message = ("From: bench@test.mssante.fr\r\nTo: %s\r\nSubject: fetch\r\nMessage-ID: <fetch@bench>\r\n\r\n"
                   % MAILBOX) + body
        path = os.path.join(maildir, "1700000000.bench1.localhost:2,S")
        with open(path, "w") as f:
            f.write(message)
        user = pwd.getpwnam(DOVECOT_USER)
        os.chown(path, user.pw_uid, user.pw_gid)

    def idle_memory(self, front, sessions, seconds):
        """PSS of a freshly started front, then at its highest while `sessions` sit in IDLE."""
        front.restart()
        time.sleep(1.0)
        rest = pss_kib(front.root)
        starttls, implicit = FRONT_PORTS[front.name]
        command = [self.load, "--port", str(implicit), "--tls", "implicit", "--tls-version", "1.2",
                   "--mode", "idle", "--connections", str(sessions), "--threads", "2",
                   "--seconds", str(seconds), "--label", front.name] + front.load_args()
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = []  # (seconds since the load started, PSS)
        started = time.monotonic()
        while client.poll() is None:
            samples.append((time.monotonic() - started, pss_kib(front.root)))
            time.sleep(0.25)
        ended = time.monotonic() - started
        out, err = client.communicate()
        if client.returncode != 0:
            raise SystemExit("imap_peers: idle load on %s failed: %s" % (front.name, err.strip()))
        result = json.loads(out.strip().splitlines()[-1])
        held = result["idle"]
        peak = max([rest] + [pss for _, pss in samples])
        # Once the sign-ins are over: the samples of the hold's last seconds, before the client
        # ends its sessions.
        quiet = median([pss for t, pss in samples if ended - 3.0 <= t <= ended - 1.0]) if samples else rest
        return {"rest_kib": rest, "peak_kib": peak, "quiet_kib": quiet, "held": held,
                "per_session_kib": (peak - rest) / held if held else float("nan"),
                "quiet_per_session_kib": (quiet - rest) / held if held else float("nan"),
                "errors": result["errors"], "first_error": result["first_error"]}


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--idle", default="2000", help="idle sessions to hold, comma-separated (e.g. 2000,10000)")
    parser.add_argument("--only", default=DEFAULT_ONLY)
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="the targets to measure, comma-separated (default: all but %s)"
                        % ", ".join(OPTIONAL_TARGETS))
    parser.add_argument("--json", help="also write every run's figures here")
    parser.add_argument("--note", default="", help="a sentence on the run's conditions, kept in the section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("imap_peers: run as root (the backend, Dovecot's proxy and nginx need it)")
    for needed in ("/usr/sbin/dovecot", "/usr/sbin/nginx", NGINX_MODULE):
        if not os.path.exists(needed):
            raise SystemExit("imap_peers: %s is missing: run scripts/setup --bench"
                             % needed)
    only = set(args.only.split(","))
    chosen = [t for t in args.targets.split(",") if t]
    unknown = [t for t in chosen if t not in TARGETS + OPTIONAL_TARGETS]
    if unknown:
        raise SystemExit("imap_peers: no target %s (targets: %s)"
                         % (", ".join(unknown), ", ".join(TARGETS + OPTIONAL_TARGETS)))
    TARGETS[:] = [t for t in TARGETS + OPTIONAL_TARGETS if t in chosen]
    idle_counts = [int(x) for x in args.idle.split(",") if x]
    most = max(idle_counts + [1000])
    # Every front's descriptors, as a service unit's LimitNOFILE gives them (mssgate's has 65536):
    # raised past the hard limit when this runs as root, else up to it.
    need = 4 * most + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), max(hard, need)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, need)), hard))

    bench = Bench(args)
    if not os.path.exists(bench.load):
        subprocess.run(["cmake", "--build", bench.build, "--target", "mssgate_imap_load"], check=True,
                       stdout=subprocess.DEVNULL)
    # Enough imap processes on the backend for every idle session (each serves up to 50).
    os.environ["MSSGATE_BACKEND_IMAP_PROCESS_CLIENTS"] = "50"
    import smtp_submission
    smtp_submission.BACKEND_PORTS = BACKEND_PORTS
    pki, env, backend = start_backend(bench.work, BACKEND_PORTS)
    bench.pki = pki
    bench.backend_dir = os.path.join(bench.work, "backend")
    bench.secret_file = os.path.join(bench.backend_dir, "master.secret")
    bench.master_user = "mssgate"
    bench.cert = os.path.join(pki, "org-hopital.chain.pem")
    bench.key = os.path.join(pki, "org-hopital.key")
    ctl = os.path.join(bench.build, "daemon", "mssgatectl")
    for command in (["mailbox", "add", MAILBOX, "--type", "APP"],
                    ["certificate", "bind", MAILBOX, "--cert", pki + "/org-hopital.crt"]):
        subprocess.run([ctl, "--database", os.path.join(bench.work, "directory.db"), *command], check=True,
                       stdout=subprocess.DEVNULL)
    bench.put_fetch_message()
    every = {"dovecot": DovecotDirect("dovecot", bench), "dovecot-proxy": DovecotProxy("dovecot-proxy", bench),
             "nginx": Nginx("nginx", bench, verify=False), "nginx-verify": Nginx("nginx-verify", bench, True),
             "mssgate": Mssgate("mssgate", bench), "mssgate-journal": Mssgate("mssgate-journal", bench)}
    # Dovecot direct is the backend: its process tree is always known (for the backend's CPU).
    bench.fronts = {name: front for name, front in every.items() if name in TARGETS or name == "dovecot"}
    runs = []
    try:
        for front in bench.fronts.values():
            front.start()
        log("work folder %s; fronts started" % bench.work)
        scenarios = []
        if "session" in only:
            for tls, version in (("starttls", "1.2"), ("implicit", "1.3")):
                for clients in (8, 32):
                    scenarios.append(("session", tls, version, clients, False, TARGETS))
        if "resumed" in only:
            scenarios.append(("session", "implicit", "1.2", 8, True, TARGETS))
        if "fetch" in only:
            scenarios.append(("fetch", "implicit", "1.2", 4, False, [t for t in TARGETS if t != "nginx-verify"]))
        if "noop" in only:
            scenarios.append(("noop", "implicit", "1.2", 1, False, [t for t in TARGETS if t != "nginx-verify"]))
        for round_number in range(args.rounds):
            for mode, tls, version, clients, resume, targets in scenarios:
                order = targets if round_number % 2 == 0 else list(reversed(targets))
                for name in order:
                    result = bench.run_load(bench.fronts[name], mode, clients, args.seconds, tls, version, resume,
                                            threads=2 if clients > 8 else 1)
                    result.update(round=round_number, resume=resume, target=name)
                    runs.append(result)
                    log("round %d %s %s TLS %s x%d%s %s: %.1f sessions/s %.1f MiB/s p50 %.3f p99 %.3f, cpu %.2f s"
                        % (round_number + 1, mode, tls, version, clients, " resumed" if resume else "", name,
                           result["sessions_per_s"], result["mib_per_s"], result["p50_ms"], result["p99_ms"],
                           result["cpu_front"]))
        idle = {}
        if "idle" in only:
            for count in idle_counts:
                for name in TARGETS:
                    figures = bench.idle_memory(bench.fronts[name], count, 10.0 + count / 120)
                    idle[(name, count)] = figures
                    log("idle %d on %s: %s" % (count, name, figures))
    finally:
        for front in bench.fronts.values():
            try:
                front.stop()
            except Exception as error:  # noqa: BLE001 - every front is stopped, whatever one says
                log("stopping %s: %s" % (front.name, error))
        subprocess.run([backend, "stop"], env=env, stdout=subprocess.DEVNULL)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "idle": [dict(v, target=k[0], sessions=k[1]) for k, v in idle.items()]}, f,
                      indent=1)
    heading = "## IMAP against Dovecot and nginx"
    if "mssgate-journal" in TARGETS:
        heading = "## IMAP sessions with each sign-in in the indicator journal"
    write_section(args.out, heading, heading + "\n\n" + report(args, runs, idle, idle_counts))
    shutil.rmtree(bench.work, ignore_errors=True)
    log("written to %s" % args.out)


def pick(runs, target, mode, tls, version, clients, resume):
    return [r for r in runs if r["target"] == target and r["mode"] == mode and r["tls"] == tls
            and r["tls_version"] == version and r["connections"] == clients and r["resume"] == resume]


def report(args, runs, idle, idle_counts):
    def ms_per(rs, key, per):
        ops = sum(r[per] for r in rs)
        return 1000 * sum(r[key] for r in rs) / ops if ops else float("nan")

    lines = []
    cpu_name = os.popen("lscpu | sed -n 's/^Model name: *//p'").read().strip() or "unknown CPU"
    chosen = "" if args.targets == ",".join(DEFAULT_TARGETS) else " --targets " + args.targets
    chosen += "" if args.only == DEFAULT_ONLY else " --only " + args.only
    lines.append("`bench/imap_peers.py --rounds %d --seconds %g --idle %s" % (args.rounds, args.seconds, args.idle)
                 + chosen + "` on %s (%d cores), %s; each figure "
                 "the median of the rounds, the targets alternated inside each round. CPU: milliseconds of "
                 "the front's processes (and of the backend Dovecot's, in brackets) per session, per MiB or "
                 "per NOOP. Full handshakes unless said."
                 % (cpu_name, os.cpu_count(), time.strftime("%Y-%m-%d")))
    if args.note:
        lines.append("")
        lines.append(args.note)
    lines.append("")
    with_journal = "mssgate-journal" in TARGETS
    header = "| scenario | " + " | ".join(LABELS[t] for t in TARGETS) + " | mssgate / Dovecot proxy | " \
        "mssgate / nginx verifying | mssgate / Dovecot direct |" + (" with the journal / without |" if with_journal
                                                                     else "")
    lines.append(header)
    lines.append("|---|" + "---:|" * (len(TARGETS) + 3 + with_journal))

    def row(title, mode, tls, version, clients, resume, key, fmt, cpu_per):
        cells, values = [], {}
        for t in TARGETS:
            rs = pick(runs, t, mode, tls, version, clients, resume)
            if not rs:
                cells.append("—")
                continue
            value = median([r[key] for r in rs])
            values[t] = value
            cpu = ms_per(rs, "cpu_front", cpu_per)
            cpu_b = ms_per(rs, "cpu_backend", cpu_per)
            errors = sum(r["errors"] for r in rs)
            cells.append((fmt % value) + " (%.2f [%.2f] ms)" % (cpu, cpu_b) + (" %d errors" % errors if errors else ""))
        if not values:
            return
        ratios = []
        for other in ("dovecot-proxy", "nginx-verify", "dovecot"):
            if "mssgate" in values and values.get(other):
                ratio = values["mssgate"] / values[other]
                if key in ("p50_ms", "p99_ms"):
                    ratio = values[other] / values["mssgate"] if values["mssgate"] else float("nan")
                ratios.append("%.2f" % ratio)
            else:
                ratios.append("—")
        if with_journal:
            journal, plain = values.get("mssgate-journal"), values.get("mssgate")
            if journal and plain:
                ratios.append("%.2f" % (plain / journal if key in ("p50_ms", "p99_ms") else journal / plain))
            else:
                ratios.append("—")
        lines.append("| %s | %s | %s |" % (title, " | ".join(cells), " | ".join(ratios)))

    for tls, version, name in (("starttls", "1.2", "TLS 1.2 STARTTLS"), ("implicit", "1.3", "TLS 1.3 implicit")):
        for clients in (8, 32):
            row("sessions/s, %s, %d clients" % (name, clients), "session", tls, version, clients, False,
                "sessions_per_s", "%.0f", "sessions")
    row("sessions/s, TLS 1.2 implicit, 8 clients, resumed", "session", "implicit", "1.2", 8, True,
        "sessions_per_s", "%.0f", "sessions")
    for r in runs:
        r["mib"] = r["bytes"] / (1 << 20)
    row("FETCH of a 1 MiB message, 4 clients, MiB/s", "fetch", "implicit", "1.2", 4, False, "mib_per_s", "%.0f", "mib")
    row("NOOP round trip p50, ms", "noop", "implicit", "1.2", 1, False, "p50_ms", "%.3f", "operations")
    row("NOOP round trip p99, ms", "noop", "implicit", "1.2", 1, False, "p99_ms", "%.3f", "operations")
    for count, key, scenario in [(c, k, s) for c in idle_counts for k, s in (
            ("quiet_per_session_kib", "once they are quiet"),
            ("per_session_kib", "at its highest, their sign-ins included"))]:
        cells, values = [], {}
        for t in TARGETS:
            f = idle.get((t, count))
            if not f:
                cells.append("—")
                continue
            values[t] = f[key]
            note = "" if f["held"] == count else " (%d held)" % f["held"]
            cells.append("%.1f KiB%s" % (f[key], note))
        if values:
            ratios = ["%.2f" % (values[o] / values["mssgate"]) if "mssgate" in values and values.get(o) and
                      values["mssgate"] > 0 else "—" for o in ("dovecot-proxy", "nginx-verify", "dovecot")]
            if with_journal:
                ratios.append("%.2f" % (values["mssgate"] / values["mssgate-journal"])
                              if values.get("mssgate") and values.get("mssgate-journal") else "—")
            lines.append("| %d idle sessions, front memory (PSS) per session of a freshly started front, %s | %s | %s |"
                         % (count, scenario, " | ".join(cells), " | ".join(ratios)))
    lines.append("")
    if with_journal:
        lines.append("The last ratio: mssgate writing each sign-in to its indicator journal (SQLite, "
                     "`synchronous = FULL`, group commit) before the answer, over mssgate without a journal.")
        lines.append("")
    lines.append("Ratios: mssgate's figure over the peer's (for latency and memory, the peer's over mssgate's: "
                 "above 1, mssgate is ahead). Dovecot direct's CPU is its own processes (login, imap); for the "
                 "others the backend's share is in brackets. nginx's auth_http is answered by nginx itself, so "
                 "its CPU includes it; Dovecot direct and nginx verify no client certificate. Dovecot direct "
                 "is the backend itself: it is not restarted before its idle measurement, and its figure "
                 "includes an imap process for every 50 sessions.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
