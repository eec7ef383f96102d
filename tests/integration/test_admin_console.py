#!/usr/bin/python3
"""The admin console, virtual database `tidepool` (SPEC §5): SHOW POOLS,
SHOW CLIENTS and SHOW SERVERS give real figures, including pinned clients
(SPEC §4 "Session state"); a user not in admin_users is refused with 42501.
"""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402


def rows(tp, sql):
    # Header on, footer off (run_psql asks for tuples only otherwise).
    r = tp.psql(sql, dbname="tidepool", args=("-P", "tuples_only=off", "-P", "footer=off"))
    assert r.ok, r
    lines = r.stdout.strip().splitlines()
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|"))) for line in lines[1:]]


class AdminConsole(h.TestCase):
    def test_show_pools_clients_servers(self):
        with h.Cluster() as pg, h.Tidepool(
                pg, pools={"inventorydb": {"url": pg.url("inventorydb"), "pool_size": 3, "max_overflow": 0}},
                settings={"admin_users": "app"},
                users={"app": "secret", "other": "secret"}) as tp:
            with contextlib.closing(tp.connect(autocommit=True)) as a, \
                    contextlib.closing(tp.connect(autocommit=True)) as b, \
                    contextlib.closing(tp.connect(autocommit=True)) as idle:
                a.cursor().execute("LISTEN admin_test")          # pins a
                with b.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_backend_pid()")      # b holds a backend
                    pid_b = cur.fetchone()[0]
                with idle.cursor() as cur:
                    cur.execute("SELECT 1")                     # and gives it back

                pools = rows(tp, "SHOW POOLS")
                self.assertEqual(len(pools), 1)
                p = pools[0]
                self.assertEqual(p["pool"], "inventorydb")
                self.assertEqual(p["mode"], "transaction")
                self.assertEqual(p["pool_size"], "3")
                self.assertEqual(p["checked_out"], "2")   # a (pinned) and b (in a transaction)
                self.assertEqual(p["checked_in"], "1")
                self.assertEqual(p["pinned"], "1")
                self.assertEqual(p["clients"], "3")
                self.assertEqual(p["waiting"], "0")

                clients = rows(tp, "SHOW CLIENTS")
                pool_clients = [c for c in clients if c["pool"] == "inventorydb"]
                self.assertEqual(len(pool_clients), 3)
                self.assertEqual(sorted(c["pinned"] for c in pool_clients), ["no", "no", "yes"])
                self.assertIn(str(pid_b), [c["backend_pid"] for c in pool_clients])

                servers = rows(tp, "SHOW SERVERS")
                self.assertEqual(len(servers), 3)
                self.assertEqual(sorted(pg.backends()), sorted(int(s["pid"]) for s in servers))

                a.cursor().execute("UNLISTEN *")                 # unpins a
                self.assertEqual(rows(tp, "SHOW POOLS")[0]["pinned"], "0")
                b.rollback()

            refused = tp.psql("SHOW POOLS", dbname="tidepool", user="other", password="secret")
            self.assertFalse(refused.ok)
            self.assertIn("not allowed on the admin console", refused.stderr)
            bad = tp.psql("SHOW NONSENSE", dbname="tidepool")
            self.assertFalse(bad.ok)
            self.assertIn("unsupported command", bad.stderr)


if __name__ == "__main__":
    h.main()
