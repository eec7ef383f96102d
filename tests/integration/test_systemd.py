#!/usr/bin/python3
"""systemd (issue 5, docs/deployment.md): the units in systemd/ pass
`systemd-analyze verify` (and a broken copy does not), the service is
hardened, the sysusers file makes the `tidepool` user; the daemon speaks the
notify protocol (READY=1 once it accepts, RELOADING=1 with MONOTONIC_USEC and
READY=1 around a SIGHUP reload, a STATUS= line with its clients, STOPPING=1
on SIGTERM) to a NOTIFY_SOCKET this test listens on; and, started by
systemd-socket-activate, it adopts the sockets it is passed (TCP and Unix,
configured or not), binds the configured ones it was not passed, and leaves
the socket files it did not create.

No systemd runs PID 1 here: the notify protocol is a datagram socket and
socket activation is descriptors from 3 on, both of which this test and
systemd-socket-activate provide exactly as systemd would. A tidepool built
without libsystemd fails the notify and activation tests."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

UNITS = h.REPO_ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
SYSUSERS = shutil.which("systemd-sysusers") or "/usr/bin/systemd-sysusers"

pg = None


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


def unit_settings(path):
    """{(section, key): [values]} of a unit file (keys may repeat)."""
    out, section = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


class Units(h.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tp-units-", dir=h._tmp_base())
        self.addCleanup(h._rmtree, self.dir)

    def copy_units(self, binary):
        """The units with /usr/bin/tidepool replaced by `binary`, since verify
        checks that ExecStart's program exists."""
        for name in ("tidepool.service", "tidepool.socket"):
            text = (UNITS / name).read_text().replace("/usr/bin/tidepool", binary)
            Path(self.dir, name).write_text(text)
        return [os.path.join(self.dir, n) for n in ("tidepool.service", "tidepool.socket")]

    def verify(self, paths):
        # --man=no: the man pages are checked once installed (test_package).
        return subprocess.run([ANALYZE, "verify", "--man=no", *paths], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)

    def test_verify_passes_on_both_units(self):
        r = self.verify(self.copy_units(h.tidepool_bin()))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", "systemd-analyze verify warned")

    def test_verify_fails_on_a_broken_copy(self):
        # The check above can fail: a missing binary and a misspelt key.
        paths = self.copy_units(os.path.join(self.dir, "no-such-tidepool"))
        r = self.verify(paths)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("no-such-tidepool", r.stderr)

    def test_service_is_notify_checked_reloadable_and_hardened(self):
        s = unit_settings(UNITS / "tidepool.service")
        get = lambda k: s.get(("Service", k), [])  # noqa: E731
        self.assertEqual(get("Type"), ["notify"])
        self.assertEqual(get("ExecStartPre"), ["/usr/bin/tidepool --check /etc/tidepool/tidepool.ini"])
        self.assertEqual(get("ExecStart"), ["/usr/bin/tidepool /etc/tidepool/tidepool.ini"])
        self.assertEqual(get("ExecReload"), ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(get("User"), ["tidepool"])
        self.assertEqual(get("RuntimeDirectory"), ["tidepool"])
        self.assertGreaterEqual(int(get("LimitNOFILE")[0]), 10000 + 1000)  # > max_client_conn
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                    "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups"):
            self.assertEqual(get(key), ["yes"], key)
        self.assertEqual(get("ProtectSystem"), ["strict"])
        self.assertEqual(get("RestrictAddressFamilies"), ["AF_UNIX AF_INET AF_INET6"])
        self.assertIn("@system-service", get("SystemCallFilter"))
        sock = unit_settings(UNITS / "tidepool.socket")
        self.assertEqual(sock[("Socket", "ListenStream")],
                         ["/run/tidepool/.s.PGSQL.6432", "127.0.0.1:6432"])

    def test_security_exposure_is_low(self):
        service, _ = self.copy_units(h.tidepool_bin())
        r = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", service],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        m = re.search(r"Overall exposure level for tidepool.service: ([0-9.]+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)

    def test_sysusers_creates_the_tidepool_user(self):
        root = Path(self.dir, "root")
        (root / "etc").mkdir(parents=True)
        r = subprocess.run([SYSUSERS, f"--root={root}", str(UNITS / "tidepool.sysusers")],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
        self.assertIn("tidepool", users)
        self.assertEqual(users["tidepool"][6], "/usr/sbin/nologin")
        self.assertLess(int(users["tidepool"][2]), 1000)  # a system user
        self.assertIn("tidepool", (root / "etc/group").read_text())


class NotifySocket:
    """A Unix datagram socket like systemd's NOTIFY_SOCKET; messages come back
    as {KEY: value} dicts."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []

    def close(self):
        self.sock.close()

    def next(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.seen.append(msg)
        return msg

    def wait_for(self, key, timeout=10, where=None):
        """The first message with `key` (and satisfying where(msg)) within
        timeout seconds; messages before it are kept in self.seen."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self.next(max(left, 0.01)) if left > 0 else None
            if msg is None:
                raise AssertionError(f"no {key} within {timeout}s (is tidepool built with libsystemd?); "
                                     f"received: {self.seen}")
            if key in msg and (where is None or where(msg)):
                return msg


class Notify(h.TestCase):
    def test_ready_reloading_ready_stopping(self):
        d = tempfile.mkdtemp(prefix="tp-notify-", dir=h._tmp_base())
        self.addCleanup(h._rmtree, d)
        ns = NotifySocket(d)
        self.addCleanup(ns.close)
        tp = h.Tidepool(pg, env={"NOTIFY_SOCKET": ns.path}).start()
        self.addCleanup(tp.stop, signal.SIGKILL, 5)

        ready = ns.wait_for("READY")
        self.assertEqual(ready["READY"], "1")
        self.assertNotIn("STOPPING", ready)
        self.assertEqual(ns.seen[0], ready, "READY=1 must be the first message")
        self.assertRegex(ready.get("STATUS", ""), r"^\d+ clients?, 1 pool, \d+ backends?$")
        # READY=1 came after the listeners: both accept.
        self.assertTrue(tp.psql("SELECT 1").ok)
        self.assertTrue(tp.psql("SELECT 1", unix=True).ok)

        # The STATUS= line follows the load: one client holding a backend.
        conn = tp.connect()
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # inside a transaction: its backend stays lent
        status = ns.wait_for("STATUS", timeout=12,
                             where=lambda m: m["STATUS"].startswith("1 client,"))
        self.assertRegex(status["STATUS"], r"^1 client, 1 pool, [1-9]\d* backends?$")
        conn.rollback()

        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        tp.reload()
        reloading = ns.wait_for("RELOADING")
        after = time.clock_gettime(time.CLOCK_MONOTONIC)
        self.assertEqual(reloading["RELOADING"], "1")
        usec = int(reloading["MONOTONIC_USEC"])
        self.assertGreaterEqual(usec, int(before * 1e6) - 1)
        self.assertLessEqual(usec, int(after * 1e6) + 1)
        ready2 = ns.wait_for("READY")
        self.assertEqual(ready2["READY"], "1")
        self.assertTrue(tp.psql("SELECT 1").ok)

        conn.close()
        tp.send_signal(signal.SIGTERM)
        stopping = ns.wait_for("STOPPING")
        self.assertEqual(stopping["STOPPING"], "1")
        self.assertEqual(tp.stop(timeout=15), 0, tp.log_text())
        tp.check()
        keys = [k for m in ns.seen for k in ("READY", "RELOADING", "STOPPING") if k in m]
        self.assertEqual(keys, ["READY", "RELOADING", "READY", "STOPPING"])

    def test_watchdog_pings_when_asked(self):
        # WatchdogSec=2s: systemd sets WATCHDOG_USEC; pings come every second.
        d = tempfile.mkdtemp(prefix="tp-notify-", dir=h._tmp_base())
        self.addCleanup(h._rmtree, d)
        ns = NotifySocket(d)
        self.addCleanup(ns.close)
        with h.Tidepool(pg, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"}):
            ns.wait_for("READY")
            started = time.monotonic()
            ns.wait_for("WATCHDOG")
            ns.wait_for("WATCHDOG")
            self.assertLess(time.monotonic() - started, 4.5)

    def test_no_notify_socket_no_harm(self):
        # Outside systemd nothing is sent and nothing breaks.
        with h.Tidepool(pg) as tp:
            self.assertTrue(tp.psql("SELECT 1").ok)
            tp.reload()
            self.assertTrue(tp.psql("SELECT 1").ok)


class SocketActivation(h.TestCase):
    def start(self, extra_tcp=None, pass_unix=True):
        """tidepool under systemd-socket-activate, which opens 127.0.0.1:PORT
        (and the Unix socket, and 127.0.0.1:extra_tcp) and execs tidepool at
        the first connection with them as LISTEN_FDS. The Unix socket goes in
        a directory of ours, so we see what is left in it after the stop."""
        self.sockdir = tempfile.mkdtemp(prefix="tp-sock-", dir=h._tmp_base())
        self.addCleanup(h._rmtree, self.sockdir)
        def wrapper(tp):
            argv = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{tp.port}"]
            if pass_unix:
                argv += ["-l", tp.socket_path]
            if extra_tcp:
                argv += ["-l", f"127.0.0.1:{extra_tcp}"]
            return argv
        tp = h.Tidepool(pg, wrapper=wrapper, settings={"unix_socket_dir": self.sockdir}).start()
        self.addCleanup(tp.stop, signal.SIGKILL, 5)
        return tp

    def test_adopts_tcp_and_unix_sockets(self):
        tp = self.start()
        self.assertEqual(tp.psql("SELECT 'tcp'").stdout.strip(), "tcp")
        self.assertEqual(tp.psql("SELECT 'unix'", unix=True).stdout.strip(), "unix")
        log = tp.log_text()
        self.assertIn("systemd passed 2 listening sockets", log)
        self.assertIn(f"listening on 127.0.0.1:{tp.port} (socket adopted from systemd)", log)
        self.assertIn(f"listening on {tp.socket_path} (socket adopted from systemd)", log)
        path = tp.socket_path
        self.assertEqual(tp.stop(timeout=15), 0, tp.log_text())
        tp.check()
        # The socket file is systemd-socket-activate's: tidepool leaves it.
        self.assertTrue(os.path.exists(path), "tidepool removed a socket file it did not create")

    def test_unnamed_passed_socket_is_served_and_unpassed_listener_is_bound(self):
        extra = h.free_port()
        tp = self.start(extra_tcp=extra, pass_unix=False)
        self.assertEqual(tp.psql("SELECT 1").stdout.strip(), "1")
        # The socket no listen_addr names is used anyway, and logged.
        r = h.run_psql(h.conninfo(host="127.0.0.1", port=extra, dbname="inventorydb",
                                  user=h.APP_USER, password=h.APP_PASSWORD), "SELECT 2")
        self.assertEqual(r.stdout.strip(), "2", r.stderr)
        # The Unix socket was not passed: tidepool bound it itself.
        self.assertTrue(tp.psql("SELECT 3", unix=True).ok)
        log = tp.log_text()
        self.assertIn(f"listening on 127.0.0.1:{extra} (socket adopted from systemd; no listen_addr", log)
        self.assertRegex(log, re.escape(f"listening on {tp.socket_path}") + r"\n")
        path = tp.socket_path
        self.assertEqual(tp.stop(timeout=15), 0, tp.log_text())
        tp.check()
        self.assertFalse(os.path.exists(path), "tidepool left the socket file it created")


if __name__ == "__main__":
    h.main()
