#!/usr/bin/python3
"""The log (SPEC §2 "Logs go to stderr, one line per event, with a level";
§3.2 echo_pool).

- One line per event: a client whose startup user holds a newline and a fake
  "ERROR:" line gets no log line of its own making; libpq's multi-line
  connect errors ("... Connection refused" then "Is the server running ...")
  stay on one line; a notice PostgreSQL sends while a backend logs in is a
  line of tidepool's. Every line of the daemon's log starts with a level.
- While PostgreSQL is down, the connect attempts made for a waiting client
  (one every 100 ms) are not one WARNING each: the first failure is logged,
  then at most one line every 10 s, and one line when a connect succeeds
  again.
- echo_pool = true logs checkout and checkin at info (log_level = info, the
  default, not the harness's debug); echo_pool = false does not.
"""

import contextlib
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

# What a line of tidepool's own starts with (log.c: PostgreSQL's level words).
LEVEL = re.compile(r"^(LOG|WARNING|ERROR|DEBUG): ")

pg = None


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


def unlevelled(text):
    """The lines of a daemon's log that do not start with a level."""
    return [line for line in text.splitlines() if not LEVEL.match(line)]


class OneLinePerEvent(h.TestCase):
    def test_a_user_name_cannot_forge_a_log_line(self):
        forged = "ERROR:  forged line from a client"
        with h.Tidepool(pg) as tp:
            with self.assertRaises(h.PgError) as cm:
                h.RawConnection.connect(tp.host, tp.port, user=f"evil\n{forged}\r\x1b[2J",
                                        database="inventorydb", password="whatever")
            self.assertEqual(cm.exception.sqlstate, "28P01")
            line = h.wait_for_log(tp, "login failed")
            text = tp.log_text()
        self.assertIn("evil\\nERROR:  forged line from a client\\r\\x1b[2J", line)
        for ln in text.splitlines():
            self.assertFalse(ln.startswith(forged), f"a client forged a log line: {ln!r}")
        self.assertEqual(unlevelled(text), [], "lines without a level")

    def test_libpq_errors_stay_on_one_line(self):
        # Nothing listens on that port: libpq's message has a second line,
        # "Is the server running on that host and accepting TCP/IP connections?"
        dead = h.free_port()
        pools = {"nowhere": {"url": f"postgresql://app:secret@127.0.0.1:{dead}/inventorydb",
                             "pool_timeout": 1, "pool_mode": "session"}}
        with h.Tidepool(pg, pools=pools) as tp:
            with self.assertRaises(h.PgError) as cm:
                tp.raw(dbname="nowhere")
            self.assertEqual(cm.exception.sqlstate, "08006")
            self.assertIn("Is the server running", cm.exception.message)  # the client gets it all
            line = h.wait_for_log(tp, "Is the server running")
            text = tp.log_text()
        self.assertTrue(LEVEL.match(line), line)
        self.assertIn("Connection refused", line)
        self.assertEqual(unlevelled(text), [], "lines without a level")


    def test_a_notice_at_connect_is_a_log_line(self):
        # A role setting that became invalid: PostgreSQL sends a WARNING
        # while the backend logs in, which libpq would print to stderr as it
        # is ("WARNING:  invalid value ..."), level-less for tidepool.
        pg.execute("DROP ROLE IF EXISTS noticed; CREATE ROLE noticed LOGIN PASSWORD 'noticed';"
                   " GRANT CONNECT ON DATABASE inventorydb TO noticed;"
                   " DROP TEXT SEARCH CONFIGURATION IF EXISTS gone_cfg;"
                   " CREATE TEXT SEARCH CONFIGURATION gone_cfg (COPY = english);"
                   " ALTER ROLE noticed SET default_text_search_config = 'public.gone_cfg';"
                   " DROP TEXT SEARCH CONFIGURATION gone_cfg", dbname="inventorydb")
        pools = {"noticed": {"url": pg.url("inventorydb", user="noticed", password="noticed")}}
        with h.Tidepool(pg, pools=pools) as tp:
            self.assertEqual(tp.raw(dbname="noticed").fetch("SELECT 1"), [("1",)])
            line = h.wait_for_log(tp, "the server says")
            text = tp.log_text()
        self.assertTrue(line.startswith("LOG: pool noticed: backend "), line)
        self.assertIn('invalid value for parameter "default_text_search_config"', line)
        self.assertEqual(unlevelled(text), [], "lines without a level")


class ConnectFailures(h.TestCase):
    def test_retries_while_the_server_is_down_are_not_logged_one_by_one(self):
        with h.Cluster() as own, h.Tidepool(own, pools={"inventorydb": {"pool_timeout": 20}}) as tp, \
                contextlib.closing(tp.connect(autocommit=True)) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")  # the pool knows its server; one idle backend
            own.down(immediate=True)
            h.wait_for_log(tp, "lost")  # the idle backend's socket closed
            mark = h.log_mark(tp.log_path)
            result = {}

            def query():
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT 42")
                        result["row"] = cur.fetchone()
                except Exception as e:  # noqa: BLE001 - reported below
                    result["error"] = e

            t = threading.Thread(target=query)
            t.start()
            time.sleep(3)  # about 30 attempts, one every 100 ms
            own.up()
            t.join(30)
            self.assertFalse(t.is_alive(), "the waiting client hung")
            self.assertEqual(result.get("row"), (42,), result.get("error"))
            again = h.wait_for_log(tp, "connect succeeded again")
            lines = h.log_since(tp.log_path, mark)
        warnings = [ln for ln in lines if ln.startswith("WARNING:") and "connect" in ln]
        h.log(f"connect warnings while the server was down: {warnings}")
        self.assertGreaterEqual(len(warnings), 1, "the first failure was not logged")
        self.assertLessEqual(len(warnings), 2, f"{len(warnings)} WARNING lines in 3 s:\n" + "\n".join(warnings))
        self.assertRegex(again, r"after \d+ failed attempt")
        self.assertTrue(LEVEL.match(again))


class EchoPool(h.TestCase):
    def daemon_log(self, echo_pool):
        """The log of a daemon at log_level = info whose pool has echo_pool,
        after one client ran two transactions."""
        pools = {"inventorydb": {"echo_pool": echo_pool, "pool_logging_name": "ep"}}
        with h.Tidepool(pg, pools=pools, settings={"log_level": "info"}) as tp, \
                contextlib.closing(tp.connect(autocommit=True)) as conn, conn.cursor() as cur:
            for _ in range(2):
                cur.execute("SELECT 1")
            if echo_pool:
                h.wait_for_log(tp, "being returned to pool")
            else:
                time.sleep(0.3)
            return tp.log_text()

    def test_echo_pool_true_logs_checkout_and_checkin(self):
        text = self.daemon_log(True)
        checkouts = [ln for ln in text.splitlines() if "checked out from pool" in ln]
        checkins = [ln for ln in text.splitlines() if "being returned to pool" in ln]
        self.assertGreaterEqual(len(checkouts), 2, text)
        self.assertGreaterEqual(len(checkins), 2, text)
        for ln in checkouts + checkins:
            self.assertTrue(ln.startswith("LOG: pool ep: Connection <backend"), ln)
        self.assertIn("Created new connection", text)

    def test_echo_pool_false_logs_neither(self):
        text = self.daemon_log(False)
        self.assertNotIn("checked out from pool", text)
        self.assertNotIn("being returned to pool", text)
        self.assertNotIn("Created new connection", text)


if __name__ == "__main__":
    h.main()
