#!/usr/bin/python3
"""docker-compose.yml (issue 5, docs/deployment.md): Docker does not run
here, so this checks, as far as that goes without it, that `docker compose
up` has what it needs: the file parses; every service has an image or a
build whose context, Dockerfile and COPY sources exist (and are not left out
by .dockerignore); every mounted file exists; every depends_on names a
service, with a healthcheck where it waits for one; adminer's server is
tidepool, on the port tidepool listens on, not PostgreSQL. Then tidepool's
compose configuration passes `tidepool --check` and is served for real: the
daemon runs it against a throwaway PostgreSQL set up as the postgres image
sets itself up from db's environment (POSTGRES_USER, _PASSWORD, _DB), with
only the host names of the file rewritten, and a client logs in as adminer
does (dbname=postgres first, the database list, then the database)."""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import yaml  # noqa: E402  (python3-yaml)

ROOT = h.REPO_ROOT
COMPOSE = ROOT / "docker-compose.yml"


def load_compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def dockerfile_instructions(path):
    """[(INSTRUCTION, arguments)] with continuation lines joined."""
    out, cur = [], ""
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def dockerignore_patterns(context):
    p = Path(context, ".dockerignore")
    if not p.exists():
        return []
    return [line.strip() for line in p.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def build_of(service):
    b = service["build"]
    if isinstance(b, str):
        return ROOT / b, "Dockerfile"
    return ROOT / b.get("context", "."), b.get("dockerfile", "Dockerfile")


def mounts(service):
    """(host path, container path) of each bind mount given as a string."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            if parts[0].startswith((".", "/")):
                out.append((parts[0], parts[1]))
        elif v.get("type") == "bind":
            out.append((v["source"], v["target"]))
    return out


def container_file(compose, service_name, container_path):
    """Which file of this tree the container sees at container_path: a bind
    mount wins over the image's COPY."""
    svc = compose["services"][service_name]
    for host, target in mounts(svc):
        if target == container_path:
            return ROOT / host
    context, dockerfile = build_of(svc)
    for word, args in dockerfile_instructions(context / dockerfile):
        if word == "COPY" and not args.startswith("--from"):
            *srcs, dest = shlex.split(args)
            if dest == container_path and len(srcs) == 1:
                return context / srcs[0]
    return None


def ini_sections(path):
    sections, cur = {}, None
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("["):
            cur = sections.setdefault(s.strip("[]"), {})
        elif "=" in s and cur is not None:
            k, _, v = s.partition("=")
            cur[k.strip()] = v.split(" ;")[0].strip()
    return sections


class ComposeFile(h.TestCase):
    def setUp(self):
        self.compose = load_compose()
        self.services = self.compose["services"]

    def test_the_three_services(self):
        self.assertEqual(set(self.services), {"db", "tidepool", "adminer"})
        self.assertRegex(self.services["db"]["image"], r"^postgres(:\d+)?$")
        self.assertRegex(self.services["adminer"]["image"], r"^adminer(:|$)")
        self.assertIn("build", self.services["tidepool"])

    def test_every_service_has_an_image_or_a_buildable_context(self):
        for name, svc in self.services.items():
            self.assertTrue("image" in svc or "build" in svc, name)
            if "build" not in svc:
                continue
            context, dockerfile = build_of(svc)
            self.assertTrue(context.is_dir(), f"{name}: build context {context}")
            self.assertTrue((context / dockerfile).is_file(), f"{name}: {dockerfile}")
            ignored = dockerignore_patterns(context)
            steps = dockerfile_instructions(context / dockerfile)
            self.assertTrue(any(w == "FROM" for w, _ in steps), f"{name}: no FROM")
            for word, args in steps:
                if word not in ("COPY", "ADD") or args.startswith("--from"):
                    continue
                *srcs, _dest = shlex.split(args)
                for src in srcs:
                    self.assertTrue((context / src).exists(), f"{name}: {word} {src}: no such file")
                    parts = Path(src).parts
                    if parts:  # "." is the whole context
                        self.assertNotIn(parts[0], ignored, f"{name}: {src} is in .dockerignore")

    def test_every_mounted_file_exists(self):
        for name, svc in self.services.items():
            for host, _target in mounts(svc):
                self.assertTrue((ROOT / host).exists(), f"{name}: mounts {host}, which does not exist")

    def test_depends_on_names_services_with_healthchecks(self):
        for name, svc in self.services.items():
            deps = svc.get("depends_on", {})
            items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
            for dep, cond in items:
                self.assertIn(dep, self.services, f"{name} depends on {dep}")
                if (cond or {}).get("condition") == "service_healthy":
                    self.assertIn("healthcheck", self.services[dep], f"{name} waits for {dep}'s health")
        self.assertIn("tidepool", self.services["adminer"].get("depends_on", {}))
        self.assertIn("db", self.services["tidepool"].get("depends_on", {}))

    def test_adminer_connects_through_tidepool(self):
        server = self.services["adminer"]["environment"]["ADMINER_DEFAULT_SERVER"]
        host, _, port = server.partition(":")
        self.assertEqual(host, "tidepool", "adminer must connect through tidepool, not PostgreSQL")
        conf = ini_sections(container_file(self.compose, "tidepool", "/etc/tidepool/tidepool.ini"))
        self.assertEqual(int(port or 5432), int(conf["tidepool"]["listen_port"]))
        self.assertEqual(conf["tidepool"]["listen_addr"], "*", "other containers must reach it")
        published = [p.rsplit(":", 1)[-1] for p in self.services["tidepool"].get("ports", [])]
        self.assertIn(conf["tidepool"]["listen_port"], published)

    def test_tidepool_config_points_at_db_with_its_credentials(self):
        conf = ini_sections(container_file(self.compose, "tidepool", "/etc/tidepool/tidepool.ini"))
        env = self.services["db"]["environment"]
        urls = [s["url"] for n, s in conf.items() if n.startswith("pool.")]
        self.assertIn(f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/"
                      f"{env['POSTGRES_DB']}", urls)
        # The auth_file the config names is in the container too.
        users = container_file(self.compose, "tidepool", conf["tidepool"]["auth_file"])
        self.assertIsNotNone(users, "auth_file is neither mounted nor copied")
        self.assertTrue(users.is_file(), users)

    def test_tidepool_config_passes_check(self):
        path = container_file(self.compose, "tidepool", "/etc/tidepool/tidepool.ini")
        # --check loads the auth_file: the one the container would see.
        conf = ini_sections(path)
        users = container_file(self.compose, "tidepool", conf["tidepool"]["auth_file"])
        self.assertIsNotNone(users, "auth_file is neither mounted nor copied")
        with tempfile.TemporaryDirectory(dir=h._tmp_base()) as work:
            text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {users}", path.read_text())
            ini = Path(work, "tidepool.ini")
            ini.write_text(text)
            r = h.run_tidepool("--check", str(ini))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class ComposeStack(h.TestCase):
    """The compose configuration, served: `db` is a throwaway cluster set up
    from db's environment as the postgres image would be."""

    def test_adminer_login_through_tidepool(self):
        compose = load_compose()
        env = compose["services"]["db"]["environment"]
        user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
        conf_path = container_file(compose, "tidepool", "/etc/tidepool/tidepool.ini")
        users_path = container_file(compose, "tidepool", "/etc/tidepool/userlist.txt")
        with h.Cluster(databases=()) as pg:
            pg.execute(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'")
            pg.execute(f"CREATE DATABASE {db} OWNER {user}")
            work = tempfile.mkdtemp(prefix="tp-compose-", dir=h._tmp_base())
            self.addCleanup(h._rmtree, work)
            port = h.free_port()
            text = conf_path.read_text()
            text = text.replace("@db:5432/", f"@127.0.0.1:{pg.port}/")
            text = re.sub(r"(?m)^listen_addr = .*$", "listen_addr = 127.0.0.1", text)
            text = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {port}", text)
            text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {users_path}", text)
            ini = Path(work, "tidepool.ini")
            ini.write_text(text)
            self.assertEqual(h.run_tidepool("--check", str(ini)).returncode, 0)
            log = open(Path(work, "tidepool.log"), "wb")
            self.addCleanup(log.close)
            proc = subprocess.Popen([h.tidepool_bin(), str(ini)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=h._die_with_parent)
            self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
            self.assertTrue(h._wait_connectable(socket.AF_INET, ("127.0.0.1", port),
                                                time.monotonic() + 10, proc),
                            Path(work, "tidepool.log").read_text())

            def psql(dbname, sql):
                return h.run_psql(h.conninfo(host="127.0.0.1", port=port, dbname=dbname, user=user,
                                             password=password), sql)
            # adminer with an empty Database field: dbname=postgres, then the list.
            r = psql("postgres", "SET application_name = 'Adminer'; "
                                 "SELECT datname FROM pg_database ORDER BY datname")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(db, r.stdout.split())
            # Then the database itself, through its pool.
            r = psql(db, "CREATE TABLE IF NOT EXISTS t (id int); INSERT INTO t VALUES (1); "
                         "SELECT current_database(), count(*) FROM t")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), f"{db}|1")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(15), 0, Path(work, "tidepool.log").read_text())
            text = Path(work, "tidepool.log").read_text()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                self.assertNotIn(marker, text)


if __name__ == "__main__":
    h.main()
