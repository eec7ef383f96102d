#!/usr/bin/python3
"""max_client_prepared_statements: how many named prepared statements one
client may have tidepool remember in transaction mode
(docs/transaction-pooling.md, "Prepared statements").

A Parse of a new name past the limit gets ERROR 53400 for that client alone;
what follows it is skipped up to the Sync, as after any error, and the
connection stays usable: once the client closes a statement it may prepare
another. Re-parsing a name it has and unnamed statements are not counted,
nor are other clients. Inside a transaction the refusal aborts it on the
backend too, as PostgreSQL's own errors do, so what the client is told and
what the backend did agree.
"""

import asyncio
import contextlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import asyncpg  # noqa: E402
import psycopg  # noqa: E402

import tpharness as h  # noqa: E402

LIMIT = 5
REFUSAL = f"too many prepared statements for this client (max_client_prepared_statements = {LIMIT})"


def types(msgs):
    return [t.decode() for t, _ in msgs]


def error_of(msgs):
    errors = [h._fields(body) for t, body in msgs if t == b"E"]
    return errors[0] if errors else None


def prepare(c, name, sql="SELECT 1"):
    """Parse + Sync: the messages answering them."""
    c.parse(name, sql)
    c.sync()
    return c.read_until_ready()


def run(c, name, params=()):
    """Bind + Execute + Sync of a named statement: its rows (PgError on error)."""
    c.bind("", name, params)
    c.execute()
    c.sync()
    return h.RawConnection.results(c.read_until_ready())[-1].rows


def fill(test, c, prefix="s"):
    """Prepare LIMIT statements s0..s4, each returning its number."""
    for i in range(LIMIT):
        test.assertEqual(types(prepare(c, f"{prefix}{i}", f"SELECT {i}")), ["1", "Z"])


def assert_refused(test, msgs, status):
    err = error_of(msgs)
    test.assertIsNotNone(err, f"no error in {types(msgs)}")
    test.assertEqual(err["C"], "53400")
    test.assertEqual(err["S"], "ERROR")
    test.assertEqual(err["M"], REFUSAL)
    test.assertEqual(types(msgs)[-1], "Z")
    test.assertEqual(msgs[-1][1][:1].decode(), status)


class PreparedLimit(h.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        cls.pg = cls.stack.enter_context(h.Cluster())
        cls.pg.execute("CREATE TABLE limit_rows (v int)", dbname="inventorydb")
        cls.pg.execute("ALTER TABLE limit_rows OWNER TO app", dbname="inventorydb")
        cls.tp = cls.stack.enter_context(h.Tidepool(cls.pg, pools={"inventorydb": {
            "pool_size": 2, "max_overflow": 0, "max_client_prepared_statements": LIMIT}}))

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def test_new_name_past_the_limit_outside_a_transaction(self):
        with self.tp.raw() as c:
            fill(self, c)
            # Parse + Sync (answered without a backend).
            assert_refused(self, prepare(c, "s5", "SELECT 5"), "I")
            # Parse + Bind + Execute + Sync: all of it skipped up to the Sync.
            c.parse("s5", "SELECT 5")
            c.bind("", "s5")
            c.execute()
            c.sync()
            msgs = c.read_until_ready()
            assert_refused(self, msgs, "I")
            self.assertEqual(types(msgs), ["E", "Z"])
            # The five still run; a name it has may be parsed again, the
            # unnamed statement is not counted.
            for i in range(LIMIT):
                self.assertEqual(run(c, f"s{i}"), [(str(i),)])
            self.assertEqual(types(prepare(c, "s0", "SELECT 'again'")), ["1", "Z"])
            self.assertEqual(run(c, "s0"), [("again",)])
            self.assertEqual(c.prepared("SELECT 'unnamed'").rows, [("unnamed",)])
            # Closing one makes room for one.
            c.close_statement("s1")
            c.sync()
            self.assertEqual(types(c.read_until_ready()), ["3", "Z"])
            self.assertEqual(types(prepare(c, "s5", "SELECT 5")), ["1", "Z"])
            self.assertEqual(run(c, "s5"), [("5",)])
            assert_refused(self, prepare(c, "s6", "SELECT 6"), "I")
            # So does SQL DEALLOCATE of one of them.
            self.assertEqual(c.query("DEALLOCATE s2")[0].tag, "DEALLOCATE")
            self.assertEqual(types(prepare(c, "s6", "SELECT 6")), ["1", "Z"])
            self.assertEqual(run(c, "s6"), [("6",)])
            self.assertEqual(c.fetch("SELECT 'still usable'"), [("still usable",)])

    def test_refusal_inside_a_transaction_aborts_it(self):
        with self.tp.raw() as c:
            self.assertEqual(c.query("BEGIN")[0].tag, "BEGIN")
            fill(self, c, "t")
            c.bind("", "t0")
            c.execute()
            c.parse("t5", "SELECT 5")
            c.bind("", "t5")
            c.execute()
            c.sync()
            msgs = c.read_until_ready()
            # t0 ran, then the error; the rest was skipped, and the
            # transaction is failed, as PostgreSQL does for its own errors.
            self.assertEqual(types(msgs), ["2", "D", "C", "E", "Z"])
            assert_refused(self, msgs, "E")
            with self.assertRaises(h.PgError) as err:
                c.query("SELECT 1")
            self.assertEqual(err.exception.sqlstate, "25P02")
            self.assertEqual(c.query("ROLLBACK")[0].tag, "ROLLBACK")
            self.assertEqual(c.status, "I")
            for i in range(LIMIT):
                self.assertEqual(run(c, f"t{i}"), [(str(i),)])

    def test_refusal_rolls_back_its_implicit_transaction(self):
        with self.tp.raw() as c:
            fill(self, c, "u")
            # One batch: an INSERT, then the refused Parse, then the Sync.
            # PostgreSQL rolls the INSERT back with the batch's error; so
            # must the backend here.
            c.parse("", "INSERT INTO limit_rows VALUES (1)")
            c.bind("", "")
            c.execute()
            c.parse("u5", "SELECT 5")
            c.sync()
            msgs = c.read_until_ready()
            self.assertEqual(types(msgs), ["1", "2", "C", "E", "Z"])
            assert_refused(self, msgs, "I")
            self.assertEqual(c.fetch("SELECT count(*) FROM limit_rows"), [("0",)])
            self.assertEqual(run(c, "u4"), [("4",)])

    def test_other_clients_are_not_affected(self):
        with self.tp.raw() as full, self.tp.raw() as other:
            fill(self, full, "f")
            assert_refused(self, prepare(full, "f5"), "I")
            assert_refused(self, prepare(full, "f6"), "I")
            # Another client of the pool has a limit of its own.
            fill(self, other, "o")
            for i in range(LIMIT):
                self.assertEqual(run(other, f"o{i}"), [(str(i),)])
            assert_refused(self, prepare(other, "o5"), "I")
            self.assertEqual(run(full, "f3"), [("3",)])
            # One warning per client, however many refusals.
            pattern = re.compile(r"client (\d+) .*refused.*max_client_prepared_statements = 5")
            h.wait_for_log(self.tp, lambda line: "WARN" in line.upper() and pattern.search(line) is not None)
            ids = [pattern.search(line).group(1) for line in self.tp.log_text().splitlines()
                   if pattern.search(line)]
            self.assertEqual(len(ids), len(set(ids)), ids)
            self.assertGreaterEqual(len(set(ids)), 2)
            self.assertTrue(all("WARN" in line.upper() for line in self.tp.log_text().splitlines()
                                if pattern.search(line)))

    def test_drivers_under_the_limit(self):
        queries = ["SELECT %s::int + 1", "SELECT %s::text || 'x'", "SELECT %s::int * 2"]
        with contextlib.closing(psycopg.connect(self.tp.conninfo(), autocommit=True,
                                                prepare_threshold=0)) as conn:
            for _ in range(3):
                self.assertEqual([conn.execute(q, (2,)).fetchone()[0] for q in queries], [3, "2x", 4])

        async def main():
            conn = await asyncpg.connect(host=self.tp.host, port=self.tp.port, user=h.APP_USER,
                                         password=h.APP_PASSWORD, database="inventorydb")
            try:
                out = []
                for _ in range(3):
                    out.append(await conn.fetchval("SELECT $1::int + 1", 2))
                    out.append(await conn.fetchval("SELECT $1::text || 'x'", "2"))
                return out
            finally:
                await conn.close()
        self.assertEqual(asyncio.run(main()), [3, "2x"] * 3)

    def test_the_key_is_shown_and_reloaded(self):
        with h.Tidepool(self.pg, pools={"inventorydb": {"max_client_prepared_statements": 2}},
                        settings={"admin_users": h.APP_USER}) as tp:
            rows = {r["key"]: r for r in tp.admin("SHOW CONFIG") if r["section"] == "pool.inventorydb"}
            self.assertEqual(rows["max_client_prepared_statements"]["value"], "2")
            self.assertEqual(rows["max_client_prepared_statements"]["default"], "10000")
            with tp.raw() as c:
                for i in range(2):
                    self.assertEqual(types(prepare(c, f"r{i}")), ["1", "Z"])
                err = error_of(prepare(c, "r2"))
                self.assertEqual((err["C"], err["M"]), ("53400", REFUSAL.replace(f"= {LIMIT}", "= 2")))
                # 0 = no limit, live: the connected client may now go on.
                tp.pools["inventorydb"]["max_client_prepared_statements"] = 0
                tp.write_config()
                tp.reload()
                h.wait_for_log(tp, "reloaded")
                for i in range(2, 40):
                    self.assertEqual(types(prepare(c, f"r{i}")), ["1", "Z"])
                self.assertEqual(run(c, "r39"), [("1",)])


if __name__ == "__main__":
    h.main()
