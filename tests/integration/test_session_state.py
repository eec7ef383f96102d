#!/usr/bin/python3
"""Session state in transaction mode (SPEC §4 "Session state").

A client that creates state which cannot follow it to another backend
(session SET, LISTEN, a session advisory lock, a WITH HOLD cursor, a
temporary table) is kept on its backend (pinned) until the state is gone or
the client leaves, and nothing of that state reaches other clients.

A pool of 2 backends (max_overflow 0, pool_timeout 2 s, pool_pre_ping; each
test's backends are killed after it, so state one test leaks cannot fail the
next). Client A creates the state; clients B and C, and two "probe" threads,
run meanwhile and check that their own sessions are pristine (search_path,
work_mem, TimeZone, listening channels, advisory locks, cursors, temporary
tables all as on a fresh connection). Then:
- pinned: with B inside a transaction, C cannot get a backend (53300 after
  pool_timeout), since A keeps the other one even while idle;
- RESET ALL (SET), UNLISTEN * (LISTEN), DISCARD ALL (advisory locks, temp
  tables, everything), pg_advisory_unlock_all(), CLOSE ALL (cursors) end the
  pinning: B and C then hold a backend each at the same time;
- a pinned client that leaves: its backend comes back clean;
- several kinds of state at once: the pin lasts until all are gone;
- SQL PREPARE pins (DEALLOCATE ALL ends it); psycopg 3's protocol-level
  prepared statements keep working while pinned and after;
- a SET that is itself a named prepared statement (psycopg 3 with
  prepare_threshold=0; and the same messages sent raw) pins like any SET;
- a pg_try_advisory_lock that returned false, a pg_advisory_unlock of a
  lock not held, leave nothing to pin for;
- state that ends with its transaction (SET LOCAL, set_config(..., true),
  pg_advisory_xact_lock, ON COMMIT DROP, a cursor without hold) does not pin.

The admin console's count of pinned clients (SPEC §5) is not checked here
yet: the console does not exist.
"""

import contextlib
import unittest
import os
import select
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402

ROLE = "drv_pin"
ROLE_PASSWORD = "pinpw"
POOL = "pin"
POOL_SIZE = 2
POOL_TIMEOUT = 2

# One query that describes a session: everything a pinned client may change.
PROBE = """SELECT current_setting('search_path'), current_setting('work_mem'), current_setting('TimeZone'),
       (SELECT count(*) FROM pg_listening_channels()) AS listening,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
       (SELECT count(*) FROM pg_cursors) AS cursors,
       (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_objects,
       to_regclass('a_tmp') IS NULL AS no_a_tmp"""


class Client:
    """A psycopg2 connection through the pool, autocommit (each statement its
    own transaction unless the test says BEGIN)."""

    def __init__(self, tp, name, **kw):
        self.name = name
        self.conn = tp.connect(POOL, autocommit=True, **kw)
        self.cur = self.conn.cursor()

    def q(self, sql, params=None):
        self.cur.execute(sql, params)
        return self.cur.fetchall() if self.cur.description else None

    def one(self, sql, params=None):
        return self.q(sql, params)[0][0]

    def pid(self):
        return self.one("SELECT pg_backend_pid()")

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.close()


class SessionState(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            pg = cls.pg
            h.create_login_role(pg, ROLE, ROLE_PASSWORD)
            pg.execute(f"CREATE SCHEMA a_schema AUTHORIZATION {ROLE}", dbname="inventorydb")
            pg.execute("CREATE TABLE a_schema.only_a (x text)", dbname="inventorydb")
            pg.execute("INSERT INTO a_schema.only_a VALUES ('A')", dbname="inventorydb")
            pg.execute(f"ALTER TABLE a_schema.only_a OWNER TO {ROLE}", dbname="inventorydb")
            # What a fresh session of the pool's role looks like.
            with contextlib.closing(pg.connect("inventorydb", user=ROLE, password=ROLE_PASSWORD)) as conn, \
                    conn.cursor() as cur:
                cur.execute(PROBE)
                cls.pristine = cur.fetchone()
            cls.server_tz = cls.pristine[2]
            # pool_pre_ping: tearDown kills the pool's backends after each
            # test (so state one test leaked cannot fail the next ones), and
            # the next test gets new ones silently.
            cls.tp = h.Tidepool(pg, pools={POOL: h.small_pool(pg, ROLE, ROLE_PASSWORD, pool_size=POOL_SIZE,
                                                              pool_timeout=POOL_TIMEOUT, pool_pre_ping=True)},
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

    def setUp(self):
        self.clients = []
        self.sampler = h.BackendSampler(self.pg, "inventorydb", ROLE).start()
        # Every backend open and idle, so B and C can take one each.
        self.b, self.c = self.client("B"), self.client("C")
        self.assert_two_backends_free("at the start")

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.sampler.stop()
        # New backends for the next test.
        self.pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (ROLE,))
        h.wait_until(lambda: not self.pg.backends("inventorydb", ROLE), timeout=10,
                     message="the pool's backends gone")
        self.assertLessEqual(self.sampler.max, POOL_SIZE)

    def client(self, name, **kw):
        c = Client(self.tp, name, **kw)
        self.clients.append(c)
        return c

    def direct(self, sql, params=None):
        return self.pg.execute(sql, params, dbname="inventorydb")

    # -- what other sessions see --

    def assert_pristine(self, client, who=None):
        got = client.q(PROBE)[0]
        self.assertEqual(got, self.pristine, f"{who or client.name}'s session shows another client's state")

    @contextlib.contextmanager
    def probes(self, n=2):
        """n threads checking, in a loop, that their session is pristine."""
        stop, problems = threading.Event(), []

        def probe(i):
            try:
                with contextlib.closing(self.tp.connect(POOL, autocommit=True)) as conn, conn.cursor() as cur:
                    while not stop.is_set():
                        cur.execute(PROBE)
                        got = cur.fetchone()
                        if got != self.pristine:
                            problems.append(f"probe {i} saw {got}")
                        stop.wait(0.005)
            except Exception as e:  # noqa: BLE001 - reported below
                problems.append(f"probe {i} failed: {e!r}")

        threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            yield
            time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(problems[:5], [], f"{len(problems)} probe problems")

    # -- pinned or not --

    def hold_two(self):
        """B and C each BEGIN a transaction and take a backend. Returns (pid
        of B, pid of C or the error C got)."""
        self.b.q("BEGIN")
        try:
            pid_b = self.b.pid()
            try:
                self.c.q("BEGIN")
                try:
                    return pid_b, self.c.pid()
                finally:
                    self.c.q("ROLLBACK")
            except psycopg2.Error as e:
                return pid_b, e
        finally:
            self.b.q("ROLLBACK")

    def assert_two_backends_free(self, when):
        pid_b, got = self.hold_two()
        self.assertNotIsInstance(got, Exception, f"{when}: B holds a backend and C got none: "
                                                 "the other one is still taken (pinned?)")
        self.assertNotEqual(pid_b, got)

    def assert_pinned(self, a, pid_a):
        """A keeps its backend while idle: with B in a transaction, C waits
        and gets 53300 after pool_timeout; and A is still on pid_a."""
        started = time.monotonic()
        pid_b, got = self.hold_two()
        self.assertIsInstance(got, psycopg2.Error,
                              f"{a.name} is not pinned: B ({pid_b}) and C ({got}) both got a backend")
        self.assertEqual(got.pgcode, "53300", got)
        self.assertGreaterEqual(time.monotonic() - started, POOL_TIMEOUT * 0.9)
        self.assertNotEqual(pid_b, pid_a)
        self.assertEqual(a.pid(), pid_a, f"{a.name} changed backend while pinned")
        # C's connection is still usable.
        self.assertEqual(self.c.one("SELECT 1"), 1)

    def assert_unpinned(self, a, what):
        self.assert_two_backends_free(f"after {what}")
        self.assertEqual(a.one("SELECT 1"), 1)

    def interleave(self, a, pid_a, check_a, rounds=15):
        """A checks its own state, B and C that they see none of it, taking
        turns, while the probes run. pid_a: A's backend, which it must keep
        (None: no pinning required)."""
        with self.probes():
            for _ in range(rounds):
                check_a()
                if pid_a is not None:
                    self.assertEqual(a.pid(), pid_a, f"{a.name} changed backend while pinned")
                self.assert_pristine(self.b)
                self.assert_pristine(self.c)

    # -- the tests --

    def test_session_set(self):
        a = self.client("A")
        a.q("SET search_path TO a_schema, public")
        a.q("SET work_mem = '7MB'")
        pid_a = a.pid()

        def check_a():
            self.assertEqual(a.one("SHOW search_path"), "a_schema, public")
            self.assertEqual(a.one("SHOW work_mem"), "7MB")
            self.assertEqual(a.one("SELECT x FROM only_a"), "A")
        self.interleave(a, pid_a, check_a)
        self.assertIsNone(self.b.one("SELECT to_regclass('only_a')"))
        self.assert_pinned(a, pid_a)

        a.q("RESET ALL")
        self.assertEqual(a.one("SHOW search_path"), self.pristine[0])
        self.assertEqual(a.one("SHOW work_mem"), self.pristine[1])
        self.assert_unpinned(a, "RESET ALL")
        self.assert_pristine(a)

    def test_session_set_as_a_prepared_statement(self):
        # psycopg 3 with prepare_threshold=0 prepares the SET itself: Parse
        # ("_pg3_0", "SET ...") + Sync in one write, then Bind / Describe /
        # Execute / Sync in another, as libpq sends them.
        with contextlib.closing(psycopg.connect(self.tp.conninfo(POOL), autocommit=True, connect_timeout=10,
                                                prepare_threshold=0)) as a:
            a.execute("SET search_path TO a_schema, public")
            a.execute("SET work_mem = '7MB'")
            pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]

            class A:
                name = "A (psycopg 3)"

                @staticmethod
                def pid():
                    return a.execute("SELECT pg_backend_pid()").fetchone()[0]

            def check_a():
                self.assertEqual(a.execute("SELECT current_setting('search_path'), current_setting('work_mem')")
                                 .fetchone(), ("a_schema, public", "7MB"), "A lost its own SET")
            self.interleave(A, pid_a, check_a)
            self.assert_pinned(A, pid_a)
            a.execute("RESET ALL")
            self.assert_unpinned(self.b, "RESET ALL")

    def test_session_set_prepared_on_the_wire(self):
        # What psycopg 3 does above, byte for byte, with each batch of
        # messages in one write: Parse("s1", SET) + Sync, then Bind + Describe
        # + Execute + Sync. A must see its SET and keep its backend; B and C
        # must not see it.
        def msg(t, body=b""):
            return t + struct.pack("!i", len(body) + 4) + body

        parse_sync = msg(b"P", b"s1\0SET search_path TO a_schema, public\0\0\0") + msg(b"S")
        bind_run = (msg(b"B", b"\0s1\0" + struct.pack("!hhhh", 0, 0, 1, 0)) + msg(b"D", b"P\0")
                    + msg(b"E", b"\0" + struct.pack("!i", 0)) + msg(b"S"))
        with contextlib.closing(self.tp.raw(POOL)) as a:
            a.fetch("SELECT 1")
            a.sock.sendall(parse_sync)
            self.assertEqual([t for t, _ in a.read_until_ready()], [b"1", b"Z"])
            a.sock.sendall(bind_run)
            self.assertEqual([t for t, _ in a.read_until_ready()], [b"2", b"n", b"C", b"Z"])
            pid_a = int(a.fetch("SELECT pg_backend_pid()")[0][0])

            class A:
                name = "A (raw)"

                @staticmethod
                def pid():
                    return int(a.fetch("SELECT pg_backend_pid()")[0][0])

            def check_a():
                self.assertEqual(a.fetch("SHOW search_path"), [("a_schema, public",)], "A lost its own SET")
            self.interleave(A, pid_a, check_a)
            self.assert_pinned(A, pid_a)

    def test_session_timezone(self):
        # TimeZone is reported (ParameterStatus): tidepool may pin A or carry
        # the value along (SPEC §4 "Session parameters"); either way it is
        # A's alone.
        a = self.client("A")
        b2 = self.client("B2", options="-c TimeZone=America/New_York")
        a.q("SET TimeZone TO 'Asia/Tokyo'")
        self.assertEqual(a.conn.get_parameter_status("TimeZone"), "Asia/Tokyo")

        def check_a():
            self.assertEqual(a.one("SHOW TimeZone"), "Asia/Tokyo")
            self.assertEqual(a.one("SELECT extract(timezone_hour FROM now())"), 9)
            self.assertEqual(b2.one("SHOW TimeZone"), "America/New_York")
        self.interleave(a, None, check_a)
        self.assertEqual(self.b.conn.get_parameter_status("TimeZone"), self.server_tz)
        self.assertEqual(b2.conn.get_parameter_status("TimeZone"), "America/New_York")
        self.assertEqual(a.conn.get_parameter_status("TimeZone"), "Asia/Tokyo")

        a.q("RESET ALL")
        self.assertEqual(a.one("SHOW TimeZone"), self.server_tz)
        b2.close()
        self.assert_unpinned(a, "RESET ALL")
        self.assert_pristine(a)

    def wait_notifies(self, client, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(client.conn.notifies) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([client.conn], [], [], left)
            client.conn.poll()
        return [(x.channel, x.payload) for x in client.conn.notifies]

    def test_listen(self):
        a = self.client("A")
        a.q("LISTEN chan_a")
        pid_a = a.pid()
        self.assertEqual(a.q("SELECT pg_listening_channels()"), [("chan_a",)])

        # While A is idle, B notifies: A receives it without asking.
        self.b.q("NOTIFY chan_a, 'hello from B'")
        self.assertEqual(self.wait_notifies(a, 1), [("chan_a", "hello from B")])
        # During A's own statements too; and C, not listening, gets nothing.
        self.c.q("SELECT pg_notify('chan_a', 'from C')")

        def check_a():
            self.assertEqual(a.q("SELECT pg_listening_channels()"), [("chan_a",)])
        self.interleave(a, pid_a, check_a, rounds=5)
        self.assertEqual(self.wait_notifies(a, 2), [("chan_a", "hello from B"), ("chan_a", "from C")])
        self.assertEqual(self.b.conn.notifies + self.c.conn.notifies, [], "a client not listening got a notification")
        self.assert_pinned(a, pid_a)

        a.q("UNLISTEN *")
        self.assert_unpinned(a, "UNLISTEN *")
        del a.conn.notifies[:]
        self.b.q("NOTIFY chan_a, 'too late'")
        time.sleep(0.3)
        a.q("SELECT 1")
        self.assertEqual(self.wait_notifies(a, 1, timeout=0.5), [], "a notification after UNLISTEN *")
        self.assert_pristine(a)

    def test_advisory_lock(self):
        a = self.client("A")
        self.assertEqual(a.one("SELECT pg_advisory_lock(4242)"), "")
        pid_a = a.pid()
        self.assertEqual(a.one("SELECT pg_advisory_lock(4243)"), "")
        locks = self.direct("SELECT pid, objid, granted FROM pg_locks WHERE locktype = 'advisory' ORDER BY objid")
        self.assertEqual(locks, [(pid_a, 4242, True), (pid_a, 4243, True)])

        self.interleave(a, pid_a, lambda: self.assertEqual(
            a.one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), 2))
        # Another session cannot take it (PostgreSQL's normal answer) ...
        # (D, not B or C: whether D gets pinned for trying is
        # test_failed_advisory_calls_do_not_pin's business.)
        d = self.client("D")
        self.assertIs(d.one("SELECT pg_try_advisory_lock(4242)"), False)
        # ... and does not hold it: unlocking it is "false" with a WARNING.
        self.assertIs(d.one("SELECT pg_advisory_unlock(4242)"), False,
                      "D released A's advisory lock: A's session lock was in D's session")
        self.assertTrue(any("you don't own a lock of type ExclusiveLock" in n for n in d.conn.notices),
                        d.conn.notices)
        self.assertEqual(d.q("SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
                         [])
        d.close()
        self.assert_pinned(a, pid_a)

        # A unlocks one: still holds the other.
        self.assertIs(a.one("SELECT pg_advisory_unlock(4242)"), True)
        self.assertEqual(self.direct("SELECT pid, objid FROM pg_locks WHERE locktype = 'advisory'"),
                         [(pid_a, 4243)])
        a.q("DISCARD ALL")
        self.assertEqual(self.direct("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), [(0,)])
        self.assert_unpinned(a, "DISCARD ALL")
        self.assert_pristine(a)

        # pg_advisory_unlock_all() ends it too.
        a2 = self.client("A2")
        a2.q("SELECT pg_advisory_lock(4244)")
        pid_a2 = a2.pid()
        self.assert_pinned(a2, pid_a2)
        a2.q("SELECT pg_advisory_unlock_all()")
        self.assert_unpinned(a2, "pg_advisory_unlock_all()")

    # tidepool judges session state from the SQL text: a pg_try_advisory_lock() that
    # returned false still pins its client (conservative; nothing leaks). Known gap.
    @unittest.expectedFailure
    def test_failed_advisory_calls_do_not_pin(self):
        # A pg_try_advisory_lock that returns false, and a pg_advisory_unlock
        # of a lock the session does not hold, leave no state behind.
        a = self.client("A")
        a.q("SELECT pg_advisory_lock(4242)")
        d1 = self.client("D1")
        self.assertIs(d1.one("SELECT pg_try_advisory_lock(4242)"), False)
        a.q("DISCARD ALL")
        with self.subTest("pg_try_advisory_lock returned false"):
            self.assert_unpinned(d1, "D1's pg_try_advisory_lock that returned false")
        d1.close()
        d2 = self.client("D2")
        self.assertIs(d2.one("SELECT pg_advisory_unlock(4242)"), False)
        with self.subTest("pg_advisory_unlock of a lock not held"):
            self.assert_unpinned(d2, "D2's pg_advisory_unlock of a lock it did not hold")

    def test_temp_table(self):
        a = self.client("A")
        a.q("CREATE TEMP TABLE a_tmp (x int)")
        pid_a = a.pid()
        a.q("INSERT INTO a_tmp VALUES (1), (2), (3)")

        def check_a():
            self.assertEqual(a.one("SELECT count(*) FROM a_tmp"), 3)
        self.interleave(a, pid_a, check_a)
        with self.assertRaises(psycopg2.errors.UndefinedTable):
            self.b.q("SELECT * FROM a_tmp")
        self.assert_pinned(a, pid_a)

        a.q("DISCARD ALL")
        self.assertIsNone(a.one("SELECT to_regclass('a_tmp')"))
        self.assert_unpinned(a, "DISCARD ALL")
        self.assert_pristine(a)

    def test_with_hold_cursor(self):
        a = self.client("A")
        a.q("DECLARE c_hold CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 100) g")
        pid_a = a.pid()
        fetched = []

        def check_a():
            fetched.extend(r[0] for r in a.q("FETCH 2 FROM c_hold"))
        self.interleave(a, pid_a, check_a, rounds=10)
        self.assertEqual(fetched, list(range(1, 21)))
        with self.assertRaises(psycopg2.errors.InvalidCursorName):
            self.b.q("FETCH 1 FROM c_hold")
        self.assert_pinned(a, pid_a)

        a.q("CLOSE ALL")
        self.assert_unpinned(a, "CLOSE ALL")
        self.assert_pristine(a)

    def test_sql_prepare(self):
        # A statement PREPAREd with SQL lives in the backend's session (unlike
        # protocol-level ones, which tidepool carries over itself).
        a = self.client("A")
        a.q("PREPARE a_stmt (int) AS SELECT $1 * 10")
        pid_a = a.pid()
        self.interleave(a, pid_a, lambda: self.assertEqual(a.one("EXECUTE a_stmt (4)"), 40), rounds=5)
        with self.assertRaises(psycopg2.errors.InvalidSqlStatementName):
            self.b.q("EXECUTE a_stmt (1)")
        self.assertEqual(self.c.q("SELECT name FROM pg_prepared_statements WHERE name = 'a_stmt'"), [])
        self.assert_pinned(a, pid_a)
        a.q("DEALLOCATE ALL")
        self.assert_unpinned(a, "DEALLOCATE ALL")
        self.assert_pristine(a)

    def test_protocol_prepared_statements_across_a_pin(self):
        # psycopg 3 preparing everything: its statements keep working while
        # it is pinned, and after, on whichever backend serves it.
        with contextlib.closing(psycopg.connect(self.tp.conninfo(POOL), autocommit=True, connect_timeout=10,
                                                prepare_threshold=0)) as a:
            def run(k):
                self.assertEqual(a.execute("SELECT %s::int + 1", (k,)).fetchone()[0], k + 1)
                self.assertEqual(a.execute("SELECT %s::text || 'x'", (str(k),)).fetchone()[0], f"{k}x")
                return a.execute("SELECT pg_backend_pid()").fetchone()[0]

            before = {run(k) for k in range(10)}
            # (Unprepared: test_session_set_as_a_prepared_statement is about that.)
            a.execute("SET search_path TO a_schema, public", prepare=False)
            pid_a = run(10)
            self.assertEqual({run(k) for k in range(11, 20)}, {pid_a}, "changed backend while pinned")
            self.assertEqual(a.execute("SELECT x FROM only_a WHERE x = %s", ("A",)).fetchone()[0], "A")
            self.assert_pristine(self.b)
            a.execute("RESET ALL")
            self.assert_unpinned(self.b, "RESET ALL")  # (B and C take both backends: A is not pinned)
            after = set()
            for k in range(20, 60):
                after.add(run(k))
                # B takes a backend now and then, so A moves.
                if k % 3 == 0:
                    self.b.q("BEGIN")
                    self.b.pid()
                    after.add(run(k))
                    self.b.q("ROLLBACK")
            self.assertEqual(len(before | after | {pid_a}), POOL_SIZE)
            self.assertEqual(len(after), POOL_SIZE, "A did not move between backends after RESET ALL")

    def test_several_kinds_of_state(self):
        # A pin lasts while any of the client's state does: RESET ALL ends the
        # SET, not the rest; asyncpg's reset on releasing a connection (one
        # simple query) ends them all.
        a = self.client("A")
        a.q("SET search_path TO a_schema, public")
        a.q("SET work_mem = '7MB'")
        a.q("LISTEN chan_several")
        pid_a = a.pid()
        a.q("SELECT pg_advisory_lock(5)")
        a.q("DECLARE c_hold CURSOR WITH HOLD FOR SELECT 1")
        a.q("RESET ALL")
        self.assertEqual(a.one("SHOW search_path"), self.pristine[0])
        self.assertEqual(a.one("SHOW work_mem"), self.pristine[1])
        self.assert_pinned(a, pid_a)
        a.q("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
        self.assert_unpinned(a, "asyncpg's reset query")
        self.assert_pristine(a)

    def test_pinned_client_leaves(self):
        a = self.client("A")
        a.q("SET search_path TO a_schema, public")
        pid_a = a.pid()
        a.q("SET work_mem = '7MB'")
        a.q("SET TimeZone TO 'Asia/Tokyo'")
        a.q("LISTEN chan_gone")
        a.q("SELECT pg_advisory_lock(77)")
        a.q("CREATE TEMP TABLE a_tmp (x int)")
        a.q("DECLARE c_hold CURSOR WITH HOLD FOR SELECT 1")
        self.assert_pinned(a, pid_a)
        a.close()

        # Its backend comes back (reset, or closed and replaced).
        h.wait_until(lambda: not self.direct("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"),
                     timeout=5, message="A's advisory lock released")
        self.assert_two_backends_free("A left")
        # Both backends, each checked inside a transaction that holds it.
        self.b.q("BEGIN")
        self.c.q("BEGIN")
        try:
            self.assertNotEqual(self.b.pid(), self.c.pid())
            self.assert_pristine(self.b, "B after A left")
            self.assert_pristine(self.c, "C after A left")
        finally:
            self.b.q("ROLLBACK")
            self.c.q("ROLLBACK")
        self.assertEqual(self.direct("SELECT count(*) FROM pg_class WHERE relname = 'a_tmp'"), [(0,)])

    # set_config(..., true) is transaction-local but tidepool's SQL scan counts every
    # set_config() as a session SET and pins (conservative; nothing leaks). Known gap.
    @unittest.expectedFailure
    def test_transaction_scoped_state_does_not_pin(self):
        # State that ends with its transaction can follow nobody: no pin.
        # (A new client for each case.)
        cases = [
            ("SET LOCAL", ["SET LOCAL search_path TO a_schema", "SET LOCAL work_mem = '9MB'",
                           "SELECT x FROM only_a"]),
            ("pg_advisory_xact_lock", ["SELECT pg_advisory_xact_lock(91)"]),
            ("ON COMMIT DROP", ["CREATE TEMP TABLE t_drop (x int) ON COMMIT DROP", "INSERT INTO t_drop VALUES (1)"]),
            ("cursor without hold", ["DECLARE c_nohold CURSOR FOR SELECT 1", "FETCH 1 FROM c_nohold"]),
            ("set_config(..., true)", ["SELECT set_config('search_path', 'a_schema', true)"]),
        ]
        for what, statements in cases:
            with self.subTest(what):
                a = self.client(f"A ({what})")
                try:
                    a.q("BEGIN")
                    for sql in statements:
                        a.q(sql)
                    a.q("COMMIT")
                    self.assert_unpinned(a, f"a transaction with {what}")
                    self.assert_pristine(a)
                finally:
                    a.close()


if __name__ == "__main__":
    h.main()
