"""The directory in PostgreSQL ([storage] backend = "postgresql"): mssgatectl writes it, the
gateway serves sign-ins from its snapshot of it, a change is in force within the refresh
interval, and a PostgreSQL restart in the middle leaves sign-ins working from the snapshot in
force and the refresh going again without restarting mssgate. The server is the real one the
fixture starts (scripts/postgres); MSSGATE_PG_ENV names its postgres.env."""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, Gateway, RawImap, admin_tls_section, client_context, ctl, main,
                     new_marker)
from test_provisioning_api import WRITER, call, spki_sha256

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def postgres_env():
    values = {}
    with open(os.environ["MSSGATE_PG_ENV"]) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                values[key] = value.strip("'")
    return values


def psql(env, sql):
    """Runs `sql` as mssgate's role (the database's owner)."""
    with open(env["PG_PASSWORD_FILE"]) as f:
        password = f.read().strip()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", env["PG_URL"], "-c", sql], check=True,
                   env=dict(os.environ, PGPASSWORD=password), capture_output=True, timeout=30)


def psql_rows(env, sql):
    """The rows `sql` returns, each a list of texts."""
    with open(env["PG_PASSWORD_FILE"]) as f:
        password = f.read().strip()
    result = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", env["PG_URL"], "-c",
                             sql], check=True, env=dict(os.environ, PGPASSWORD=password), capture_output=True,
                            text=True, timeout=30)
    return [line.split("|") for line in result.stdout.splitlines() if line]


def postgres(command):
    """scripts/postgres start or stop, on the fixture's cluster (MSSGATE_PG_DIR, MSSGATE_PG_PORT)."""
    subprocess.run([os.path.join(ROOT, "scripts", "postgres"), command], check=True, capture_output=True,
                   timeout=120)


def sign_in(port, cert="org-hopital"):
    client = RawImap(port, implicit_ctx=client_context(cert))
    _, tagged = client.authenticate_external()
    client.close()
    return tagged


class PostgresqlDirectoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = postgres_env()
        psql(cls.env, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        cls.gateway = Gateway(postgresql=cls.env)
        cls.gateway.start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        postgres("start")  # whatever a test left

    def setUp(self):
        self.gateway.mark()

    def test_sign_ins_read_the_postgresql_directory(self):
        g = self.gateway
        self.assertIn("event=directory_loaded source=postgresql://127.0.0.1:%s/mssgate cause=start"
                      % self.env["PG_PORT"], g.log(since=0))
        self.assertTrue(sign_in(g.imaps_port).startswith("a1 OK"))
        listed = g.ctl("mailbox", "list").stdout
        self.assertIn(APP_HOPITAL, listed)
        self.assertIn(APP_LABO, listed)

    def test_a_change_is_in_force_within_the_refresh_interval(self):
        g = self.gateway
        g.change_directory("mailbox", "set-status", APP_HOPITAL, "suspended")
        self.assertTrue(sign_in(g.imaps_port).startswith("a1 NO"))
        g.change_directory("mailbox", "set-status", APP_HOPITAL, "active")
        self.assertTrue(sign_in(g.imaps_port).startswith("a1 OK"))

    def test_a_postgresql_restart_leaves_the_snapshot_in_force_and_the_refresh_recovers(self):
        g = self.gateway
        postgres("stop")
        try:
            g.wait_for_log(r"event=directory_refresh_failed source=postgresql://\S+ error=")
            # The directory in memory still answers: sign-ins go on while the server is away.
            self.assertTrue(sign_in(g.imaps_port).startswith("a1 OK"))
        finally:
            back = g.log_size()
            postgres("start")
        # Back: connected again, it reads the directory whole (it cannot know what it missed);
        # a change made after that read is read in turn, without restarting mssgate.
        g.wait_for_log(r"event=directory_loaded source=postgresql://", since=back)
        g.change_directory("mailbox", "set-status", APP_HOPITAL, "suspended")
        self.assertTrue(sign_in(g.imaps_port).startswith("a1 NO"))
        g.change_directory("mailbox", "set-status", APP_HOPITAL, "active")
        self.assertTrue(sign_in(g.imaps_port).startswith("a1 OK"))
        self.assertEqual(g.process.poll(), None, "mssgate still runs")
        self.assertIsNone(re.search(r"password|secret", g.log(since=0).split("event=ready")[0].lower()
                                    .replace("password_file", "")), "no secret in the start log")


class ProvisioningApiOnPostgresqlTest(unittest.TestCase):
    """The provisioning API writes the shared PostgreSQL directory; a server that is away gives
    503 problem documents, and the API works again once it is back, without a restart."""

    def test_the_api_writes_postgresql_and_outlives_a_restart_of_it(self):
        env = postgres_env()
        psql(env, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        with Gateway(postgresql=env, extra_config=admin_tls_section([spki_sha256(WRITER)])) as gateway:
            port = gateway.ports["admin"]
            mailbox = "cabinet@" + DOMAIN
            status, _, created = call(port, "POST", "/api/directory/mailboxes", {"mailbox": mailbox, "type": "CAB"})
            self.assertEqual(status, 201, created)
            self.assertEqual(psql_rows(env, "SELECT type, status FROM mailbox WHERE address = '%s'" % mailbox),
                             [["CAB", "active"]])
            postgres("stop")
            try:
                status, _, problem = call(port, "PUT", "/api/directory/mailboxes/" + mailbox, {"type": "CAB",
                                                                                               "status": "closed"})
                self.assertEqual(status, 503, problem)
                self.assertEqual(problem["type"], "/api/problems/directory-unavailable")
            finally:
                postgres("start")
            status, _, replaced = call(port, "PUT", "/api/directory/mailboxes/" + mailbox, {"type": "CAB",
                                                                                            "status": "closed"})
            self.assertEqual(status, 200, replaced)
            self.assertEqual(psql_rows(env, "SELECT status FROM mailbox WHERE address = '%s'" % mailbox),
                             [["closed"]])


class StorageMigrateTest(unittest.TestCase):
    """mssgatectl storage migrate: a single host's SQLite directory moved into PostgreSQL."""

    def test_a_single_hosts_directory_moves_and_serves_from_postgresql(self):
        env = postgres_env()
        psql(env, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        single = Gateway()  # its SQLite directory, populated as every test's
        cluster = Gateway(postgresql=env, populate=False)
        moved = cluster.ctl("storage", "migrate", "--from", "sqlite:" + single.database)
        self.assertRegex(moved.stdout, r"^moved to postgresql://127\.0\.0\.1:%s/mssgate: 5 mailboxes, 0 allowed "
                                       r"senders, 0 holders, 0 attachments, 4 certificate bindings \(each count "
                                       r"checked in PostgreSQL\)\n$" % env["PG_PORT"])
        self.assertEqual(cluster.ctl("mailbox", "list").stdout, single.ctl("mailbox", "list").stdout)
        self.assertEqual(cluster.ctl("certificate", "list").stdout, single.ctl("certificate", "list").stdout)
        again = cluster.ctl("storage", "migrate", "--from", "sqlite:" + single.database, check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("the PostgreSQL directory already holds 5 mailboxes: a move goes into an empty directory",
                      again.stderr)
        missing = cluster.ctl("storage", "migrate", "--from", "sqlite:/nonexistent/directory.db", check=False)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("no SQLite directory at /nonexistent/directory.db", missing.stderr)
        cluster.start()
        self.addCleanup(cluster.stop)
        self.assertTrue(sign_in(cluster.imaps_port).startswith("a1 OK"))

    def test_a_single_hosts_journal_moves_and_exports_the_same(self):
        env = postgres_env()
        psql(env, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        journal_dir = tempfile.mkdtemp(prefix="mssgate-move-")
        self.addCleanup(shutil.rmtree, journal_dir, True)
        journal = os.path.join(journal_dir, "indicators.db")
        single = Gateway(extra_config='\n[indicators]\njournal = "%s"\noperator_domains = ["%s"]\n'
                         % (journal, DOMAIN))
        single.start()
        markers = [new_marker("move").decode() for _ in range(3)]
        for marker in markers:
            smtp = smtplib.SMTP(timeout=15)
            smtp._host = "localhost"
            smtp.connect("127.0.0.1", single.submission_port)
            smtp.starttls(context=client_context("org-hopital"))
            smtp.ehlo("lps.move.test")
            smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)
            smtp.sendmail(APP_HOPITAL, [APP_LABO], ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nBonjour.\r\n"
                                                    % (APP_HOPITAL, APP_LABO, marker)).encode())
            smtp.quit()
        self.assertTrue(sign_in(single.imaps_port).startswith("a1 OK"))
        # The host stops (its files go with it): its directory is kept aside for the move.
        directory = os.path.join(journal_dir, "directory.db")
        shutil.copy(single.database, directory)
        single.stop()
        month = time.strftime("%Y-%m")
        out_single = os.path.join(journal_dir, "single")
        ctl(directory, "--journal", journal, "indicators", "export", "--month", month, "--out", out_single)

        cluster = Gateway(postgresql=env, populate=False, server_section='instance = "gw-1"',
                          extra_config='\n[indicators]\noperator_domains = ["%s"]\n' % DOMAIN)
        moved = cluster.ctl("storage", "migrate", "--from", "sqlite:" + directory, "--journal",
                            "sqlite:" + journal)
        self.assertRegex(moved.stdout, r"\nmoved to postgresql://127\.0\.0\.1:%s/mssgate as \"gw-1\": 3 indicator "
                                       r"events, 0 documents, 4 sign-ins \(2 rows by mailbox, day, mode and "
                                       r"protocol; 2 rows of sign-ins and refusals by professional and LPS\) "
                                       r"\(each count checked in PostgreSQL\)\n$" % env["PG_PORT"])
        out_cluster = os.path.join(journal_dir, "cluster")
        cluster.ctl("indicators", "export", "--month", month, "--out", out_cluster)
        for name in sorted(os.listdir(out_single)):
            with open(os.path.join(out_single, name)) as a, open(os.path.join(out_cluster, name)) as b:
                self.assertEqual(b.read(), a.read(), name)
        with open(os.path.join(out_cluster, "messages-%s.csv" % month)) as f:
            self.assertRegex(f.read(), r"\n%s;APP;3;0;" % re.escape(APP_HOPITAL))
        again = cluster.ctl("storage", "migrate", "--journal", "sqlite:" + journal, check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("the PostgreSQL journal already holds 3 events and 2 rows of sign-ins: a move goes into an "
                      "empty journal", again.stderr)
        # The gateway goes on from the moved journal.
        cluster.start()
        self.addCleanup(cluster.stop)
        self.assertTrue(sign_in(cluster.imaps_port).startswith("a1 OK"))
        deadline = time.monotonic() + 10
        while psql_rows(env, "SELECT sum(connections) FROM connection_day") != [["5"]]:
            self.assertLess(time.monotonic(), deadline, "the sign-in was not counted in PostgreSQL")
            time.sleep(0.1)


if __name__ == "__main__":
    main()
