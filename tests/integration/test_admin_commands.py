#!/usr/bin/python3
"""The admin console's commands (issue 5, must show 4): PAUSE holds new
transactions until RESUME and itself waits for the transactions in flight;
clients held by PAUSE do not time out; DISPOSE replaces idle backends at once
and a lent one after its transaction; SHUTDOWN behaves like SIGTERM; SHOW
CONFIG returns a row per key; non-admin users get 42501, unknown pools
3D000."""

import contextlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

pg = None


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


def pool_row(tp, name="inventorydb"):
    return [r for r in tp.admin("SHOW POOLS") if r["pool"] == name][0]


def no_answer_within(raw, seconds):
    """True when nothing arrives on raw's socket within `seconds`."""
    raw.sock.settimeout(seconds)
    try:
        raw.read_message()
        return False
    except (socket.timeout, TimeoutError):
        return True
    finally:
        raw.sock.settimeout(10)


def admin_error(tp, sql):
    with contextlib.closing(tp.raw(dbname="tidepool")) as raw:
        try:
            raw.query(sql)
        except h.PgError as e:
            return e.sqlstate
    return None


class AdminCommands(h.TestCase):
    def daemon(self, pools=None, **settings):
        tp = h.Tidepool(pg, pools=pools or {"inventorydb": {"pool_size": 2, "pool_timeout": 1}},
                        settings={"admin_users": "app", **settings},
                        users={"app": "secret", "other": "secret"}).start()
        self.addCleanup(tp.stop)
        return tp

    def test_pause_waits_for_transactions_and_holds_new_ones(self):
        tp = self.daemon()
        running = tp.connect(autocommit=False)
        self.addCleanup(running.close)
        with running.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")  # holds a backend, inside a transaction
        admin = tp.raw(dbname="tidepool")
        self.addCleanup(admin.close)
        admin.send(b"Q", b"PAUSE\0")
        self.assertTrue(no_answer_within(admin, 0.5), "PAUSE completed while a transaction ran")

        # A new transaction is held, not refused.
        result = {}

        def held_query():
            try:
                with contextlib.closing(tp.connect(autocommit=True)) as c, c.cursor() as cur:
                    cur.execute("SELECT 42")
                    result["value"] = cur.fetchone()[0]
                    result["at"] = time.monotonic()
            except Exception as e:  # reported by the assertions below
                result["error"] = e

        t = threading.Thread(target=held_query, daemon=True)
        t.start()
        h.wait_until(lambda: pool_row(tp)["waiting"] == "1", message="the new client queued")

        # The running transaction may go on and finish; then PAUSE completes.
        with running.cursor() as cur:
            cur.execute("SELECT 1")
        running.commit()
        tags = [b.rstrip(b"\0") for typ, b in admin.read_until_ready() if typ == b"C"]
        self.assertEqual(tags, [b"PAUSE"])
        row = pool_row(tp)
        self.assertEqual((row["paused"], row["checked_out"], row["waiting"]), ("yes", "0", "1"))

        # Held longer than pool_timeout (1 s): no 53300 while paused.
        time.sleep(1.5)
        self.assertNotIn("error", result)
        self.assertNotIn("value", result)
        self.assertEqual(admin_error(tp, "PAUSE"), "55000")  # already paused
        resumed_at = time.monotonic()
        tp.admin("RESUME")
        t.join(10)
        self.assertEqual(result.get("value"), 42, result)
        self.assertLess(result["at"] - resumed_at, 2)
        self.assertEqual(pool_row(tp)["paused"], "no")
        self.assertEqual(pool_row(tp)["timeouts"], "0")
        self.assertEqual(admin_error(tp, "RESUME"), "55000")  # not paused
        with running.cursor() as cur:
            cur.execute("SELECT 2")
        running.commit()

    def test_pause_one_pool_and_cancel(self):
        tp = self.daemon(pools={"inventorydb": {}, "otherdb": {}})
        running = tp.connect(autocommit=False)
        self.addCleanup(running.close)
        with running.cursor() as cur:
            cur.execute("SELECT 1")
        admin = tp.raw(dbname="tidepool")
        self.addCleanup(admin.close)
        admin.send(b"Q", b"PAUSE inventorydb\0")
        self.assertTrue(no_answer_within(admin, 0.3))
        # Other pools are not paused.
        r = tp.psql("SELECT 7", dbname="otherdb")
        self.assertEqual((r.ok, r.stdout.strip()), (True, "7"), r)
        # A CancelRequest ends the wait; the pool stays paused.
        h.RawConnection.cancel(tp.host, tp.port, *admin.backend_key)
        with self.assertRaises(h.PgError) as cm:
            admin.results(admin.read_until_ready())
        self.assertEqual(cm.exception.sqlstate, "57014")
        self.assertEqual(pool_row(tp)["paused"], "yes")
        self.assertEqual(pool_row(tp, "otherdb")["paused"], "no")
        # The console answers again.
        self.assertEqual(admin.fetch("SHOW POOLS")[0][0] in ("inventorydb", "otherdb"), True)
        running.commit()
        tp.admin("RESUME inventorydb")
        self.assertTrue(tp.psql("SELECT 1").ok)

    def test_dispose_replaces_idle_now_and_lent_after_its_transaction(self):
        tp = self.daemon(pools={"inventorydb": {"pool_size": 3}})
        conns = [tp.connect(autocommit=False) for _ in range(3)]
        for c in conns:
            self.addCleanup(c.close)
            with c.cursor() as cur:
                cur.execute("SELECT 1")
        lent = conns[0]
        for c in conns[1:]:
            c.commit()  # two idle backends, one lent
        with lent.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            lent_pid = cur.fetchone()[0]
        before = set(pg.backends())
        self.assertEqual(len(before), 3)
        idle = before - {lent_pid}

        tp.admin("DISPOSE")
        h.wait_until(lambda: not (set(pg.backends()) & idle), message="idle backends closed")
        self.assertIn(lent_pid, pg.backends())  # the lent one is left alone...
        with lent.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.assertEqual(cur.fetchone()[0], lent_pid)
        lent.commit()
        h.wait_until(lambda: lent_pid not in pg.backends(), message="the lent one closed at checkin")
        with lent.cursor() as cur:  # ...and replaced after its transaction
            cur.execute("SELECT pg_backend_pid()")
            self.assertNotIn(cur.fetchone()[0], before)
        lent.commit()
        self.assertEqual(admin_error(tp, "DISPOSE nosuchpool"), "3D000")
        tp.admin("DISPOSE inventorydb")

    def test_shutdown_is_like_sigterm(self):
        tp = self.daemon(shutdown_timeout=20)
        pg.execute("DROP TABLE IF EXISTS admin_shutdown; CREATE TABLE admin_shutdown (x int);"
                   " ALTER TABLE admin_shutdown OWNER TO app", dbname="inventorydb")
        conn = tp.connect(autocommit=False)
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO admin_shutdown VALUES (1)")
        tp.expect_exit()
        self.assertEqual(tp.admin("SHUTDOWN"), [])
        time.sleep(0.3)
        self.assertTrue(tp.running, "tidepool did not wait for the running transaction")
        with self.assertRaises((OSError, h.PgError, EOFError)):
            with contextlib.closing(h.RawConnection.open_socket(tp.host, tp.port, 5)) as c:
                c.startup("app", "inventorydb", "secret")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO admin_shutdown VALUES (2)")
        conn.commit()
        self.assertEqual(pg.execute("SELECT count(*) FROM admin_shutdown", dbname="inventorydb"), [(2,)])
        h.wait_until(lambda: not tp.running, message="tidepool exited")
        self.assertEqual(tp.stop(timeout=5), 0, tp.log_text())

    def test_show_config(self):
        tp = self.daemon(pools={"inventorydb": {"pool_size": 7, "isolation_level": "SERIALIZABLE"}})
        rows = tp.admin("SHOW CONFIG")
        self.assertEqual(list(rows[0]), ["section", "key", "value", "default", "changeable"])
        daemon = {r["key"]: r for r in rows if r["section"] == "tidepool"}
        pool = {r["key"]: r for r in rows if r["section"] == "pool.inventorydb"}
        self.assertGreaterEqual(len(daemon), 11)
        self.assertGreaterEqual(len(pool), 17)
        self.assertEqual(daemon["listen_port"]["value"], str(tp.port))
        self.assertEqual(daemon["listen_port"]["default"], "6432")
        self.assertEqual(daemon["listen_port"]["changeable"], "restart")
        self.assertEqual(daemon["admin_users"]["value"], "app")
        self.assertEqual(daemon["max_client_conn"]["changeable"], "live")
        self.assertEqual((pool["pool_size"]["value"], pool["pool_size"]["default"]), ("7", "5"))
        self.assertEqual(pool["isolation_level"]["value"], "SERIALIZABLE")
        self.assertEqual(pool["isolation_level"]["changeable"], "new backends")
        self.assertEqual(pool["pool_logging_name"]["value"], "inventorydb")
        self.assertNotIn("secret", pool["url"]["value"])
        self.assertIn("***", pool["url"]["value"])

    def test_refusals(self):
        tp = self.daemon()
        with self.assertRaises(h.PgError) as cm:
            tp.raw(dbname="tidepool", user="other")
        self.assertEqual(cm.exception.sqlstate, "42501")
        self.assertEqual(admin_error(tp, "PAUSE nosuchpool"), "3D000")
        self.assertEqual(admin_error(tp, "RESUME nosuchpool"), "3D000")
        self.assertEqual(admin_error(tp, "PAUSE a b"), "42601")
        self.assertEqual(admin_error(tp, "RELOAD now"), "42601")
        self.assertEqual(admin_error(tp, "SHOW NONSENSE"), "0A000")
        self.assertEqual(pool_row(tp)["paused"], "no")


if __name__ == "__main__":
    h.main()
