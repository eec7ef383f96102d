#!/usr/bin/python3
"""A column type change between executions of a prepared statement
(docs/transaction-pooling.md, "Prepared statements").

Directly on PostgreSQL, a statement prepared before `ALTER TABLE ... TYPE`
fails with 0A000 "cached plan must not change result type" at every later
execution, until the client prepares it again: only a reconnect helps a
driver that keeps the name. Through tidepool, an execution outside a
transaction whose Bind meets the stale plan is sent again after the
statement is prepared afresh, so the client sees no error; inside a
transaction the error shows once and the backend drops its stale statements
before it is lent again, so the next transaction works.
"""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg  # noqa: E402

import tpharness as h  # noqa: E402

QUERY = "SELECT * FROM shapes WHERE id = %s"


class PreparedSchemaChange(h.TestCase):
    def test_type_change_between_executions(self):
        with h.Cluster() as pg:
            pg.execute("CREATE TABLE shapes (id int PRIMARY KEY, v int)", dbname="inventorydb")
            pg.execute("INSERT INTO shapes VALUES (1, 10)", dbname="inventorydb")
            pg.execute("ALTER TABLE shapes OWNER TO app", dbname="inventorydb")
            with h.Tidepool(pg, pools={"inventorydb": {"url": pg.url("inventorydb"), "pool_size": 1,
                                                       "max_overflow": 0}}) as tp, \
                    contextlib.closing(psycopg.connect(tp.conninfo(), autocommit=True,
                                                       prepare_threshold=0)) as conn:
                self.assertEqual(conn.execute(QUERY, (1,)).fetchone(), (1, 10))
                self.assertEqual(conn.execute(QUERY, (1,)).fetchone(), (1, 10))
                pg.execute("ALTER TABLE shapes ALTER COLUMN v TYPE text", dbname="inventorydb")
                outcomes = []
                for _ in range(4):
                    try:
                        outcomes.append(conn.execute(QUERY, (1,)).fetchone())
                    except psycopg.Error as e:
                        outcomes.append(e.sqlstate)
                h.log(f"executions after the change: {outcomes}")
                # The first execution meets the stale plan: tidepool prepares the
                # statement again and resends the batch, so none fails.
                self.assertEqual(outcomes, [(1, "10")] * 4)
                conn.execute("BEGIN")
                pg.execute("ALTER TABLE shapes ALTER COLUMN v TYPE bigint USING v::bigint", dbname="inventorydb")
                # Inside a transaction nothing can be resent: the error shows
                # once, as on PostgreSQL, and the next transaction works.
                with self.assertRaises(psycopg.Error) as err:
                    conn.execute(QUERY, (1,))
                self.assertEqual(err.exception.sqlstate, "0A000")
                conn.execute("ROLLBACK")
                self.assertEqual(conn.execute(QUERY, (1,)).fetchone(), (1, 10))


if __name__ == "__main__":
    h.main()
