#!/usr/bin/python3
"""SHOW STATS, SHOW POOLS, SHOW CLIENTS and SHOW SERVERS under a known load
(SPEC §5, issue 5 must-show 4).

Raw protocol clients run a counted load through a small pool (pool_size 2,
max_overflow 0, pool_timeout 1): transactions of several queries, autocommit
statements, a multi-statement Query, extended-protocol Executes, a pinned
client, clients that hold backends while others queue, two that time out, one
served after a wait. The admin console (over the same raw client) must then
report exactly those transactions, queries, checkouts, connects and timeouts,
exactly the bytes the clients sent and read, the checked-out and waiting
gauges while clients hold and queue, and the wait of the client that queued.
A session-mode pool counts one transaction per ReadyForQuery that ends one,
and not the one a client abandons.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402


class CountingRaw:
    """Wraps a RawConnection to count the bytes it sends and reads."""

    def __init__(self, raw):
        self.raw = raw
        self.sent = 0
        self.read = 0
        send, read_message = raw.send, raw.read_message

        def counted_send(msg_type, body=b""):
            self.sent += 5 + len(body)
            send(msg_type, body)

        def counted_read():
            t, body = read_message()
            self.read += 5 + len(body)
            return t, body

        raw.send = counted_send
        raw.read_message = counted_read

    def __getattr__(self, name):
        return getattr(self.raw, name)


def table(admin, sql):
    res = admin.query(sql)[-1]
    return [dict(zip(res.columns, row)) for row in res.rows]


def by_pool(admin, sql, pool):
    rows = [r for r in table(admin, sql) if r["pool"] == pool]
    assert len(rows) == 1, rows
    return {k: (v if k in ("pool", "mode", "isolation", "paused") else _num(v)) for k, v in rows[0].items()}


def _num(v):
    if v is None:
        return None
    return float(v) if "." in v else int(v)


STATS_COLUMNS = [
    "pool", "total_xact_count", "total_query_count", "total_received", "total_sent", "total_xact_time",
    "total_wait_time", "avg_xact_time", "p99_xact_time", "avg_wait_time", "p99_wait_time",
    "total_server_assignment_count", "timeouts", "invalidations", "recycles", "connects",
    "connect_failures", "pre_ping_failures",
]


class AdminStats(h.TestCase):
    def test_known_load(self):
        pools = {
            "inventorydb": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 1},
            "sess": {"url": None, "pool_mode": "session", "pool_size": 2},
        }
        with h.Cluster() as pg:
            pools["sess"]["url"] = pg.url("inventorydb")
            with h.Tidepool(pg, pools=pools, settings={"admin_users": "app"}) as tp, \
                    tp.raw(dbname="tidepool") as admin:
                self.admin = admin
                self.run_transaction_mode(tp)
                self.run_session_mode(tp)

    def stats(self, pool="inventorydb"):
        return by_pool(self.admin, "SHOW STATS", pool)

    def pools(self, pool="inventorydb"):
        return by_pool(self.admin, "SHOW POOLS", pool)

    def run_transaction_mode(self, tp):
        res = self.admin.query("SHOW STATS")[-1]
        self.assertEqual(res.columns, STATS_COLUMNS)
        s0 = self.stats()
        for k in STATS_COLUMNS[1:]:
            self.assertEqual(s0[k], 0, k)

        # The pool's first client logs in with a backend (its parameters are
        # not known yet): a checkout and a connect, no transaction.
        a = CountingRaw(tp.raw())
        s1 = self.stats()
        self.assertEqual((s1["total_xact_count"], s1["total_query_count"]), (0, 0))
        self.assertEqual((s1["total_server_assignment_count"], s1["connects"]), (1, 1))
        self.assertEqual(s1["total_received"], 0)   # counted from login on
        self.assertGreater(s1["total_sent"], 0)      # its login answer

        # --- a counted sequential load ---
        xacts = queries = 0
        for i in range(5):                           # 5 transactions of 4 queries
            a.query("BEGIN")
            a.query(f"SELECT {i}")
            a.query("SELECT 2")
            a.query("COMMIT")
            xacts, queries = xacts + 1, queries + 4
        for _ in range(3):                           # 3 autocommit statements
            a.query("SELECT 1")
            xacts, queries = xacts + 1, queries + 1
        a.query("SELECT 1; SELECT 2")                # one Query, one implicit transaction
        xacts, queries = xacts + 1, queries + 1
        for v in (7, 8):                             # extended protocol: one Execute each
            self.assertEqual(a.prepared("SELECT $1::int", (v,)).rows, [(str(v),)])
            xacts, queries = xacts + 1, queries + 1
        a.parse("", "SELECT $1::int")                # two Executes in one Sync
        a.bind("", "", (1,))
        a.execute()
        a.bind("", "", (2,))
        a.execute()
        a.sync()
        a.read_until_ready()
        xacts, queries = xacts + 1, queries + 2

        s2 = self.stats()
        self.assertEqual(s2["total_xact_count"], xacts)
        self.assertEqual(s2["total_query_count"], queries)
        self.assertEqual(s2["total_server_assignment_count"], 1 + xacts)
        self.assertEqual(s2["connects"], 1)
        self.assertEqual(s2["total_received"] - s1["total_received"], a.sent)
        self.assertEqual(s2["total_sent"] - s1["total_sent"], a.read)
        self.assertGreater(s2["total_xact_time"], 0)
        self.assertAlmostEqual(s2["avg_xact_time"], s2["total_xact_time"] / xacts, delta=1)
        self.assertGreater(s2["p99_xact_time"], 0)

        # --- a pinned client: one checkout for the whole pinned stretch, a
        # transaction per statement ---
        a.query("LISTEN admin_stats")
        p = self.pools()
        self.assertEqual((p["pinned"], p["checked_out"], p["checked_in"]), (1, 1, 0))
        clients = [c for c in table(self.admin, "SHOW CLIENTS") if c["pool"] == "inventorydb"]
        self.assertEqual([(c["pinned"], c["state"]) for c in clients], [("yes", "active")])
        a.query("SELECT 1")
        a.query("SELECT 2")
        a.query("UNLISTEN *")
        xacts, queries = xacts + 4, queries + 4
        p = self.pools()
        self.assertEqual((p["pinned"], p["checked_out"], p["checked_in"]), (0, 0, 1))
        s3 = self.stats()
        self.assertEqual(s3["total_xact_count"], xacts)
        self.assertEqual(s3["total_query_count"], queries)
        self.assertEqual(s3["total_server_assignment_count"], 1 + (xacts - 3))
        checkouts = s3["total_server_assignment_count"]
        self.assertEqual(s3["total_received"] - s1["total_received"], a.sent)
        self.assertEqual(s3["total_sent"] - s1["total_sent"], a.read)

        # --- two clients hold both backends, two more queue and time out ---
        b, c, d, e = (CountingRaw(tp.raw()) for _ in range(4))
        pids = {}
        for name, cl in (("b", b), ("c", c)):
            cl.query("BEGIN")
            pids[name] = int(cl.fetch("SELECT pg_backend_pid()")[0][0])
        queries += 4
        checkouts += 2
        p = self.pools()
        self.assertEqual((p["checked_out"], p["checked_in"], p["waiting"], p["overflow"]), (2, 0, 0, 0))
        self.assertEqual(p["clients"], 5)

        servers = table(self.admin, "SHOW SERVERS")
        clients = table(self.admin, "SHOW CLIENTS")
        self.assertEqual(sorted(int(s["pid"]) for s in servers if s["pool"] == "inventorydb"),
                         sorted(pids.values()))
        client_of_pid = {int(cl["backend_pid"]): cl["id"] for cl in clients if cl["backend_pid"]}
        for s in servers:
            if s["pool"] == "inventorydb":
                self.assertEqual(s["state"], "linked")
                self.assertEqual(s["client_id"], client_of_pid[int(s["pid"])])

        d.send(b"Q", b"SELECT 1\0")
        h.wait_until(lambda: self.pools()["waiting"] == 1, message="d waiting")
        e.send(b"Q", b"SELECT 1\0")
        h.wait_until(lambda: self.pools()["waiting"] == 2, message="e waiting")
        time.sleep(0.1)
        p = self.pools()
        self.assertEqual((p["checked_out"], p["waiting"]), (2, 2))
        self.assertGreaterEqual(p["longest_wait"], 0.1)   # d's wait so far, in seconds
        self.assertLess(p["longest_wait"], 1)
        states = sorted(cl["state"] for cl in table(self.admin, "SHOW CLIENTS")
                        if cl["pool"] == "inventorydb")
        self.assertEqual(states, ["active", "active", "idle", "waiting", "waiting"])
        for cl in (d, e):
            with self.assertRaises(h.PgError) as cm:
                cl.results(cl.read_until_ready())
            self.assertEqual(cm.exception.sqlstate, "53300")
        p = self.pools()
        self.assertEqual((p["waiting"], p["timeouts"]), (0, 2))
        s4 = self.stats()
        self.assertEqual(s4["timeouts"], 2)
        self.assertEqual(s4["total_query_count"], queries)   # timed-out queries never ran
        self.assertEqual(s4["total_server_assignment_count"], checkouts)

        # --- one client queues and is served when a backend comes back ---
        hold = 0.3
        d.send(b"Q", b"SELECT 1\0")
        h.wait_until(lambda: self.pools()["waiting"] == 1, message="d waiting again")
        time.sleep(hold)
        b.query("COMMIT")                                # hands b's backend to d
        self.assertEqual(d.results(d.read_until_ready())[0].rows, [("1",)])
        c.query("COMMIT")
        xacts, queries, checkouts = xacts + 3, queries + 3, checkouts + 1
        p = self.pools()
        self.assertEqual((p["checked_out"], p["checked_in"], p["waiting"]), (0, 2, 0))
        s5 = self.stats()
        self.assertEqual(s5["total_xact_count"], xacts)
        self.assertEqual(s5["total_query_count"], queries)
        self.assertEqual(s5["total_server_assignment_count"], checkouts)
        self.assertEqual(s5["connects"], 2)
        self.assertEqual(s5["timeouts"], 2)
        self.assertEqual(s5["invalidations"], 0)
        self.assertGreaterEqual(s5["total_wait_time"], hold * 1e6)
        self.assertGreaterEqual(s5["p99_wait_time"], 250000)   # d's wait is in (0.25 s, 0.5 s]
        self.assertLess(s5["p99_wait_time"], 5e6)
        total_sent = sum(cl.sent for cl in (a, b, c, d, e))
        self.assertGreater(s5["total_received"], s3["total_received"])
        self.assertLessEqual(s5["total_received"], total_sent)
        self.assertGreater(s5["total_sent"], s3["total_sent"])
        for cl in (a, b, c, d, e):
            cl.close()
        h.wait_until(lambda: self.pools()["clients"] == 0, message="clients gone")

    def run_session_mode(self, tp):
        s0 = self.stats("sess")
        self.assertEqual(s0["total_xact_count"], 0)
        with tp.raw(dbname="sess") as a:
            p = self.pools("sess")
            self.assertEqual((p["checked_out"], p["mode"]), (1, "session"))
            s1 = self.stats("sess")
            self.assertEqual((s1["total_xact_count"], s1["total_server_assignment_count"]), (0, 1))
            for _ in range(2):
                a.query("BEGIN")
                a.query("SELECT 1")
                a.query("COMMIT")
            a.query("SELECT 1")
            s2 = self.stats("sess")
            self.assertEqual(s2["total_xact_count"], 3)
            self.assertEqual(s2["total_query_count"], 7)
            self.assertEqual(s2["total_server_assignment_count"], 1)
            a.query("BEGIN")                         # abandoned: not counted
        h.wait_until(lambda: self.pools("sess")["checked_in"] == 1, message="session backend back")
        s3 = self.stats("sess")
        self.assertEqual(s3["total_xact_count"], 3)
        self.assertEqual(s3["total_query_count"], 8)


if __name__ == "__main__":
    h.main()
