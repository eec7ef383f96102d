#!/usr/bin/python3
"""Transaction mode: pool_timeout and cancel (SPEC §3.2 pool_timeout, §4 "Pool
timeout", "Cancel").

A pool with pool_size=1, max_overflow=0, pool_timeout=1: while client A holds
the only backend inside a transaction, client B waits in the queue and after
about one second gets SQLAlchemy's QueuePool message as ERROR 53300, followed
by ReadyForQuery; its connection stays usable. The same for the extended
protocol (messages up to the next Sync are discarded). A CancelRequest ends a
queued client's wait with 57014, and cancels a running query on its backend
(and nothing else).
"""

import contextlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg  # noqa: E402
import psycopg2  # noqa: E402

TIMEOUT_MESSAGE = "QueuePool limit of size 1 overflow 0 reached, connection timed out, timeout 1.00"

pg = None
tp = None


def setUpModule():
    global pg, tp
    pg = h.Cluster().start()
    try:
        url = pg.url("inventorydb")
        tp = h.Tidepool(pg, pools={
            # One backend, a one-second wait.
            "tight": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 1,
                      "echo_pool": True},
            # One backend, a long wait: a cancel must end it, not the timeout.
            "queue": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 20},
            # Room for several clients at once.
            "roomy": {"url": url, "pool_size": 3, "max_overflow": 0, "pool_timeout": 20},
        }).start()
    except BaseException:
        pg.stop()
        raise


def tearDownModule():
    try:
        if tp is not None:
            tp.stop()
            tp.check()
    finally:
        if pg is not None:
            pg.stop()


def connect2(dbname, **kw):
    """psycopg2 through tidepool, autocommit (each statement its own
    transaction unless the test sends BEGIN)."""
    return tp.connect(dbname=dbname, autocommit=True, **kw)


def connect3(dbname):
    """psycopg 3 through tidepool, autocommit; prepare_threshold=None so only
    the unnamed statement is used (Parse/Bind/Describe/Execute/Sync)."""
    return psycopg.connect(tp.conninfo(dbname=dbname), autocommit=True, prepare_threshold=None,
                           connect_timeout=10)


class Holder:
    """Client A: holds the pool's only backend inside a transaction."""

    def __init__(self, dbname):
        self.conn = connect2(dbname)
        self.cur = self.conn.cursor()

    def begin(self):
        self.cur.execute("BEGIN")
        self.cur.execute("SELECT 1")
        self.cur.execute("SELECT pg_current_xact_id()::text")
        self.xid = self.cur.fetchone()[0]

    def assert_in_transaction(self):
        """Still the same transaction, on the same backend."""
        self.cur.execute("SELECT pg_current_xact_id()::text")
        got = self.cur.fetchone()[0]
        assert got == self.xid, f"A is no longer inside its transaction ({self.xid} -> {got})"

    def commit(self):
        self.cur.execute("COMMIT")

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.close()


class Timed:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start
        return False


class PoolTimeoutTests(h.TestCase):
    def test_simple_query_times_out_then_works(self):
        a = Holder("tight")
        b = connect2("tight")
        try:
            with b.cursor() as cur:
                cur.execute("SELECT 1")  # B works while the backend is free
                a.begin()
                with Timed() as t, self.assertRaises(psycopg2.Error) as cm:
                    cur.execute("SELECT 1")
                e = cm.exception
                self.assertEqual(e.pgcode, "53300", f"{e!r} {e.pgerror!r}")
                self.assertEqual(e.diag.severity, "ERROR")
                self.assertEqual(e.diag.message_primary, TIMEOUT_MESSAGE)
                self.assertGreaterEqual(t.elapsed, 0.9, "timed out too early")
                self.assertLessEqual(t.elapsed, 2.5, "timed out too late")
                self.assertEqual(b.closed, 0, "the connection was closed after the pool timeout")
                a.assert_in_transaction()  # A was not disturbed
                a.commit()
                cur.execute("SELECT 42")
                self.assertEqual(cur.fetchone(), (42,))
        finally:
            a.close()
            b.close()
        h.wait_for_log(tp, lambda line: "pool tight" in line and TIMEOUT_MESSAGE in line)

    def test_raw_simple_query_error_then_ready(self):
        # On the wire: ErrorResponse 53300, then ReadyForQuery 'I', nothing else.
        a = Holder("tight")
        try:
            with tp.raw(dbname="tight") as c:
                a.begin()
                c.send(b"Q", b"SELECT 1\0")
                msgs = c.read_until_ready()
                self.assertEqual([t for t, _ in msgs], [b"E", b"Z"], msgs)
                e = h.PgError(h._fields(msgs[0][1]))
                self.assertEqual((e.severity, e.sqlstate, e.message), ("ERROR", "53300", TIMEOUT_MESSAGE))
                self.assertEqual(c.status, "I")
                a.commit()
                self.assertEqual(c.fetch("SELECT 7"), [("7",)])
        finally:
            a.close()

    def test_waiter_served_when_backend_comes_back(self):
        # A wait shorter than pool_timeout ends with the backend, not an error.
        a = Holder("queue")
        b = connect2("queue")
        try:
            a.begin()
            result = {}

            def run_b():
                try:
                    with b.cursor() as cur, Timed() as t:
                        cur.execute("SELECT 'served'")
                        result["rows"] = cur.fetchall()
                    result["elapsed"] = t.elapsed
                except Exception as e:  # reported below
                    result["error"] = e
            th = threading.Thread(target=run_b, daemon=True)
            th.start()
            time.sleep(0.5)
            self.assertTrue(th.is_alive(), f"B was not queued: {result}")
            a.commit()
            th.join(10)
            self.assertFalse(th.is_alive(), "B was not served after A committed")
            self.assertNotIn("error", result)
            self.assertEqual(result["rows"], [("served",)])
            self.assertGreaterEqual(result["elapsed"], 0.4)
        finally:
            a.close()
            b.close()

    def test_extended_protocol_psycopg3_times_out_then_works(self):
        a = Holder("tight")
        with contextlib.closing(connect3("tight")) as b:
            try:
                self.assertEqual(b.execute("SELECT %s::int", (1,)).fetchone(), (1,))
                a.begin()
                with Timed() as t, self.assertRaises(psycopg.Error) as cm:
                    b.execute("SELECT %s::int + %s::int", (1, 2)).fetchone()
                e = cm.exception
                self.assertEqual(e.sqlstate, "53300", repr(e))
                self.assertEqual(e.diag.message_primary, TIMEOUT_MESSAGE)
                self.assertGreaterEqual(t.elapsed, 0.9)
                self.assertLessEqual(t.elapsed, 2.5)
                self.assertFalse(b.closed)
                self.assertEqual(b.info.transaction_status, psycopg.pq.TransactionStatus.IDLE)
                a.commit()
                self.assertEqual(b.execute("SELECT %s::int + %s::int", (40, 2)).fetchone(), (42,))
                self.assertEqual(b.execute("SELECT %s::text", ("again",)).fetchone(), ("again",))
            finally:
                a.close()

    def test_extended_protocol_raw_discards_to_sync(self):
        # Parse/Bind/Describe/Execute/Sync while the pool is exhausted: one
        # ErrorResponse, no ParseComplete/BindComplete, one ReadyForQuery.
        a = Holder("tight")
        try:
            with tp.raw(dbname="tight") as c:
                a.begin()
                c.parse("", "SELECT $1::int")
                c.bind("", "", ("5",))
                c.describe("P", "")
                c.execute()
                c.sync()
                msgs = c.read_until_ready()
                self.assertEqual([t for t, _ in msgs], [b"E", b"Z"], msgs)
                e = h.PgError(h._fields(msgs[0][1]))
                self.assertEqual((e.sqlstate, e.message), ("53300", TIMEOUT_MESSAGE))
                self.assertEqual(c.status, "I")
                a.commit()
                self.assertEqual(c.prepared("SELECT $1::int * 2", ("21",)).rows, [("42",)])
                self.assertEqual(c.fetch("SELECT 'simple'"), [("simple",)])
        finally:
            a.close()


class CancelTests(h.TestCase):
    def run_in_thread(self, fn):
        """Start fn() in a thread; returns (thread, result dict)."""
        result = {}

        def body():
            start = time.monotonic()
            try:
                result["value"] = fn()
            except Exception as e:  # examined by the test
                result["error"] = e
            result["elapsed"] = time.monotonic() - start
        th = threading.Thread(target=body, daemon=True)
        th.start()
        return th, result

    def test_cancel_queued_client(self):
        a = Holder("queue")
        b = connect2("queue")
        try:
            a.begin()

            def query():
                with b.cursor() as cur:
                    cur.execute("SELECT 'should not run'")
                    return cur.fetchall()
            th, result = self.run_in_thread(query)
            time.sleep(0.5)
            self.assertTrue(th.is_alive(), f"B was not queued: {result}")
            b.cancel()
            th.join(5)
            self.assertFalse(th.is_alive(), "the cancel did not end B's wait")
            e = result.get("error")
            self.assertIsInstance(e, psycopg2.Error, result)
            self.assertEqual(e.pgcode, "57014", repr(e))
            self.assertLess(result["elapsed"], 3.0, "ended by the pool timeout, not by the cancel")
            self.assertEqual(b.closed, 0)
            a.assert_in_transaction()  # the cancel did not touch A
            a.commit()
            with b.cursor() as cur:
                cur.execute("SELECT 'after cancel'")
                self.assertEqual(cur.fetchone(), ("after cancel",))
        finally:
            a.close()
            b.close()

    def test_cancel_queued_extended_client(self):
        # A queued extended-protocol client (psycopg 3): 57014, then usable.
        a = Holder("queue")
        b = connect3("queue")
        try:
            a.begin()
            th, result = self.run_in_thread(lambda: b.execute("SELECT %s::int", (1,)).fetchall())
            time.sleep(0.5)
            self.assertTrue(th.is_alive(), f"B was not queued: {result}")
            b.cancel()
            th.join(5)
            self.assertFalse(th.is_alive(), "the cancel did not end B's wait")
            e = result.get("error")
            self.assertIsInstance(e, psycopg.Error, result)
            self.assertEqual(e.sqlstate, "57014", repr(e))
            a.commit()
            self.assertEqual(b.execute("SELECT %s::int", (3,)).fetchone(), (3,))
        finally:
            a.close()
            b.close()

    def test_cancel_running_query(self):
        other = connect2("roomy")
        victim = connect2("roomy")
        try:
            def sleep_long():
                with victim.cursor() as cur:
                    cur.execute("SELECT pg_sleep(10)")

            def sleep_short():
                with other.cursor() as cur:
                    cur.execute("SELECT pg_sleep(2), 'other done'")
                    return cur.fetchone()[1]
            th_other, res_other = self.run_in_thread(sleep_short)
            th, result = self.run_in_thread(sleep_long)
            # Until the victim's query is running on a backend.
            h.wait_until(lambda: pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)'"
                " AND state = 'active'")[0][0] == 1, timeout=5, message="pg_sleep(10) running")
            cancelled_at = time.monotonic()
            victim.cancel()
            th.join(5)
            self.assertFalse(th.is_alive(), "the cancel did not stop pg_sleep(10)")
            self.assertLess(time.monotonic() - cancelled_at, 1.0, "the cancel took more than a second")
            e = result.get("error")
            self.assertIsInstance(e, psycopg2.Error, result)
            self.assertEqual(e.pgcode, "57014", repr(e))
            self.assertLess(result["elapsed"], 4.0)
            th_other.join(10)
            self.assertFalse(th_other.is_alive())
            self.assertEqual(res_other.get("value"), "other done",
                             f"the cancel hit another client's query: {res_other}")
            self.assertEqual(victim.closed, 0)
            with victim.cursor() as cur:
                cur.execute("SELECT 'alive'")
                self.assertEqual(cur.fetchone(), ("alive",))
        finally:
            other.close()
            victim.close()

    def test_cancel_running_query_inside_transaction(self):
        victim = connect2("roomy")
        try:
            with victim.cursor() as cur:
                cur.execute("BEGIN")

                def sleep_long():
                    cur.execute("SELECT pg_sleep(10)")
                th, result = self.run_in_thread(sleep_long)
                h.wait_until(lambda: pg.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)'"
                    " AND state = 'active'")[0][0] == 1, timeout=5, message="pg_sleep(10) running")
                victim.cancel()
                th.join(5)
                self.assertFalse(th.is_alive())
                self.assertEqual(getattr(result.get("error"), "pgcode", None), "57014", result)
                # The transaction is aborted, as with PostgreSQL itself.
                with self.assertRaises(psycopg2.Error) as cm:
                    cur.execute("SELECT 1")
                self.assertEqual(cm.exception.pgcode, "25P02")
                cur.execute("ROLLBACK")
                cur.execute("SELECT 'alive'")
                self.assertEqual(cur.fetchone(), ("alive",))
        finally:
            victim.close()

    def test_cancel_with_wrong_key_does_nothing(self):
        with tp.raw(dbname="roomy") as c:
            pid, secret = c.backend_key
            c.send(b"Q", b"SELECT pg_sleep(1), 'finished'\0")
            time.sleep(0.3)
            h.RawConnection.cancel(tp.host, tp.port, pid, (secret + 1) & 0x7FFFFFFF)
            h.RawConnection.cancel(tp.host, tp.port, pid + 1000, secret)
            results = h.RawConnection.results(c.read_until_ready())
            self.assertEqual(results[-1].rows, [("", "finished")])


if __name__ == "__main__":
    h.main()
