#!/usr/bin/python3
"""bench/profile.py: deterministic cost measures of tidepool, for a loaded machine.

Wall-clock benchmarks (bench/run) move with whatever else the machine does;
these two measures do not:

  cpu   tidepool runs under valgrind's callgrind; after a warm-up,
        `pgbench -n -S -t N` runs through it (transaction mode, md5) and the
        instructions the daemon executed during that run (Ir) are divided by
        the transactions. Prints Ir per transaction and the top functions
        (self and inclusive Ir per transaction). --connect adds pgbench -C
        (a new login per transaction). --pgbouncer measures Debian's
        PgBouncer the same way (same pool size, md5, transaction mode).
  idle  tidepool runs natively; bench/idle_clients.py logs in --clients
        idle clients (md5, application_name set, as in S5) and holds them;
        prints the growth of VmRSS per client, and the growth of the heap
        (malloc'd bytes, from glibc's mallinfo2 through gdb when present).

    bench/profile.py cpu [-t 2000] [-M simple|extended|prepared] [--connect] [--pgbouncer]
    bench/profile.py idle [--clients 2000]

Uses the integration harness (tests/integration/tpharness.py) for a
throwaway PostgreSQL and the daemon; build/tidepool must be built.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import tpharness as h  # noqa: E402

DB = "inventorydb"


def setup_pg(pg):
    r = h.run_pgbench(["-i", "-s", "1", "-q", "-h", pg.host, "-p", str(pg.port), "-U", pg.superuser, DB],
                      password=pg.superuser_password, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    pg.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {h.APP_USER}", dbname=DB)


def daemon(pg, binary=None, start_timeout=10):
    return h.Tidepool(pg, pools={DB: {"pool_mode": "transaction", "pool_size": 4, "max_overflow": 0,
                                      "pool_timeout": 60}},
                      settings={"auth_type": "md5", "log_level": "warn", "max_client_conn": 12000},
                      users={h.APP_USER: h.md5_secret(h.APP_USER, h.APP_PASSWORD)},
                      binary=binary, start_timeout=start_timeout)


def pgbench(tp, args, timeout=600):
    r = h.run_pgbench(["-n", "-h", "127.0.0.1", "-p", str(tp.port), "-U", h.APP_USER, *args, DB],
                      password=h.APP_PASSWORD, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"pgbench {args} failed:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    return int(m.group(1))


def callgrind_run(pg, tmp, bench_args, label, top, pgbouncer=False):
    out = os.path.join(tmp, f"callgrind.{label}")
    if pgbouncer:
        tp = PgBouncer(pg, tmp, out).start()
    else:
        wrapper = os.path.join(tmp, "tidepool-callgrind")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out}.%p "
                    f"--collect-atstart=yes {ROOT}/build/tidepool \"$@\"\n")
        os.chmod(wrapper, 0o755)
        tp = daemon(pg, binary=wrapper, start_timeout=60).start()
    try:
        pgbench(tp, ["-S", "-c", "4", "-j", "1", "-t", "50"])  # warm-up: backends open
        pid = tp.proc.pid
        ctl = h._as_postgres if pgbouncer else list  # vgdb talks to it as its own user
        subprocess.run(ctl(["callgrind_control", "--zero", str(pid)]), check=True, capture_output=True, timeout=60)
        n = pgbench(tp, bench_args)
        subprocess.run(ctl(["callgrind_control", "--dump", str(pid)]), check=True, capture_output=True, timeout=60)
    finally:
        tp.stop(timeout=60)
    dump = os.path.join(tmp, f"callgrind.{label}.{pid}.1")  # the --dump, not the exit's

    def annotate(inclusive):
        return subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                               f"--inclusive={'yes' if inclusive else 'no'}", dump],
                              capture_output=True, text=True, check=True).stdout

    ann, incl = annotate(False), annotate(True)
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", ann).group(1).replace(",", ""))
    print(f"\n== {label}: pgbench {' '.join(bench_args)}: {n} transactions, "
          f"{total:,} Ir in the daemon, {total / n:,.0f} Ir per transaction")

    def rows(text):
        res = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(\S+)", line)
            if m and "PROGRAM" not in line:
                fn = re.sub(r"^.*/", "", m.group(2))  # file:function without the directories
                res.append((int(m.group(1).replace(",", "")), fn))
        return res

    print(f"-- self Ir per transaction (top {top})")
    for ir, fn in rows(ann)[:top]:
        print(f"{ir / n:10,.0f}  {fn}")
    print(f"-- inclusive Ir per transaction (top {top})")
    for ir, fn in rows(incl)[:top]:
        print(f"{ir / n:10,.0f}  {fn}")
    return total / n


class PgBouncer:
    """Debian's PgBouncer in front of the cluster under callgrind, with the
    settings tidepool gets (transaction mode, pool of 4, md5): the same
    count of instructions for comparison. Runs as postgres (it refuses root)."""

    def __init__(self, pg, tmp, out):
        self.pg, self.tmp, self.out = pg, tmp, out
        self.port = h.free_port()

    def start(self):
        d = os.path.join(self.tmp, "pgbouncer")
        os.makedirs(d, exist_ok=True)
        os.chmod(self.tmp, 0o755)
        h.write_userlist(os.path.join(d, "userlist.txt"), {h.APP_USER: h.md5_secret(h.APP_USER, h.APP_PASSWORD)})
        with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
            f.write(f"""[databases]
{DB} = host=127.0.0.1 port={self.pg.port} dbname={DB} user={h.APP_USER} password={h.APP_PASSWORD}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = md5
auth_file = {d}/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 12000
logfile = {d}/pgbouncer.log
log_connections = 0
log_disconnections = 0
""")
        for root, dirs, files in os.walk(self.tmp):
            for n in dirs + files:
                h._chown_postgres(os.path.join(root, n))
        h._chown_postgres(self.tmp)
        self.proc = subprocess.Popen(h._as_postgres(["valgrind", "--tool=callgrind",
                                                     f"--callgrind-out-file={self.out}.%p",
                                                     "/usr/sbin/pgbouncer", f"{d}/pgbouncer.ini"]),
                                     cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not h._wait_connectable(__import__("socket").AF_INET, ("127.0.0.1", self.port), deadline, self.proc):
            raise RuntimeError("PgBouncer did not start")
        return self

    def stop(self, timeout=60):
        self.proc.terminate()
        self.proc.wait(timeout=timeout)


def cmd_cpu(a):
    with h.Cluster() as pg:
        setup_pg(pg)
        tmp = tempfile.mkdtemp(prefix="tp-profile-", dir=a.keep or None)
        try:
            res = run_cpu(a, pg, tmp)
        finally:
            if not a.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        print("\n" + json.dumps({k: round(v) for k, v in res.items()}))


def run_cpu(a, pg, tmp):
    res = {}
    who = "pgbouncer-" if a.pgbouncer else ""
    for mode in a.mode:
        res[who + mode] = callgrind_run(pg, tmp, ["-S", "-M", mode, "-c", "4", "-j", "1", "-t", str(a.t)],
                                        f"{who}S1-{mode}", a.top, a.pgbouncer)
    if a.connect:
        res[who + "connect"] = callgrind_run(pg, tmp, ["-S", "-C", "-c", "4", "-j", "1", "-t", str(a.t // 10)],
                                             f"{who}S3-connect", a.top, a.pgbouncer)
    return res


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cmd_idle(a):
    with h.Cluster() as pg:
        tp = daemon(pg).start()
        try:
            pid = tp.proc.pid
            # One login first: the pool learns its server's parameters.
            r = h.run_psql(tp_dsn(tp), "SELECT 1")
            assert r.ok, r
            time.sleep(0.3)
            before = rss_kib(pid)
            p = subprocess.Popen([sys.executable, str(ROOT / "bench" / "idle_clients.py"), "--port", str(tp.port),
                                  "--user", h.APP_USER, "--password", h.APP_PASSWORD, "--dbname", DB,
                                  "--count", str(a.clients), "--hold", "120"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            info = json.loads(p.stdout.readline())
            time.sleep(0.5)
            after = rss_kib(pid)
            p.stdin.close()
            p.wait(timeout=60)
        finally:
            tp.stop()
    grow = (after - before) * 1024
    print(json.dumps({"clients": info["opened"], "failed": info["failed"], "rss_before_kib": before,
                      "rss_after_kib": after, "bytes_per_client": round(grow / max(info["opened"], 1))}))


def tp_dsn(tp):
    return h.conninfo(host="127.0.0.1", port=tp.port, dbname=DB, user=h.APP_USER, password=h.APP_PASSWORD)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cpu")
    c.add_argument("-t", type=int, default=2000, help="transactions per pgbench client (4 clients)")
    c.add_argument("-M", dest="mode", action="append", choices=["simple", "extended", "prepared"])
    c.add_argument("--connect", action="store_true", help="also pgbench -C (a login per transaction)")
    c.add_argument("--top", type=int, default=25)
    c.add_argument("--keep", help="directory to keep the callgrind files in (else removed)")
    c.add_argument("--pgbouncer", action="store_true", help="measure Debian's PgBouncer instead (as postgres)")
    i = sub.add_parser("idle")
    i.add_argument("--clients", type=int, default=2000)
    a = ap.parse_args()
    if a.cmd == "cpu":
        a.mode = a.mode or ["simple"]
        cmd_cpu(a)
    else:
        cmd_idle(a)


if __name__ == "__main__":
    main()
