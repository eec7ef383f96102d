"""tpharness: integration-test harness for tidepool.

Runs on Debian's /usr/bin/python3 with the standard library and Debian's
drivers only (python3-psycopg2; the others as tests need them).

    with Cluster() as pg, Tidepool(pg, pools={"inventorydb": {"pool_mode": "session"}}) as tp:
        run = tp.psql("SELECT 1")                       # /usr/bin/psql over TCP
        conn = tp.connect(unix=True)                    # psycopg2 over the Unix socket
        raw = tp.raw(password="wrong")                  # raises PgError, .sqlstate == "28P01"

Cluster: a throwaway PostgreSQL 15 in a temporary directory: initdb with SCRAM
and a random superuser password, a free port on 127.0.0.1, a private Unix socket
directory, fsync off. Roles: the superuser `postgres`, `app` (password `secret`)
owning the databases `inventorydb` and `otherdb`. As root, initdb and postgres
run as the `postgres` user through setpriv (runuser/su would reset the
open-file limit through PAM). The postmaster is our child with a parent-death
signal, so it cannot outlive a test that is killed (for example by a CTest
timeout); stopping it is pg_ctl's "fast" mode (SIGINT).

With ssl=True the cluster also serves TLS (ssl = on) with a server
certificate from a throwaway CA made by make_test_certs() in its directory
(Cluster.certs: ca, server_cert, server_key ... paths). make_test_certs() is
also what a test gives tidepool for client TLS.

Tidepool: writes an INI file (SPEC §3) and a userlist.txt auth_file, starts the
daemon (TIDEPOOL_BIN, else build/tidepool) with the config path as its only
argument, stdout and stderr to a log file, and waits until its TCP port (or
Unix socket) accepts connections. Stopping sends SIGTERM, then SIGKILL after
shutdown_timeout + 5 s. The daemon must exit 0 on SIGTERM and must not die on
its own: otherwise leaving the `with` block fails the test, printing its log.

TestCase: a unittest.TestCase that prints the logs of the daemons involved
whenever a test fails or errors. main(): unittest.main with verbosity 2 that
turns SIGTERM/SIGHUP into a clean exit (so every `with` cleans up).

RawConnection: a tiny PostgreSQL v3 client on a plain socket (startup packet,
cleartext/MD5/SCRAM-SHA-256 authentication, simple and extended query) so
tests can assert exact SQLSTATEs (28P01, 3D000, 53300 ...) that libpq-based
drivers do not expose for connection failures.

Environment: PG* variables (PGHOST, PGPORT, PGSSLMODE, ...) are removed from
this process at import so that libpq connects exactly where a test says.
TIDEPOOL_KEEP_TMP=1 keeps temporary directories for a post-mortem.
"""

import base64
import contextlib
import ctypes
import errno
import functools
import hashlib
import hmac
import os
import random
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PSQL = "/usr/bin/psql"
APP_USER = "app"
APP_PASSWORD = "secret"
DATABASES = ("inventorydb", "otherdb")
KEEP_TMP = os.environ.get("TIDEPOOL_KEEP_TMP") == "1"

# libpq reads PGHOST, PGPORT, PGSSLMODE, PGOPTIONS, PGSERVICE ... from the
# environment; a test must connect exactly where it says. (PG_BINDIR and other
# PG_ names are ours and kept.)
for _name in list(os.environ):
    if _name.startswith("PG") and not _name.startswith("PG_"):
        del os.environ[_name]


def log(msg):
    print(f"[tpharness] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Processes, ports, temporary directories
# ---------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _is_root():
    return os.geteuid() == 0


def _as_postgres(argv, pdeathsig=None):
    """argv run as the `postgres` user when we are root (initdb and postgres
    refuse to run as root); as ourselves otherwise."""
    if not _is_root():
        if pdeathsig:
            return ["setpriv", f"--pdeathsig={pdeathsig}", "--", *argv]
        return list(argv)
    prefix = ["setpriv"]
    if pdeathsig:
        prefix.append(f"--pdeathsig={pdeathsig}")
    prefix += ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    return prefix + list(argv)


def _chown_postgres(path):
    if _is_root():
        shutil.chown(path, "postgres", "postgres")


def _tmp_base():
    """Where temporary directories go: $TMPDIR unless its paths would be too
    long for a Unix socket name (108 bytes), else /tmp."""
    base = tempfile.gettempdir()
    return base if len(base) <= 40 else "/tmp"


_handed_out = set()


def port_is_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A TCP port free on 127.0.0.1, from 20000-31999: below Linux's ephemeral
    range (32768-60999), so no outgoing connection can be given it between this
    probe and the bind. Never the same one twice in one process; callers retry
    with another port if the bind loses a race with another process."""
    for port in random.sample(range(20000, 32000), 3000):
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _wait_connectable(family, address, deadline, proc=None):
    """Until `deadline`, try to connect to address; True once it accepts.
    False when the deadline passes or proc exits."""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(address)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def _read_text(path, limit=None):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    if limit is not None:
        lines = text.splitlines()
        if len(lines) > limit:
            text = "\n".join([f"... ({len(lines) - limit} earlier lines)"] + lines[-limit:]) + "\n"
    return text


def _rmtree(path):
    if path and not KEEP_TMP:
        shutil.rmtree(path, ignore_errors=True)
    elif path:
        log(f"kept {path}")


def _conninfo_value(v):
    v = str(v)
    if v and all(c not in v for c in " '\\"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**kw):
    """A libpq keyword/value string; None values are left out."""
    return " ".join(f"{k}={_conninfo_value(v)}" for k, v in kw.items() if v is not None)


# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------

def scram_verifier(password, salt=None, iterations=4096):
    """A SCRAM-SHA-256 verifier as PostgreSQL stores it (and as the auth_file
    accepts it): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
    ASCII passwords only (no SASLprep)."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def md5_secret(user, password):
    """PostgreSQL's md5 secret: "md5" + md5(password || user)."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def write_userlist(path, users):
    """PgBouncer's auth_file format: one `"user" "secret"` per line, a quote
    inside quotes doubled. Private (0600), as it should be: tidepool warns
    otherwise."""
    q = lambda s: '"' + str(s).replace('"', '""') + '"'  # noqa: E731
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("; written by tpharness\n")
        for user, secret in users.items():
            f.write(f"{q(user)} {q(secret)}\n")


def ini_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def write_ini(path, sections):
    """sections: {section name: {key: value}}, in order. None values are left out.
    Private (0600): pool urls hold passwords, and tidepool warns otherwise."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("; written by tpharness\n")
        for name, keys in sections.items():
            f.write(f"\n[{name}]\n")
            for k, v in keys.items():
                if v is not None:
                    f.write(f"{k} = {ini_value(v)}\n")


# ---------------------------------------------------------------------------
# psql
# ---------------------------------------------------------------------------

class PsqlResult:
    def __init__(self, returncode, stdout, stderr, argv):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.argv = argv

    @property
    def ok(self):
        return self.returncode == 0

    def __repr__(self):
        return (f"PsqlResult(returncode={self.returncode}, stdout={self.stdout!r}, "
                f"stderr={self.stderr!r})")


def run_psql(dsn, sql=None, args=(), timeout=60, env=None, stdin=None):
    """Run /usr/bin/psql -X -A -t -q -v ON_ERROR_STOP=1 -d DSN [-c SQL] ARGS.
    Returns a PsqlResult (returncode, stdout, stderr); never raises on a
    non-zero exit. PGCONNECT_TIMEOUT=10."""
    argv = [PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]
    if sql is not None:
        argv += ["-c", sql]
    argv += list(args)
    e = dict(os.environ)
    e["PGCONNECT_TIMEOUT"] = "10"
    e.update(env or {})
    p = subprocess.run(argv, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, env=e)
    return PsqlResult(p.returncode, p.stdout, p.stderr, argv)


# ---------------------------------------------------------------------------
# TLS certificates
# ---------------------------------------------------------------------------

class TestCerts:
    """Paths of a throwaway CA and of certificates it signed (PEM)."""

    def __init__(self, directory):
        d = Path(directory)
        self.dir = str(d)
        self.ca = str(d / "ca.crt")               # the CA's certificate
        self.ca_key = str(d / "ca.key")
        self.server_cert = str(d / "server.crt")  # CN localhost, SAN localhost + 127.0.0.1
        self.server_key = str(d / "server.key")   # mode 0600
        self.client_cert = str(d / "client.crt")  # CN app, for client certificates
        self.client_key = str(d / "client.key")
        self.other_ca = str(d / "other-ca.crt")   # a CA that signed none of these


def _openssl(args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{p.stdout}{p.stderr}")


def make_test_certs(directory):
    """Make a throwaway CA (P-256 keys, valid 2 days) and have it sign a
    server certificate for localhost / 127.0.0.1 and a client certificate for
    `app`, with the openssl CLI, in `directory` (created). Returns TestCerts."""
    d = Path(directory)
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    c = TestCerts(d)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", *key, "-days", "2", "-subj", "/CN=tidepool test CA",
              "-keyout", c.ca_key, "-out", c.ca], d)
    _openssl(["req", "-x509", *key, "-days", "2", "-subj", "/CN=another test CA",
              "-keyout", str(d / "other-ca.key"), "-out", c.other_ca], d)
    for name, cn, ext in (("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                          ("client", APP_USER, "extendedKeyUsage=clientAuth")):
        csr = str(d / f"{name}.csr")
        _openssl(["req", "-new", *key, "-subj", f"/CN={cn}", "-keyout", str(d / f"{name}.key"),
                  "-out", csr], d)
        extfile = d / f"{name}.ext"
        extfile.write_text(ext + "\n")
        _openssl(["x509", "-req", "-in", csr, "-CA", c.ca, "-CAkey", c.ca_key, "-CAcreateserial",
                  "-days", "2", "-extfile", str(extfile), "-out", str(d / f"{name}.crt")], d)
    for k in (c.server_key, c.client_key, c.ca_key):
        os.chmod(k, 0o600)
    return c


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

_live_clusters = []


class Cluster:
    """A throwaway PostgreSQL 15 cluster. Use as a context manager, or call
    start() and stop()."""

    def __init__(self, settings=None, databases=DATABASES, ssl=False):
        self.settings = dict(settings or {})  # extra postgresql.conf settings
        self.ssl = ssl
        self.certs = None  # TestCerts when ssl=True
        self.databases = tuple(databases)
        self.host = "127.0.0.1"
        self.port = None
        self.dir = None
        self.datadir = None
        self.socket_dir = None
        self.log_path = None
        self.superuser = "postgres"
        self.superuser_password = secrets.token_hex(16)
        self.proc = None

    # -- lifecycle --

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            self.dump_log(lines=60)
        self.stop()
        return False

    def start(self):
        initdb = PG_BINDIR / "initdb"
        if not initdb.exists():
            raise RuntimeError(f"{initdb} not found: run script/bootstrap")
        self.dir = tempfile.mkdtemp(prefix="tp-pg-", dir=_tmp_base())
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        _live_clusters.append(self)
        return self

    def _start(self):
        d = Path(self.dir)
        os.chmod(d, 0o755)
        self.datadir = str(d / "data")
        self.socket_dir = str(d / "pgsock")
        self.log_path = str(d / "postgresql.log")
        os.mkdir(self.socket_dir, 0o700)
        _chown_postgres(d)
        _chown_postgres(self.socket_dir)

        pwfile = d / "superuser.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.superuser_password + "\n")
        _chown_postgres(pwfile)
        p = subprocess.run(
            _as_postgres([str(PG_BINDIR / "initdb"), "-D", self.datadir, "-U", self.superuser,
                          f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
                          "--locale=C", "--no-sync"]),
            cwd=d, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        pwfile.unlink()
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        if self.ssl:
            self.certs = make_test_certs(d / "certs")
            for path in (d / "certs", self.certs.server_cert, self.certs.server_key, self.certs.ca):
                _chown_postgres(path)
            self.settings = {"ssl": "on", "ssl_cert_file": f"'{self.certs.server_cert}'",
                             "ssl_key_file": f"'{self.certs.server_key}'", **self.settings}

        for attempt in range(5):
            self.port = free_port()
            self._write_conf()
            if self._start_postmaster():
                break
            log_text = _read_text(self.log_path)
            if attempt < 4 and ("could not bind" in log_text
                                or "could not create any TCP/IP sockets" in log_text):
                log(f"PostgreSQL could not bind port {self.port}; trying another")
                continue
            raise RuntimeError(f"PostgreSQL did not start; its log:\n{log_text}")
        self._create_roles()

    def _write_conf(self):
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": 200,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        conf.update(self.settings)
        path = Path(self.datadir) / "postgresql.auto.conf"
        path.write_text("# written by tpharness for a throwaway cluster\n"
                        + "".join(f"{k} = {v}\n" for k, v in conf.items()))
        _chown_postgres(path)

    def _start_postmaster(self, timeout=60):
        """Start postgres as our child and wait as `pg_ctl -w` does: until
        postmaster.pid says "ready". False if it exits first."""
        pidfile = Path(self.datadir) / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                _as_postgres([str(PG_BINDIR / "postgres"), "-D", self.datadir], pdeathsig="INT"),
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL not ready after {timeout}s; its log:\n"
                           + _read_text(self.log_path))

    def _create_roles(self):
        self.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        for db in self.databases:
            self.execute(f"CREATE DATABASE {db} OWNER {APP_USER}")

    def stop(self, timeout=60):
        """pg_ctl stop -m fast, then remove the directory."""
        if self in _live_clusters:
            _live_clusters.remove(self)
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log("PostgreSQL did not stop in time: SIGKILL")
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        _rmtree(self.dir)
        self.dir = None

    def down(self, immediate=True, timeout=60):
        """Stop PostgreSQL (SIGQUIT = pg_ctl -m immediate, or SIGINT = fast),
        keeping its data and port for up()."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            self.proc.wait(timeout)
        self.proc = None

    def up(self, timeout=60):
        """Start PostgreSQL again after down(), on the same port and data."""
        if not self._start_postmaster(timeout=timeout):
            raise RuntimeError("PostgreSQL did not restart; its log:\n" + _read_text(self.log_path))

    def restart(self, immediate=True, down_for=0.0, timeout=60):
        """down(), wait down_for seconds, up()."""
        self.down(immediate, timeout)
        time.sleep(down_for)
        self.up(timeout)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def dump_log(self, lines=60):
        if self.log_path:
            print(f"----- PostgreSQL log ({self.log_path}), last {lines} lines -----\n"
                  + _read_text(self.log_path, limit=lines)
                  + "----- end of PostgreSQL log -----", file=sys.stderr, flush=True)

    # -- connecting --

    def url(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, scheme="postgresql"):
        """A libpq URI to this cluster over TCP, as a pool's `url`."""
        q = urllib.parse.quote
        return f"{scheme}://{q(user, safe='')}:{q(password, safe='')}@{self.host}:{self.port}/{q(dbname, safe='')}"

    def dsn(self, dbname="postgres", user=None, password=None):
        user = user or self.superuser
        if password is None:
            password = self.superuser_password if user == self.superuser else APP_PASSWORD
        return conninfo(host=self.host, port=self.port, dbname=dbname, user=user, password=password)

    def connect(self, dbname="postgres", user=None, password=None, autocommit=True, **kw):
        """psycopg2 straight to PostgreSQL (not through tidepool)."""
        import psycopg2
        conn = psycopg2.connect(self.dsn(dbname, user, password), connect_timeout=10, **kw)
        conn.autocommit = autocommit
        return conn

    def execute(self, sql, params=None, dbname="postgres"):
        """Run one statement as the superuser (autocommit); rows, or None."""
        with contextlib.closing(self.connect(dbname)) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def psql(self, sql, dbname="postgres", args=()):
        return run_psql(self.dsn(dbname), sql, args)

    def backends(self, dbname="inventorydb", user=APP_USER):
        """pids of client backends connected to dbname as user."""
        rows = self.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND usename = %s"
                            " AND backend_type = 'client backend' ORDER BY pid", (dbname, user))
        return [r[0] for r in rows]


# ---------------------------------------------------------------------------
# tidepool
# ---------------------------------------------------------------------------

_all_daemons = []


def tidepool_bin():
    b = os.environ.get("TIDEPOOL_BIN") or str(REPO_ROOT / "build" / "tidepool")
    if not os.access(b, os.X_OK):
        raise RuntimeError(f"tidepool binary {b} not found: build it (script/build) or set TIDEPOOL_BIN")
    return b


def run_tidepool(*args, timeout=30):
    """Run the binary to completion (for --check, --version, --help):
    a CompletedProcess with text stdout/stderr."""
    return subprocess.run([tidepool_bin(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class DaemonError(AssertionError):
    pass


class Tidepool:
    """tidepool in front of a Cluster.

    pools:    {NAME: {key: value}} for [pool.NAME] sections. A pool without
              `url` points at database NAME on the cluster when the cluster has
              one, else at inventorydb, as app/secret. Default: {"inventorydb": {}}.
    settings: [tidepool] keys over the harness's defaults (listen_addr 127.0.0.1,
              a free listen_port, unix_socket_dir in the temporary directory,
              auth_type scram-sha-256, auth_file the written userlist.txt,
              shutdown_timeout 5, log_level debug); a None value drops a key.
    users:    auth_file entries {user: secret}; default {"app": "secret"}. Use
              scram_verifier() / md5_secret() for hashed secrets.
    check_exit: fail when the daemon died on its own or did not exit 0 on SIGTERM.
    env:      extra environment variables for the daemon (NOTIFY_SOCKET, ...).
    wrapper:  a function(tidepool) -> argv put before the daemon's own, called
              once the port is chosen (e.g. systemd-socket-activate -l ...).
    """

    def __init__(self, pg, pools=None, settings=None, users=None, check_exit=True,
                 start_timeout=10, binary=None, env=None, wrapper=None):
        self.pg = pg
        self.pools = {"inventorydb": {}} if pools is None else dict(pools)
        self.settings = dict(settings or {})
        self.users = {APP_USER: APP_PASSWORD} if users is None else dict(users)
        self.check_exit = check_exit
        self.start_timeout = start_timeout
        self.binary = binary
        self.env = dict(env or {})
        self.wrapper = wrapper
        self.host = "127.0.0.1"
        self.port = None
        self.dir = None
        self.socket_dir = None
        self.config_path = None
        self.auth_file = None
        self.log_path = None
        self.proc = None
        self.returncode = None
        self.died = False     # exited before we asked it to
        self.killed = False   # needed SIGKILL
        self._log_cache = None
        self._dumped = False
        self._stopping = False  # we sent SIGTERM/SIGINT/SIGKILL: an exit is expected

    # -- configuration --

    def sections(self):
        tp = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": self.socket_dir,
            "auth_type": "scram-sha-256",
            "auth_file": self.auth_file,
            "shutdown_timeout": 5,
            "log_level": "debug",
        }
        tp.update(self.settings)
        sections = {"tidepool": tp}
        for name, keys in self.pools.items():
            keys = dict(keys)
            if "url" not in keys:
                db = name if name in self.pg.databases else "inventorydb"
                keys = {"url": self.pg.url(db), **keys}
            sections[f"pool.{name}"] = keys
        return sections

    @property
    def tcp(self):
        return bool(self.sections()["tidepool"].get("listen_addr"))

    @property
    def socket_path(self):
        return os.path.join(self.socket_dir, f".s.PGSQL.{self.port}")

    # -- lifecycle --

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        finally:
            if exc_type is not None and exc_type is not KeyboardInterrupt:
                self.dump_log()
        if exc_type is None:
            self.check()
        return False

    def start(self):
        binary = self.binary or tidepool_bin()
        self.dir = tempfile.mkdtemp(prefix="tp-", dir=_tmp_base())
        os.chmod(self.dir, 0o755)
        self.socket_dir = self.settings.get("unix_socket_dir", self.dir)
        self.auth_file = os.path.join(self.dir, "userlist.txt")
        self.config_path = os.path.join(self.dir, "tidepool.ini")
        self.log_path = os.path.join(self.dir, "tidepool.log")
        write_userlist(self.auth_file, self.users)
        _all_daemons.append(self)
        for attempt in range(3):
            self.port = self.settings.get("listen_port") or free_port()
            write_ini(self.config_path, self.sections())
            argv = (list(self.wrapper(self)) if self.wrapper else []) + [binary, self.config_path]
            env = dict(os.environ, **self.env) if self.env else None
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(argv, cwd=self.dir, env=env,
                                             stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            self.returncode = None
            self._stopping = False
            if self._wait_ready():
                return self
            rc = self.proc.poll()
            if rc is None:
                self._terminate(signal.SIGKILL, 5)
                self.stop()
                self.dump_log()
                raise DaemonError(f"tidepool did not accept connections on port {self.port} "
                                  f"within {self.start_timeout}s")
            self.returncode = rc
            self.proc = None
            text = _read_text(self.log_path).lower()
            if attempt < 2 and "listen_port" not in self.settings and "in use" in text:
                log(f"port {self.port} was taken; trying another")
                continue
            self.stop()
            self.dump_log()
            raise DaemonError(f"tidepool exited with status {rc} at start")
        raise AssertionError("unreachable")

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        if self.tcp:
            if not _wait_connectable(socket.AF_INET, (self.host, self.port), deadline, self.proc):
                return False
        if self.socket_dir:
            if not _wait_connectable(socket.AF_UNIX, self.socket_path, deadline, self.proc):
                return False
        return True

    def _terminate(self, sig, timeout):
        """Send sig (unless a stopping signal was already sent: a second one
        is not what systemd or a user does), wait, SIGKILL after timeout."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            if not self._stopping:
                self._stopping = True
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"tidepool did not exit within {timeout}s of signal {sig}: SIGKILL")
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Stop the daemon (SIGTERM, SIGKILL after shutdown_timeout + 5 s) and
        remove its directory. Returns its exit status."""
        if self.proc is not None:
            if self.proc.poll() is not None and self.returncode is None and not self._stopping:
                self.died = True
            if timeout is None:
                timeout = float(self.sections()["tidepool"].get("shutdown_timeout") or 30) + 5
            self._terminate(sig, timeout)
            self.proc = None
        if self.dir is not None:
            self._log_cache = _read_text(self.log_path)
            _rmtree(self.dir)
            self.dir = None
        return self.returncode

    def check(self):
        """Fail (printing the log) when the daemon misbehaved: died on its own,
        did not exit 0 on SIGTERM, or a sanitizer reported an error."""
        if not self.check_exit:
            return
        problems = []
        if self.died:
            problems.append(f"tidepool exited on its own (status {self.returncode})")
        elif self.killed:
            problems.append("tidepool did not exit after SIGTERM and was killed")
        elif self.returncode not in (0, None):
            problems.append(f"tidepool exited with status {self.returncode} after SIGTERM")
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                problems.append(f"sanitizer report in the log ({marker})")
        if problems:
            self.dump_log()
            raise DaemonError("; ".join(problems))

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        """Send sig to the daemon. After SIGTERM, SIGINT or SIGKILL its exit is
        expected, and stop() only waits for it."""
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self._stopping = True
        self.proc.send_signal(sig)

    def expect_exit(self):
        """The test is about to stop the daemon another way than a signal
        (the admin console's SHUTDOWN): its exit is expected."""
        self._stopping = True

    def reload(self):
        """SIGHUP: re-read the config file (rewrite it first with write_config())."""
        self.send_signal(signal.SIGHUP)

    def write_config(self):
        write_ini(self.config_path, self.sections())

    def admin(self, sql, user=APP_USER, password=APP_PASSWORD):
        """One command on the admin console (database `tidepool`) through psql:
        its rows as dicts keyed by column name ([] for a command without rows).
        AssertionError with psql's output when it fails."""
        r = self.psql(sql, dbname="tidepool", user=user, password=password,
                      args=("-P", "tuples_only=off", "-P", "footer=off"))
        assert r.ok, f"admin {sql!r} failed: {r}"
        lines = r.stdout.strip().splitlines()
        if not lines:
            return []
        header = lines[0].split("|")
        return [dict(zip(header, line.split("|"))) for line in lines[1:]]

    def log_text(self):
        if self.dir is not None and self.log_path:
            return _read_text(self.log_path)
        return self._log_cache or ""

    def dump_log(self, lines=300):
        text = self.log_text()
        all_lines = text.splitlines()
        if len(all_lines) > lines:
            text = "\n".join([f"... ({len(all_lines) - lines} earlier lines)"] + all_lines[-lines:]) + "\n"
        print(f"----- tidepool log (port {self.port}) -----\n{text}----- end of tidepool log -----",
              file=sys.stderr, flush=True)
        self._dumped = True

    # -- connecting --

    def conninfo(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, unix=False, **extra):
        host = self.socket_dir if unix else self.host
        return conninfo(host=host, port=self.port, dbname=dbname, user=user, password=password, **extra)

    def psql(self, sql, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, unix=False,
             args=(), **extra):
        """/usr/bin/psql through tidepool; a PsqlResult (returncode, stdout, stderr)."""
        return run_psql(self.conninfo(dbname, user, password, unix, **extra), sql, args)

    def connect(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, unix=False,
                autocommit=False, **kw):
        """A psycopg2 connection through tidepool (TCP, or the Unix socket)."""
        import psycopg2
        conn = psycopg2.connect(self.conninfo(dbname, user, password, unix),
                                connect_timeout=10, **kw)
        conn.autocommit = autocommit
        return conn

    def raw(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, unix=False,
            params=None, timeout=10):
        """A RawConnection through tidepool, authenticated (raises PgError)."""
        host = self.socket_dir if unix else self.host
        return RawConnection.connect(host, self.port, user=user, database=dbname,
                                     password=password, params=params, timeout=timeout)

    def url(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD, driver="psycopg2"):
        """A SQLAlchemy URL through tidepool over TCP."""
        q = urllib.parse.quote
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{q(user, safe='')}:{q(password, safe='')}@{self.host}:{self.port}/{q(dbname, safe='')}"


# ---------------------------------------------------------------------------
# A raw PostgreSQL v3 client
# ---------------------------------------------------------------------------

class PgError(Exception):
    """An ErrorResponse. fields: {code letter: value}."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{self.severity} {self.sqlstate}: {self.message}")

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def severity(self):
        return self.fields.get("V") or self.fields.get("S")

    @property
    def message(self):
        return self.fields.get("M")


class Result:
    def __init__(self):
        self.columns = []
        self.rows = []
        self.tag = None

    def __repr__(self):
        return f"Result(tag={self.tag!r}, columns={self.columns!r}, rows={self.rows!r})"


def _cstr(s):
    return s.encode() + b"\0"


def _fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out


class RawConnection:
    """PostgreSQL protocol 3.0 over a plain socket; no TLS, text format only."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.parameters = {}     # ParameterStatus
        self.backend_key = None  # (pid, secret) from BackendKeyData
        self.notices = []
        self.status = None       # transaction status of the last ReadyForQuery
        self.auth_methods = []   # authentication requests seen (codes)

    # -- connecting --

    @classmethod
    def open_socket(cls, host, port, timeout=10):
        if host.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = os.path.join(host, f".s.PGSQL.{port}")
        else:
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            addr = (host, port)
        s.settimeout(timeout)
        try:
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        return cls(s)

    @classmethod
    def connect(cls, host, port, user, database, password=None, params=None, timeout=10):
        c = cls.open_socket(host, port, timeout)
        try:
            c.startup(user, database, password, params)
        except BaseException:
            c.sock.close()
            raise
        return c

    def startup(self, user, database, password=None, params=None):
        login = _Login(self, user, password)
        self.sock.sendall(login.startup_packet(database, params))
        while True:
            t, body = self.read_message()
            reply = login.answer(t, body)
            if reply is None:
                return
            if reply:
                self.sock.sendall(reply)

    # -- messages --

    def send(self, msg_type, body=b""):
        self.sock.sendall(_message(msg_type, body))

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk

    def read_message(self):
        """(type byte, body). EOFError when the server closed the connection."""
        self._fill(5)
        t = self.buf[:1]
        n = struct.unpack("!i", self.buf[1:5])[0]
        self._fill(1 + n)
        body = self.buf[5:1 + n]
        self.buf = self.buf[1 + n:]
        return t, body

    def read_until_ready(self):
        """Messages up to and including ReadyForQuery: [(type, body)]."""
        msgs = []
        while True:
            t, body = self.read_message()
            msgs.append((t, body))
            if t == b"Z":
                self.status = body[:1].decode()
                return msgs

    @staticmethod
    def results(msgs):
        """Results of a message list; raises PgError for the first ErrorResponse."""
        results, cur, error = [], Result(), None
        for t, body in msgs:
            if t == b"T":
                cur = Result()
                n = struct.unpack("!h", body[:2])[0]
                pos = 2
                for _ in range(n):
                    end = body.index(b"\0", pos)
                    cur.columns.append(body[pos:end].decode())
                    pos = end + 1 + 18
            elif t == b"D":
                n = struct.unpack("!h", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                cur.rows.append(tuple(row))
            elif t == b"C":
                cur.tag = body.rstrip(b"\0").decode()
                results.append(cur)
                cur = Result()
            elif t == b"E" and error is None:
                error = PgError(_fields(body))
        if error is not None:
            raise error
        return results

    def query(self, sql):
        """Simple query: a list of Result (one per statement). PgError on error
        (after reading up to ReadyForQuery, so the connection stays usable)."""
        self.send(b"Q", _cstr(sql))
        msgs = self.read_until_ready()
        self.notices += [_fields(b) for t, b in msgs if t == b"N"]
        return self.results(msgs)

    def fetch(self, sql):
        """Rows of the last result of a simple query."""
        results = self.query(sql)
        return results[-1].rows if results else []

    # extended protocol builders (send only; read with read_until_ready)
    def parse(self, name, sql, param_types=()):
        self.send(b"P", _cstr(name) + _cstr(sql) + struct.pack("!h", len(param_types))
                  + b"".join(struct.pack("!i", oid) for oid in param_types))

    def bind(self, portal, statement, params=()):
        body = _cstr(portal) + _cstr(statement) + struct.pack("!h", 0) + struct.pack("!h", len(params))
        for p in params:
            if p is None:
                body += struct.pack("!i", -1)
            else:
                b = str(p).encode()
                body += struct.pack("!i", len(b)) + b
        body += struct.pack("!h", 0)
        self.send(b"B", body)

    def describe(self, kind, name):
        self.send(b"D", kind.encode() + _cstr(name))

    def execute(self, portal="", max_rows=0):
        self.send(b"E", _cstr(portal) + struct.pack("!i", max_rows))

    def close_statement(self, name):
        self.send(b"C", b"S" + _cstr(name))

    def sync(self):
        self.send(b"S")

    def flush(self):
        self.send(b"H")

    def prepared(self, sql, params=(), name=""):
        """Parse/Bind/Describe/Execute/Sync; the Result of the execution."""
        self.parse(name, sql)
        self.bind("", name, params)
        self.describe("P", "")
        self.execute()
        self.sync()
        msgs = self.read_until_ready()
        results = self.results(msgs)
        return results[-1] if results else None

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection within timeout (any
        pending messages are read and dropped)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.read_message()
        except EOFError:
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        with contextlib.suppress(OSError):
            self.send(b"X")
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @staticmethod
    def cancel(host, port, pid, secret, timeout=10):
        """Send a CancelRequest for (pid, secret)."""
        c = RawConnection.open_socket(host, port, timeout)
        try:
            c.sock.sendall(struct.pack("!iiii", 16, 80877102, pid, secret))
            with contextlib.suppress(OSError):
                c.sock.recv(1)
        finally:
            c.sock.close()


def _message(msg_type, body=b""):
    return msg_type + struct.pack("!i", len(body) + 4) + body


class _Login:
    """The client side of the startup dialog, without I/O: startup_packet(),
    then answer() for each message the server sends, which returns the bytes
    to send (b"" for none) or None once ReadyForQuery came; raises PgError for
    an ErrorResponse. What the server tells (ParameterStatus, BackendKeyData,
    notices, status, authentication codes) is recorded on `conn` as on a
    RawConnection. Shared by RawConnection and MassClients."""

    def __init__(self, conn, user, password):
        self.conn, self.user, self.password = conn, user, password
        self.scram = None

    def startup_packet(self, database, params=None):
        kv = {"user": self.user, "database": database, **(params or {})}
        body = struct.pack("!i", 196608) + b"".join(_cstr(k) + _cstr(v) for k, v in kv.items()) + b"\0"
        return struct.pack("!i", len(body) + 4) + body

    def _need_password(self):
        if self.password is None:
            raise RuntimeError("the server asked for a password and none was given")
        return self.password

    def answer(self, t, body):
        conn = self.conn
        if t == b"R":
            code = struct.unpack("!i", body[:4])[0]
            conn.auth_methods.append(code)
            if code == 0:
                return b""
            if code == 3:
                return _message(b"p", _cstr(self._need_password()))
            if code == 5:
                inner = hashlib.md5((self._need_password() + self.user).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                return _message(b"p", _cstr("md5" + outer))
            if code == 10:
                mechs = [m.decode() for m in body[4:].split(b"\0") if m]
                if "SCRAM-SHA-256" not in mechs:
                    raise RuntimeError(f"no supported SASL mechanism in {mechs}")
                self.scram = _ScramClient(self._need_password())
                first = self.scram.client_first()
                return _message(b"p", _cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first)
            if code == 11:
                return _message(b"p", self.scram.client_final(body[4:]))
            if code == 12:
                self.scram.verify_server_final(body[4:])
                return b""
            raise RuntimeError(f"unsupported authentication request {code}")
        if t == b"E":
            raise PgError(_fields(body))
        if t == b"S":
            k, v = body.split(b"\0")[:2]
            conn.parameters[k.decode()] = v.decode()
        elif t == b"K":
            conn.backend_key = struct.unpack("!ii", body[:8])
        elif t == b"N":
            conn.notices.append(_fields(body))
        elif t == b"Z":
            conn.status = body[:1].decode()
            return None
        else:
            raise RuntimeError(f"unexpected message {t!r} during startup")
        return b""


@functools.lru_cache(maxsize=64)
def _salted_password(password, salt, iterations):
    """SCRAM's SaltedPassword (PBKDF2), cached: a test logging in many times
    with the same password and verifier pays for it once."""
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


class _ScramClient:
    """Client side of SCRAM-SHA-256 (RFC 5802/7677) without channel binding,
    as libpq does it: the user name in the SCRAM messages is empty."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = None

    def client_first(self):
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise RuntimeError("SCRAM: server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = _salted_password(self.password, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{sf},{without_proof}".encode()
        client_sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        if "e" in attrs:
            raise RuntimeError(f"SCRAM: server error {attrs['e']}")
        if base64.b64decode(attrs["v"]) != self.server_signature:
            raise RuntimeError("SCRAM: wrong server signature")


# ---------------------------------------------------------------------------
# unittest glue
# ---------------------------------------------------------------------------

class TestCase(unittest.TestCase):
    """Prints the logs of the daemons a failing test used (those started
    during the test and those still running) and the tail of every running
    cluster's log."""

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        mark = len(_all_daemons)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            seen = set()
            for d in _all_daemons[mark:] + [d for d in _all_daemons[:mark] if d.running]:
                if id(d) not in seen and not (d._dumped and d.proc is None):
                    seen.add(id(d))
                    print(f"\n[tpharness] {self.id()} failed; tidepool log follows", file=sys.stderr)
                    d.dump_log()
            for c in list(_live_clusters):
                c.dump_log(lines=30)
        return out

    def assertSqlstate(self, sqlstate, fn, *args, **kwargs):
        """fn(*args, **kwargs) must raise PgError with this SQLSTATE; returns it."""
        with self.assertRaises(PgError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.sqlstate, sqlstate, f"got {cm.exception.fields}")
        return cm.exception


class ClusterTestCase(TestCase):
    """A TestCase whose tests share one throwaway cluster, `self.pg`, started
    before the first test of the class and stopped after the last."""

    @classmethod
    def setUpClass(cls):
        cls.pg = Cluster().start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main():
    """unittest.main(verbosity=2), with SIGTERM and SIGHUP turned into a clean
    exit so that every `with` block stops its daemon and cluster."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------
# Helpers for the transaction-mode tests (test_txn_*.py)
# ---------------------------------------------------------------------------

def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Call predicate() until it returns a true value (returned) or timeout
    seconds pass (AssertionError naming `message` and the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {value!r})")
        time.sleep(interval)


def create_login_role(pg, name, password, dbname="inventorydb", grant_schema=True):
    """A LOGIN role on the cluster (a pool's own backend role, so its backends
    can be told apart in pg_stat_activity), with the rights to use and create
    in dbname's public schema and on every table in it."""
    pg.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    if grant_schema:
        pg.execute(f"GRANT ALL ON SCHEMA public TO {name}", dbname=dbname)
        pg.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}", dbname=dbname)
        pg.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {name}",
                   dbname=dbname)


def backend_states(pg, dbname, user):
    """{pid: state} of the client backends connected to dbname as user."""
    rows = pg.execute("SELECT pid, state FROM pg_stat_activity WHERE datname = %s AND usename = %s"
                      " AND backend_type = 'client backend'", (dbname, user))
    return {r[0]: r[1] for r in rows}


class BackendSampler:
    """A thread that counts a pool's backends (pg_stat_activity rows of
    dbname/user, client backends) every `interval` seconds on its own
    superuser connection, straight to PostgreSQL. Use as a context manager;
    .max is the largest count seen, .samples how many were taken."""

    def __init__(self, pg, dbname, user, interval=0.02):
        import threading
        self.pg, self.dbname, self.user, self.interval = pg, dbname, user, interval
        self.max = 0
        self.samples = 0
        self.counts = []
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="BackendSampler", daemon=True)

    def _run(self):
        try:
            conn = self.pg.connect()
            try:
                with conn.cursor() as cur:
                    while not self._stop.is_set():
                        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                    " AND usename = %s AND backend_type = 'client backend'",
                                    (self.dbname, self.user))
                        n = cur.fetchone()[0]
                        self.counts.append(n)
                        self.samples += 1
                        self.max = max(self.max, n)
                        self._stop.wait(self.interval)
            finally:
                conn.close()
        except Exception as e:  # reported by stop()
            self.error = e

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=10):
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("BackendSampler did not stop")
        if self.error is not None:
            raise AssertionError(f"BackendSampler failed: {self.error!r}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def run_threads(target, args_list, timeout=60):
    """Run target(*args) in one thread per entry of args_list, all released
    together by a barrier; join them with a common deadline. Returns the list
    of (result, exception) in args_list order; AssertionError if a thread is
    still running at the deadline."""
    import threading
    n = len(args_list)
    barrier = threading.Barrier(n)
    out = [(None, None)] * n

    def work(i, args):
        try:
            barrier.wait(timeout)
            out[i] = (target(*args), None)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            out[i] = (None, e)

    threads = [threading.Thread(target=work, args=(i, a), daemon=True) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(t.is_alive() for t in threads)
    if alive:
        raise AssertionError(f"{alive} of {n} threads still running after {timeout}s")
    return out


def wait_for_log(tp, needle, timeout=5.0):
    """The first line of the daemon's log containing `needle` (a string, or a
    function of a line), waiting up to timeout seconds for it."""
    match = needle if callable(needle) else (lambda line: needle in line)

    def find():
        for line in tp.log_text().splitlines():
            if match(line):
                return line
        return None
    return wait_until(find, timeout, message=f"a log line matching {needle!r}")


def run_pgbench(args, timeout=120, password=None):
    """/usr/bin/pgbench ARGS with PGPASSWORD (and PGCONNECT_TIMEOUT=10) set;
    a CompletedProcess with text output."""
    env = dict(os.environ)
    env["PGCONNECT_TIMEOUT"] = "10"
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(["/usr/bin/pgbench", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=env)


class FaultProxy:
    """A TCP relay on 127.0.0.1 in front of (host, port), for a pool's url, to
    make backend connections fail the way a silently dead one does: after
    poison_all(), each connection open at that moment stays up while idle and
    is closed (both sides) as soon as tidepool sends anything on it. New
    connections are relayed normally. Use as a context manager."""

    def __init__(self, host, port):
        import threading
        self.target = (host, port)
        self.host = "127.0.0.1"
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(20):
            self.port = free_port()
            try:
                self.listener.bind((self.host, self.port))
                break
            except OSError:
                continue
        else:
            raise RuntimeError("FaultProxy: no free port")
        self.listener.listen(64)
        self.pairs = []          # [{"a": sock, "b": sock, "poisoned": bool}]
        self.poisoned_closed = 0  # connections closed because they were poisoned
        self._lock = threading.Lock()
        self._closed = False
        self._threading = threading
        threading.Thread(target=self._accept, name="FaultProxy-accept", daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(self.target, timeout=10)
                b.settimeout(None)
            except OSError:
                a.close()
                continue
            pair = {"a": a, "b": b, "poisoned": False}
            with self._lock:
                self.pairs.append(pair)
            for src, dst, up in ((a, b, True), (b, a, False)):
                self._threading.Thread(target=self._pump, args=(pair, src, dst, up), daemon=True).start()

    def _shut(self, pair):
        for s in (pair["a"], pair["b"]):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _pump(self, pair, src, dst, up):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up and pair["poisoned"]:
                    with self._lock:
                        self.poisoned_closed += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._shut(pair)

    def poison_all(self):
        """Mark every connection open now; returns how many."""
        with self._lock:
            live = [p for p in self.pairs if p["a"].fileno() != -1]
            for p in live:
                p["poisoned"] = True
            return len(live)

    def url(self, dbname="inventorydb", user=APP_USER, password=APP_PASSWORD):
        q = urllib.parse.quote
        return f"postgresql://{q(user, safe='')}:{q(password, safe='')}@{self.host}:{self.port}/{q(dbname, safe='')}"

    def close(self):
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            pairs = list(self.pairs)
        for p in pairs:
            self._shut(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------
# Helpers for the driver tests (test_drivers_*.py, test_session_state.py)
# ---------------------------------------------------------------------------

def small_pool(pg, role, password, dbname="inventorydb", pool_size=2, max_overflow=0,
               pool_timeout=30, **extra):
    """[pool.NAME] keys of a transaction-mode pool smaller than the number of
    clients a driver test runs, so their statements cross backends: backends
    of `role` (create it with create_login_role) on dbname."""
    keys = {"url": pg.url(dbname, user=role, password=password), "pool_mode": "transaction",
            "pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    keys.update(extra)
    return keys


def crossing_problem(pid_sets, max_backends):
    """pid_sets: for each client, the set of backend pids (pg_backend_pid())
    it saw. None when they show what a driver test needs: at most
    max_backends distinct backends in all, and at least one client served by
    more than one of them (its statements really crossed backends); else
    what is wrong."""
    pid_sets = [set(s) for s in pid_sets]
    every = set().union(*pid_sets) if pid_sets else set()
    if len(every) > max_backends:
        return f"{len(every)} distinct backends served a pool of {max_backends}: {sorted(every)}"
    if not any(len(s) > 1 for s in pid_sets):
        return f"no client was served by more than one backend: {pid_sets}"
    return None


def _program_preexec():
    os.setsid()
    _die_with_parent()


def run_program(argv, timeout=60, env=None, cwd=None, input=None, before_kill=None):
    """Run argv (a java or node program, npm, pgbench ...) to completion in
    its own process group with text output; on timeout before_kill() is
    called (to look at what hangs), then the whole group gets SIGKILL and
    the result has returncode None and `timed_out` True. Never raises for a
    failing program. Returns a CompletedProcess (argv, returncode, stdout,
    stderr) with a `timed_out` attribute."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(argv, cwd=cwd, env=e, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         preexec_fn=_program_preexec)
    timed_out = False
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        if before_kill is not None:
            with contextlib.suppress(Exception):
                before_kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    result = subprocess.CompletedProcess(argv, None if timed_out else p.returncode, out, err)
    result.timed_out = timed_out
    return result


def log_mark(path):
    """The current size of a log file (a Cluster's log_path, a Tidepool's
    log_path), for log_since()."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_since(path, mark):
    """The lines a log file got after log_mark() returned mark."""
    try:
        with open(path, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


# ---------------------------------------------------------------------------
# Helpers for the failure drills (test_drills_*.py)
# ---------------------------------------------------------------------------

def rss_kb(pid):
    """Resident memory of a process (VmRSS in /proc/PID/status), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_nofile(wanted):
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (up to the
    hard limit); children (the daemon) inherit it. Returns the new soft limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def sanitized_binary():
    """True when the tidepool binary is built with AddressSanitizer (its
    memory figures then include ASan's quarantine and shadow)."""
    try:
        data = Path(tidepool_bin()).read_bytes()
    except OSError:
        return False
    return b"__asan_init" in data


class MassClients:
    """n raw protocol clients on non-blocking sockets driven by one selector
    (no threads): each connects, logs in (any auth method RawConnection
    speaks), runs `queries` one after another with the simple protocol, and
    then stays connected until close(). run() returns when every client is
    done or failed, or at the deadline (AssertionError naming how many are
    unfinished).

    After run(): .done (clients that finished), .errors ({(sqlstate, message): count}
    of ErrorResponses; such a client is closed), .closed (clients the server
    closed without an ErrorResponse), .results [per client: list of rows of the
    last result of each query, or None], .peak_held (the largest number of
    clients logged in at once), .elapsed (seconds)."""

    class _Conn:
        __slots__ = ("sock", "gen", "out", "buf", "state", "result", "parameters",
                     "backend_key", "notices", "status", "auth_methods", "logged_in")

    def __init__(self, host, port, n, user=APP_USER, database="inventorydb", password=APP_PASSWORD,
                 queries=("SELECT 1",)):
        self.addr, self.n = (host, port), n
        self.user, self.database, self.password = user, database, password
        self.queries = tuple(queries)
        self.conns = []
        self.done = 0
        self.closed = 0
        self.errors = {}
        self.results = [None] * n
        self.held = 0
        self.peak_held = 0
        self.elapsed = None

    def _script(self, c):
        """The dialog of one client: yields the bytes to send, receives each
        message (type, body) the server sends."""
        login = _Login(c, self.user, self.password)
        msg = yield login.startup_packet(self.database)
        while True:
            reply = login.answer(*msg)
            if reply is None:
                break
            msg = yield reply
        c.logged_in = True
        self.held += 1
        self.peak_held = max(self.peak_held, self.held)
        rows = []
        for q in self.queries:
            msg = yield _message(b"Q", _cstr(q))
            msgs = []
            while True:
                msgs.append(msg)
                if msg[0] == b"Z":
                    break
                msg = yield b""
            res = RawConnection.results(msgs)
            rows.append(res[-1].rows if res else [])
        return rows

    def _finish(self, sel, i, c, state, error=None):
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c.sock)
        c.state = state
        if state == "done":
            self.done += 1
            return
        if c.logged_in:
            self.held -= 1
        if error is not None:
            key = (error.sqlstate, error.message)
            self.errors[key] = self.errors.get(key, 0) + 1
        elif state == "closed":
            self.closed += 1
        c.sock.close()

    def _advance(self, sel, i, c, msg):
        """Feed one message (None to start); queue what the script sends."""
        try:
            c.out += c.gen.send(msg)
        except StopIteration as stop:
            self.results[i] = stop.value
            self._finish(sel, i, c, "done")
            return
        except PgError as e:
            self._finish(sel, i, c, "error", e)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        sel.modify(c.sock, events, i)

    def run(self, timeout=60):
        sel = selectors.DefaultSelector()
        started = time.monotonic()
        deadline = started + timeout
        for i in range(self.n):
            c = MassClients._Conn()
            c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.sock.setblocking(False)
            c.out, c.buf, c.state, c.result = b"", b"", "connecting", None
            c.parameters, c.backend_key, c.notices, c.status, c.auth_methods = {}, None, [], None, []
            c.logged_in = False
            c.gen = self._script(c)
            self.conns.append(c)
            err = c.sock.connect_ex(self.addr)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, f"connect to {self.addr}: {os.strerror(err)}")
            sel.register(c.sock, selectors.EVENT_WRITE, i)
        pending = self.n
        while pending and time.monotonic() < deadline:
            for key, events in sel.select(timeout=0.5):
                i = key.data
                c = self.conns[i]
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._finish(sel, i, c, "closed")
                        continue
                    c.state = "running"
                    self._advance(sel, i, c, None)
                    continue
                if events & selectors.EVENT_WRITE and c.out:
                    try:
                        sent = c.sock.send(c.out)
                    except BlockingIOError:
                        sent = 0
                    except OSError:
                        self._finish(sel, i, c, "closed")
                        continue
                    c.out = c.out[sent:]
                    if not c.out:
                        sel.modify(c.sock, selectors.EVENT_READ, i)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = c.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self._finish(sel, i, c, "closed")
                        continue
                    c.buf += chunk
                    while c.state == "running" and len(c.buf) >= 5:
                        n = struct.unpack("!i", c.buf[1:5])[0]
                        if len(c.buf) < 1 + n:
                            break
                        msg = (c.buf[:1], c.buf[5:1 + n])
                        c.buf = c.buf[1 + n:]
                        self._advance(sel, i, c, msg)
            pending = sum(1 for c in self.conns if c.state in ("connecting", "running"))
        self.elapsed = time.monotonic() - started
        sel.close()
        if pending:
            raise AssertionError(f"{pending} of {self.n} clients unfinished after {timeout}s "
                                 f"({self.done} done, {self.closed} closed, errors {self.errors})")
        return self

    def close(self):
        """Terminate and close every client still connected."""
        for c in self.conns:
            if c.sock.fileno() != -1:
                with contextlib.suppress(OSError):
                    c.sock.setblocking(True)
                    c.sock.settimeout(1)
                    c.sock.send(_message(b"X"))
                c.sock.close()
        self.held = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def drill_report(msg):
    """A failure drill's figure: a "[drill] ..." line on stderr, which
    script/test gathers from CTest's log after each run."""
    print(f"[drill] {msg}", file=sys.stderr, flush=True)
