/* test_config_diff.c: what a reload changes (config_diff_make) and how keys
 * are shown (config_key_format, config_key_info_at, password hiding), through
 * config.h only. Each test loads two small files from strings. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static config *load(const char *text)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_string(text, "t.ini", &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "unexpected: %s\n", errs.items[i]);
    config_errors_clear(&errs);
    ck_assert_int_eq(rc, 0);
    return cfg;
}

static int key(const char *name)
{
    int i = config_key_index(name);
    ck_assert_int_ge(i, 0);
    return i;
}

static bool has_key(unsigned long long mask, const char *name)
{
    return (mask >> key(name)) & 1;
}

#define BASE "[tidepool]\nlisten_port = 6432\n"
#define POOL_A "[pool.a]\nurl = postgresql://u:pw@h/a\n"
#define POOL_B "[pool.b]\nurl = postgresql://u:pw@h/b\n"

START_TEST(test_same_file_no_change)
{
    config *o = load(BASE POOL_A POOL_B), *n = load(BASE POOL_A POOL_B);
    config_diff d;
    ck_assert_int_eq(config_diff_make(o, n, &d), 0);
    ck_assert_uint_eq(d.n_pools, 0);
    ck_assert_uint_eq(d.daemon_keys, 0);
    ck_assert(!d.needs_restart);
    config_diff_free(&d);
    config_free(o);
    config_free(n);
}
END_TEST

START_TEST(test_added_removed_changed)
{
    config *o = load(BASE POOL_A POOL_B);
    config *n = load(BASE "[pool.a]\nurl = postgresql://u:pw@h/a\npool_size = 9\n"
                          "[pool.c]\nurl = postgresql://u:pw@h/c\n");
    config_diff d;
    ck_assert_int_eq(config_diff_make(o, n, &d), 0);
    ck_assert_uint_eq(d.n_pools, 3);
    /* Old order first (a changed, b removed), then added ones. */
    ck_assert_int_eq(d.pools[0].change, CONFIG_POOL_CHANGED);
    ck_assert_str_eq(d.pools[0].old_pool->name, "a");
    ck_assert_ptr_eq(d.pools[0].new_pool, &n->pools[0]);
    ck_assert(has_key(d.pools[0].keys, "pool_size"));
    ck_assert(!has_key(d.pools[0].keys, "max_overflow"));
    ck_assert(!d.pools[0].new_backends);
    ck_assert_int_eq(d.pools[1].change, CONFIG_POOL_REMOVED);
    ck_assert_str_eq(d.pools[1].old_pool->name, "b");
    ck_assert_ptr_null(d.pools[1].new_pool);
    ck_assert_int_eq(d.pools[2].change, CONFIG_POOL_ADDED);
    ck_assert_ptr_null(d.pools[2].old_pool);
    ck_assert_str_eq(d.pools[2].new_pool->name, "c");
    ck_assert_uint_eq(d.daemon_keys, 0);
    config_diff_free(&d);
    ck_assert_ptr_null(d.pools);
    config_free(o);
    config_free(n);
}
END_TEST

/* Keys that change what a backend is need new backends; pool limits do not. */
START_TEST(test_new_backends_keys)
{
    static const char *const cases[][2] = {
        {"url = postgresql://u:other@h/a", "url"}, {"isolation_level = SERIALIZABLE", "isolation_level"},
        {"read_only = true", "read_only"},         {"deferrable = yes", "deferrable"},
        {"on_connect = SET x = 1", "on_connect"},  {"pool_mode = session", "pool_mode"},
    };
    static const char *const live[] = {
        "pool_size = 1",
        "max_overflow = -1",
        "pool_timeout = 2.5",
        "pool_recycle = 60",
        "pool_pre_ping = true",
        "pool_use_lifo = on",
        "echo = debug",
        "echo_pool = true",
        "pool_reset_on_return = commit",
        "pool_logging_name = x",
        "max_prepared_statements = 0",
        "max_client_prepared_statements = 5",
    };
    config *o = load(BASE POOL_A);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "[pool.a]\nurl = postgresql://u:pw@h/a\n%s\n", cases[i][0]);
        if (strncmp(cases[i][0], "url", 3) == 0)
            snprintf(text, sizeof text, BASE "[pool.a]\n%s\n", cases[i][0]);
        config *n = load(text);
        config_diff d;
        ck_assert_int_eq(config_diff_make(o, n, &d), 0);
        ck_assert_uint_eq(d.n_pools, 1);
        ck_assert_msg(d.pools[0].new_backends, "%s", cases[i][0]);
        ck_assert_msg(has_key(d.pools[0].keys, cases[i][1]), "%s", cases[i][0]);
        config_diff_free(&d);
        config_free(n);
    }
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "[pool.a]\nurl = postgresql://u:pw@h/a\n%s\n", live[i]);
        config *n = load(text);
        config_diff d;
        ck_assert_int_eq(config_diff_make(o, n, &d), 0);
        ck_assert_uint_eq(d.n_pools, 1);
        ck_assert_msg(!d.pools[0].new_backends, "%s", live[i]);
        ck_assert_msg(d.pools[0].keys != 0, "%s", live[i]);
        config_diff_free(&d);
        config_free(n);
    }
    config_free(o);
}
END_TEST

/* A pool default written in [tidepool] changes every pool that uses it. */
START_TEST(test_default_in_tidepool_changes_pools)
{
    config *o = load(BASE POOL_A POOL_B);
    config *n =
        load(BASE "pool_timeout = 3\n" POOL_A "[pool.b]\nurl = postgresql://u:pw@h/b\npool_timeout = 30\n");
    config_diff d;
    ck_assert_int_eq(config_diff_make(o, n, &d), 0);
    ck_assert_uint_eq(d.n_pools, 1);
    ck_assert_str_eq(d.pools[0].new_pool->name, "a");
    ck_assert(has_key(d.pools[0].keys, "pool_timeout"));
    ck_assert_uint_eq(d.daemon_keys, 0);
    config_diff_free(&d);
    config_free(o);
    config_free(n);
}
END_TEST

START_TEST(test_daemon_keys_and_restart)
{
    config *o = load(BASE POOL_A);
    config *n = load("[tidepool]\nlisten_port = 6432\nmax_client_conn = 5\nlog_level = debug\n" POOL_A);
    config_diff d;
    ck_assert_int_eq(config_diff_make(o, n, &d), 0);
    ck_assert(has_key(d.daemon_keys, "max_client_conn"));
    ck_assert(has_key(d.daemon_keys, "log_level"));
    ck_assert(!has_key(d.daemon_keys, "listen_port"));
    ck_assert(!d.needs_restart);
    config_diff_free(&d);
    config_free(n);

    static const char *const restart[] = {"listen_port = 7000", "listen_addr = *",
                                          "unix_socket_dir =", "unix_socket_mode = 0600",
                                          "metrics_listen = 127.0.0.1:9127"};
    for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[tidepool]\n%s\n" POOL_A, restart[i]);
        if (strncmp(restart[i], "listen_port", 11) != 0)
            snprintf(text, sizeof text, BASE "%s\n" POOL_A, restart[i]);
        n = load(text);
        ck_assert_int_eq(config_diff_make(o, n, &d), 0);
        ck_assert_msg(d.needs_restart, "%s", restart[i]);
        ck_assert_uint_eq(d.n_pools, 0);
        config_diff_free(&d);
        config_free(n);
    }
    config_free(o);
}
END_TEST

START_TEST(test_format_values)
{
    config *c = load("[tidepool]\nlisten_addr = 127.0.0.1, ::1\nunix_socket_mode = 0660\n"
                     "admin_users = a, b c\nshutdown_timeout = 2.5\nlog_level = warning\n"
                     "[pool.a]\nurl = postgresql+psycopg2://u:s3cret@h/a\nmax_overflow = -1\n"
                     "pool_reset_on_return = false\necho = on\nisolation_level = repeatable_read\n");
    struct {
        const char *key, *want;
        const void *base;
    } cases[] = {
        {"listen_addr", "127.0.0.1,::1", c},
        {"unix_socket_mode", "0660", c},
        {"admin_users", "a,b c", c},
        {"shutdown_timeout", "2.5", c},
        {"log_level", "warn", c},
        {"auth_file", "", c},
        {"url", "postgresql+psycopg2://u:***@h/a", &c->pools[0]},
        {"max_overflow", "-1", &c->pools[0]},
        {"pool_recycle", "-1", &c->pools[0]},
        {"pool_reset_on_return", "none", &c->pools[0]},
        {"echo", "true", &c->pools[0]},
        {"echo_pool", "false", &c->pools[0]},
        {"isolation_level", "REPEATABLE READ", &c->pools[0]},
        {"pool_logging_name", "a", &c->pools[0]},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *v = config_key_format((size_t)key(cases[i].key), cases[i].base, true);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(strcmp(v, cases[i].want) == 0, "%s: got '%s', want '%s'", cases[i].key, v,
                      cases[i].want);
        free(v);
    }
    char *raw = config_key_format((size_t)key("url"), &c->pools[0], false);
    ck_assert_str_eq(raw, "postgresql+psycopg2://u:s3cret@h/a");
    free(raw);
    config_free(c);
}
END_TEST

/* Every default, formatted back from a file with no keys, is its own text
 * (or the same value spelt canonically). */
START_TEST(test_info_and_defaults)
{
    config *c = load(BASE POOL_A);
    size_t n = config_key_count(), pool_keys = 0;
    bool seen_pool = false;
    for (size_t i = 0; i < n; i++) {
        config_key_info info;
        config_key_info_at(i, &info);
        ck_assert_int_eq(config_key_index(info.name), (int)i);
        if (info.pool)
            seen_pool = true;
        else
            ck_assert_msg(!seen_pool, "[tidepool] keys come first: %s", info.name);
        pool_keys += info.pool;
        if (strcmp(info.name, "listen_port") == 0 || strcmp(info.name, "url") == 0 ||
            strcmp(info.name, "pool_logging_name") == 0)
            continue;
        char *v = config_key_format(i, info.pool ? (const void *)&c->pools[0] : (const void *)c, true);
        ck_assert_msg(strcmp(v, info.dflt) == 0, "%s: value '%s', default '%s'", info.name, v, info.dflt);
        free(v);
    }
    ck_assert_uint_gt(pool_keys, 10);
    ck_assert_int_eq(config_key_index("nonsense"), -1);
    config_key_info info;
    config_key_info_at((size_t)key("listen_addr"), &info);
    ck_assert_int_eq(info.reload, CONFIG_RELOAD_RESTART);
    config_key_info_at((size_t)key("pool_size"), &info);
    ck_assert_int_eq(info.reload, CONFIG_RELOAD_LIVE);
    config_key_info_at((size_t)key("isolation_level"), &info);
    ck_assert_int_eq(info.reload, CONFIG_RELOAD_NEW_BACKENDS);
    ck_assert_str_eq(config_reload_effect_to_str(CONFIG_RELOAD_NEW_BACKENDS), "new backends");
    config_free(c);
}
END_TEST

START_TEST(test_hide_password)
{
    static const char *const cases[][2] = {
        {"postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"postgresql://h/db?user=u&password=pw&sslmode=off",
         "postgresql://h/db?user=u&password=***&sslmode=off"},
        {"host=h password=pw dbname=x", "host=h password=*** dbname=x"},
        {"host=h password='p w\\'x' dbname=x", "host=h password=*** dbname=x"},
        {"host=h dbname=x", "host=h dbname=x"},
        {"postgresql://u:p@ss@h/db", "postgresql://u:***@ss@h/db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *m = config_url_hide_password(cases[i][0]);
        ck_assert_msg(strcmp(m, cases[i][1]) == 0, "%s -> %s", cases[i][0], m);
        free(m);
    }
}
END_TEST

static Suite *diff_suite(void)
{
    Suite *s = suite_create("config_diff");
    TCase *tc = tcase_create("diff");
    tcase_add_test(tc, test_same_file_no_change);
    tcase_add_test(tc, test_added_removed_changed);
    tcase_add_test(tc, test_new_backends_keys);
    tcase_add_test(tc, test_default_in_tidepool_changes_pools);
    tcase_add_test(tc, test_daemon_keys_and_restart);
    suite_add_tcase(s, tc);
    tc = tcase_create("show");
    tcase_add_test(tc, test_format_values);
    tcase_add_test(tc, test_info_and_defaults);
    tcase_add_test(tc, test_hide_password);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(diff_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
