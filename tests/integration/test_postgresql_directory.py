"""The directory in PostgreSQL ([storage] backend = "postgresql"): mssgatectl writes it, the
gateway serves sign-ins from its snapshot of it, a change is in force within the refresh
interval, and a PostgreSQL restart in the middle leaves sign-ins working from the snapshot in
force and the refresh going again without restarting mssgate. The server is the real one the
fixture starts (scripts/postgres); MSSGATE_PG_ENV names its postgres.env."""

import os
import re
import subprocess
import time
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


if __name__ == "__main__":
    main()
