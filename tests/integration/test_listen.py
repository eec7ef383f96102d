#!/usr/bin/python3
"""Where tidepool listens (SPEC §3.1 listen_addr, unix_socket_dir,
unix_socket_mode).

- unix_socket_mode: the socket file gets exactly that mode (0660 ->
  srw-rw----; the default 0777 -> srwxrwxrwx), whatever the umask the daemon
  was started with (077 here), and a user outside the file's group cannot
  connect through a 0660 socket (checked as `nobody` when we are root);
- listen_addr: a comma-separated list serves on each address and no other
  (127.0.0.1,127.0.0.2; and 127.0.0.1,::1 where the machine has an IPv6
  loopback); `*` serves on every address (127.0.0.1, 127.0.0.2, and ::1 where
  there is one); the default serves on 127.0.0.1 only; empty = no TCP at all
  (a TCP connect to the port is refused) while the Unix socket works.
  The harness waits for the Unix socket only when listen_addr is empty
  (Tidepool.tcp is false), and for 127.0.0.1 otherwise;
- unix_socket_dir empty: no socket file anywhere (not in the directory the
  harness would use, not in the built-in default /run/tidepool), TCP works;
- both empty: the daemon still runs, and warns that it has no listener.

Every address used is a loopback one (127.0.0.0/8, ::1).
"""

import contextlib
import errno
import os
import socket
import stat
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg2  # noqa: E402

pg = None


def _has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


HAS_IPV6 = _has_ipv6_loopback()
NO_IPV6 = "this machine has no IPv6 loopback (cannot bind ::1): the ::1 part is not tested"


def setUpModule():
    global pg
    pg = h.Cluster().start()


def tearDownModule():
    if pg is not None:
        pg.stop()


def tcp_connect_errno(host, port):
    """0 when a TCP connect to (host, port) succeeds, else its errno."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        return s.connect_ex((host, port))
    finally:
        s.close()


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


class ListenTestCase(h.TestCase):
    def start(self, **settings):
        tp = h.Tidepool(pg, settings=settings).start()
        self.addCleanup(tp.check)
        self.addCleanup(tp.stop)
        return tp

    def assertServes(self, tp, host):
        """A full login and a query through tidepool at host (an address, or
        the Unix socket directory)."""
        with h.RawConnection.connect(host, tp.port, user=h.APP_USER, database="inventorydb",
                                     password=h.APP_PASSWORD) as c:
            self.assertEqual(c.fetch("SELECT 'served'"), [("served",)], f"through {host}")

    def assertRefused(self, tp, host):
        err = tcp_connect_errno(host, tp.port)
        self.assertEqual(err, errno.ECONNREFUSED,
                         f"TCP connect to {host}:{tp.port}: expected ECONNREFUSED, got "
                         f"{errno.errorcode.get(err, err) if err else 'a connection'}")

    def listening_lines(self, tp):
        return [line for line in tp.log_text().splitlines() if "listening on" in line]


class UnixSocketMode(ListenTestCase):
    def socket_mode(self, tp):
        st = os.lstat(tp.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), f"{tp.socket_path} is not a socket")
        return stat.filemode(st.st_mode)

    def connect_as_nobody(self, path):
        """Connect to the socket as user nobody: (ok, stderr)."""
        code = textwrap.dedent("""
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
        """)
        p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                            sys.executable, "-c", code, path],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return p.returncode == 0, p.stderr

    def test_mode_0660(self):
        with umask(0o077):
            tp = self.start(unix_socket_mode="0660")
        self.assertEqual(self.socket_mode(tp), "srw-rw----")
        self.assertServes(tp, tp.socket_dir)
        if os.geteuid() == 0:
            ok, err = self.connect_as_nobody(tp.socket_path)
            self.assertFalse(ok, "user nobody could connect through a 0660 socket owned by root")
            self.assertIn("PermissionError", err)

    def test_default_mode_0777(self):
        with umask(0o077):
            tp = self.start(unix_socket_mode=None)  # the key not written: SPEC's default
        self.assertEqual(self.socket_mode(tp), "srwxrwxrwx")
        self.assertServes(tp, tp.socket_dir)
        if os.geteuid() == 0:
            ok, err = self.connect_as_nobody(tp.socket_path)
            self.assertTrue(ok, f"user nobody could not connect through a 0777 socket: {err}")


class ListenAddr(ListenTestCase):
    def test_default_is_127_0_0_1_only(self):
        tp = self.start(listen_addr=None)  # the key not written
        self.assertServes(tp, "127.0.0.1")
        self.assertRefused(tp, "127.0.0.2")
        if HAS_IPV6:
            self.assertRefused(tp, "::1")

    def test_list_of_two_ipv4_addresses(self):
        tp = self.start(listen_addr="127.0.0.1,127.0.0.2")
        self.assertServes(tp, "127.0.0.1")
        self.assertServes(tp, "127.0.0.2")
        # Those two and no other: not a wildcard bind.
        self.assertRefused(tp, "127.0.0.3")
        if HAS_IPV6:
            self.assertRefused(tp, "::1")

    def test_an_address_named_twice_is_listened_on_once(self):
        # localhost resolves to 127.0.0.1 (and maybe ::1): the second item
        # names an address already listened on, which is not an error.
        tp = self.start(listen_addr="localhost,127.0.0.1")
        self.assertServes(tp, "127.0.0.1")
        self.assertRefused(tp, "127.0.0.2")
        self.assertEqual(tp.log_text().count(f"LOG: listening on 127.0.0.1:{tp.port}"), 1, tp.log_text())
        self.assertIn(f"already listening on 127.0.0.1:{tp.port}", tp.log_text())

    def test_list_ipv4_and_ipv6(self):
        if not HAS_IPV6:
            self.skipTest(NO_IPV6)
        tp = self.start(listen_addr="127.0.0.1,::1")
        self.assertServes(tp, "127.0.0.1")
        self.assertServes(tp, "::1")
        self.assertRefused(tp, "127.0.0.2")
        # psycopg2 (libpq) over IPv6 as well.
        dsn = h.conninfo(host="::1", port=tp.port, dbname="inventorydb", user=h.APP_USER,
                         password=h.APP_PASSWORD)
        with contextlib.closing(psycopg2.connect(dsn, connect_timeout=10)) as conn, conn.cursor() as cur:
            cur.execute("SELECT inet_client_addr() IS NOT NULL")
            self.assertEqual(cur.fetchone(), (True,))

    def test_star_serves_every_address(self):
        tp = self.start(listen_addr="*")
        self.assertServes(tp, "127.0.0.1")
        # 127.0.0.2 is no address of the default or of a list without it:
        # only a wildcard listener answers there.
        self.assertServes(tp, "127.0.0.2")
        with self.subTest(address="::1"):
            if not HAS_IPV6:
                self.skipTest(NO_IPV6)
            self.assertServes(tp, "::1")

    def test_empty_means_no_tcp(self):
        tp = self.start(listen_addr="")
        self.assertFalse(tp.tcp, "the harness would wait for TCP")
        self.assertRefused(tp, "127.0.0.1")
        self.assertRefused(tp, "127.0.0.2")
        if HAS_IPV6:
            self.assertRefused(tp, "::1")
        self.assertServes(tp, tp.socket_dir)
        r = tp.psql("SELECT 'unix'", unix=True)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "unix"), r)
        self.assertEqual([line for line in self.listening_lines(tp) if tp.socket_path not in line], [],
                         "a TCP listener was opened")


class UnixSocketDir(ListenTestCase):
    def test_empty_means_no_socket_file(self):
        tp = self.start(unix_socket_dir="")
        self.assertFalse(tp.socket_dir, "the harness would wait for a Unix socket")
        self.assertServes(tp, "127.0.0.1")
        r = tp.psql("SELECT 'tcp'")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "tcp"), r)
        name = f".s.PGSQL.{tp.port}"
        self.assertNotIn(name, os.listdir(tp.dir), "a socket in the harness's directory")
        self.assertFalse(os.path.lexists(os.path.join("/run/tidepool", name)),
                         "a socket in the built-in default directory /run/tidepool")
        self.assertFalse(os.path.lexists(os.path.join("/", name)), "a socket in / (an empty directory name)")
        self.assertEqual([line for line in self.listening_lines(tp) if name in line], [])

    def test_no_listener_at_all_warns(self):
        tp = self.start(unix_socket_dir="", listen_addr="")
        h.wait_for_log(tp, "no listener configured")
        self.assertRefused(tp, "127.0.0.1")
        self.assertTrue(tp.running, "the daemon exited without listeners")


if __name__ == "__main__":
    h.main()
