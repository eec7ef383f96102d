#!/usr/bin/env python3
"""make_corpus.py: write the seed inputs of the fuzz targets (tests/fuzz).

    tests/fuzz/make_corpus.py [CORPUS_DIR]     (default: tests/fuzz/corpus)

Also writes the inputs of regress/ (next to CORPUS_DIR): inputs of fixed
bugs that are too big or too slow to fuzz from, run once by CTest.

Each seed is corpus/<target>/seed-<name>, written from the protocol
documentation's message formats; running it again rewrites the same files.
Inputs the fuzzers found and that were merged in (named by their SHA-1, see
docs/fuzzing.md) are left alone. Each input's layout is described at the top
of its target's .c file.
"""
import base64
import hashlib
import hmac
import os
import struct
import sys

# ---- wire format ----


def msg(t, body=b""):
    return t.encode() + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, code=196608):
    body = struct.pack("!I", code) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


def cancel(pid, key):
    return struct.pack("!IIII", 16, 80877102, pid, key)


def query(sql):
    return msg("Q", cstr(sql))


def parse(stmt, sql, types=()):
    return msg("P", cstr(stmt) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=(), formats=(), result_formats=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", len(formats))
    body += b"".join(struct.pack("!H", f) for f in formats)
    body += struct.pack("!H", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!I", len(p)) + p
    body += struct.pack("!H", len(result_formats)) + b"".join(struct.pack("!H", f) for f in result_formats)
    return msg("B", body)


def describe(kind, name):
    return msg("D", kind.encode() + cstr(name))


def close(kind, name):
    return msg("C", kind.encode() + cstr(name))


def execute(portal, max_rows=0):
    return msg("E", cstr(portal) + struct.pack("!I", max_rows))


SYNC = msg("S")
FLUSH = msg("H")
TERMINATE = msg("X")


def error(fields, t="E"):
    return msg(t, b"".join(k.encode() + cstr(v) for k, v in fields) + b"\0")


def param_status(name, value):
    return msg("S", cstr(name) + cstr(value))


def data_row(values):
    body = struct.pack("!H", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!I", len(v)) + v
    return msg("D", body)


def row_description(names):
    body = struct.pack("!H", len(names))
    for n in names:
        body += cstr(n) + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0)
    return msg("T", body)


def sasl_initial(mech, data):
    return msg("p", cstr(mech) + (struct.pack("!i", -1) if data is None else struct.pack("!I", len(data)) + data))


def sasl_response(data):
    return msg("p", data)


def password(pw):
    return msg("p", cstr(pw))


def md5_answer(user, pw, salt):
    inner = hashlib.md5(pw.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


# ---- SCRAM-SHA-256 (RFC 7677 vector, as tests/unit/test_auth.c) ----

RFC_CNONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SNONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def scram_final(password_, cnonce, snonce, salt, iterations, cbind="biws", user="user"):
    """The client-final-message for a client-first "n,,n=user,r=cnonce"."""
    first_bare = f"n={user},r={cnonce}"
    server_first = f"r={cnonce}{snonce},s={base64.b64encode(salt).decode()},i={iterations}"
    final_bare = f"c={cbind},r={cnonce}{snonce}"
    salted = hashlib.pbkdf2_hmac("sha256", password_.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    auth_msg = ",".join([first_bare, server_first, final_bare]).encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return f"{final_bare},p={base64.b64encode(proof).decode()}"


# ---- the seeds of each target ----


def codec_seeds():
    """fuzz_codec: byte 0 = chunk size, byte 1 = name buffer size, then bytes."""
    sql = [
        "SELECT 1",
        "SET search_path TO app, public",
        "SET SESSION statement_timeout = '5s'",
        "set local work_mem = 64",
        "SET TimeZone = 'Europe/Paris'",
        "RESET search_path",
        "SET default_transaction_isolation TO DEFAULT",
        "RESET ALL",
        "DEALLOCATE PREPARE \"S_1\"",
        "deallocate all",
        "DISCARD ALL",
        "DISCARD TEMP",
        "LISTEN chan; UNLISTEN *",
        "SELECT pg_advisory_lock(1); SELECT pg_advisory_unlock_all()",
        "SELECT pg_try_advisory_xact_lock(2)",
        "CREATE TEMP TABLE t (a int)",
        "create temporary view v as select 1",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1; CLOSE ALL",
        "PREPARE p AS SELECT $1",
        "SELECT set_config('a.b', 'c', false)",
        "LOAD 'auto_explain'",
        "/* SET x = 1 */ SELECT 'SET y = 2' -- RESET z\n; SELECT $$SET$$, $tag$ LISTEN $tag$, E'\\'', \"SET\"",
        "BEGIN; SET LOCAL x = 1; COMMIT",
        "SET x = 'unterminated",
        "SET a.b TO \"quoted\"",
    ]
    seeds = {}
    for i, s in enumerate(sql):
        seeds[f"sql-{i:02d}"] = bytes([5, 64]) + s.encode()
        seeds[f"query-{i:02d}"] = bytes([3, 32]) + query(s)
    seeds["startup"] = bytes([1, 10]) + startup([("user", "alice"), ("database", "app"),
                                                  ("application_name", "psql"),
                                                  ("options", "-c search_path=x --work_mem=64MB"),
                                                  ("user", "bob")])
    seeds["startup-3.2"] = bytes([7, 10]) + startup([("user", "u"), ("_pq_.x", "1")], code=(3 << 16) | 2)
    seeds["startup-2.0"] = bytes([7, 10]) + startup([("user", "u")], code=2 << 16)
    seeds["startup-nouser"] = bytes([7, 10]) + startup([("database", "d")])
    seeds["startup-short"] = bytes([1, 10]) + startup([("user", "alice")])[:-3]
    seeds["startup-huge"] = bytes([1, 10]) + struct.pack("!II", 20000, 196608)
    seeds["ssl"] = bytes([1, 1]) + SSL_REQUEST
    seeds["ssl-bad-length"] = bytes([1, 1]) + struct.pack("!IIII", 16, 80877103, 0, 0)
    seeds["gssenc"] = bytes([1, 1]) + GSSENC_REQUEST
    seeds["cancel"] = bytes([1, 1]) + cancel(1234, 0xDEADBEEF)
    seeds["extended"] = bytes([4, 16]) + (parse("S_1", "SELECT $1::int", [23]) + bind("", "S_1", [b"42", None], [0], [1])
                                         + describe("P", "") + execute("", 0) + close("S", "S_1") + SYNC + FLUSH)
    seeds["copy"] = bytes([9, 16]) + (query("COPY t FROM STDIN") + msg("d", b"1\t2\n") + msg("d", b"3\t4\n") + msg("c")
                                     + msg("f", cstr("aborted")))
    seeds["backend"] = bytes([11, 40]) + (
        msg("R", struct.pack("!I", 10) + cstr("SCRAM-SHA-256") + b"\0")
        + param_status("server_version", "16.1") + msg("K", struct.pack("!II", 42, 99))
        + row_description(["a", "b"]) + data_row([b"1", None, b""]) + msg("C", cstr("SELECT 1"))
        + msg("Z", b"I") + error([("S", "ERROR"), ("V", "ERROR"), ("C", "42P01"),
                                  ("M", "relation \"t\" does not exist"), ("D", "detail"), ("H", "hint"),
                                  ("P", "15"), ("F", "parse_relation.c")])
        + error([("S", "NOTICE"), ("C", "00000"), ("M", "hello")], t="N"))
    seeds["sasl-initial"] = bytes([2, 8]) + sasl_initial("SCRAM-SHA-256", b"n,,n=,r=" + RFC_CNONCE.encode())
    seeds["sasl-initial-nodata"] = bytes([2, 8]) + sasl_initial("SCRAM-SHA-256", None)
    seeds["password"] = bytes([2, 8]) + password("md5" + "0" * 32)
    seeds["length-2g"] = bytes([1, 8]) + b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"SELECT"
    seeds["length-negative"] = bytes([1, 8]) + b"Q" + struct.pack("!I", 0xFFFFFFF0)
    seeds["length-3"] = bytes([1, 8]) + b"Q" + struct.pack("!I", 3)
    seeds["truncated"] = bytes([2, 8]) + query("SELECT 1")[:-4]
    seeds["close-bad-kind"] = bytes([2, 8]) + msg("C", b"X" + cstr("n"))
    return seeds


def config_seeds(root):
    """fuzz_config: the text of an INI file, a url, or an auth_file."""
    seeds = {}
    with open(os.path.join(root, "config", "tidepool.ini.example"), "rb") as f:
        seeds["example-ini"] = f.read()
    seeds["small-ini"] = (b"[tidepool]\nlisten_addr = 127.0.0.1, ::1\nlisten_port = 6432\n"
                          b"unix_socket_dir = /tmp\nunix_socket_mode = 0770\nauth_type = md5\n"
                          b"auth_file = /etc/tidepool/users.txt\nadmin_users = a, b\nlog_level = debug\n"
                          b"pool_size = 5\n; comment\n# comment\n"
                          b"[pool.app]\nurl = postgresql+psycopg2://u:p@localhost:5432/app?sslmode=require\n"
                          b"pool_mode = session\nmax_overflow = -1\npool_timeout = 2.5\npool_recycle = -1\n"
                          b"pool_pre_ping = yes\npool_use_lifo = on\npool_reset_on_return = commit\n"
                          b"isolation_level = REPEATABLE READ\nread_only = true\ndeferrable = 1\n"
                          b"on_connect = SET x = 1\necho = debug\necho_pool = true\npool_logging_name = x\n"
                          b"max_prepared_statements = 0\n"
                          b"[pool.other]\nurl = host=/tmp port=5432 dbname=x\n")
    seeds["bad-ini"] = (b"[tidepool\nnokey\n= value\nlisten_port = 99999\npool_size = -3\nunknown = 1\n"
                        b"[pool.]\n[pool.a]\n[pool.a]\nurl = mysql://x\npool_timeout = nan\n"
                        b"max_client_conn = 0x10\nauth_type = kerberos\n")
    seeds["url-uri"] = b"postgres://user:pa%20ss@[::1]:5433,host2/db?application_name=x&sslmode=disable"
    seeds["url-keywords"] = b"host=a,b port=5432,5433 target_session_attrs=read-write dbname='x y' password='it''s'"
    seeds["auth-file"] = (b'"alice" "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$'
                          b'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="\n'
                          b'"bob" "md521f3163f8f86fa10bdefbfbd502a8f06"\n; comment\n# comment\n\n'
                          b'"ca""rol" "sec ""ret"""\n"dave" ""\n')
    seeds["auth-file-bad"] = b'"alice" "x"\n"bob\n"carol" x\n"dave" "y" trailing\n'
    return seeds


def auth_seeds():
    """fuzz_auth: byte 0 = secret (0 verifier, 1 no user, 2 md5), then
    client-first NUL client-final."""
    first = f"n,,n=user,r={RFC_CNONCE}".encode()
    final = scram_final("pencil", RFC_CNONCE, RFC_SNONCE, RFC_SALT, 4096).encode()
    seeds = {
        "rfc7677": bytes([0]) + first + b"\0" + final,
        "rfc7677-nouser": bytes([1]) + first + b"\0" + final,
        "md5-secret": bytes([2]) + first + b"\0" + final,
        "wrong-proof": bytes([0]) + first + b"\0" + final[:-6] + b"AAAAA=",
        "cbind-y": bytes([0]) + f"y,,n=user,r={RFC_CNONCE}".encode() + b"\0" +
        scram_final("pencil", RFC_CNONCE, RFC_SNONCE, RFC_SALT, 4096, cbind="eSws").encode(),
        "cbind-p": bytes([0]) + f"p=tls-server-end-point,,n=user,r={RFC_CNONCE}".encode() + b"\0c=cD10bHM=",
        "authzid": bytes([0]) + f"n,a=admin,n=user,r={RFC_CNONCE}".encode(),
        "extension": bytes([0]) + f"n,,m=ext,n=user,r={RFC_CNONCE}".encode(),
        "ext-final": bytes([0]) + first + b"\0" + final.replace(b",p=", b",x=ext,p="),
        "bad-nonce": bytes([0]) + first + b"\0c=biws,r=other,p=AAAA",
        "bad-base64": bytes([0]) + first + b"\0c=b!ws,r=" + (RFC_CNONCE + RFC_SNONCE).encode() + b",p=@@@@",
        "md5-answer": bytes([2]) + md5_answer("user", "pencil", bytes([1, 2, 3, 4])).encode(),
        "password": bytes([1]) + b"pencil",
    }
    return seeds


def client_seeds():
    """fuzz_client: byte 0 = auth_type (bits 0-2) and chunk size (bits 3-5),
    then what the client sends."""
    SCRAM, MD5, PASSWORD, TRUST, PEER = 0, 1, 2, 3, 4

    def mode(auth, chunk=5):
        return bytes([auth | chunk << 3])

    app = startup([("user", "carol"), ("database", "app"), ("application_name", "fuzz"),
                   ("options", "-c search_path=a\\ b --statement-timeout=5s")])
    seeds = {}
    seeds["trust-query"] = mode(TRUST) + app + query("SELECT 1") + query("SET x = 1") + TERMINATE
    seeds["trust-extended"] = mode(TRUST) + app + parse("S_1", "SELECT $1", [23]) + SYNC + SYNC + \
        parse("", "SELECT 1") + bind("", "") + describe("P", "") + execute("") + SYNC + TERMINATE
    seeds["trust-copy"] = mode(TRUST, 0) + app + query("COPY t FROM STDIN") + msg("d", b"1\n") + msg("c") + SYNC
    seeds["trust-session"] = mode(TRUST, 3) + startup([("user", "carol"), ("database", "sess")]) + query("SELECT 1")
    seeds["trust-echo"] = mode(TRUST) + startup([("user", "carol"), ("database", "echo")]) + \
        parse("a", "SELECT 1") + SYNC + parse("b", "SELECT 2") + SYNC + parse("c", "SELECT 3") + SYNC + \
        query("DEALLOCATE a") + close("S", "b") + SYNC
    seeds["trust-nodb"] = mode(TRUST) + startup([("user", "carol"), ("database", "nope")])
    seeds["trust-replication"] = mode(TRUST) + startup([("user", "carol"), ("replication", "database")])
    seeds["trust-bad-options"] = mode(TRUST) + startup([("user", "carol"), ("options", "-x y")])
    seeds["admin"] = mode(TRUST) + startup([("user", "carol"), ("database", "tidepool")]) + \
        query("SHOW POOLS") + query("SHOW CLIENTS") + query("show servers;") + query("SHOW STATS") + \
        parse("", "SHOW POOLS") + SYNC + query("") + TERMINATE
    seeds["admin-denied"] = mode(TRUST) + startup([("user", "alice"), ("database", "tidepool")])
    seeds["ssl-then-startup"] = mode(TRUST, 0) + SSL_REQUEST + app + query("SELECT 1")
    seeds["gssenc-then-ssl"] = mode(TRUST, 1) + GSSENC_REQUEST + SSL_REQUEST + app
    seeds["ssl-with-hello"] = mode(TRUST, 4) + SSL_REQUEST + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    seeds["cancel"] = mode(TRUST) + cancel(1, 2)
    seeds["startup-2.0"] = mode(TRUST) + startup([("user", "carol")], code=2 << 16)
    seeds["startup-huge"] = mode(TRUST, 0) + struct.pack("!II", 10001, 196608)
    seeds["startup-truncated"] = mode(TRUST, 0) + app[:-5]
    seeds["length-2g"] = mode(TRUST) + app + b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"SELECT"
    seeds["length-3"] = mode(TRUST) + app + b"Q" + struct.pack("!I", 3)
    # A Parse announcing ~1 GB in transaction mode: used to reserve it all at once.
    seeds["parse-1g-header"] = mode(TRUST) + app + b"P" + struct.pack("!I", 0x3FFFFF00) + b"s\0SELECT "
    seeds["scram"] = mode(SCRAM) + startup([("user", "alice"), ("database", "app")]) + \
        sasl_initial("SCRAM-SHA-256", f"n,,n=,r={RFC_CNONCE}".encode()) + \
        sasl_response(f"c=biws,r={RFC_CNONCE}xxxx,p=AAAA".encode())
    seeds["scram-nouser"] = mode(SCRAM) + startup([("user", "mallory")]) + \
        sasl_initial("SCRAM-SHA-256", f"n,,n=,r={RFC_CNONCE}".encode())
    seeds["scram-bad-mech"] = mode(SCRAM) + startup([("user", "alice")]) + sasl_initial("PLAIN", b"x")
    seeds["scram-nodata"] = mode(SCRAM) + startup([("user", "alice")]) + sasl_initial("SCRAM-SHA-256", None)
    seeds["scram-md5-user"] = mode(SCRAM) + startup([("user", "bob")]) + password("md5" + "0" * 32)
    seeds["md5"] = mode(MD5) + startup([("user", "bob"), ("database", "app")]) + password("md5" + "1" * 32)
    seeds["md5-not-p"] = mode(MD5) + startup([("user", "bob")]) + query("SELECT 1")
    seeds["password-ok"] = mode(PASSWORD) + startup([("user", "carol"), ("database", "app")]) + \
        password("secret") + query("SELECT 1") + SYNC + TERMINATE
    seeds["password-wrong"] = mode(PASSWORD) + startup([("user", "carol")]) + password("guess")
    seeds["password-huge"] = mode(PASSWORD, 0) + startup([("user", "carol")]) + b"p" + struct.pack("!I", 20000)
    seeds["peer-root"] = mode(PEER) + startup([("user", "root"), ("database", "app")]) + query("SELECT 1")
    seeds["peer-other"] = mode(PEER) + startup([("user", "carol")])
    seeds["pipeline"] = mode(TRUST, 2) + app + b"".join(query(f"SELECT {i}") for i in range(20)) + \
        b"".join(parse("", "SELECT 1") + bind("", "") + execute("") for _ in range(5)) + SYNC
    return seeds


def client_regress():
    """Inputs of fixed bugs, too slow to fuzz from (regress/fuzz_client)."""
    # 3000 pipelined Queries whose checkouts fail at once (the server's Unix
    # socket is missing): each error used to process the next message one
    # stack frame deeper, until the stack overflowed.
    app = startup([("user", "carol"), ("database", "down")])
    return {"stack-overflow-failed-checkouts": bytes([3 | 7 << 3]) + app + query("") * 3000}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    targets = {
        "fuzz_codec": codec_seeds(),
        "fuzz_config": config_seeds(root),
        "fuzz_auth": auth_seeds(),
        "fuzz_client": client_seeds(),
    }
    for target, seeds in targets.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds in {d}")
    d = os.path.join(os.path.dirname(out), "regress", "fuzz_client")
    os.makedirs(d, exist_ok=True)
    for name, data in client_regress().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
