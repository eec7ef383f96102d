#!/usr/bin/python3
"""Transaction mode: what must follow a client from backend to backend, and
the protocol features that have to survive being relayed (SPEC §4 "Session
parameters", "Prepared statements", §3.2 echo).

Pools with pool_size=1 or 2 and several clients taking turns, so backends are
shared:
- startup parameters (TimeZone, application_name, search_path, work_mem ...)
  and the ParameterStatus values a client was sent are its own in every
  transaction, whoever used the backend before;
- COPY FROM STDIN / TO STDOUT (psql \\copy, psycopg2 copy_expert, psycopg 3,
  asyncpg; over the extended protocol the server ignores the Syncs sent
  during COPY FROM STDIN, and the backend must still go back to the pool);
- multi-statement simple queries, an error inside a transaction, ROLLBACK;
- psycopg 3 pipeline mode;
- asyncpg (named prepared statements) with several concurrent connections;
- echo = true logs each statement with its pool name.
"""

import asyncio
import contextlib
import hashlib
import io
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import asyncpg  # noqa: E402
import psycopg  # noqa: E402
import psycopg2  # noqa: E402

pg = None
tp = None
SERVER_TZ = None


def setUpModule():
    global pg, tp, SERVER_TZ
    pg = h.Cluster().start()
    try:
        pg.execute("CREATE TABLE copytest (id int, label text)", dbname="inventorydb")
        pg.execute("CREATE TABLE pipe (id int, label text)", dbname="inventorydb")
        for t in ("copytest", "pipe"):
            pg.execute(f"ALTER TABLE {t} OWNER TO {h.APP_USER}", dbname="inventorydb")
        SERVER_TZ = pg.execute("SHOW TimeZone", dbname="inventorydb")[0][0]
        url = pg.url("inventorydb")
        tp = h.Tidepool(pg, pools={
            # One backend for everyone: consecutive clients share it for sure.
            "single": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 20},
            # Two backends, several clients.
            "shared": {"url": url, "pool_size": 2, "max_overflow": 0, "pool_timeout": 20},
            "echoed": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 20, "echo": True},
            # One backend and a short wait: a backend left stuck shows fast.
            "copyone": {"url": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 3},
        }, settings={"log_level": "info"}).start()
    except BaseException:
        pg.stop()
        raise


def tearDownModule():
    try:
        if tp is not None:
            tp.stop()
            tp.check()
    finally:
        if pg is not None:
            pg.stop()


PROBE = ("SELECT pg_backend_pid(), current_setting('TimeZone'), current_setting('application_name'),"
         " current_setting('search_path'), current_setting('work_mem')")


class Client:
    """A psycopg2 client through tidepool with its own startup parameters;
    expected: what PROBE must show it (besides the pid)."""

    def __init__(self, pool, application_name, timezone=None, search_path=None, work_mem=None):
        opts = []
        if timezone:
            opts.append(f"-c TimeZone={timezone}")
        if search_path:
            opts.append(f"-c search_path={search_path}")
        if work_mem:
            opts.append(f"-c work_mem={work_mem}")
        kw = {"application_name": application_name}
        if opts:
            kw["options"] = " ".join(opts)
        self.conn = tp.connect(dbname=pool, autocommit=True, **kw)
        self.expected = (timezone or SERVER_TZ, application_name,
                         search_path or DEFAULTS["search_path"], work_mem or DEFAULTS["work_mem"])
        self.pids = set()

    def probe(self, in_transaction=False):
        with self.conn.cursor() as cur:
            if in_transaction:
                cur.execute("BEGIN")
            cur.execute(PROBE)
            pid, *values = cur.fetchone()
            if in_transaction:
                cur.execute("COMMIT")
        self.pids.add(pid)
        return pid, tuple(values)

    def reported(self):
        """The ParameterStatus values libpq holds for this client."""
        return (self.conn.get_parameter_status("TimeZone"),
                self.conn.get_parameter_status("application_name"))

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.close()


DEFAULTS = {}


class SessionParameters(h.TestCase):
    @classmethod
    def setUpClass(cls):
        row = pg.execute("SELECT current_setting('search_path'), current_setting('work_mem')",
                         dbname="inventorydb")[0]
        DEFAULTS.update(search_path=row[0], work_mem=row[1])

    def test_parameters_follow_clients_on_one_backend(self):
        clients = [
            Client("single", "x", timezone="UTC"),
            Client("single", "y", timezone="Asia/Tokyo", search_path="pg_catalog,public", work_mem="7MB"),
            Client("single", "z"),
            Client("single", "w", timezone="America/New_York", work_mem="3MB"),
        ]
        try:
            pids = set()
            for round_ in range(5):
                for c in clients:
                    pid, values = c.probe(in_transaction=round_ % 2 == 1)
                    pids.add(pid)
                    self.assertEqual(values, c.expected, f"client {c.expected[1]}, round {round_}")
                    self.assertEqual(c.reported(), c.expected[:2])
            self.assertEqual(len(pids), 1, "pool_size=1 used several backends")
        finally:
            for c in clients:
                c.close()

    def test_parameters_follow_clients_across_two_backends(self):
        # Four clients, two backends, interleaving from threads.
        specs = [("tz_utc", "UTC", None, None), ("tz_tokyo", "Asia/Tokyo", "pg_catalog", "5MB"),
                 ("tz_default", None, None, None), ("tz_berlin", "Europe/Berlin", None, "9MB")]
        clients = [Client("shared", app, timezone=tz, search_path=sp, work_mem=wm) for app, tz, sp, wm in specs]
        backend_clients = {}
        lock = threading.Lock()

        def work(c):
            bad = []
            for i in range(25):
                pid, values = c.probe(in_transaction=i % 3 == 0)
                with lock:
                    backend_clients.setdefault(pid, set()).add(c.expected[1])
                if values != c.expected:
                    bad.append((i, values))
                if c.reported() != c.expected[:2]:
                    bad.append((i, "reported", c.reported()))
            return bad

        try:
            outcomes = h.run_threads(work, [(c,) for c in clients], timeout=60)
            for c, (bad, err) in zip(clients, outcomes):
                self.assertIsNone(err, repr(err))
                self.assertEqual(bad, [], f"client {c.expected[1]} saw another's settings")
            self.assertLessEqual(len(backend_clients), 2)
            self.assertTrue(any(len(v) > 1 for v in backend_clients.values()),
                            f"no backend was shared: {backend_clients}")
        finally:
            for c in clients:
                c.close()

    def test_set_application_name_follows_the_client(self):
        x = Client("single", "x", timezone="UTC")
        y = Client("single", "y", timezone="Asia/Tokyo")
        try:
            with x.conn.cursor() as cur:
                cur.execute("SET application_name = 'renamed'")
            self.assertEqual(x.reported()[1], "renamed")
            self.assertEqual(y.probe()[1][:2], ("Asia/Tokyo", "y"))
            self.assertEqual(x.probe()[1][:2], ("UTC", "renamed"))
            self.assertEqual(x.reported(), ("UTC", "renamed"))
            self.assertEqual(y.probe()[1][:2], ("Asia/Tokyo", "y"))
            self.assertEqual(y.reported(), ("Asia/Tokyo", "y"))
        finally:
            x.close()
            y.close()

    def test_reset_all_goes_back_to_startup_values(self):
        # PostgreSQL: startup options are the session's reset values, so RESET
        # ALL returns to them. Checked against PostgreSQL itself first.
        opts = "-c work_mem=7MB -c TimeZone=UTC"
        with contextlib.closing(pg.connect("inventorydb", options=opts)) as direct, direct.cursor() as cur:
            cur.execute("SET work_mem = '1MB'; SET TimeZone = 'Asia/Tokyo'; RESET ALL")
            cur.execute("SELECT current_setting('work_mem'), current_setting('TimeZone')")
            expected = cur.fetchone()
        self.assertEqual(expected, ("7MB", "UTC"))
        a = Client("single", "a", timezone="UTC", work_mem="7MB")
        try:
            with a.conn.cursor() as cur:
                cur.execute("RESET ALL")
                cur.execute("SELECT current_setting('work_mem'), current_setting('TimeZone')")
                self.assertEqual(cur.fetchone(), expected, "RESET ALL lost the client's startup values")
        finally:
            a.close()

    def test_reset_all_does_not_confuse_the_next_client(self):
        # A client's RESET ALL must not leave tidepool believing the backend
        # still has that client's settings: the next client with the same
        # startup options must see them.
        a = Client("single", "a", timezone="UTC", work_mem="7MB", search_path="pg_catalog")
        b = Client("single", "b", timezone="UTC", work_mem="7MB", search_path="pg_catalog")
        try:
            self.assertEqual(a.probe()[1], a.expected)
            with a.conn.cursor() as cur:
                cur.execute("RESET ALL")
            pid_b, values_b = b.probe()
            self.assertEqual(a.pids, {pid_b})
            self.assertEqual(values_b, b.expected, "the next client did not get its startup parameters")
        finally:
            a.close()
            b.close()


class CopyTests(h.TestCase):
    def setUp(self):
        pg.execute("TRUNCATE copytest", dbname="inventorydb")

    def test_psql_copy_in_and_out(self):
        n = 20000
        data = "".join(f"{i}\tlabel {i}\n" for i in range(n))
        r = h.run_psql(tp.conninfo(dbname="single"), "\\copy copytest FROM pstdin", stdin=data)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(pg.execute("SELECT count(*), sum(id) FROM copytest", dbname="inventorydb")[0],
                         (n, n * (n - 1) // 2))
        out = h.run_psql(tp.conninfo(dbname="single"), "\\copy (SELECT * FROM copytest ORDER BY id) TO pstdout")
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(out.stdout, data)
        # COPY TO STDOUT through psql -c (server-side COPY statement).
        out = h.run_psql(tp.conninfo(dbname="shared"), "COPY (SELECT id FROM copytest WHERE id < 3 ORDER BY id) TO STDOUT")
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(out.stdout, "0\n1\n2\n")
        # The backend went back to the pool in a usable state.
        r = tp.psql("SELECT count(*) FROM copytest", dbname="single")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, str(n)), r)

    def test_psycopg2_copy_in_transaction_and_error(self):
        with contextlib.closing(tp.connect(dbname="shared", autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.copy_expert("COPY copytest FROM STDIN", io.StringIO("1\tone\n2\ttwo\n"))
            cur.execute("SELECT count(*) FROM copytest")
            self.assertEqual(cur.fetchone()[0], 2)
            cur.execute("COMMIT")
            out = io.StringIO()
            cur.copy_expert("COPY (SELECT * FROM copytest ORDER BY id) TO STDOUT", out)
            self.assertEqual(out.getvalue(), "1\tone\n2\ttwo\n")
            # Bad data: the COPY fails with 22P02, the connection carries on.
            with self.assertRaises(psycopg2.Error) as cm:
                cur.copy_expert("COPY copytest FROM STDIN", io.StringIO("3\tthree\nnot-a-number\tx\n"))
            self.assertEqual(cm.exception.pgcode, "22P02")
            cur.execute("SELECT count(*) FROM copytest")
            self.assertEqual(cur.fetchone()[0], 2)

    def test_copy_interleaved_with_other_clients(self):
        # While one client streams COPY inside a transaction on the single
        # backend, another one waits; then it gets the backend, clean.
        with contextlib.closing(tp.connect(dbname="single", autocommit=True)) as a, \
                contextlib.closing(tp.connect(dbname="single", autocommit=True)) as b:
            with a.cursor() as cur:
                cur.execute("BEGIN")
                cur.copy_expert("COPY copytest FROM STDIN", io.StringIO("".join(f"{i}\tx\n" for i in range(1000))))
            result = {}

            def other():
                with b.cursor() as cur:
                    cur.execute("SELECT count(*) FROM copytest")
                    result["count"] = cur.fetchone()[0]
            th = threading.Thread(target=other, daemon=True)
            th.start()
            time.sleep(0.3)
            self.assertTrue(th.is_alive(), "b was served while a held the only backend in a transaction")
            with a.cursor() as cur:
                cur.execute("COMMIT")
            th.join(10)
            self.assertEqual(result.get("count"), 1000)


    def assert_backend_free(self, expected_count):
        """Another client gets the only backend of pool copyone within its
        pool_timeout (3 s), while the first one stays connected."""
        with contextlib.closing(tp.connect(dbname="copyone", autocommit=True)) as other, other.cursor() as cur:
            cur.execute("SELECT count(*) FROM copytest")
            self.assertEqual(cur.fetchone()[0], expected_count)

    def test_extended_protocol_copy_gives_the_backend_back(self):
        # libpq PQsendQueryParams: Parse/Bind/Describe/Execute/Sync, then
        # CopyData, CopyDone and a second Sync; the first Sync is ignored.
        with psycopg.connect(tp.conninfo(dbname="copyone"), autocommit=True) as conn:
            pgc = conn.pgconn
            pgc.send_query_params(b"COPY copytest FROM STDIN", None)
            res = pgc.get_result()
            self.assertEqual(res.status, psycopg.pq.ExecStatus.COPY_IN)
            self.assertEqual(pgc.put_copy_data(b"1\tone\n2\ttwo\n"), 1)
            self.assertEqual(pgc.put_copy_end(), 1)
            res = pgc.get_result()
            self.assertEqual((res.status, res.command_status), (psycopg.pq.ExecStatus.COMMAND_OK, b"COPY 2"))
            self.assertIsNone(pgc.get_result())
            self.assert_backend_free(2)
            # Bad data: the error, then the connection and the pool carry on.
            pgc.send_query_params(b"COPY copytest FROM STDIN", None)
            self.assertEqual(pgc.get_result().status, psycopg.pq.ExecStatus.COPY_IN)
            pgc.put_copy_data(b"not-a-number\tx\n")
            pgc.put_copy_end()
            res = pgc.get_result()
            self.assertEqual(res.error_field(psycopg.pq.DiagnosticField.SQLSTATE), b"22P02")
            self.assertIsNone(pgc.get_result())
            self.assert_backend_free(2)
            # COPY TO STDOUT over the extended protocol.
            pgc.send_query_params(b"COPY (SELECT id FROM copytest ORDER BY id) TO STDOUT", None)
            self.assertEqual(pgc.get_result().status, psycopg.pq.ExecStatus.COPY_OUT)
            rows = []
            while True:
                n, data = pgc.get_copy_data(0)
                if n < 0:
                    break
                rows.append(bytes(data))
            self.assertEqual(rows, [b"1\n", b"2\n"])
            self.assertEqual(pgc.get_result().status, psycopg.pq.ExecStatus.COMMAND_OK)
            self.assertIsNone(pgc.get_result())
            self.assert_backend_free(2)
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM copytest")
                self.assertEqual(cur.fetchone()[0], 2)

    def test_raw_syncs_during_copy_in(self):
        # Syncs and Flushes inside COPY FROM STDIN produce nothing; the one
        # after CopyDone gives the only ReadyForQuery.
        with tp.raw(dbname="copyone") as c:
            c.parse("", "COPY copytest FROM STDIN")
            c.bind("", "")
            c.execute()
            c.sync()
            seen = [c.read_message()[0] for _ in range(3)]
            self.assertEqual(seen, [b"1", b"2", b"G"])
            c.send(b"d", b"5\tfive\n")
            c.sync()
            c.flush()
            c.sync()
            c.send(b"d", b"6\tsix\n")
            c.send(b"c")
            c.sync()
            msgs = c.read_until_ready()
            self.assertEqual([t for t, _ in msgs], [b"C", b"Z"])
            self.assertEqual(c.status, "I")
            self.assert_backend_free(2)
            # CopyFail: an error, then the Sync's ReadyForQuery.
            c.send(b"Q", b"COPY copytest FROM STDIN\0")
            self.assertEqual(c.read_message()[0], b"G")
            c.sync()
            c.send(b"f", b"changed my mind\0")
            msgs = c.read_until_ready()
            self.assertEqual([t for t, _ in msgs], [b"E", b"Z"])
            c.sync()
            self.assertEqual([t for t, _ in c.read_until_ready()], [b"Z"])
            self.assertEqual(c.fetch("SELECT count(*) FROM copytest"), [("2",)])
            self.assert_backend_free(2)

    def test_psycopg3_and_asyncpg_copy(self):
        with psycopg.connect(tp.conninfo(dbname="copyone"), autocommit=True) as conn, conn.cursor() as cur:
            with cur.copy("COPY copytest FROM STDIN") as copy:
                copy.write_row((1, "one"))
            self.assert_backend_free(1)

        async def main():
            conn = await asyncpg.connect(host="127.0.0.1", port=tp.port, user=h.APP_USER,
                                         password=h.APP_PASSWORD, database="copyone", statement_cache_size=0)
            try:
                return await conn.copy_records_to_table("copytest", records=[(2, "two"), (3, "three")])
            finally:
                await conn.close()
        self.assertEqual(asyncio.run(main()), "COPY 2")
        self.assert_backend_free(3)


class SimpleQueryTests(h.TestCase):
    def test_multi_statement_query(self):
        with tp.raw(dbname="shared") as c:
            results = c.query("SELECT 1; SELECT 2 AS two, 'b'; SELECT 3")
            self.assertEqual([r.rows for r in results], [[("1",)], [("2", "b")], [("3",)]])
            self.assertEqual([r.tag for r in results], ["SELECT 1"] * 3)
            self.assertEqual(c.status, "I")
            results = c.query("BEGIN; CREATE TEMP TABLE IF NOT EXISTS t_multi (x int) ON COMMIT DROP;"
                              " INSERT INTO t_multi VALUES (1), (2); SELECT sum(x) FROM t_multi; COMMIT")
            self.assertEqual(results[3].rows, [("3",)])
            self.assertEqual(results[-1].tag, "COMMIT")
            self.assertEqual(c.status, "I")

    def test_error_in_multi_statement_query(self):
        with tp.raw(dbname="shared") as c:
            e = self.assertSqlstate("22012", c.query, "SELECT 1; SELECT 1/0; SELECT 3")
            self.assertEqual(e.severity, "ERROR")
            self.assertEqual(c.status, "I")
            self.assertEqual(c.fetch("SELECT 4"), [("4",)])

    def test_error_inside_transaction_then_rollback(self):
        with tp.raw(dbname="shared") as c, tp.raw(dbname="shared") as other:
            c.query("BEGIN")
            self.assertEqual(c.status, "T")
            pid = c.fetch("SELECT pg_backend_pid()")[0][0]
            self.assertSqlstate("22012", c.query, "SELECT 1/0")
            self.assertEqual(c.status, "E")
            # Others are served meanwhile (by the other backend).
            self.assertNotEqual(other.fetch("SELECT pg_backend_pid()")[0][0], pid)
            self.assertSqlstate("25P02", c.query, "SELECT 1")
            self.assertEqual(c.status, "E")
            c.query("ROLLBACK")
            self.assertEqual(c.status, "I")
            self.assertEqual(c.fetch("SELECT 'works'"), [("works",)])
            # The same with psycopg2.
        with contextlib.closing(tp.connect(dbname="shared")) as conn, conn.cursor() as cur:
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SELECT 1/0")
            self.assertEqual(cm.exception.pgcode, "22012")
            conn.rollback()
            cur.execute("SELECT 'again'")
            self.assertEqual(cur.fetchone(), ("again",))
            conn.commit()

    def test_extended_protocol_error_then_usable(self):
        with tp.raw(dbname="shared") as c:
            c.parse("", "SELECT 1/$1::int")
            c.bind("", "", ("0",))
            c.execute()
            c.sync()
            with self.assertRaises(h.PgError) as cm:
                c.results(c.read_until_ready())
            self.assertEqual(cm.exception.sqlstate, "22012")
            self.assertEqual(c.status, "I")
            self.assertEqual(c.prepared("SELECT 10/$1::int", ("5",)).rows, [("2",)])


class LargeResultTests(h.TestCase):
    """Rows of megabytes are streamed through, not buffered: each must reach
    its client whole and in order, whether the client reads fast or slowly
    (then tidepool queues what the socket does not take and stops reading
    the backend until it drains)."""

    QUERY = ("SELECT i, md5(r), r FROM (SELECT i, repeat(md5(i::text || %s), 32768) AS r"
             " FROM generate_series(1, 6) AS i) AS s ORDER BY i")  # 6 rows of 1 MiB

    def test_large_rows_reach_concurrent_clients_whole(self):
        errors = []

        def run(tag):
            try:
                with contextlib.closing(tp.connect(dbname="shared")) as conn, conn.cursor() as cur:
                    for rnd in range(3):
                        cur.execute(self.QUERY, (f"{tag}-{rnd}",))
                        rows = cur.fetchall()
                        if [r[0] for r in rows] != list(range(1, 7)):
                            errors.append((tag, "order", [r[0] for r in rows]))
                        for i, digest, value in rows:
                            if len(value) != 1 << 20 or hashlib.md5(value.encode()).hexdigest() != digest:
                                errors.append((tag, "row", i, len(value)))
                        cur.execute("SELECT %s::text", (tag,))
                        if cur.fetchone() != (tag,):
                            errors.append((tag, "small query"))
                        conn.commit()
            except Exception as e:  # reported below
                errors.append((tag, repr(e)))

        threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a client is stuck")
        self.assertEqual(errors, [])

    def test_a_slow_reader_gets_a_16_mib_row_whole(self):
        with tp.raw(dbname="shared") as slow:
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            slow.send(b"Q", b"SELECT md5(r), r FROM (SELECT repeat(md5('slow'), 524288) AS r) AS s\0")
            data = bytearray()
            while not data.endswith(b"Z\x00\x00\x00\x05I"):
                chunk = slow.sock.recv(32768)
                self.assertTrue(chunk, "tidepool closed the connection")
                data += chunk
                time.sleep(0.001)
            slow.buf = bytes(data)
            rows = slow.results(slow.read_until_ready())[-1].rows
            self.assertEqual(len(rows), 1)
            digest, value = rows[0]
            self.assertEqual(len(value), 16 << 20)
            self.assertEqual(hashlib.md5(value.encode()).hexdigest(), digest)
            self.assertEqual(slow.fetch("SELECT 'after'"), [("after",)])

    def test_others_are_served_while_a_client_reads_slowly(self):
        with tp.raw(dbname="shared") as slow, tp.raw(dbname="shared") as other:
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            slow.send(b"Q", b"SELECT repeat('s', 8388608)\0")
            first = slow.sock.recv(1024)
            self.assertTrue(first)
            # The slow client holds one backend, unread megabytes queued; the
            # other backend serves the other client at once.
            started = time.monotonic()
            self.assertEqual(other.fetch("SELECT 'quick'"), [("quick",)])
            self.assertLess(time.monotonic() - started, 2)
            data = bytearray(first)
            while not data.endswith(b"Z\x00\x00\x00\x05I"):
                chunk = slow.sock.recv(65536)
                self.assertTrue(chunk)
                data += chunk
            slow.buf = bytes(data)
            self.assertEqual(slow.results(slow.read_until_ready())[-1].rows, [("s" * 8388608,)])


class DriverTests(h.TestCase):
    def test_psycopg3_pipeline(self):
        pg.execute("TRUNCATE pipe", dbname="inventorydb")
        with psycopg.connect(tp.conninfo(dbname="shared"), autocommit=True, connect_timeout=10) as conn, \
                psycopg.connect(tp.conninfo(dbname="shared"), autocommit=True, connect_timeout=10) as other:
            for round_ in range(3):
                with conn.pipeline():
                    c1 = conn.execute("SELECT %s::int", (round_,))
                    c2 = conn.execute("SELECT %s::text || 'x'", ("two",))
                    conn.execute("INSERT INTO pipe VALUES (%s, %s)", (round_, "p"))
                    c3 = conn.execute("SELECT count(*) FROM pipe")
                self.assertEqual(c1.fetchone(), (round_,))
                self.assertEqual(c2.fetchone(), ("twox",))
                self.assertEqual(c3.fetchone(), (round_ + 1,))
                # Another client in between, on the same two backends.
                with other.pipeline():
                    o = other.execute("SELECT count(*) FROM pipe WHERE label = %s", ("p",))
                self.assertEqual(o.fetchone(), (round_ + 1,))
            # A pipeline inside a transaction.
            with conn.transaction(), conn.pipeline():
                conn.execute("INSERT INTO pipe VALUES (%s, %s)", (10, "t"))
                conn.execute("INSERT INTO pipe VALUES (%s, %s)", (11, "t"))
                c = conn.execute("SELECT count(*) FROM pipe WHERE label = 't'")
            self.assertEqual(c.fetchone(), (2,))
            # An error in a pipeline: the rest is aborted, then the connection works.
            with self.assertRaises(psycopg.Error) as cm:
                with conn.pipeline():
                    conn.execute("SELECT 1")
                    conn.execute("SELECT 1/%s::int", (0,))
                    conn.execute("SELECT 2")
            self.assertEqual(cm.exception.sqlstate, "22012")
            self.assertEqual(conn.execute("SELECT %s::int", (7,)).fetchone(), (7,))
            self.assertEqual(conn.info.transaction_status, psycopg.pq.TransactionStatus.IDLE)

    def run_asyncpg(self, n_conns=4, queries=20, **connect_kw):
        async def work(i):
            conn = await asyncpg.connect(host=tp.host, port=tp.port, user=h.APP_USER,
                                         password=h.APP_PASSWORD, database="shared", timeout=10,
                                         **connect_kw)
            try:
                for j in range(queries):
                    v = await conn.fetchval("SELECT $1::int + $2::int", i, j)
                    if v != i + j:
                        raise AssertionError(f"{i}+{j} gave {v}")
                    row = await conn.fetchrow("SELECT $1::text AS who, $2::int * 2 AS twice", f"c{i}", j)
                    if (row["who"], row["twice"]) != (f"c{i}", 2 * j):
                        raise AssertionError(f"wrong row {row}")
                async with conn.transaction():
                    v = await conn.fetchval("SELECT $1::int", i)
                    if v != i:
                        raise AssertionError(f"{v} != {i}")
                return i
            finally:
                await conn.close(timeout=5)

        async def main():
            return await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(n_conns))), timeout=60)
        return asyncio.run(main())

    # asyncpg prepares every statement under its own name (Parse + Describe,
    # then Bind/Execute + Sync later); tidepool re-prepares them on whichever
    # backend serves the client (SPEC §4).
    def test_asyncpg_concurrent_prepared(self):
        self.assertEqual(sorted(self.run_asyncpg()), [0, 1, 2, 3])

    def test_asyncpg_concurrent_without_statement_cache(self):
        # statement_cache_size=0 (what asyncpg advises behind PgBouncer):
        # unnamed statements, Parse/Describe and Bind/Execute before one Sync.
        self.assertEqual(sorted(self.run_asyncpg(statement_cache_size=0)), [0, 1, 2, 3])

    def test_echo_logs_statements(self):
        marker = "echo-marker-7391"
        with contextlib.closing(tp.connect(dbname="echoed", autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT '{marker}' AS m")
            self.assertEqual(cur.fetchone(), (marker,))
        line = h.wait_for_log(tp, lambda l: marker in l and "echo" in l)
        self.assertIn("echoed", line)
        self.assertIn(f"SELECT '{marker}' AS m", line)
        self.assertIn("SELECT 1", line)  # the command tag
        # The extended protocol: the statement text of the Parse.
        with psycopg.connect(tp.conninfo(dbname="echoed"), autocommit=True, prepare_threshold=None,
                             connect_timeout=10) as conn:
            self.assertEqual(conn.execute("SELECT %s::text AS marker2", ("v",)).fetchone(), ("v",))
        line = h.wait_for_log(tp, lambda l: "AS marker2" in l)
        self.assertIn("echoed", line)
        self.assertIn("SELECT $1::text AS marker2", line)
        # Pools without echo log no statements.
        with contextlib.closing(tp.connect(dbname="shared", autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT 'not-echoed-5512'")
        time.sleep(0.3)
        self.assertNotIn("not-echoed-5512", tp.log_text())


if __name__ == "__main__":
    h.main()
