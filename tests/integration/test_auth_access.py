#!/usr/bin/python3
"""Who gets in, and what the others learn (issue 6, authentication and
access): a pool's allowed_users refuses other users with FATAL 28000 after
they authenticated; the admin console is for admin_users alone; a client
answering with a weaker method than auth_type is refused; a user missing from
auth_file and a wrong password give byte-for-byte the same answers (modulo the
user name), and a salt that is as stable for a missing user as for a real one;
each failed login is logged once, with user, pool, address and reason, and no
secret; auth_file and a configuration file holding passwords are warned about
when others can read them, or their group can write them, or their group can
read them and they are owned by neither root nor tidepool's user (the rule
PostgreSQL applies to its key files; the .deb's 0640 root:tidepool is fine).
"""

import base64
import hashlib
import os
import pwd
import re
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

USERS = {"alice": "alice-pw-7f3a", "bob": "bob-pw-91c2", "admin": "admin-pw-44d0",
         "olduser": h.md5_secret("olduser", "old-pw-5b1e")}
WRONG = "wrong-pw-e8d6"


def startup_packet(user, database):
    body = struct.pack("!i", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database))) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def exchange(tp, user, password, database="inventorydb", answer=None):
    """Log in by hand, returning what the server sent: [(type, body)] up to
    the first ErrorResponse or ReadyForQuery, and what the client sent.
    answer(code, body) may replace the client's reply to a request."""
    c = h.RawConnection.open_socket(tp.host, tp.port)
    sent, got = [], []
    scram = None
    try:
        c.sock.sendall(startup_packet(user, database))
        while True:
            try:
                t, body = c.read_message()
            except EOFError:
                got.append((b"EOF", b""))
                return got, sent
            got.append((t, body))
            if t in (b"E", b"Z"):
                return got, sent
            if t != b"R":
                continue
            code = struct.unpack("!i", body[:4])[0]
            reply = answer(code, body) if answer else None
            if reply is None:
                if code == 10:
                    scram = h._ScramClient(password)
                    first = scram.client_first()
                    reply = b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
                elif code == 11:
                    reply = scram.client_final(body[4:])
                elif code == 5:
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    reply = ("md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest()).encode() + b"\0"
                elif code == 3:
                    reply = password.encode() + b"\0"
                else:
                    continue
            sent.append(reply)
            c.send(b"p", reply)
    finally:
        c.sock.close()


def error_of(got):
    t, body = got[-1] if got[-1][0] == b"E" else (None, None)
    if t is None:
        raise AssertionError(f"no ErrorResponse in {got!r}")
    return h._fields(body)


def shape(got, user):
    """The server's messages with what must differ between attempts masked:
    SCRAM nonces (random for everyone), md5 salts (random for everyone), the
    user name in the error text."""
    out = []
    for t, body in got:
        if t == b"R":
            code = struct.unpack("!i", body[:4])[0]
            if code == 11:
                attrs = dict(kv.split("=", 1) for kv in body[4:].decode().split(","))
                body = struct.pack("!i", code) + f"r=<{len(attrs['r'])}>,s=<{len(attrs['s'])}>," \
                                                  f"i={attrs['i']}".encode()
            elif code == 5:
                body = struct.pack("!i", code) + b"<salt %d>" % len(body[4:])
        elif t == b"E":
            body = body.replace(f'"{user}"'.encode(), b'"<user>"')
        out.append((t, body))
    return out


def salt_of(got):
    for t, body in got:
        if t == b"R" and struct.unpack("!i", body[:4])[0] == 11:
            return dict(kv.split("=", 1) for kv in body[4:].decode().split(","))["s"]
    return None


class AuthAccess(h.ClusterTestCase):
    def daemon(self, auth_type="scram-sha-256", **settings):
        pools = {"inventorydb": {"allowed_users": "alice, admin"},
                 "open": {"url": self.pg.url("inventorydb")}}
        return h.Tidepool(self.pg, pools=pools, users=USERS,
                          settings={"auth_type": auth_type, "admin_users": "admin", **settings})

    def refused(self, tp, user, password, dbname="inventorydb"):
        with self.assertRaises(h.PgError) as e:
            with tp.raw(user=user, password=password, dbname=dbname):
                pass
        self.assertEqual(e.exception.severity, "FATAL")
        return e.exception

    def test_allowed_users_per_pool(self):
        with self.daemon() as tp, tp.raw(user="bob", password=USERS["bob"], dbname="open") as bystander:
            with tp.raw(user="alice", password=USERS["alice"]) as c:
                self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
            e = self.refused(tp, "bob", USERS["bob"])
            self.assertEqual((e.sqlstate, e.message),
                             ("28000", 'user "bob" is not allowed to use pool "inventorydb"'))
            # Only after authentication: without the password, the usual 28P01.
            self.assertEqual(self.refused(tp, "bob", WRONG).sqlstate, "28P01")
            self.assertEqual(self.refused(tp, "ghost", WRONG).sqlstate, "28P01")
            # A pool without allowed_users takes every authenticated user.
            with tp.raw(user="alice", password=USERS["alice"], dbname="open") as c:
                self.assertEqual(c.fetch("SELECT 2")[0][0], "2")
            self.assertEqual(bystander.fetch("SELECT 3")[0][0], "3")
            self.assertRegex(tp.log_text(), r'user "bob" is not allowed to use pool "inventorydb"')

    def test_admin_console_is_for_admin_users(self):
        with self.daemon() as tp:
            with tp.raw(user="admin", password=USERS["admin"], dbname="tidepool") as c:
                self.assertTrue(c.fetch("SHOW POOLS"))
            # alice may use a pool, not the console; bob neither.
            for user in ("alice", "bob"):
                e = self.refused(tp, user, USERS[user], dbname="tidepool")
                self.assertEqual(e.sqlstate, "42501", e.message)
            self.assertEqual(self.refused(tp, "admin", WRONG, dbname="tidepool").sqlstate, "28P01")

    def test_weaker_method_refused(self):
        def md5_answer(code, body):
            if code == 10:  # SASL asked: answer with an md5 password message
                inner = hashlib.md5((USERS["alice"] + "alice").encode()).hexdigest()
                return ("md5" + hashlib.md5(inner.encode() + b"abcd").hexdigest()).encode() + b"\0"
            return None

        def cleartext_answer(code, body):
            return USERS["alice"].encode() + b"\0" if code in (10, 5) else None

        def plain_mechanism(code, body):
            if code == 10:
                data = b"\0alice\0" + USERS["alice"].encode()
                return b"PLAIN\0" + struct.pack("!i", len(data)) + data
            return None

        with self.daemon() as tp:
            for answer, states in ((md5_answer, ("08P01", "28P01")), (cleartext_answer, ("08P01", "28P01")),
                                   (plain_mechanism, ("28000",))):
                got, _ = exchange(tp, "alice", USERS["alice"], answer=answer)
                self.assertEqual(struct.unpack("!i", got[0][1][:4])[0], 10, got)
                err = error_of(got)
                self.assertIn(err["C"], states, (answer.__name__, err))
                self.assertEqual(err["S"], "FATAL")
            # An md5 entry under scram-sha-256: offered SCRAM (never md5), and
            # refused even with the right password.
            got, _ = exchange(tp, "olduser", "old-pw-5b1e")
            self.assertEqual([struct.unpack("!i", b[:4])[0] for t, b in got if t == b"R"], [10, 11])
            self.assertEqual(error_of(got)["C"], "28P01")
            with tp.raw(user="alice", password=USERS["alice"]) as c:  # still fine for others
                self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
            log = tp.log_text()
            self.assertIn('auth_file: user "olduser" has an md5 secret', log)
            self.assertRegex(log, r'login failed: user "olduser".*md5 secret')

        with self.daemon(auth_type="md5") as tp:
            got, _ = exchange(tp, "alice", USERS["alice"], answer=cleartext_answer)
            self.assertEqual(struct.unpack("!i", got[0][1][:4])[0], 5)
            self.assertEqual(error_of(got)["C"], "28P01")

    def test_unknown_user_looks_like_wrong_password(self):
        with self.daemon() as tp:
            attempts = {}
            for user, pw in (("alice", WRONG), ("ghost", WRONG), ("bob", WRONG), ("nobody", "x")):
                attempts[user] = [exchange(tp, user, pw) for _ in range(2)]
            ref = shape(attempts["alice"][0][0], "alice")
            self.assertEqual([t for t, _ in ref], [b"R", b"R", b"E"])
            err = error_of(attempts["alice"][0][0])
            self.assertEqual((err["S"], err["C"], err["M"]),
                             ("FATAL", "28P01", 'password authentication failed for user "alice"'))
            for user, runs in attempts.items():
                for got, _ in runs:
                    self.assertEqual(shape(got, user), ref, user)
                # The salt is the same from one attempt to the next, for a
                # real user (plaintext entry) and a missing one alike.
                self.assertEqual(salt_of(runs[0][0]), salt_of(runs[1][0]), user)
            self.assertNotEqual(salt_of(attempts["ghost"][0][0]), salt_of(attempts["nobody"][0][0]))

            # The log: one line per failed login, with user, pool, address and
            # reason; nothing of the passwords or the exchange.
            log = tp.log_text()
            lines = [ln for ln in log.splitlines() if "login failed" in ln]
            self.assertEqual(len(lines), 8, lines)
            self.assertEqual(len([ln for ln in lines if 'user "ghost"' in ln]), 2)
            for ln in lines:
                self.assertRegex(ln, r'login failed: user "\w+", pool "inventorydb", client \d+ '
                                     r'\(127\.0\.0\.1:\d+\): ')
            self.assertTrue(any('"ghost"' in ln and "unknown user" in ln for ln in lines))
            self.assertTrue(any('"alice"' in ln and "wrong password" in ln for ln in lines))
            for secret in [WRONG, *USERS.values()]:
                self.assertNotIn(secret, log)
            for runs in attempts.values():
                for _, sent in runs:
                    for msg in sent:  # client-first (nonce) and client-final (proof)
                        for part in re.split(rb"[,\0]", msg):
                            if len(part) > 8:
                                self.assertNotIn(part.decode(errors="replace"), log)

    def test_reload_keeps_answers_alike(self):
        # A plaintext entry's salt is the one the same name gets when missing
        # from auth_file; a changed password takes effect on SIGHUP (the keys
        # derived from the old one are dropped).
        with self.daemon() as tp:
            with tp.raw(user="alice", password=USERS["alice"]):
                pass
            before = salt_of(exchange(tp, "alice", WRONG)[0])
            h.write_userlist(tp.auth_file, {**USERS, "alice": "alice-new-pw"})
            del_alice = {k: v for k, v in USERS.items() if k != "alice"}
            tp.reload()
            h.wait_until(lambda: tp.log_text().count("received SIGHUP") >= 1, message="reload")
            self.assertEqual(self.refused(tp, "alice", USERS["alice"]).sqlstate, "28P01")
            with tp.raw(user="alice", password="alice-new-pw") as c:
                self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
            h.write_userlist(tp.auth_file, del_alice)
            tp.reload()
            h.wait_until(lambda: tp.log_text().count("received SIGHUP") >= 2, message="reload")
            got, _ = exchange(tp, "alice", "alice-new-pw")
            self.assertEqual(error_of(got)["C"], "28P01")
            self.assertEqual(salt_of(got), before)
            self.assertRegex(tp.log_text(), r'login failed: user "alice", pool "inventorydb", .*: unknown user')

    def test_unknown_user_md5(self):
        with self.daemon(auth_type="md5") as tp:
            wrong, _ = exchange(tp, "alice", WRONG)
            ghost, _ = exchange(tp, "ghost", WRONG)
            self.assertEqual(shape(ghost, "ghost"), shape(wrong, "alice"))
            self.assertEqual([t for t, _ in wrong], [b"R", b"E"])
            self.assertEqual(error_of(ghost)["C"], "28P01")

    def test_permission_warning_at_start(self):
        fd, path = tempfile.mkstemp(prefix="tp-userlist-", suffix=".txt")
        os.close(fd)
        h.write_userlist(path, USERS)
        os.chmod(path, 0o604)
        try:
            with self.daemon(auth_file=path) as tp:
                self.assertRegex(tp.log_text(), r"WARNING: auth_file \S+ can be read by others \(mode 0604\)")
                with tp.raw(user="alice", password=USERS["alice"]) as c:
                    self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
        finally:
            os.unlink(path)

    def test_permission_warnings(self):
        # PostgreSQL's rule for its key files: others may not read (or write)
        # it, its group may read it when root (or tidepool's own user) owns it.
        warned = re.compile(r"can be (read|written)")
        others = re.compile(r"auth_file \S+ can be read by others \(mode 0644\), but it holds passwords: "
                            r"chmod o-rwx it")
        with self.daemon() as tp:
            self.assertEqual(os.stat(tp.auth_file).st_mode & 0o777, 0o600)
            self.assertNotRegex(tp.log_text(), warned)
            r = h.run_tidepool("--check", tp.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotRegex(r.stderr, warned)

            os.chmod(tp.auth_file, 0o644)
            tp.reload()
            h.wait_until(lambda: others.search(tp.log_text()), message="a warning after SIGHUP")
            os.chmod(tp.config_path, 0o604)  # its urls hold the backend password
            r = h.run_tidepool("--check", tp.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stderr, others)
            self.assertRegex(r.stderr, r"configuration file \S+ can be read by others \(mode 0604\)")
            with tp.raw(user="alice", password=USERS["alice"]) as c:  # a warning, not a refusal
                self.assertEqual(c.fetch("SELECT 1")[0][0], "1")

    def test_group_readable_owned_by_root_or_self(self):
        # As the .deb installs them: 0640, the group being the service's.
        with self.daemon() as tp:
            owner = os.stat(tp.auth_file).st_uid
            self.assertIn(owner, (0, os.geteuid()))
            os.chmod(tp.auth_file, 0o640)
            os.chmod(tp.config_path, 0o640)
            tp.reload()
            h.wait_until(lambda: "reloaded " in tp.log_text(), message="the reload")
            r = h.run_tidepool("--check", tp.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotRegex(r.stderr, r"can be (read|written)")
            # Written by the group is never fine.
            os.chmod(tp.auth_file, 0o660)
            r = h.run_tidepool("--check", tp.config_path)
            self.assertRegex(r.stderr, r"auth_file \S+ can be written by group \S+ \(mode 0660\), but it holds "
                                       r"passwords: chmod g-w it")
        self.assertNotRegex(tp.log_text(), r"can be (read|written)")

    def test_group_readable_owned_by_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give the file to another user")
        nobody = pwd.getpwnam("nobody")
        with self.daemon() as tp:
            for path in (tp.auth_file, tp.config_path):
                os.chown(path, nobody.pw_uid, -1)
                os.chmod(path, 0o640)
            r = h.run_tidepool("--check", tp.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            for what, path in (("auth_file", tp.auth_file), ("configuration file", tp.config_path)):
                self.assertIn(f"{what} {path} can be read by group ", r.stderr)
            self.assertRegex(r.stderr, r"\(mode 0640\) and is owned by nobody, neither root nor the user "
                                       r"tidepool runs as, but it holds passwords: chown root it \(or chmod g-r it\)")
            tp.reload()
            h.wait_until(lambda: "is owned by nobody" in tp.log_text(), message="a warning after SIGHUP")


if __name__ == "__main__":
    h.main()
