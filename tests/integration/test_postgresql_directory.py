"""The directory in PostgreSQL ([storage] backend = "postgresql"): mssgatectl writes it, the
gateway serves sign-ins from its snapshot of it, a change is in force within the refresh
interval, and a PostgreSQL restart in the middle leaves sign-ins working from the snapshot in
force and the refresh going again without restarting mssgate. The server is the real one the
fixture starts (scripts/postgres); MSSGATE_PG_ENV names its postgres.env."""

import os
import re
import subprocess
import unittest

from harness import APP_HOPITAL, APP_LABO, Gateway, RawImap, client_context, main

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


if __name__ == "__main__":
    main()
