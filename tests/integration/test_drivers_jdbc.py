#!/usr/bin/python3
"""JDBC (Debian's libpostgresql-jdbc-java, pgjdbc 42.x) through tidepool in
transaction mode (SPEC §4 "Prepared statements", "Checkout and checkin").

tests/drivers/jdbc/TidepoolJdbc.java is compiled with javac into a
temporary directory and run with java: 6 threads, each with its own
connection, over a pool of 2 backends (max_overflow 0). Each thread runs
parameterised INSERT / SELECT in transactions many times, rolled-back
transactions, batches and autocommit statements, reusing its
PreparedStatements. With prepareThreshold=1 pgjdbc uses named server-side
statements (S_1, S_2 ... in every connection) from their first execution:
Parse once per connection, then only Bind, on whichever backend serves the
next transaction. The program exits 0 and prints the rows it committed and
the backend pids each thread saw; the test checks them against the table.

Needs javac and /usr/share/java/postgresql.jar (script/bootstrap installs
default-jdk-headless and libpostgresql-jdbc-java).
"""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

JAR = "/usr/share/java/postgresql.jar"
SOURCE = h.REPO_ROOT / "tests" / "drivers" / "jdbc" / "TidepoolJdbc.java"
ROLE = "drv_jdbc"
ROLE_PASSWORD = "jdbcpw"
POOL = "jdbc"
POOL_SIZE = 2
THREADS = 6
ITERATIONS = 40
PROGRAM_TIMEOUT = 45


def rows_per_run():
    # per thread: one row per iteration, and 5 batch rows every 10 iterations
    return THREADS * (ITERATIONS + 5 * (ITERATIONS // 10))


class Jdbc(h.TestCase):
    @classmethod
    def setUpClass(cls):
        javac, java = shutil.which("javac"), shutil.which("java")
        missing = [n for n, p in (("javac", javac), ("java", java), (JAR, os.path.exists(JAR) and JAR)) if not p]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: run script/bootstrap "
                               "(default-jdk-headless libpostgresql-jdbc-java)")
        cls.java = java
        cls.classes = tempfile.mkdtemp(prefix="tp-jdbc-")
        try:
            built = h.run_program([javac, "-encoding", "UTF-8", "-cp", JAR, "-d", cls.classes, str(SOURCE)],
                                  timeout=120)
            if built.returncode != 0:
                raise RuntimeError(f"javac failed ({built.returncode}, timed out: {built.timed_out}):\n"
                                   f"{built.stdout}{built.stderr}")
            cls.pg = h.Cluster().start()
        except BaseException:
            shutil.rmtree(cls.classes, ignore_errors=True)
            raise
        try:
            h.create_login_role(cls.pg, ROLE, ROLE_PASSWORD)
            cls.pg.execute("CREATE TABLE jdbc_items (tag text, thread int, k int, label text)", dbname="inventorydb")
            cls.pg.execute(f"ALTER TABLE jdbc_items OWNER TO {ROLE}", dbname="inventorydb")
            cls.tp = h.Tidepool(cls.pg, pools={POOL: h.small_pool(cls.pg, ROLE, ROLE_PASSWORD,
                                                                  pool_size=POOL_SIZE, pool_timeout=30, echo=True)},
                                settings={"log_level": "info"}).start()
        except BaseException:
            cls.pg.stop()
            shutil.rmtree(cls.classes, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tp.stop()
            cls.tp.check()
        finally:
            cls.pg.stop()
            shutil.rmtree(cls.classes, ignore_errors=True)

    def run_jdbc(self, tag, **props):
        props = {"connectTimeout": 10, "loginTimeout": 10, "socketTimeout": 30, **props}
        log_mark = len(self.tp.log_text())
        url = (f"jdbc:postgresql://{self.tp.host}:{self.tp.port}/{POOL}?"
               + "&".join(f"{k}={v}" for k, v in props.items()))
        with h.BackendSampler(self.pg, "inventorydb", ROLE) as sampler:
            run = h.run_program([self.java, "-cp", f"{self.classes}:{JAR}", "TidepoolJdbc", url, h.APP_USER,
                                 h.APP_PASSWORD, str(THREADS), str(ITERATIONS), tag], timeout=PROGRAM_TIMEOUT)
        out = f"exit status {run.returncode}\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-6000:]}"
        self.assertFalse(run.timed_out, f"the JDBC program was still running after {PROGRAM_TIMEOUT}s\n" + out)
        self.assertEqual(run.returncode, 0, out)
        ok = re.search(r"^OK rows=(\d+) serverPrepared=(\w+) distinctPids=(\d+) maxPidsPerThread=(\d+)$",
                       run.stdout, re.M)
        self.assertIsNotNone(ok, out)
        self.assertEqual(int(ok.group(1)), rows_per_run(), out)
        pid_sets = [set(map(int, re.findall(r"\d+", m))) for m in re.findall(r"^thread \d+ pids=\[(.*)\]$",
                                                                             run.stdout, re.M)]
        self.assertEqual(len(pid_sets), THREADS, out)
        problem = h.crossing_problem(pid_sets, POOL_SIZE)
        if problem:
            pins = [line for line in self.tp.log_text()[log_mark:].splitlines() if "pinned" in line]
            problem += f"\n{len(pins)} pin lines in the daemon's log during the run, e.g. {pins[:3]}"
        self.assertIsNone(problem, problem)
        self.assertLessEqual(sampler.max, POOL_SIZE, "PostgreSQL saw more backends than the pool has")
        rows = self.pg.execute("SELECT label, count(*) FROM jdbc_items WHERE tag = %s GROUP BY 1 ORDER BY 1",
                               (tag,), dbname="inventorydb")
        self.assertEqual(rows, [("batch", THREADS * 5 * (ITERATIONS // 10)), ("kept", THREADS * ITERATIONS)])
        return ok.group(2) == "true"

    def test_prepare_threshold_1(self):
        # Server-side prepared statements from the first execution.
        self.assertTrue(self.run_jdbc("threshold1", prepareThreshold=1),
                        "pgjdbc did not use server-side prepared statements")

    def test_prepare_threshold_1_assume_min_server_version(self):
        # Without assumeMinServerVersion pgjdbc sends, on every new
        # connection, `SET extra_float_digits = 3` and `SET application_name
        # = 'PostgreSQL JDBC Driver'`; with it, both go in the startup packet
        # instead. This run shows the prepared statements alone.
        self.assertTrue(self.run_jdbc("assume", prepareThreshold=1, assumeMinServerVersion="9.0"),
                        "pgjdbc did not use server-side prepared statements")

    def test_prepare_threshold_default(self):
        # pgjdbc's default: unnamed statements for the first 4 executions of
        # a PreparedStatement, then a named one.
        self.run_jdbc("default")


if __name__ == "__main__":
    h.main()
