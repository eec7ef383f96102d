#!/usr/bin/python3
"""Client authentication methods (SPEC §3.1 auth_type): for scram-sha-256
(plaintext and SCRAM-verifier entries), md5 (plaintext and md5 entries),
password and trust, the right request is sent (AuthenticationSASL 10,
MD5 5, cleartext 3, none), the right password gets in, a wrong one gets
FATAL 28P01, and so does a user missing from auth_file; peer (Unix socket
only) compares the peer's OS user with the user name and is refused on TCP.
"""

import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

SCRAM, MD5, CLEARTEXT = 10, 5, 3


class AuthMethods(h.ClusterTestCase):
    def daemon(self, auth_type, users):
        return h.Tidepool(self.pg, pools={"inventorydb": {"url": self.pg.url("inventorydb")}},
                          settings={"auth_type": auth_type}, users=users)

    def login(self, tp, user, password, unix=False):
        with tp.raw(user=user, password=password, unix=unix) as c:
            methods = list(c.auth_methods)
            self.assertEqual(c.fetch("SELECT 1")[0][0], "1")
            return methods

    def refused(self, tp, user, password, sqlstate="28P01", unix=False):
        with self.assertRaises(h.PgError) as e:
            with tp.raw(user=user, password=password, unix=unix):
                pass
        self.assertEqual(e.exception.sqlstate, sqlstate, e.exception.message)
        self.assertEqual(e.exception.severity, "FATAL")
        return e.exception.message

    def test_scram(self):
        users = {"plain": "pw1", "verifier": h.scram_verifier("pw2")}
        with self.daemon("scram-sha-256", users) as tp:
            self.assertEqual(self.login(tp, "plain", "pw1")[0], SCRAM)
            self.assertEqual(self.login(tp, "verifier", "pw2")[0], SCRAM)
            self.refused(tp, "plain", "nope")
            self.refused(tp, "verifier", "nope")
            msg = self.refused(tp, "ghost", "pw1")
            self.assertIn("password authentication failed", msg)
            log = tp.log_text()
            for secret in ("pw1", "pw2", "nope"):
                self.assertNotIn(f"\"{secret}\"", log)

    def test_md5(self):
        users = {"plain": "pw1", "hashed": h.md5_secret("hashed", "pw2")}
        with self.daemon("md5", users) as tp:
            self.assertEqual(self.login(tp, "plain", "pw1")[0], MD5)
            self.assertEqual(self.login(tp, "hashed", "pw2")[0], MD5)
            self.refused(tp, "plain", "nope")
            self.refused(tp, "ghost", "pw1")

    def test_password(self):
        with self.daemon("password", {"plain": "pw1"}) as tp:
            self.assertEqual(self.login(tp, "plain", "pw1")[0], CLEARTEXT)
            self.refused(tp, "plain", "nope")

    def test_trust(self):
        with self.daemon("trust", {"plain": "pw1"}) as tp:
            self.assertEqual(self.login(tp, "anyone", None), [0])

    def test_peer(self):
        me = pwd.getpwuid(os.getuid()).pw_name
        with self.daemon("peer", {}) as tp:
            self.assertEqual(self.login(tp, me, None, unix=True), [0])
            self.refused(tp, "someone_else", None, unix=True)
            self.refused(tp, me, None, sqlstate="28000")  # TCP: no peer credentials


if __name__ == "__main__":
    h.main()
