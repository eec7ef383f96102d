#!/usr/bin/python3
"""Limits on what one client may cost (issue 6, limits and hostile input):
max_message_size refuses a larger length prefix with FATAL 08P01 "message too
large" before buffering any of it (a 2 GB prefix does not grow the daemon's
memory), in every state a message can arrive in; client_login_timeout closes a
client that has not finished startup and authentication (half a startup
packet, nothing at all, a SASL exchange left hanging) with 08P01;
client_idle_timeout closes a client idle outside a transaction with 57P05, in
transaction and session mode, but not one inside a transaction, one running a
long query or one that keeps working. A client that stalls half-way
through a small message holds no backend (transaction mode takes such a
message whole before lending one). Other clients are unaffected throughout.
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

MAX = 1024 * 1024  # max_message_size in these tests


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fatal_then_close(c, timeout=5):
    """The FATAL ErrorResponse the server sent before closing, or None."""
    c.sock.settimeout(timeout)
    fields = None
    try:
        while True:
            t, body = c.read_message()
            if t == b"E":
                fields = h._fields(body)
    except (EOFError, ConnectionResetError):
        return fields


class ClientLimits(h.ClusterTestCase):
    def daemon(self, **settings):
        pools = {"inventorydb": {}, "sess": {"url": self.pg.url("inventorydb"), "pool_mode": "session"}}
        return h.Tidepool(self.pg, pools=pools, settings=settings)

    def test_oversized_message(self):
        with self.daemon(max_message_size=MAX) as tp, tp.raw() as bystander:
            self.assertEqual(bystander.fetch("SELECT 1")[0][0], "1")
            # Just under the limit goes through (transaction mode buffers it whole).
            big = "x" * (MAX - 100)
            with tp.raw() as c:
                self.assertEqual(len(c.fetch(f"SELECT '{big}'")[0][0]), len(big))
            base = rss_kib(tp.proc.pid)
            cases = [
                ("transaction mode, between transactions", "inventorydb", None, b"Q", 0x7FFFFFF0),
                ("transaction mode, inside a transaction", "inventorydb", "BEGIN", b"B", 0x7FFFFFF0),
                ("session mode", "sess", None, b"Q", 0xFFFFFFF0),
                ("just over the limit", "inventorydb", None, b"P", MAX + 1),
            ]
            for what, db, before, mtype, length in cases:
                with self.subTest(what), tp.raw(dbname=db) as c:
                    if before:
                        c.fetch(before)
                    c.sock.sendall(mtype + struct.pack("!I", length) + b"\0" * 1000)
                    err = fatal_then_close(c)
                    self.assertIsNotNone(err, "no ErrorResponse before the close")
                    self.assertEqual((err["S"], err["C"], err["M"]), ("FATAL", "08P01", "message too large"))
            grown = rss_kib(tp.proc.pid) - base
            self.assertLess(grown, 32 * 1024, f"RSS grew by {grown} KiB")
            self.assertEqual(bystander.fetch("SELECT 2")[0][0], "2")
            self.assertGreaterEqual(tp.log_text().count("FATAL 08P01: message too large"), len(cases))

    def test_login_timeout(self):
        with self.daemon(client_login_timeout=1) as tp, tp.raw() as bystander:
            started = time.monotonic()
            half = h.RawConnection.open_socket(tp.host, tp.port)
            half.sock.sendall(struct.pack("!i", 40) + struct.pack("!i", 196608) + b"user\0ap")
            silent = h.RawConnection.open_socket(tp.host, tp.port)
            hanging = h.RawConnection.open_socket(tp.host, tp.port)  # SASL asked, never answered
            body = struct.pack("!i", 196608) + b"user\0app\0database\0inventorydb\0\0"
            hanging.sock.sendall(struct.pack("!i", len(body) + 4) + body)
            self.assertEqual(hanging.read_message()[0], b"R")
            for c in (half, silent, hanging):
                err = fatal_then_close(c, timeout=5)
                self.assertIsNotNone(err)
                self.assertEqual((err["S"], err["C"]), ("FATAL", "08P01"), err)
                self.assertIn("client_login_timeout", err["M"])
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(elapsed, 0.9)
            self.assertLess(elapsed, 4.0)
            for c in (half, silent, hanging):
                c.sock.close()
            # Logged in long before: not touched. A new client still gets in.
            self.assertEqual(bystander.fetch("SELECT 1")[0][0], "1")
            with tp.raw() as c:
                self.assertEqual(c.fetch("SELECT 2")[0][0], "2")
            log = tp.log_text()
            self.assertIn("before a complete startup packet", log)
            self.assertIn("during authentication", log)

    def test_idle_timeout(self):
        idle_s = 1.5
        with self.daemon(client_idle_timeout=idle_s) as tp:
            idle = {db: tp.raw(dbname=db) for db in ("inventorydb", "sess")}
            in_txn = {db: tp.raw(dbname=db) for db in ("inventorydb", "sess")}
            busy = tp.raw()
            worker = tp.raw(dbname="sess")
            started = time.monotonic()
            for c in idle.values():
                c.fetch("SELECT 1")
            for c in in_txn.values():
                c.fetch("BEGIN")
                c.fetch("SELECT 1")
            busy.send(b"Q", b"SELECT pg_sleep(3.5), 'slept'\0")
            while time.monotonic() - started < 3.6:
                self.assertEqual(worker.fetch("SELECT 1")[0][0], "1")
                time.sleep(0.3)
            for db, c in idle.items():
                err = fatal_then_close(c, timeout=0.5)
                self.assertIsNotNone(err, f"{db}: idle client not closed")
                self.assertEqual((err["S"], err["C"]), ("FATAL", "57P05"), err)
            for db, c in in_txn.items():
                self.assertEqual(c.fetch("SELECT 2")[0][0], "2", db)
                c.fetch("COMMIT")
            self.assertEqual(busy.results(busy.read_until_ready())[0].rows[0][1], "slept")
            for c in [*idle.values(), *in_txn.values(), busy, worker]:
                c.sock.close()
            self.assertIn("idle for client_idle_timeout", tp.log_text())

    def test_half_a_message_holds_no_backend(self):
        pools = {"inventorydb": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 1}}
        with h.Tidepool(self.pg, pools=pools) as tp, tp.raw() as staller, tp.raw() as other:
            for first in (b"Q", b"P"):
                body = (b"SELECT 'whole'\0" if first == b"Q" else b"\0SELECT 'whole'\0\0\0")
                msg = first + struct.pack("!i", len(body) + 4) + body
                staller.sock.sendall(msg[:9])      # the header and 4 bytes, then a stall
                time.sleep(0.3)
                # The pool's only backend is free: no 53300 after pool_timeout.
                for _ in range(3):
                    self.assertEqual(other.fetch("SELECT 2")[0][0], "2")
                staller.sock.sendall(msg[9:])
                if first == b"P":
                    staller.bind("", "")
                    staller.describe("P", "")
                    staller.execute()
                    staller.sync()
                res = staller.results(staller.read_until_ready())
                self.assertEqual(res[-1].rows, [("whole",)], first)
            self.assertEqual(other.fetch("SELECT 3")[0][0], "3")


if __name__ == "__main__":
    h.main()
