#!/usr/bin/python3
"""What tidepool logs at each log_level, and under which pool name (SPEC §2
"Logs go to stderr, one line per event, with a level"; §3.1 log_level; §3.2
pool_logging_name, echo, echo_pool).

Each line starts with its level as PostgreSQL writes it (daemon/log.c):
ERROR: (error), WARNING: (warn), LOG: (info), DEBUG: (debug). The events used
here, and their levels in the code:
- "listening on ..." and "tidepool ready" at start: info;
- "login failed: ..." for a wrong password: info;
- "client N (...): user "app" logged in to pool P" and, for the refused
  login, "client N (...): FATAL 28P01: ...": debug;
- "pool P: backend N connect failed: ..." (a pool whose backend refuses its
  password, pool_timeout = 0 so nothing is retried): warn;
- "reload of FILE refused" (SIGHUP with an invalid file): error.

log_level = warn drops every info and debug line and keeps the warning;
error drops the warning too and keeps the error; debug shows all four
levels; without the key (SPEC's default, info) there is no debug line.

pool_logging_name: with echo = true and echo_pool = debug, every line about
the pool (new connection, checkout, checkin, pinning, echo, a failed backend
connect) carries the logging name and never the pool's NAME; a pool without
the key is logged under its NAME.
"""

import contextlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg2  # noqa: E402

pg = None

LEVELS = ("ERROR", "WARNING", "LOG", "DEBUG")
LEVEL_OF = re.compile(r"^(ERROR|WARNING|LOG|DEBUG): ")


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


class LogLevel(h.TestCase):
    def start(self, level):
        """A daemon at this log_level (None: the key not written) with a
        working pool and one whose backend refuses its password."""
        tp = h.Tidepool(pg, pools={
            "inventorydb": {"pool_size": 2, "max_overflow": 0},
            "badpool": {"url": pg.url("inventorydb", password="not-the-password"),
                        "pool_size": 1, "max_overflow": 0, "pool_timeout": 0},
        }, settings={"log_level": level}).start()
        self.addCleanup(tp.check)
        self.addCleanup(tp.stop)
        return tp

    def events(self, tp):
        """A login and a query, a refused login, and a failed backend connect
        (the warning); then a reload of an invalid file (the error). Returns
        the log's lines once the error was logged."""
        with contextlib.closing(tp.connect(autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT 42")
            self.assertEqual(cur.fetchone(), (42,))
        with self.assertRaises(h.PgError):
            tp.raw(password="wrong")
        e = self.assertSqlstate("08006", lambda: tp.raw(dbname="badpool").fetch("SELECT 1"))
        self.assertIn("password authentication failed", e.message)
        with open(tp.config_path, "a") as f:
            f.write("\n[pool.broken]\nno_such_key = 1\n")
        tp.reload()
        h.wait_for_log(tp, "reload of")
        with contextlib.closing(tp.connect(autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT 43")  # the daemon lives on, with the old configuration
        return tp.log_text().splitlines()

    def by_level(self, lines):
        out = {lvl: [] for lvl in LEVELS}
        for line in lines:
            m = LEVEL_OF.match(line)
            if m:
                out[m.group(1)].append(line)
        return out

    def assertHas(self, lines, needle, what):
        self.assertTrue(any(needle in line for line in lines), f"no {what} line ({needle!r}) in {lines}")

    def test_warn_drops_info_and_debug(self):
        tp = self.start("warn")
        got = self.by_level(self.events(tp))
        self.assertEqual(got["LOG"], [], "info lines at log_level = warn")
        self.assertEqual(got["DEBUG"], [], "debug lines at log_level = warn")
        self.assertHas(got["WARNING"], "pool badpool: backend", "warning")
        self.assertHas(got["WARNING"], "connect failed", "warning")
        self.assertHas(got["ERROR"], "reload of", "error")

    def test_error_drops_warnings(self):
        tp = self.start("error")
        got = self.by_level(self.events(tp))
        self.assertEqual(got["LOG"] + got["DEBUG"] + got["WARNING"], [],
                         "info, debug or warning lines at log_level = error")
        self.assertHas(got["ERROR"], "reload of", "error")
        self.assertHas(got["ERROR"], "no_such_key", "error")

    def test_info_is_the_default(self):
        tp = self.start(None)
        got = self.by_level(self.events(tp))
        self.assertEqual(got["DEBUG"], [], "debug lines without log_level (default info)")
        self.assertHas(got["LOG"], "listening on", "info")
        self.assertHas(got["LOG"], "tidepool ready", "info")
        self.assertHas(got["LOG"], 'login failed: user "app", pool "inventorydb"', "info")
        self.assertHas(got["WARNING"], "connect failed", "warning")
        self.assertHas(got["ERROR"], "reload of", "error")

    def test_debug_shows_everything(self):
        tp = self.start("debug")
        got = self.by_level(self.events(tp))
        self.assertHas(got["DEBUG"], 'user "app" logged in to pool inventorydb', "debug")
        self.assertHas(got["DEBUG"], "FATAL 28P01: password authentication failed", "debug")
        self.assertHas(got["LOG"], "listening on", "info")
        self.assertHas(got["LOG"], "login failed", "info")
        self.assertHas(got["WARNING"], "connect failed", "warning")
        self.assertHas(got["ERROR"], "reload of", "error")


class PoolLoggingName(h.TestCase):
    @classmethod
    def setUpClass(cls):
        url = pg.url("inventorydb")
        cls.tp = h.Tidepool(pg, pools={
            "invpool": {"url": url, "pool_logging_name": "inv_main", "echo": True, "echo_pool": "debug",
                        "pool_size": 1, "max_overflow": 0, "pool_timeout": 10},
            "badpool": {"url": pg.url("inventorydb", password="not-the-password"),
                        "pool_logging_name": "bad_alias", "pool_timeout": 0},
            "plainpool": {"url": url, "echo": True, "echo_pool": True},
        }, settings={"log_level": "info"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.tp.stop()
        cls.tp.check()

    def pool_lines(self, name):
        """Lines about a pool logged as `name`: "pool NAME: ..." (pool
        events) and "echo pool=NAME ..." (statements)."""
        pat = re.compile(rf"(?:\bpool {re.escape(name)}:|\becho pool={re.escape(name)} )")
        return [line for line in self.tp.log_text().splitlines() if pat.search(line)]

    def test_logging_name_in_pool_and_echo_lines(self):
        tp = self.tp
        with contextlib.closing(tp.connect(dbname="invpool", autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT 'logging_name_probe'")
            cur.execute("BEGIN")
            cur.execute("SELECT 2")
            cur.execute("COMMIT")
            cur.execute("LISTEN logging_name_channel")  # pins the client: logged too
            cur.execute("UNLISTEN *")
        h.wait_for_log(tp, "no longer pinned")
        lines = self.pool_lines("inv_main")
        for needle in ("Created new connection", "checked out from pool", "being returned to pool",
                       "pinned to its backend (LISTEN)", "no longer pinned"):
            self.assertTrue(any(needle in line for line in lines), f"no {needle!r} line for inv_main: {lines}")
        echo = [line for line in lines if line.startswith("LOG: echo pool=inv_main ")]
        self.assertTrue(any("SELECT 'logging_name_probe'" in line for line in echo), echo)
        self.assertEqual(self.pool_lines("invpool"), [], "lines under the pool's NAME")

    def test_logging_name_in_warnings(self):
        with self.assertRaises(psycopg2.OperationalError):
            self.tp.connect(dbname="badpool").close()
        line = h.wait_for_log(self.tp, "connect failed")
        self.assertTrue(line.startswith("WARNING: pool bad_alias: backend "), line)
        self.assertEqual(self.pool_lines("badpool"), [], "lines under the pool's NAME")

    def test_without_the_key_the_name_is_the_pool_name(self):
        r = self.tp.psql("SELECT 'plain_probe'", dbname="plainpool")
        self.assertEqual(r.returncode, 0, r)
        lines = self.pool_lines("plainpool")
        self.assertTrue(any("Created new connection" in line for line in lines), lines)
        self.assertTrue(any(line.startswith("LOG: echo pool=plainpool ") and "plain_probe" in line
                            for line in lines), lines)


if __name__ == "__main__":
    h.main()
