#!/usr/bin/python3
"""Signals (SPEC §2): SIGTERM stops accepting, lets running transactions finish
(up to shutdown_timeout) and exits 0; SIGINT exits at once, cleanly. Clients
whose connection is closed by a shutdown are told so with SQLSTATE 57P01.

A client between transactions is closed at once at SIGTERM, in either pool
mode, even one that holds its backend (session mode, or pinned by LISTEN in
transaction mode); one inside a transaction is closed when the transaction
ends. A transaction still open after shutdown_timeout is rolled back and its
client closed."""

import contextlib
import os
import signal
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


SESSION = {"inventorydb": {"pool_mode": "session"}}
TRANSACTION = {"inventorydb": {"pool_mode": "transaction"}}


def read_fatal(raw, timeout):
    """The FATAL ErrorResponse the server sends raw before closing it
    (anything else first, as a NotificationResponse, is skipped); None when
    the connection closes without one."""
    raw.sock.settimeout(timeout)
    while True:
        try:
            t, body = raw.read_message()
        except (EOFError, ConnectionResetError):
            return None
        except (TimeoutError, OSError) as e:
            raise AssertionError(f"the server neither answered nor closed the connection in {timeout}s") from e
        if t == b"E":
            return h.PgError(h._fields(body))


def probe_table():
    pg.execute("DROP TABLE IF EXISTS shutdown_probe;"
               " CREATE TABLE shutdown_probe (x int);"
               " ALTER TABLE shutdown_probe OWNER TO app", dbname="inventorydb")


class Signals(h.TestCase):
    def daemon(self, pools=SESSION, **settings):
        tp = h.Tidepool(pg, pools=pools, settings=settings).start()
        self.addCleanup(tp.stop, signal.SIGKILL, 5)
        return tp

    def assert_closed_at_once(self, tp, raw, started, what):
        err = read_fatal(raw, 10)
        self.assertIsNotNone(err, f"{what}: closed without an error")
        self.assertEqual((err.severity, err.sqlstate), ("FATAL", "57P01"), err.fields)
        self.assertLess(time.monotonic() - started, 3, f"{what}: not closed at once at SIGTERM")
        self.assertTrue(raw.closed_by_server(10))

    def test_sigterm_when_idle_exits_0(self):
        tp = self.daemon()
        self.assertTrue(tp.psql("SELECT 1").ok)
        self.assertEqual(tp.stop(signal.SIGTERM, timeout=10), 0, tp.log_text())
        tp.check()

    def test_sigterm_right_after_start_exits_0(self):
        # The harness's readiness probes (a connection opened and closed on
        # the TCP port and on the Unix socket) may still be in flight.
        tp = self.daemon()
        self.assertEqual(tp.stop(signal.SIGTERM, timeout=10), 0, tp.log_text())
        tp.check()

    def test_sigint_exits_at_once(self):
        tp = self.daemon(shutdown_timeout=30)
        conn = tp.connect()
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # leaves a transaction open: SIGINT must not wait for it
        started = time.monotonic()
        self.assertEqual(tp.stop(signal.SIGINT, timeout=10), 0, tp.log_text())
        self.assertLess(time.monotonic() - started, 5)
        tp.check()

    def test_sigterm_closes_idle_clients_with_57P01(self):
        # Session mode: the client holds its backend, and it is idle
        # (ReadyForQuery 'I', nothing pending): it goes at once, not after
        # shutdown_timeout.
        tp = self.daemon(shutdown_timeout=30)
        raw = tp.raw()
        self.addCleanup(raw.close)
        self.assertEqual(raw.fetch("SELECT 1"), [("1",)])
        started = time.monotonic()
        tp.send_signal(signal.SIGTERM)
        self.assert_closed_at_once(tp, raw, started, "an idle session-mode client")
        self.assertEqual(tp.stop(timeout=10), 0, tp.log_text())
        self.assertLess(time.monotonic() - started, 5, "tidepool waited for an idle client")
        tp.check()

    def test_sigterm_closes_idle_pinned_clients_at_once(self):
        # Transaction mode: a client pinned by LISTEN (or a session SET)
        # holds its backend between transactions; when idle it goes at once.
        # One pinned inside a transaction finishes it first, then goes.
        probe_table()
        tp = self.daemon(pools=TRANSACTION, shutdown_timeout=30)
        idle = tp.raw()
        self.addCleanup(idle.close)
        idle.query("LISTEN shutdown_channel")
        busy = tp.raw()
        self.addCleanup(busy.close)
        busy.query("SET work_mem = '5MB'; SET statement_timeout = '1h'")  # pins: not a single simple SET
        busy.query("BEGIN")
        busy.query("INSERT INTO shutdown_probe VALUES (1)")
        h.wait_for_log(tp, lambda line: "pinned to its backend (LISTEN)" in line)
        started = time.monotonic()
        tp.send_signal(signal.SIGTERM)
        self.assert_closed_at_once(tp, idle, started, "an idle client pinned by LISTEN")
        self.assertTrue(tp.running, "tidepool did not wait for the pinned client's transaction")
        busy.query("INSERT INTO shutdown_probe VALUES (2)")
        started = time.monotonic()
        busy.query("COMMIT")
        self.assert_closed_at_once(tp, busy, started, "a pinned client whose transaction ended")
        self.assertEqual(pg.execute("SELECT count(*) FROM shutdown_probe", dbname="inventorydb"), [(2,)])
        self.assertEqual(tp.stop(timeout=10), 0, tp.log_text())
        tp.check()

    def test_shutdown_timeout_ends_an_open_transaction(self):
        # A transaction that never ends: after shutdown_timeout its client is
        # closed (57P01, or just the connection), the transaction is rolled
        # back — with pool_reset_on_return = commit too: tidepool cut it
        # short, the client did not leave it —, and tidepool exits 0.
        for reset in ("rollback", "commit"):
            with self.subTest(pool_reset_on_return=reset):
                self.shutdown_timeout_case(reset)

    def shutdown_timeout_case(self, reset):
        probe_table()
        pools = {"inventorydb": {"pool_mode": "transaction", "pool_reset_on_return": reset}}
        tp = self.daemon(pools=pools, shutdown_timeout=2)
        raw = tp.raw()
        self.addCleanup(raw.close)
        raw.query("BEGIN")
        raw.query("INSERT INTO shutdown_probe VALUES (1)")
        pid = int(raw.fetch("SELECT pg_backend_pid()")[0][0])
        started = time.monotonic()
        tp.send_signal(signal.SIGTERM)
        time.sleep(1)
        self.assertTrue(tp.running, "tidepool did not wait for the open transaction")
        err = read_fatal(raw, 10)
        waited = time.monotonic() - started
        if err is not None:
            self.assertEqual((err.severity, err.sqlstate), ("FATAL", "57P01"), err.fields)
        self.assertTrue(raw.closed_by_server(10))
        self.assertGreater(waited, 1.5, "closed before shutdown_timeout")
        self.assertLess(waited, 5, "not closed at shutdown_timeout")
        h.wait_until(lambda: tp.proc.poll() is not None, timeout=5, message="tidepool exited")
        self.assertEqual(tp.stop(timeout=5), 0, tp.log_text())
        h.wait_until(lambda: not pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)),
                     timeout=10, message=f"backend {pid} gone")
        self.assertEqual(pg.execute("SELECT count(*) FROM shutdown_probe", dbname="inventorydb"), [(0,)],
                         "the open transaction was committed")
        tp.check()

    def test_sigterm_lets_a_running_transaction_finish(self):
        tp = self.daemon(shutdown_timeout=20)
        probe_table()
        conn = tp.connect()
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO shutdown_probe VALUES (1)")  # psycopg2 opened a transaction
        tp.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertTrue(tp.running, "tidepool did not wait for the running transaction")
        # No new clients once SIGTERM has arrived.
        with self.assertRaises((psycopg2.OperationalError, OSError, h.PgError, EOFError)):
            with contextlib.closing(h.RawConnection.open_socket(tp.host, tp.port, 5)) as c:
                c.startup("app", "inventorydb", "secret")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO shutdown_probe VALUES (2)")
        conn.commit()
        self.assertEqual(pg.execute("SELECT count(*) FROM shutdown_probe", dbname="inventorydb"),
                         [(2,)])
        deadline = time.monotonic() + 10
        while tp.running and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(tp.running, "tidepool did not exit once the transaction had ended")
        self.assertEqual(tp.stop(timeout=5), 0, tp.log_text())
        tp.check()


if __name__ == "__main__":
    h.main()
