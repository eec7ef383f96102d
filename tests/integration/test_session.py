#!/usr/bin/python3
"""Session pooling, over TCP and over the Unix socket (SPEC §2-§4).

A pool in pool_mode=session with pool_size=1 and max_overflow=0: one backend
serves every client in turn, so consecutive clients must get the same backend
and must not see each other's session state. Also: authentication failures
(28P01) and unknown databases (3D000), with their SQLSTATEs checked on the wire.
"""

import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg2  # noqa: E402

pg = None


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


SESSION_POOL = {
    "pool_mode": "session",
    "pool_size": 1,
    # No overflow: a client that arrives while the backend is still being
    # given back waits for it instead of getting a second backend, so "the
    # same backend for consecutive clients" is deterministic.
    "max_overflow": 0,
    # A test that forgot to close a connection fails in 10 s, not 30.
    "pool_timeout": 10,
}


class SessionModeTests:
    unix = False  # set by the concrete classes below

    @classmethod
    def setUpClass(cls):
        cls.tp = h.Tidepool(pg, pools={"inventorydb": dict(SESSION_POOL)}).start()

    @classmethod
    def tearDownClass(cls):
        cls.tp.stop()
        cls.tp.check()

    # -- helpers --

    def connect(self, **kw):
        return contextlib.closing(self.tp.connect(unix=self.unix, autocommit=True, **kw))

    def query(self, sql, **kw):
        """Run sql on a new client connection; the rows."""
        with self.connect(**kw) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def raw(self, **kw):
        return self.tp.raw(unix=self.unix, **kw)

    # -- the basics --

    def test_psql_select_1(self):
        r = self.tp.psql("SELECT 1", unix=self.unix)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.strip(), "1")

    def test_psycopg2_select_1(self):
        self.assertEqual(self.query("SELECT 1"), [(1,)])

    def test_raw_protocol_select(self):
        with self.raw() as c:
            self.assertEqual(c.fetch("SELECT 1, 'two', NULL"), [("1", "two", None)])
            self.assertEqual(c.status, "I")
            self.assertIsNotNone(c.backend_key, "no BackendKeyData")
            self.assertIn("server_version", c.parameters)
            self.assertEqual(c.parameters.get("client_encoding"), "UTF8")

    def test_error_keeps_the_session(self):
        with self.raw() as c:
            e = self.assertSqlstate("22012", c.query, "SELECT 1/0")
            self.assertEqual(e.severity, "ERROR")
            self.assertEqual(c.status, "I")
            self.assertEqual(c.fetch("SELECT 2"), [("2",)])

    # -- authentication and routing errors --

    def test_wrong_password_psql(self):
        r = self.tp.psql("SELECT 1", password="wrong", unix=self.unix)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn('FATAL:  password authentication failed for user "app"', r.stderr)

    def test_wrong_password_psycopg2(self):
        with self.assertRaises(psycopg2.OperationalError) as cm:
            self.tp.connect(password="wrong", unix=self.unix)
        # libpq does not pass the SQLSTATE of a startup failure on to psycopg2
        # (pgcode is None); test_wrong_password_sqlstate checks it on the wire.
        self.assertIn("password authentication failed", str(cm.exception))

    def test_wrong_password_sqlstate(self):
        e = self.assertSqlstate("28P01", self.raw, password="wrong")
        self.assertEqual(e.severity, "FATAL")
        self.assertIn("password authentication failed", e.message)

    def test_unknown_user_sqlstate(self):
        # As PostgreSQL: the same answer as a wrong password, nothing revealed.
        e = self.assertSqlstate("28P01", self.raw, user="nobody", password="secret")
        self.assertEqual(e.severity, "FATAL")

    def test_unknown_database_sqlstate(self):
        e = self.assertSqlstate("3D000", self.raw, dbname="nosuchpool")
        self.assertEqual(e.severity, "FATAL")

    def test_unknown_database_psql(self):
        r = self.tp.psql("SELECT 1", dbname="nosuchpool", unix=self.unix)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("FATAL:", r.stderr)
        self.assertIn("nosuchpool", r.stderr)

    def test_good_login_after_failures(self):
        for _ in range(3):
            with self.assertRaises(h.PgError):
                self.raw(password="wrong")
        self.assertEqual(self.query("SELECT 1"), [(1,)])

    # -- session pooling --

    def test_consecutive_clients_share_one_backend(self):
        first = self.query("SELECT pg_backend_pid()")[0][0]
        second = self.query("SELECT pg_backend_pid()")[0][0]
        self.assertEqual(first, second, "session mode opened a new backend for the second client")
        # The backend stays open in the pool between clients, and is the only
        # one (backends of a daemon stopped just before may take a moment to go).
        deadline = time.monotonic() + 5
        while pg.backends("inventorydb", "app") != [first] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(pg.backends("inventorydb", "app"), [first])

    def test_temp_table_gone_for_next_client(self):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t(x int)")
            cur.execute("INSERT INTO t VALUES (1)")
            cur.execute("SELECT to_regclass('pg_temp.t') IS NOT NULL")
            self.assertEqual(cur.fetchone()[0], True)
        rows = self.query("SELECT to_regclass('pg_temp.t'),"
                          " (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())")
        self.assertEqual(rows, [(None, 0)], "a temp table leaked to the next client")

    def test_session_state_gone_for_next_client(self):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = '4242s'")
            cur.execute("PREPARE leaked AS SELECT 1")
            cur.execute("SELECT pg_advisory_lock(4242)")
            cur.execute("LISTEN leaked_channel")
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            self.assertEqual(cur.fetchone()[0], "0", "a session SET leaked")
            cur.execute("SELECT count(*) FROM pg_prepared_statements")
            self.assertEqual(cur.fetchone()[0], 0, "a prepared statement leaked")
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            self.assertEqual(cur.fetchone()[0], 0, "an advisory lock is still held")
            cur.execute("SELECT count(*) FROM pg_listening_channels()")
            self.assertEqual(cur.fetchone()[0], 0, "a LISTEN leaked")

    def test_open_transaction_rolled_back_for_next_client(self):
        conn = self.tp.connect(unix=self.unix)  # not autocommit: psycopg2 opens a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS rollback_probe (x int)")
                cur.execute("INSERT INTO rollback_probe VALUES (1)")
        finally:
            conn.close()  # leaves inside the transaction
        rows = self.query("SELECT to_regclass('public.rollback_probe') IS NULL")
        self.assertEqual(rows, [(True,)], "the abandoned transaction was committed")

    def test_startup_parameters_follow_each_client(self):
        probe = ("SELECT current_setting('application_name'), current_setting('search_path'),"
                 " current_setting('work_mem'), current_setting('TimeZone')")
        with self.connect(application_name="first_client",
                          options="-c search_path=pg_catalog -c work_mem=7MB -c TimeZone=Asia/Tokyo") \
                as conn, conn.cursor() as cur:
            cur.execute(probe)
            self.assertEqual(cur.fetchone(), ("first_client", "pg_catalog", "7MB", "Asia/Tokyo"))
        defaults = pg.execute("SELECT current_setting('search_path'), current_setting('work_mem'),"
                              " current_setting('TimeZone')", dbname="inventorydb")[0]
        with self.connect(application_name="second_client") as conn, conn.cursor() as cur:
            cur.execute(probe)
            self.assertEqual(cur.fetchone(), ("second_client",) + defaults)

    def test_many_clients_in_turn(self):
        pids = {self.query("SELECT pg_backend_pid()")[0][0] for _ in range(20)}
        self.assertEqual(len(pids), 1)


class SessionOverTCP(SessionModeTests, h.TestCase):
    unix = False


class SessionOverUnixSocket(SessionModeTests, h.TestCase):
    unix = True


if __name__ == "__main__":
    h.main()
