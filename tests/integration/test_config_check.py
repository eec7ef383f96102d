#!/usr/bin/python3
"""The command line (SPEC §2) and configuration errors (SPEC §3):
`tidepool --check FILE` exits 0 for a valid file and 1 for an invalid one,
reporting every problem as `FILE:LINE: key: what is wrong`; `--version`,
`--help`. --check does what the start does before it binds (systemd's
ExecStartPre runs it): it loads the auth_file and resolves the host names of
listen_addr and metrics_listen, so a file it passes does not then fail at
start for them. No PostgreSQL is needed: --check validates and never
connects; ListenByName alone starts a cluster, to connect through a
listen_addr given as a host name.

Names that must not resolve have a 64-character label: the resolver refuses
them before sending any query, so no test traffic leaves the machine."""

import os
import re
import shutil
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

EXAMPLE = h.REPO_ROOT / "config" / "tidepool.ini.example"
# Longer than a DNS label may be (63): fails to resolve without a DNS query.
UNRESOLVABLE = "x" * 64 + ".invalid"


def project_version():
    text = (h.REPO_ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*tidepool\s+VERSION\s+([0-9][0-9.]*)", text)
    return m.group(1) if m else None


class ConfigCheck(h.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tp-check-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.userlist = os.path.join(self.dir, "userlist.txt")
        h.write_userlist(self.userlist, {"app": "secret"})

    def write(self, name, body):
        """Write a config file; `body` is dedented, and {dir} / {userlist}
        are filled in. Returns its path."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(body).lstrip("\n").format(dir=self.dir, userlist=self.userlist))
        return path

    def check(self, path):
        return h.run_tidepool("--check", path)

    def assertProblem(self, stderr, path, line, key):
        """stderr has a `FILE:LINE: key: what` line for this problem (FILE as
        given on the command line, or its base name)."""
        files = "|".join(re.escape(p) for p in {path, os.path.basename(path)})
        pattern = rf"(?m)^(?:.*/)?(?:{files}):{line}: {re.escape(key)}: \S"
        self.assertRegex(stderr, pattern, f"expected a '{os.path.basename(path)}:{line}: {key}: ...' line")

    VALID = """
        ; a small valid configuration
        [tidepool]
        listen_addr = 127.0.0.1
        listen_port = 6432
        unix_socket_dir = {dir}
        auth_type = scram-sha-256
        auth_file = {userlist}

        [pool.inventorydb]
        url = postgresql+psycopg2://app:secret@127.0.0.1:5432/inventorydb
        pool_mode = session
        pool_size = 5
        max_overflow = 10
        pool_timeout = 30
        isolation_level = SERIALIZABLE
        echo = true
        """

    # -- valid files --

    def test_example_config_is_valid(self):
        self.assertTrue(EXAMPLE.exists(), f"{EXAMPLE} is missing")
        # It names the packaged /etc/tidepool/userlist.txt, which --check
        # loads: point it at one that exists here.
        text = EXAMPLE.read_text()
        self.assertRegex(text, r"(?m)^auth_file = /etc/tidepool/userlist\.txt$")
        text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {self.userlist}", text)
        path = os.path.join(self.dir, "example.ini")
        with open(path, "w") as f:
            f.write(text)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, f"--check {EXAMPLE} failed:\n{r.stderr}")

    def test_valid_config(self):
        r = self.check(self.write("valid.ini", self.VALID))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_pool_keys_in_tidepool_section_are_defaults(self):
        r = self.check(self.write("defaults.ini", """
            [tidepool]
            listen_port = 6432
            unix_socket_dir = {dir}
            auth_file = {userlist}
            pool_mode = session
            pool_size = 2
            pool_timeout = 2.5

            [pool.a]
            url = postgresql://app:secret@127.0.0.1:5432/inventorydb

            [pool.b]
            url = host=127.0.0.1 port=5432 dbname=inventorydb user=app password=secret
            pool_size = 3
            """))
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- invalid files --

    def test_unknown_key_and_bad_value(self):
        path = self.write("broken.ini", """
            ; line 1
            [tidepool]
            listen_port = 6432
            bogus_key = 1
            unix_socket_dir = {dir}
            auth_file = {userlist}

            [pool.inventorydb]
            url = postgresql://app:secret@127.0.0.1:5432/inventorydb
            pool_size = many
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        # Every problem is reported, not only the first.
        self.assertProblem(r.stderr, path, 4, "bogus_key")
        self.assertProblem(r.stderr, path, 10, "pool_size")

    def test_each_kind_of_problem(self):
        cases = [
            # (name, line 2 of [tidepool] or line 8 of [pool.inventorydb], line, key)
            ("bad_port", "listen_port = 70000", 2, "listen_port"),
            ("bad_auth_type", "auth_type = kerberos", 2, "auth_type"),
            ("bad_log_level", "log_level = loud", 2, "log_level"),
            ("bad_client_conn", "max_client_conn = 0", 2, "max_client_conn"),
            ("bad_pool_mode", "pool_mode = sometimes", 8, "pool_mode"),
            ("bad_bool", "pool_pre_ping = maybe", 8, "pool_pre_ping"),
            ("bad_overflow", "max_overflow = -2", 8, "max_overflow"),
            ("bad_timeout", "pool_timeout = soon", 8, "pool_timeout"),
            ("bad_reset", "pool_reset_on_return = sometimes", 8, "pool_reset_on_return"),
            ("bad_isolation", "isolation_level = CHAOS", 8, "isolation_level"),
            ("autocommit_refused", "isolation_level = AUTOCOMMIT", 8, "isolation_level"),
            ("bad_echo", "echo = loud", 8, "echo"),
            ("unknown_pool_key", "pool_sise = 5", 8, "pool_sise"),
        ]
        for name, bad, line, key in cases:
            with self.subTest(name):
                lines = [
                    "[tidepool]",                                                   # 1
                    bad if line == 2 else "listen_port = 6432",                     # 2
                    "unix_socket_dir = {dir}",                                      # 3
                    "auth_file = {userlist}",                                       # 4
                    "",                                                             # 5
                    "[pool.inventorydb]",                                           # 6
                    "url = postgresql://app:secret@127.0.0.1:5432/inventorydb",     # 7
                ]
                if line == 8:
                    lines.append(bad)                                               # 8
                path = self.write(f"{name}.ini", "\n".join(lines) + "\n")
                r = self.check(path)
                self.assertEqual(r.returncode, 1, f"{name}: {r.stderr}")
                self.assertProblem(r.stderr, path, line, key)

    def test_missing_url(self):
        path = self.write("nourl.ini", """
            [tidepool]
            listen_port = 6432
            unix_socket_dir = {dir}
            auth_file = {userlist}

            [pool.inventorydb]
            pool_size = 5
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        # A missing key is reported at its section's header.
        self.assertProblem(r.stderr, path, 6, "url")

    def test_unknown_section(self):
        path = self.write("section.ini", """
            [tidepool]
            listen_port = 6432
            unix_socket_dir = {dir}
            auth_file = {userlist}

            [pools.inventorydb]
            url = postgresql://app:secret@127.0.0.1:5432/inventorydb
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^(?:.*/)?section\.ini:6: ")

    def test_missing_file(self):
        path = os.path.join(self.dir, "does-not-exist.ini")
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("does-not-exist.ini", r.stderr)

    # -- what the start would refuse (--check must refuse it too) --

    SMALL = """
        [tidepool]
        listen_addr = {listen_addr}
        listen_port = 6432
        unix_socket_dir = {dir}
        auth_file = {auth_file}
        metrics_listen = {metrics_listen}

        [pool.inventorydb]
        url = postgresql://app:secret@127.0.0.1:5432/inventorydb
        """

    def small(self, name, listen_addr="127.0.0.1", auth_file=None, metrics_listen=""):
        """A valid file but for the values given; auth_file is on line 5,
        listen_addr on 2, metrics_listen on 6."""
        body = textwrap.dedent(self.SMALL).lstrip("\n").replace("{listen_addr}", listen_addr)
        body = body.replace("{auth_file}", auth_file or "{userlist}").replace("{metrics_listen}", metrics_listen)
        return self.write(name, body)

    def assertRefused(self, r):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertNotIn("OK", r.stdout)

    def assertStartRefused(self, path, text):
        """The daemon itself refuses the file at start, saying `text`."""
        r = h.run_tidepool(path, timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(text, r.stderr)

    def test_auth_file_missing(self):
        missing = os.path.join(self.dir, "no-such-userlist.txt")
        path = self.small("noauth.ini", auth_file=missing)
        r = self.check(path)
        self.assertRefused(r)
        want = f"{path}:5: auth_file {missing}: cannot open: No such file or directory"
        self.assertIn(want, r.stderr)
        self.assertStartRefused(path, want)

    def test_auth_file_unreadable(self):
        # A directory: unreadable even to root.
        path = self.small("dirauth.ini", auth_file=self.dir)
        r = self.check(path)
        self.assertRefused(r)
        self.assertIn(f"{path}:5: auth_file {self.dir}: cannot read: Is a directory", r.stderr)

    def test_auth_file_malformed(self):
        with open(self.userlist, "w") as f:
            f.write('; users\n"app" "secret"\n"broken "secret"\n')
        path = self.small("badauth.ini")
        r = self.check(path)
        self.assertRefused(r)
        # FILE:LINE of the auth_file itself.
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(self.userlist)}:3: \S")
        self.assertStartRefused(path, f"{self.userlist}:3: ")

    def test_auth_file_from_pgbouncer(self):
        # PgBouncer ignores what follows the secret; so does tidepool.
        with open(self.userlist, "w") as f:
            f.write('"app" "secret" ""\n"report" "md5' + "0" * 32 + '" "" ""\n')
        r = self.check(self.small("pgb.ini"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)

    def test_listen_addr_host_name(self):
        r = self.check(self.small("localhost.ini", listen_addr="localhost"))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check(self.small("mixed.ini", listen_addr="127.0.0.1, localhost"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_listen_addr_unresolvable(self):
        # The name first: the start then fails before it binds anything.
        path = self.small("nohost.ini", listen_addr=f"{UNRESOLVABLE}, 127.0.0.1")
        r = self.check(path)
        self.assertRefused(r)
        self.assertProblem(r.stderr, path, 2, "listen_addr")
        self.assertIn(f"'{UNRESOLVABLE}' does not resolve", r.stderr)
        self.assertStartRefused(path, f"{path}:2: listen_addr: '{UNRESOLVABLE}' does not resolve")

    def test_metrics_listen_unresolvable(self):
        path = self.small("nometrics.ini", metrics_listen=f"{UNRESOLVABLE}:9127")
        r = self.check(path)
        self.assertRefused(r)
        self.assertProblem(r.stderr, path, 6, "metrics_listen")
        self.assertIn(f"'{UNRESOLVABLE}' does not resolve", r.stderr)
        r = self.check(self.small("metrics.ini", metrics_listen="localhost:9127"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_start_problem_reported(self):
        missing = os.path.join(self.dir, "gone.txt")
        path = self.small("all.ini", listen_addr=UNRESOLVABLE, auth_file=missing,
                          metrics_listen=f"{UNRESOLVABLE}:9127")
        r = self.check(path)
        self.assertRefused(r)
        self.assertProblem(r.stderr, path, 2, "listen_addr")
        self.assertProblem(r.stderr, path, 6, "metrics_listen")
        self.assertIn(f"{path}:5: auth_file {missing}: cannot open", r.stderr)

    # -- other options --

    def test_version(self):
        r = h.run_tidepool("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")
        version = project_version()
        if version:
            self.assertIn(version, r.stdout)

    def test_help(self):
        r = h.run_tidepool("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--check", r.stdout)
        self.assertIn("--version", r.stdout)


class ListenByName(h.TestCase):
    """listen_addr = localhost, as PgBouncer allows: tidepool resolves it at
    start and listens on its addresses (127.0.0.1, and ::1 where the machine
    has it); a client connects through 127.0.0.1."""

    def test_listen_addr_localhost(self):
        with h.Cluster() as pg, h.Tidepool(pg, settings={"listen_addr": "localhost"}) as tp:
            r = h.run_tidepool("--check", tp.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            with tp.raw() as c:  # tp.host is 127.0.0.1
                self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
            self.assertIn(f"listening on 127.0.0.1:{tp.port} (localhost)", tp.log_text())


if __name__ == "__main__":
    h.main()
