#!/usr/bin/python3
"""Failure drill: 5000 clients connecting at once to a pool of 10 (issue 6).

The test raises its open-file limit (the daemon inherits it), opens 5000 raw
protocol connections at once from one thread (non-blocking sockets and a
selector, tpharness.MassClients), and each logs in with SCRAM-SHA-256 and
runs one query. They queue on the pool's 10 backends (max_overflow 0,
pool_timeout 30: nothing in the config lets any of them fail). Asserted:
every client logs in and gets its answer; all 5000 are held at once (the
client's count, and the daemon's own in SHOW POOLS); PostgreSQL never sees
more than pool_size + max_overflow backends of the pool; the daemon stays up.
Printed: connections held at peak, backends at peak, time taken.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

CLIENTS = 5000
POOL_SIZE = 10
MAX_OVERFLOW = 0


class ThousandsOfClients(h.TestCase):
    def test_5000_clients_on_10_backends(self):
        limit = h.raise_nofile(20000)
        self.assertGreaterEqual(limit, CLIENTS + 200, "the open-file limit is too low for this drill")
        with h.Cluster() as pg:
            h.create_login_role(pg, "drill", "drillpw")
            pools = {"inventorydb": h.small_pool(pg, "drill", "drillpw", pool_size=POOL_SIZE,
                                                 max_overflow=MAX_OVERFLOW, pool_timeout=30)}
            settings = {"max_client_conn": CLIENTS + 100, "log_level": "info", "admin_users": "admin"}
            users = {"app": h.scram_verifier("secret"), "admin": "adminpw"}
            with h.Tidepool(pg, pools=pools, settings=settings, users=users) as tp, \
                    h.BackendSampler(pg, "inventorydb", "drill") as sampler:
                mass = h.MassClients(tp.host, tp.port, CLIENTS,
                                     queries=("SELECT pg_backend_pid()",))
                with mass:
                    mass.run(timeout=50)
                    with tp.raw(dbname="tidepool", user="admin", password="adminpw") as admin:
                        res = admin.query("SHOW POOLS")[-1]
                        row = dict(zip(res.columns, res.rows[0]))
                daemon_clients = int(row["clients"])
                pids = {r[0][0][0] for r in mass.results if r}
                h.drill_report(f"{CLIENTS} clients: {mass.done} logged in and answered in {mass.elapsed:.1f}s; "
                       f"connections held at peak {mass.peak_held} (tidepool's count {daemon_clients}); "
                       f"errors {mass.errors or 'none'}; closed by the server {mass.closed}; "
                       f"backends at peak {sampler.max} over {sampler.samples} samples, "
                       f"{len(pids)} distinct backend pids")
                self.assertEqual(mass.errors, {}, "clients got errors the config does not imply")
                self.assertEqual(mass.closed, 0, "clients were closed by the server")
                self.assertEqual(mass.done, CLIENTS)
                self.assertEqual(mass.peak_held, CLIENTS)
                self.assertGreaterEqual(daemon_clients, CLIENTS)
                self.assertLessEqual(sampler.max, POOL_SIZE + MAX_OVERFLOW)
                self.assertLessEqual(len(pids), POOL_SIZE + MAX_OVERFLOW)
                # Served through tidepool's backends, and the daemon lives on.
                self.assertTrue(tp.running, "tidepool died")
                self.assertEqual(tp.psql("SELECT 42").stdout.strip(), "42")


if __name__ == "__main__":
    h.main()
