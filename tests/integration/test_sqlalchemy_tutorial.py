#!/usr/bin/python3
"""SQLAlchemy's tutorial ("Working with Transactions and the DBAPI") through
tidepool, with Debian's SQLAlchemy 1.4 and psycopg2.

One pool per pool_mode in MODES, all in front of the same database; each mode
runs the whole tutorial.
"""

import contextlib
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

# Add "transaction" once transaction pooling lands.
MODES = ["session", "transaction"]


class SQLAlchemyTutorial(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = h.Cluster().start()
        try:
            pools = {f"inventorydb_{mode}": {"url": cls.pg.url("inventorydb"), "pool_mode": mode}
                     for mode in MODES}
            cls.tp = h.Tidepool(cls.pg, pools=pools).start()
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

    def setUp(self):
        # Every mode uses the same database: start from no table.
        self.pg.execute("DROP TABLE IF EXISTS coordinates", dbname="inventorydb")

    def run_tutorial(self, mode):
        url = self.tp.url(f"inventorydb_{mode}")
        engine = create_engine(url, isolation_level="SERIALIZABLE", echo=True, future=True)
        try:
            with engine.connect() as conn:
                conn.execute(text("CREATE TABLE coordinates (x int, y int)"))
                conn.execute(
                    text("INSERT INTO coordinates (x, y) VALUES (:x, :y)"),
                    [{"x": 1, "y": 1}, {"x": 2, "y": 4}],
                )
                conn.commit()

            out = io.StringIO()
            with engine.connect() as conn:
                self.assertEqual(conn.execute(text("SHOW transaction_isolation")).scalar(),
                                 "serializable")
                result = conn.execute(text("SELECT x, y FROM coordinates ORDER BY x"))
                # echo=True logs to the stdout of engine creation; only the
                # tutorial's own print()s go to `out`.
                with contextlib.redirect_stdout(out):
                    for row in result:
                        print(f"x: {row.x} y: {row.y}")
            self.assertEqual(out.getvalue().splitlines(), ["x: 1 y: 1", "x: 2 y: 4"])

            # engine.begin(): commit at the end of the block, as in the tutorial.
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO coordinates (x, y) VALUES (:x, :y)"),
                    [{"x": 6, "y": 8}, {"x": 9, "y": 10}],
                )
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT x, y FROM coordinates WHERE y > :y ORDER BY x"),
                                    {"y": 2}).all()
                self.assertEqual([(r.x, r.y) for r in rows], [(2, 4), (6, 8), (9, 10)])

            # A rolled-back transaction leaves nothing behind.
            with engine.connect() as conn:
                conn.execute(text("INSERT INTO coordinates (x, y) VALUES (100, 100)"))
                conn.rollback()
        finally:
            engine.dispose()

        # The way the README tells applications to connect: tidepool pools, the
        # application does not.
        nullpool = create_engine(url, poolclass=NullPool, future=True)
        try:
            for _ in range(3):
                with nullpool.connect() as conn:
                    n = conn.execute(text("SELECT count(*) FROM coordinates")).scalar()
                    self.assertEqual(n, 4)
        finally:
            nullpool.dispose()


for _mode in MODES:
    setattr(SQLAlchemyTutorial, f"test_tutorial_{_mode}_mode",
            lambda self, mode=_mode: self.run_tutorial(mode))


if __name__ == "__main__":
    h.main()
