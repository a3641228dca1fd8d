#!/usr/bin/env python3
"""Bulk provisioning at operator scale: `mssgatectl directory import` of a 1,000,000-mailbox
file into an empty directory, the same file again (nothing to change), a `--sync` from a file
where 1 % of the mailboxes changed and 1 % are gone, and `directory export`, on SQLite and on
PostgreSQL, each timed from exec to exit with the command's peak memory.

    bench/directory_import.py [--build build/release] [--out docs/benchmarks.md]
                              [--mailboxes 1000000] [--rounds 2] [--no-postgresql]

The file (CSV) also holds a professional attached to one mailbox in five, a certificate
binding for one in ten and an allowed sender for one in twenty. Starts its own PostgreSQL
(scripts/postgres, port 34432, its own data folder) and removes everything at the end.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_submission import ROOT, write_section  # noqa: E402

PG_PORT = 34432
HEADING = "## Directory import at operator scale"


def write_file(path, mailboxes, changed_every=0, dropped_every=0):
    """The directory file: `mailboxes` mailboxes and their rows. With `changed_every`, one mailbox
    in that many is suspended and one certificate binding in that many relabelled; with
    `dropped_every`, one mailbox in that many is left out, with its professional and attachment."""
    kept = []
    with open(path, "w") as f:
        f.write("kind,mailbox,type,status,sender,holder,role,match,value,label\n")
        for i in range(mailboxes):
            if dropped_every and i % dropped_every == 1:
                continue
            kept.append(i)
            kind = ("PER", "ORG", "APP", "CAB")[i % 4]
            status = "suspended" if changed_every and i % changed_every == 0 else "active"
            f.write("mailbox,bal%07d@hopital-%03d.mssante.fr,%s,%s,,,,,,\n" % (i, i % 500, kind, status))
        for i in kept:
            address = "bal%07d@hopital-%03d.mssante.fr" % (i, i % 500)
            if i % 5 == 1:
                f.write("holder,,,,,8%011d,,,,Dr %d\n" % (i, i))
                f.write("attachment,%s,,,,8%011d,owner,,,\n" % (address, i))
            if i % 10 == 2:
                renewed = " (renewed)" if changed_every and i % changed_every == 2 else ""
                f.write("binding,%s,,,,,,spki-sha256,%064x,CN=LPS %d%s\n" % (address, i, i, renewed))
            if i % 20 == 3:
                f.write("sender,%s,,,service%d@hopital-%03d.mssante.fr,,,,,\n" % (address, i, i % 500))


class OwnPostgresql:
    """A PostgreSQL of the benchmark's own (scripts/postgres), in `work`, on `port`."""

    def __init__(self, work, port):
        self.env = dict(os.environ, MSSGATE_PG_DIR=os.path.join(work, "postgres"), MSSGATE_PG_PORT=str(port))
        self.script = os.path.join(ROOT, "scripts", "postgres")
        self.started = False
        self.settings = {}  # its postgres.env: PG_URL, PG_PASSWORD_FILE, PG_ADMIN_URL, ...

    def start(self):
        subprocess.run([self.script, "start"], check=True, env=self.env, stdout=subprocess.DEVNULL)
        self.started = True
        for line in open(os.path.join(self.env["MSSGATE_PG_DIR"], "postgres.env")):
            key, _, value = line.strip().partition("=")
            self.settings[key] = value.strip("'")
        return self.settings

    def stop(self):
        if self.started:
            subprocess.run([self.script, "stop"], env=self.env, stdout=subprocess.DEVNULL)

    def storage_section(self):
        return ('[storage]\nbackend = "postgresql"\npostgresql = "%s"\npassword_file = "%s"\n'
                % (self.settings["PG_URL"], self.settings["PG_PASSWORD_FILE"]))

    def empty_directory(self):
        with open(self.settings["PG_ADMIN_PASSWORD_FILE"]) as secret:
            password = secret.read().strip()
        subprocess.run(["psql", self.settings["PG_ADMIN_URL"], "-q", "-c",
                        "TRUNCATE mailbox, mailbox_sender, holder, mailbox_holder, certificate_binding"],
                       check=False, env=dict(os.environ, PGPASSWORD=password),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(command, work):
    """Runs `command`; returns (seconds, its peak RSS in MiB, its standard output)."""
    out_path = os.path.join(work, "command.out")
    with open(out_path, "w") as out, open(os.path.join(work, "command.err"), "w") as err:
        start = time.monotonic()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(command), process.returncode,
                                                 open(os.path.join(work, "command.err")).read()[-2000:]))
    return seconds, usage.ru_maxrss / 1024, open(out_path).read()


def measure(ctl, where, files, work, rounds):
    """Each step on `where` (["--database", path] or ["--config", path]), `rounds` times."""
    steps = {"import into an empty directory": [], "the same file again (no change)": [],
             "--sync, 1 % changed and 1 % gone (--absent suspend)": [], "export (CSV)": []}
    memory = {name: 0 for name in steps}
    for _ in range(rounds):
        reset = where[2]
        reset()
        for name, command in (
                ("import into an empty directory", ["directory", "import", files["full"]]),
                ("the same file again (no change)", ["directory", "import", files["full"]]),
                ("--sync, 1 % changed and 1 % gone (--absent suspend)",
                 ["directory", "import", files["sync"], "--sync", "--absent", "suspend"]),
                ("export (CSV)", ["directory", "export", "--out", os.path.join(work, "export.csv"), "--overwrite"])):
            seconds, peak, out = timed([ctl, *where[:2], *command], work)
            steps[name].append(seconds)
            memory[name] = max(memory[name], peak)
            if name.startswith("--sync"):
                last_sync = out.strip().replace(files["sync"], "sync.csv")
    return steps, memory, last_sync


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--mailboxes", type=int, default=1000000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()

    ctl = os.path.join(args.build, "daemon", "mssgatectl")
    work = tempfile.mkdtemp(prefix="mssgate-bench-import-")
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user, which must reach its folder
    postgresql = OwnPostgresql(work, PG_PORT)
    try:
        files = {"full": os.path.join(work, "directory.csv"), "sync": os.path.join(work, "sync.csv")}
        write_file(files["full"], args.mailboxes)
        write_file(files["sync"], args.mailboxes, changed_every=100, dropped_every=100)
        rows = sum(1 for _ in open(files["full"])) - 1
        size_mib = os.path.getsize(files["full"]) / (1 << 20)

        results = {}
        database = os.path.join(work, "directory.db")

        def reset_sqlite():
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(database + suffix):
                    os.remove(database + suffix)

        results["SQLite"] = measure(ctl, ["--database", database, reset_sqlite], files, work, args.rounds)

        if not args.no_postgresql:
            postgresql.start()
            config = os.path.join(work, "mssgate.toml")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bench",
                            "-keyout", os.path.join(work, "server.key"), "-out", os.path.join(work, "server.pem"),
                            "-days", "2"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(os.path.join(work, "master.secret"), "w") as f:
                f.write("bench\n")
            with open(config, "w") as f:
                # mssgatectl reads only [storage] of it; the rest is there for the file to be valid.
                f.write('[server]\ninstance = "bench"\n\n'
                        '[tls]\ncertificate_chain = "server.pem"\nprivate_key = "server.key"\n\n'
                        '[imap]\nstarttls_listen = ["127.0.0.1:0"]\n\n'
                        '[imap.backend]\naddress = "127.0.0.1:1"\nmaster_user = "mssgate"\n'
                        'master_password_file = "master.secret"\n\n' + postgresql.storage_section())
            results["PostgreSQL"] = measure(ctl, ["--config", config, postgresql.empty_directory], files, work,
                                            args.rounds)
    finally:
        postgresql.stop()
        shutil.rmtree(work, True)

    lines = [HEADING, "",
             "`bench/directory_import.py --mailboxes %d --rounds %d`: `mssgatectl directory import` of a CSV file "
             "of %s rows (%.0f MiB: %s mailboxes, a professional attached to one in five, a certificate "
             "binding for one in ten, an allowed sender for one in twenty), each step timed from exec to exit "
             "(every round; the directory emptied before each round), %d cores." % (
                 args.mailboxes, args.rounds, format(rows, ","), size_mib, format(args.mailboxes, ","),
                 os.cpu_count()),
             "",
             "| store | step | seconds, each round | peak memory of mssgatectl |",
             "|---|---|---|---:|"]
    for store, (steps, memory, last_sync) in results.items():
        for name, seconds in steps.items():
            peak = "%.0f MiB" % memory[name]
            lines.append("| %s | %s | %s | %s |" % (store, name, " / ".join("%.1f" % s for s in seconds), peak))
    lines.append("")
    for store, (_, _, last_sync) in results.items():
        lines.append("The %s sync said: `%s`" % (store, last_sync))
        lines.append("")
    lines.append("The running gateways see the change at their next directory refresh "
                 "(`directory.refresh_interval`); loading a snapshot of a million mailboxes is measured in "
                 "\"Directory snapshot\" above.")
    text = "\n".join(lines) + "\n"
    write_section(args.out, HEADING, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
