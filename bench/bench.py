#!/usr/bin/python3
"""bench/bench.py: tidepool's benchmark suite. Run it through bench/run.

Starts a throwaway PostgreSQL 15, a PgBouncer and a tidepool in a temporary
directory, all on free ports of 127.0.0.1, runs pgbench scenarios S1-S6 (see
docs/benchmarks.md) against the three targets interleaved, prints a table of
ratios with a description of the machine, and with --write-docs puts it in
docs/benchmarks.md. Every process it starts is stopped, and the temporary
directory removed, on exit (also on Ctrl-C or SIGTERM).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
PGBENCH = os.path.join(PG_BINDIR, "pgbench") if os.path.exists(os.path.join(PG_BINDIR, "pgbench")) else "pgbench"
PSQL = os.path.join(PG_BINDIR, "psql") if os.path.exists(os.path.join(PG_BINDIR, "psql")) else "psql"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
TIDEPOOL = os.path.join(ROOT, "build", "tidepool")
PYTHON = "/usr/bin/python3"
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN_MARK = "<!-- bench/run results: begin -->"
END_MARK = "<!-- bench/run results: end -->"

USER = "bench"
PASSWORD = "bench"
DBNAME = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

D, B, N = "direct", "pgbouncer", "tidepool"
LABEL = {D: "direct", B: "PgBouncer", N: "tidepool"}
ORDERS = [[D, B, N], [B, N, D], [N, D, B]]


def say(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# processes and the temporary directory


class Suite:
    def __init__(self, args):
        self.args = args
        self.tmp = None
        self.procs = {}          # name -> Popen (pgbouncer, tidepool)
        self.logs = {}           # name -> log path
        self.ports = {}
        self.pg_port = None
        self.pg_data = None
        self.pg_sock = None
        self.pg_running = False
        self.runs = []           # every measured run (dicts)
        self.events = []         # crashes, restarts, failures: strings
        self.results = {}        # computed figures
        self.children = set()    # Popen of pgbench/helpers in flight

    # -- helpers -----------------------------------------------------------
    def as_postgres(self, cmd):
        if os.geteuid() == 0:
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + cmd
        return cmd

    def free_port(self):
        taken = set(self.ports.values()) | {self.pg_port}
        for port in random.sample(range(20000, 32000), 2000):
            if port in taken:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                s.close()
        raise RuntimeError("no free TCP port on 127.0.0.1")

    def chown_pg(self, *paths):
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in paths:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    # -- PostgreSQL ----------------------------------------------------------
    def start_postgres(self):
        a = self.args
        self.tmp = tempfile.mkdtemp(prefix="tidepool-bench.")
        os.chmod(self.tmp, 0o755)
        self.chown_pg(self.tmp)
        os.makedirs(os.path.join(self.tmp, "logs"))
        self.pg_data = os.path.join(self.tmp, "data")
        self.pg_sock = os.path.join(self.tmp, "pgsock")
        os.mkdir(self.pg_sock, 0o700)
        self.chown_pg(self.pg_sock)
        self.logs["postgres"] = os.path.join(self.tmp, "postgresql.log")
        say(f"initdb in {self.tmp}")
        r = subprocess.run(self.as_postgres([
            os.path.join(PG_BINDIR, "initdb"), "-D", self.pg_data, "-U", "postgres",
            "--auth-local=trust", "--auth-host=md5", "-E", "UTF8", "--locale=C", "--no-sync"]),
            cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout)
        for attempt in range(3):
            self.pg_port = self.free_port()
            conf = f"""# written by bench/bench.py for a throwaway benchmark cluster
port = {self.pg_port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.pg_sock}'
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = md5
max_wal_size = 4GB
checkpoint_timeout = 30min
autovacuum = off
"""
            path = os.path.join(self.pg_data, "postgresql.auto.conf")
            with open(path, "w") as f:
                f.write(conf)
            self.chown_pg(path)
            r = subprocess.run(self.as_postgres([
                os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.pg_data, "-l", self.logs["postgres"],
                "-w", "-t", "60", "start"]), cwd=self.tmp, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, timeout=90)
            if r.returncode == 0:
                self.pg_running = True
                break
            log = open(self.logs["postgres"]).read() if os.path.exists(self.logs["postgres"]) else ""
            if attempt == 2 or "could not bind" not in log:
                raise RuntimeError("PostgreSQL did not start:\n" + r.stderr + log[-3000:])
        say(f"PostgreSQL on 127.0.0.1:{self.pg_port}")
        self.psql_super(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'",
                        f"CREATE DATABASE {DBNAME} OWNER {USER}")
        say(f"pgbench -i -s {a.scale}")
        r = subprocess.run([PGBENCH, "-i", "-q", "-s", str(a.scale), "-h", "127.0.0.1",
                            "-p", str(self.pg_port), "-U", USER, DBNAME],
                           env=self.env(), cwd=self.tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed:\n" + r.stdout)
        self.psql_super("CHECKPOINT", db=DBNAME)

    def psql_super(self, *sqls, db="postgres"):
        cmd = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg_sock, "-p", str(self.pg_port),
               "-U", "postgres", "-d", db]
        for s in sqls:
            cmd += ["-c", s]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {' '.join(sqls)}\n{r.stdout}")
        return r.stdout

    def env(self):
        e = dict(os.environ)
        e.update(PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="20", PGAPPNAME="bench")
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGSERVICE", "PGOPTIONS"):
            e.pop(k, None)
        return e

    # -- the poolers ---------------------------------------------------------
    def backend_host(self):
        return self.pg_sock if self.args.backend_socket else "127.0.0.1"

    def write_pooler_configs(self):
        a = self.args
        userlist = os.path.join(self.tmp, "userlist.txt")
        with open(userlist, "w") as f:
            f.write(f'"{USER}" "{PASSWORD}"\n')
        # Only its owner may read it (both poolers warn otherwise): PgBouncer
        # runs as postgres, so postgres owns it when we are root.
        os.chmod(userlist, 0o600)
        self.chown_pg(userlist)

        # PgBouncer runs as postgres (it refuses root): give it a directory.
        bdir = os.path.join(self.tmp, "pgbouncer")
        os.mkdir(bdir)
        self.chown_pg(bdir)
        self.logs[B] = os.path.join(bdir, "pgbouncer.log")
        self.ports[B] = self.free_port()
        with open(os.path.join(bdir, "pgbouncer.ini"), "w") as f:
            f.write(f"""; written by bench/bench.py
[databases]
{DBNAME} = host={self.backend_host()} port={self.pg_port} dbname={DBNAME} user={USER}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.ports[B]}
unix_socket_dir =
listen_backlog = 1024
auth_type = {a.auth}
auth_file = {userlist}
pool_mode = transaction
default_pool_size = {a.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 0
max_client_conn = 12000
logfile = {self.logs[B]}
pidfile = {bdir}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 60
""")

        self.ports[N] = self.free_port()
        self.logs[N] = os.path.join(self.tmp, "tidepool.log")
        tsock = os.path.join(self.tmp, "tpsock")
        os.mkdir(tsock)
        if self.args.backend_socket:
            url = f"host={self.pg_sock} port={self.pg_port} dbname={DBNAME} user={USER} password={PASSWORD}"
        else:
            url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.pg_port}/{DBNAME}"
        self.tidepool_ini = os.path.join(self.tmp, "tidepool.ini")
        with open(self.tidepool_ini, "w") as f:
            f.write(f"""; written by bench/bench.py
[tidepool]
listen_addr = 127.0.0.1
listen_port = {self.ports[N]}
unix_socket_dir = {tsock}
auth_type = {a.auth}
auth_file = {userlist}
max_client_conn = 12000
log_level = warn
shutdown_timeout = 2

[pool.{DBNAME}]
url = {url}
pool_mode = transaction
pool_size = {a.pool_size}
max_overflow = 0
pool_timeout = 60
; like PgBouncer's default (server_round_robin = 0): the backend used last is
; lent first, so one client keeps hitting a warm PostgreSQL process
pool_use_lifo = true
""")
        os.chmod(self.tidepool_ini, 0o600)  # it holds the backend password

    def start_pooler(self, name):
        if name == B:
            cmd = self.as_postgres([PGBOUNCER, os.path.join(self.tmp, "pgbouncer", "pgbouncer.ini")])
            out = open(os.path.join(self.tmp, "pgbouncer", "stderr.log"), "ab")
        else:
            cmd = [TIDEPOOL, self.tidepool_ini]
            out = open(self.logs[N], "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             cwd=self.tmp, start_new_session=True)
        out.close()
        self.procs[name] = p
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{LABEL[name]} exited with status {p.returncode} at start:\n"
                                   + self.log_tail(name))
            try:
                socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{LABEL[name]} does not listen on {self.ports[name]}")
        # One query through it: the login works and a backend is open.
        self.query(name, "SELECT 1")
        say(f"{LABEL[name]} (pid {p.pid}) on 127.0.0.1:{self.ports[name]}")

    def stop_pooler(self, name):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(8)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def restart_pooler(self, name):
        self.stop_pooler(name)
        self.start_pooler(name)

    def port(self, target):
        return self.pg_port if target == D else self.ports[target]

    def query(self, target, sql):
        r = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port(target)), "-U", USER, "-d", DBNAME, "-c", sql],
                           env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{LABEL[target]}: {sql}: {r.stdout.strip()}")
        return r.stdout

    def log_tail(self, name, lines=25):
        paths = [self.logs.get(name)]
        if name == B:
            paths.append(os.path.join(self.tmp, "pgbouncer", "stderr.log"))
        text = ""
        for path in paths:
            if path and os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += "".join(f.readlines()[-lines:])
        return text

    def check_alive(self, name, context):
        """True when the pooler runs; otherwise record the crash and restart it."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            return True
        status = p.returncode if p is not None else "?"
        msg = (f"{LABEL[name]} was not running after {context} (exit status {status}); "
               f"restarted. Last lines of its log:\n{self.log_tail(name)}")
        say(msg)
        self.events.append(msg)
        self.procs.pop(name, None)
        try:
            self.start_pooler(name)
        except Exception as e:  # noqa: BLE001 - reported, the suite goes on
            self.events.append(f"{LABEL[name]} could not be restarted: {e}")
        return False

    def pid(self, name):
        p = self.procs.get(name)
        return p.pid if p is not None and p.poll() is None else None

    def cleanup(self):
        for p in list(self.children):
            try:
                p.kill()
                p.wait(5)
            except Exception:  # noqa: BLE001
                pass
        for name in (N, B):
            try:
                self.stop_pooler(name)
            except Exception:  # noqa: BLE001
                pass
        if self.pg_running:
            subprocess.run(self.as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.pg_data,
                                             "-m", "immediate", "-w", "-t", "30", "stop"]),
                           cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.pg_running = False
        if self.tmp and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            say(f"kept {self.tmp}")

    # -- measurements ----------------------------------------------------------
    @staticmethod
    def proc_cpu(pid):
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            return None

    @staticmethod
    def machine_busy():
        """CPU seconds the whole machine spent busy (all cores, /proc/stat)."""
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except OSError:
            return None
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return (sum(v[:8]) - idle) / CLK_TCK  # guest time is already in user

    @staticmethod
    def proc_status(pid, key):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except (OSError, TypeError):
            pass
        return None

    def pgbench(self, scenario, target, rep, args, log=False, timeout=None):
        """One pgbench run; returns (and records) a dict with its figures."""
        a = self.args
        if target != D:
            self.check_alive(target, f"before {scenario}")
        prefix = os.path.join(self.tmp, "logs", f"{scenario}-{target}-{rep}".replace(" ", "_"))
        cmd = [PGBENCH, "-n", "-h", "127.0.0.1", "-p", str(self.port(target)), "-U", USER] + list(args)
        if log:
            cmd += ["-l", f"--log-prefix={prefix}"]
        cmd.append(DBNAME)
        pid = self.pid(target) if target != D else None
        cpu0 = self.proc_cpu(pid)
        busy0 = self.machine_busy()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=self.env(), cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.children.add(p)
        status = "ok"
        try:
            out, err = p.communicate(timeout=timeout or (a.duration + 30))
        except subprocess.TimeoutExpired:
            status = "timeout"
            diag = self.diagnose(target) if target != D else ""
            p.kill()
            out, err = p.communicate()
        self.children.discard(p)
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = self.proc_cpu(pid)
        busy1 = self.machine_busy()
        run = {"scenario": scenario, "target": target, "rep": rep, "cmd": " ".join(cmd[1:]),
               "rc": p.returncode, "wall": wall,
               "pgbench_cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)}
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        run["txns"] = int(m.group(1)) if m else 0
        m = re.search(r"number of failed transactions: (\d+)", out)
        run["failed"] = int(m.group(1)) if m else 0
        m = re.search(r"^tps = ([\d.]+)", out, re.M)
        run["tps"] = float(m.group(1)) if m else None
        m = re.search(r"latency average = ([\d.]+) ms", out)
        run["lat_avg_ms"] = float(m.group(1)) if m else None
        aborted = re.findall(r"^.*client \d+ .*aborted.*$", err, re.M)
        errors = re.findall(r"^.*(?:ERROR|FATAL|error):.*$", err, re.M)
        run["aborted"] = len(aborted)
        if status == "ok" and (p.returncode != 0 or aborted or run["tps"] is None):
            status = "failed"
        if target != D and pid is not None and self.procs.get(target) is not None \
                and self.procs[target].poll() is not None:
            status = "crashed"
        run["status"] = status
        if status == "timeout":
            run["error"] = (f"pgbench still running after {wall:.0f} s, killed"
                            + (f"; then:\n{diag}" if diag else ""))
            self.events.append(f"{scenario} {LABEL[target]} rep {rep}: {status}: {run['error']}")
        elif status != "ok":
            first = (aborted or errors or err.strip().splitlines() or ["(no message)"])[0]
            run["error"] = re.sub(r"^pgbench: (error: )?", "", first)[:300]
            if len(aborted) > 1:
                run["error"] += f" ({len(aborted)} clients aborted)"
            with open(prefix + ".stderr", "w") as f:
                f.write(err)
            self.events.append(f"{scenario} {LABEL[target]} rep {rep}: {status}: {run['error']}")
        if busy0 is not None and busy1 is not None and status == "ok":
            run["machine_busy"] = busy1 - busy0
        if cpu0 is not None and cpu1 is not None and status == "ok":
            run["pooler_cpu"] = cpu1 - cpu0
            # What the same run could have reached had the pooler cost no
            # CPU, its share going to pgbench and PostgreSQL at their own
            # cost per transaction: a ceiling for any pooler on a saturated
            # machine.
            busy = run.get("machine_busy")
            if busy and busy > run["pooler_cpu"] and run["tps"] and run["txns"]:
                run["free_pooler_tps"] = run["tps"] * busy / (busy - run["pooler_cpu"])
                # The pooler CPU per transaction that would have given 1.2x
                # this run's TPS with the machine as busy (a negative figure:
                # out of reach even for a pooler that costs nothing).
                run["budget_1_2x_us"] = (busy / 1.2 - (busy - run["pooler_cpu"])) / run["txns"] * 1e6
        if log:
            lat = []
            for path in glob.glob(prefix + ".*"):
                with open(path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 3:
                            lat.append(int(parts[2]))
                os.unlink(path)
            lat.sort()
            if lat:
                run["p50_us"] = pct(lat, 50)
                run["p99_us"] = pct(lat, 99)
        self.runs.append(run)
        desc = f"{run['tps']:.0f} tps" if run["tps"] is not None else "no tps"
        if "p50_us" in run:
            desc += f", p50 {run['p50_us']} us, p99 {run['p99_us']} us"
        if "pooler_cpu" in run and run["txns"]:
            desc += f", pooler {run['pooler_cpu'] / run['txns'] * 1e6:.1f} us cpu/txn"
        say(f"  {scenario:<12} {LABEL[target]:<9} rep {rep}: {desc} [{status}]")
        if target != D and self.check_alive(target, f"{scenario} rep {rep}") and status == "timeout":
            # A stalled pooler would spoil the scenarios after this one.
            self.events.append(f"{LABEL[target]} restarted after the stalled run. Last lines of its log:\n"
                               + (self.log_tail(target).strip() or "(empty)"))
            self.restart_pooler(target)
        return run

    def diagnose(self, target):
        """What the pooler's sockets and the backends look like (for a stalled run)."""
        pid = self.pid(target)
        lines = []
        try:
            ss = subprocess.run(["ss", "-tnp"], stdout=subprocess.PIPE, text=True, timeout=10).stdout
            lines.append("ss -tnp of the pooler (State Recv-Q Send-Q Local Peer):")
            for line in ss.splitlines():
                if f"pid={pid}," in line:
                    f = line.split()
                    lines.append("  " + " ".join(f[:5]))
            lines.append("pg_stat_activity of the bench role (not idle):")
            out = self.psql_super("SELECT pid, state, wait_event_type, wait_event, left(query, 50) "
                                  "FROM pg_stat_activity WHERE usename = 'bench' AND state <> 'idle'")
            lines += ["  " + x for x in out.strip().splitlines()]
        except Exception as e:  # noqa: BLE001
            lines.append(f"(diagnosis failed: {e})")
        return "\n".join(lines)

    def interleaved(self, scenario, targets, args, log=False, reps=None, timeout=None):
        for rep in range(1, (reps or self.args.reps) + 1):
            for t in ORDERS[(rep - 1) % len(ORDERS)]:
                if t in targets:
                    self.pgbench(scenario, t, rep, args, log=log, timeout=timeout)

    def med(self, scenario, target, key):
        vals = [r[key] for r in self.runs if r["scenario"] == scenario and r["target"] == target
                and r["status"] == "ok" and r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def cpu_per_txn_us(self, scenario, target):
        vals = [r["pooler_cpu"] / r["txns"] * 1e6 for r in self.runs
                if r["scenario"] == scenario and r["target"] == target and r["status"] == "ok"
                and r.get("pooler_cpu") is not None and r["txns"]]
        return statistics.median(vals) if vals else None

    def status_of(self, scenario, target):
        rs = [r for r in self.runs if r["scenario"] == scenario and r["target"] == target]
        bad = [r for r in rs if r["status"] != "ok"]
        if not rs:
            return "not run"
        if not bad:
            return "ok"
        return f"{len(bad)}/{len(rs)} runs {bad[0]['status']}: {bad[0].get('error', '')}"

    # -- scenarios -------------------------------------------------------------
    def warm_up(self):
        say("warm-up")
        for t in (D, B, N):
            self.pgbench("warm-up", t, 0, ["-S", "-c", str(self.args.clients), "-j", "2", "-T", "2"])
        self.runs = [r for r in self.runs if r["scenario"] != "warm-up"]

    def s1(self):
        a = self.args
        common = ["-S", "-c", str(a.clients), "-j", "2", "-T", str(a.duration)]
        for mode in ("simple", "extended", "prepared"):
            say(f"S1 select-only, -M {mode}")
            self.interleaved(f"S1 {mode}", (D, B, N), common + ["-M", mode])
        if a.rate:
            # The same load at a fixed rate both poolers keep up with: the
            # CPU each spends per transaction when the machine is not
            # saturated (with 2 cores saturated, how the scheduler shares
            # them moves the figure by 10-20% from run to run).
            say(f"S1 select-only at a fixed rate of {a.rate} transactions/s, -M simple")
            self.interleaved("S1 rate", (B, N), common + ["-M", "simple", "-R", str(a.rate)])

    def s2(self):
        a = self.args
        say("S2 one client, per-transaction latency")
        self.interleaved("S2", (D, B, N), ["-S", "-c", "1", "-j", "1", "-T", str(a.duration)], log=True)

    def s3(self):
        a = self.args
        say(f"S3 a new connection per transaction (-C, auth {a.auth})")
        self.interleaved("S3", (D, B, N),
                         ["-S", "-C", "-c", str(a.clients), "-j", "2", "-T", str(a.duration)])

    def s4(self):
        a = self.args
        say(f"S4 {a.many} clients on a pool of {a.pool_size} (poolers only)")
        self.interleaved("S4", (B, N), ["-S", "-c", str(a.many), "-j", "2", "-T", str(a.duration)],
                         log=True, timeout=a.duration + 120)

    def s6(self):
        a = self.args
        one = os.path.join(self.tmp, "s6_1mib.sql")
        with open(one, "w") as f:
            f.write("SELECT repeat('x', 1048576);\n")
        big = os.path.join(self.tmp, "s6_40mib.sql")
        with open(big, "w") as f:
            f.write("SELECT repeat('x', 40*1024*1024);\n")
        # Peak RSS: reset VmHWM (clear_refs 5), note VmRSS at rest.
        idle, pid0, peak1 = {}, {}, {}
        for t in (B, N):
            self.check_alive(t, "before S6")
            pid = pid0[t] = self.pid(t)
            idle[t] = self.proc_status(pid, "VmRSS")
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError as e:
                self.events.append(f"could not reset VmHWM of {LABEL[t]}: {e}")
        say("S6 large results: rows of 1 MiB, 4 clients")
        self.interleaved("S6 1MiB", (D, B, N), ["-f", one, "-c", "4", "-j", "2", "-T", str(a.duration)])
        for t in (B, N):
            peak1[t] = self.proc_status(pid0[t], "VmHWM") if self.pid(t) == pid0[t] else None
        say("S6 large results: one 40 MiB result at a time")
        self.interleaved("S6 40MiB", (D, B, N),
                         ["-f", big, "-c", "1", "-j", "1", "-T", str(max(2, min(a.duration, 5)))])
        for t in (B, N):
            self.results[f"s6_idle_rss_{t}"] = idle[t]
            if self.pid(t) == pid0[t]:
                self.results[f"s6_peak_rss_{t}"] = self.proc_status(pid0[t], "VmHWM")
            else:
                # Restarted during S6: only what was measured before the restart counts.
                self.results[f"s6_peak_rss_{t}"] = peak1[t]
                self.results[f"s6_peak_note_{t}"] = ("1 MiB rows only" if peak1[t] is not None
                                                     else "restarted during S6")
                self.events.append(f"S6: {LABEL[t]} was restarted during S6; its peak RSS is "
                                   + ("that of the 1 MiB-row part only" if peak1[t] is not None
                                      else "not known"))

    def s5(self):
        a = self.args
        say(f"S5 {a.idle} idle clients (memory per client)")
        for t in (B, N):
            try:
                self.restart_pooler(t)   # a fresh process: RSS growth is the clients' alone
                self.query(t, "SELECT 1")
                time.sleep(0.5)
                pid = self.pid(t)
                rss0 = self.proc_status(pid, "VmRSS")
                p = subprocess.Popen([PYTHON, os.path.join(ROOT, "bench", "idle_clients.py"),
                                      "--port", str(self.ports[t]), "--user", USER, "--password", PASSWORD,
                                      "--dbname", DBNAME, "--count", str(a.idle), "--hold", "300"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=self.tmp, start_new_session=True)
                self.children.add(p)
                try:
                    line = wait_line(p.stdout, 240)
                    info = json.loads(line) if line else {"opened": 0, "failed": a.idle,
                                                          "errors": ["helper gave no answer"]}
                    time.sleep(1.0)
                    rss1 = self.proc_status(pid, "VmRSS")
                    cpu0 = self.proc_cpu(pid)
                    time.sleep(a.idle_hold)
                    cpu1 = self.proc_cpu(pid)
                    alive_with_clients = self.procs[t].poll() is None
                finally:
                    try:
                        p.stdin.close()
                        p.wait(60)
                    except Exception:  # noqa: BLE001
                        p.kill()
                        p.wait(5)
                    self.children.discard(p)
                    if p.returncode not in (0, None):
                        err = p.stderr.read()[-500:]
                        self.events.append(f"S5 {LABEL[t]}: the idle-client helper failed: {err}")
                res = {"rss0": rss0, "rss1": rss1, "opened": info["opened"], "failed": info["failed"],
                       "errors": info.get("errors", []), "connect_s": info.get("seconds"),
                       "idle_cpu_pct": None if cpu0 is None or cpu1 is None
                       else (cpu1 - cpu0) / a.idle_hold * 100}
                if rss0 and rss1 and info["opened"]:
                    res["per_client"] = (rss1 - rss0) / info["opened"]
                if info["failed"]:
                    self.events.append(f"S5 {LABEL[t]}: {info['failed']} of {a.idle} connections failed: "
                                       f"{info.get('errors')}")
                if not alive_with_clients:
                    res["crashed"] = True
                self.results[f"s5_{t}"] = res
                say(f"  S5 {LABEL[t]}: {info['opened']} open ({info['failed']} failed) in "
                    f"{info.get('seconds')} s; RSS {fmt_bytes(rss0)} -> {fmt_bytes(rss1)}; "
                    f"{fmt_num(res.get('per_client'), 0)} B/client; idle CPU {fmt_num(res['idle_cpu_pct'], 2)}%")
                time.sleep(1.0)
                self.check_alive(t, "S5")
            except Exception as e:  # noqa: BLE001 - reported, the suite goes on
                self.events.append(f"S5 {LABEL[t]}: {e}")
                say(f"  S5 {LABEL[t]}: {e}")
                self.check_alive(t, "S5")


# --------------------------------------------------------------------------
# small helpers


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def wait_line(stream, timeout):
    import select
    r, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if r else ""


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return "n/a" if v is None else f"{v:.2f}x"


def fmt_bytes(v):
    if v is None:
        return "n/a"
    return f"{v / MIB:.1f} MiB"


def sh(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "daemon",
                "pool", "proto", "auth", "config", "CMakeLists.txt"])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "postgres": sh([os.path.join(PG_BINDIR, "postgres"), "--version"]),
        "pgbench": sh([PGBENCH, "--version"]),
        "pgbouncer": sh([PGBOUNCER, "--version"]).splitlines()[0] + " ("
        + (sh([PGBOUNCER, "--version"]).splitlines() + ["", ""])[1] + ")",
        "tidepool": sh([TIDEPOOL, "--version"]) + f" (git {rev}{', daemon sources modified' if dirty else ''})",
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


# --------------------------------------------------------------------------
# the report


def report(s, started, elapsed, cmdline, mach):
    a = s.args
    R = {}
    lines = []
    w = lines.append
    w(f"Run of {started.strftime('%Y-%m-%d %H:%M UTC')}: `{cmdline}`"
      f"{' (quick smoke run: figures are indicative only)' if a.quick else ''}, "
      f"{elapsed / 60:.1f} minutes in all.")
    w("")
    w("**Machine:** " + f"{mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} RAM, "
      f"{mach['os']}, kernel {mach['kernel']}; load average at start "
      f"{' '.join(mach['loadavg'])}, at the end {' '.join(mach.get('loadavg_end', ['?']))} "
      f"(other work on the machine shows here; the suite itself keeps about 2 busy).  ")
    w(f"**Versions:** {mach['postgres']}; {mach['pgbench']}; {mach['pgbouncer']}; {mach['tidepool']}.  ")
    w(f"**Settings:** every client and pgbench on TCP 127.0.0.1; poolers reach PostgreSQL over "
      f"{'its Unix socket' if a.backend_socket else 'TCP 127.0.0.1'}; auth `{a.auth}` "
      f"(PostgreSQL: md5 on TCP); pool size {a.pool_size} for both poolers (transaction mode, "
      f"tidepool max_overflow 0 and pool_use_lifo true, as PgBouncer's server_round_robin 0); `pgbench -i -s {a.scale}`; each pgbench run {a.duration} s, "
      f"{a.reps} interleaved repetitions (order rotated D-B-N, B-N-D, N-D-B), median shown; "
      f"S1/S3 {a.clients} clients `-j 2`; S4 {a.many} clients; S5 {a.idle} clients.")
    w("")
    w("| Scenario | Metric | direct | PgBouncer | tidepool | tidepool / PgBouncer | tidepool / direct |")
    w("|---|---|---:|---:|---:|---:|---:|")

    def row(scn, metric, d, b, n, nb=None, nd=None, digits=0, unit=""):
        def f(v):
            if isinstance(v, str):
                return v
            return fmt_num(v, digits) + (unit if v is not None else "")
        w(f"| {scn} | {metric} | {f(d)} | {f(b)} | {f(n)} | "
          f"{nb if isinstance(nb, str) else fmt_ratio(nb)} | {nd if isinstance(nd, str) else fmt_ratio(nd)} |")

    def tps_cell(scn, t):
        st = s.status_of(scn, t)
        v = s.med(scn, t, "tps")
        if st == "not run":
            return "-"
        if st != "ok":
            bad = next(r["status"] for r in s.runs if r["scenario"] == scn and r["target"] == t
                       and r["status"] != "ok")
            return bad.upper() if v is None else f"{fmt_num(v)} ({bad} in some runs)"
        return v

    for mode in ("simple", "extended", "prepared"):
        scn = f"S1 {mode}"
        d, b, n = (s.med(scn, t, "tps") for t in (D, B, N))
        row(f"S1 `-S -M {mode}`", "TPS", tps_cell(scn, D), tps_cell(scn, B), tps_cell(scn, N),
            ratio(n, b) if s.status_of(scn, B) == "ok" else "-", ratio(n, d))
        cb, cn = s.cpu_per_txn_us(scn, B), s.cpu_per_txn_us(scn, N)
        row(f"S1 `-S -M {mode}`", "pooler CPU µs / txn", "-", cb if s.status_of(scn, B) == "ok" else "-",
            cn, ratio(cn, cb) if s.status_of(scn, B) == "ok" else "-", "-", digits=1)
        if mode != "prepared":
            busy = {t: s.med(scn, t, "machine_busy") for t in (D, B, N)}
            row(f"S1 `-S -M {mode}`", f"machine busy, % of its {os.cpu_count()} CPUs",
                *(None if busy[t] is None else 100 * busy[t] / (a.duration * os.cpu_count()) for t in (D, B, N)),
                "-", "-")
            fb, fn = s.med(scn, B, "free_pooler_tps"), s.med(scn, N, "free_pooler_tps")
            ceiling = ratio(fb, b) if s.status_of(scn, B) == "ok" else None
            row(f"S1 `-S -M {mode}`", "TPS had the pooler cost no CPU (TPS × busy / (busy − pooler CPU))",
                "-", fb if s.status_of(scn, B) == "ok" else "-", fn,
                "-" if ceiling is None else f"PgBouncer's: {fmt_ratio(ceiling)} its TPS", "-")
            budget = s.med(scn, B, "budget_1_2x_us") if s.status_of(scn, B) == "ok" else None
            row(f"S1 `-S -M {mode}`", "pooler CPU µs / txn that 1.2x PgBouncer's TPS leaves (from its runs)",
                "-", budget, "-", "-" if budget is None else f"{fmt_ratio(ratio(budget, cb))} its CPU", "-",
                digits=1)
        R[f"s1_{mode}"] = dict(d=d, b=b, n=n, cb=cb, cn=cn, b_ok=s.status_of(scn, B) == "ok",
                               n_ok=s.status_of(scn, N) == "ok",
                               ceiling=ratio(s.med(scn, B, "free_pooler_tps"), b))

    if s.status_of("S1 rate", N) != "not run":
        cb, cn = s.cpu_per_txn_us("S1 rate", B), s.cpu_per_txn_us("S1 rate", N)
        scn = f"S1 `-S -R {a.rate}`"
        row(scn, "TPS (fixed rate)", "-", tps_cell("S1 rate", B), tps_cell("S1 rate", N),
            ratio(s.med("S1 rate", N, "tps"), s.med("S1 rate", B, "tps")), "-")
        row(scn, "pooler CPU µs / txn", "-", cb, cn, ratio(cn, cb), "-", digits=1)
        R["s1_rate"] = dict(cb=cb, cn=cn)

    p50 = {t: s.med("S2", t, "p50_us") for t in (D, B, N)}
    p99 = {t: s.med("S2", t, "p99_us") for t in (D, B, N)}
    row("S2 `-S -c 1`", "p50 latency µs", p50[D], p50[B], p50[N], ratio(p50[N], p50[B]), ratio(p50[N], p50[D]))
    row("S2 `-S -c 1`", "p99 latency µs", p99[D], p99[B], p99[N], ratio(p99[N], p99[B]), ratio(p99[N], p99[D]))
    add = {t: (p50[t] - p50[D]) if p50[t] is not None and p50[D] is not None else None for t in (B, N)}
    add99 = {t: (p99[t] - p99[D]) if p99[t] is not None and p99[D] is not None else None for t in (B, N)}
    row("S2 `-S -c 1`", "added p50 µs vs direct", "-", add[B], add[N], ratio(add[N], add[B]), "-")
    row("S2 `-S -c 1`", "added p99 µs vs direct", "-", add99[B], add99[N], ratio(add99[N], add99[B]), "-")
    tps2 = {t: s.med("S2", t, "tps") for t in (D, B, N)}
    row("S2 `-S -c 1`", "TPS", tps2[D], tps2[B], tps2[N], ratio(tps2[N], tps2[B]), ratio(tps2[N], tps2[D]))
    R["s2"] = dict(add=add, add99=add99)

    d, b, n = (s.med("S3", t, "tps") for t in (D, B, N))
    row(f"S3 `-S -C` ({a.auth})", "TPS (connections/s)", tps_cell("S3", D), tps_cell("S3", B),
        tps_cell("S3", N), ratio(n, b), ratio(n, d))
    R["s3"] = dict(d=d, b=b, n=n)

    b, n = s.med("S4", B, "tps"), s.med("S4", N, "tps")
    row(f"S4 `-S -c {a.many}`", "TPS", "skipped", tps_cell("S4", B), tps_cell("S4", N), ratio(n, b), "-")
    s1b, s1n = s.med("S1 simple", B, "tps"), s.med("S1 simple", N, "tps")
    row(f"S4 `-S -c {a.many}`", f"TPS / own S1 simple TPS ({a.clients} clients)", "-",
        ratio(b, s1b), ratio(n, s1n), "-", "-", digits=2)
    p50b, p50n = s.med("S4", B, "p50_us"), s.med("S4", N, "p50_us")
    p99b, p99n = s.med("S4", B, "p99_us"), s.med("S4", N, "p99_us")
    row(f"S4 `-S -c {a.many}`", "p50 latency ms", "-", None if p50b is None else p50b / 1000,
        None if p50n is None else p50n / 1000, ratio(p50n, p50b), "-", digits=2)
    row(f"S4 `-S -c {a.many}`", "p99 latency ms", "-", None if p99b is None else p99b / 1000,
        None if p99n is None else p99n / 1000, ratio(p99n, p99b), "-", digits=2)
    qb, qn = ratio(p99b, p50b), ratio(p99n, p50n)
    row(f"S4 `-S -c {a.many}`", "p99 / p50", "-", fmt_ratio(qb), fmt_ratio(qn), "-", "-")
    R["s4"] = dict(self_n=ratio(n, s1n), q_n=qn)

    s5 = {t: s.results.get(f"s5_{t}", {}) for t in (B, N)}
    pcb, pcn = s5[B].get("per_client"), s5[N].get("per_client")
    row(f"S5 {a.idle} idle clients", "RSS growth per client, bytes", "-", pcb, pcn, ratio(pcn, pcb), "-")
    row(f"S5 {a.idle} idle clients", "RSS at rest → with clients, MiB", "-",
        f"{fmt_bytes(s5[B].get('rss0'))} → {fmt_bytes(s5[B].get('rss1'))}",
        f"{fmt_bytes(s5[N].get('rss0'))} → {fmt_bytes(s5[N].get('rss1'))}", "-", "-")
    row(f"S5 {a.idle} idle clients", "clients logged in (failed)", "-",
        f"{s5[B].get('opened', 'n/a')} ({s5[B].get('failed', 'n/a')})",
        f"{s5[N].get('opened', 'n/a')} ({s5[N].get('failed', 'n/a')})", "-", "-")
    row(f"S5 {a.idle} idle clients", "time to log them all in, s", "-", s5[B].get("connect_s"),
        s5[N].get("connect_s"), ratio(s5[N].get("connect_s"), s5[B].get("connect_s")), "-", digits=1)
    row(f"S5 {a.idle} idle clients", "pooler CPU while idle, % of a core", "-", s5[B].get("idle_cpu_pct"),
        s5[N].get("idle_cpu_pct"), "-", "-", digits=2)
    R["s5"] = dict(n=pcn, b=pcb, n_ok=bool(s5[N]) and not s5[N].get("failed") and not s5[N].get("crashed"))

    d, b, n = (s.med("S6 1MiB", t, "tps") for t in (D, B, N))
    row("S6 rows of 1 MiB, 4 clients", "MiB/s", tps_cell("S6 1MiB", D), tps_cell("S6 1MiB", B),
        tps_cell("S6 1MiB", N), ratio(n, b), ratio(n, d), digits=0)
    R["s6_1"] = ratio(n, d)
    cb, cn = (s.cpu_per_txn_us("S6 1MiB", t) for t in (B, N))
    cb, cn = (None if v is None else v / 1000 for v in (cb, cn))  # one transaction = 1 MiB
    row("S6 rows of 1 MiB, 4 clients", "pooler CPU ms / MiB", "-", cb, cn, ratio(cn, cb), "-", digits=2)
    d, b, n = (s.med("S6 40MiB", t, "lat_avg_ms") for t in (D, B, N))
    mbs = {t: (40 / (v / 1000) if v else None) for t, v in zip((D, B, N), (d, b, n))}
    def mbs_cell(t):
        if mbs[t] is None or s.status_of("S6 40MiB", t) != "ok":
            c = tps_cell("S6 40MiB", t)
            return c if isinstance(c, str) else fmt_num(mbs[t]) + " (some runs failed)"
        return mbs[t]
    row("S6 one 40 MiB result, 1 client", "MiB/s", mbs_cell(D), mbs_cell(B), mbs_cell(N),
        ratio(mbs[N], mbs[B]), ratio(mbs[N], mbs[D]))
    R["s6_40"] = ratio(mbs[N], mbs[D])
    cb, cn = (s.cpu_per_txn_us("S6 40MiB", t) for t in (B, N))
    cb, cn = (None if v is None else v / 1000 / 40 for v in (cb, cn))
    row("S6 one 40 MiB result, 1 client", "pooler CPU ms / MiB", "-", cb, cn, ratio(cn, cb), "-", digits=2)
    grow = {}
    for t in (B, N):
        i, p = s.results.get(f"s6_idle_rss_{t}"), s.results.get(f"s6_peak_rss_{t}")
        grow[t] = (p - i) if i is not None and p is not None else None
    def grow_cell(t):
        note = s.results.get(f"s6_peak_note_{t}")
        v = "n/a" if grow[t] is None else f"{grow[t] / MIB:.1f}"
        return f"{v} ({note})" if note else v
    row("S6 (both parts)", "peak RSS (VmHWM) above rest, MiB", "-", grow_cell(B), grow_cell(N),
        "-", "-")
    R["s6_grow"] = grow[N]

    # Goals
    w("")
    w("**Goals** (from the Performance issue):")
    w("")
    w("| Goal | Measured | Met |")
    w("|---|---|---|")

    goal_scn = {"S1 simple": ["S1 simple"], "S1 extended": ["S1 extended"], "S2": ["S2"], "S3": ["S3"],
                "S4": ["S4", "S1 simple"], "S6: rows": ["S6 1MiB"], "S6: one": ["S6 40MiB"]}

    def goal(text, measured, ok):
        # A tidepool run that failed, stalled or crashed fails the goal it feeds.
        for key, scns in goal_scn.items():
            if text.startswith(key):
                for scn in scns:
                    st = s.status_of(scn, N)
                    if st not in ("ok", "not run"):
                        measured = f"{measured}; tidepool {scn}: {st.splitlines()[0].split('; then')[0][:80]}".replace("|", "/")
                        ok = False
        w(f"| {text} | {measured} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")

    def ge(v, lim):
        return None if v is None else v >= lim

    def le(v, lim):
        return None if v is None else v <= lim

    for mode in ("simple", "extended"):
        r = R[f"s1_{mode}"]
        nb, cr, nd = ratio(r["n"], r["b"]), ratio(r["cn"], r["cb"]), ratio(r["n"], r["d"])
        goal(f"S1 {mode}: TPS >= 1.2x PgBouncer", fmt_ratio(nb)
             + (f" (a pooler costing no CPU: {fmt_ratio(r['ceiling'])} in PgBouncer's runs)"
                if r["ceiling"] else ""), ge(nb, 1.2))
        goal(f"S1 {mode}: CPU / txn <= 0.8x PgBouncer", fmt_ratio(cr), le(cr, 0.8))
        goal(f"S1 {mode}: TPS >= 0.85x direct", fmt_ratio(nd), ge(nd, 0.85))
    r = R["s1_prepared"]
    goal("S1 prepared (transaction mode): works through tidepool",
         s.status_of("S1 prepared", N) if s.status_of("S1 prepared", N) != "ok"
         else f"ok, {fmt_ratio(ratio(r['n'], r['d']))} of direct; PgBouncer 1.18: "
         + ("ok" if r["b_ok"] else "fails"), r["n_ok"])
    ab, an = R["s2"]["add"][B], R["s2"]["add"][N]
    goal("S2: added p50 latency <= PgBouncer's", f"{fmt_num(an)} µs vs {fmt_num(ab)} µs",
         None if an is None or ab is None else an <= ab)
    nb = ratio(R["s3"]["n"], R["s3"]["b"])
    goal("S3: connections/s >= 1.2x PgBouncer", fmt_ratio(nb), ge(nb, 1.2))
    goal(f"S4: TPS >= 0.9x tidepool's own S1 simple TPS", fmt_ratio(R["s4"]["self_n"]), ge(R["s4"]["self_n"], 0.9))
    goal("S4: p99 / p50 <= 1.5", fmt_ratio(R["s4"]["q_n"]), le(R["s4"]["q_n"], 1.5))
    goal("S5: <= 1 KiB per idle client", f"{fmt_num(R['s5']['n'])} B",
         None if R["s5"]["n"] is None else (R["s5"]["n"] <= 1024 and R["s5"]["n_ok"]))
    goal("S6: rows of 1 MiB >= 0.9x direct throughput", fmt_ratio(R["s6_1"]), ge(R["s6_1"], 0.9))
    goal("S6: one 40 MiB result >= 0.9x direct throughput", fmt_ratio(R["s6_40"]), ge(R["s6_40"], 0.9))
    goal("S6: peak RSS < 32 MiB above rest", fmt_bytes(R["s6_grow"])
         + (f" ({s.results['s6_peak_note_' + N]})" if s.results.get("s6_peak_note_" + N) else ""),
         None if R["s6_grow"] is None else R["s6_grow"] < 32 * MIB)

    if s.events:
        w("")
        w("**Failures and incidents during the run:**")
        w("")
        for e in s.events:
            first, *rest = e.splitlines()
            w(f"- {first}")
            if rest:
                w("")
                w("  ```")
                for line in rest:
                    w(f"  {line}")
                w("  ```")

    w("")
    w("<details><summary>Every measured pgbench run</summary>")
    w("")
    w("| Scenario | Target | Rep | TPS | Transactions | Pooler CPU s | pgbench CPU s | p50 µs | p99 µs | Status |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in s.runs:
        w(f"| {r['scenario']} | {LABEL[r['target']]} | {r['rep']} | {fmt_num(r['tps'])} | {r['txns']} | "
          f"{fmt_num(r.get('pooler_cpu'), 2)} | {fmt_num(r['pgbench_cpu'], 2)} | "
          f"{fmt_num(r.get('p50_us'))} | {fmt_num(r.get('p99_us'))} | "
          f"{r['status']}{': ' + r['error'].splitlines()[0].replace('|', '/') if r.get('error') else ''} |")
    w("")
    w("</details>")
    return "\n".join(lines) + "\n"


def write_docs(text):
    block = f"{BEGIN_MARK}\n{text}{END_MARK}\n"
    if os.path.exists(DOCS):
        with open(DOCS) as f:
            doc = f.read()
        if BEGIN_MARK in doc and END_MARK in doc:
            head, rest = doc.split(BEGIN_MARK, 1)
            tail = rest.split(END_MARK, 1)[1].lstrip("\n")
            doc = head + block + ("\n" + tail if tail else "")
        else:
            doc = doc.rstrip("\n") + "\n\n## Results\n\n" + block
    else:
        doc = "# Benchmarks\n\nWritten by `bench/run --write-docs`.\n\n## Results\n\n" + block
    with open(DOCS, "w") as f:
        f.write(doc)
    say(f"wrote {os.path.relpath(DOCS, ROOT)}")


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description="tidepool's benchmark suite "
                                 "(direct PostgreSQL vs PgBouncer vs tidepool); see docs/benchmarks.md")
    ap.add_argument("--quick", action="store_true", help="a ~2-minute smoke run (short runs, 1 repetition)")
    ap.add_argument("--write-docs", action="store_true", help="put the results in docs/benchmarks.md")
    ap.add_argument("--duration", type=int, help="seconds per pgbench run (default 10; --quick 3)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 2; --quick 1)")
    ap.add_argument("--scale", type=int, help="pgbench -i scale (default 10; --quick 1)")
    ap.add_argument("--clients", type=int, default=16, help="clients for S1 and S3 (default 16)")
    ap.add_argument("--rate", type=int, default=8000,
                    help="S1 at a fixed rate (pgbench -R) to compare CPU per transaction "
                         "unsaturated (default 8000; 0 skips it)")
    ap.add_argument("--pool-size", type=int, default=20, help="pool size of both poolers (default 20)")
    ap.add_argument("--many", type=int, default=1000, help="S4 clients (default 1000)")
    ap.add_argument("--idle", type=int, help="S5 idle clients (default 10000; --quick 2000)")
    ap.add_argument("--idle-hold", type=float, default=3.0, help="S5: seconds to measure idle CPU")
    ap.add_argument("--auth", choices=("md5", "trust"), default="md5", help="client auth of both poolers")
    ap.add_argument("--backend-socket", action="store_true",
                    help="poolers reach PostgreSQL over its Unix socket (default: TCP 127.0.0.1)")
    ap.add_argument("--only", help="comma-separated scenarios to run: s1,s2,s3,s4,s5,s6 (default all)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument("--cmdline", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.duration = a.duration or (3 if a.quick else 10)
    a.reps = a.reps or (1 if a.quick else 2)
    a.scale = a.scale or (1 if a.quick else 10)
    a.idle = a.idle or (2000 if a.quick else 10000)
    only = set((a.only or "s1,s2,s3,s4,s5,s6").lower().split(","))

    if not os.access(TIDEPOOL, os.X_OK):
        sys.exit(f"error: {TIDEPOOL} not found: run script/build build (bench/run does)")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(a.idle, a.many) + 1000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 20000)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        sys.exit(f"error: open-file limit {soft} < {need}: raise it (ulimit -n)")

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    mach = machine()
    s = Suite(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        s.start_postgres()
        s.write_pooler_configs()
        s.start_pooler(B)
        s.start_pooler(N)
        s.warm_up()
        steps = [("s1", s.s1), ("s2", s.s2), ("s3", s.s3), ("s6", s.s6), ("s4", s.s4), ("s5", s.s5)]
        for name, fn in steps:
            if name not in only:
                continue
            try:
                fn()
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - one scenario failing does not stop the rest
                msg = f"{name.upper()} stopped by an error: {type(e).__name__}: {e}"
                say(msg)
                s.events.append(msg)
        # tidepool's log: anything at warn or above is worth reading.
        tail = s.log_tail(N, 40).strip()
        if tail:
            s.events.append("tidepool's log (last lines, log_level=warn):\n" + tail)
        elapsed = time.monotonic() - t0
        mach["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        text = report(s, started, elapsed, a.cmdline or "bench/bench.py " + " ".join(sys.argv[1:]), mach)
        print()
        print(text)
        if a.write_docs:
            write_docs(text)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
