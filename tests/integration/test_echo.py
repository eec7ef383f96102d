#!/usr/bin/python3
"""echo (SPEC §3.2): `true` logs every statement with its pool, client,
duration and command tag; `debug` also its parameters. In both pool modes:

- psycopg 3 with prepare_threshold=0 (named statements prepared once, run
  again by name) alternating two statements: each line has the text of the
  statement that ran, not of the last one parsed;
- a psycopg 3 pipeline of several statements: each logged with its own text;
  an error in the middle is logged as ERROR with its SQLSTATE for that
  statement, and the statements the server skipped after it are not logged;
- echo = debug logs the parameters (text quoted, NULL, binary as its size);
  echo = true does not;
- the protocol's corners, over a raw connection: named portals, a statement
  closed and parsed again under its name before the first run completed,
  PortalSuspended, an empty query, COPY FROM STDIN over the extended
  protocol (the server ignores the Sync sent after its Execute), a Bind of
  an unknown statement and a Bind with a huge parameter count;
- a multi-statement simple query logs each statement's tag with its text.
"""

import contextlib
import itertools
import os
import re
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg  # noqa: E402

pg = None
tp = None

# An echo line: pool, client, user, statement, tag (or ERROR sqlstate), duration, parameters.
LINE = re.compile(r"echo pool=(\S+) client=(\d+) user=(\S+): (.*) \[([^\[\]]*), (\d+\.\d{3}) ms\]"
                  r"(?: parameters: (\(.*\)))?$")

_counter = itertools.count(1)


def marker(word):
    """A token unique to one test run, for its statements' text."""
    return f"{word}_{os.getpid()}_{next(_counter)}x"  # x: no marker is the start of another


def setUpModule():
    global pg, tp
    pg = h.Cluster().start()
    try:
        pg.execute("CREATE TABLE echo_copy (id int)", dbname="inventorydb")
        pg.execute(f"ALTER TABLE echo_copy OWNER TO {h.APP_USER}", dbname="inventorydb")
        url = pg.url("inventorydb")
        pools = {}
        for mode in ("transaction", "session"):
            for echo in (True, "debug"):
                name = f"{'debug' if echo == 'debug' else 'echo'}_{mode}"
                pools[name] = {"url": url, "pool_mode": mode, "pool_size": 2, "max_overflow": 0,
                               "pool_timeout": 20, "echo": echo}
        tp = h.Tidepool(pg, pools=pools, settings={"log_level": "info"}).start()
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


def echo_lines(needle):
    """The echo lines whose statement contains needle, parsed, in order."""
    out = []
    for line in tp.log_text().splitlines():
        m = LINE.search(line)
        if m and needle in m.group(4):
            out.append({"pool": m.group(1), "client": int(m.group(2)), "user": m.group(3),
                        "sql": m.group(4), "tag": m.group(5), "ms": float(m.group(6)),
                        "params": m.group(7), "line": line})
    return out


def wait_lines(needle, count, timeout=5.0):
    """At least count echo lines for needle (waiting for them), all of them."""
    h.wait_until(lambda: len(echo_lines(needle)) >= count, timeout,
                 message=f"{count} echo lines with {needle!r}: {echo_lines(needle)}")
    return echo_lines(needle)


class EchoTests:
    mode = None  # set by the concrete classes below

    def pool(self, debug=False):
        return f"{'debug' if debug else 'echo'}_{self.mode}"

    def psycopg(self, debug=False, prepare_threshold=None):
        return psycopg.connect(tp.conninfo(dbname=self.pool(debug)), autocommit=True,
                               prepare_threshold=prepare_threshold, connect_timeout=10)

    def raw(self, debug=False):
        return contextlib.closing(tp.raw(dbname=self.pool(debug)))

    def only_line(self, needle):
        lines = wait_lines(needle, 1)
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    # -- named statements run by name --

    def test_named_statements_alternating(self):
        a, b = marker("alt_a"), marker("alt_b")
        qa = f"SELECT n AS {a} FROM generate_series(1, %s) n"
        qb = f"SELECT %s::text AS {b}"
        with self.psycopg(prepare_threshold=0) as conn:
            for i in range(4):
                self.assertEqual(len(conn.execute(qa, (2,)).fetchall()), 2)
                self.assertEqual(conn.execute(qb, (f"v{i}",)).fetchone(), (f"v{i}",))
        lines_a, lines_b = wait_lines(a, 4), wait_lines(b, 4)
        self.assertEqual(len(lines_a), 4, lines_a)
        self.assertEqual(len(lines_b), 4, lines_b)
        for line in lines_a:
            self.assertEqual(line["tag"], "SELECT 2", line["line"])
            self.assertIn("generate_series(1, $1)", line["sql"])
            self.assertNotIn(b, line["sql"])
            self.assertEqual(line["pool"], self.pool())
            self.assertEqual(line["user"], h.APP_USER)
            self.assertIsNone(line["params"])  # echo = true: no parameters
        for line in lines_b:
            self.assertEqual(line["tag"], "SELECT 1", line["line"])
            self.assertEqual(line["sql"], f"SELECT $1::text AS {b}")
        # In the order they ran.
        ran = [("a" if a in l["sql"] else "b") for l in echo_lines(f"_{os.getpid()}_")
               if a in l["sql"] or b in l["sql"]]
        self.assertEqual(ran, ["a", "b"] * 4)

    # -- pipelines --

    def run_pipeline(self, prepare_threshold):
        m = marker("pipe")
        queries = [f"SELECT 1 AS {m}_one", f"SELECT n AS {m}_two FROM generate_series(1, 2) n",
                   f"SELECT n AS {m}_three FROM generate_series(1, 3) n"]
        with self.psycopg(prepare_threshold=prepare_threshold) as conn:
            for _ in range(2):  # a second time: the named statements are reused
                with conn.pipeline():
                    curs = [conn.execute(q) for q in queries]
                self.assertEqual([len(c.fetchall()) for c in curs], [1, 2, 3])
        for word, rows in (("one", 1), ("two", 2), ("three", 3)):
            lines = wait_lines(f"{m}_{word}", 2)
            self.assertEqual(len(lines), 2, lines)
            for line in lines:
                self.assertEqual(line["tag"], f"SELECT {rows}", line["line"])

    def test_pipeline_unnamed(self):
        self.run_pipeline(None)

    def test_pipeline_named(self):
        self.run_pipeline(0)

    def test_pipeline_error_in_the_middle(self):
        for prepare_threshold in (None, 0):
            m = marker("perr")
            with self.psycopg(prepare_threshold=prepare_threshold) as conn:
                with self.assertRaises(psycopg.errors.UndefinedTable):
                    with conn.pipeline():
                        conn.execute(f"SELECT 1 AS {m}_before")
                        conn.execute(f"SELECT * FROM {m}_missing")
                        conn.execute(f"SELECT 1 AS {m}_skipped")
                self.assertEqual(conn.execute(f"SELECT 1 AS {m}_after").fetchone(), (1,))
            self.assertEqual(self.only_line(f"{m}_before")["tag"], "SELECT 1")
            err = self.only_line(f"{m}_missing")
            self.assertEqual(err["tag"], "ERROR 42P01", err["line"])
            self.assertEqual(err["sql"], f"SELECT * FROM {m}_missing")
            self.assertEqual(self.only_line(f"{m}_after")["tag"], "SELECT 1")
            self.assertEqual(echo_lines(f"{m}_skipped"), [])

    def test_error_of_a_named_statement(self):
        # Prepared alone (Parse + Sync), failing at its Parse.
        m = marker("nerr")
        with self.psycopg(prepare_threshold=0) as conn:
            with self.assertRaises(psycopg.errors.UndefinedTable):
                conn.execute(f"SELECT * FROM {m}_missing WHERE 1 = %s", (1,))
            self.assertEqual(conn.execute(f"SELECT %s::int AS {m}_after", (5,)).fetchone(), (5,))
        err = self.only_line(f"{m}_missing")
        self.assertEqual(err["tag"], "ERROR 42P01", err["line"])
        self.assertEqual(err["sql"], f"SELECT * FROM {m}_missing WHERE 1 = $1")
        self.assertEqual(self.only_line(f"{m}_after")["tag"], "SELECT 1")

    # -- parameters --

    def test_debug_logs_parameters(self):
        m = marker("dbg")
        # psycopg 3 sends an int in binary unless told %t (text).
        sql = f"SELECT %s::text AS {m}, %s::text, %t::int, %b::int"
        for debug in (True, False):
            with self.psycopg(debug=debug) as conn:
                self.assertEqual(conn.execute(sql, ("it's", None, 42, 7)).fetchone(), ("it's", None, 42, 7))
        lines = wait_lines(m, 2)
        self.assertEqual(len(lines), 2, lines)
        by_pool = {l["pool"]: l for l in lines}
        debug_line, plain_line = by_pool[self.pool(True)], by_pool[self.pool(False)]
        self.assertEqual(debug_line["tag"], "SELECT 1")
        self.assertRegex(debug_line["params"], r"^\('it\\'s', NULL, '42', <binary 2 bytes>\)$",
                         debug_line["line"])
        self.assertIsNone(plain_line["params"], plain_line["line"])
        self.assertNotIn("parameters:", plain_line["line"])

    def test_debug_long_and_quoted_values(self):
        m = marker("dbglong")
        long_value = "x" * 300
        with self.psycopg(debug=True, prepare_threshold=0) as conn:
            for _ in range(2):
                conn.execute(f"SELECT length(%s::text) AS {m}, %s::text", (long_value, "a'b\nc")).fetchone()
        lines = wait_lines(m, 2)
        for line in lines:
            self.assertEqual(line["params"], "('" + "x" * 200 + "'..., 'a\\'b\\nc')", line["line"])
        # Simple queries have no parameters: nothing is added.
        with contextlib.closing(tp.connect(dbname=self.pool(True), autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT 'plain' AS {m}_simple")
        self.assertIsNone(self.only_line(f"{m}_simple")["params"])

    # -- the protocol's corners, by hand --

    def test_named_portals(self):
        m = marker("portal")
        with self.raw(debug=True) as c:
            c.parse("s1", f"SELECT $1::text AS {m}_first")
            c.parse("s2", f"SELECT n AS {m}_second FROM generate_series(1, 2) n")
            c.bind("p1", "s1", ("one",))
            c.bind("p2", "s2")
            c.execute("p2")
            c.execute("p1")
            c.send(b"C", b"P" + b"p1\0")  # Close portal p1
            c.execute("p1")  # gone: an error, for an unknown portal
            c.sync()
            msgs = c.read_until_ready()
            self.assertIn(b"E", [t for t, _ in msgs])
        lines = wait_lines(m, 2)
        self.assertEqual([(l["sql"], l["tag"]) for l in lines],
                         [(f"SELECT n AS {m}_second FROM generate_series(1, 2) n", "SELECT 2"),
                          (f"SELECT $1::text AS {m}_first", "SELECT 1")], lines)
        self.assertEqual(lines[1]["params"], "('one')")
        self.assertEqual(lines[0]["params"], "()")
        self.assertIn('(unknown portal "p1") [ERROR 34000', tp.log_text())

    def test_statement_closed_and_parsed_again(self):
        m = marker("again")
        with self.raw() as c:
            c.parse("s", f"SELECT 1 AS {m}_old")
            c.bind("", "s")
            c.execute()
            c.close_statement("s")
            c.parse("s", f"SELECT n AS {m}_new FROM generate_series(1, 2) n")
            c.bind("", "s")
            c.execute()
            c.sync()
            h.RawConnection.results(c.read_until_ready())
            # And run by name later, in a batch of its own.
            c.bind("", "s")
            c.execute()
            c.sync()
            h.RawConnection.results(c.read_until_ready())
        self.assertEqual(self.only_line(f"{m}_old")["tag"], "SELECT 1")
        new = wait_lines(f"{m}_new", 2)
        self.assertEqual([l["tag"] for l in new], ["SELECT 2", "SELECT 2"], new)

    def test_suspended_and_empty(self):
        m = marker("susp")
        with self.raw() as c:
            c.parse("", f"SELECT n AS {m} FROM generate_series(1, 3) n")
            c.bind("", "")
            c.execute(max_rows=2)
            c.execute(max_rows=2)
            c.parse("", f"-- {m}_empty")
            c.bind("", "")
            c.execute()
            c.sync()
            h.RawConnection.results(c.read_until_ready())
        lines = wait_lines(m, 3)
        self.assertEqual([l["tag"] for l in lines if l["sql"].startswith("SELECT")], ["SUSPENDED", "SELECT 1"])
        self.assertEqual(self.only_line(f"{m}_empty")["tag"], "EMPTY")

    def test_copy_over_the_extended_protocol(self):
        m = marker("copy")
        with self.raw() as c:
            c.parse("", f"COPY echo_copy FROM STDIN -- {m}")
            c.bind("", "")
            c.execute()
            c.sync()  # ignored by the server during COPY FROM STDIN
            while c.read_message()[0] != b"G":
                pass
            c.send(b"d", b"1\n2\n")
            c.send(b"c")
            c.sync()
            h.RawConnection.results(c.read_until_ready())
            self.assertEqual(c.prepared(f"SELECT 1 AS {m}_after").rows, [("1",)])
            self.assertEqual(c.prepared(f"SELECT 2 AS {m}_later").rows, [("2",)])
        self.assertEqual(self.only_line(f"STDIN -- {m}")["tag"], "COPY 2")
        self.assertEqual(self.only_line(f"{m}_after")["tag"], "SELECT 1")
        self.assertEqual(self.only_line(f"{m}_later")["tag"], "SELECT 1")

    def test_bad_binds(self):
        m = marker("badbind")
        with self.raw(debug=True) as c:
            # A statement nobody prepared.
            c.bind("", f"{m}_nope", ("1",))
            c.execute()
            c.sync()
            with self.assertRaises(h.PgError) as cm:
                h.RawConnection.results(c.read_until_ready())
            self.assertEqual(cm.exception.sqlstate, "26000")
            # 65535 parameters announced, none sent: PostgreSQL refuses it.
            c.parse("", f"SELECT 1 AS {m}_huge")
            c.send(b"B", b"\0\0" + struct.pack("!hH", 0, 65535))
            c.execute()
            c.sync()
            with self.assertRaises(h.PgError) as cm:
                h.RawConnection.results(c.read_until_ready())
            self.assertEqual(cm.exception.sqlstate, "08P01")
            # The connection and its echo go on.
            self.assertEqual(c.prepared(f"SELECT 1 AS {m}_after").rows, [("1",)])
        text = tp.log_text()
        self.assertIn(f'(unknown statement "{m}_nope") [ERROR 26000', text)
        self.assertEqual(self.only_line(f"{m}_after")["tag"], "SELECT 1")
        self.assertEqual(self.only_line(f"{m}_after")["params"], "()")

    def test_forgotten_names(self):
        # Close, DEALLOCATE name and DEALLOCATE ALL forget a name: running it
        # afterwards is PostgreSQL's error 26000, logged as unknown.
        m = marker("forget")
        ways = [("close", lambda c, name: (c.close_statement(name), c.sync(), c.read_until_ready())),
                ("dealloc", lambda c, name: c.query(f"DEALLOCATE {name}")),
                ("all", lambda c, name: c.query("DEALLOCATE ALL"))]
        with self.raw() as c:
            for way, forget in ways:
                name = f"{m}_{way}"
                c.parse(name, f"SELECT 1 AS {name}_text")
                c.bind("", name)
                c.execute()
                c.sync()
                h.RawConnection.results(c.read_until_ready())
                forget(c, name)
                c.bind("", name)
                c.execute()
                c.sync()
                with self.assertRaises(h.PgError) as cm:
                    h.RawConnection.results(c.read_until_ready())
                self.assertEqual(cm.exception.sqlstate, "26000")
                self.assertEqual(self.only_line(f"{name}_text")["tag"], "SELECT 1")
                h.wait_for_log(tp, f'(unknown statement "{name}") [ERROR 26000')

    def test_bounded_names(self):
        # Session mode keeps the texts of ECHO_MAX_STATEMENTS (256) named
        # statements, and 16 named portals: older ones still run, logged as
        # unknown. (Transaction mode reads prepared.c's list of them.)
        m = marker("bound")
        with self.raw() as c:
            for i in range(300):
                c.parse(f"s{i}", f"SELECT {i} AS {m}_{i}")
            c.sync()
            h.RawConnection.results(c.read_until_ready())
            for i in (0, 299):
                c.bind("", f"s{i}")
                c.execute()
            c.sync()
            self.assertEqual([r.rows for r in h.RawConnection.results(c.read_until_ready())], [[("0",)], [("299",)]])
            c.query("BEGIN")
            for i in range(20):
                c.bind(f"p{i}", "s299")
            c.execute("p0")
            c.execute("p19")
            c.sync()
            self.assertEqual([r.rows for r in h.RawConnection.results(c.read_until_ready())],
                             [[("299",)], [("299",)]])
            c.query("COMMIT")
        if self.mode == "session":
            h.wait_for_log(tp, '(unknown statement "s0") [SELECT 1')
            self.assertEqual(echo_lines(f"{m}_0"), [])
        else:
            self.assertEqual([l["tag"] for l in echo_lines(f"AS {m}_0")], ["SELECT 1"])
        h.wait_for_log(tp, '(unknown portal "p0") [SELECT 1')
        self.assertEqual([l["tag"] for l in wait_lines(f"AS {m}_299", 2)], ["SELECT 1"] * 2)  # s299, p19

    def test_multi_statement_query(self):
        m = marker("multi")
        with contextlib.closing(tp.connect(dbname=self.pool(), autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT 1 AS {m}_a; SELECT n AS {m}_b FROM generate_series(1, 2) n")
            with self.assertRaises(Exception):
                cur.execute(f"SELECT 1 AS {m}_c; SELECT * FROM {m}_missing; SELECT 2 AS {m}_d")
        lines = wait_lines(f"{m}_a", 2)
        self.assertEqual([l["tag"] for l in lines], ["SELECT 1", "SELECT 2"])
        lines = wait_lines(f"{m}_c", 2)
        self.assertEqual([l["tag"] for l in lines], ["SELECT 1", "ERROR 42P01"])


class TransactionModeEcho(EchoTests, unittest.TestCase):
    mode = "transaction"


class SessionModeEcho(EchoTests, unittest.TestCase):
    mode = "session"


if __name__ == "__main__":
    h.main()
