/* test_sql.c: the SQL scanner that finds session state (proto_sql.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static unsigned fx(const char *sql) { return proto_sql_session_effects(sql, strlen(sql)); }

START_TEST(test_set)
{
    ck_assert_uint_eq(fx("SET search_path = foo"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("set TimeZone to 'UTC'"), PROTO_SQL_SET_REPORTED);
    ck_assert_uint_eq(fx("SET TIME ZONE 'UTC'"), PROTO_SQL_SET_REPORTED);
    ck_assert_uint_eq(fx("SET application_name = 'x'"), PROTO_SQL_SET_REPORTED);
    ck_assert_uint_eq(fx("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("SET SESSION work_mem = '8MB'"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("SET LOCAL work_mem = '8MB'"), 0);
    ck_assert_uint_eq(fx("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"), 0);
    ck_assert_uint_eq(fx("select set_config('a.b', 'c', false)"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("RESET work_mem"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("RESET ALL"), PROTO_SQL_RESET_ALL);
}
END_TEST

/* The quick pass for plain statements must not hide what the scan finds. */
START_TEST(test_plain_statements)
{
    ck_assert_uint_eq(fx("SELECT abalance FROM pgbench_accounts WHERE aid = 1;"), 0);
    ck_assert_uint_eq(fx("  select 1 ;  \n"), 0);
    ck_assert_uint_eq(fx("INSERT INTO t VALUES (1)"), 0);
    ck_assert_uint_eq(fx("WITH x AS (SELECT 1) SELECT * FROM x"), 0);
    ck_assert_uint_eq(fx("SELECT 1; SET work_mem = '1MB'"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("SELECT ';'; LISTEN chan"), PROTO_SQL_LISTEN);
    ck_assert_uint_eq(fx("select PG_ADVISORY_LOCK(1);"), PROTO_SQL_ADVISORY);
    ck_assert_uint_eq(fx("WITH a AS (SELECT pg_try_advisory_lock(2)) SELECT * FROM a"), PROTO_SQL_ADVISORY);
    ck_assert_uint_eq(fx("SELECT Set_Config('a.b', 'c', false)"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("BEGIN; CREATE TEMP TABLE t (x int)"), PROTO_SQL_TEMP);
    ck_assert_uint_eq(fx("SELECT 1 /* ; */; DECLARE c CURSOR WITH HOLD FOR SELECT 1"), PROTO_SQL_CURSOR);
    ck_assert_uint_eq(fx("SELECTx pg_advisory_lock(1)"), PROTO_SQL_ADVISORY);
}
END_TEST

START_TEST(test_other_state)
{
    ck_assert_uint_eq(fx("LISTEN chan"), PROTO_SQL_LISTEN);
    ck_assert_uint_eq(fx("UNLISTEN *"), PROTO_SQL_UNLISTEN_ALL);
    ck_assert_uint_eq(fx("UNLISTEN chan"), 0);
    ck_assert_uint_eq(fx("SELECT pg_advisory_lock(1)"), PROTO_SQL_ADVISORY);
    ck_assert_uint_eq(fx("SELECT pg_try_advisory_lock(1, 2)"), PROTO_SQL_ADVISORY);
    ck_assert_uint_eq(fx("SELECT pg_advisory_xact_lock(1)"), 0);
    ck_assert_uint_eq(fx("SELECT pg_advisory_unlock_all()"), PROTO_SQL_ADVISORY_UNLOCK_ALL);
    ck_assert_uint_eq(fx("CREATE TEMP TABLE t (x int)"), PROTO_SQL_TEMP);
    ck_assert_uint_eq(fx("create global temporary table t (x int)"), PROTO_SQL_TEMP);
    ck_assert_uint_eq(fx("CREATE TABLE t (x int)"), 0);
    ck_assert_uint_eq(fx("CREATE TEMP TABLE t (x int) ON COMMIT DROP"), 0);
    ck_assert_uint_eq(fx("CREATE TEMP TABLE t (x int) ON COMMIT DELETE ROWS"), PROTO_SQL_TEMP);
    ck_assert_uint_eq(fx("DECLARE c CURSOR WITH HOLD FOR SELECT 1"), PROTO_SQL_CURSOR);
    ck_assert_uint_eq(fx("DECLARE c CURSOR FOR SELECT 1"), 0);
    ck_assert_uint_eq(fx("PREPARE p AS SELECT 1"), PROTO_SQL_PREPARE);
    ck_assert_uint_eq(fx("PREPARE TRANSACTION 'x'"), 0);
    ck_assert_uint_eq(fx("DEALLOCATE ALL"), PROTO_SQL_DEALLOCATE_ALL);
    ck_assert_uint_eq(fx("DISCARD ALL"), PROTO_SQL_DISCARD_ALL);
    ck_assert_uint_eq(fx("DISCARD TEMP"), PROTO_SQL_DISCARD_TEMP);
    ck_assert_uint_eq(fx("CLOSE ALL"), PROTO_SQL_CLOSE_ALL);
}
END_TEST

START_TEST(test_noise_is_skipped)
{
    ck_assert_uint_eq(fx("SELECT 'SET x = 1; LISTEN y'"), 0);
    ck_assert_uint_eq(fx("SELECT $$pg_advisory_lock(1)$$"), 0);
    ck_assert_uint_eq(fx("SELECT $a$ ; LISTEN z $a$"), 0);
    ck_assert_uint_eq(fx("-- LISTEN x\nSELECT 1"), 0);
    ck_assert_uint_eq(fx("/* LISTEN /* nested */ x */ SELECT 1"), 0);
    ck_assert_uint_eq(fx("SELECT \"listen\" FROM t"), 0);
    ck_assert_uint_eq(fx("SELECT E'\\' ; LISTEN x'"), 0);
    ck_assert_uint_eq(fx("/* c */ LISTEN x"), PROTO_SQL_LISTEN);
    ck_assert_uint_eq(fx("SELECT 1; SET a.b = 1; SELECT 2"), PROTO_SQL_SET);
    ck_assert_uint_eq(fx("BEGIN; LISTEN a; COMMIT"), PROTO_SQL_LISTEN);
    ck_assert_uint_eq(fx(""), 0);
    ck_assert_uint_eq(fx("'unterminated"), 0);
    ck_assert_uint_eq(fx("$$unterminated"), 0);
}
END_TEST

START_TEST(test_deallocate_name)
{
    char name[64];
    ck_assert_int_eq(proto_sql_deallocate_name("DEALLOCATE _pg3_1", 17, name, sizeof name), 1);
    ck_assert_str_eq(name, "_pg3_1");
    const char *q = "deallocate prepare P_0;";
    ck_assert_int_eq(proto_sql_deallocate_name(q, strlen(q), name, sizeof name), 1);
    ck_assert_str_eq(name, "p_0");
    q = "DEALLOCATE ALL";
    ck_assert_int_eq(proto_sql_deallocate_name(q, strlen(q), name, sizeof name), 0);
    q = "DEALLOCATE a; SELECT 1";
    ck_assert_int_eq(proto_sql_deallocate_name(q, strlen(q), name, sizeof name), 0);
    q = "SELECT 1";
    ck_assert_int_eq(proto_sql_deallocate_name(q, strlen(q), name, sizeof name), 0);
}
END_TEST

START_TEST(test_reset_name)
{
    char name[64];
    const char *q = "SET default_transaction_isolation TO DEFAULT";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 1);
    ck_assert_str_eq(name, "default_transaction_isolation");
    q = "set session work_mem = default;";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 1);
    ck_assert_str_eq(name, "work_mem");
    q = "RESET myapp.x";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 1);
    ck_assert_str_eq(name, "myapp.x");
    q = "RESET ALL";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 0);
    q = "SET work_mem = '8MB'";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 0);
    q = "SET LOCAL work_mem TO DEFAULT";
    ck_assert_int_eq(proto_sql_reset_name(q, strlen(q), name, sizeof name), 0);
}
END_TEST

START_TEST(test_simple_set)
{
    char name[64], value[64];
    const char *q = "SET extra_float_digits = 3";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 1);
    ck_assert_str_eq(name, "extra_float_digits");
    ck_assert_str_eq(value, "3");
    q = "set session search_path to 'it''s'";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 1);
    ck_assert_str_eq(name, "search_path");
    ck_assert_str_eq(value, "it's");
    q = "SET work_mem TO '64MB';";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 1);
    ck_assert_str_eq(value, "64MB");
    q = "SET search_path = a, b";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 0);
    q = "SET LOCAL work_mem = '1MB'";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 0);
    q = "SET work_mem = '1MB'; SELECT 1";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 0);
    q = "SET work_mem TO DEFAULT";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 0);
    q = "SET TIME ZONE 'UTC'";
    ck_assert_int_eq(proto_sql_simple_set(q, strlen(q), name, sizeof name, value, sizeof value), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sql");
    TCase *tc = tcase_create("session_effects");
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_other_state);
    tcase_add_test(tc, test_plain_statements);
    tcase_add_test(tc, test_noise_is_skipped);
    tcase_add_test(tc, test_deallocate_name);
    tcase_add_test(tc, test_reset_name);
    tcase_add_test(tc, test_simple_set);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
