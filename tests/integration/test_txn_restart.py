#!/usr/bin/python3
"""PostgreSQL restarted (immediate shutdown, like a crash) under load, in
transaction mode (SPEC §4 "Failures").

Eight writer threads keep their own connection to tidepool and commit one
numbered row per transaction; pgbench runs beside them through the same
daemon. Half-way, PostgreSQL is stopped with SIGQUIT and started again.
Afterwards:
- every row whose COMMIT the client saw succeed is in the table (no committed
  data lost), and every other row is one whose transaction failed in the
  crash (its COMMIT may have gone through unanswered);
- the writers' failures all fall inside the restart window, and every writer
  commits again afterwards on its own connection (or, if tidepool had to close
  it because its backend died mid-transaction, on a new one);
- pgbench (select-only, rate-limited so its clients are mostly between
  transactions) keeps going: clients not inside a transaction at the crash
  carry on.
The numbers (committed, found, in doubt, errors, resumed writers) are printed.
"""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg2  # noqa: E402

import tpharness as h  # noqa: E402

WRITERS = 8
RUN_BEFORE = 2.0   # seconds of load before the crash
RUN_AFTER = 3.0    # seconds of load after PostgreSQL is back


class RestartUnderLoad(h.TestCase):
    def test_restart_under_load(self):
        # COMMIT must wait for its WAL write, or an immediate stop loses it by design.
        with h.Cluster(settings={"synchronous_commit": "on"}) as pg:
            pg.execute("CREATE TABLE commits (writer int, seq int, PRIMARY KEY (writer, seq))",
                       dbname="inventorydb")
            pg.execute("GRANT ALL ON commits TO app", dbname="inventorydb")
            bench = subprocess.run(
                ["/usr/bin/pgbench", "-i", "-q", "-s", "1",
                 pg.dsn(dbname="inventorydb", user="app", password="secret")],
                capture_output=True, text=True, timeout=120)
            self.assertEqual(bench.returncode, 0, bench.stderr)
            with h.Tidepool(pg, pools={"inventorydb": {
                    "url": pg.url("inventorydb"), "pool_size": 6, "max_overflow": 0,
                    "pool_timeout": 10}}) as tp:
                self.run_load(pg, tp)

    def run_load(self, pg, tp):
        stop = threading.Event()
        lock = threading.Lock()
        committed = set()
        in_doubt = set()    # (writer, seq) whose transaction failed: may or may not be in
        failures = []       # (writer, monotonic time, message)
        last_success = {}   # writer -> monotonic time

        def writer(w):
            conn = None
            seq = 0
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = tp.connect()
                        conn.autocommit = False
                    seq += 1
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO commits VALUES (%s, %s)", (w, seq))
                    conn.commit()
                    with lock:
                        committed.add((w, seq))
                        last_success[w] = time.monotonic()
                except psycopg2.Error as e:
                    with lock:
                        in_doubt.add((w, seq))
                        failures.append((w, time.monotonic(), str(e).strip().splitlines()[0]))
                    if conn is not None and not conn.closed:
                        try:
                            conn.rollback()
                        except psycopg2.Error:
                            conn.close()
                    time.sleep(0.05)
            if conn is not None:
                conn.close()

        pgbench = subprocess.Popen(
            ["/usr/bin/pgbench", "-n", "-S", "-R", "200", "-c", "4", "-j", "2", "-T", str(int(RUN_BEFORE + RUN_AFTER + 5)),
             tp.conninfo(dbname="inventorydb")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # pgbench must be past its connections before the crash (a slow start
        # under load would otherwise meet the crash in its setup and stop).
        h.wait_until(lambda: pgbench.poll() is not None or pg.execute(
            "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'",
            dbname="inventorydb")[0][0] > 0, timeout=30, interval=0.2, message="pgbench running")
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
        for t in threads:
            t.start()

        time.sleep(RUN_BEFORE)
        crash_at = time.monotonic()
        pg.restart(immediate=True)
        back_at = time.monotonic()
        time.sleep(RUN_AFTER)
        stop.set()
        for t in threads:
            t.join(30)
            self.assertFalse(t.is_alive(), "a writer hung")
        out, err = pgbench.communicate(timeout=60)
        h.log(f"restart took {back_at - crash_at:.2f}s; {len(committed)} commits; "
              f"{len(failures)} failures: {failures[:10]}")

        # No COMMIT that succeeded is lost, and nothing is there that no
        # client tried (a row beyond the acknowledged ones is a transaction
        # whose COMMIT went through while its answer was lost in the crash).
        rows = {tuple(r) for r in pg.execute("SELECT writer, seq FROM commits", dbname="inventorydb")}
        lost = committed - rows
        extra = rows - committed
        h.drill_report(f"PostgreSQL killed (immediate) and restarted in {back_at - crash_at:.2f}s under load: "
              f"transactions committed (COMMIT reported) {len(committed)}, found afterwards "
              f"{len(committed & rows)}, lost {len(lost)}; rows of failed transactions found "
              f"{len(extra)} (of {len(in_doubt)} in doubt); errors seen by the writers {len(failures)}; "
              f"writers resumed {sum(last_success.get(w, 0) > back_at for w in range(WRITERS))} of {WRITERS}")
        self.assertFalse(lost, f"committed rows missing after the restart: {sorted(lost)[:10]}")
        self.assertLessEqual(extra, in_doubt, f"rows no client committed: {sorted(extra - in_doubt)[:10]}")
        self.assertGreater(len(committed), WRITERS, "the writers committed almost nothing")

        # Failures only around the restart; every writer commits again afterwards.
        for w, t, msg in failures:
            self.assertTrue(crash_at - 0.5 <= t <= back_at + 2.0,
                            f"writer {w} failed outside the restart window: {msg}")
        for w in range(WRITERS):
            self.assertGreater(last_success.get(w, 0), back_at, f"writer {w} did not resume")

        # pgbench kept going through the restart.
        # Its clients are rate-limited (-R), so most sit between transactions
        # at the crash: those carry on; only the ones inside one may abort.
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        aborted = len(re.findall(r"client \d+ (?:script \d+ )?aborted", err))
        h.log(f"pgbench: {aborted} of 4 clients aborted\n{out[-600:]}{err[-600:]}")
        h.drill_report(f"pgbench beside them: {m.group(1) if m else '?'} transactions, "
              f"{aborted} of 4 clients aborted")
        self.assertIsNotNone(m, f"pgbench printed no summary:\n{out}\n{err}")
        self.assertLess(aborted, 4, f"every pgbench client was lost:\n{err}")
        expected_min = (RUN_AFTER + 2) * 200 * 0.5
        self.assertGreater(int(m.group(1)), expected_min, f"pgbench did little work:\n{out}")
        self.assertTrue(tp.running, "tidepool died")


if __name__ == "__main__":
    h.main()
