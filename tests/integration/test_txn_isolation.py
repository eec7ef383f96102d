#!/usr/bin/python3
"""Transaction mode: a pool's isolation_level, read_only and deferrable
(SPEC §3.2, §4 "Isolation level").

Several pools on the same database, each with its own transaction defaults:
every backend of a pool runs with them, so `SHOW transaction_isolation`
reports the pool's level for single statements and plain BEGIN; a client's
`BEGIN ISOLATION LEVEL ...` still overrides it for that transaction; a
read_only pool refuses writes with 25006; a client's RESET ALL does not lose
the pool's defaults. And SQLAlchemy 1.4 (future=True, psycopg2) choosing its
own isolation level through a transaction-mode pool gets it.
"""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

import psycopg  # noqa: E402
import psycopg2  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

POOL_LEVELS = {
    "inventorydb_serializable": "serializable",
    "inventorydb_rc": "read committed",
    "inventorydb_rr": "repeatable read",
}


class IsolationLevels(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            pg = cls.pg
            pg.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)", dbname="inventorydb")
            pg.execute(f"ALTER TABLE items OWNER TO {h.APP_USER}", dbname="inventorydb")
            url = pg.url("inventorydb")
            small = {"url": url, "pool_size": 2, "max_overflow": 3, "pool_timeout": 10}
            cls.tp = h.Tidepool(pg, pools={
                "inventorydb_serializable": {**small, "isolation_level": "SERIALIZABLE"},
                "inventorydb_rc": {**small, "isolation_level": "READ COMMITTED"},
                "inventorydb_rr": {**small, "isolation_level": "REPEATABLE READ"},
                "inventorydb_ro": {**small, "read_only": True},
                "inventorydb_deferrable": {**small, "isolation_level": "SERIALIZABLE",
                                           "read_only": True, "deferrable": True},
                "inventorydb_plain": dict(small),
            }).start()
        except BaseException:
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tp.stop()
            cls.tp.check()
        finally:
            cls.pg.stop()

    def connect(self, dbname, autocommit=True, **kw):
        return contextlib.closing(self.tp.connect(dbname=dbname, autocommit=autocommit, **kw))

    def show(self, cur, name="transaction_isolation"):
        cur.execute(f"SHOW {name}")
        return cur.fetchone()[0]

    # -- the pool's level --

    def test_show_transaction_isolation_single_statement(self):
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool), self.connect(pool) as conn, conn.cursor() as cur:
                self.assertEqual(self.show(cur), level)
                self.assertEqual(self.show(cur, "default_transaction_isolation"), level)
                cur.execute("SELECT current_setting('transaction_isolation')")
                self.assertEqual(cur.fetchone()[0], level)

    def test_plain_begin_gets_the_pool_level(self):
        for pool, level in POOL_LEVELS.items():
            # psycopg2 without autocommit: its own BEGIN before the first statement.
            with self.subTest(pool=pool), self.connect(pool, autocommit=False) as conn:
                with conn.cursor() as cur:
                    self.assertEqual(self.show(cur), level)
                    cur.execute("SELECT count(*) FROM items")
                    self.assertEqual(self.show(cur), level)
                conn.commit()

    def test_server_default_without_isolation_level(self):
        default = self.pg.execute("SHOW default_transaction_isolation", dbname="inventorydb")[0][0]
        with self.connect("inventorydb_plain") as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur), default)

    def test_every_backend_of_the_pool_has_the_level(self):
        # Five clients inside a transaction at once: five backends (pool_size 2
        # + overflow 3), every one with the pool's level.
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool), contextlib.ExitStack() as stack:
                curs = []
                for _ in range(5):
                    conn = stack.enter_context(self.connect(pool))
                    cur = stack.enter_context(conn.cursor())
                    cur.execute("BEGIN")
                    curs.append(cur)
                pids, levels = set(), set()
                for cur in curs:
                    cur.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation')")
                    pid, lvl = cur.fetchone()
                    pids.add(pid)
                    levels.add(lvl)
                for cur in curs:
                    cur.execute("COMMIT")
                self.assertEqual(len(pids), 5, "five open transactions did not get five backends")
                self.assertEqual(levels, {level})

    def test_begin_isolation_level_overrides(self):
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool), self.connect(pool) as conn, conn.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                self.assertEqual(self.show(cur), "repeatable read")
                cur.execute("COMMIT")
                self.assertEqual(self.show(cur), level, "the override outlived its transaction")
                cur.execute("BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED")
                self.assertEqual(self.show(cur), "read committed")
                cur.execute("ROLLBACK")
                cur.execute("START TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                self.assertEqual(self.show(cur), "serializable")
                cur.execute("COMMIT")
                self.assertEqual(self.show(cur), level)
                # SET TRANSACTION inside a transaction is the transaction's only.
                cur.execute("BEGIN")
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                self.assertEqual(self.show(cur), "repeatable read")
                cur.execute("COMMIT")
                self.assertEqual(self.show(cur), level)

    def test_multi_statement_query_override(self):
        with self.connect("inventorydb_serializable") as conn, conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL READ COMMITTED; SHOW transaction_isolation")
            self.assertEqual(cur.fetchone()[0], "read committed")
            cur.execute("COMMIT; SHOW transaction_isolation")
            self.assertEqual(cur.fetchone()[0], "serializable")

    def test_serializable_conflict_detected(self):
        # The level is really in force: a write skew is refused with 40001.
        self.pg.execute("CREATE TABLE IF NOT EXISTS oncall (name text PRIMARY KEY, on_duty bool)",
                        dbname="inventorydb")
        self.pg.execute(f"ALTER TABLE oncall OWNER TO {h.APP_USER}", dbname="inventorydb")
        self.pg.execute("TRUNCATE oncall; INSERT INTO oncall VALUES ('alice', true), ('bob', true)",
                        dbname="inventorydb")
        with self.connect("inventorydb_serializable") as c1, self.connect("inventorydb_serializable") as c2, \
                c1.cursor() as k1, c2.cursor() as k2:
            k1.execute("BEGIN")
            k2.execute("BEGIN")
            k1.execute("SELECT count(*) FROM oncall WHERE on_duty")
            k2.execute("SELECT count(*) FROM oncall WHERE on_duty")
            k1.execute("UPDATE oncall SET on_duty = false WHERE name = 'alice'")
            k2.execute("UPDATE oncall SET on_duty = false WHERE name = 'bob'")
            k1.execute("COMMIT")
            with self.assertRaises(psycopg2.Error) as cm:
                k2.execute("COMMIT")
            self.assertEqual(cm.exception.pgcode, "40001")
            k2.execute("SELECT 1")  # usable after the serialization failure

    # -- read_only, deferrable --

    def test_read_only_pool_refuses_writes(self):
        with self.connect("inventorydb_ro") as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur, "transaction_read_only"), "on")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("INSERT INTO items (name) VALUES ('nope')")
            self.assertEqual(cm.exception.pgcode, "25006")
            cur.execute("SELECT count(*) FROM items WHERE name = 'nope'")
            self.assertEqual(cur.fetchone()[0], 0)
            # Inside a plain BEGIN too.
            cur.execute("BEGIN")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("UPDATE items SET name = 'x'")
            self.assertEqual(cm.exception.pgcode, "25006")
            cur.execute("ROLLBACK")
            # A client may still ask for a read-write transaction explicitly.
            cur.execute("BEGIN READ WRITE")
            cur.execute("INSERT INTO items (name) VALUES ('explicit rw') RETURNING id")
            cur.execute("ROLLBACK")

    def test_read_only_pool_extended_protocol(self):
        with psycopg.connect(self.tp.conninfo(dbname="inventorydb_ro"), autocommit=True,
                             prepare_threshold=None, connect_timeout=10) as conn:
            with self.assertRaises(psycopg.Error) as cm:
                conn.execute("INSERT INTO items (name) VALUES (%s)", ("nope",))
            self.assertEqual(cm.exception.sqlstate, "25006")
            self.assertEqual(conn.execute("SELECT %s::int", (1,)).fetchone(), (1,))

    def test_other_pools_are_read_write(self):
        with self.connect("inventorydb_rc") as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur, "transaction_read_only"), "off")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO items (name) VALUES ('rw') RETURNING id")
            cur.execute("ROLLBACK")

    def test_deferrable_pool(self):
        with self.connect("inventorydb_deferrable") as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur, "transaction_deferrable"), "on")
            self.assertEqual(self.show(cur, "transaction_read_only"), "on")
            self.assertEqual(self.show(cur), "serializable")
        with self.connect("inventorydb_serializable") as conn, conn.cursor() as cur:
            self.assertEqual(self.show(cur, "transaction_deferrable"), "off")

    # -- RESET ALL from a client --

    def test_reset_all_keeps_the_pool_defaults(self):
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool), self.connect(pool) as conn, conn.cursor() as cur:
                cur.execute("RESET ALL")
                self.assertEqual(self.show(cur), level)
                cur.execute("RESET ALL; SHOW transaction_isolation")
                self.assertEqual(cur.fetchone()[0], level)
                cur.execute("RESET default_transaction_isolation; SHOW transaction_isolation")
                self.assertEqual(cur.fetchone()[0], level)
        with self.connect("inventorydb_ro") as conn, conn.cursor() as cur:
            cur.execute("RESET ALL")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("INSERT INTO items (name) VALUES ('after reset')")
            self.assertEqual(cm.exception.pgcode, "25006")
        # And for the next client of the same backends.
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool, client="next"), self.connect(pool) as conn, conn.cursor() as cur:
                self.assertEqual(self.show(cur), level)

    # -- SQLAlchemy 1.4 --

    def engine(self, pool, **kw):
        return create_engine(self.tp.url(pool), poolclass=NullPool, future=True, **kw)

    def test_sqlalchemy_engine_isolation_level(self):
        # The engine's level wins over the pool's default (psycopg2 sends
        # BEGIN ISOLATION LEVEL ...), whichever pool it goes through.
        for pool in ("inventorydb_rc", "inventorydb_serializable", "inventorydb_plain"):
            with self.subTest(pool=pool):
                engine = self.engine(pool, isolation_level="SERIALIZABLE")
                try:
                    with engine.connect() as conn:
                        self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                         "serializable")
                        conn.execute(text("SELECT count(*) FROM items")).scalar()
                        conn.commit()
                        self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                         "serializable")
                        conn.rollback()
                    with engine.begin() as conn:
                        self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                         "serializable")
                finally:
                    engine.dispose()

    def test_sqlalchemy_execution_options_isolation_level(self):
        engine = self.engine("inventorydb_serializable", isolation_level="SERIALIZABLE")
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
                self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                 "read committed")
                conn.commit()
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                 "repeatable read")
                conn.commit()
            # A new connection is back to the engine's level.
            with engine.connect() as conn:
                self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(), "serializable")
        finally:
            engine.dispose()
        # No engine level: the pool's level.
        for pool, level in POOL_LEVELS.items():
            with self.subTest(pool=pool):
                engine = self.engine(pool)
                try:
                    with engine.connect() as conn:
                        self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(), level)
                        self.assertEqual(conn.get_isolation_level().lower().replace("_", " "), level)
                    with engine.connect() as conn:
                        conn = conn.execution_options(isolation_level="READ COMMITTED")
                        self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                         "read committed")
                        conn.rollback()
                finally:
                    engine.dispose()

    def test_sqlalchemy_autocommit_through_the_pool(self):
        # AUTOCOMMIT is the client's choice: single statements get the pool level.
        engine = self.engine("inventorydb_serializable", isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(), "serializable")
                conn.execute(text("INSERT INTO items (name) VALUES ('autocommitted')"))
            self.assertEqual(self.pg.execute("SELECT count(*) FROM items WHERE name = 'autocommitted'",
                                             dbname="inventorydb")[0][0], 1)
        finally:
            engine.dispose()


if __name__ == "__main__":
    h.main()
