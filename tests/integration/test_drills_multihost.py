#!/usr/bin/python3
"""Failure drill: a pool url with two hosts (issue 6).

Two PostgreSQL clusters; two pools in front of both, with
target_session_attrs=read-write:
  kw:  host=localhost,localhost port=P1,P2 ...    (names: resolved with
       uv_getaddrinfo before libpq connects, daemon/backend_connect.c)
  uri: postgresql://app:secret@127.0.0.1:P1,127.0.0.1:P2/inventorydb?...
For each: while both run, backends go to the first (inet_server_port());
with the first stopped, new backends go to the second, and clients keep
working; once the first is back, the backends already open on the second
stay in use, and a new backend goes to the first again (libpq tries the
hosts in order for every new connection). Printed: the port each step's
backends reached and any errors clients saw while the first went down.

Host names (one cluster): a name that does not resolve is skipped, as libpq
does; and connect_timeout is per host: a first host that accepts and never
answers costs a new backend connect_timeout (2 s), then the second serves.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402


class TwoHosts(h.TestCase):
    def test_second_host_when_first_is_down(self):
        with h.Cluster() as pg1, h.Cluster() as pg2:
            for pg in (pg1, pg2):
                pg.execute("CREATE TABLE marker (cluster text)", dbname="inventorydb")
                pg.execute("GRANT SELECT ON marker TO app", dbname="inventorydb")
                pg.execute("INSERT INTO marker VALUES (%s)", (f"pg{1 if pg is pg1 else 2}",),
                           dbname="inventorydb")
            p1, p2 = pg1.port, pg2.port
            kw = (f"host=localhost,localhost port={p1},{p2} dbname=inventorydb user=app "
                  f"password=secret target_session_attrs=read-write connect_timeout=5")
            uri = (f"postgresql://app:secret@127.0.0.1:{p1},127.0.0.1:{p2}/inventorydb"
                   f"?target_session_attrs=read-write&connect_timeout=5")
            pools = {name: {"url": url, "pool_size": 2, "max_overflow": 0, "pool_timeout": 10}
                     for name, url in (("kw", kw), ("uri", uri))}
            with h.Tidepool(pg1, pools=pools, settings={"log_level": "info"}) as tp:
                self.drill(tp, pg1, p1, p2)

    def where(self, conn):
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_port(), (SELECT cluster FROM marker)")
            port, marker = cur.fetchone()
        conn.commit()
        return port, marker

    def drill(self, tp, pg1, p1, p2):
        conns = {name: tp.connect(dbname=name) for name in ("kw", "uri")}
        for name, conn in conns.items():
            got = self.where(conn)
            h.drill_report(f"{name}: both up: backend on port {got[0]} ({got[1]})")
            self.assertEqual(got, (p1, "pg1"))

        pg1.down(immediate=False)
        for name, conn in conns.items():
            errors, got = [], None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    if conn.closed:
                        conn = conns[name] = tp.connect(dbname=name)
                    got = self.where(conn)
                    break
                except Exception as e:  # noqa: BLE001 - counted and printed
                    errors.append(str(e).strip().splitlines()[0])
                    if not conn.closed:
                        conn.rollback()
                    time.sleep(0.1)
            h.drill_report(f"{name}: first host down: backend on port {got[0] if got else None} "
                   f"({got[1] if got else None}); {len(errors)} errors on the way: {errors}")
            self.assertEqual(got, (p2, "pg2"))
            # A client connecting now is served by the second as well.
            with tp.connect(dbname=name) as fresh:
                self.assertEqual(self.where(fresh), (p2, "pg2"))
            fresh.close()

        pg1.up()
        for name, conn in conns.items():
            # The backend on the second host stays in the pool and is used;
            # a second one, opened now, goes to the first host.
            other = tp.connect(dbname=name)
            with conn.cursor() as c1, other.cursor() as c2:
                c1.execute("SELECT inet_server_port()")
                c2.execute("SELECT inet_server_port()")
                ports = sorted([c1.fetchone()[0], c2.fetchone()[0]])
            conn.commit()
            other.commit()
            other.close()
            h.drill_report(f"{name}: first host back: two transactions at once used ports {ports} "
                   f"(the kept backend stays on {p2}; the new one went to {p1})")
            self.assertEqual(ports, sorted([p1, p2]))
            conn.close()
        self.assertTrue(tp.running)


class HostNames(h.TestCase):
    def test_unresolvable_host_is_skipped(self):
        # libpq skips a host name that does not resolve; so does tidepool,
        # keeping each host's own port (the bad host's port 1 would refuse).
        with h.Cluster() as pg:
            bad = "no-such-host.invalid"
            pools = {
                "skip": {"url": f"host={bad},localhost port=1,{pg.port} dbname=inventorydb user=app "
                                f"password=secret connect_timeout=5", "pool_size": 1, "pool_timeout": 10},
                "none": {"url": f"host={bad} port={pg.port} dbname=inventorydb user=app password=secret",
                         "pool_size": 1, "pool_timeout": 3},
            }
            with h.Tidepool(pg, pools=pools, settings={"log_level": "info"}) as tp:
                with tp.connect(dbname="skip") as conn, conn.cursor() as cur:
                    cur.execute("SELECT inet_server_port()")
                    self.assertEqual(cur.fetchone()[0], pg.port)
                conn.close()
                # No host resolves: the client gets the resolver's error.
                with self.assertRaises(Exception) as cm:
                    tp.connect(dbname="none").close()
                self.assertIn("could not translate host name", str(cm.exception))
                self.assertIn(f'"{bad}"', tp.log_text())

    def test_black_holed_first_host_times_out_alone(self):
        # connect_timeout is per host, as in libpq: the first host accepts
        # TCP connections (the kernel's backlog) and never answers; after
        # 2 s the second host is tried and the client served.
        with h.Cluster() as pg, socket.socket() as hole:
            hole.bind(("127.0.0.1", 0))
            hole.listen(16)
            dead = hole.getsockname()[1]
            pools = {
                "kw": {"url": f"host=localhost,localhost port={dead},{pg.port} dbname=inventorydb user=app "
                              f"password=secret connect_timeout=2", "pool_size": 1, "pool_timeout": 10},
                "uri": {"url": f"postgresql://app:secret@127.0.0.1:{dead},127.0.0.1:{pg.port}/inventorydb"
                               f"?connect_timeout=2", "pool_size": 1, "pool_timeout": 10},
            }
            with h.Tidepool(pg, pools=pools, settings={"log_level": "info"}) as tp:
                for name in pools:
                    start = time.monotonic()
                    with tp.connect(dbname=name) as conn, conn.cursor() as cur:
                        cur.execute("SELECT inet_server_port()")
                        port = cur.fetchone()[0]
                    conn.close()
                    took = time.monotonic() - start
                    h.drill_report(f"{name}: first host black-holed: backend on port {port} after {took:.1f} s")
                    self.assertEqual(port, pg.port)
                    self.assertGreater(took, 1.5)
                    self.assertLess(took, 6)
                self.assertIn(f"timeout expired on host 127.0.0.1 port {dead}; trying the next host",
                              tp.log_text())


if __name__ == "__main__":
    h.main()
