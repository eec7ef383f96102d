#!/usr/bin/python3
"""pgbench through tidepool in transaction mode, with each of its query
protocols (SPEC §4 "Checkout and checkin", "Prepared statements").

`pgbench -i` straight to PostgreSQL (as the superuser), then `pgbench -M simple | extended |
prepared -c 20 -j 2 -T 5` through a pool of 5 (max_overflow 0): 20 clients
over 5 backends, so every client's transactions run on different backends.
With -M prepared each pgbench connection prepares its statements once, under
the names P_0, P_1 ... (the same in all 20), and then only binds them:
tidepool must prepare them on whichever backend serves the next transaction.

Each run: exit status 0, "number of failed transactions: 0", more than 100
transactions, never more than 5 backends, and the TPC-B balances still add up
(every transaction was whole). The TPS lines are printed.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

ROLE = "drv_bench"
ROLE_PASSWORD = "benchpw"
DB = "drvbenchdb"
POOL = "bench"
POOL_SIZE = 5
RUN_TIMEOUT = 20


class PgbenchDrivers(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            pg = cls.pg
            h.create_login_role(pg, ROLE, ROLE_PASSWORD, grant_schema=False)
            pg.execute(f"CREATE DATABASE {DB} OWNER {ROLE}")
            cls.tp = h.Tidepool(pg, pools={
                POOL: h.small_pool(pg, ROLE, ROLE_PASSWORD, dbname=DB, pool_size=POOL_SIZE, pool_timeout=60),
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

    def pgbench(self, mode):
        pg, tp = self.pg, self.tp
        # As the superuser, so that the sampler (backends of ROLE) cannot count
        # pgbench -i's own backend while it exits.
        init = h.run_pgbench(["-i", "-s", "1", "-q", "-h", pg.host, "-p", str(pg.port), "-U", pg.superuser, DB],
                             password=pg.superuser_password, timeout=60)
        self.assertEqual(init.returncode, 0, init.stdout + init.stderr)
        pg.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}", dbname=DB)
        env = {"PGPASSWORD": h.APP_PASSWORD, "PGCONNECT_TIMEOUT": "10"}
        log_mark = h.log_mark(tp.log_path)
        with h.BackendSampler(pg, DB, ROLE, interval=0.02) as sampler:
            # -T 5 takes about 6 s: a run still going after RUN_TIMEOUT hangs.
            # Then what the pool's backends are doing is the clue.
            snapshot = []

            def on_hang():
                snapshot.extend(pg.execute(
                    "SELECT pid, state, wait_event, left(query, 80) FROM pg_stat_activity"
                    " WHERE datname = %s AND usename = %s ORDER BY pid", (DB, ROLE)))

            run = h.run_program(["/usr/bin/pgbench", "-n", "-M", mode, "-c", "20", "-j", "2", "-T", "5",
                                 "-h", tp.host, "-p", str(tp.port), "-U", h.APP_USER, POOL],
                                timeout=RUN_TIMEOUT, env=env, before_kill=on_hang)
        if run.timed_out:
            self.fail(f"pgbench -M {mode} still running after {RUN_TIMEOUT}s (a -T 5 run): killed.\n"
                      f"the pool's backends then: {snapshot}\n"
                      f"pgbench stdout:\n{run.stdout[-3000:]}\npgbench stderr:\n{run.stderr[-3000:]}")
        out = run.stdout + run.stderr
        tps = [line for line in run.stdout.splitlines() if line.startswith("tps")]
        print(f"\npgbench -M {mode} -c 20 -j 2 -T 5 through a pool of {POOL_SIZE}:", file=sys.stderr)
        for line in tps or ["(no tps line)"]:
            print(f"  {line}", file=sys.stderr)
        # The first errors pgbench reports, if any, with the daemon's log on failure.
        errors = [line for line in run.stderr.splitlines() if "error" in line.lower()][:10]
        self.assertEqual(run.returncode, 0, f"pgbench -M {mode} exited {run.returncode}:\n" + out[-4000:])
        self.assertIn("number of failed transactions: 0", out, "\n".join(errors) or out[-4000:])
        processed = re.search(r"number of transactions actually processed: (\d+)", out)
        self.assertIsNotNone(processed, out)
        self.assertGreater(int(processed.group(1)), 100, out)
        self.assertTrue(tps, out)
        opened = [line for line in h.log_since(tp.log_path, log_mark) if "Created new connection" in line]
        self.assertLessEqual(sampler.max, POOL_SIZE, f"a pool of {POOL_SIZE} used {sampler.max} backends at once"
                             f" (pg_stat_activity); the daemon opened {len(opened)} during the run: {opened}")
        rows = pg.execute("SELECT (SELECT sum(abalance) FROM pgbench_accounts)"
                          " = (SELECT sum(delta) FROM pgbench_history),"
                          " (SELECT count(*) FROM pgbench_history)", dbname=DB)
        self.assertEqual(rows[0][0], True, rows)
        self.assertEqual(rows[0][1], int(processed.group(1)), out)
        return out

    def test_pgbench_simple(self):
        self.pgbench("simple")

    def test_pgbench_extended(self):
        self.pgbench("extended")

    def test_pgbench_prepared(self):
        self.pgbench("prepared")


if __name__ == "__main__":
    h.main()
