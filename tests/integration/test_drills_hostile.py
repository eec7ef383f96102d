#!/usr/bin/python3
"""Failure drill: hostile input while well-behaved clients run (issue 6).

Three well-behaved psycopg2 clients commit small transactions through a
transaction-mode pool of 4 the whole time. Meanwhile bad clients, ROUNDS of
each kind, do:

  garbage_startup     random bytes instead of a startup packet   -> FATAL 08P01, closed
  garbage_message     logged in, then a message of an unknown type
                      with random bytes                          -> FATAL 08P01, closed
  huge_startup        a startup packet whose length is 2 GB      -> FATAL 08P01, closed
  huge_message        logged in, a Query whose length is 2 GB    -> FATAL 08P01, closed
  huge_in_txn         the same inside a transaction              -> FATAL 08P01, closed;
                                                                    its backend rolled back
  truncated_startup   half a startup packet, then close          -> (we close: no reply possible)
  truncated_query     logged in, half a Query, then close        -> (we close: no reply possible)
  truncated_copydata  logged in, half a CopyData, then close     -> (we close: no reply possible)
  truncated_in_txn    BEGIN, an INSERT, half a Query, close      -> (we close); nothing committed
  vanish_mid_copy     BEGIN, COPY FROM STDIN, rows, then reset   -> (we close); nothing committed,
                                                                    its backend rolled back and reused
  half_open_silent    connect and send nothing, stay             -> nothing sent to it while it stays
  half_open_startup   half a startup packet, stay                -> nothing sent to it while it stays
                                                                    (a login timeout may end them with
                                                                    an error: accepted, and printed)

Asserted: tidepool stays up; the well-behaved clients never see an error and
keep committing; each bad client gets what is written above; nothing a bad
client began is committed; the backends stay within the pool; the daemon's
resident memory (VmRSS) after the bad clients are gone is within a small
tolerance of its baseline taken after a warm-up round (not under ASan, whose
quarantine and shadow memory make RSS meaningless: LeakSanitizer checks for
leaks there when the daemon exits). The count of each bad input is printed.
"""

import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg2  # noqa: E402

import tpharness as h  # noqa: E402

ROUNDS = 25          # of each bad input, after one warm-up round
WELL_BEHAVED = 3
POOL_SIZE = 4
RSS_TOLERANCE_KB = 1024


def startup_packet(user="app", database="inventorydb"):
    body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


def message(t, body):
    return t + struct.pack("!i", len(body) + 4) + body


# Frontend message types PostgreSQL knows; a garbage message uses another.
VALID_TYPES = set(b"BCcdDEFfHPpQSX")


class Bad:
    """What the bad clients do, and what they got."""

    def __init__(self, tp, pg, rng):
        self.tp, self.pg, self.rng = tp, pg, rng
        self.sent = {}          # kind -> count
        self.outcomes = {}      # kind -> {outcome: count}
        self.half_open = []     # sockets kept open
        self.copy_pids = []     # (pid, fate) of the backends a vanished COPY used

    def count(self, kind, outcome):
        self.sent[kind] = self.sent.get(kind, 0) + 1
        o = self.outcomes.setdefault(kind, {})
        o[outcome] = o.get(outcome, 0) + 1

    def sock(self):
        s = socket.create_connection((self.tp.host, self.tp.port), timeout=10)
        return s

    @staticmethod
    def answer(s, timeout=10):
        """What the server does next: ('error', sqlstate, severity) for an
        ErrorResponse followed by a close, ('closed',) for a close without
        one, ('message', type) for something else."""
        conn = h.RawConnection(s)
        s.settimeout(timeout)
        try:
            t, body = conn.read_message()
        except (EOFError, ConnectionResetError):
            return ("closed",)
        except (socket.timeout, TimeoutError):
            return ("silent",)
        if t != b"E":
            return ("message", t)
        fields = h._fields(body)
        closed = conn.closed_by_server(timeout)
        return ("error", fields.get("C"), fields.get("V") or fields.get("S"), "closed" if closed else "open")

    def raw(self):
        return self.tp.raw()

    # -- the kinds --

    def garbage_startup(self):
        s = self.sock()
        data = bytearray(self.rng.randbytes(16384))
        s.sendall(bytes(data))
        self.count("garbage_startup", self.answer(s))
        s.close()

    def garbage_message(self):
        c = self.raw()
        t = self.rng.choice([x for x in range(33, 127) if x not in VALID_TYPES])
        c.sock.sendall(message(bytes([t]), self.rng.randbytes(self.rng.randrange(0, 200))))
        self.count("garbage_message", self.answer(c.sock))
        c.sock.close()

    def huge_startup(self):
        s = self.sock()
        s.sendall(struct.pack("!Ii", 0x80000000, 196608) + b"user\0app\0")
        self.count("huge_startup", self.answer(s))
        s.close()

    def huge_message(self):
        c = self.raw()
        c.sock.sendall(b"Q" + struct.pack("!I", 0x80000000) + b"SELECT 1")
        self.count("huge_message", self.answer(c.sock))
        c.sock.close()

    def huge_in_txn(self):
        c = self.raw()
        c.query("BEGIN")
        c.query("INSERT INTO bad_rows VALUES ('huge_in_txn')")
        c.sock.sendall(b"Q" + struct.pack("!I", 0x80000000) + b"SELECT 1")
        self.count("huge_in_txn", self.answer(c.sock))
        c.sock.close()

    def truncated_startup(self):
        s = self.sock()
        p = startup_packet()
        s.sendall(p[:len(p) // 2])
        s.close()
        self.count("truncated_startup", "closed by us")

    def truncated_query(self):
        c = self.raw()
        m = message(b"Q", b"SELECT 'truncated' FROM generate_series(1, 10)\0")
        c.sock.sendall(m[:len(m) // 2])
        c.sock.close()
        self.count("truncated_query", "closed by us")

    def truncated_copydata(self):
        c = self.raw()
        m = message(b"d", b"x" * 200)
        c.sock.sendall(m[:20])
        c.sock.close()
        self.count("truncated_copydata", "closed by us")

    def truncated_in_txn(self):
        c = self.raw()
        c.query("BEGIN")
        c.query("INSERT INTO bad_rows VALUES ('truncated_in_txn')")
        m = message(b"Q", b"COMMIT\0")
        c.sock.sendall(m[:3])
        c.sock.close()
        self.count("truncated_in_txn", "closed by us")

    def vanish_mid_copy(self):
        c = self.raw()
        c.query("BEGIN")
        pid = int(c.fetch("SELECT pg_backend_pid()")[0][0])
        c.send(b"Q", b"COPY bad_rows FROM STDIN\0")
        t, _ = c.read_message()
        if t != b"G":
            raise AssertionError(f"expected CopyInResponse, got {t!r}")
        for i in range(3):
            c.send(b"d", f"vanish_mid_copy_{i}\n".encode())
        # Vanish: a reset, not an orderly close.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()
        self.count("vanish_mid_copy", "closed by us")
        self.copy_pids.append((pid, self.copy_backend_fate(pid)))

    def copy_backend_fate(self, pid, timeout=10):
        """What became of the backend of a client that vanished mid-COPY:
        'kept' once it has run something after the COPY (the ROLLBACK of its
        reset, or another client's work), 'closed' if it is gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.pg.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            if not rows:
                return "closed"
            if not rows[0][0].startswith("COPY bad_rows"):
                return "kept"
            time.sleep(0.02)
        return "still in COPY"

    def half_open_silent(self):
        self.half_open.append(("half_open_silent", self.sock()))

    def half_open_startup(self):
        s = self.sock()
        p = startup_packet()
        s.sendall(p[:len(p) // 2])
        self.half_open.append(("half_open_startup", s))

    KINDS = ("garbage_startup", "garbage_message", "huge_startup", "huge_message", "huge_in_txn",
             "truncated_startup", "truncated_query", "truncated_copydata", "truncated_in_txn",
             "vanish_mid_copy", "half_open_silent", "half_open_startup")

    def round(self):
        kinds = list(self.KINDS)
        self.rng.shuffle(kinds)
        for k in kinds:
            getattr(self, k)()

    def close_half_open(self):
        """Check that nothing was sent to them, then close them."""
        for kind, s in self.half_open:
            s.setblocking(False)
            try:
                got = s.recv(1, socket.MSG_PEEK)
                # Closed, or told something: a login timeout, if the build has one.
                outcome = self.answer(s) if got else ("closed",)
            except BlockingIOError:
                outcome = "silent"
            except OSError:
                outcome = ("closed",)
            self.count(kind, outcome)
            s.close()
        self.half_open = []


class HostileInput(h.TestCase):
    def test_hostile_input(self):
        seed = int(os.environ.get("TP_DRILL_SEED") or time.time())
        h.drill_report(f"random seed {seed} (TP_DRILL_SEED={seed} repeats it)")
        rng = random.Random(seed)
        with h.Cluster() as pg:
            h.create_login_role(pg, "drill", "drillpw")
            pg.execute("CREATE TABLE steady (writer int, seq int)", dbname="inventorydb")
            pg.execute("CREATE TABLE bad_rows (what text)", dbname="inventorydb")
            pg.execute("GRANT ALL ON steady, bad_rows TO drill", dbname="inventorydb")
            pools = {"inventorydb": h.small_pool(pg, "drill", "drillpw", pool_size=POOL_SIZE,
                                                 max_overflow=0, pool_timeout=30)}
            with h.Tidepool(pg, pools=pools, settings={"log_level": "info"}) as tp:
                self.drill(pg, tp, rng)

    def drill(self, pg, tp, rng):
        stop = threading.Event()
        lock = threading.Lock()
        errors, committed = [], []

        def well_behaved(w):
            seq, conn = 0, None
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = tp.connect()
                    seq += 1
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO steady VALUES (%s, %s)", (w, seq))
                        cur.execute("SELECT count(*) FROM steady WHERE writer = %s", (w,))
                        n = cur.fetchone()[0]
                    conn.commit()
                    with lock:
                        committed.append((w, seq))
                        if n != seq:
                            errors.append(f"writer {w}: saw {n} rows of its own, expected {seq}")
                except psycopg2.Error as e:
                    seq -= 1
                    with lock:
                        errors.append(f"writer {w}: {type(e).__name__}: {str(e).strip()}")
                    if conn is not None:
                        conn.close()
                time.sleep(0.005)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=well_behaved, args=(w,), daemon=True) for w in range(WELL_BEHAVED)]
        for t in threads:
            t.start()
        bad = Bad(tp, pg, rng)
        asan = h.sanitized_binary()
        try:
            # Warm-up: one round of everything, then the baseline.
            bad.round()
            bad.close_half_open()
            time.sleep(1.0)
            baseline = h.rss_kb(tp.proc.pid)
            warm_sent = dict(bad.sent)
            started = time.monotonic()
            for _ in range(ROUNDS):
                bad.round()
            peak = h.rss_kb(tp.proc.pid)
            time.sleep(0.5)
            self.assertTrue(tp.running, "tidepool died")
            bad.close_half_open()
            elapsed = time.monotonic() - started
            before = len(committed)
            time.sleep(1.0)
            self.assertGreater(len(committed), before, "the well-behaved clients stopped committing")
        finally:
            stop.set()
            for t in threads:
                t.join(20)
        self.assertFalse(any(t.is_alive() for t in threads), "a well-behaved client hung")
        after = h.rss_kb(tp.proc.pid)

        h.drill_report(f"bad inputs sent in {elapsed:.1f}s (plus {sum(warm_sent.values())} in the warm-up round):")
        for k in Bad.KINDS:
            h.drill_report(f"  {k:20} {bad.sent.get(k, 0) - warm_sent.get(k, 0):4}   outcomes {bad.outcomes.get(k)}")
        h.drill_report(f"well-behaved: {len(committed)} transactions committed, {len(errors)} errors")
        h.drill_report(f"tidepool VmRSS: baseline {baseline} kB, with bad clients {peak} kB, "
               f"after {after} kB ({after - baseline:+d} kB){' [ASan build]' if asan else ''}")

        self.assertEqual(errors, [], "a well-behaved client saw an error")
        fatal_08p01 = ("error", "08P01", "FATAL", "closed")
        for k in ("garbage_startup", "garbage_message", "huge_startup", "huge_message", "huge_in_txn"):
            self.assertEqual(bad.outcomes[k], {fatal_08p01: bad.sent[k]}, k)
        for k in ("half_open_silent", "half_open_startup"):
            # Nothing is owed to them while they stay; a login timeout may
            # end them with an error (08P01 or 57P05 in PostgreSQL's words).
            for outcome in bad.outcomes[k]:
                self.assertTrue(outcome == "silent" or outcome[:2] in (("error", "08P01"), ("error", "57P05")),
                                f"{k}: {outcome}")

        # Nothing a bad client began was committed; every well-behaved commit is there.
        self.assertEqual(pg.execute("SELECT what, count(*) FROM bad_rows GROUP BY 1", dbname="inventorydb"), [])
        rows = pg.execute("SELECT count(*) FROM steady", dbname="inventorydb")[0][0]
        self.assertEqual(rows, len(committed))

        # Backends: within the pool, none left in a transaction, and those a
        # vanished COPY used were rolled back and kept (not closed).
        states = h.wait_until(
            lambda: (lambda s: s if all(v == "idle" for v in s.values()) else None)(
                h.backend_states(pg, "inventorydb", "drill")),
            timeout=10, message="every backend idle")
        fates = {}
        for _, fate in bad.copy_pids:
            fates[fate] = fates.get(fate, 0) + 1
        h.drill_report(f"backends now: {len(states)}; the backends of clients that vanished mid-COPY: {fates}")
        self.assertLessEqual(len(states), POOL_SIZE)
        self.assertEqual(fates, {"kept": len(bad.copy_pids)},
                         "the backend of a client that vanished mid-COPY was not rolled back and reused")

        if not asan:
            self.assertLess(after - baseline, RSS_TOLERANCE_KB,
                            f"memory did not return to its baseline: {baseline} kB -> {after} kB")
        self.assertTrue(tp.running, "tidepool died")


if __name__ == "__main__":
    h.main()
