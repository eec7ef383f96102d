#!/usr/bin/python3
"""Transaction mode: backends that die or age, and clients that leave (SPEC
§3.2 pool_pre_ping, pool_recycle, on_connect, pool_reset_on_return; §4
"Failures").

- pool_pre_ping: every backend of the pool is killed while idle; each client's
  next query just works.
- no pre-ping: the same; at most one error per killed backend, and every
  client can carry on (reconnecting when its connection was closed).
  (tidepool watches idle backends, so it sees a killed one's socket close at
  once and neither case needs the ping. The same two tests are therefore run
  again through a FaultProxy whose poisoned connections look alive until
  something is sent on them, which is where pre-ping matters.)
- a backend killed while its client is inside a transaction: that client gets
  an error, the others carry on, and the pool's older idle backends are
  replaced before they are lent again (pool-wide invalidation).
- pool_recycle=1: after 1.5 s a client gets a new backend.
- on_connect runs on every new backend, and its effects hold for every client
  of the backend: after tidepool's DISCARD ALL between session-mode clients,
  after a client's RESET ALL, DISCARD ALL, RESET x or SET x TO DEFAULT, and
  after tidepool's parameter sync reset a setting an earlier client had, the
  backend runs on_connect again before it is lent.
- pool_reset_on_return: a client that leaves inside a transaction after an
  INSERT: rollback -> the row is gone, commit -> it is there, none -> the
  backend is closed.

Every pool has its own backend role, so pg_stat_activity tells them apart.
"""

import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg2  # noqa: E402

ROLE_PASSWORD = "rolepw"
CLIENTS = 5

# Settings that are not startup options: only on_connect gives them. And a
# statement that fails when run twice on one session: on_connect must run
# again on a fresh session, not on top of what it left.
ON_CONNECT = "SET search_path = oc_schema, public; SET work_mem = '3MB'; PREPARE oc_probe AS SELECT 7"
ON_CONNECT_SEES = ("oc_schema, public", "3MB")
SERVER_DEFAULTS = ('"$user", public', "4MB")

# pool name -> (backend role, extra pool keys)
POOLS = {
    "ping": ("ping_be", {"pool_pre_ping": True, "pool_size": CLIENTS, "max_overflow": 5}),
    "noping": ("noping_be", {"pool_size": CLIENTS, "max_overflow": 5}),
    "midtxn": ("midtxn_be", {"pool_size": 4, "max_overflow": 2}),
    "recycle": ("recycle_be", {"pool_recycle": 1, "pool_size": 1, "max_overflow": 0}),
    "hook": ("hook_be", {"on_connect": "SELECT set_config('tidepool.test', 'yes', false)",
                         "pool_size": 2, "max_overflow": 2}),
    "oc_session": ("ocsess_be", {"pool_mode": "session", "on_connect": ON_CONNECT, "pool_size": 1,
                                 "max_overflow": 0}),
    "oc_txn": ("octxn_be", {"on_connect": ON_CONNECT, "pool_size": 1, "max_overflow": 0}),
    "reset_rollback": ("rollback_be", {"pool_reset_on_return": "rollback", "pool_size": 1,
                                       "max_overflow": 0}),
    "reset_commit": ("commit_be", {"pool_reset_on_return": "commit", "pool_size": 1, "max_overflow": 0}),
    "reset_none": ("none_be", {"pool_reset_on_return": "none", "pool_size": 1, "max_overflow": 0}),
    # Through a FaultProxy each (see proxies).
    "ping_proxy": ("pingpx_be", {"pool_pre_ping": True, "pool_size": 3, "max_overflow": 2}),
    "noping_proxy": ("nopingpx_be", {"pool_size": 3, "max_overflow": 2}),
}
PROXIED = ("ping_proxy", "noping_proxy")
PROBE = "SELECT pg_backend_pid(), current_setting('search_path'), current_setting('work_mem')"

pg = None
tp = None
proxies = {}


def setUpModule():
    global pg, tp
    pg = h.Cluster().start()
    try:
        pg.execute("CREATE TABLE marks (pool text, note text)", dbname="inventorydb")
        pg.execute(f"ALTER TABLE marks OWNER TO {h.APP_USER}", dbname="inventorydb")
        pools = {}
        for name, (role, keys) in POOLS.items():
            h.create_login_role(pg, role, ROLE_PASSWORD)
            if name in PROXIED:
                proxies[name] = h.FaultProxy(pg.host, pg.port)
                url = proxies[name].url("inventorydb", user=role, password=ROLE_PASSWORD)
            else:
                url = pg.url("inventorydb", user=role, password=ROLE_PASSWORD)
            pools[name] = {"url": url, "pool_timeout": 10, "echo_pool": True, **keys}
        tp = h.Tidepool(pg, pools=pools).start()
    except BaseException:
        for px in proxies.values():
            px.close()
        pg.stop()
        raise


def tearDownModule():
    try:
        if tp is not None:
            tp.stop()
            tp.check()
    finally:
        for px in proxies.values():
            px.close()
        if pg is not None:
            pg.stop()


def role_of(pool):
    return POOLS[pool][0]


def backends(pool):
    return pg.backends("inventorydb", role_of(pool))


def all_pids():
    return {r[0] for r in pg.execute("SELECT pid FROM pg_stat_activity")}


def terminate_and_wait(pids):
    for pid in pids:
        pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
    h.wait_until(lambda: not (set(pids) & all_pids()), timeout=10, message=f"backends {pids} gone")


class Clients:
    """n psycopg2 connections to one pool, autocommit."""

    def __init__(self, pool, n):
        self.pool = pool
        self.conns = [tp.connect(dbname=pool, autocommit=True) for _ in range(n)]

    def fill_pool(self):
        """Each client inside a transaction at once, so the pool opens one
        backend per client; then all commit. Returns the backend pids."""
        pids = set()
        for c in self.conns:
            with c.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("SELECT pg_backend_pid()")
                pids.add(cur.fetchone()[0])
        for c in self.conns:
            with c.cursor() as cur:
                cur.execute("COMMIT")
        return pids

    def close(self):
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.close()


class BackendFailures(h.TestCase):
    def test_pre_ping_hides_killed_idle_backends(self):
        clients = Clients("ping", CLIENTS)
        try:
            pids = clients.fill_pool()
            self.assertEqual(len(pids), CLIENTS)
            self.assertEqual(set(backends("ping")), pids)
            terminate_and_wait(pids)
            new_pids = set()
            for i, c in enumerate(clients.conns):
                with c.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid(), %s", (i,))  # must not raise
                    pid, j = cur.fetchone()
                    self.assertEqual(j, i)
                    new_pids.add(pid)
                self.assertEqual(c.closed, 0)
            self.assertFalse(new_pids & pids, "a killed backend was lent")
            # Transactions work too.
            for c in clients.conns:
                with c.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT 1")
                    cur.execute("COMMIT")
        finally:
            clients.close()

    def test_killed_idle_backends_without_pre_ping(self):
        clients = Clients("noping", CLIENTS)
        try:
            pids = clients.fill_pool()
            self.assertEqual(len(pids), CLIENTS)
            terminate_and_wait(pids)
            errors = []
            for i, c in enumerate(clients.conns):
                try:
                    with c.cursor() as cur:
                        cur.execute("SELECT pg_backend_pid()")
                        self.assertNotIn(cur.fetchone()[0], pids, "a killed backend was lent")
                except psycopg2.Error as e:
                    errors.append((i, e.pgcode, str(e).strip()))
            self.assertLessEqual(len(errors), len(pids), errors)
            # Everyone can carry on; a client whose connection was closed reconnects.
            for i, c in enumerate(clients.conns):
                if c.closed:
                    clients.conns[i] = c = tp.connect(dbname="noping", autocommit=True)
                for _ in range(2):
                    with c.cursor() as cur:
                        cur.execute("SELECT pg_backend_pid()")
                        self.assertNotIn(cur.fetchone()[0], pids)
            if errors:
                print(f"\n  (without pre-ping: {len(errors)} error(s) for {len(pids)} killed backends:"
                      f" {errors})", file=sys.stderr)
        finally:
            clients.close()

    def test_pre_ping_replaces_silently_dead_backends(self):
        clients = Clients("ping_proxy", 3)
        try:
            pids = clients.fill_pool()
            self.assertEqual(len(pids), 3)
            self.assertEqual(proxies["ping_proxy"].poison_all(), 3)
            for i, c in enumerate(clients.conns):
                with c.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid(), %s", (i,))  # must not raise
                    pid, j = cur.fetchone()
                self.assertEqual(j, i)
                self.assertNotIn(pid, pids, "a dead backend was lent")
                self.assertEqual(c.closed, 0)
            self.assertGreaterEqual(proxies["ping_proxy"].poisoned_closed, 1, "no ping was sent")
        finally:
            clients.close()
        h.wait_for_log(tp, lambda line: "pool ping_proxy" in line and "pre-ping" in line and "failed" in line)

    def test_silently_dead_backends_without_pre_ping(self):
        clients = Clients("noping_proxy", 3)
        try:
            pids = clients.fill_pool()
            self.assertEqual(len(pids), 3)
            self.assertEqual(proxies["noping_proxy"].poison_all(), 3)
            errors = []
            for i, c in enumerate(clients.conns):
                try:
                    with c.cursor() as cur:
                        cur.execute("SELECT pg_backend_pid()")
                        self.assertNotIn(cur.fetchone()[0], pids, "a dead backend was lent")
                except psycopg2.Error as e:
                    errors.append((i, e.pgcode, str(e).strip()))
            # Without the ping the first client to use a dead backend gets an
            # error; at most one per dead backend (with pool-wide invalidation,
            # only the first).
            self.assertGreaterEqual(len(errors), 1)
            self.assertLessEqual(len(errors), len(pids), errors)
            print(f"\n  (without pre-ping: {len(errors)} error(s) for {len(pids)} dead backends: {errors})",
                  file=sys.stderr)
            for i, c in enumerate(clients.conns):
                if c.closed:
                    clients.conns[i] = c = tp.connect(dbname="noping_proxy", autocommit=True)
                for _ in range(2):
                    with c.cursor() as cur:
                        cur.execute("SELECT pg_backend_pid()")
                        self.assertNotIn(cur.fetchone()[0], pids)
        finally:
            clients.close()

    def test_backend_killed_inside_a_transaction(self):
        clients = Clients("midtxn", 4)
        victim, *others = clients.conns
        try:
            idle_before = clients.fill_pool()  # 4 backends, idle
            self.assertEqual(len(idle_before), 4)
            with victim.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO marks VALUES ('midtxn', 'never committed')")
                cur.execute("SELECT pg_backend_pid()")
                victim_pid = cur.fetchone()[0]
            terminate_and_wait([victim_pid])
            with self.assertRaises(psycopg2.Error) as cm:
                with victim.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.execute("COMMIT")
            print(f"\n  (the victim got: {type(cm.exception).__name__} {cm.exception.pgcode}:"
                  f" {str(cm.exception).strip()!r})", file=sys.stderr)
            self.assertIn(cm.exception.pgcode, (None, "57P01", "08006", "08003", "08000"))
            # The others carry on, inside transactions too.
            seen = set()
            for c in others:
                with c.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_backend_pid()")
                    seen.add(cur.fetchone()[0])
                    cur.execute("COMMIT")
            # Pool-wide invalidation: idle backends older than the death are
            # replaced before being lent again.
            self.assertFalse(seen & idle_before,
                             f"backends older than the killed one were lent again: {seen & idle_before}")
            self.assertEqual(pg.execute("SELECT count(*) FROM marks WHERE pool = 'midtxn'",
                                        dbname="inventorydb")[0][0], 0)
            # The victim can connect again.
            with contextlib.closing(tp.connect(dbname="midtxn", autocommit=True)) as again, \
                    again.cursor() as cur:
                cur.execute("SELECT 'back'")
                self.assertEqual(cur.fetchone(), ("back",))
        finally:
            clients.close()

    def test_backend_killed_inside_a_transaction_on_the_wire(self):
        # What the client is sent: FATAL (PostgreSQL's own 57P01, relayed, and
        # tidepool's 08006 "server connection lost"), then the connection closes.
        with tp.raw(dbname="midtxn") as c:
            c.query("BEGIN")
            pid = int(c.fetch("SELECT pg_backend_pid()")[0][0])
            terminate_and_wait([pid])
            msgs = []
            with self.assertRaises(EOFError):
                for _ in range(10):
                    msgs.append(c.read_message())
            errors = [h.PgError(h._fields(body)) for t, body in msgs if t == b"E"]
            self.assertEqual([t for t, _ in msgs], [b"E"] * len(msgs), msgs)
            self.assertTrue(errors, "no error before the connection closed")
            self.assertEqual(errors[-1].severity, "FATAL")
            self.assertEqual(errors[-1].sqlstate, "08006", errors[-1].fields)
            self.assertTrue(all(e.severity == "FATAL" for e in errors), msgs)

    def test_pool_recycle(self):
        with contextlib.closing(tp.connect(dbname="recycle", autocommit=True)) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            first = cur.fetchone()[0]
            cur.execute("SELECT pg_backend_pid()")
            self.assertEqual(cur.fetchone()[0], first, "a young backend was replaced")
            time.sleep(1.5)
            cur.execute("SELECT pg_backend_pid()")
            second = cur.fetchone()[0]
            self.assertNotEqual(second, first, "a backend older than pool_recycle was lent")
            h.wait_until(lambda: first not in all_pids(), timeout=5, message="the recycled backend closed")
            self.assertEqual(backends("recycle"), [second])
        h.wait_for_log(tp, lambda line: "pool recycle" in line and "exceeded timeout" in line)

    def test_on_connect(self):
        with contextlib.ExitStack() as stack:
            curs = []
            for _ in range(3):  # three backends at once: every new one ran the hook
                conn = stack.enter_context(contextlib.closing(tp.connect(dbname="hook", autocommit=True)))
                cur = stack.enter_context(conn.cursor())
                cur.execute("BEGIN")
                curs.append(cur)
            pids = set()
            for cur in curs:
                cur.execute("SELECT pg_backend_pid(), current_setting('tidepool.test', true)")
                pid, value = cur.fetchone()
                pids.add(pid)
                self.assertEqual(value, "yes")
            for cur in curs:
                cur.execute("COMMIT")
            self.assertEqual(len(pids), 3)
        # Still there for the next clients (the hook's setting is not undone
        # by tidepool's parameter sync between clients).
        for _ in range(3):
            with contextlib.closing(tp.connect(dbname="hook", autocommit=True)) as conn, \
                    conn.cursor() as cur:
                cur.execute("SELECT current_setting('tidepool.test', true)")
                self.assertEqual(cur.fetchone()[0], "yes")

    # -- on_connect's effects for every client of a backend --

    def on_connect_view(self, pool, **options):
        """(backend pid, (search_path, work_mem)) one new client of pool sees
        in its first transaction; options: its startup GUCs."""
        opts = " ".join(f"-c {k}={v}" for k, v in options.items()) or None
        with contextlib.closing(psycopg2.connect(tp.conninfo(dbname=pool), options=opts,
                                                 connect_timeout=10)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(PROBE)
                pid, *values = cur.fetchone()
                cur.execute("EXECUTE oc_probe")
                self.assertEqual(cur.fetchone(), (7,), "on_connect's prepared statement")
        return pid, tuple(values)

    def test_on_connect_holds_for_every_session_client(self):
        # Session mode: tidepool's DISCARD ALL between clients must not take
        # on_connect's settings away from the next client.
        pids = set()
        for i in range(3):
            pid, values = self.on_connect_view("oc_session")
            pids.add(pid)
            self.assertEqual(values, ON_CONNECT_SEES, f"client {i + 1} on backend {pid}")
        self.assertEqual(len(pids), 1, "the clients did not share the backend")
        # A client with its own search_path sees it; the next one on_connect's.
        pid, values = self.on_connect_view("oc_session", search_path="pg_catalog")
        self.assertEqual((pid, values), (pids.pop(), ("pg_catalog", "3MB")))
        self.assertEqual(self.on_connect_view("oc_session")[1], ON_CONNECT_SEES)

    def test_on_connect_survives_a_clients_reset(self):
        # Transaction mode: a client's RESET ALL, DISCARD ALL, RESET x or SET
        # x TO DEFAULT acts on the shared backend; the next client on it must
        # still start with on_connect's settings, and so must the client
        # itself from its next transaction.
        pid, values = self.on_connect_view("oc_txn")
        self.assertEqual(values, ON_CONNECT_SEES)
        for resets in (["RESET ALL"], ["DISCARD ALL"], ["RESET search_path", "RESET work_mem"],
                       ["SET search_path TO DEFAULT", "SET work_mem = DEFAULT"]):
            with self.subTest(resets=resets):
                with contextlib.closing(tp.connect(dbname="oc_txn", autocommit=True)) as a, \
                        a.cursor() as cur:
                    in_block = not resets[0].startswith("DISCARD")  # DISCARD ALL refuses a block
                    if in_block:
                        cur.execute("BEGIN")
                    for sql in resets:
                        cur.execute(sql)
                    if in_block:
                        # In the transaction that reset them: the server's defaults.
                        cur.execute(PROBE)
                        self.assertEqual(cur.fetchone(), (pid, *SERVER_DEFAULTS))
                        cur.execute("COMMIT")
                    cur.execute(PROBE)
                    self.assertEqual(cur.fetchone(), (pid, *ON_CONNECT_SEES),
                                     "the client's next transaction lost on_connect's settings")
                    cur.execute("EXECUTE oc_probe")
                    self.assertEqual(cur.fetchone(), (7,))
                    for sql in resets:
                        cur.execute(sql)
                self.assertEqual(self.on_connect_view("oc_txn"), (pid, ON_CONNECT_SEES),
                                 "the next client on the backend lost on_connect's settings")
        # tidepool's own parameter sync: a client with its own work_mem, then
        # one without (its sync resets work_mem on the backend).
        self.assertEqual(self.on_connect_view("oc_txn", work_mem="8MB"), (pid, ("oc_schema, public", "8MB")))
        self.assertEqual(self.on_connect_view("oc_txn"), (pid, ON_CONNECT_SEES))
        self.assertEqual(backends("oc_txn"), [pid], "on_connect's pool replaced its backend")

    # -- pool_reset_on_return --

    def leave_inside_transaction(self, pool, note):
        """A client inserts a row inside a transaction and disconnects without
        committing. Returns the pid of the backend it used."""
        conn = tp.connect(dbname=pool)  # not autocommit: psycopg2 sends BEGIN
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO marks VALUES (%s, %s)", (pool, note))
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
            self.assertEqual(conn.get_transaction_status(),
                             psycopg2.extensions.TRANSACTION_STATUS_INTRANS)
        finally:
            conn.close()  # Terminate, with the transaction open
        return pid

    def rows(self, pool, note):
        return pg.execute("SELECT count(*) FROM marks WHERE pool = %s AND note = %s", (pool, note),
                          dbname="inventorydb")[0][0]

    def wait_idle(self, pool, pid):
        h.wait_until(lambda: h.backend_states(pg, "inventorydb", role_of(pool)).get(pid) == "idle",
                     timeout=5, message=f"backend {pid} idle (out of its transaction)")

    def test_reset_on_return_rollback(self):
        pid = self.leave_inside_transaction("reset_rollback", "abandoned")
        self.wait_idle("reset_rollback", pid)
        self.assertEqual(self.rows("reset_rollback", "abandoned"), 0, "the abandoned INSERT was kept")
        self.assertEqual(backends("reset_rollback"), [pid], "the backend was not kept")
        # The next client gets the same backend, outside any transaction.
        with contextlib.closing(tp.connect(dbname="reset_rollback", autocommit=True)) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), count(*) FROM marks WHERE pool = 'reset_rollback'")
            self.assertEqual(cur.fetchone(), (pid, 0))
        h.wait_for_log(tp, lambda line: "pool reset_rollback" in line and "ROLLBACK on return" in line)

    def test_reset_on_return_commit(self):
        pid = self.leave_inside_transaction("reset_commit", "abandoned")
        h.wait_until(lambda: self.rows("reset_commit", "abandoned") == 1, timeout=5,
                     message="the abandoned INSERT committed")
        self.wait_idle("reset_commit", pid)
        self.assertEqual(backends("reset_commit"), [pid], "the backend was not kept")
        with contextlib.closing(tp.connect(dbname="reset_commit", autocommit=True)) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), count(*) FROM marks WHERE pool = 'reset_commit'")
            self.assertEqual(cur.fetchone(), (pid, 1))

    def test_reset_on_return_none_closes_the_backend(self):
        pid = self.leave_inside_transaction("reset_none", "abandoned")
        h.wait_until(lambda: pid not in all_pids(), timeout=5,
                     message=f"backend {pid} closed (pool_reset_on_return = none)")
        self.assertEqual(self.rows("reset_none", "abandoned"), 0)
        with contextlib.closing(tp.connect(dbname="reset_none", autocommit=True)) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), count(*) FROM marks WHERE pool = 'reset_none'")
            new_pid, n = cur.fetchone()
            self.assertNotEqual(new_pid, pid)
            self.assertEqual(n, 0)

    def test_client_vanishes_without_terminate(self):
        # The socket just closes (no Terminate message), inside a transaction.
        with tp.raw(dbname="reset_rollback") as c:
            c.query("BEGIN")
            c.query("INSERT INTO marks VALUES ('reset_rollback', 'vanished')")
            pid = int(c.fetch("SELECT pg_backend_pid()")[0][0])
            c.sock.close()
        self.wait_idle("reset_rollback", pid)
        self.assertEqual(self.rows("reset_rollback", "vanished"), 0)
        with contextlib.closing(tp.connect(dbname="reset_rollback", autocommit=True)) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.assertEqual(cur.fetchone()[0], pid)


if __name__ == "__main__":
    h.main()
