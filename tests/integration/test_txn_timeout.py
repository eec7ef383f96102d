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
import random
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
            # One backend that two clients take in turn: a cancel in flight
            # when one's transaction ends must not reach the other.
            "race": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 20},
            # One backend whose session takes half a second to start afresh
            # (on_connect runs again when the next client's parameters need a
            # RESET): a window while a client holds it before its query is sent.
            "slow_setup": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 2,
                           "on_connect": "SELECT pg_sleep(0.5)"},
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

    # -- a cancel in flight while its client's transaction ends --
    #
    # tidepool forwards a CancelRequest with libpq's PQcancel, on a thread:
    # it reaches PostgreSQL a millisecond or so after tidepool picked the
    # backend. If the client's transaction ends in between and the backend
    # were lent again at once, the cancel would stop the next client's query.
    # Two clients take the pool's only backend in turn; A ends each of its
    # transactions with a cancel of its own in flight; B, queued behind A,
    # runs queries long enough for a stray cancel to land in them. B must
    # never see 57014. (With the backend lent at once, B got it in most
    # rounds of the first test, and in some rounds of the second.)

    RACE_ROUNDS = 300
    RACE_B_QUERY = "SELECT pg_sleep(0.02), 'b done'"

    def start_b(self):
        """Client B: runs RACE_B_QUERY back to back until told to stop;
        returns (thread, stop event, record with B's queries and errors)."""
        stop = threading.Event()
        record = {"done": 0, "errors": [], "ended": []}
        ready = threading.Event()

        def run():
            try:
                with tp.raw(dbname="race", timeout=30) as b:
                    ready.set()
                    while not stop.is_set():
                        try:
                            rows = b.fetch(self.RACE_B_QUERY)
                            record["ended"].append(time.monotonic())
                            if rows != [("", "b done")]:
                                record["errors"].append(("rows", rows))
                            record["done"] += 1
                        except h.PgError as e:
                            record["errors"].append((e.sqlstate, e.message))
            except Exception as e:  # reported by the test
                record["errors"].append(("exception", repr(e)))
                ready.set()
        th = threading.Thread(target=run, daemon=True)
        th.start()
        self.assertTrue(ready.wait(10), "B did not log in")
        return th, stop, record

    def stop_b(self, th, stop, record, rounds):
        stop.set()
        th.join(10)
        self.assertFalse(th.is_alive(), "B is stuck")
        errors = record["errors"]
        self.assertFalse(errors, f"B got {len(errors)} errors in {rounds} rounds (first: {errors[:3]}): "
                         f"a cancel meant for A reached B's query")
        self.assertGreater(record["done"], rounds // 2, "A and B did not take the backend in turn")

    def test_cancel_in_flight_at_sync_never_reaches_the_next_client(self):
        # A runs a query in the extended protocol and reads its result (the
        # backend stays A's: no Sync yet), sends a CancelRequest (tidepool has
        # taken it once it closes that connection), then the Sync that ends
        # its transaction. Its cancel finds A's backend idle: a no-op there.
        th, stop, record = self.start_b()
        errors_a = []
        try:
            with tp.raw(dbname="race", timeout=30) as a:
                pid, secret = a.backend_key
                for i in range(self.RACE_ROUNDS):
                    a.parse("", "SELECT $1::int")
                    a.bind("", "", (str(i),))
                    a.execute()
                    a.flush()
                    while True:
                        t, body = a.read_message()
                        if t == b"E":
                            errors_a.append((i, h._fields(body).get("C")))
                        if t in (b"C", b"E"):
                            break
                    h.RawConnection.cancel(tp.host, tp.port, pid, secret)
                    a.sync()
                    msgs = a.read_until_ready()
                    self.assertEqual([t for t, _ in msgs], [b"Z"], msgs)
                    self.assertEqual(a.status, "I")
                self.assertEqual(a.fetch("SELECT 'a alive'"), [("a alive",)])
        finally:
            stop.set()
            th.join(10)
            h.log(f"cancel race at Sync: {len(record['errors'])} of B's {record['done']} queries "
                  f"and {len(errors_a)} of A's {self.RACE_ROUNDS} were hit")
            self.stop_b(th, stop, record, self.RACE_ROUNDS)
        # Nor does it reach A's next transaction.
        self.assertEqual(errors_a, [], "a cancel of A's reached a later query of A's")

    def test_cancel_as_transactions_end_never_reaches_the_next_client(self):
        # A runs SELECT pg_sleep(0.2) as a transaction of its own, and sends a
        # cancel for itself at about the time it ends: from 3 ms before to 1
        # ms after, spread over the rounds. Some cancels stop A's query, some
        # are still in flight when it ends, and must then do nothing, to B
        # least of all.
        rounds = 100
        sleep = 0.2
        rng = random.Random(1234)
        th, stop, record = self.start_b()
        hits_a = 0
        try:
            with tp.raw(dbname="race", timeout=30) as a:
                pid, secret = a.backend_key
                for i in range(rounds):
                    sent = time.monotonic()
                    a.send(b"Q", b"SELECT pg_sleep(%.3f), 'a done'\0" % sleep)
                    # A's query starts when the B query it queued behind
                    # ends (B's take 20 ms), or at once if it did not queue.
                    started = sent
                    while time.monotonic() < sent + 0.03:
                        after = [t for t in record["ended"][-3:] if t > sent]
                        if after:
                            started = after[0]
                            break
                        time.sleep(0.0005)
                    at = started + sleep + rng.uniform(-0.003, 0.001)
                    time.sleep(max(0.0, at - time.monotonic()))
                    h.RawConnection.cancel(tp.host, tp.port, pid, secret)
                    try:
                        rows = h.RawConnection.results(a.read_until_ready())[-1].rows
                        self.assertEqual(rows, [("", "a done")])
                    except h.PgError as e:
                        self.assertEqual(e.sqlstate, "57014", e.fields)
                        hits_a += 1
                    self.assertEqual(a.status, "I")
                self.assertEqual(a.fetch("SELECT 'a alive'"), [("a alive",)])
        finally:
            stop.set()
            th.join(10)
            h.log(f"cancel race at the end of a transaction: {len(record['errors'])} of B's "
                  f"{record['done']} queries and {hits_a} of A's {rounds} were hit")
            self.stop_b(th, stop, record, rounds)

    def test_cancel_of_an_idle_client_does_nothing(self):
        # Between transactions a client holds no backend: its cancel must not
        # reach the query the pool's only backend runs for another client.
        with tp.raw(dbname="race") as idle, tp.raw(dbname="race") as busy:
            self.assertEqual(idle.fetch("SELECT 'idle ran'"), [("idle ran",)])
            pid, secret = idle.backend_key
            busy.send(b"Q", b"SELECT pg_sleep(0.5), 'busy done'\0")
            h.wait_until(lambda: pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(0.5)%'"
                " AND state = 'active'")[0][0] == 1, timeout=5, message="busy's query running")
            for _ in range(3):
                h.RawConnection.cancel(tp.host, tp.port, pid, secret)
            results = h.RawConnection.results(busy.read_until_ready())
            self.assertEqual(results[-1].rows, [("", "busy done")])
            self.assertEqual(idle.fetch("SELECT 'idle again'"), [("idle again",)])

    def test_cancel_while_the_backend_is_set_up_for_the_client(self):
        # B is lent the backend, and tidepool first starts its session afresh
        # (on_connect, half a second): B's query has not been sent yet. A
        # cancel then answers that query with 57014 once the backend is set
        # up, without sending it; B's connection and the pool carry on.
        with tp.raw(dbname="slow_setup", params={"options": "-c work_mem=8MB"}) as a, \
                tp.raw(dbname="slow_setup") as b:
            self.assertEqual(a.fetch("SELECT current_setting('work_mem')"), [("8MB",)])
            b.send(b"Q", b"SELECT 'should not run'\0")
            h.wait_until(lambda: pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(0.5)'"
                " AND state = 'active'")[0][0] == 1, timeout=5, message="on_connect running for B")
            h.RawConnection.cancel(tp.host, tp.port, *b.backend_key)
            with Timed() as t:
                msgs = b.read_until_ready()
            self.assertEqual([m for m, _ in msgs], [b"E", b"Z"], msgs)
            e = h.PgError(h._fields(msgs[0][1]))
            self.assertEqual((e.sqlstate, e.message), ("57014", "canceling statement due to user request"))
            self.assertLess(t.elapsed, 1.5)
            self.assertEqual(b.status, "I")
            # B is not left holding the backend (A would wait for it until
            # pool_timeout), nor queued for another one.
            self.assertEqual(a.fetch("SELECT current_setting('work_mem')"), [("8MB",)])
            self.assertEqual(b.fetch("SELECT 'b again', current_setting('work_mem')"), [("b again", "4MB")])
            time.sleep(2.5)  # longer than pool_timeout: no stray wait times out
            self.assertEqual(b.fetch("SELECT 'b still'"), [("b still",)])
            self.assertEqual(a.fetch("SELECT 'a still'"), [("a still",)])

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
