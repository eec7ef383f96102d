#!/usr/bin/python3
"""TLS on both legs (docs/tls.md, issue 6).

One PostgreSQL with ssl = on and a certificate from a throwaway CA
(tpharness.make_test_certs); tidepool gets a certificate of the same CA.

Client leg (client_tls_sslmode):
- require: psycopg2 and psql with sslmode=require, verify-ca and verify-full
  connect, and libpq says the connection is encrypted (ssl_in_use, psql's
  \\conninfo); a CA that did not sign tidepool's certificate is refused by
  the client; a plaintext StartupMessage gets FATAL 28000; the Unix socket
  is exempt; a second SSLRequest inside TLS is 08P01; CancelRequest works
  in plaintext and inside TLS; a 20+ MB result and COPY both ways go through
  TLS; a client sending garbage instead of a TLS handshake is closed (with a
  log line) and the others carry on.
- allow: plaintext and TLS both accepted; disable: sslmode=require fails,
  prefer falls back to plaintext.
- client_tls_ca_file: a client certificate of that CA is required.
Backend leg: a pool url with sslmode=require: pg_stat_ssl shows tidepool's
backends encrypted; queries, a 20+ MB result, COPY both ways, cancel, named
prepared statements and a psycopg 3 pipeline work; then both legs at once.
"""

import contextlib
import io
import os
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402

pg = None
BIG_ROWS = 22000          # rows of 1000 bytes: 22 MB
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)
BACKEND_ROLE, BACKEND_PASSWORD = "tls_backend", "tls-backend-pw"  # the TLS pool's own role


def setUpModule():
    global pg
    pg = h.Cluster(ssl=True).start()
    try:
        pg.execute("CREATE TABLE copytest (id int, label text)", dbname="inventorydb")
        pg.execute(f"ALTER TABLE copytest OWNER TO {h.APP_USER}", dbname="inventorydb")
        h.create_login_role(pg, BACKEND_ROLE, BACKEND_PASSWORD)
    except BaseException:
        pg.stop()
        raise


def tearDownModule():
    if pg is not None:
        pg.stop()


def tls_settings(mode, **extra):
    c = pg.certs
    s = {"client_tls_sslmode": mode, "client_tls_cert_file": c.server_cert,
         "client_tls_key_file": c.server_key, "log_level": "debug"}
    s.update(extra)
    return s


def plain_pool():
    """Backend leg in plaintext, so only the client leg is encrypted."""
    return {"inventorydb": {"url": pg.url("inventorydb") + "?sslmode=disable"}}


def tls_pool():
    """Backend leg over TLS, as its own role (so its backends can be told
    apart in pg_stat_activity)."""
    url = pg.url("inventorydb", user=BACKEND_ROLE, password=BACKEND_PASSWORD)
    return {"inventorydb": {"url": url + "?sslmode=require"}}


def connect(tp, sslmode, **kw):
    return psycopg2.connect(tp.conninfo(sslmode=sslmode, **kw), connect_timeout=10)


def raw_tls(tp, cafile=None):
    """A socket to tidepool with TLS negotiated (SSLRequest, 'S', handshake)."""
    s = socket.create_connection((tp.host, tp.port), timeout=10)
    s.sendall(SSL_REQUEST)
    answer = s.recv(1)
    if answer != b"S":
        s.close()
        raise AssertionError(f"SSLRequest answered {answer!r}")
    ctx = ssl.create_default_context(cafile=cafile or pg.certs.ca)
    return ctx.wrap_socket(s, server_hostname="localhost")


def raw_tls_login(tp):
    c = h.RawConnection(raw_tls(tp))
    c.startup(h.APP_USER, "inventorydb", h.APP_PASSWORD)
    return c


def check_big_result(test, conn):
    with conn.cursor() as cur:
        cur.execute("SELECT i, repeat('x', 1000) FROM generate_series(1, %s) AS i", (BIG_ROWS,))
        n, size = 0, 0
        for i, text in cur:
            n += 1
            size += len(text)
        test.assertEqual(n, BIG_ROWS)
        test.assertGreaterEqual(size, 20 * 1000 * 1000)


def check_copy(test, conn, tag):
    with conn.cursor() as cur:
        cur.execute("DELETE FROM copytest WHERE label LIKE %s", (tag + "%",))
        data = "".join(f"{i}\t{tag}-{'y' * 200}-{i}\n" for i in range(20000))  # ~4.3 MB
        cur.copy_expert("COPY copytest FROM STDIN", io.StringIO(data))
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT * FROM copytest WHERE label LIKE '{tag}%' ORDER BY id) TO STDOUT", out)
        test.assertEqual(out.getvalue(), data)
        cur.execute("DELETE FROM copytest WHERE label LIKE %s", (tag + "%",))
    conn.commit()


def check_cancel(test, conn):
    """conn.cancel() (libpq's PQcancel: a CancelRequest on a new plaintext
    connection) stops a pg_sleep running through tidepool."""
    timer = threading.Timer(0.5, conn.cancel)
    timer.start()
    started = time.monotonic()
    try:
        with test.assertRaises(psycopg2.errors.QueryCanceled):
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30)")
    finally:
        timer.cancel()
    test.assertLess(time.monotonic() - started, 15)
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        test.assertEqual(cur.fetchone()[0], 1)


class ClientRequire(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tp = h.Tidepool(pg, pools=plain_pool(),
                            settings=tls_settings("require", admin_users=h.APP_USER)).start()

    @classmethod
    def tearDownClass(cls):
        cls.tp.stop()
        cls.tp.check()

    def test_sslmode_require_is_encrypted(self):
        with contextlib.closing(connect(self.tp, "require")) as conn:
            self.assertTrue(conn.info.ssl_in_use)
            self.assertIn(conn.info.ssl_attribute("protocol"), ("TLSv1.2", "TLSv1.3"))
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, 40 + 2")
                self.assertEqual(cur.fetchone(), (h.APP_USER, 42))

    def test_show_clients_tls_column(self):
        with contextlib.closing(self.tp.raw(unix=True)):
            run = self.tp.psql(None, dbname="tidepool", sslmode="require",
                               args=["-F", "|", "-c", "SHOW CLIENTS"])
            self.assertTrue(run.ok, run)
            tls = sorted(line.split("|")[-1] for line in run.stdout.splitlines() if line)
            self.assertEqual(len(tls), 2, run.stdout)
            self.assertEqual(tls[0], "")                    # the Unix socket client
            self.assertRegex(tls[1], r"^TLSv1\.[23]$")      # psql itself

    def test_verify_ca_and_verify_full(self):
        for mode, host in (("verify-ca", "127.0.0.1"), ("verify-full", "127.0.0.1"),
                           ("verify-full", "localhost")):
            dsn = h.conninfo(host=host, port=self.tp.port, dbname="inventorydb", user=h.APP_USER,
                             password=h.APP_PASSWORD, sslmode=mode, sslrootcert=pg.certs.ca)
            with self.subTest(mode=mode, host=host), contextlib.closing(psycopg2.connect(dsn)) as conn:
                self.assertTrue(conn.info.ssl_in_use)
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    self.assertEqual(cur.fetchone()[0], 1)
        # The client refuses tidepool when its certificate is not of the CA it trusts.
        with self.assertRaises(psycopg2.OperationalError) as cm:
            connect(self.tp, "verify-ca", sslrootcert=pg.certs.other_ca)
        self.assertIn("certificate verify failed", str(cm.exception))

    def test_psql_conninfo_says_ssl(self):
        run = self.tp.psql(None, sslmode="verify-full", sslrootcert=pg.certs.ca,
                           args=["-c", "\\conninfo", "-c", "SELECT 'through tidepool'"])
        self.assertTrue(run.ok, run)
        self.assertIn("SSL connection (protocol: TLSv1.", run.stdout)
        self.assertIn("through tidepool", run.stdout)

    def test_plaintext_refused_with_28000(self):
        err = self.assertSqlstate("28000", self.tp.raw)
        self.assertIn("SSL required", err.message)
        self.assertEqual(err.severity, "FATAL")
        with self.assertRaises(psycopg2.OperationalError) as cm:
            connect(self.tp, "disable")
        self.assertIn("SSL required", str(cm.exception))
        h.wait_for_log(self.tp, "plaintext connection, client_tls_sslmode is require")

    def test_unix_socket_is_exempt(self):
        with contextlib.closing(self.tp.raw(unix=True)) as c:
            self.assertEqual(c.fetch("SELECT 7"), [("7",)])
        # No TLS on the Unix socket: an SSLRequest there is answered 'N'.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(self.tp.socket_path)
            s.sendall(SSL_REQUEST)
            self.assertEqual(s.recv(1), b"N")
            c = h.RawConnection(s)
            c.startup(h.APP_USER, "inventorydb", h.APP_PASSWORD)
            self.assertEqual(c.fetch("SELECT 8"), [("8",)])
        finally:
            s.close()

    def test_gssenc_then_ssl_request(self):
        """GSSENCRequest is answered 'N'; an SSLRequest may follow (as libpq
        does with gssencmode=prefer) and gets TLS."""
        s = socket.create_connection((self.tp.host, self.tp.port), timeout=10)
        s.sendall(GSSENC_REQUEST)
        self.assertEqual(s.recv(1), b"N")
        s.sendall(SSL_REQUEST)
        self.assertEqual(s.recv(1), b"S")
        ctx = ssl.create_default_context(cafile=pg.certs.ca)
        with contextlib.closing(h.RawConnection(ctx.wrap_socket(s, server_hostname="localhost"))) as c:
            c.startup(h.APP_USER, "inventorydb", h.APP_PASSWORD)
            self.assertEqual(c.fetch("SELECT 9"), [("9",)])

    def test_second_ssl_request_inside_tls(self):
        s = raw_tls(self.tp)
        try:
            s.sendall(SSL_REQUEST)
            c = h.RawConnection(s)
            t, body = c.read_message()
            self.assertEqual(t, b"E")
            fields = h._fields(body)
            self.assertEqual(fields["C"], "08P01")
            self.assertTrue(c.closed_by_server())
        finally:
            s.close()

    def test_tls_raw_login_and_query(self):
        with contextlib.closing(raw_tls_login(self.tp)) as c:
            self.assertEqual(c.fetch("SELECT 'hello'"), [("hello",)])
            r = c.prepared("SELECT $1::int * 2", params=(21,), name="doubler")
            self.assertEqual(r.rows, [("42",)])

    def test_cancel_plaintext_and_inside_tls(self):
        with contextlib.closing(connect(self.tp, "require")) as conn:
            check_cancel(self, conn)
        # A CancelRequest sent inside TLS (as libpq 17's PQcancelCreate does).
        with contextlib.closing(raw_tls_login(self.tp)) as c:
            pid, secret = c.backend_key
            c.send(b"Q", b"SELECT pg_sleep(30)\0")
            time.sleep(0.5)
            s = raw_tls(self.tp)
            try:
                s.sendall(struct.pack("!iiii", 16, 80877102, pid, secret))
                with contextlib.suppress(OSError):
                    s.recv(1)
            finally:
                s.close()
            c.sock.settimeout(15)
            with self.assertRaises(h.PgError) as cm:
                c.results(c.read_until_ready())
            self.assertEqual(cm.exception.sqlstate, "57014")

    def test_big_result_and_copy_over_tls(self):
        with contextlib.closing(connect(self.tp, "require")) as conn:
            self.assertTrue(conn.info.ssl_in_use)
            check_big_result(self, conn)
            check_copy(self, conn, "client-tls")

    def test_handshake_garbage_is_closed_others_unaffected(self):
        with contextlib.closing(connect(self.tp, "require")) as good:
            victims = []
            for junk in (b"\x16\x03\x01\x00\x05hello", os.urandom(3000), b"GET / HTTP/1.0\r\n\r\n"):
                s = socket.create_connection((self.tp.host, self.tp.port), timeout=10)
                s.sendall(SSL_REQUEST)
                self.assertEqual(s.recv(1), b"S")
                s.sendall(junk)
                victims.append(s)
            for s in victims:
                s.settimeout(5)
                with contextlib.suppress(ConnectionResetError):
                    while s.recv(4096):
                        pass  # a TLS alert, then the close
                s.close()
            h.wait_for_log(self.tp, "TLS handshake failed")
            with good.cursor() as cur:
                cur.execute("SELECT 'still here'")
                self.assertEqual(cur.fetchone()[0], "still here")
        # A client hello sent before tidepool's answer is refused too.
        s = socket.create_connection((self.tp.host, self.tp.port), timeout=10)
        try:
            s.sendall(SSL_REQUEST + b"\x16\x03\x01\x00\x05hello")
            c = h.RawConnection(s)
            t, body = c.read_message()
            self.assertEqual((t, h._fields(body)["C"]), (b"E", "08P01"))
        finally:
            s.close()


class ClientAllowDisable(h.TestCase):
    def test_allow_accepts_both(self):
        for mode in ("allow", "prefer"):
            with self.subTest(mode=mode), h.Tidepool(pg, pools=plain_pool(), settings=tls_settings(mode)) as tp:
                with contextlib.closing(connect(tp, "require")) as conn:
                    self.assertTrue(conn.info.ssl_in_use)
                with contextlib.closing(connect(tp, "disable")) as conn:
                    self.assertFalse(conn.info.ssl_in_use)
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                with contextlib.closing(tp.raw()) as c:
                    self.assertEqual(c.fetch("SELECT 2"), [("2",)])

    def test_disable_refuses_tls(self):
        with h.Tidepool(pg, pools=plain_pool(), settings={"client_tls_sslmode": "disable"}) as tp:
            with self.assertRaises(psycopg2.OperationalError) as cm:
                connect(tp, "require")
            self.assertIn("does not support SSL", str(cm.exception))
            with contextlib.closing(connect(tp, "prefer")) as conn:
                self.assertFalse(conn.info.ssl_in_use)
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")

    def test_protocols_and_ciphers(self):
        settings = tls_settings("require", client_tls_protocols="tlsv1.2",
                                client_tls_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        with h.Tidepool(pg, pools=plain_pool(), settings=settings) as tp:
            with contextlib.closing(connect(tp, "require")) as conn:
                self.assertEqual(conn.info.ssl_attribute("protocol"), "TLSv1.2")
                self.assertEqual(conn.info.ssl_attribute("cipher"), "ECDHE-ECDSA-AES128-GCM-SHA256")
            with self.assertRaises(psycopg2.OperationalError):
                connect(tp, "require", ssl_min_protocol_version="TLSv1.3")
        settings = tls_settings("require", client_tls_protocols="tlsv1.3")
        with h.Tidepool(pg, pools=plain_pool(), settings=settings) as tp:
            with contextlib.closing(connect(tp, "require")) as conn:
                self.assertEqual(conn.info.ssl_attribute("protocol"), "TLSv1.3")
            with self.assertRaises(psycopg2.OperationalError):
                connect(tp, "require", ssl_max_protocol_version="TLSv1.2")
            h.wait_for_log(tp, "TLS handshake failed")

    def test_sighup_reloads_the_certificate(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="tp-tls-")
        self.addCleanup(h._rmtree, d)
        cert, key = os.path.join(d, "tp.crt"), os.path.join(d, "tp.key")
        shutil.copy(pg.certs.server_cert, cert)
        shutil.copy(pg.certs.server_key, key)
        settings = tls_settings("require", client_tls_cert_file=cert, client_tls_key_file=key)
        with h.Tidepool(pg, pools=plain_pool(), settings=settings) as tp:
            old = connect(tp, "verify-full", sslrootcert=pg.certs.ca)
            old.autocommit = True
            self.addCleanup(old.close)
            fresh = h.make_test_certs(os.path.join(d, "new"))
            shutil.copy(fresh.server_cert, cert)
            shutil.copy(fresh.server_key, key)
            tp.reload()
            h.wait_for_log(tp, "received SIGHUP")

            def new_ca_works():
                with contextlib.suppress(psycopg2.OperationalError):
                    connect(tp, "verify-full", sslrootcert=fresh.ca).close()
                    return True
                return False
            h.wait_until(new_ca_works, 10, message="the new certificate in use")
            with self.assertRaises(psycopg2.OperationalError):
                connect(tp, "verify-full", sslrootcert=pg.certs.ca)
            with old.cursor() as cur:  # a session started before goes on
                cur.execute("SELECT 'old session'")
                self.assertEqual(cur.fetchone()[0], "old session")
            # Unusable files on SIGHUP: logged, the certificate in force stays.
            with open(key, "w") as f:
                f.write("not a key\n")
            tp.reload()
            h.wait_for_log(tp, "client TLS not reloaded")
            connect(tp, "verify-full", sslrootcert=fresh.ca).close()

    def test_client_certificate_required_with_ca_file(self):
        settings = tls_settings("require", client_tls_ca_file=pg.certs.ca)
        with h.Tidepool(pg, pools=plain_pool(), settings=settings) as tp:
            with contextlib.closing(connect(tp, "verify-full", sslrootcert=pg.certs.ca,
                                            sslcert=pg.certs.client_cert, sslkey=pg.certs.client_key)) as conn:
                self.assertTrue(conn.info.ssl_in_use)
            with self.assertRaises(psycopg2.OperationalError):
                connect(tp, "require", sslcert="/nonexistent.crt", sslkey="/nonexistent.key")
            h.wait_for_log(tp, "TLS handshake failed")


class CheckFiles(h.TestCase):
    """tidepool --check opens the client TLS files; the daemon refuses to start
    with files it cannot use."""

    def check(self, **settings):
        d = self.tmp
        path = os.path.join(d, "t.ini")
        h.write_ini(path, {"tidepool": {"unix_socket_dir": "", **settings},
                           "pool.p": {"url": "postgresql://u@127.0.0.1/db"}})
        return h.run_tidepool("--check", path)

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="tp-tls-")
        self.addCleanup(h._rmtree, self.tmp)

    def test_check_reports_unusable_files(self):
        c = pg.certs
        ok = self.check(**tls_settings("require"))
        self.assertEqual(ok.returncode, 0, ok)
        self.assertIn("OK", ok.stdout)
        cases = [
            (dict(client_tls_cert_file="/nonexistent/server.crt"),
             "client_tls_cert_file: cannot open '/nonexistent/server.crt': No such file or directory"),
            (dict(client_tls_key_file=c.client_key), "client_tls_key_file: '%s' does not match" % c.client_key),
            (dict(client_tls_cert_file=c.server_key), "client_tls_cert_file: no PEM certificate in"),
            (dict(client_tls_ciphers="NOSUCHCIPHER"), "client_tls_ciphers: no usable cipher in 'NOSUCHCIPHER'"),
            (dict(client_tls_ca_file=os.path.join(self.tmp, "missing-ca.crt")), "client_tls_ca_file: cannot open"),
            (dict(client_tls_key_file=None), "client_tls_sslmode: 'require' needs client_tls_key_file"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                r = self.check(**{**tls_settings("require"), **extra})
                self.assertEqual(r.returncode, 1, r)
                self.assertIn(message, r.stderr)
        # A key others can read: a warning, not an error.
        shared_key = os.path.join(self.tmp, "shared.key")
        with open(pg.certs.server_key) as src, open(shared_key, "w") as dst:
            dst.write(src.read())
        os.chmod(shared_key, 0o644)
        r = self.check(**tls_settings("require", client_tls_key_file=shared_key))
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(f"client_tls_key_file {shared_key} can be read by others (mode 0644)", r.stderr)
        self.assertIn("but it holds a private key", r.stderr)
        # Group-readable and owned by root (or by tidepool's user): as
        # PostgreSQL, no warning (the .deb's 0640 root:tidepool files).
        os.chmod(shared_key, 0o640)
        r = self.check(**tls_settings("require", client_tls_key_file=shared_key))
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn("client_tls_key_file", r.stderr)
        # disable: the files are not looked at.
        r = self.check(client_tls_sslmode="disable", client_tls_cert_file="/nonexistent.crt")
        self.assertEqual(r.returncode, 0, r)

    def test_daemon_refuses_to_start(self):
        tp = h.Tidepool(pg, pools=plain_pool(), check_exit=False,
                        settings=tls_settings("require", client_tls_key_file=pg.certs.client_key))
        with self.assertRaises(h.DaemonError):
            tp.start()
        self.assertIn("does not match the certificate", tp.log_text())


class BackendTLS(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tp = h.Tidepool(pg, pools=tls_pool(), settings={"log_level": "info"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.tp.stop()
        cls.tp.check()

    def backends_ssl(self):
        return pg.execute("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                          " WHERE a.usename = %s AND a.datname = 'inventorydb'", (BACKEND_ROLE,))

    def test_backends_are_encrypted(self):
        with contextlib.closing(self.tp.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ssl_on, version = cur.fetchone()
            self.assertTrue(ssl_on)
            self.assertTrue(version.startswith("TLSv1."))
        rows = self.backends_ssl()
        self.assertTrue(rows)
        self.assertTrue(all(r[0] for r in rows), rows)

    def test_big_result_copy_cancel(self):
        with contextlib.closing(self.tp.connect()) as conn:
            check_big_result(self, conn)
            conn.rollback()
            check_copy(self, conn, "backend-tls")
            check_cancel(self, conn)

    def test_prepared_and_pipeline(self):
        with contextlib.closing(self.tp.raw()) as c:
            for i in range(3):
                r = c.prepared("SELECT $1::int + 1", params=(i,), name="plus_one")
                self.assertEqual(r.rows, [(str(i + 1),)])
        with psycopg.connect(self.tp.conninfo(), autocommit=True) as conn:
            with conn.pipeline():
                curs = [conn.execute("SELECT %s::int * 3", (i,), prepare=True) for i in range(50)]
            self.assertEqual([c.fetchone()[0] for c in curs], [i * 3 for i in range(50)])



class BothLegs(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tp = h.Tidepool(pg, pools=tls_pool(), settings=tls_settings("require", log_level="info")).start()

    @classmethod
    def tearDownClass(cls):
        cls.tp.stop()
        cls.tp.check()

    def test_both_legs(self):
        with contextlib.closing(connect(self.tp, "verify-full", sslrootcert=pg.certs.ca)) as conn:
            self.assertTrue(conn.info.ssl_in_use)
            with conn.cursor() as cur:
                cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                self.assertTrue(cur.fetchone()[0])
            conn.rollback()
            check_big_result(self, conn)
            conn.rollback()
            check_copy(self, conn, "both-legs")
            check_cancel(self, conn)

    def test_slow_reader(self):
        """A client that reads slowly: the relay pauses and resumes reading
        the backend (backpressure) through both TLS sessions, losing nothing."""
        with contextlib.closing(raw_tls_login(self.tp)) as c:
            c.send(b"Q", b"SELECT i, repeat('z', 1000) FROM generate_series(1, 8000) AS i\0")
            time.sleep(1.0)  # let the queues fill up and the backend pause
            rows, chunks = 0, 0
            c.sock.settimeout(20)
            while True:
                t, body = c.read_message()
                if t == b"D":
                    rows += 1
                elif t == b"Z":
                    break
                if rows and rows % 500 == 0 and chunks < 8:
                    chunks += 1
                    time.sleep(0.1)
            self.assertEqual(rows, 8000)
            self.assertEqual(c.fetch("SELECT 'after'"), [("after",)])


if __name__ == "__main__":
    h.main()
