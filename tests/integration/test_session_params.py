#!/usr/bin/python3
"""Session parameters that follow a client from backend to backend in
transaction mode (SPEC §4 "Session parameters"), and isolation_level =
READ UNCOMMITTED (SPEC §3.2, §4 "Isolation level").

Session parameters, on a pool with pool_size = 1 and max_overflow = 0, so
every client is served by the same backend in turn:
- clients that logged in with different client_encoding (UTF8, LATIN1),
  DateStyle (ISO, MDY / German, DMY), TimeZone (and none: the server's
  values) alternate transactions and single statements many times; each
  always sees its own values (SHOW client_encoding, SHOW DateStyle, SHOW
  TimeZone, a date written and read in its style, a timestamptz in its zone,
  é sent and received in its encoding), exactly what PostgreSQL itself
  gives a connection with the same startup parameters, and every
  ParameterStatus it is sent carries its own value. Over the raw protocol
  (byte for byte) and with psycopg2 (which turns a non-ISO DateStyle into
  ISO with a SET at connect: that SET has to follow it too);
- on a pool of two backends, a client's `SET DateStyle` outside a
  transaction follows it to the other backend (forced by other clients
  holding backends in open transactions), while a client that did not SET
  it sees the server's DateStyle on both backends, including the one where
  the SET ran;
- the ParameterStatus a client is sent for its startup parameters is
  PostgreSQL's spelling of the value (LATIN1 for latin1, "ISO, DMY" for
  iso,dmy ...), as a direct connection gets it (an expected failure in
  transaction mode: a bug, see the test); a client that sends no
  application_name is shown '' as by PostgreSQL (an expected failure: it is
  shown 'tidepool').

READ UNCOMMITTED, in both pool modes: `SHOW transaction_isolation` (and
default_transaction_isolation) through the pool says `read uncommitted`
for single statements and plain BEGIN on every backend, `BEGIN ISOLATION
LEVEL SERIALIZABLE` still overrides it, and a pool without the key has the
server's default (read committed). (PostgreSQL runs read uncommitted as
read committed; only what SHOW says is checked.)
"""

import contextlib
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

pg = None
tp = None

WATCHED = ("client_encoding", "DateStyle", "TimeZone", "application_name")


def setUpModule():
    global pg, tp
    pg = h.Cluster().start()
    try:
        url = pg.url("inventorydb")
        one = {"url": url, "pool_mode": "transaction", "pool_size": 1, "max_overflow": 0, "pool_timeout": 10}
        tp = h.Tidepool(pg, pools={
            "one": one,
            "two": {**one, "pool_size": 2},
            "ru_transaction": {**one, "pool_size": 2, "isolation_level": "READ UNCOMMITTED"},
            "ru_session": {**one, "pool_size": 2, "pool_mode": "session", "isolation_level": "READ UNCOMMITTED"},
            "plain_transaction": dict(one),
            "plain_session": {**one, "pool_mode": "session"},
        }, settings={"log_level": "info", "admin_users": h.APP_USER}).start()
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


# ---------------------------------------------------------------------------
# A raw client that keeps every ParameterStatus and reads rows as bytes
# ---------------------------------------------------------------------------

def _rows(msgs):
    """DataRow values as bytes (None for NULL); raises PgError for an error."""
    rows = []
    for t, body in msgs:
        if t == b"E":
            raise h.PgError(h._fields(body))
        if t == b"D":
            n = struct.unpack("!h", body[:2])[0]
            pos, row = 2, []
            for _ in range(n):
                ln = struct.unpack("!i", body[pos:pos + 4])[0]
                pos += 4
                row.append(None if ln < 0 else body[pos:pos + ln])
                pos += max(ln, 0)
            rows.append(tuple(row))
    return rows


class Raw:
    """A RawConnection (to tidepool, or straight to PostgreSQL for the
    expected values) logged in with startup parameters `params`; `encoding`
    is the Python codec of its client_encoding."""

    def __init__(self, host, port, dbname, params, encoding="utf-8"):
        self.conn = h.RawConnection.connect(host, port, user=h.APP_USER, database=dbname,
                                            password=h.APP_PASSWORD, params=params)
        self.encoding = encoding
        self.login_status = dict(self.conn.parameters)
        self.later_status = []  # (name, value) of ParameterStatus after login

    @classmethod
    def through_tidepool(cls, pool, params, encoding="utf-8"):
        return cls(tp.host, tp.port, pool, params, encoding)

    @classmethod
    def direct(cls, params, encoding="utf-8"):
        return cls(pg.host, pg.port, "inventorydb", params, encoding)

    def run(self, sql):
        """One simple query (str, sent in the client's encoding): the rows of
        its results, as bytes."""
        self.conn.send(b"Q", sql.encode(self.encoding) + b"\0")
        msgs = self.conn.read_until_ready()
        for t, body in msgs:
            if t == b"S":
                k, v = body.split(b"\0")[:2]
                self.later_status.append((k.decode(), v.decode(self.encoding)))
        return _rows(msgs)

    def reported(self):
        """What the client was told last for each watched parameter."""
        now = dict(self.login_status)
        now.update(self.later_status)
        return {k: now.get(k) for k in WATCHED}

    def close(self):
        self.conn.close()


# The probes: each alone in a simple query.
PROBES = (
    "SHOW client_encoding",
    "SHOW DateStyle",
    "SHOW TimeZone",
    "SELECT '03/05/2024'::date::text, '2024-03-05'::date::text",
    "SELECT '2024-01-01 12:00:00+00'::timestamptz::text",
    "SELECT chr(233), 'é', octet_length('é'), current_setting('application_name')",
)

CLIENTS = {
    "utf8_iso": {"client_encoding": "UTF8", "DateStyle": "ISO, MDY", "TimeZone": "America/New_York",
                 "application_name": "utf8_iso"},
    "latin1_german": {"client_encoding": "LATIN1", "DateStyle": "German, DMY", "TimeZone": "Asia/Tokyo",
                      "application_name": "latin1_german"},
    # Only its name: the server's encoding, DateStyle and TimeZone.
    "server_defaults": {"application_name": "server_defaults"},
}
CODEC = {"UTF8": "utf-8", "LATIN1": "latin-1"}


def codec(params):
    return CODEC[params.get("client_encoding", "UTF8")]


class ParametersFollowClients(h.TestCase):
    @classmethod
    def setUpClass(cls):
        # Once a pool knows its server's parameters (from its first backend),
        # a client is answered at login without a backend: the path every
        # login but the first takes, and the one tested here whatever the
        # order of the tests.
        for pool in ("one", "two"):
            Raw.through_tidepool(pool, {}).close()
        # What PostgreSQL itself answers a connection with the same startup
        # parameters: the probes' rows and the ParameterStatus values.
        cls.expected, cls.expected_status = {}, {}
        for name, params in CLIENTS.items():
            d = Raw.direct(params, codec(params))
            try:
                cls.expected[name] = [d.run(p) for p in PROBES]
                cls.expected_status[name] = d.reported()
            finally:
                d.close()

    def test_expected_values_differ(self):
        # The oracle itself: the two clients' values differ in every probe,
        # the server's defaults differ from both, and the encodings and
        # styles really show in the bytes (else the tests prove nothing).
        e = self.expected
        for i, p in enumerate(PROBES):
            self.assertNotEqual(e["utf8_iso"][i], e["latin1_german"][i], p)
        self.assertNotEqual(e["server_defaults"][2], e["utf8_iso"][2], "TimeZone")
        self.assertNotEqual(e["server_defaults"][2], e["latin1_german"][2], "TimeZone")
        self.assertEqual(e["utf8_iso"][5], [(b"\xc3\xa9", b"\xc3\xa9", b"2", b"utf8_iso")])
        self.assertEqual(e["latin1_german"][5], [(b"\xe9", b"\xe9", b"2", b"latin1_german")])
        self.assertEqual(e["latin1_german"][3], [(b"03.05.2024", b"05.03.2024")])
        self.assertEqual(e["utf8_iso"][3], [(b"2024-03-05", b"2024-03-05")])

    def check(self, client, name, values, where):
        self.assertEqual(values, self.expected[name], f"client {name}, {where}")
        self.assertEqual(client.reported(), self.expected_status[name], f"client {name}, {where}: reported")

    def test_raw_clients_alternate_on_one_backend(self):
        clients = {name: Raw.through_tidepool("one", params, codec(params)) for name, params in CLIENTS.items()}
        try:
            for name, c in clients.items():
                self.assertEqual({k: c.login_status.get(k) for k in WATCHED}, self.expected_status[name],
                                 f"client {name}: ParameterStatus at login")
            pids = set()
            for round_ in range(4):
                # Whole transactions in turn.
                for name, c in clients.items():
                    c.run("BEGIN")
                    values = [c.run(p) for p in PROBES]
                    pids.add(c.run("SELECT pg_backend_pid()")[0][0])
                    c.run("COMMIT")
                    self.check(c, name, values, f"round {round_}, in a transaction")
                # Single statements, the clients' turns interleaved statement by statement.
                got = {name: [] for name in clients}
                for p in PROBES:
                    for name, c in clients.items():
                        got[name].append(c.run(p))
                for name, c in clients.items():
                    self.check(c, name, got[name], f"round {round_}, single statements")
            self.assertEqual(len(pids), 1, "pool_size = 1 used several backends")
            for name, c in clients.items():
                wrong = [(k, v) for k, v in c.later_status
                         if k in self.expected_status[name] and v != self.expected_status[name][k]]
                self.assertEqual(wrong, [], f"client {name} was sent another client's ParameterStatus")
        finally:
            for c in clients.values():
                c.close()

    # A client that sends no application_name: PostgreSQL reports ''; the
    # backends connect with fallback_application_name=tidepool
    # (daemon/backend_connect.c), and docs/transaction-pooling.md says such
    # a client is shown 'tidepool', in transaction and session mode alike.
    def test_no_application_name_shows_the_fallback(self):
        d = Raw.direct({})
        try:
            self.assertEqual((d.login_status.get("application_name"), d.run("SHOW application_name")),
                             ("", [(b"",)]))
        finally:
            d.close()
        for pool in ("one", "plain_session"):
            c = Raw.through_tidepool(pool, {})
            try:
                self.assertEqual((c.login_status.get("application_name"), c.run("SHOW application_name")),
                                 ("tidepool", [(b"tidepool",)]), pool)
            finally:
                c.close()

    # The ParameterStatus a client is sent for its own startup parameters
    # must be PostgreSQL's value (LATIN1, "ISO, DMY", UTC, sql_standard),
    # whatever spelling the client used (latin1, iso,dmy, utc, SQL_standard),
    # as SHOW gives it. In transaction mode, once the pool knows its
    # server's parameters, the login reply carries the client's spelling;
    # PostgreSQL's follows in a ParameterStatus when a backend first applies
    # them (on_params_synced in daemon/client_login.c). A pool's first login
    # and session mode take the values from a backend (the test below).
    def test_login_parameter_status_in_postgresql_spelling(self):
        self.check_spelling("one")

    def test_login_parameter_status_in_postgresql_spelling_session_mode(self):
        self.check_spelling("plain_session")

    def check_spelling(self, pool):
        params = {"client_encoding": "latin1", "DateStyle": "iso,dmy", "TimeZone": "utc",
                  "IntervalStyle": "SQL_standard"}
        names = tuple(params)
        d = Raw.direct(params, "latin-1")
        try:
            expected = {k: d.login_status.get(k) for k in names}
            shown = [d.run(f"SHOW {k}")[0][0].decode() for k in names]
        finally:
            d.close()
        self.assertEqual(expected, {"client_encoding": "LATIN1", "DateStyle": "ISO, DMY", "TimeZone": "UTC",
                                    "IntervalStyle": "sql_standard"})
        self.assertEqual(shown, list(expected.values()))
        c = Raw.through_tidepool(pool, params, "latin-1")
        try:
            self.assertEqual([c.run(f"SHOW {k}")[0][0].decode() for k in names], shown)
            now = dict(c.login_status)
            now.update(c.later_status)
            self.assertEqual({k: now.get(k) for k in names}, expected, "ParameterStatus values sent")
        finally:
            c.close()

    def test_psycopg2_clients_alternate_on_one_backend(self):
        specs = {
            # PostgreSQL's own spelling ("ISO, MDY"): see
            # test_login_parameter_status_in_postgresql_spelling for others.
            "utf8": {"client_encoding": "UTF8", "options": "-c DateStyle=ISO,\\ MDY -c TimeZone=America/New_York"},
            # psycopg2 sends SET DATESTYLE TO 'ISO' at connect when the
            # DateStyle is not ISO: the order (DMY) stays.
            "latin1": {"client_encoding": "LATIN1", "options": "-c DateStyle=German,DMY -c TimeZone=Asia/Tokyo"},
        }
        queries = ("SHOW client_encoding", "SHOW DateStyle", "SHOW TimeZone",
                   "SELECT '03/05/2024'::date::text", "SELECT '2024-01-01 12:00:00+00'::timestamptz::text",
                   "SELECT chr(233), 'é', octet_length('é')")

        def probe(conn):
            out = []
            with conn.cursor() as cur:
                for q in queries:
                    cur.execute(q)
                    out.append(cur.fetchall())
            conn.commit()
            return out, {k: conn.get_parameter_status(k) for k in ("client_encoding", "DateStyle", "TimeZone")}

        expected = {}
        for name, kw in specs.items():
            with contextlib.closing(pg.connect("inventorydb", user=h.APP_USER, autocommit=False, **kw)) as d:
                expected[name] = probe(d)
        self.assertNotEqual(expected["utf8"], expected["latin1"])
        self.assertEqual(expected["latin1"][1]["DateStyle"], "ISO, DMY")
        conns = {name: tp.connect(dbname="one", **kw) for name, kw in specs.items()}
        try:
            for round_ in range(6):
                for name, conn in conns.items():
                    self.assertEqual(probe(conn), expected[name], f"client {name}, round {round_}")
                    self.assertEqual(conn.encoding, {"utf8": "UTF8", "latin1": "LATIN1"}[name])
        finally:
            for conn in conns.values():
                conn.close()

    def test_set_datestyle_follows_across_backends(self):
        def pid_of(c):
            return c.run("SELECT pg_backend_pid()")[0][0]

        probe = "SELECT pg_backend_pid(), current_setting('DateStyle'), '2024-03-05'::date::text"
        setter = Raw.through_tidepool("two", {})
        other = Raw.through_tidepool("two", {})
        hold1 = Raw.through_tidepool("two", {})
        hold2 = Raw.through_tidepool("two", {})
        try:
            server_style = self.expected_status["server_defaults"]["DateStyle"]
            self.assertEqual(server_style, "ISO, MDY")
            # hold1 holds backend P1: the SET can only run on the other one, P2.
            hold1.run("BEGIN")
            p1 = pid_of(hold1)
            setter.run("SET DateStyle = 'SQL, DMY'")
            self.assertEqual(setter.later_status, [("DateStyle", "SQL, DMY")])
            # hold2 takes P2, where the SET ran; P1 is given back.
            hold2.run("BEGIN")
            p2 = pid_of(hold2)
            self.assertNotEqual(p1, p2)
            hold1.run("COMMIT")
            # The setter is served by P1 now, and keeps its DateStyle.
            self.assertEqual(setter.run(probe), [(p1, b"SQL, DMY", b"05/03/2024")])
            # The other client, on P1 right after the setter: the server's style.
            self.assertEqual(other.run(probe), [(p1, server_style.encode(), b"2024-03-05")])
            # Now P1 held, P2 (where the SET ran) free.
            hold1.run("BEGIN")
            self.assertEqual(pid_of(hold1), p1)
            hold2.run("COMMIT")
            self.assertEqual(other.run(probe), [(p2, server_style.encode(), b"2024-03-05")])
            self.assertEqual(setter.run(probe), [(p2, b"SQL, DMY", b"05/03/2024")])
            self.assertEqual(other.run(probe), [(p2, server_style.encode(), b"2024-03-05")])
            hold1.run("COMMIT")
            self.assertEqual(setter.reported()["DateStyle"], "SQL, DMY")
            self.assertEqual(other.reported()["DateStyle"], server_style)
            self.assertEqual([v for k, v in other.later_status if k == "DateStyle" and v != server_style], [],
                             "the other client was sent the setter's DateStyle")
        finally:
            for c in (setter, other, hold1, hold2):
                c.close()


class ReadUncommitted(h.TestCase):
    def connect(self, pool):
        return contextlib.closing(tp.connect(dbname=pool, autocommit=True))

    def show(self, cur, what="transaction_isolation"):
        cur.execute(f"SHOW {what}")
        return cur.fetchone()[0]

    def check_pool(self, pool):
        with self.connect(pool) as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur), "read uncommitted")
            self.assertEqual(self.show(cur, "default_transaction_isolation"), "read uncommitted")
            cur.execute("BEGIN")
            self.assertEqual(self.show(cur), "read uncommitted", "plain BEGIN")
            cur.execute("COMMIT")
            cur.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            self.assertEqual(self.show(cur), "serializable", "BEGIN ISOLATION LEVEL overrides")
            cur.execute("COMMIT")
            self.assertEqual(self.show(cur), "read uncommitted", "after the override")

    def test_transaction_mode(self):
        self.check_pool("ru_transaction")

    def test_session_mode(self):
        self.check_pool("ru_session")

    def test_every_backend_of_the_pool(self):
        # Two clients in open transactions at once: both backends of each
        # pool (pool_size 2), each reporting the level.
        for pool in ("ru_transaction", "ru_session"):
            with self.subTest(pool=pool), self.connect(pool) as a, self.connect(pool) as b, \
                    a.cursor() as ca, b.cursor() as cb:
                ca.execute("BEGIN")
                cb.execute("BEGIN")
                ca.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation')")
                cb.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation')")
                (pa, la), (pb, lb) = ca.fetchone(), cb.fetchone()
                self.assertNotEqual(pa, pb)
                self.assertEqual((la, lb), ("read uncommitted", "read uncommitted"))
                ca.execute("COMMIT")
                cb.execute("COMMIT")

    def test_without_the_key_the_server_default(self):
        for pool in ("plain_transaction", "plain_session"):
            with self.subTest(pool=pool), self.connect(pool) as conn, conn.cursor() as cur:
                self.assertEqual(self.show(cur), "read committed")

    def test_reported_by_the_admin_console(self):
        rows = {r["pool"]: r for r in tp.admin("SHOW POOLS")}
        for pool in ("ru_transaction", "ru_session"):
            self.assertEqual(rows[pool]["isolation"], "READ UNCOMMITTED", rows[pool])


if __name__ == "__main__":
    h.main()
