#!/usr/bin/python3
"""Failure drill: a backend stalled with SIGSTOP (issue 6).

Pool of one backend (pool_size 1, max_overflow 0, pool_timeout 1.5 s).
Client A holds it in a transaction; its PostgreSQL backend process (found
with pg_backend_pid(), checked in pg_stat_activity) is stopped with SIGSTOP,
and A sends a query that cannot run. For STALL seconds:
- WAITERS logged-in clients each send a query: each gets ERROR 53300 after
  pool_timeout (not before, and not much later), and its connection stays
  usable;
- a client that connects now logs in (no backend is needed for that once
  the pool knows its server's parameters), and its query gets 53300 too;
- the daemon answers its admin console meanwhile (its loop is not stuck).
Then SIGCONT: A's query finishes with its result, A commits, and the waiting
clients, the late one and new transactions all work. Every step has a
deadline; the printed numbers are the waits and their outcomes.
"""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

POOL_TIMEOUT = 1.5
WAITERS = 4
STALL = 4.0


class StalledBackend(h.TestCase):
    def test_sigstop_backend(self):
        with h.Cluster() as pg:
            h.create_login_role(pg, "drill", "drillpw")
            pg.execute("CREATE TABLE stall_log (what text)", dbname="inventorydb")
            pg.execute("GRANT ALL ON stall_log TO drill", dbname="inventorydb")
            pools = {"inventorydb": h.small_pool(pg, "drill", "drillpw", pool_size=1, max_overflow=0,
                                                 pool_timeout=POOL_TIMEOUT)}
            settings = {"admin_users": "admin", "log_level": "info"}
            with h.Tidepool(pg, pools=pools, settings=settings,
                            users={"app": "secret", "admin": "adminpw"}) as tp:
                self.drill(pg, tp)

    def drill(self, pg, tp):
        waiters = [tp.raw(timeout=30) for _ in range(WAITERS)]
        a = tp.raw(timeout=30)
        a.query("BEGIN")
        a.query("INSERT INTO stall_log VALUES ('a')")
        pid = int(a.fetch("SELECT pg_backend_pid()")[0][0])
        self.assertIn(pid, pg.backends(user="drill"), "pg_backend_pid() is not the pool's backend")

        outcomes = [None] * WAITERS
        late = {}

        def wait_for_pool(i):
            t0 = time.monotonic()
            try:
                waiters[i].query("SELECT 1")
                outcomes[i] = ("ok", time.monotonic() - t0)
            except h.PgError as e:
                outcomes[i] = (e.sqlstate, time.monotonic() - t0, e.severity, e.message)

        def late_login():
            t0 = time.monotonic()
            try:
                c = tp.raw(timeout=30)
            except h.PgError as e:
                late["login"] = (e.sqlstate, time.monotonic() - t0, e.severity, e.message)
                return
            late["conn"] = c
            late["login"] = ("ok", time.monotonic() - t0)
            t0 = time.monotonic()
            try:
                c.query("SELECT 1")
                late["query"] = ("ok", time.monotonic() - t0)
            except h.PgError as e:
                late["query"] = (e.sqlstate, time.monotonic() - t0, e.severity, e.message)

        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            a.send(b"Q", b"SELECT 'after the stall'\0")
            threads = [threading.Thread(target=wait_for_pool, args=(i,), daemon=True) for i in range(WAITERS)]
            threads.append(threading.Thread(target=late_login, daemon=True))
            for t in threads:
                t.start()
            # The daemon's loop is not stuck behind the stalled backend.
            with tp.raw(dbname="tidepool", user="admin", password="adminpw", timeout=5) as admin:
                t0 = time.monotonic()
                pools = admin.query("SHOW POOLS")[-1]
                admin_ms = (time.monotonic() - t0) * 1000
            for t in threads:
                t.join(max(0.1, STALL - (time.monotonic() - stopped_at)) + 5)
            hung = sum(t.is_alive() for t in threads)
            time.sleep(max(0.0, STALL - (time.monotonic() - stopped_at)))
        finally:
            os.kill(pid, signal.SIGCONT)
        stalled_for = time.monotonic() - stopped_at

        # A's query, sent during the stall, completes; A commits.
        t0 = time.monotonic()
        rows = h.RawConnection.results(a.read_until_ready())[-1].rows
        a_wait = time.monotonic() - t0
        a.query("COMMIT")

        h.drill_report(f"backend pid {pid} stopped for {stalled_for:.1f}s (pool_timeout {POOL_TIMEOUT}s)")
        for i, o in enumerate(outcomes):
            h.drill_report(f"  waiter {i}: {o[0]} after {o[1]:.2f}s" if o else f"  waiter {i}: no answer")
        lo, lq = late.get("login"), late.get("query")
        h.drill_report(f"  client connecting during the stall: login {lo[0]} after {lo[1]:.2f}s" if lo else
               "  client connecting during the stall: no answer to its login")
        h.drill_report(f"  ... then its query: {lq[0]} after {lq[1]:.2f}s" if lq else "  ... then its query: no answer")
        h.drill_report(f"  admin console answered in {admin_ms:.1f} ms during the stall")
        h.drill_report(f"  A's query finished {a_wait:.2f}s after SIGCONT: {rows}")

        self.assertEqual(hung, 0, "clients hung while the backend was stalled")
        self.assertEqual(rows, [("after the stall",)])
        self.assertEqual(pools.rows[0][pools.columns.index("checked_out")], "1")
        for i, o in enumerate(outcomes):
            self.assertEqual(o[0], "53300", f"waiter {i}: {o}")
            self.assertGreaterEqual(o[1], POOL_TIMEOUT - 0.1, f"waiter {i} timed out early: {o}")
            self.assertLess(o[1], POOL_TIMEOUT + 2.0, f"waiter {i} timed out late: {o}")
            self.assertEqual(o[2], "ERROR", f"waiter {i}: the pool timeout is an ERROR, not {o[2]}")
        # Logging in needs no backend once the pool knows its server's
        # parameters; the transaction it starts waits like the others.
        self.assertIsNotNone(lo, "the client connecting during the stall got no answer")
        self.assertEqual(lo[0], "ok", f"the client connecting during the stall: {lo}")
        self.assertIsNotNone(lq, "the client connecting during the stall got no answer to its query")
        self.assertEqual(lq[0], "53300", f"the client connecting during the stall: {lq}")
        self.assertLess(lq[1], POOL_TIMEOUT + 2.0)

        # Everyone works again: the waiters on their connections, and new ones.
        for i, w in enumerate(waiters + [late["conn"]]):
            self.assertEqual(w.fetch("SELECT 2"), [("2",)], f"waiter {i} after the stall")
            w.close()
        t0 = time.monotonic()
        with tp.raw(timeout=10) as c:
            c.query("BEGIN")
            c.query("INSERT INTO stall_log VALUES ('after')")
            c.query("COMMIT")
        h.drill_report(f"  a new transaction after the stall took {time.monotonic() - t0:.2f}s")
        a.close()
        got = sorted(r[0] for r in pg.execute("SELECT what FROM stall_log", dbname="inventorydb"))
        self.assertEqual(got, ["a", "after"])
        self.assertTrue(tp.running)


class StalledServer(h.TestCase):
    """The postmaster itself stopped (SIGSTOP) while the pool has no backend:
    the kernel still accepts connections for it, so a connect never gets an
    answer. The url's connect_timeout (2 s) bounds each attempt, so the
    client waiting for a new backend gets an error after about pool_timeout
    instead of hanging; after SIGCONT the next transaction works."""

    def test_sigstop_postmaster(self):
        timeout = 3.0
        with h.Cluster() as pg:
            url = pg.url("inventorydb") + "?connect_timeout=2"
            pools = {"inventorydb": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": timeout}}
            with h.Tidepool(pg, pools=pools, settings={"log_level": "info"}) as tp:
                with tp.raw(timeout=30) as c:
                    c.query("SELECT 1")        # the pool knows its server now
                pid = pg.backends()[0]
                pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
                h.wait_until(lambda: not pg.backends(), message="the pool's backend gone")
                time.sleep(0.3)                # tidepool notices its idle backend died
                c = tp.raw(timeout=30)
                os.kill(pg.proc.pid, signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    try:
                        c.query("SELECT 1")
                        outcome = ("ok",)
                    except h.PgError as e:
                        outcome = (e.sqlstate, e.message)
                    waited = time.monotonic() - t0
                finally:
                    os.kill(pg.proc.pid, signal.SIGCONT)
                h.drill_report(f"postmaster stopped: a query needing a new backend got {outcome[0]} "
                               f"after {waited:.2f}s (pool_timeout {timeout}s, connect_timeout 2s): "
                               f"{outcome[1] if len(outcome) > 1 else ''}")
                self.assertEqual(outcome[0], "08006", outcome)
                self.assertIn("timeout expired", outcome[1])
                self.assertLess(waited, timeout + 2 + 2.0)
                t0 = time.monotonic()
                self.assertEqual(c.fetch("SELECT 3"), [("3",)])
                h.drill_report(f"  after SIGCONT the same client's next query worked in {time.monotonic() - t0:.2f}s")
                c.close()


if __name__ == "__main__":
    h.main()
