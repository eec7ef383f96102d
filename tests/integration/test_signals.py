#!/usr/bin/python3
"""Signals (SPEC §2): SIGTERM stops accepting, lets running transactions finish
(up to shutdown_timeout) and exits 0; SIGINT exits at once, cleanly. Clients
whose connection is closed by a shutdown are told so with SQLSTATE 57P01."""

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


class Signals(h.TestCase):
    def daemon(self, **settings):
        tp = h.Tidepool(pg, pools=SESSION, settings=settings).start()
        self.addCleanup(tp.stop, signal.SIGKILL, 5)
        return tp

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
        tp = self.daemon()
        raw = tp.raw()
        self.addCleanup(raw.close)
        self.assertEqual(raw.fetch("SELECT 1"), [("1",)])
        tp.send_signal(signal.SIGTERM)
        raw.sock.settimeout(10)
        t, body = raw.read_message()
        self.assertEqual(t, b"E", f"expected an ErrorResponse, got {t!r}")
        err = h.PgError(h._fields(body))
        self.assertEqual((err.severity, err.sqlstate), ("FATAL", "57P01"), err.fields)
        self.assertTrue(raw.closed_by_server(10))
        self.assertEqual(tp.stop(timeout=10), 0, tp.log_text())
        tp.check()

    def test_sigterm_lets_a_running_transaction_finish(self):
        tp = self.daemon(shutdown_timeout=20)
        pg.execute("DROP TABLE IF EXISTS shutdown_probe;"
                   " CREATE TABLE shutdown_probe (x int);"
                   " ALTER TABLE shutdown_probe OWNER TO app", dbname="inventorydb")
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
