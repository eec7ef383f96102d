#!/usr/bin/python3
"""Live reload (issue 5, must show 2): SIGHUP and the admin console's RELOAD
read the file again. While clients are inside transactions holding backends,
a reload that changes pool_size and adds a pool gives no client an error,
their transactions commit, SHOW POOLS shows the new values and the new pool
serves clients. A broken file changes nothing (errors logged, RELOAD returns
them). A removed pool drains: its connected client carries on, a new one gets
3D000. A changed isolation_level reaches new transactions. Keys of the
listeners need a restart and keep their value."""

import contextlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

pg = None


def setUpModule():
    global pg
    pg = h.Cluster().start()
    pg.execute("DROP TABLE IF EXISTS reload_probe; CREATE TABLE reload_probe (who text);"
               " ALTER TABLE reload_probe OWNER TO app", dbname="inventorydb")


def tearDownModule():
    if pg is not None:
        pg.stop()


def pool_row(tp, name):
    rows = [r for r in tp.admin("SHOW POOLS") if r["pool"] == name]
    return rows[0] if rows else None


def wait_pool_size(tp, name, size):
    return h.wait_until(lambda: (pool_row(tp, name) or {}).get("pool_size") == str(size),
                        message=f"SHOW POOLS: {name} pool_size {size}")


def probe_count(who):
    return pg.execute("SELECT count(*) FROM reload_probe WHERE who = %s", (who,),
                      dbname="inventorydb")[0][0]


class Reload(h.TestCase):
    def daemon(self, pools):
        tp = h.Tidepool(pg, pools=pools, settings={"admin_users": "app"}).start()
        self.addCleanup(tp.stop)
        return tp

    def hold_transactions(self, tp, n, who):
        """n psycopg2 clients, each inside a transaction that holds a backend."""
        conns = []
        for _ in range(n):
            conn = tp.connect(autocommit=False)
            self.addCleanup(conn.close)
            with conn.cursor() as cur:
                cur.execute("INSERT INTO reload_probe VALUES (%s)", (who,))
            conns.append(conn)
        return conns

    def finish_transactions(self, conns, who):
        for conn in conns:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO reload_probe VALUES (%s)", (who,))
            conn.commit()

    def test_size_and_new_pool_while_clients_are_mid_transaction(self):
        tp = self.daemon({"inventorydb": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 10}})
        held = self.hold_transactions(tp, 2, "sighup")
        self.assertEqual(pool_row(tp, "inventorydb")["checked_out"], "2")
        # A third client queues for a backend; the larger pool serves it at once.
        waiter = {}

        def queued_client():
            try:
                with contextlib.closing(tp.connect(autocommit=False)) as c:
                    with c.cursor() as cur:
                        cur.execute("INSERT INTO reload_probe VALUES ('sighup')")
                    c.commit()
                    waiter["done"] = time.monotonic()
            except Exception as e:  # reported by the assertions below
                waiter["error"] = e

        t = threading.Thread(target=queued_client, daemon=True)
        t.start()
        h.wait_until(lambda: pool_row(tp, "inventorydb")["waiting"] == "1", message="a client queued")

        # SIGHUP: pool_size 2 -> 4, pool otherdb appears.
        tp.pools["inventorydb"]["pool_size"] = 4
        tp.pools["otherdb"] = {}
        tp.write_config()
        reloaded_at = time.monotonic()
        tp.reload()
        t.join(10)
        self.assertNotIn("error", waiter)
        self.assertLess(waiter["done"] - reloaded_at, 5, "the queued client was not served at the reload")
        wait_pool_size(tp, "inventorydb", 4)
        self.assertIsNotNone(pool_row(tp, "otherdb"))
        # The larger pool serves two more clients while the first two still
        # hold theirs (at pool_size 2 they would time out).
        more = self.hold_transactions(tp, 2, "sighup")
        self.assertEqual(pool_row(tp, "inventorydb")["checked_out"], "4")
        r = tp.psql("SELECT current_database()", dbname="otherdb")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.stdout.strip(), "otherdb")
        self.finish_transactions(held + more, "sighup")
        self.assertEqual(probe_count("sighup"), 9)

        # Admin RELOAD: pool_size 4 -> 3, pool third appears, clients mid-transaction.
        held = self.hold_transactions(tp, 3, "admin")
        tp.pools["inventorydb"]["pool_size"] = 3
        tp.pools["third"] = {"url": pg.url("inventorydb")}
        tp.write_config()
        self.assertEqual(tp.admin("RELOAD"), [])
        row = pool_row(tp, "inventorydb")
        self.assertEqual((row["pool_size"], row["checked_out"]), ("3", "3"))
        r = tp.psql("SELECT count(*) >= 0 FROM reload_probe", dbname="third")
        self.assertEqual((r.ok, r.stdout.strip()), (True, "t"), r)
        self.finish_transactions(held, "admin")
        self.assertEqual(probe_count("admin"), 6)
        # Lowered below what was open: the extra backend closed at checkin.
        h.wait_until(lambda: int(pool_row(tp, "inventorydb")["checked_in"]) <= 3,
                     message="at most pool_size idle")
        self.assertIn("pool third: added", tp.log_text())

    def test_broken_file_changes_nothing(self):
        tp = self.daemon({"inventorydb": {"pool_size": 3}})
        held = self.hold_transactions(tp, 1, "broken")
        before = pool_row(tp, "inventorydb")
        with open(tp.config_path) as f:
            good = f.read()

        # A bad value: SIGHUP logs the error with FILE:LINE and changes nothing.
        tp.pools["inventorydb"]["pool_size"] = "many"
        tp.pools["newpool"] = {}
        tp.write_config()
        tp.reload()
        h.wait_for_log(tp, "refused")
        log = tp.log_text()
        self.assertRegex(log, r"tidepool\.ini:\d+: pool_size: expected an integer >= 0, got 'many'")
        self.assertIsNone(pool_row(tp, "newpool"))
        self.assertEqual(pool_row(tp, "inventorydb")["pool_size"], before["pool_size"])

        # A syntax error: RELOAD returns the errors to the admin, nothing changes.
        with open(tp.config_path, "w") as f:
            f.write(good + "\n[pool.broken\nurl = x\n")
        r = tp.psql("RELOAD", dbname="tidepool")
        self.assertFalse(r.ok)
        self.assertIn("reload refused", r.stderr)
        self.assertRegex(r.stderr, r"tidepool\.ini:\d+:")
        with contextlib.closing(tp.raw(dbname="tidepool")) as raw:
            with self.assertRaises(h.PgError) as cm:
                raw.query("RELOAD")
            self.assertEqual(cm.exception.sqlstate, "F0000")
        self.assertEqual([r["pool"] for r in tp.admin("SHOW POOLS")], ["inventorydb"])
        self.assertEqual(pool_row(tp, "inventorydb")["pool_size"], "3")

        # The client in its transaction never noticed; new clients still work.
        self.finish_transactions(held, "broken")
        self.assertEqual(probe_count("broken"), 2)
        self.assertTrue(tp.psql("SELECT 1").ok)

    def test_removed_pool_drains(self):
        tp = self.daemon({"inventorydb": {}, "otherdb": {}})
        stay = tp.connect(dbname="otherdb", autocommit=False)
        self.addCleanup(stay.close)
        with stay.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
        del tp.pools["otherdb"]
        tp.write_config()
        tp.admin("RELOAD")
        self.assertIsNone(pool_row(tp, "otherdb"))
        # A new client: no such pool.
        with self.assertRaises(h.PgError) as cm:
            tp.raw(dbname="otherdb")
        self.assertEqual(cm.exception.sqlstate, "3D000")
        # The connected one carries on, across transactions.
        with stay.cursor() as cur:
            cur.execute("SELECT current_database()")
            self.assertEqual(cur.fetchone()[0], "otherdb")
        stay.commit()
        with stay.cursor() as cur:
            cur.execute("SELECT 2")
            self.assertEqual(cur.fetchone()[0], 2)
        stay.commit()
        self.assertGreater(len(pg.backends(dbname="otherdb")), 0)
        stay.close()
        # Its last client gone: the pool closes its backends and goes.
        h.wait_for_log(tp, "pool otherdb: drained")
        h.wait_until(lambda: pg.backends(dbname="otherdb") == [], message="otherdb backends closed")
        self.assertTrue(tp.psql("SELECT 1").ok)

    def test_isolation_level_reaches_new_transactions(self):
        tp = self.daemon({"inventorydb": {"pool_size": 2}})
        conn = tp.connect(autocommit=True)
        self.addCleanup(conn.close)
        mid = tp.connect(autocommit=False)
        self.addCleanup(mid.close)

        def isolation(c):
            with c.cursor() as cur:
                cur.execute("SHOW transaction_isolation")
                return cur.fetchone()[0]

        self.assertEqual(isolation(conn), "read committed")
        self.assertEqual(isolation(mid), "read committed")  # mid stays in its transaction
        with mid.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            old_pid = cur.fetchone()[0]
        tp.pools["inventorydb"]["isolation_level"] = "SERIALIZABLE"
        tp.write_config()
        tp.admin("RELOAD")
        self.assertEqual(pool_row(tp, "inventorydb")["isolation"], "SERIALIZABLE")
        self.assertEqual(isolation(conn), "serializable")
        # The transaction running at the reload finishes on its old backend...
        self.assertEqual(isolation(mid), "read committed")
        mid.commit()
        # ...which is retired: the next transaction gets a new backend.
        with mid.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation')")
            pid, iso = cur.fetchone()
        mid.commit()
        self.assertNotEqual(pid, old_pid)
        self.assertEqual(iso, "serializable")
        h.wait_until(lambda: old_pid not in pg.backends(), message="the old backend closed")

    def test_daemon_keys(self):
        tp = self.daemon({"inventorydb": {}})
        port = tp.port
        other = h.free_port()
        tp.settings.update({"listen_port": other, "max_client_conn": 3, "log_level": "info"})
        tp.write_config()
        tp.reload()
        h.wait_for_log(tp, "reloaded")
        self.assertIn("listen_port: '%d' needs a restart" % other, tp.log_text())
        self.assertFalse(h.port_is_free(port), "the old port is still in use")
        self.assertTrue(h.port_is_free(other), "nothing listens on the new port")
        config = {r["key"]: r for r in tp.admin("SHOW CONFIG") if r["section"] == "tidepool"}
        self.assertEqual(config["listen_port"]["value"], str(port))
        self.assertEqual(config["listen_port"]["changeable"], "restart")
        self.assertEqual(config["max_client_conn"]["value"], "3")
        # max_client_conn applies: a fourth client is refused with 53300.
        clients = [tp.raw() for _ in range(2)]
        for c in clients:
            self.addCleanup(c.close)
        with self.assertRaises(h.PgError) as cm:
            # the admin psql above has left; 2 clients + this one + one more
            extra = tp.raw()
            self.addCleanup(extra.close)
            tp.raw()
        self.assertEqual(cm.exception.sqlstate, "53300")


if __name__ == "__main__":
    h.main()
