#!/usr/bin/python3
"""Python drivers, unchanged, through tidepool in transaction mode (SPEC §4
"Checkout and checkin", "Prepared statements", "Isolation level").

One pool of 2 backends (max_overflow 0) and always more clients than that,
so consecutive statements of a client run on different backends. Each test
records the backend pids its clients saw and checks that statements really
crossed backends and that PostgreSQL never saw more than 2 of them.

- psycopg2 + SQLAlchemy 1.4 (future=True): the tutorial, ORM Session CRUD
  from several threads, an isolation_level="SERIALIZABLE" engine with
  execution_options(isolation_level=...) per connection;
- psycopg 3: autocommit (default prepare_threshold 5: statements get
  prepared after five runs), transactions with savepoints and rollbacks,
  prepare_threshold=0 (every query a named prepared statement, same names
  _pg3_0, _pg3_1 ... in every client for different statements), the
  DEALLOCATE name / DEALLOCATE ALL that psycopg sends itself (statement
  cache rotation, after ROLLBACK and DROP), pipeline mode, COPY;
- asyncpg with its statement cache on: 8 tasks over a 4-connection asyncpg
  pool, fetch / fetchval / executemany with parameters.
"""

import asyncio
import contextlib
import io
import os
import random
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import asyncpg  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import Column, Integer, String, create_engine, func, select, text  # noqa: E402
from sqlalchemy.orm import Session, declarative_base  # noqa: E402

ROLE = "drv_py"
ROLE_ONE = "drv_py_one"
ROLE_PASSWORD = "drvpw"
POOL = "drv"
POOL_SIZE = 2
POOL_ONE = "drv_one"  # one backend, for exact interleavings of two clients

pg = None
tp = None


def setUpModule():
    global pg, tp
    pg = h.Cluster().start()
    try:
        h.create_login_role(pg, ROLE, ROLE_PASSWORD)
        h.create_login_role(pg, ROLE_ONE, ROLE_PASSWORD)
        tp = h.Tidepool(pg, pools={
            POOL: h.small_pool(pg, ROLE, ROLE_PASSWORD, pool_size=POOL_SIZE, pool_timeout=10),
            POOL_ONE: h.small_pool(pg, ROLE_ONE, ROLE_PASSWORD, pool_size=1, pool_timeout=30),
        }, settings={"log_level": "info"}).start()
    except BaseException:
        pg.stop()
        raise


def tearDownModule():
    try:
        tp.stop()
        tp.check()
    finally:
        pg.stop()


def conninfo():
    return tp.conninfo(POOL)


def psycopg_connect(**kw):
    return psycopg.connect(conninfo(), connect_timeout=10, **kw)


class DriverTest(h.TestCase):
    def setUp(self):
        self.sampler = h.BackendSampler(pg, "inventorydb", ROLE).start()
        self.log_mark = h.log_mark(tp.log_path)

    def tearDown(self):
        self.sampler.stop()

    def check_outcomes(self, outcomes):
        """outcomes of h.run_threads whose results are pid sets: no error, and
        the statements crossed at most POOL_SIZE backends."""
        errors = [f"client {i}: {e!r}" for i, (_, e) in enumerate(outcomes) if e is not None]
        if errors:
            pins = [line for line in h.log_since(tp.log_path, self.log_mark) if "pinned" in line]
            errors.append(f"{len(pins)} pin lines in the daemon's log during the test: {pins[:4]}")
        self.assertEqual(errors, [], "\n".join(errors))
        self.check_pids([r for r, _ in outcomes])

    def check_pids(self, pid_sets):
        problem = h.crossing_problem(pid_sets, POOL_SIZE)
        self.assertIsNone(problem, problem)
        self.assertLessEqual(self.sampler.max, POOL_SIZE, "PostgreSQL saw more backends than the pool has")

    def exec_direct(self, sql, params=None):
        return pg.execute(sql, params, dbname="inventorydb")


def background_load(stop, errors, n=2):
    """n threads doing short psycopg2 transactions through the pool until
    `stop` is set, so that a single-threaded test's statements land on
    whichever backend is free."""
    def work(rng):
        try:
            with contextlib.closing(tp.connect(POOL)) as conn, conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("SELECT pg_backend_pid(), pg_sleep(%s)", (rng.uniform(0, 0.006),))
                    conn.commit()
                    stop.wait(rng.uniform(0, 0.003))
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
    threads = [threading.Thread(target=work, args=(random.Random(i),), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


@contextlib.contextmanager
def elsewhere(pid):
    """Inside: the pool's backend `pid` is busy (a helper client holds it in
    a transaction), so the next transaction of anyone else runs on the other
    one. Two helpers: the first takes whichever backend is free; when that
    is not `pid`, the second takes `pid` and the first lets its own go."""
    helpers = [tp.connect(POOL, autocommit=True) for _ in range(2)]
    try:
        curs = [c.cursor() for c in helpers]
        curs[0].execute("BEGIN; SELECT pg_backend_pid()")
        if curs[0].fetchone()[0] != pid:
            curs[1].execute("BEGIN; SELECT pg_backend_pid()")
            assert curs[1].fetchone()[0] == pid, "the pool has more than two backends"
            curs[0].execute("COMMIT")
        yield
    finally:
        for c in helpers:
            with contextlib.suppress(Exception):
                c.cursor().execute("ROLLBACK")  # (a WARNING where there is none)
            c.close()


@contextlib.contextmanager
def load(test, n=2):
    stop, errors = threading.Event(), []
    threads = background_load(stop, errors, n)
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    test.assertEqual(errors, [], "the background clients failed")


# ---------------------------------------------------------------------------
# psycopg2 + SQLAlchemy 1.4
# ---------------------------------------------------------------------------

class SQLAlchemyPsycopg2(DriverTest):
    def engine(self, **kw):
        kw.setdefault("future", True)
        kw.setdefault("connect_args", {"connect_timeout": 10})
        return create_engine(tp.url(POOL), **kw)

    def test_tutorial(self):
        engine = self.engine()
        try:
            pids = []
            with load(self):
                with engine.connect() as conn:
                    conn.execute(text("DROP TABLE IF EXISTS coordinates"))
                    conn.execute(text("CREATE TABLE coordinates (x int, y int)"))
                    conn.execute(text("INSERT INTO coordinates (x, y) VALUES (:x, :y)"),
                                 [{"x": 1, "y": 1}, {"x": 2, "y": 4}])
                    conn.commit()
                out = io.StringIO()
                with engine.connect() as conn:
                    result = conn.execute(text("SELECT x, y FROM coordinates ORDER BY x"))
                    with contextlib.redirect_stdout(out):
                        for row in result:
                            print(f"x: {row.x} y: {row.y}")
                    conn.commit()
                self.assertEqual(out.getvalue().splitlines(), ["x: 1 y: 1", "x: 2 y: 4"])
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO coordinates (x, y) VALUES (:x, :y)"),
                                 [{"x": 6, "y": 8}, {"x": 9, "y": 10}])
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT x, y FROM coordinates WHERE y > :y ORDER BY x"),
                                        {"y": 2}).all()
                    self.assertEqual([tuple(r) for r in rows], [(2, 4), (6, 8), (9, 10)])
                with engine.connect() as conn:
                    conn.execute(text("UPDATE coordinates SET y = :y WHERE x = :x"),
                                 [{"x": 9, "y": 11}, {"x": 2, "y": 1}])
                    conn.commit()
                # One connection, many transactions: it changes backend
                # (for sure when the one it last used is busy).
                with engine.connect() as conn:
                    seen, last = set(), None
                    for i in range(20):
                        with (elsewhere(last) if i % 2 else contextlib.nullcontext()):
                            last = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                            conn.execute(text("SELECT count(*) FROM coordinates")).scalar()
                            conn.commit()
                        seen.add(last)
                    pids.append(seen)
            self.assertEqual(self.exec_direct("SELECT x, y FROM coordinates ORDER BY x"),
                             [(1, 1), (2, 1), (6, 8), (9, 11)])
            self.check_pids(pids)
        finally:
            engine.dispose()

    def test_orm_session_crud_threads(self):
        Base = declarative_base()

        class User(Base):
            __tablename__ = "orm_user_account"
            id = Column(Integer, primary_key=True)
            name = Column(String(30), nullable=False)
            fullname = Column(String)

        engine = self.engine(pool_size=6, max_overflow=0)
        try:
            Base.metadata.drop_all(engine)
            Base.metadata.create_all(engine)
            threads, rounds, per_round = 6, 4, 15

            def worker(i):
                pids = set()
                for r in range(rounds):
                    prefix = f"t{i}r{r}_"
                    with Session(engine, future=True) as session:
                        session.add_all([User(name=f"{prefix}{j}", fullname=f"User {i} {r} {j}")
                                         for j in range(per_round)])
                        session.commit()
                        pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar())
                        session.commit()
                    with Session(engine, future=True) as session:
                        n = session.scalar(select(func.count()).select_from(User)
                                           .where(User.name.like(f"{prefix}%")))
                        assert n == per_round, f"{prefix}: {n} rows after insert"
                        u = session.execute(select(User).filter_by(name=f"{prefix}0")).scalar_one()
                        u.fullname = "renamed"
                        for u in session.scalars(select(User).where(User.name.like(f"{prefix}%"))
                                                 .order_by(User.id).limit(per_round // 2 + 1).offset(1)):
                            session.delete(u)
                        pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar())
                        session.commit()
                    with Session(engine, future=True) as session:
                        left = session.scalars(select(User.fullname).where(User.name.like(f"{prefix}%"))
                                               .order_by(User.id)).all()
                        assert left[0] == "renamed", left
                        assert len(left) == per_round - (per_round // 2 + 1), left
                        # A rolled-back change is gone.
                        session.get(User, session.scalar(select(User.id).where(
                            User.name == f"{prefix}0"))).fullname = "never"
                        session.flush()
                        session.rollback()
                        assert session.scalar(select(User.fullname).where(
                            User.name == f"{prefix}0")) == "renamed"
                        pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar())
                return pids

            outcomes = h.run_threads(worker, [(i,) for i in range(threads)], timeout=45)
            self.check_outcomes(outcomes)
            left = per_round - (per_round // 2 + 1)
            self.assertEqual(self.exec_direct("SELECT count(*), count(*) FILTER (WHERE fullname = 'renamed')"
                                              " FROM orm_user_account"),
                             [(threads * rounds * left, threads * rounds)])
        finally:
            engine.dispose()

    def test_isolation_levels_threads(self):
        engine = self.engine(isolation_level="SERIALIZABLE", pool_size=4, max_overflow=0)
        try:
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS iso_log"))
                conn.execute(text("CREATE TABLE iso_log (who int, k int, level text)"))

            def worker(i):
                pids = set()
                for k in range(12):
                    with engine.connect() as conn:
                        level = conn.execute(text("SHOW transaction_isolation")).scalar()
                        assert level == "serializable", f"engine level: {level}"
                        pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar())
                        conn.execute(text("INSERT INTO iso_log VALUES (:i, :k, :l)"),
                                     {"i": i, "k": k, "l": level})
                        conn.commit()
                    with engine.connect() as conn:
                        conn = conn.execution_options(isolation_level="REPEATABLE READ")
                        level = conn.execute(text("SHOW transaction_isolation")).scalar()
                        assert level == "repeatable read", f"REPEATABLE READ option: {level}"
                        pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar())
                        conn.commit()
                    with engine.connect() as conn:
                        conn = conn.execution_options(isolation_level="READ COMMITTED")
                        level = conn.execute(text("SHOW transaction_isolation")).scalar()
                        assert level == "read committed", f"READ COMMITTED option: {level}"
                        conn.rollback()
                    with engine.connect() as conn:
                        # AUTOCOMMIT: every statement its own transaction, with
                        # the backend's default (the server's: read committed).
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                        level = conn.execute(text("SHOW transaction_isolation")).scalar()
                        assert level == "read committed", f"AUTOCOMMIT: {level}"
                        conn.execute(text("INSERT INTO iso_log VALUES (:i, :k, 'autocommit')"),
                                     {"i": i, "k": k})
                        pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar())
                    # Back to the engine's level on the next checkout.
                    with engine.connect() as conn:
                        level = conn.execute(text("SHOW transaction_isolation")).scalar()
                        assert level == "serializable", f"after AUTOCOMMIT: {level}"
                        conn.rollback()
                return pids

            outcomes = h.run_threads(worker, [(i,) for i in range(4)], timeout=45)
            self.check_outcomes(outcomes)
            self.assertEqual(self.exec_direct("SELECT level, count(*) FROM iso_log GROUP BY 1 ORDER BY 1"),
                             [("autocommit", 48), ("serializable", 48)])
        finally:
            engine.dispose()


# ---------------------------------------------------------------------------
# psycopg 3
# ---------------------------------------------------------------------------

class Psycopg3(DriverTest):
    @classmethod
    def setUpClass(cls):
        with contextlib.closing(psycopg_connect(autocommit=True)) as conn:
            conn.execute("DROP TABLE IF EXISTS p3_items")
            conn.execute("CREATE TABLE p3_items (who int, k int, label text)")
            conn.execute("DROP TABLE IF EXISTS p3_copy")
            conn.execute("CREATE TABLE p3_copy (who int, n int, s text)")

    def setUp(self):
        super().setUp()
        self.exec_direct("TRUNCATE p3_items, p3_copy")

    def test_autocommit_default_prepare_threshold(self):
        # The default prepare_threshold (5): from the sixth run on, a query is
        # a named prepared statement _pg3_N.
        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect(autocommit=True)) as conn:
                for k in range(60):
                    conn.execute("INSERT INTO p3_items (who, k, label) VALUES (%s, %s, %s)", (i, k, "auto"))
                    n = conn.execute("SELECT count(*) FROM p3_items WHERE who = %s", (i,)).fetchone()[0]
                    assert n == k + 1, f"client {i}: {n} rows after {k + 1} inserts"
                    pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(5)], timeout=45))
        self.assertEqual(self.exec_direct("SELECT count(*) FROM p3_items")[0][0], 5 * 60)

    def test_transactions(self):
        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect()) as conn:
                for k in range(25):
                    with conn.transaction():
                        conn.execute("INSERT INTO p3_items VALUES (%s, %s, 'kept')", (i, k))
                        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                        pids.add(pid)
                        with contextlib.suppress(psycopg.errors.DivisionByZero):
                            with conn.transaction():  # a savepoint, rolled back
                                conn.execute("INSERT INTO p3_items VALUES (%s, %s, 'savepoint')", (i, k))
                                conn.execute("SELECT 1 / 0")
                        with conn.transaction():
                            conn.execute("INSERT INTO p3_items VALUES (%s, %s, 'released')", (i, k))
                        same = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                        assert same == pid, "changed backend inside a transaction"
                    # Implicit transaction, rolled back.
                    conn.execute("INSERT INTO p3_items VALUES (%s, %s, 'rolled back')", (i, k))
                    conn.rollback()
                    # Implicit transaction, committed.
                    conn.execute("UPDATE p3_items SET label = 'kept!' WHERE who = %s AND k = %s"
                                 " AND label = 'kept'", (i, k))
                    conn.commit()
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(5)], timeout=45))
        self.assertEqual(self.exec_direct("SELECT label, count(*) FROM p3_items GROUP BY 1 ORDER BY 1"),
                         [("kept!", 125), ("released", 125)])

    def test_prepare_threshold_0_threads(self):
        # Every query is prepared at its first run. Each client names its
        # statements _pg3_0, _pg3_1 ...: the same names stand for the same
        # text in some clients and for different texts in others.
        threads, loops = 6, 80

        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect(autocommit=True, prepare_threshold=0)) as conn:
                if i % 2:  # odd clients prepare their own query first
                    conn.execute(f"SELECT %s::int * {i + 2} AS own", (1,))
                for k in range(loops):
                    v = conn.execute("SELECT %s::int + 1 AS same", (k,)).fetchone()[0]
                    assert v == k + 1, f"client {i}: same query gave {v} for {k}"
                    v = conn.execute(f"SELECT %s::int * {i + 2} AS own", (k,)).fetchone()[0]
                    assert v == k * (i + 2), f"client {i}: own query gave {v} for {k}"
                    t = conn.execute("SELECT %s::text || %s::text", (f"c{i}", k)).fetchone()[0]
                    assert t == f"c{i}{k}", t
                    if k % 5 == 0:
                        with conn.transaction():
                            conn.execute("INSERT INTO p3_items VALUES (%s, %s, %s)", (i, k, "prepared"))
                            v = conn.execute("SELECT %s::int + 1 AS same", (k,)).fetchone()[0]
                            assert v == k + 1
                    pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
                # A cursor's prepare=True / False per execution.
                cur = conn.cursor()
                cur.execute("SELECT %s::int - 1", (10,), prepare=True)
                assert cur.fetchone()[0] == 9
                cur.execute("SELECT %s::int - 2", (10,), prepare=False)
                assert cur.fetchone()[0] == 8
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(threads)], timeout=50))
        self.assertEqual(self.exec_direct("SELECT count(*) FROM p3_items WHERE label = 'prepared'")[0][0],
                         threads * (loops // 5))

    def test_deallocate_on_cache_rotation(self):
        # psycopg itself sends `DEALLOCATE _pg3_N` (a simple query) when its
        # statement cache (prepared_max) rotates: the name is the client's.
        threads, loops = 5, 30

        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect(autocommit=True, prepare_threshold=0)) as conn:
                conn.prepared_max = 3
                for k in range(loops):
                    for q in range(5):  # 5 texts over a cache of 3
                        v = conn.execute(f"SELECT %s::int + {q} AS q{q}", (k,)).fetchone()[0]
                        assert v == k + q, f"client {i} query {q}: {v}"
                    pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(threads)], timeout=50))

    def test_deallocate_all_after_rollback_and_drop(self):
        # After a ROLLBACK or a DROP psycopg sends `DEALLOCATE ALL` (when it
        # has prepared statements): that drops the client's statements, and
        # other clients' ones, on whatever backend, stay usable.
        threads, loops = 5, 40

        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect(autocommit=True, prepare_threshold=0)) as conn:
                for k in range(loops):
                    v = conn.execute("SELECT %s::int + 1 AS same", (k,)).fetchone()[0]
                    assert v == k + 1, f"client {i}: {v}"
                    v = conn.execute(f"SELECT %s::int * {i + 2} AS own", (k,)).fetchone()[0]
                    assert v == k * (i + 2), f"client {i}: own query gave {v}"
                    if k % 4 == i % 4:
                        conn.execute("BEGIN")
                        conn.execute("INSERT INTO p3_items VALUES (%s, %s, 'gone')", (i, k))
                        conn.execute("ROLLBACK")
                    if k % 10 == 3:
                        conn.execute(f"CREATE TABLE IF NOT EXISTS p3_drop_{i} (x int)")
                        conn.execute(f"DROP TABLE p3_drop_{i}")
                    pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(threads)], timeout=50))
        self.assertEqual(self.exec_direct("SELECT count(*) FROM p3_items WHERE label = 'gone'")[0][0], 0)

    def test_deallocate_of_one_client_spares_the_others(self):
        # One backend (pool ONE), two clients taking turns on it: what one
        # client deallocates with SQL is its own business. (The DEALLOCATEs
        # are sent unprepared; x and y prepare everything else.)
        def connect():
            return contextlib.closing(psycopg.connect(tp.conninfo(POOL_ONE), autocommit=True,
                                                      connect_timeout=10, prepare_threshold=0))

        with connect() as x, connect() as y:
            pid = x.execute("SELECT pg_backend_pid()").fetchone()[0]          # x: _pg3_0
            self.assertEqual(x.execute("SELECT %s::int + 100", (1,)).fetchone()[0], 101)  # x: _pg3_1
            self.assertEqual(y.execute("SELECT %s::int + 200", (1,)).fetchone()[0], 201)  # y: _pg3_0
            self.assertEqual(y.execute("SELECT pg_backend_pid()").fetchone()[0], pid)     # y: _pg3_1
            y.execute("DEALLOCATE ALL", prepare=False)
            self.assertEqual(x.execute("SELECT %s::int + 100", (2,)).fetchone()[0], 102,
                             "x's statement did not survive y's DEALLOCATE ALL")
            with self.assertRaises(psycopg.errors.InvalidSqlStatementName,
                                   msg="y deallocated a statement it no longer had"):
                y.execute("DEALLOCATE _pg3_1", prepare=False)
            self.assertEqual(x.execute("SELECT %s::int + 100", (3,)).fetchone()[0], 103,
                             "x's statement did not survive y's DEALLOCATE _pg3_1")
            # psycopg 2 (simple query protocol) deallocating everything.
            with contextlib.closing(tp.connect(POOL_ONE, autocommit=True)) as z, z.cursor() as cur:
                cur.execute("DEALLOCATE ALL")
            self.assertEqual(x.execute("SELECT %s::int + 100", (4,)).fetchone()[0], 104,
                             "x's statement did not survive a psycopg2 client's DEALLOCATE ALL")
            # x deallocates its own statement by name: gone for x only.
            self.assertEqual(y.execute("SELECT %s::int + 300", (1,)).fetchone()[0], 301)  # y: _pg3_2
            x.execute("DEALLOCATE _pg3_1", prepare=False)
            with self.assertRaises(psycopg.errors.InvalidSqlStatementName,
                                   msg="x's statement survived its own DEALLOCATE"):
                x.execute("SELECT %s::int + 100", (5,))
            self.assertEqual(y.execute("SELECT %s::int + 300", (2,)).fetchone()[0], 302)
            self.assertEqual(x.execute("SELECT pg_backend_pid()").fetchone()[0], pid)
            # y's statements from before its DEALLOCATE ALL are gone, as with
            # PostgreSQL (psycopg does not know and binds _pg3_0 again).
            with self.assertRaises(psycopg.errors.InvalidSqlStatementName,
                                   msg="y's statement survived its DEALLOCATE ALL"):
                y.execute("SELECT %s::int + 200", (2,))

    def test_deallocate_of_a_text_another_client_prepared_too(self):
        # One backend; x and y prepare the same text. x's DEALLOCATE of its
        # own statement must not take y's away.
        def connect():
            return contextlib.closing(psycopg.connect(tp.conninfo(POOL_ONE), autocommit=True,
                                                      connect_timeout=10, prepare_threshold=0))

        with connect() as x, connect() as y:
            self.assertEqual(x.execute("SELECT %s::int + 7", (1,)).fetchone()[0], 8)  # x: _pg3_0
            self.assertEqual(y.execute("SELECT %s::int + 7", (2,)).fetchone()[0], 9)  # y: _pg3_0
            x.execute("DEALLOCATE _pg3_0", prepare=False)
            self.assertEqual(y.execute("SELECT %s::int + 7", (3,)).fetchone()[0], 10,
                             "y's statement went with x's DEALLOCATE of the same text")
            with self.assertRaises(psycopg.errors.InvalidSqlStatementName):
                x.execute("SELECT %s::int + 7", (4,))

    def test_deallocate_on_a_backend_without_the_statement(self):
        # x prepares a statement on one backend, then deallocates it while
        # the other backend serves it (where tidepool never prepared it):
        # PostgreSQL would say DEALLOCATE, and so must tidepool.
        with contextlib.closing(psycopg_connect(autocommit=True, prepare_threshold=0)) as x, \
                contextlib.closing(tp.connect(POOL, autocommit=True)) as c, \
                contextlib.closing(tp.connect(POOL, autocommit=True)) as d, \
                c.cursor() as cc, d.cursor() as dc:
            pid_x = x.execute("SELECT pg_backend_pid()").fetchone()[0]  # x: _pg3_0 on pid_x only
            # Keep pid_x busy so that x's next statement runs on the other one.
            cc.execute("BEGIN")
            cc.execute("SELECT pg_backend_pid()")
            if cc.fetchone()[0] != pid_x:
                dc.execute("BEGIN")
                dc.execute("SELECT pg_backend_pid()")
                self.assertEqual(dc.fetchone()[0], pid_x)
                cc.execute("COMMIT")
            x.execute("DEALLOCATE _pg3_0", prepare=False)
            cc.execute("ROLLBACK")
            dc.execute("ROLLBACK")
            with self.assertRaises(psycopg.errors.InvalidSqlStatementName):
                x.execute("SELECT pg_backend_pid()")  # psycopg binds _pg3_0 again

    def test_pipeline_mode(self):
        def worker(i, prepare_threshold):
            pids = set()
            with contextlib.closing(psycopg_connect(prepare_threshold=prepare_threshold)) as conn:
                for r in range(12):
                    # In a transaction (not autocommit).
                    with conn.pipeline():
                        cur = conn.cursor()
                        for k in range(10):
                            cur.execute("INSERT INTO p3_items VALUES (%s, %s, %s)", (i, r * 10 + k, "pipe"))
                        c1 = conn.execute("SELECT count(*) FROM p3_items WHERE who = %s AND label = 'pipe'",
                                          (i,))
                        c2 = conn.execute("SELECT pg_backend_pid()")
                        c3 = conn.execute("SELECT %s::int * 2", (r,))
                    assert c1.fetchone()[0] == (r + 1) * 10
                    pid = c2.fetchone()[0]
                    pids.add(pid)
                    assert c3.fetchone()[0] == r * 2
                    conn.commit()
                    # executemany in a pipeline, then a rollback.
                    with conn.pipeline():
                        conn.cursor().executemany("INSERT INTO p3_items VALUES (%s, %s, 'rolled back')",
                                                  [(i, k) for k in range(5)])
                    conn.rollback()
                conn.autocommit = True
                for r in range(12):
                    with conn.pipeline():
                        cs = [conn.execute("SELECT %s::int + %s::int", (r, k)) for k in range(8)]
                        cp = conn.execute("SELECT pg_backend_pid()")
                    assert [c.fetchone()[0] for c in cs] == [r + k for k in range(8)]
                    pids.add(cp.fetchone()[0])
            return pids

        args = [(i, 5 if i % 2 else 0) for i in range(5)]
        self.check_outcomes(h.run_threads(worker, args, timeout=50))
        self.assertEqual(self.exec_direct("SELECT label, count(*) FROM p3_items GROUP BY 1"),
                         [("pipe", 5 * 120)])

    def test_copy(self):
        rows_per_copy = 400

        def worker(i):
            pids = set()
            with contextlib.closing(psycopg_connect()) as conn:
                for r in range(6):
                    with conn.cursor() as cur:
                        with cur.copy("COPY p3_copy (who, n, s) FROM STDIN") as copy:
                            for n in range(rows_per_copy):
                                copy.write_row((i, r * rows_per_copy + n, f"row {n}\twith tab"))
                        pids.add(cur.execute("SELECT pg_backend_pid()").fetchone()[0])
                    conn.commit()
                    with conn.cursor() as cur:
                        with cur.copy("COPY (SELECT n, s FROM p3_copy WHERE who = %s ORDER BY n) TO STDOUT",
                                      (i,)) as copy:
                            copy.set_types(["int4", "text"])
                            got = list(copy.rows())
                        assert len(got) == (r + 1) * rows_per_copy, f"client {i}: {len(got)} rows"
                        assert got[-1] == ((r + 1) * rows_per_copy - 1, f"row {rows_per_copy - 1}\twith tab")
                    conn.commit()
                    # A COPY rolled back.
                    with conn.cursor() as cur:
                        with cur.copy("COPY p3_copy (who, n, s) FROM STDIN") as copy:
                            copy.write_row((i, -1, "rolled back"))
                    conn.rollback()
            return pids

        self.check_outcomes(h.run_threads(worker, [(i,) for i in range(4)], timeout=50))
        self.assertEqual(self.exec_direct("SELECT count(*), count(*) FILTER (WHERE n < 0) FROM p3_copy"),
                         [(4 * 6 * rows_per_copy, 0)])


# ---------------------------------------------------------------------------
# asyncpg
# ---------------------------------------------------------------------------

class Asyncpg(DriverTest):
    def test_statement_cache_8_tasks_over_4_connections(self):
        tasks, rounds = 8, 40
        dsn = f"postgresql://{h.APP_USER}:{h.APP_PASSWORD}@{tp.host}:{tp.port}/{POOL}"

        async def main():
            pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4, timeout=10, command_timeout=20)
            try:
                await pool.execute("DROP TABLE IF EXISTS ap_items")
                await pool.execute("CREATE TABLE ap_items (task int, k int, j int, label text)")

                async def task(i):
                    pids = set()
                    for k in range(rounds):
                        async with pool.acquire() as conn:
                            v = await conn.fetchval("SELECT $1::int + $2::int", i, k)
                            assert v == i + k, f"task {i}: fetchval {v}"
                            rows = await conn.fetch("SELECT g, $2::text AS t FROM generate_series(1, $1::int) g",
                                                    k % 7 + 1, f"task{i}")
                            assert [r["g"] for r in rows] == list(range(1, k % 7 + 2)), rows
                            assert all(r["t"] == f"task{i}" for r in rows)
                            async with conn.transaction():
                                await conn.executemany(
                                    "INSERT INTO ap_items (task, k, j, label) VALUES ($1, $2, $3, $4)",
                                    [(i, k, j, f"t{i}") for j in range(3)])
                                n = await conn.fetchval("SELECT count(*) FROM ap_items WHERE task = $1", i)
                                assert n == (k + 1) * 3, f"task {i}: {n} rows in its transaction"
                            row = await conn.fetchrow("SELECT $1::text AS a, $2::int AS b, pg_backend_pid() AS pid",
                                                      f"x{k}", k)
                            assert (row["a"], row["b"]) == (f"x{k}", k), row
                            pids.add(row["pid"])
                            if k % 10 == 9:
                                # A failing transaction, then the cache keeps working.
                                with contextlib.suppress(asyncpg.DivisionByZeroError):
                                    async with conn.transaction():
                                        await conn.execute("INSERT INTO ap_items VALUES ($1, -1, -1, 'gone')", i)
                                        await conn.fetchval("SELECT 1 / $1::int", 0)
                    return pids

                return await asyncio.wait_for(
                    asyncio.gather(*[task(i) for i in range(tasks)], return_exceptions=True), 50)
            finally:
                await asyncio.wait_for(pool.close(), 10)

        results = asyncio.run(main())
        errors = [f"task {i}: {r!r}" for i, r in enumerate(results) if isinstance(r, BaseException)]
        self.assertEqual(errors, [], "\n".join(errors))
        self.check_pids(results)
        self.assertEqual(self.exec_direct("SELECT count(*), count(*) FILTER (WHERE k < 0) FROM ap_items"),
                         [(tasks * rounds * 3, 0)])


if __name__ == "__main__":
    h.main()
