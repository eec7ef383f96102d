#!/usr/bin/python3
"""psql through tidepool in transaction mode, while other clients run (SPEC
§4 "Checkout and checkin").

A pool of 2 backends (max_overflow 0); three psycopg2 clients keep running
short transactions through it the whole time, so psql's statements land on
whichever backend is free:
- `\\copy ... FROM 'file'` and `\\copy (SELECT ...) TO 'file'` (CSV with
  quotes, commas, newlines and non-ASCII text): what comes out is what went in;
  `\\copy ... FROM pstdin` / `TO pstdout`;
- a script (-f) of several statements: DDL, a transaction with a savepoint
  rolled back to, \\gset, a DO block, a multi-statement line; its output is
  exactly PostgreSQL's;
- the script (less its BEGIN/COMMIT) with -1: one backend for all of it;
- ON_ERROR_STOP: an error stops the script with status 3 and leaves nothing
  half done.
"""

import contextlib
import csv
import os
import random
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

ROLE = "drv_psql"
ROLE_PASSWORD = "psqlpw"
POOL = "psql"
POOL_SIZE = 2

SCRIPT = r"""
DROP TABLE IF EXISTS script_t;
CREATE TABLE script_t (id int PRIMARY KEY, v text);
INSERT INTO script_t SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
BEGIN;
UPDATE script_t SET v = 'updated' WHERE id <= 10;
SELECT count(*) AS updated FROM script_t WHERE v = 'updated' \gset
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
SAVEPOINT s1;
DELETE FROM script_t WHERE id > 90;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
COMMIT;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
DO $$ BEGIN UPDATE script_t SET v = 'done' WHERE id = 100; END $$;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
SELECT :updated AS updated, count(*) AS total, count(*) FILTER (WHERE v = 'done') AS done FROM script_t;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
SELECT 'a' AS first \; SELECT 'b' AS second;
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
SELECT string_agg(v, ',' ORDER BY id) FROM script_t WHERE id IN (1, 11, 100);
INSERT INTO script_pids (tag, pid) SELECT :'tag', pg_backend_pid();
"""

EXPECTED_SCRIPT_OUTPUT = "10|100|1\na\nb\nupdated,v11,done\n"


class Psql(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            h.create_login_role(cls.pg, ROLE, ROLE_PASSWORD)
            cls.tp = h.Tidepool(cls.pg, pools={POOL: h.small_pool(cls.pg, ROLE, ROLE_PASSWORD,
                                                                  pool_size=POOL_SIZE, pool_timeout=30)},
                                settings={"log_level": "info"}).start()
            for ddl in ("CREATE TABLE load_log (who int, pid int)",
                        "CREATE TABLE script_pids (seq serial, tag text, pid int)",
                        "CREATE TABLE copy_items (id int, label text, note text)"):
                cls.pg.execute(ddl, dbname="inventorydb")
            for table in ("load_log", "script_pids", "copy_items"):
                cls.pg.execute(f"ALTER TABLE {table} OWNER TO {ROLE}", dbname="inventorydb")
            # The script straight to PostgreSQL (as the pool's role), for its output.
            tmp = tempfile.mkdtemp(prefix="tp-psql-")
            try:
                cls.direct_run = cls.run_script(cls.pg.dsn("inventorydb", user=ROLE, password=ROLE_PASSWORD),
                                                tmp, "direct")
            finally:
                h._rmtree(tmp)
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

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tp-psql-")
        os.chmod(self.tmp, 0o755)
        self.stop = threading.Event()
        self.load_errors = []
        self.load_threads = [threading.Thread(target=self.load, args=(i,), daemon=True) for i in range(3)]
        for t in self.load_threads:
            t.start()
        self.sampler = h.BackendSampler(self.pg, "inventorydb", ROLE).start()

    def tearDown(self):
        self.stop.set()
        for t in self.load_threads:
            t.join(20)
        self.sampler.stop()
        h._rmtree(self.tmp)
        self.assertEqual(self.load_errors, [], "the other clients failed")
        self.assertLessEqual(self.sampler.max, POOL_SIZE)
        self.assertGreater(self.pg.execute("SELECT count(*) FROM load_log", dbname="inventorydb")[0][0], 0)

    def load(self, i):
        """Another client: short transactions of random length, at random
        intervals (no lockstep with psql), until the test ends."""
        rng = random.Random(i)
        try:
            with contextlib.closing(self.tp.connect(POOL)) as conn, conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute("INSERT INTO load_log SELECT %s, pg_backend_pid()", (i,))
                    cur.execute("SELECT pg_sleep(%s)", (rng.uniform(0, 0.006),))
                    conn.commit()
                    self.stop.wait(rng.uniform(0, 0.003))
        except Exception as e:  # noqa: BLE001 - checked in tearDown
            self.load_errors.append(e)

    def psql(self, sql=None, args=(), stdin=None):
        return h.run_psql(self.tp.conninfo(POOL), sql, args, timeout=40, stdin=stdin)

    def direct(self, sql, params=None):
        return self.pg.execute(sql, params, dbname="inventorydb")

    def test_copy_in_and_out(self):
        self.direct("TRUNCATE copy_items")
        src = os.path.join(self.tmp, "in.csv")
        rows = [(i, f"label {i}, \"quoted\"" if i % 3 else f"línea {i}\nsecond line", "ñ€" * (i % 5))
                for i in range(1, 5001)]
        with open(src, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        r = self.psql(r"\copy copy_items (id, label, note) FROM '" + src + "' WITH (FORMAT csv)")
        self.assertTrue(r.ok, r)
        self.assertEqual(self.direct("SELECT count(*) FROM copy_items")[0][0], len(rows))

        out = os.path.join(self.tmp, "out.csv")
        r = self.psql(r"\copy (SELECT id, label, note FROM copy_items ORDER BY id) TO '" + out
                      + "' WITH (FORMAT csv)")
        self.assertTrue(r.ok, r)
        with open(src, "rb") as a, open(out, "rb") as b:
            self.assertEqual(a.read(), b.read(), "\\copy out is not what \\copy in read")

        # pstdin / pstdout, several \copy in one psql session.
        data = "".join(f"{i}\ttext {i}\t\\N\n" for i in range(10001, 10501))
        r = self.psql(args=["-c", r"\copy copy_items FROM pstdin",
                            "-c", r"\copy (SELECT id, label, note FROM copy_items WHERE id > 10000 ORDER BY id)"
                                  r" TO pstdout",
                            "-c", "SELECT count(*) FROM copy_items"], stdin=data)
        self.assertTrue(r.ok, r)
        self.assertEqual(r.stdout, data + f"{len(rows) + 500}\n")

        # A \copy that fails half-way leaves nothing behind, and psql says so.
        bad = os.path.join(self.tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("".join(f"{i},ok,\n" for i in range(20001, 21000)) + "not a number,x,\n")
        r = self.psql(r"\copy copy_items (id, label, note) FROM '" + bad + "' WITH (FORMAT csv)")
        self.assertFalse(r.ok, r)
        self.assertIn("invalid input syntax for type integer", r.stderr)
        self.assertEqual(self.direct("SELECT count(*) FROM copy_items WHERE id > 20000")[0][0], 0)
        r = self.psql("SELECT count(*) FROM copy_items")
        self.assertEqual((r.returncode, r.stdout), (0, f"{len(rows) + 500}\n"), r)

    @staticmethod
    def run_script(dsn, tmp, tag, extra_args=(), script=SCRIPT):
        path = os.path.join(tmp, f"{tag}.sql")
        with open(path, "w") as f:
            f.write(script)
        return h.run_psql(dsn, None, ["-v", f"tag={tag}", *extra_args, "-f", path], timeout=40)

    def script_pids(self, tag):
        return [p for (p,) in self.direct("SELECT pid FROM script_pids WHERE tag = %s ORDER BY seq", (tag,))]

    def test_script(self):
        # What PostgreSQL itself printed for the script (setUpClass), then
        # through tidepool.
        self.assertEqual((self.direct_run.returncode, self.direct_run.stdout), (0, EXPECTED_SCRIPT_OUTPUT),
                         self.direct_run)
        pid_sets = []
        for n in range(4):
            r = self.run_script(self.tp.conninfo(POOL), self.tmp, f"script{n}")
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, EXPECTED_SCRIPT_OUTPUT, ""), r)
            pids = self.script_pids(f"script{n}")
            self.assertEqual(len(pids), 8, pids)
            # The 2nd and 3rd inserts are inside BEGIN ... COMMIT: one backend.
            self.assertEqual(pids[1], pids[2], f"a transaction changed backend: {pids}")
            pid_sets.append(set(pids))
        problem = h.crossing_problem(pid_sets, POOL_SIZE)
        self.assertIsNone(problem, problem)

    def test_script_single_transaction(self):
        # -1 wraps the script in BEGIN ... COMMIT: without its own ones.
        script = SCRIPT.replace("\nBEGIN;\n", "\n").replace("\nCOMMIT;\n", "\n")
        r = self.run_script(self.tp.conninfo(POOL), self.tmp, "single", ["-1"], script)
        self.assertEqual((r.returncode, r.stdout), (0, EXPECTED_SCRIPT_OUTPUT), r)
        pids = self.script_pids("single")
        self.assertEqual(len(pids), 8, pids)
        self.assertEqual(len(set(pids)), 1, f"psql -1: the script's transaction changed backend: {pids}")

    def test_on_error_stop(self):
        self.direct("DROP TABLE IF EXISTS stop_t")
        path = os.path.join(self.tmp, "stop.sql")
        with open(path, "w") as f:
            f.write("CREATE TABLE stop_t (id int);\n"
                    "BEGIN;\nINSERT INTO stop_t VALUES (1);\nSELECT 1 / 0;\nINSERT INTO stop_t VALUES (2);\n"
                    "COMMIT;\n")
        r = self.psql(args=["-f", path])
        self.assertEqual(r.returncode, 3, r)
        self.assertIn("division by zero", r.stderr)
        self.assertEqual(self.direct("SELECT count(*) FROM stop_t")[0][0], 0)
        # psql exited inside a transaction: the backend was rolled back and
        # is usable by the next client.
        r = self.psql("SELECT count(*) FROM stop_t")
        self.assertEqual((r.returncode, r.stdout), (0, "0\n"), r)


if __name__ == "__main__":
    h.main()
