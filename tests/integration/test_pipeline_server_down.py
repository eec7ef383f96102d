#!/usr/bin/python3
"""A client pipelining many queries while its pool's server is down.

The pool reaches PostgreSQL through its Unix socket; once the cluster is
stopped the socket file is gone and every connect fails at once, inside the
checkout. A logged-in client (transaction mode, so it holds no backend) then
sends PIPELINED empty Queries in one write. Each must get its own ErrorResponse
(08006) and ReadyForQuery, in order, and the daemon must stay up. (Each of
these failures used to process the next message one stack frame deeper, until
the daemon's stack overflowed: found by tests/fuzz/fuzz_client.)
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

PIPELINED = 20000


class PipelineServerDown(h.TestCase):
    def test_pipelined_queries_with_server_down(self):
        with h.Cluster() as pg:
            url = h.conninfo(host=pg.socket_dir, port=pg.port, dbname="inventorydb",
                             user=h.APP_USER, password=h.APP_PASSWORD)
            pools = {"inventorydb": {"url": url, "pool_mode": "transaction", "pool_timeout": 0}}
            with h.Tidepool(pg, pools=pools) as tp:
                c = tp.raw()
                self.assertEqual(c.fetch("SELECT 1"), [("1",)])
                pg.stop()
                # tidepool watches its idle backend: it sees it go.
                h.wait_for_log(tp, "): lost", timeout=10)
                query = b"Q" + struct.pack("!I", 5) + b"\0"
                c.sock.sendall(query * PIPELINED)
                errors = ready = 0
                sqlstates = set()
                while ready < PIPELINED:
                    t, body = c.read_message()
                    if t == b"E":
                        errors += 1
                        sqlstates.add(h.PgError(h._fields(body)).sqlstate)
                    elif t == b"Z":
                        ready += 1
                        self.assertEqual(errors, ready, "one error per query, before its ReadyForQuery")
                h.log(f"{PIPELINED} pipelined queries: {errors} errors {sorted(sqlstates)}, {ready} ReadyForQuery")
                self.assertEqual(sqlstates, {"08006"})
                self.assertTrue(tp.running, "tidepool died")
                # The connection is still usable, and so is the daemon.
                c.send(b"Q", b"SELECT 1\0")
                msgs = c.read_until_ready()
                self.assertEqual([t for t, _ in msgs], [b"E", b"Z"])
                c.close()
                self.assertTrue(tp.running, "tidepool died")


if __name__ == "__main__":
    h.main()
