#!/usr/bin/python3
"""Node.js drivers through tidepool in transaction mode: node-postgres (`pg`)
and postgres.js (`postgres`) from the npm registry (SPEC §4 "Prepared
statements", "Checkout and checkin").

tests/drivers/node/ has package.json and package-lock.json; node_modules is
installed there with `npm ci --no-audit --no-fund` when missing. drivers.js
runs, against a pool of 2 backends (max_overflow 0):
- node-postgres: 6 clients at once with named prepared statements
  ({name: 'q1', text, values}): the same name and text in every client, the
  same name ('own') for a different text in each client, named INSERT /
  SELECT in transactions, rollbacks; then a pg.Pool of 4 connections shared
  by 8 tasks;
- postgres.js (prepares every query, pipelines them): 8 tasks over 4
  connections, parameterised SELECTs and sql.begin() transactions.
It exits 0 and prints the rows each part committed and the backend pids each
client saw; the test checks them against the table and that statements
crossed backends. postgres.js re-prepares silently when PostgreSQL says a
statement does not exist, so the test also requires that PostgreSQL logged
no such error during the run.

Needs node and npm (script/bootstrap installs nodejs, and npm when missing).
"""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

NODE_DIR = h.REPO_ROOT / "tests" / "drivers" / "node"
ROLE = "drv_node"
ROLE_PASSWORD = "nodepw"
POOL = "node"
POOL_SIZE = 2
CLIENTS = 6
ITERATIONS = 40
PROGRAM_TIMEOUT = 50


def ensure_node_modules():
    """node and npm, and tests/drivers/node/node_modules (npm ci when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise RuntimeError("node or npm missing: run script/bootstrap (nodejs, npm)")
    if not (NODE_DIR / "node_modules" / "pg").is_dir() or not (NODE_DIR / "node_modules" / "postgres").is_dir():
        h.log("installing tests/drivers/node/node_modules (npm ci)")
        run = h.run_program([npm, "ci", "--no-audit", "--no-fund"], cwd=str(NODE_DIR), timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"npm ci failed (status {run.returncode}, timed out: {run.timed_out}):\n"
                               f"{run.stdout[-3000:]}{run.stderr[-3000:]}")
    return node


class NodeDrivers(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = ensure_node_modules()
        cls.pg = h.Cluster().start()
        try:
            h.create_login_role(cls.pg, ROLE, ROLE_PASSWORD)
            cls.pg.execute("CREATE TABLE node_items (driver text, client int, k int, label text)",
                           dbname="inventorydb")
            cls.pg.execute(f"ALTER TABLE node_items OWNER TO {ROLE}", dbname="inventorydb")
            cls.tp = h.Tidepool(cls.pg, pools={POOL: h.small_pool(cls.pg, ROLE, ROLE_PASSWORD,
                                                                  pool_size=POOL_SIZE, pool_timeout=30)},
                                settings={"log_level": "info"}).start()
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

    def test_pg_and_postgres_js(self):
        mark = h.log_mark(self.pg.log_path)
        with h.BackendSampler(self.pg, "inventorydb", ROLE) as sampler:
            run = h.run_program([self.node, str(NODE_DIR / "drivers.js"), self.tp.host, str(self.tp.port), POOL,
                                 h.APP_USER, h.APP_PASSWORD, str(CLIENTS), str(ITERATIONS)],
                                cwd=str(NODE_DIR), timeout=PROGRAM_TIMEOUT)
        pg_errors = [line for line in h.log_since(self.pg.log_path, mark) if "ERROR:" in line or "FATAL:" in line]
        out = (f"exit status {run.returncode}\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-4000:]}\n"
               f"PostgreSQL errors during the run ({len(pg_errors)}):\n" + "\n".join(pg_errors[:10]))
        self.assertFalse(run.timed_out, f"drivers.js still running after {PROGRAM_TIMEOUT}s\n" + out)
        self.assertEqual(run.returncode, 0, out)
        self.assertEqual(run.stdout.splitlines()[-1:], ["OK"], out)
        results = {r["driver"]: r for r in (json.loads(line[len("RESULT "):])
                                             for line in run.stdout.splitlines() if line.startswith("RESULT "))}
        expected_rows = {"pg": CLIENTS * ITERATIONS, "pg-pool": 8 * (ITERATIONS // 2), "postgres": 8 * ITERATIONS}
        self.assertEqual({d: r["rows"] for d, r in results.items()}, expected_rows, out)
        table = dict(self.pg.execute("SELECT driver, count(*) FROM node_items WHERE label = 'kept' GROUP BY 1",
                                     dbname="inventorydb"))
        self.assertEqual(table, expected_rows)
        self.assertEqual(self.pg.execute("SELECT count(*) FROM node_items WHERE label <> 'kept'",
                                         dbname="inventorydb"), [(0,)])
        for driver, r in results.items():
            with self.subTest(driver):
                problem = h.crossing_problem(r["pidSets"], POOL_SIZE)
                self.assertIsNone(problem, problem)
        self.assertLessEqual(sampler.max, POOL_SIZE, "PostgreSQL saw more backends than the pool has")
        # postgres.js hides "prepared statement does not exist" by preparing
        # again: PostgreSQL's log shows whether that happened.
        missing = [line for line in pg_errors if re.search(r"prepared statement \S+ does not exist", line)
                   or "already exists" in line]
        self.assertEqual(missing, [], out)


if __name__ == "__main__":
    h.main()
