#!/usr/bin/python3
"""Install and package (issue 5, docs/deployment.md): a build configured with
CMAKE_INSTALL_PREFIX=/usr makes tidepool_<version>_<arch>.deb with `cpack -G
DEB`; its Depends come from dpkg-shlibdeps and its /etc files are conffiles;
`apt-get install ./tidepool_*.deb` installs it on this Debian 12 machine; the
installed binary passes `--check` on the installed configuration (also as the
tidepool user the service runs as, which the postinst created) without a
permission warning about its 0640 root:tidepool files, the units pass
`systemd-analyze verify` (man pages included), the sysusers file and the man
pages are in place, and dpkg reports it installed.

Needs root for apt-get (CI runs as root); a user with password-less sudo
runs those steps with `sudo -n`, anyone else skips this test. The package is purged at the
end unless a tidepool package was installed before the test, in which case
the freshly built one stays installed (the machine keeps a tidepool package,
as it had). The tidepool system user stays either way, as Debian's packages
leave theirs."""

import fnmatch
import grp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

ROOT = h.REPO_ROOT
DEPENDS = ("libuv1", "libpq5", "libinih1", "libssl3", "libsystemd0", "libc6")
INSTALLED = {
    "/usr/bin/tidepool": 0o755,
    "/usr/lib/systemd/system/tidepool.service": 0o644,
    "/usr/lib/systemd/system/tidepool.socket": 0o644,
    "/usr/lib/sysusers.d/tidepool.conf": 0o644,
    "/usr/share/man/man8/tidepool.8": 0o644,
    "/usr/share/man/man5/tidepool.ini.5": 0o644,
    "/etc/tidepool/tidepool.ini": 0o640,
    "/etc/tidepool/userlist.txt": 0o640,
}


def run(argv, timeout=120, **kw):
    started = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    h.log(f"{' '.join(map(str, argv))}: exit {r.returncode} in {time.monotonic() - started:.1f}s")
    return r


def project_version():
    m = re.search(r"project\(tidepool VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
    return m.group(1)


def dpkg_excludes(path):
    """True when dpkg's configuration (path-exclude, as slim Docker images
    have for /usr/share/man) keeps `path` from being unpacked."""
    excluded = False
    for cfg in sorted(Path("/etc/dpkg/dpkg.cfg.d").glob("*")):
        for line in cfg.read_text(errors="replace").splitlines():
            word, _, pattern = line.strip().partition(" ")
            if word in ("path-exclude", "path-include") and fnmatch.fnmatch(path, pattern.strip()):
                excluded = word == "path-exclude"
    return excluded


def as_root():
    """The prefix that runs a command as root: [] as root, sudo -n for a user
    who may, None otherwise."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def package_status():
    r = run(["dpkg-query", "-W", "-f=${db:Status-Status}", "tidepool"])
    return r.stdout.strip() if r.returncode == 0 else ""


class Package(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = as_root()
        if cls.root is None:
            raise unittest.SkipTest("installing a .deb needs root or password-less sudo (CI runs as root)")
        cls.dir = tempfile.mkdtemp(prefix="tp-deb-", dir=h._tmp_base())
        cls.was_installed = package_status() == "installed"
        build = os.path.join(cls.dir, "build")
        steps = [
            ["cmake", "-S", str(ROOT), "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr",
             "-DCMAKE_BUILD_TYPE=Release", "-DTIDEPOOL_BUILD_TESTS=OFF", "-DTIDEPOOL_WERROR=OFF"],
            ["cmake", "--build", build, "-j2"],
        ]
        for argv in steps:
            r = run(argv, timeout=240)
            if r.returncode != 0:
                raise AssertionError(f"{argv} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        cls.cpack = run(["cpack", "-G", "DEB"], cwd=build, timeout=120)
        cls.debs = sorted(Path(build).glob("tidepool_*.deb"))
        cls.build = build
        cls.install = None
        if len(cls.debs) == 1:
            # confold: an admin's edited /etc/tidepool/tidepool.ini is kept, unasked.
            cls.install = run([*cls.root, "apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=120",
                               "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                               f"./{cls.debs[0].name}"], cwd=build, timeout=180,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))

    @classmethod
    def tearDownClass(cls):
        if not cls.was_installed and package_status():
            r = run([*cls.root, "apt-get", "purge", "-y", "-o", "DPkg::Lock::Timeout=120", "tidepool"],
                    env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if r.returncode != 0:
                h.log(f"apt-get purge tidepool failed:\n{r.stdout}{r.stderr}")
        h._rmtree(cls.dir)

    def test_1_cpack_builds_the_deb(self):
        self.assertEqual(self.cpack.returncode, 0, self.cpack.stdout + self.cpack.stderr)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertEqual([d.name for d in self.debs], [f"tidepool_{project_version()}_{arch}.deb"])

    def test_2_control_depends_and_conffiles(self):
        deb = str(self.debs[0])
        depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
        names = {re.split(r"[ (]", d.strip())[0] for alt in depends.split(",") for d in alt.split("|")}
        for lib in DEPENDS:
            self.assertIn(lib, names, depends)
        self.assertIn("adduser", names)
        with tempfile.TemporaryDirectory(dir=self.dir) as ctl:
            self.assertEqual(run(["dpkg-deb", "-e", deb, ctl]).returncode, 0)
            conffiles = Path(ctl, "conffiles").read_text().split()
            self.assertEqual(sorted(conffiles), ["/etc/tidepool/tidepool.ini", "/etc/tidepool/userlist.txt"])
            for script in ("postinst", "prerm", "postrm"):
                self.assertTrue(os.access(Path(ctl, script), os.X_OK), script)
            self.assertNotIn("systemctl start", Path(ctl, "postinst").read_text())

    def test_3_apt_installs_it(self):
        self.assertIsNotNone(self.install, "no package to install")
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)
        r = run(["dpkg", "-s", "tidepool"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Status: install ok installed", r.stdout)
        self.assertIn(f"Version: {project_version()}", r.stdout)

    def test_4_files_in_place(self):
        listing = run(["dpkg-deb", "-c", str(self.debs[0])]).stdout
        for path, mode in INSTALLED.items():
            self.assertIn(f".{path}\n", listing + "\n", path)
            if dpkg_excludes(path):  # e.g. man pages in a slim image: in the .deb, not on disk
                continue
            st = os.stat(path)
            self.assertEqual(st.st_mode & 0o777, mode, path)
        # The configuration holds passwords: root and the tidepool group only.
        for path in ("/etc/tidepool/tidepool.ini", "/etc/tidepool/userlist.txt"):
            self.assertEqual(grp.getgrgid(os.stat(path).st_gid).gr_name, "tidepool", path)
        user = run(["getent", "passwd", "tidepool"]).stdout.split(":")
        self.assertEqual(user[0], "tidepool")
        self.assertLess(int(user[2]), 1000)
        if dpkg_excludes("/usr/share/man/man8/tidepool.8"):
            return
        self.assertEqual(run(["man", "-w", "8", "tidepool"]).stdout.strip(), "/usr/share/man/man8/tidepool.8")
        self.assertEqual(run(["man", "-w", "5", "tidepool.ini"]).stdout.strip(),
                         "/usr/share/man/man5/tidepool.ini.5")
        r = run(["man", "--warnings", "-l", "/usr/share/man/man8/tidepool.8"],
                env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--check", r.stdout.replace("\u2010", "-"))
        self.assertEqual(r.stderr.strip(), "")

    def test_5_installed_binary_checks_installed_config(self):
        r = run(["/usr/bin/tidepool", "--version"])
        self.assertEqual(r.stdout.strip(), f"tidepool {project_version()}")
        # The postinst's 0640 root:tidepool draws no permission warning: root
        # owns the files, and the group is the service's (PostgreSQL's rule).
        permission_warning = r"can be (read|written) by"
        r = run(["/usr/bin/tidepool", "--check", "/etc/tidepool/tidepool.ini"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout)
        self.assertNotRegex(r.stderr, permission_warning)
        # As ExecStartPre runs it: as the tidepool user.
        r = run([*self.root, "setpriv", "--reuid=tidepool", "--regid=tidepool", "--init-groups", "--",
                 "/usr/bin/tidepool", "--check", "/etc/tidepool/tidepool.ini"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex(r.stderr, permission_warning)

    def test_6_installed_units_verify(self):
        units = ["/usr/lib/systemd/system/tidepool.service", "/usr/lib/systemd/system/tidepool.socket"]
        # With the man page check: Documentation=man:tidepool(8) must resolve
        # (unless dpkg is configured to leave man pages out).
        man = "no" if dpkg_excludes("/usr/share/man/man8/tidepool.8") else "yes"
        r = run(["systemd-analyze", "verify", f"--man={man}", *units])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")
        text = Path(units[0]).read_text()
        self.assertIn("ExecStartPre=/usr/bin/tidepool --check /etc/tidepool/tidepool.ini", text)
        self.assertIn("ExecStart=/usr/bin/tidepool /etc/tidepool/tidepool.ini", text)


if __name__ == "__main__":
    h.main()
