#!/usr/bin/python3
"""Transaction mode under concurrency (SPEC §3.2 pool_size / max_overflow, §4
"Checkout and checkin").

60 clients, each with its own connection through tidepool, run
BEGIN; SELECT pg_sleep(0.2); COMMIT at once against pool_size=5,
max_overflow=10: every one succeeds, PostgreSQL never sees more than 15
backends of the pool (a sampler polls pg_stat_activity every 20 ms), and once
the load is over exactly pool_size=5 stay open. Then pgbench (simple and
extended protocol, 20 clients) through a pool of 5: no failed transaction.

Each pool has its own backend role so its backends can be counted apart.
"""

import contextlib
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

CLIENTS = 60
POOL_SIZE = 5
MAX_OVERFLOW = 10

BURST_ROLE = "burst_be"       # backend role of the 60-client pool
BENCH_ROLE = "bench_be"       # backend role (and database owner) of the pgbench pool
BENCH_DB = "benchdb"
ROLE_PASSWORD = "rolepw"


class TransactionConcurrency(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            pg = cls.pg
            h.create_login_role(pg, BURST_ROLE, ROLE_PASSWORD)
            h.create_login_role(pg, BENCH_ROLE, ROLE_PASSWORD, grant_schema=False)
            pg.execute(f"CREATE DATABASE {BENCH_DB} OWNER {BENCH_ROLE}")
            cls.tp = h.Tidepool(pg, pools={
                "burst": {"url": pg.url("inventorydb", user=BURST_ROLE, password=ROLE_PASSWORD),
                          "pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW, "pool_timeout": 60},
                "bench": {"url": pg.url(BENCH_DB, user=BENCH_ROLE, password=ROLE_PASSWORD),
                          "pool_size": 5, "max_overflow": 0, "pool_timeout": 60},
            }, settings={"log_level": "info"}).start()
        except BaseException:
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tp.stop()
            cls.tp.check()
        finally:
            cls.pg.stop()

    # -- 60 clients, pool_size 5 + overflow 10 --

    def test_60_clients_never_more_than_15_backends(self):
        pg, tp = self.pg, self.tp
        conns = []
        try:
            for _ in range(CLIENTS):
                conns.append(tp.connect(dbname="burst", autocommit=True))

            def transaction(conn):
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_backend_pid()")
                    pid = cur.fetchone()[0]
                    cur.execute("SELECT pg_sleep(0.2)")
                    cur.execute("SELECT pg_backend_pid()")
                    same = cur.fetchone()[0] == pid
                    cur.execute("COMMIT")
                    return pid, same

            with h.BackendSampler(pg, "inventorydb", BURST_ROLE, interval=0.02) as sampler:
                started = time.monotonic()
                outcomes = h.run_threads(transaction, [(c,) for c in conns], timeout=60)
                elapsed = time.monotonic() - started
                time.sleep(0.1)

            errors = [repr(e) for _, e in outcomes if e is not None]
            self.assertEqual(errors, [], f"{len(errors)} of {CLIENTS} transactions failed")
            self.assertTrue(all(same for (pid, same), _ in outcomes),
                            "a client changed backend inside its transaction")
            pids = {pid for (pid, _), _ in outcomes}
            self.assertGreater(sampler.samples, 10, "the sampler hardly ran")
            self.assertLessEqual(sampler.max, POOL_SIZE + MAX_OVERFLOW,
                                 f"more than pool_size + max_overflow backends: {sampler.max}")
            self.assertLessEqual(len(pids), POOL_SIZE + MAX_OVERFLOW,
                                 "more distinct backends than pool_size + max_overflow served the load"
                                 " (backends closed and reopened?)")
            # 60 x 0.2 s over 15 backends takes >= 0.8 s; with only pool_size
            # (no overflow) it would take >= 2.4 s.
            self.assertGreater(elapsed, 0.75)
            self.assertEqual(sampler.max, POOL_SIZE + MAX_OVERFLOW,
                             "the overflow was not used under a 60-client load")

            # Overflow backends are closed as they come back: pool_size stay.
            h.wait_until(lambda: len(pg.backends("inventorydb", BURST_ROLE)) == POOL_SIZE, timeout=10,
                         message=f"{POOL_SIZE} backends left after the load")
            time.sleep(0.5)
            states = h.backend_states(pg, "inventorydb", BURST_ROLE)
            self.assertEqual(len(states), POOL_SIZE, states)
            self.assertEqual(set(states.values()), {"idle"}, states)

            # The clients are all still usable, and served by the kept backends.
            kept = set(states)
            for conn in conns[:10]:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    self.assertIn(cur.fetchone()[0], kept)
        finally:
            for c in conns:
                with contextlib.suppress(Exception):
                    c.close()
        # Closing clients that are between transactions closes no backend.
        time.sleep(0.3)
        self.assertEqual(len(self.pg.backends("inventorydb", BURST_ROLE)), POOL_SIZE)

    # -- pgbench --

    def pgbench(self, mode):
        pg, tp = self.pg, self.tp
        init = h.run_pgbench(["-i", "-s", "1", "-q", "-h", pg.host, "-p", str(pg.port), "-U", BENCH_ROLE,
                              BENCH_DB], password=ROLE_PASSWORD, timeout=60)
        self.assertEqual(init.returncode, 0, init.stderr)
        with h.BackendSampler(pg, BENCH_DB, BENCH_ROLE, interval=0.02) as sampler:
            run = h.run_pgbench(["-n", "-M", mode, "-c", "20", "-j", "2", "-T", "5",
                                 "-h", tp.host, "-p", str(tp.port), "-U", h.APP_USER, "bench"],
                                password=h.APP_PASSWORD, timeout=60)
        out = run.stdout + run.stderr
        self.assertEqual(run.returncode, 0, out)
        self.assertIn("number of failed transactions: 0", out)
        processed = re.search(r"number of transactions actually processed: (\d+)", out)
        self.assertIsNotNone(processed, out)
        self.assertGreater(int(processed.group(1)), 100, out)
        self.assertLessEqual(sampler.max, 5, "a pool of 5 used more backends")
        # The balances still add up: every transaction was whole.
        rows = pg.execute("SELECT (SELECT sum(abalance) FROM pgbench_accounts)"
                          " = (SELECT sum(delta) FROM pgbench_history),"
                          " (SELECT count(*) FROM pgbench_history)", dbname=BENCH_DB)
        self.assertEqual(rows[0][0], True, rows)
        self.assertEqual(rows[0][1], int(processed.group(1)), out)

    def test_pgbench_simple(self):
        self.pgbench("simple")

    def test_pgbench_extended(self):
        self.pgbench("extended")


if __name__ == "__main__":
    h.main()
