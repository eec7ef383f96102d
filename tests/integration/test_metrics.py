#!/usr/bin/python3
"""The Prometheus endpoint at metrics_listen (SPEC §5, issue 5 must-show 5).

GET /metrics is parsed by a strict parser written here for the text
exposition format 0.0.4 (every line matches the grammar; every family has
# HELP and # TYPE before its samples, once, and its samples are contiguous;
histogram buckets are cumulative, end at le="+Inf", and _count equals the
+Inf bucket). After a known load, at a quiet moment, its counters and gauges
equal what SHOW STATS and SHOW POOLS say. Other paths get 404, other methods
405, garbage 400 with a log line, and none of it disturbs the daemon; many
scrapes at once and a client that never sends its request do not block it.
"""

import math
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)"
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL}={LABEL_VALUE})(?:,{LABEL}={LABEL_VALUE})*,?)?\}})? "
                       rf"({VALUE})(?: -?\d+)?$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
LABEL_PAIR_RE = re.compile(rf"({LABEL})=({LABEL_VALUE})")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v[1:-1])


def parse_exposition(text):
    """{family: {"type", "help", "samples": [(name, {labels}, value)]}}; raises
    AssertionError on anything the format does not allow."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families = {}
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        m = HELP_RE.match(line)
        if m:
            name = m.group(1)
            assert name not in families, f"{where}: family {name} announced twice"
            families[name] = {"help": m.group(2), "type": None, "samples": []}
            current = name
            continue
        m = TYPE_RE.match(line)
        if m:
            assert m.group(1) == current and families[current]["type"] is None, \
                f"{where}: TYPE must follow the family's HELP, once"
            families[current]["type"] = m.group(2)
            continue
        assert not line.startswith("#"), f"{where}: unexpected comment"
        m = SAMPLE_RE.match(line)
        assert m, f"{where}: not a sample line"
        name, labels_text, value = m.groups()
        assert current is not None and families[current]["type"], f"{where}: sample before HELP and TYPE"
        fam = families[current]
        allowed = {current}
        if fam["type"] == "histogram":
            allowed = {current + "_bucket", current + "_sum", current + "_count"}
        assert name in allowed, f"{where}: sample of {name} inside family {current}"
        labels = {}
        for lm in LABEL_PAIR_RE.finditer(labels_text or ""):
            assert lm.group(1) not in labels, f"{where}: label repeated"
            labels[lm.group(1)] = unescape(lm.group(2))
        fam["samples"].append((name, labels, float(value)))
    for name, fam in families.items():
        assert fam["type"], f"family {name} has no TYPE"
        if fam["type"] == "counter":
            assert all(v >= 0 for _, _, v in fam["samples"]), name
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            assert "le" in labels, f"{name}: bucket without le"
            s["buckets"].append((float(labels["le"]), value))
        elif sname.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    assert series, f"{name}: no series"
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        assert les == sorted(les) and len(set(les)) == len(les), f"{name}{key}: le not increasing"
        assert les and math.isinf(les[-1]), f"{name}{key}: no +Inf bucket last"
        assert counts == sorted(counts), f"{name}{key}: buckets not cumulative"
        assert s["count"] is not None and s["sum"] is not None, f"{name}{key}: _count or _sum missing"
        assert s["count"] == counts[-1], f"{name}{key}: _count != +Inf bucket"


def value(families, family, pool=None, name=None, **labels):
    want = dict(labels)
    if pool is not None:
        want["pool"] = pool
    found = [v for n, lab, v in families[family]["samples"] if n == (name or family) and lab == want]
    assert len(found) == 1, (family, want, found)
    return found[0]


def http(port, raw_request, timeout=10):
    """Send bytes, read until the server closes; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw_request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def table(admin, sql):
    res = admin.query(sql)[-1]
    return {row[0]: dict(zip(res.columns, row)) for row in res.rows}


class Metrics(h.TestCase):
    def test_parser_is_strict(self):
        """The parser used below refuses what the format does not allow."""
        good = ("# HELP m_total Things.\n# TYPE m_total counter\nm_total{pool=\"a\\\"b\"} 3\n"
                "# HELP h Hist.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                "h_sum 0.5\nh_count 2\n")
        fams = parse_exposition(good)
        self.assertEqual(fams["m_total"]["samples"], [("m_total", {"pool": 'a"b'}, 3.0)])
        bad = [
            good[:-1],                                                   # no final line feed
            "m 1\n",                                                     # no HELP/TYPE
            "# TYPE m gauge\n# HELP m x\nm 1\n",                         # TYPE before HELP
            "# HELP m x\n# TYPE m gauge\nm{pool=\"a} 1\n",              # bad label value
            "# HELP m x\n# TYPE m gauge\nm 1 2 3\n",                    # junk after the value
            "# HELP m x\n# TYPE m gauge\nn 1\n",                        # sample of another family
            "# HELP m x\n# TYPE m gauge\nm 1\n# HELP m x\n# TYPE m gauge\nm 2\n",  # family twice
            "# HELP m x\n# TYPE m counter\nm -1\n",                     # negative counter
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
            "h_sum 1\nh_count 1\n",                                      # not cumulative
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",  # no +Inf
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  # count
        ]
        for text in bad:
            with self.assertRaises(AssertionError, msg=text):
                parse_exposition(text)

    def test_metrics_endpoint(self):
        port = h.free_port()
        pools = {"inventorydb": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 1,
                                 "pool_logging_name": "inventory_main"},
                 "otherdb": {}}
        with h.Cluster() as pg, h.Tidepool(pg, pools=pools,
                                           settings={"admin_users": "app",
                                                     "metrics_listen": f"127.0.0.1:{port}"}) as tp, \
                tp.raw(dbname="tidepool") as admin:
            url = f"http://127.0.0.1:{port}/metrics"

            # A known load: transactions, a pinned client, one pool timeout.
            a, b, c = tp.raw(), tp.raw(), tp.raw()
            for i in range(4):
                a.query("BEGIN")
                a.query(f"SELECT {i}")
                a.query("COMMIT")
            a.prepared("SELECT $1::int", (5,))
            b.query("LISTEN metrics_test")                 # pinned, holds a backend
            c.query("BEGIN")
            c.query("SELECT 1")                            # holds the other
            with tp.raw() as d:
                with self.assertRaises(h.PgError) as cm:
                    d.query("SELECT 1")                    # waits 1 s, then 53300
                self.assertEqual(cm.exception.sqlstate, "53300")
            # d's Terminate may still be on its way: wait until it is gone.
            h.wait_until(lambda: table(admin, "SHOW POOLS")["inventorydb"]["clients"] == "3",
                         message="d gone")

            # A quiet moment: nothing runs between the three readings.
            stats1, pools1 = table(admin, "SHOW STATS"), table(admin, "SHOW POOLS")
            with urllib.request.urlopen(url, timeout=10) as r:
                self.assertEqual(r.status, 200)
                self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"),
                                r.headers["Content-Type"])
                self.assertEqual(r.headers["Connection"], "close")
                body = r.read().decode("utf-8")
                self.assertEqual(int(r.headers["Content-Length"]), len(body.encode()))
            stats2, pools2 = table(admin, "SHOW STATS"), table(admin, "SHOW POOLS")
            self.assertEqual(stats1, stats2)
            fams = parse_exposition(body)

            self.assertEqual(value(fams, "tidepool_up"), 1)
            self.assertEqual(value(fams, "tidepool_clients"), 4)   # a, b, c and the admin console
            self.assertEqual(fams["tidepool_transactions_total"]["type"], "counter")
            self.assertEqual(fams["tidepool_pool_checked_out"]["type"], "gauge")
            self.assertEqual(fams["tidepool_checkout_wait_seconds"]["type"], "histogram")
            for pool, label in (("inventorydb", "inventory_main"), ("otherdb", "otherdb")):
                st, po = stats1[pool], pools1[pool]
                for column, family in (("total_xact_count", "tidepool_transactions_total"),
                                       ("total_query_count", "tidepool_queries_total"),
                                       ("total_received", "tidepool_client_received_bytes_total"),
                                       ("total_sent", "tidepool_client_sent_bytes_total"),
                                       ("total_server_assignment_count", "tidepool_checkouts_total"),
                                       ("timeouts", "tidepool_checkout_timeouts_total"),
                                       ("invalidations", "tidepool_invalidations_total"),
                                       ("recycles", "tidepool_recycles_total"),
                                       ("connects", "tidepool_backend_connects_total"),
                                       ("connect_failures", "tidepool_backend_connect_failures_total"),
                                       ("pre_ping_failures", "tidepool_pre_ping_failures_total")):
                    self.assertEqual(int(st[column]), value(fams, family, label), (pool, column))
                for column, family in (("checked_in", "tidepool_pool_checked_in"),
                                       ("checked_out", "tidepool_pool_checked_out"),
                                       ("connecting", "tidepool_pool_connecting"),
                                       ("overflow", "tidepool_pool_overflow"),
                                       ("waiting", "tidepool_pool_waiting"),
                                       ("clients", "tidepool_pool_clients"),
                                       ("pinned", "tidepool_pool_pinned_clients"),
                                       ("pool_size", "tidepool_pool_size")):
                    self.assertEqual(int(po[column]), value(fams, family, label), (pool, column))
                xact_count = value(fams, "tidepool_transaction_duration_seconds", label,
                                   name="tidepool_transaction_duration_seconds_count")
                self.assertEqual(xact_count, int(st["total_xact_count"]))
                xact_sum = value(fams, "tidepool_transaction_duration_seconds", label,
                                 name="tidepool_transaction_duration_seconds_sum")
                self.assertAlmostEqual(xact_sum * 1e6, int(st["total_xact_time"]), delta=1)
                wait_sum = value(fams, "tidepool_checkout_wait_seconds", label,
                                 name="tidepool_checkout_wait_seconds_sum")
                self.assertAlmostEqual(wait_sum * 1e6, int(st["total_wait_time"]), delta=1)

            # The figures are the load's: 4 + 1 + 1 (LISTEN) transactions so far
            # (c's is still open), one timeout, both backends out, one pinned.
            main = "inventory_main"
            self.assertEqual(value(fams, "tidepool_transactions_total", main), 6)
            self.assertEqual(value(fams, "tidepool_queries_total", main), 12 + 1 + 1 + 2)
            self.assertEqual(value(fams, "tidepool_checkout_timeouts_total", main), 1)
            self.assertEqual(value(fams, "tidepool_pool_checked_out", main), 2)
            self.assertEqual(value(fams, "tidepool_pool_pinned_clients", main), 1)
            self.assertEqual(value(fams, "tidepool_pool_clients", main), 3)
            self.assertEqual(value(fams, "tidepool_pool_clients", "otherdb"), 0)
            self.assertEqual(value(fams, "tidepool_transactions_total", "otherdb"), 0)
            self.assertGreater(value(fams, "tidepool_client_sent_bytes_total", main), 0)

            # HEAD: the same head, no body.
            head = http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head[:100])
            self.assertTrue(head.endswith(b"\r\n\r\n"), head[-100:])
            # A query string is ignored.
            with urllib.request.urlopen(url + "?x=1", timeout=10) as r:
                self.assertEqual(r.status, 200)

            # Other paths and methods.
            for path in ("/", "/metric", "/metrics/x", "/favicon.ico"):
                with self.assertRaises(urllib.error.HTTPError) as cm:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
                self.assertEqual(cm.exception.code, 404, path)
            req = urllib.request.Request(url, data=b"x=1", method="POST")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, 405)
            self.assertEqual(cm.exception.headers["Allow"], "GET, HEAD")

            # Garbage gets 400, however it arrives.
            mark = h.log_mark(tp.log_path)
            for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
                            b"GET /metrics\r\n\r\n",             # HTTP/0.9
                            b"GET /metrics HTTP/2.0\r\n\r\n",
                            b"get /metrics HTTP/1.1\r\n\r\n",
                            b"GET metrics HTTP/1.1\r\n\r\n",
                            b"\r\n\r\n",
                            b"x" * 9000,                         # no line end within the limit
                            b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 9000):  # a head too large
                answer = http(port, garbage)
                self.assertRegex(answer[:40], rb"^HTTP/1\.1 4(00|31) ", garbage[:40])
            bad = [line for line in h.log_since(tp.log_path, mark) if "metrics:" in line and "bad request" in line]
            self.assertGreaterEqual(len(bad), 7, bad)
            # A partial request line, then the client closes its side: 400 too.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /metr")
                s.shutdown(socket.SHUT_WR)
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))

            # A client that never finishes its request blocks nobody; many
            # scrapes at once are all answered.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
                idle.sendall(b"GET /metrics HTTP/1.1\r\n")
                results = []

                def scrape():
                    with urllib.request.urlopen(url, timeout=20) as r:
                        results.append(parse_exposition(r.read().decode()))

                threads = [threading.Thread(target=scrape) for _ in range(20)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                self.assertEqual(len(results), 20)
                for fams2 in results:
                    self.assertEqual(value(fams2, "tidepool_transactions_total", main), 6)

            # The daemon is undisturbed: the pool still serves, the counters moved.
            c.query("COMMIT")
            self.assertEqual(a.fetch("SELECT 42"), [("42",)])
            with urllib.request.urlopen(url, timeout=10) as r:
                fams3 = parse_exposition(r.read().decode())
            self.assertEqual(value(fams3, "tidepool_transactions_total", main), 8)
            self.assertGreater(value(fams3, "tidepool_client_received_bytes_total", main),
                               value(fams, "tidepool_client_received_bytes_total", main))
            for cl in (a, b, c):
                cl.close()
            # A scrape still open when tidepool stops is closed with the rest:
            # the daemon exits 0 (checked when the block ends), nothing leaks.
            lingering = socket.create_connection(("127.0.0.1", port), timeout=10)
            lingering.sendall(b"GET /metrics HTTP/1.1\r\n")
            self.addCleanup(lingering.close)


if __name__ == "__main__":
    h.main()
