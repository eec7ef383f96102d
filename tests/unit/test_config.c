/* test_config.c: the configuration file, SPEC §3, through config.h only.
 *
 * Each test loads a small file from a string (named "t.ini" in messages) and
 * checks either the typed result or the exact "FILE:LINE: key: what" messages.
 * The example shipped in config/ is loaded too, as is and with every
 * commented-out key enabled. */
#include <check.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

/* ---- helpers ------------------------------------------------------------ */

static config *load_ok(const char *text)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_string(text, "t.ini", &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "unexpected: %s\n", errs.items[i]);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.count, 0);
    config_errors_clear(&errs);
    return cfg;
}

static config_errors load_bad(const char *text)
{
    config *cfg = (config *)&cfg; /* must be set to NULL */
    config_errors errs = {0};
    int rc = config_load_string(text, "t.ini", &cfg, &errs);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_gt(errs.count, 0);
    return errs;
}

static void dump(const config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "  [%zu] %s\n", i, errs->items[i]);
}

/* The file has exactly one problem, and it reads `want`. */
static void expect_one_error(const char *text, const char *want)
{
    config_errors errs = load_bad(text);
    if (errs.count != 1 || strcmp(errs.items[0], want) != 0) {
        fprintf(stderr, "want: %s\ngot:\n", want);
        dump(&errs);
    }
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], want);
    config_errors_clear(&errs);
}

/* A config of one pool "p", its header on line 1, url on line 2 and then
 * `extra` lines (so the first extra line is line 3). */
static char *one_pool(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "[pool.p]\nurl = postgresql://u:pw@h/db\n%s", extra);
    return buf;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof buf[0], f, ap);
    va_end(ap);
    return b;
}

static void check_daemon_defaults(const config *cfg)
{
    ck_assert_uint_eq(cfg->n_listen_addrs, 1);
    ck_assert_str_eq(cfg->listen_addrs[0], "127.0.0.1");
    ck_assert_int_eq(cfg->listen_port, 6432);
    ck_assert_str_eq(cfg->unix_socket_dir, "/run/tidepool");
    ck_assert_int_eq(cfg->unix_socket_mode, 0777);
    ck_assert_int_eq(cfg->max_client_conn, 10000);
    ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_SCRAM_SHA_256);
    ck_assert_ptr_null(cfg->auth_file);
    ck_assert_uint_eq(cfg->n_admin_users, 0);
    ck_assert_int_eq(cfg->log_level, CONFIG_LOG_INFO);
    ck_assert(cfg->shutdown_timeout == 30.0);
    ck_assert_ptr_null(cfg->metrics_listen);
    ck_assert_int_eq(cfg->max_message_size, 1073741824);
    ck_assert(cfg->client_login_timeout == 60.0);
    ck_assert(cfg->client_idle_timeout == 0.0);
}

/* Every pool key at its default; name, url and logging name aside. */
static void check_pool_defaults(const config_pool *p)
{
    ck_assert_int_eq(p->pool_mode, CONFIG_POOL_MODE_TRANSACTION);
    ck_assert_int_eq(p->pool_size, 5);
    ck_assert_int_eq(p->max_overflow, 10);
    ck_assert(p->pool_timeout == 30.0);
    ck_assert(p->pool_recycle == -1.0);
    ck_assert(!p->pool_pre_ping);
    ck_assert(!p->pool_use_lifo);
    ck_assert_int_eq(p->pool_reset_on_return, CONFIG_RESET_ROLLBACK);
    ck_assert_int_eq(p->isolation_level, CONFIG_ISOLATION_DEFAULT);
    ck_assert(!p->read_only);
    ck_assert(!p->deferrable);
    ck_assert_ptr_null(p->on_connect);
    ck_assert_int_eq(p->echo, CONFIG_ECHO_OFF);
    ck_assert_int_eq(p->echo_pool, CONFIG_ECHO_OFF);
    ck_assert_int_eq(p->max_prepared_statements, 200);
    ck_assert_int_eq(p->max_client_prepared_statements, 10000);
    ck_assert_uint_eq(p->n_allowed_users, 0);
}

/* ---- defaults ----------------------------------------------------------- */

START_TEST(test_empty_file_is_all_defaults)
{
    config *cfg = load_ok("");
    check_daemon_defaults(cfg);
    ck_assert_uint_eq(cfg->n_pools, 0);
    ck_assert_ptr_null(cfg->pools);
    ck_assert_str_eq(cfg->path, "t.ini");
    config_free(cfg);
}
END_TEST

START_TEST(test_zero_pools_is_valid)
{
    config *cfg = load_ok("[tidepool]\nlisten_port = 7000\n");
    ck_assert_uint_eq(cfg->n_pools, 0);
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_ptr_null(config_find_pool(cfg, "tidepool"));
    config_free(cfg);
}
END_TEST

START_TEST(test_pool_defaults)
{
    config *cfg = load_ok("\n[pool.inventorydb]\nurl = postgresql://sa:pw@127.0.0.1:5432/inventorydb\n");
    check_daemon_defaults(cfg);
    ck_assert_uint_eq(cfg->n_pools, 1);
    const config_pool *p = &cfg->pools[0];
    ck_assert_str_eq(p->name, "inventorydb");
    ck_assert_str_eq(p->url, "postgresql://sa:pw@127.0.0.1:5432/inventorydb");
    ck_assert_str_eq(p->conninfo, "postgresql://sa:pw@127.0.0.1:5432/inventorydb");
    ck_assert_str_eq(p->pool_logging_name, "inventorydb");
    ck_assert_int_eq(p->line, 2);
    check_pool_defaults(p);
    config_free(cfg);
}
END_TEST

/* ---- every key with a good value ---------------------------------------- */

START_TEST(test_every_daemon_key)
{
    config *cfg = load_ok("[tidepool]\n"
                          "listen_addr = 127.0.0.1, ::1 ,*\n"
                          "listen_port = 5433\n"
                          "unix_socket_dir = /tmp/tp\n"
                          "unix_socket_mode = 0660\n"
                          "max_client_conn = 200\n"
                          "auth_type = md5\n"
                          "auth_file = /etc/tidepool/userlist.txt\n"
                          "admin_users = admin, ops\n"
                          "log_level = debug\n"
                          "shutdown_timeout = 2.5\n"
                          "metrics_listen = 127.0.0.1:9127\n");
    ck_assert_uint_eq(cfg->n_listen_addrs, 3);
    ck_assert_str_eq(cfg->listen_addrs[0], "127.0.0.1");
    ck_assert_str_eq(cfg->listen_addrs[1], "::1");
    ck_assert_str_eq(cfg->listen_addrs[2], "*");
    ck_assert_int_eq(cfg->listen_port, 5433);
    ck_assert_str_eq(cfg->unix_socket_dir, "/tmp/tp");
    ck_assert_int_eq(cfg->unix_socket_mode, 0660);
    ck_assert_int_eq(cfg->max_client_conn, 200);
    ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_MD5);
    ck_assert_str_eq(cfg->auth_file, "/etc/tidepool/userlist.txt");
    ck_assert_uint_eq(cfg->n_admin_users, 2);
    ck_assert_str_eq(cfg->admin_users[0], "admin");
    ck_assert_str_eq(cfg->admin_users[1], "ops");
    ck_assert_int_eq(cfg->log_level, CONFIG_LOG_DEBUG);
    ck_assert(cfg->shutdown_timeout == 2.5);
    ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9127");
    config_free(cfg);
}
END_TEST

START_TEST(test_every_pool_key)
{
    config *cfg = load_ok(one_pool("pool_mode = session\n"
                                   "pool_size = 20\n"
                                   "max_overflow = -1\n"
                                   "pool_timeout = 1.5\n"
                                   "pool_recycle = 3600\n"
                                   "pool_pre_ping = true\n"
                                   "pool_use_lifo = yes\n"
                                   "pool_reset_on_return = commit\n"
                                   "isolation_level = REPEATABLE READ\n"
                                   "read_only = on\n"
                                   "deferrable = 1\n"
                                   "on_connect = SET search_path TO app, public\n"
                                   "echo = debug\n"
                                   "echo_pool = true\n"
                                   "max_client_prepared_statements = 0\n"
                                   "pool_logging_name = p-log\n"));
    const config_pool *p = &cfg->pools[0];
    ck_assert_int_eq(p->pool_mode, CONFIG_POOL_MODE_SESSION);
    ck_assert_int_eq(p->pool_size, 20);
    ck_assert_int_eq(p->max_overflow, -1);
    ck_assert(p->pool_timeout == 1.5);
    ck_assert(p->pool_recycle == 3600.0);
    ck_assert(p->pool_pre_ping);
    ck_assert(p->pool_use_lifo);
    ck_assert_int_eq(p->pool_reset_on_return, CONFIG_RESET_COMMIT);
    ck_assert_int_eq(p->isolation_level, CONFIG_ISOLATION_REPEATABLE_READ);
    ck_assert(p->read_only);
    ck_assert(p->deferrable);
    ck_assert_str_eq(p->on_connect, "SET search_path TO app, public");
    ck_assert_int_eq(p->echo, CONFIG_ECHO_DEBUG);
    ck_assert_int_eq(p->echo_pool, CONFIG_ECHO_ON);
    ck_assert_int_eq(p->max_client_prepared_statements, 0);
    ck_assert_str_eq(p->pool_logging_name, "p-log");
    config_free(cfg);
}
END_TEST

static const struct {
    const char *text;
    bool value;
} bools[] = {
    {"true", true}, {"TRUE", true}, {"True", true}, {"yes", true}, {"YES", true}, {"on", true},
    {"On", true},   {"1", true},    {"false", false}, {"FALSE", false}, {"no", false},
    {"No", false},  {"off", false}, {"OFF", false},   {"0", false},
};

START_TEST(test_boolean_spellings)
{
    const char *keys[] = {"pool_pre_ping", "pool_use_lifo", "read_only", "deferrable"};
    for (size_t k = 0; k < 4; k++) {
        config *cfg = load_ok(one_pool(fmt("%s = %s\n", keys[k], bools[_i].text)));
        const config_pool *p = &cfg->pools[0];
        bool got = k == 0 ? p->pool_pre_ping : k == 1 ? p->pool_use_lifo : k == 2 ? p->read_only : p->deferrable;
        ck_assert_msg(got == bools[_i].value, "%s = %s", keys[k], bools[_i].text);
        config_free(cfg);
    }
}
END_TEST

START_TEST(test_echo_values)
{
    static const struct {
        const char *text;
        config_echo value;
    } cases[] = {
        {"debug", CONFIG_ECHO_DEBUG}, {"DEBUG", CONFIG_ECHO_DEBUG}, {"true", CONFIG_ECHO_ON},
        {"yes", CONFIG_ECHO_ON},      {"1", CONFIG_ECHO_ON},        {"false", CONFIG_ECHO_OFF},
        {"off", CONFIG_ECHO_OFF},     {"0", CONFIG_ECHO_OFF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config *cfg = load_ok(one_pool(fmt("echo = %s\necho_pool = %s\n", cases[i].text, cases[i].text)));
        ck_assert_int_eq(cfg->pools[0].echo, cases[i].value);
        ck_assert_int_eq(cfg->pools[0].echo_pool, cases[i].value);
        config_free(cfg);
    }
}
END_TEST

START_TEST(test_reset_on_return_values)
{
    static const struct {
        const char *text;
        config_reset_style value;
    } cases[] = {
        {"rollback", CONFIG_RESET_ROLLBACK}, {"ROLLBACK", CONFIG_RESET_ROLLBACK},
        {"commit", CONFIG_RESET_COMMIT},     {"none", CONFIG_RESET_NONE},
        {"None", CONFIG_RESET_NONE},         {"true", CONFIG_RESET_ROLLBACK},
        {"True", CONFIG_RESET_ROLLBACK},     {"false", CONFIG_RESET_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config *cfg = load_ok(one_pool(fmt("pool_reset_on_return = %s\n", cases[i].text)));
        ck_assert_int_eq(cfg->pools[0].pool_reset_on_return, cases[i].value);
        config_free(cfg);
    }
}
END_TEST

START_TEST(test_isolation_spellings)
{
    static const struct {
        const char *text;
        config_isolation value;
    } cases[] = {
        {"SERIALIZABLE", CONFIG_ISOLATION_SERIALIZABLE},
        {"serializable", CONFIG_ISOLATION_SERIALIZABLE},
        {"read committed", CONFIG_ISOLATION_READ_COMMITTED},
        {"READ_COMMITTED", CONFIG_ISOLATION_READ_COMMITTED},
        {"Read  Committed", CONFIG_ISOLATION_READ_COMMITTED},
        {"REPEATABLE_READ", CONFIG_ISOLATION_REPEATABLE_READ},
        {"repeatable read", CONFIG_ISOLATION_REPEATABLE_READ},
        {"READ UNCOMMITTED", CONFIG_ISOLATION_READ_UNCOMMITTED},
        {"read_uncommitted", CONFIG_ISOLATION_READ_UNCOMMITTED},
        {"", CONFIG_ISOLATION_DEFAULT},
        {"default", CONFIG_ISOLATION_DEFAULT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config *cfg = load_ok(one_pool(fmt("isolation_level = %s\n", cases[i].text)));
        ck_assert_msg(cfg->pools[0].isolation_level == cases[i].value, "'%s'", cases[i].text);
        config_free(cfg);
    }
}
END_TEST

START_TEST(test_other_enums)
{
    static const struct {
        const char *text;
        config_auth_type value;
    } auths[] = {
        {"scram-sha-256", CONFIG_AUTH_SCRAM_SHA_256}, {"SCRAM-SHA-256", CONFIG_AUTH_SCRAM_SHA_256},
        {"md5", CONFIG_AUTH_MD5},                     {"password", CONFIG_AUTH_PASSWORD},
        {"trust", CONFIG_AUTH_TRUST},                 {"peer", CONFIG_AUTH_PEER},
    };
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
        config *cfg = load_ok(fmt("[tidepool]\nauth_type = %s\n", auths[i].text));
        ck_assert_int_eq(cfg->auth_type, auths[i].value);
        config_free(cfg);
    }
    static const struct {
        const char *text;
        config_log_level value;
    } levels[] = {
        {"error", CONFIG_LOG_ERROR}, {"warn", CONFIG_LOG_WARN},   {"WARN", CONFIG_LOG_WARN},
        {"info", CONFIG_LOG_INFO},   {"debug", CONFIG_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        config *cfg = load_ok(fmt("[tidepool]\nlog_level = %s\n", levels[i].text));
        ck_assert_int_eq(cfg->log_level, levels[i].value);
        config_free(cfg);
    }
    config *cfg = load_ok(one_pool("pool_mode = TRANSACTION\n"));
    ck_assert_int_eq(cfg->pools[0].pool_mode, CONFIG_POOL_MODE_TRANSACTION);
    config_free(cfg);
}
END_TEST

START_TEST(test_integer_bounds_accepted)
{
    config *cfg = load_ok("[tidepool]\nlisten_port = 1\nmax_client_conn = 1\nunix_socket_mode = 0\n"
                          "[pool.a]\nurl = postgresql://h/a\npool_size = 0\nmax_overflow = -1\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_size = +7\nmax_overflow = 0\n");
    ck_assert_int_eq(cfg->listen_port, 1);
    ck_assert_int_eq(cfg->max_client_conn, 1);
    ck_assert_int_eq(cfg->unix_socket_mode, 0);
    ck_assert_int_eq(cfg->pools[0].pool_size, 0);
    ck_assert_int_eq(cfg->pools[0].max_overflow, -1);
    ck_assert_int_eq(cfg->pools[1].pool_size, 7);
    ck_assert_int_eq(cfg->pools[1].max_overflow, 0);
    config_free(cfg);

    cfg = load_ok("[tidepool]\nlisten_port = 65535\nunix_socket_mode = 777\n");
    ck_assert_int_eq(cfg->listen_port, 65535);
    ck_assert_int_eq(cfg->unix_socket_mode, 0777);
    config_free(cfg);
    cfg = load_ok("[tidepool]\nunix_socket_mode = 0600\n");
    ck_assert_int_eq(cfg->unix_socket_mode, 0600);
    config_free(cfg);
}
END_TEST

START_TEST(test_seconds_accepted)
{
    config *cfg = load_ok("[tidepool]\nshutdown_timeout = 0\n"
                          "[pool.a]\nurl = postgresql://h/a\npool_timeout = 0.25\npool_recycle = -1\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_timeout = 1e3\npool_recycle = 0\n"
                          "[pool.c]\nurl = postgresql://h/c\npool_timeout = .5\npool_recycle = -1.0\n");
    ck_assert(cfg->shutdown_timeout == 0.0);
    ck_assert(cfg->pools[0].pool_timeout == 0.25);
    ck_assert(cfg->pools[0].pool_recycle == -1.0);
    ck_assert(cfg->pools[1].pool_timeout == 1000.0);
    ck_assert(cfg->pools[1].pool_recycle == 0.0);
    ck_assert(cfg->pools[2].pool_timeout == 0.5);
    ck_assert(cfg->pools[2].pool_recycle == -1.0);
    config_free(cfg);
}
END_TEST

START_TEST(test_limits_keys)
{
    config *cfg = load_ok("[tidepool]\nmax_message_size = 1024\nclient_login_timeout = 2.5\n"
                          "client_idle_timeout = 300\n");
    ck_assert_int_eq(cfg->max_message_size, 1024);
    ck_assert(cfg->client_login_timeout == 2.5);
    ck_assert(cfg->client_idle_timeout == 300.0);
    config_free(cfg);
    cfg = load_ok("[tidepool]\nmax_message_size = 1073741824\nclient_login_timeout = 0\n");
    ck_assert_int_eq(cfg->max_message_size, 1073741824);
    ck_assert(cfg->client_login_timeout == 0.0);
    config_free(cfg);
}
END_TEST

START_TEST(test_allowed_users)
{
    /* A default in [tidepool], kept by one pool, replaced in another, emptied in a third. */
    config *cfg = load_ok("[tidepool]\nallowed_users = app, report\n"
                          "[pool.a]\nurl = postgresql://h/a\n"
                          "[pool.b]\nurl = postgresql://h/b\nallowed_users = ops\n"
                          "[pool.c]\nurl = postgresql://h/c\nallowed_users =\n");
    const config_pool *a = config_find_pool(cfg, "a"), *b = config_find_pool(cfg, "b"),
                      *c = config_find_pool(cfg, "c");
    ck_assert_uint_eq(a->n_allowed_users, 2);
    ck_assert_str_eq(a->allowed_users[0], "app");
    ck_assert_str_eq(a->allowed_users[1], "report");
    ck_assert(config_pool_allows(a, "app"));
    ck_assert(config_pool_allows(a, "report"));
    ck_assert(!config_pool_allows(a, "ops"));
    ck_assert(!config_pool_allows(a, "App"));
    ck_assert_uint_eq(b->n_allowed_users, 1);
    ck_assert(config_pool_allows(b, "ops"));
    ck_assert(!config_pool_allows(b, "app"));
    ck_assert_uint_eq(c->n_allowed_users, 0);
    ck_assert(config_pool_allows(c, "anyone"));

    config_pool copy;
    ck_assert_int_eq(config_pool_copy(&copy, a), 0);
    ck_assert_uint_eq(copy.n_allowed_users, 2);
    ck_assert_ptr_ne(copy.allowed_users, a->allowed_users);
    ck_assert_str_eq(copy.allowed_users[1], "report");
    config_pool_clear(&copy);
    config_free(cfg);

    expect_one_error(one_pool("allowed_users = app,,ops\n"),
                     "t.ini:3: allowed_users: expected comma-separated user names, or nothing for "
                     "every user, got 'app,,ops'");
}
END_TEST

START_TEST(test_url_has_password)
{
    ck_assert(config_url_has_password("postgresql://sa:sa1234@127.0.0.1:5432/db"));
    ck_assert(config_url_has_password("postgresql+psycopg2://sa:x@h/db"));
    ck_assert(config_url_has_password("postgresql://sa:@h/db")); /* empty, but written */
    ck_assert(config_url_has_password("postgresql://sa@h/db?sslmode=require&password=x"));
    ck_assert(config_url_has_password("postgresql://h/db?password=x"));
    ck_assert(config_url_has_password("host=h dbname=db user=sa password=x"));
    ck_assert(config_url_has_password("password = 'x y' host=h"));
    ck_assert(config_url_has_password("host=h PASSWORD=x"));
    ck_assert(!config_url_has_password("postgresql://sa@127.0.0.1:5432/db"));
    ck_assert(!config_url_has_password("postgresql://h:5432/db"));
    ck_assert(!config_url_has_password("postgresql://h,h2:5433/db?target_session_attrs=read-write"));
    ck_assert(!config_url_has_password("postgresql://sa@h/db?passfile=/x"));
    ck_assert(!config_url_has_password("postgresql://sa@h/my:password@db")); /* the path */
    ck_assert(!config_url_has_password("host=h dbname=db user=sa passfile=/x"));
    ck_assert(!config_url_has_password("host=h dbname=mypassword"));
    ck_assert(!config_url_has_password(NULL));
}
END_TEST

START_TEST(test_lists_and_empties)
{
    config *cfg = load_ok("[tidepool]\nlisten_addr =\nunix_socket_dir =\nadmin_users = \n"
                          "auth_file =\nmetrics_listen =\n");
    ck_assert_uint_eq(cfg->n_listen_addrs, 0);
    ck_assert_ptr_null(cfg->unix_socket_dir);
    ck_assert_uint_eq(cfg->n_admin_users, 0);
    ck_assert_ptr_null(cfg->auth_file);
    ck_assert_ptr_null(cfg->metrics_listen);
    config_free(cfg);

    cfg = load_ok("[tidepool]\nlisten_addr = *\nadmin_users = admin\n");
    ck_assert_uint_eq(cfg->n_listen_addrs, 1);
    ck_assert_str_eq(cfg->listen_addrs[0], "*");
    ck_assert_uint_eq(cfg->n_admin_users, 1);
    ck_assert_str_eq(cfg->admin_users[0], "admin");
    config_free(cfg);

    const char *good_metrics[] = {"127.0.0.1:9127", "[::1]:9127", "localhost:1", "*:65535",
                                  "metrics.example.com:80"};
    for (size_t i = 0; i < 5; i++) {
        cfg = load_ok(fmt("[tidepool]\nmetrics_listen = %s\n", good_metrics[i]));
        ck_assert_str_eq(cfg->metrics_listen, good_metrics[i]);
        config_free(cfg);
    }
}
END_TEST

START_TEST(test_seconds_ignore_locale)
{
    /* A daemon may call setlocale(); "2.5" must still mean 2.5. Skipped where
     * no locale with a decimal comma is installed. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    bool set = false;
    for (size_t i = 0; i < 4 && !set; i++)
        set = setlocale(LC_NUMERIC, names[i]) != NULL;
    config *cfg = load_ok(one_pool("pool_timeout = 2.5\n"));
    ck_assert(cfg->pools[0].pool_timeout == 2.5);
    config_free(cfg);
    setlocale(LC_NUMERIC, "C");
}
END_TEST

/* ---- [tidepool] as defaults for pools ----------------------------------- */

static void check_defaults_applied(const config *cfg)
{
    ck_assert_uint_eq(cfg->n_pools, 2);
    const config_pool *a = config_find_pool(cfg, "a");
    const config_pool *b = config_find_pool(cfg, "b");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    /* a takes the [tidepool] defaults */
    ck_assert_int_eq(a->pool_size, 20);
    ck_assert_int_eq(a->isolation_level, CONFIG_ISOLATION_SERIALIZABLE);
    ck_assert_int_eq(a->echo, CONFIG_ECHO_ON);
    ck_assert_str_eq(a->on_connect, "SET x = 1");
    ck_assert_int_eq(a->pool_mode, CONFIG_POOL_MODE_SESSION);
    /* b overrides them */
    ck_assert_int_eq(b->pool_size, 3);
    ck_assert_int_eq(b->isolation_level, CONFIG_ISOLATION_DEFAULT);
    ck_assert_int_eq(b->echo, CONFIG_ECHO_OFF);
    ck_assert_ptr_null(b->on_connect);
    ck_assert_int_eq(b->pool_mode, CONFIG_POOL_MODE_SESSION);
    /* keys set nowhere keep SQLAlchemy's defaults */
    ck_assert_int_eq(a->max_overflow, 10);
    ck_assert_int_eq(b->max_overflow, 10);
    ck_assert_int_eq(cfg->listen_port, 7432);
}

START_TEST(test_tidepool_pool_keys_are_defaults)
{
    config *cfg = load_ok("[tidepool]\nlisten_port = 7432\npool_size = 20\n"
                          "isolation_level = serializable\necho = true\non_connect = SET x = 1\n"
                          "pool_mode = session\n"
                          "[pool.a]\nurl = postgresql://h/a\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_size = 3\nisolation_level =\n"
                          "echo = false\non_connect =\n");
    check_defaults_applied(cfg);
    config_free(cfg);
}
END_TEST

START_TEST(test_tidepool_section_last)
{
    config *cfg = load_ok("[pool.a]\nurl = postgresql://h/a\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_size = 3\nisolation_level =\n"
                          "echo = false\non_connect =\n"
                          "[tidepool]\nlisten_port = 7432\npool_size = 20\n"
                          "isolation_level = serializable\necho = true\non_connect = SET x = 1\n"
                          "pool_mode = session\n");
    check_defaults_applied(cfg);
    config_free(cfg);
}
END_TEST

START_TEST(test_tidepool_section_between_pools)
{
    config *cfg = load_ok("[pool.a]\nurl = postgresql://h/a\n"
                          "[tidepool]\nlisten_port = 7432\npool_size = 20\n"
                          "isolation_level = serializable\necho = true\non_connect = SET x = 1\n"
                          "pool_mode = session\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_size = 3\nisolation_level =\n"
                          "echo = false\non_connect =\n");
    check_defaults_applied(cfg);
    config_free(cfg);
}
END_TEST

START_TEST(test_url_default_in_tidepool)
{
    config *cfg = load_ok("[pool.ro]\nread_only = true\n"
                          "[pool.rw]\nurl = postgres://h/other\n"
                          "[tidepool]\nurl = postgresql+psycopg2://u@h/shared\n");
    const config_pool *ro = config_find_pool(cfg, "ro");
    ck_assert_str_eq(ro->url, "postgresql+psycopg2://u@h/shared");
    ck_assert_str_eq(ro->conninfo, "postgresql://u@h/shared");
    ck_assert(ro->read_only);
    ck_assert_str_eq(config_find_pool(cfg, "rw")->conninfo, "postgresql://h/other");
    config_free(cfg);
}
END_TEST

START_TEST(test_pool_order_names_and_lines)
{
    config *cfg = load_ok("; comment\n"
                          "[pool.inventorydb]\nurl = postgresql://h/inventorydb\n"
                          "\n"
                          "[pool.inventorydb_serializable]\nurl = dbname=inventorydb\n"
                          "isolation_level = SERIALIZABLE\npool_logging_name = inv-ser\n");
    ck_assert_uint_eq(cfg->n_pools, 2);
    ck_assert_str_eq(cfg->pools[0].name, "inventorydb");
    ck_assert_int_eq(cfg->pools[0].line, 2);
    ck_assert_str_eq(cfg->pools[0].pool_logging_name, "inventorydb");
    ck_assert_str_eq(cfg->pools[1].name, "inventorydb_serializable");
    ck_assert_int_eq(cfg->pools[1].line, 5);
    ck_assert_str_eq(cfg->pools[1].pool_logging_name, "inv-ser");
    ck_assert_ptr_eq(config_find_pool(cfg, "inventorydb_serializable"), &cfg->pools[1]);
    ck_assert_ptr_null(config_find_pool(cfg, "nope"));
    ck_assert_ptr_null(config_find_pool(cfg, "INVENTORYDB"));
    ck_assert_ptr_null(config_find_pool(NULL, "inventorydb"));
    config_free(cfg);
}
END_TEST

/* The daemon reports what only it can check (a host name that does not
 * resolve, an auth_file it cannot open) at the key's line. */
START_TEST(test_key_lines)
{
    config *cfg = load_ok("[pool.a]\nurl = postgresql://h/a\n"
                          "[tidepool]\n; a comment\nlisten_addr = localhost\n"
                          "auth_file = /etc/users\npool_size = 3\n");
    ck_assert_int_eq(config_key_line(cfg, "listen_addr"), 5);
    ck_assert_int_eq(config_key_line(cfg, "auth_file"), 6);
    ck_assert_int_eq(config_key_line(cfg, "pool_size"), 7);
    ck_assert_int_eq(config_key_line(cfg, "metrics_listen"), 0); /* not written */
    ck_assert_int_eq(config_key_line(cfg, "no_such_key"), 0);
    char buf[64];
    ck_assert_str_eq(config_key_where(cfg, "auth_file", buf, sizeof buf), "t.ini:6");
    ck_assert_str_eq(config_key_where(cfg, "metrics_listen", buf, sizeof buf), "t.ini");
    config_free(cfg);
}
END_TEST

/* ---- bad values ----------------------------------------------------------- */

static const struct {
    const char *key, *value, *message; /* message after "t.ini:3: KEY: " */
} bad_pool_values[] = {
    {"pool_size", "abc", "expected an integer >= 0, got 'abc'"},
    {"pool_size", "-1", "expected an integer >= 0, got '-1'"},
    {"pool_size", "5x", "expected an integer >= 0, got '5x'"},
    {"pool_size", "5.0", "expected an integer >= 0, got '5.0'"},
    {"pool_size", "", "expected an integer >= 0, got ''"},
    {"pool_size", "0x10", "expected an integer >= 0, got '0x10'"},
    {"pool_size", "99999999999", "expected an integer >= 0, got '99999999999' (out of range)"},
    {"pool_size", "99999999999999999999999", "expected an integer >= 0, got '99999999999999999999999' (out of range)"},
    {"max_overflow", "-2", "expected an integer >= -1 (-1 = no limit), got '-2'"},
    {"max_overflow", "ten", "expected an integer >= -1 (-1 = no limit), got 'ten'"},
    {"pool_timeout", "-1", "expected a number of seconds >= 0, got '-1'"},
    {"pool_timeout", "soon", "expected a number of seconds >= 0, got 'soon'"},
    {"pool_timeout", "inf", "expected a number of seconds >= 0, got 'inf'"},
    {"pool_timeout", "nan", "expected a number of seconds >= 0, got 'nan'"},
    {"pool_timeout", "0x10", "expected a number of seconds >= 0, got '0x10'"},
    {"pool_timeout", "30s", "expected a number of seconds >= 0, got '30s'"},
    {"pool_timeout", "1e10", "expected a number of seconds >= 0, got '1e10' (too large: at most 1000000000)"},
    {"pool_timeout", "1e999", "expected a number of seconds >= 0, got '1e999' (too large: at most 1000000000)"},
    {"pool_recycle", "-2", "expected a number of seconds >= 0, or -1 for never, got '-2'"},
    {"pool_recycle", "-0.5", "expected a number of seconds >= 0, or -1 for never, got '-0.5'"},
    {"pool_recycle", "never", "expected a number of seconds >= 0, or -1 for never, got 'never'"},
    {"pool_pre_ping", "maybe", "expected a boolean (true/false, yes/no, on/off, 1/0), got 'maybe'"},
    {"pool_use_lifo", "2", "expected a boolean (true/false, yes/no, on/off, 1/0), got '2'"},
    {"read_only", "", "expected a boolean (true/false, yes/no, on/off, 1/0), got ''"},
    {"deferrable", "debug", "expected a boolean (true/false, yes/no, on/off, 1/0), got 'debug'"},
    {"echo", "verbose", "expected a boolean (true/false, yes/no, on/off, 1/0) or 'debug', got 'verbose'"},
    {"echo_pool", "2", "expected a boolean (true/false, yes/no, on/off, 1/0) or 'debug', got '2'"},
    {"pool_mode", "statement", "expected 'transaction' or 'session', got 'statement'"},
    {"pool_reset_on_return", "discard", "expected 'rollback', 'commit' or 'none' (true = rollback, false = none), got 'discard'"},
    {"isolation_level", "SNAPSHOT", "expected READ COMMITTED, REPEATABLE READ, SERIALIZABLE or READ UNCOMMITTED, or nothing for the server's default, got 'SNAPSHOT'"},
    {"isolation_level", "READ", "expected READ COMMITTED, REPEATABLE READ, SERIALIZABLE or READ UNCOMMITTED, or nothing for the server's default, got 'READ'"},
    {"isolation_level", "READ COMMITTED SERIALIZABLE REPEATABLE READ", "expected READ COMMITTED, REPEATABLE READ, SERIALIZABLE or READ UNCOMMITTED, or nothing for the server's default, got 'READ COMMITTED SERIALIZABLE REPEATABLE READ'"},
    {"pool_logging_name", "", "expected a name that is not empty, got ''"},
    {"max_client_prepared_statements", "-1", "expected an integer >= 0 (0 = no limit), got '-1'"},
    {"max_client_prepared_statements", "lots", "expected an integer >= 0 (0 = no limit), got 'lots'"},
    {"max_client_prepared_statements", "99999999999", "expected an integer >= 0 (0 = no limit), got '99999999999' (out of range)"},
};

START_TEST(test_bad_pool_value)
{
    const char *key = bad_pool_values[_i].key;
    expect_one_error(one_pool(fmt("%s = %s\n", key, bad_pool_values[_i].value)),
                     fmt("t.ini:3: %s: %s", key, bad_pool_values[_i].message));
}
END_TEST

static const struct {
    const char *key, *value, *message; /* message after "t.ini:2: KEY: " */
} bad_daemon_values[] = {
    {"listen_port", "0", "expected an integer from 1 to 65535, got '0'"},
    {"listen_port", "65536", "expected an integer from 1 to 65535, got '65536'"},
    {"listen_port", "http", "expected an integer from 1 to 65535, got 'http'"},
    {"max_client_conn", "0", "expected an integer >= 1, got '0'"},
    {"max_message_size", "1023", "expected a number of bytes from 1024 to 1073741824, got '1023'"},
    {"max_message_size", "1073741825", "expected a number of bytes from 1024 to 1073741824, got '1073741825'"},
    {"max_message_size", "64MB", "expected a number of bytes from 1024 to 1073741824, got '64MB'"},
    {"client_login_timeout", "-1", "expected a number of seconds >= 0 (0 = no limit), got '-1'"},
    {"client_login_timeout", "soon", "expected a number of seconds >= 0 (0 = no limit), got 'soon'"},
    {"client_idle_timeout", "-0.5", "expected a number of seconds >= 0 (0 = no limit), got '-0.5'"},
    {"unix_socket_mode", "0778", "expected an octal mode from 0 to 0777 (like 0777 or 0660), got '0778'"},
    {"unix_socket_mode", "1000", "expected an octal mode from 0 to 0777 (like 0777 or 0660), got '1000'"},
    {"unix_socket_mode", "rw", "expected an octal mode from 0 to 0777 (like 0777 or 0660), got 'rw'"},
    {"unix_socket_mode", "", "expected an octal mode from 0 to 0777 (like 0777 or 0660), got ''"},
    {"unix_socket_mode", "-1", "expected an octal mode from 0 to 0777 (like 0777 or 0660), got '-1'"},
    {"unix_socket_dir", "run/tidepool", "expected an absolute directory path, or nothing for no Unix socket, got 'run/tidepool'"},
    {"auth_type", "scram", "expected scram-sha-256, md5, password, trust or peer, got 'scram'"},
    {"auth_type", "cert", "expected scram-sha-256, md5, password, trust or peer, got 'cert'"},
    {"log_level", "verbose", "expected error, warn, info or debug, got 'verbose'"},
    {"shutdown_timeout", "-5", "expected a number of seconds >= 0, got '-5'"},
    {"listen_addr", "127.0.0.1,,::1", "expected comma-separated addresses or host names (like 127.0.0.1,::1, localhost or *), or nothing for no TCP, got '127.0.0.1,,::1'"},
    {"listen_addr", "127.0.0.1 ::1", "expected comma-separated addresses or host names (like 127.0.0.1,::1, localhost or *), or nothing for no TCP, got '127.0.0.1 ::1'"},
    {"listen_addr", "127.0.0.1,", "expected comma-separated addresses or host names (like 127.0.0.1,::1, localhost or *), or nothing for no TCP, got '127.0.0.1,'"},
    {"admin_users", "admin,,ops", "expected comma-separated user names, or nothing for none, got 'admin,,ops'"},
    {"metrics_listen", "9127", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got '9127'"},
    {"metrics_listen", ":9127", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got ':9127'"},
    {"metrics_listen", "::1:9127", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got '::1:9127'"},
    {"metrics_listen", "host:0", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got 'host:0'"},
    {"metrics_listen", "host:65536", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got 'host:65536'"},
    {"metrics_listen", "host:port", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got 'host:port'"},
    {"metrics_listen", "host:+80", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got 'host:+80'"},
    {"metrics_listen", "[::1]", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got '[::1]'"},
    {"metrics_listen", "[]:80", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got '[]:80'"},
    {"metrics_listen", "[::1:80", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got '[::1:80'"},
    {"metrics_listen", "my host:80", "expected HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none, got 'my host:80'"},
};

START_TEST(test_bad_daemon_value)
{
    const char *key = bad_daemon_values[_i].key;
    expect_one_error(fmt("[tidepool]\n%s = %s\n", key, bad_daemon_values[_i].value),
                     fmt("t.ini:2: %s: %s", key, bad_daemon_values[_i].message));
}
END_TEST

START_TEST(test_bad_pool_value_in_tidepool_reported_once)
{
    /* A bad default is reported at its own line, once, not once per pool. */
    expect_one_error("[pool.a]\nurl = postgresql://h/a\n[pool.b]\nurl = postgresql://h/b\n"
                     "[tidepool]\npool_size = many\n",
                     "t.ini:6: pool_size: expected an integer >= 0, got 'many'");
}
END_TEST

START_TEST(test_autocommit_refused)
{
    const char *want = "t.ini:3: isolation_level: AUTOCOMMIT is a client-side setting (the driver not "
                       "sending BEGIN); a pooler cannot impose it: leave isolation_level unset and use "
                       "autocommit in the client";
    expect_one_error(one_pool("isolation_level = AUTOCOMMIT\n"), want);
    expect_one_error(one_pool("isolation_level = autocommit\n"), want);
    expect_one_error("[tidepool]\nlog_level = info\nisolation_level = AutoCommit\n", want);
}
END_TEST

START_TEST(test_socket_path_too_long)
{
    char dir[120];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    config_errors errs = load_bad(fmt("[tidepool]\nunix_socket_dir = %s\nlisten_port = 5432\n", dir));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_msg(strncmp(errs.items[0], "t.ini:2: unix_socket_dir: too long: the socket path '",
                          strlen("t.ini:2: unix_socket_dir: too long: the socket path '")) == 0,
                  "%s", errs.items[0]);
    ck_assert_ptr_nonnull(strstr(errs.items[0], "/.s.PGSQL.5432' must be at most 107 characters"));
    config_errors_clear(&errs);

    /* 107 characters exactly fit: 93 + strlen("/.s.PGSQL.5432") */
    char fits[94];
    memset(fits, 'd', sizeof fits - 1);
    fits[0] = '/';
    fits[sizeof fits - 1] = '\0';
    config *cfg = load_ok(fmt("[tidepool]\nunix_socket_dir = %s\nlisten_port = 5432\n", fits));
    ck_assert_str_eq(cfg->unix_socket_dir, fits);
    config_free(cfg);
}
END_TEST

/* ---- structure errors ----------------------------------------------------- */

START_TEST(test_unknown_key)
{
    expect_one_error(one_pool("pool_sise = 5\n"), "t.ini:3: pool_sise: unknown key (did you mean pool_size?)");
    expect_one_error(one_pool("Pool_Size = 5\n"), "t.ini:3: Pool_Size: unknown key (did you mean pool_size?)");
    expect_one_error(one_pool("frobnicate = 5\n"), "t.ini:3: frobnicate: unknown key");
    expect_one_error("[tidepool]\nlisten_adr = *\n",
                     "t.ini:2: listen_adr: unknown key (did you mean listen_addr?)");
    expect_one_error("[tidepool]\nlisten_addresses = *\n",
                     "t.ini:2: listen_addresses: unknown key (did you mean listen_addr?)");
    expect_one_error("[tidepool]\nsslmode = require\n", "t.ini:2: sslmode: unknown key");
}
END_TEST

START_TEST(test_unknown_section)
{
    /* Reported once; the keys in it are not reported one by one. */
    expect_one_error("[databases]\nfoo = bar\nbaz = 1\n",
                     "t.ini:1: [databases]: unknown section (expected [tidepool] or [pool.NAME])");
    expect_one_error("[tidepool]\n[Pool.x]\nurl = postgresql://h/x\n",
                     "t.ini:2: [Pool.x]: unknown section (expected [tidepool] or [pool.NAME])");
    expect_one_error("[pgbouncer]\n", "t.ini:1: [pgbouncer]: unknown section (expected [tidepool] or [pool.NAME])");
    expect_one_error("[]\n", "t.ini:1: []: unknown section (expected [tidepool] or [pool.NAME])");
}
END_TEST

START_TEST(test_daemon_key_in_pool)
{
    expect_one_error(one_pool("listen_port = 6432\n"), "t.ini:3: listen_port: only allowed in [tidepool]");
    expect_one_error(one_pool("auth_type = md5\n"), "t.ini:3: auth_type: only allowed in [tidepool]");
}
END_TEST

START_TEST(test_pool_only_key_in_tidepool)
{
    expect_one_error("[tidepool]\npool_logging_name = x\n",
                     "t.ini:2: pool_logging_name: only allowed in [pool.NAME] (it names one pool)");
}
END_TEST

START_TEST(test_duplicate_key)
{
    expect_one_error(one_pool("pool_size = 5\npool_size = 6\n"),
                     "t.ini:4: pool_size: duplicate key (first at line 3)");
    expect_one_error("[tidepool]\nlisten_port = 1\n\nlisten_port = 2\n",
                     "t.ini:4: listen_port: duplicate key (first at line 2)");
    expect_one_error(one_pool("url = postgresql://h/other\n"), "t.ini:3: url: duplicate key (first at line 2)");
}
END_TEST

START_TEST(test_duplicate_section)
{
    expect_one_error("[pool.x]\nurl = postgresql://h/x\n\n[pool.y]\nurl = postgresql://h/y\n"
                     "[pool.x]\nurl = postgresql://h/x2\n",
                     "t.ini:6: [pool.x]: duplicate section (first at line 1)");
    expect_one_error("[tidepool]\nlisten_port = 1\n[tidepool]\nlog_level = info\n",
                     "t.ini:3: [tidepool]: duplicate section (first at line 1)");
}
END_TEST

/* pool_logging_name is the pool label of the metrics and the name in log
 * lines: two pools may not share one, whether written or defaulted to NAME.
 * The second is reported, at its pool_logging_name line, or at its header
 * when it has none. */
START_TEST(test_duplicate_logging_name)
{
    expect_one_error("[pool.a]\nurl = postgresql://h/a\npool_logging_name = shared\n"
                     "[pool.b]\nurl = postgresql://h/b\npool_logging_name = shared\n",
                     "t.ini:6: pool_logging_name: 'shared' is the logging name of [pool.a] too (line 3); "
                     "each pool needs its own (it is the pool label of the metrics)");
    /* Written in the second pool, defaulted in the first. */
    expect_one_error(
        "[pool.a]\nurl = postgresql://h/a\n\n[pool.b]\nurl = postgresql://h/b\npool_logging_name = a\n",
        "t.ini:6: pool_logging_name: 'a' is the logging name of [pool.a] too (line 1); "
        "each pool needs its own (it is the pool label of the metrics)");
    /* Written in the first, defaulted in the second: at the second's header. */
    expect_one_error(
        "[pool.a]\nurl = postgresql://h/a\npool_logging_name = b\n\n[pool.b]\nurl = postgresql://h/b\n",
        "t.ini:5: pool_logging_name: 'b' is the logging name of [pool.a] too (line 3); "
        "each pool needs its own (it is the pool label of the metrics)");
    /* A third pool with the same name is reported too, against the first. */
    config_errors errs = load_bad("[pool.a]\nurl = postgresql://h/a\n"
                                  "[pool.b]\nurl = postgresql://h/b\npool_logging_name = a\n"
                                  "[pool.c]\nurl = postgresql://h/c\npool_logging_name = a\n");
    ck_assert_uint_eq(errs.count, 2);
    ck_assert_str_eq(errs.items[0],
                     "t.ini:5: pool_logging_name: 'a' is the logging name of [pool.a] too (line 1); "
                     "each pool needs its own (it is the pool label of the metrics)");
    ck_assert_str_eq(errs.items[1],
                     "t.ini:8: pool_logging_name: 'a' is the logging name of [pool.a] too (line 1); "
                     "each pool needs its own (it is the pool label of the metrics)");
    config_errors_clear(&errs);

    /* Names differing in case are different label values; swapped names are fine. */
    config *cfg = load_ok("[pool.a]\nurl = postgresql://h/a\npool_logging_name = A\n"
                          "[pool.b]\nurl = postgresql://h/b\npool_logging_name = a\n"
                          "[pool.c]\nurl = postgresql://h/c\npool_logging_name = b\n");
    ck_assert_str_eq(cfg->pools[1].pool_logging_name, "a");
    config_free(cfg);
}
END_TEST

START_TEST(test_missing_url)
{
    expect_one_error("[tidepool]\nlog_level = info\n\n[pool.inventorydb]\npool_size = 5\n",
                     "t.ini:4: url: missing in [pool.inventorydb]");
    /* An empty section is seen too. */
    expect_one_error("[pool.empty]\n", "t.ini:1: url: missing in [pool.empty]");
}
END_TEST

START_TEST(test_reserved_and_empty_pool_names)
{
    expect_one_error("[pool.tidepool]\nurl = postgresql://h/x\n",
                     "t.ini:1: [pool.tidepool]: the pool name 'tidepool' is reserved for the admin console");
    expect_one_error("[tidepool]\n[pool.]\nurl = postgresql://h/x\n", "t.ini:2: [pool.]: empty pool name");
    /* Not missing its url as well: one message per problem. */
    expect_one_error("[pool.tidepool]\n",
                     "t.ini:1: [pool.tidepool]: the pool name 'tidepool' is reserved for the admin console");
}
END_TEST

START_TEST(test_key_outside_section)
{
    expect_one_error("listen_port = 6432\n[tidepool]\n",
                     "t.ini:1: listen_port: outside any section (write it under [tidepool] or [pool.NAME])");
}
END_TEST

START_TEST(test_syntax_errors)
{
    expect_one_error("[tidepool]\nlisten_port\n", "t.ini:2: syntax error: expected 'key = value' or a [section] header");
    expect_one_error("[pool.x\nurl = postgresql://h/x\n",
                     "t.ini:1: syntax error: a section header without its closing ']'");
    expect_one_error("[tidepool]\n= 5\n", "t.ini:2: syntax error: no key before '='");
    expect_one_error("[tidepool] junk\n", "t.ini:1: [tidepool]: unexpected text after ']'");
}
END_TEST

START_TEST(test_bad_url)
{
    expect_one_error(one_pool("[pool.q]\nurl = mysql://root:secret@h/db\n"),
                     "t.ini:4: url: unsupported scheme: expected postgresql://, postgres:// or "
                     "postgresql+DRIVER:// (a SQLAlchemy URL for PostgreSQL), got 'mysql://...'");
    expect_one_error(one_pool("[pool.q]\nurl = sqlite:///tmp/x.db\n"),
                     "t.ini:4: url: unsupported scheme: expected postgresql://, postgres:// or "
                     "postgresql+DRIVER:// (a SQLAlchemy URL for PostgreSQL), got 'sqlite://...'");
    expect_one_error(one_pool("[pool.q]\nurl = just some words\n"),
                     "t.ini:4: url: expected a postgresql:// URL (postgresql+DRIVER:// and postgres:// "
                     "too) or a libpq keyword string like 'host=... dbname=...'");
    expect_one_error(one_pool("[pool.q]\nurl =\n"),
                     "t.ini:4: url: expected a postgresql:// URL (postgresql+DRIVER:// and postgres:// "
                     "too) or a libpq keyword string like 'host=... dbname=...'");
    expect_one_error(one_pool("[pool.q]\nurl = host=h password='unterminated\n"),
                     "t.ini:4: url: keyword string: a quoted value without its closing quote");
    expect_one_error(one_pool("[pool.q]\nurl = postgresql+://h/db\n"),
                     "t.ini:4: url: expected a driver name after '+' (like postgresql+psycopg2://), "
                     "got 'postgresql+://...'");

    /* The password of a refused url never shows in a message. */
    config_errors errs = load_bad("[pool.q]\nurl = mysql://root:s3cr3t@h/db\n");
    ck_assert_ptr_null(strstr(errs.items[0], "s3cr3t"));
    config_errors_clear(&errs);
}
END_TEST

/* ---- the url ------------------------------------------------------------ */

START_TEST(test_normalize_url_accepts)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db"},
        {"postgres://u:p@h/db", "postgresql://u:p@h/db"},
        {"postgresql+psycopg2://u:p@h/db", "postgresql://u:p@h/db"},
        {"postgresql+psycopg://u:p@h/db?sslmode=require", "postgresql://u:p@h/db?sslmode=require"},
        {"postgresql+asyncpg://u@h/db", "postgresql://u@h/db"},
        {"postgresql+pg8000://u@h/db", "postgresql://u@h/db"},
        {"postgres+psycopg2://u@h/db", "postgresql://u@h/db"},
        {"PostgreSQL://h/db", "postgresql://h/db"},
        {"postgresql://", "postgresql://"},
        {"postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql"},
        {"postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
         "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write"},
        {"host=127.0.0.1 port=5432 dbname=inventorydb user=sa password=sa1234",
         "host=127.0.0.1 port=5432 dbname=inventorydb user=sa password=sa1234"},
        {"dbname=x", "dbname=x"},
        {"host = h  dbname = 'my db' password='it\\'s'", "host = h  dbname = 'my db' password='it\\'s'"},
        {"password=a\\ b dbname=x", "password=a\\ b dbname=x"},
        {"host=h\ndbname=x", "host=h\ndbname=x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = "unset";
        char *out = config_normalize_url(cases[i].in, &why);
        ck_assert_msg(out != NULL, "'%s' refused: %s", cases[i].in, why);
        ck_assert_str_eq(out, cases[i].out);
        ck_assert_ptr_null(why);
        free(out);
    }
}
END_TEST

START_TEST(test_normalize_url_refuses)
{
    const char *bad[] = {
        "mysql://u@h/db",
        "sqlite:///x.db",
        "mysql+pymysql://u@h/db",
        "postgresqlx://h/db",
        "postgresql+://h/db",
        "postgresql+psy-copg://h/db",
        "http://h/",
        "",
        "garbage",
        "postgresql:/h/db",
        "jdbc:postgresql://h/db",
        "=x",
        "host",
        "host dbname=x",
        "host='x",
        "host='x\\'",
        "   ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        char *out = config_normalize_url(bad[i], &why);
        ck_assert_msg(out == NULL, "'%s' accepted as '%s'", bad[i], out ? out : "");
        ck_assert_ptr_nonnull(why);
        ck_assert_msg(strlen(why) > 10, "'%s': short reason '%s'", bad[i], why);
    }
    const char *why = NULL;
    ck_assert_ptr_null(config_normalize_url(NULL, &why));
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(config_normalize_url("mysql://h", NULL)); /* why is optional */
}
END_TEST

static int check_calls;
static char check_seen[256];

static const char *reject_foo(const char *conninfo, void *arg)
{
    ck_assert_ptr_eq(arg, &check_calls);
    check_calls++;
    snprintf(check_seen, sizeof check_seen, "%s", conninfo);
    return strstr(conninfo, "foo=") ? "invalid connection option \"foo\"\n" : NULL;
}

START_TEST(test_conninfo_check_hook)
{
    config_set_conninfo_check(reject_foo, &check_calls);
    check_calls = 0;
    config *cfg = load_ok("[pool.a]\nurl = postgresql+psycopg://h/a\n");
    ck_assert_int_eq(check_calls, 1);
    ck_assert_str_eq(check_seen, "postgresql://h/a"); /* the normalised form */
    config_free(cfg);

    check_calls = 0;
    expect_one_error("[pool.a]\nurl = postgresql://h/a\n[pool.b]\n\nurl = host=h foo=1\n",
                     "t.ini:5: url: invalid connection option \"foo\"");
    ck_assert_int_eq(check_calls, 2);

    /* A url in [tidepool] is checked once, where it is written. */
    check_calls = 0;
    expect_one_error("[tidepool]\nurl = host=h foo=1\n[pool.a]\n[pool.b]\n",
                     "t.ini:2: url: invalid connection option \"foo\"");
    ck_assert_int_eq(check_calls, 1);

    config_set_conninfo_check(NULL, NULL);
    cfg = load_ok("[pool.b]\nurl = host=h foo=1\n");
    config_free(cfg);
}
END_TEST

/* ---- several errors ------------------------------------------------------- */

START_TEST(test_all_errors_collected_in_file_order)
{
    const char *text = "[pool.a]\n"                 /* 1 */
                       "url = mysql://h/a\n"        /* 2: bad scheme */
                       "pool_size = -3\n"           /* 3: out of range */
                       "pool_size = 4\n"            /* 4: duplicate */
                       "listen_port = 1\n"          /* 5: daemon key in pool */
                       "[pool.b]\n"                 /* 6: missing url */
                       "isolation_level = AUTOCOMMIT\n" /* 7 */
                       "[weird]\n"                  /* 8: unknown section */
                       "[pool.a]\n"                 /* 9: duplicate section */
                       "url = postgresql://h/a\n"   /* 10 */
                       "[tidepool]\n"               /* 11 */
                       "max_overflow = -5\n"        /* 12: bad default, resolved first */
                       "colour = blue\n";           /* 13: unknown key */
    config_errors errs = load_bad(text);
    const char *want[] = {
        "t.ini:2: url: unsupported scheme",
        "t.ini:3: pool_size: expected an integer >= 0, got '-3'",
        "t.ini:4: pool_size: duplicate key (first at line 3)",
        "t.ini:5: listen_port: only allowed in [tidepool]",
        "t.ini:6: url: missing in [pool.b]",
        "t.ini:7: isolation_level: AUTOCOMMIT",
        "t.ini:8: [weird]: unknown section",
        "t.ini:9: [pool.a]: duplicate section (first at line 1)",
        "t.ini:12: max_overflow: expected an integer >= -1",
        "t.ini:13: colour: unknown key",
    };
    size_t n = sizeof want / sizeof want[0];
    if (errs.count != n)
        dump(&errs);
    ck_assert_uint_eq(errs.count, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strncmp(errs.items[i], want[i], strlen(want[i])) == 0, "[%zu] '%s' is not '%s...'",
                      i, errs.items[i], want[i]);
    config_errors_clear(&errs);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_ptr_null(errs.items);
}
END_TEST

START_TEST(test_errors_are_appended)
{
    config_errors errs = {0};
    config *cfg = NULL;
    ck_assert_int_eq(config_load_string("[x]\n", "one.ini", &cfg, &errs), -1);
    ck_assert_int_eq(config_load_string("[tidepool]\nlisten_port = 0\n", NULL, &cfg, &errs), -1);
    ck_assert_uint_eq(errs.count, 2);
    ck_assert_str_eq(errs.items[0], "one.ini:1: [x]: unknown section (expected [tidepool] or [pool.NAME])");
    ck_assert_str_eq(errs.items[1], "<string>:2: listen_port: expected an integer from 1 to 65535, got '0'");
    config_errors_clear(&errs);
    config_errors_clear(&errs); /* twice is fine */
    config_errors_clear(NULL);

    /* errs may be NULL: the problems are then only counted out. */
    ck_assert_int_eq(config_load_string("[x]\n", "t.ini", &cfg, NULL), -1);
    ck_assert_ptr_null(cfg);
    config_free(NULL);
}
END_TEST

/* ---- INI syntax ----------------------------------------------------------- */

START_TEST(test_comments_and_blanks)
{
    config *cfg = load_ok("# a comment\n"
                          "; another\n"
                          "\n"
                          "   \n"
                          "[tidepool] ; the daemon\n"
                          "listen_port = 7000 ; inline comment\n"
                          "  # indented comment\n"
                          "auth_file = /etc/tp#1/users ; '#' is not a comment inside a value\n"
                          "[pool.a]\n"
                          "url = postgresql://u:p;w@h/a\n");
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_str_eq(cfg->auth_file, "/etc/tp#1/users");
    ck_assert_str_eq(cfg->pools[0].url, "postgresql://u:p;w@h/a");
    config_free(cfg);
}
END_TEST

START_TEST(test_indented_lines)
{
    /* Blanks at the start of a line mean nothing (as in PgBouncer): an
     * indented key is a key, not the tail of the value above it. */
    config *cfg = load_ok("  [tidepool]\n"
                          "    admin_users = admin\n"
                          "\tlisten_port = 7000\n"
                          "[pool.a]\n"
                          "    url = postgresql://h/a\n"
                          "    pool_size = 2\n"
                          "    on_connect = SET x = 1\n"
                          "    echo = true\n");
    ck_assert_uint_eq(cfg->n_admin_users, 1);
    ck_assert_str_eq(cfg->admin_users[0], "admin");
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_str_eq(cfg->pools[0].url, "postgresql://h/a");
    ck_assert_int_eq(cfg->pools[0].pool_size, 2);
    ck_assert_str_eq(cfg->pools[0].on_connect, "SET x = 1");
    ck_assert_int_eq(cfg->pools[0].echo, CONFIG_ECHO_ON);
    config_free(cfg);

    /* A Python-style continuation line is refused where it stands. */
    expect_one_error(one_pool("on_connect = SET statement_timeout = '30s';\n"
                              "    SET lock_timeout = '5s'\n"),
                     "t.ini:4: SET lock_timeout: unknown key (a value cannot go on over several lines)");
    config_errors errs = load_bad("[tidepool]\nadmin_users = admin,\n    ops\n");
    ck_assert_uint_eq(errs.count, 2);
    ck_assert_str_eq(errs.items[0], "t.ini:2: admin_users: expected comma-separated user names, "
                                    "or nothing for none, got 'admin,'");
    ck_assert_str_eq(errs.items[1], "t.ini:3: syntax error: expected 'key = value' or a [section] header");
    config_errors_clear(&errs);
}
END_TEST

/* In on_connect, the one key whose value is SQL, an inline " ;" comment
 * would silently drop the statements after it: it is an error there, and
 * only there. */
START_TEST(test_on_connect_inline_comment)
{
    expect_one_error(one_pool("on_connect = SET a = 1 ; SET b = 2\n"),
                     "t.ini:3: on_connect: \" ;\" starts a comment here, so the statements after it would "
                     "be lost: write \"SET a = 1; SET b = 2\" (no blank before ';'), or put the comment on "
                     "a line of its own");
    /* A tab is a blank too; a real comment is refused the same way; so is a
     * default written in [tidepool]. */
    expect_one_error(one_pool("on_connect = SET a = 1\t; SET b = 2\n"),
                     "t.ini:3: on_connect: \" ;\" starts a comment here, so the statements after it would "
                     "be lost: write \"SET a = 1; SET b = 2\" (no blank before ';'), or put the comment on "
                     "a line of its own");
    config_errors errs = load_bad("[tidepool]\non_connect = SET a = 1 ; the default\n"
                                  "[pool.p]\nurl = postgresql://h/a\n");
    ck_assert_uint_eq(errs.count, 1);
    const char *want = "t.ini:2: on_connect: \" ;\" starts a comment here";
    ck_assert_msg(strncmp(errs.items[0], want, strlen(want)) == 0, "%s", errs.items[0]);
    config_errors_clear(&errs);

    /* Without a blank before it, ';' is the statement separator. */
    config *cfg = load_ok(one_pool("on_connect = SET a = 1; SET b = 2;\n"));
    ck_assert_str_eq(cfg->pools[0].on_connect, "SET a = 1; SET b = 2;");
    config_free(cfg);
    /* A comment on a line of its own is fine. */
    cfg = load_ok(one_pool("; SET b = 2 waits\non_connect = SET a = 1\n"));
    ck_assert_str_eq(cfg->pools[0].on_connect, "SET a = 1");
    config_free(cfg);
    /* Every other key keeps its inline comments. */
    cfg = load_ok("[tidepool]\nlisten_port = 7000 ; a comment\n"
                  "[pool.p]\nurl = postgresql://h/a ; a comment\npool_logging_name = p2 ; a comment\n");
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_str_eq(cfg->pools[0].url, "postgresql://h/a");
    ck_assert_str_eq(cfg->pools[0].pool_logging_name, "p2");
    config_free(cfg);
}
END_TEST

START_TEST(test_crlf_and_bom)
{
    config *cfg = load_ok("\xEF\xBB\xBF[tidepool]\r\nlisten_port = 7000\r\n[pool.a]\r\nurl = postgresql://h/a\r\n");
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_str_eq(cfg->pools[0].url, "postgresql://h/a");
    ck_assert_int_eq(cfg->pools[0].line, 3);
    config_free(cfg);

    /* No newline at the end. */
    cfg = load_ok("[tidepool]\nlisten_port = 7001");
    ck_assert_int_eq(cfg->listen_port, 7001);
    config_free(cfg);
}
END_TEST

START_TEST(test_long_lines)
{
    char name[81], pad[301], text[2048];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';

    /* A long pool name is kept whole, long comments are fine. */
    snprintf(text, sizeof text, "; %s\n[pool.%s]\nurl = postgresql://h/a\n", pad, name);
    config *cfg = load_ok(text);
    ck_assert_str_eq(cfg->pools[0].name, name);
    config_free(cfg);

    /* A key line longer than inih's buffer (198 characters here) is read as
     * any other: key and value trimmed, an inline " ;" comment dropped, and
     * the lines after it read as they should be. */
    snprintf(text, sizeof text,
             "[pool.a]\n  url =  postgresql://h/a?application_name=%s  ; a comment\npool_size = x\n", pad);
    config_errors errs = load_bad(text);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], "t.ini:3: pool_size: expected an integer >= 0, got 'x'");
    config_errors_clear(&errs);
    snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a?application_name=%s ; c\n", pad);
    cfg = load_ok(text);
    char want[400];
    snprintf(want, sizeof want, "postgresql://h/a?application_name=%s", pad);
    ck_assert_str_eq(cfg->pools[0].url, want);
    config_free(cfg);
    /* ... except for on_connect, whose statements a comment would cut. */
    snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a\non_connect = SELECT '%s' ; SELECT 2\n",
             pad);
    errs = load_bad(text);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_msg(strstr(errs.items[0], "t.ini:3: on_connect: \" ;\" starts a comment here") == errs.items[0],
                  "%s", errs.items[0]);
    snprintf(want, sizeof want, "write \"SELECT '%s'; SELECT 2\" (no blank before ';')", pad);
    ck_assert_msg(strstr(errs.items[0], want) != NULL, "%s", errs.items[0]);
    config_errors_clear(&errs);

    /* A long url is read whole; a long line is still checked like a short
     * one (a duplicate key, an unknown key with a ':' separator). */
    snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a?application_name=%s\n", pad);
    cfg = load_ok(text);
    ck_assert_ptr_nonnull(strstr(cfg->pools[0].url, pad));
    config_free(cfg);
    snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a\nurl = postgresql://h/%s\n", pad);
    expect_one_error(text, "t.ini:3: url: duplicate key (first at line 2)");
    snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a\nnot_a_key: %s\n", pad);
    errs = load_bad(text);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_msg(strncmp(errs.items[0], "t.ini:3: not_a_key: unknown key", 31) == 0, "%s", errs.items[0]);
    config_errors_clear(&errs);

    /* The same line split by inih (198 characters) and by us (one more)
     * gives the same value. */
    for (size_t len = 197; len <= 200; len++) {
        char on_connect[256];
        size_t vlen = len - strlen("on_connect = ");
        memset(on_connect, 'y', vlen);
        on_connect[vlen] = '\0';
        snprintf(text, sizeof text, "[pool.a]\nurl = postgresql://h/a\n    on_connect = %s  \n", on_connect);
        cfg = load_ok(text);
        ck_assert_str_eq(cfg->pools[0].on_connect, on_connect);
        config_free(cfg);
    }
}
END_TEST

/* ---- files ---------------------------------------------------------------- */

static char *write_temp(const char *data, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(test_load_file)
{
    const char text[] = "[tidepool]\nlisten_port = 7000\n[pool.a]\nurl = postgresql://h/a\n";
    char *path = write_temp(text, sizeof text - 1);
    config *cfg = NULL;
    config_errors errs = {0};
    ck_assert_int_eq(config_load_file(path, &cfg, &errs), 0);
    ck_assert_str_eq(cfg->path, path);
    ck_assert_int_eq(cfg->listen_port, 7000);
    ck_assert_uint_eq(cfg->n_pools, 1);
    config_free(cfg);
    unlink(path);

    const char bad[] = "[tidepool]\nlisten_port = 0\n";
    path = write_temp(bad, sizeof bad - 1);
    ck_assert_int_eq(config_load_file(path, &cfg, &errs), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], fmt("%s:2: listen_port: expected an integer from 1 to 65535, got '0'", path));
    config_errors_clear(&errs);
    unlink(path);

    /* A NUL byte inside a line. */
    const char nul[] = "[tidepool]\nlisten_port = 70\0000\nlog_level = loud\n";
    path = write_temp(nul, sizeof nul - 1);
    ck_assert_int_eq(config_load_file(path, &cfg, &errs), -1);
    ck_assert_uint_eq(errs.count, 2);
    ck_assert_str_eq(errs.items[0], fmt("%s:2: the line holds a NUL byte", path));
    ck_assert_str_eq(errs.items[1], fmt("%s:3: log_level: expected error, warn, info or debug, got 'loud'", path));
    config_errors_clear(&errs);
    unlink(path);
}
END_TEST

START_TEST(test_load_file_cannot_open)
{
    config *cfg = (config *)&cfg;
    config_errors errs = {0};
    ck_assert_int_eq(config_load_file("/nonexistent/tidepool.ini", &cfg, &errs), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], "/nonexistent/tidepool.ini: cannot open: No such file or directory");
    config_errors_clear(&errs);

    ck_assert_int_eq(config_load_file("/", &cfg, &errs), -1);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], "/: cannot read: Is a directory");
    config_errors_clear(&errs);
}
END_TEST

static char *example_path(void)
{
    static char path[4096];
    const char *src = getenv("TIDEPOOL_SOURCE_DIR");
    ck_assert_msg(src != NULL, "TIDEPOOL_SOURCE_DIR is not set (run through ctest)");
    snprintf(path, sizeof path, "%s/config/tidepool.ini.example", src);
    return path;
}

static void check_example(const config *cfg)
{
    ck_assert_uint_eq(cfg->n_listen_addrs, 1);
    ck_assert_str_eq(cfg->listen_addrs[0], "127.0.0.1");
    ck_assert_int_eq(cfg->listen_port, 6432);
    ck_assert_str_eq(cfg->unix_socket_dir, "/run/tidepool");
    ck_assert_int_eq(cfg->unix_socket_mode, 0777);
    ck_assert_int_eq(cfg->max_client_conn, 10000);
    ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_SCRAM_SHA_256);
    ck_assert_str_eq(cfg->auth_file, "/etc/tidepool/userlist.txt");
    ck_assert_uint_eq(cfg->n_admin_users, 1);
    ck_assert_str_eq(cfg->admin_users[0], "admin");
    ck_assert_int_eq(cfg->log_level, CONFIG_LOG_INFO);
    ck_assert(cfg->shutdown_timeout == 30.0);
    ck_assert_ptr_null(cfg->metrics_listen);

    const config_pool *p = config_find_pool(cfg, "inventorydb");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->url, "postgresql://sa:sa1234@127.0.0.1:5432/inventorydb");
    ck_assert_str_eq(p->conninfo, "postgresql://sa:sa1234@127.0.0.1:5432/inventorydb");
    ck_assert_int_eq(p->pool_size, 5);
    ck_assert_int_eq(p->max_overflow, 10);
    ck_assert(p->pool_timeout == 30.0);
    ck_assert_int_eq(p->isolation_level, CONFIG_ISOLATION_SERIALIZABLE);
    ck_assert_int_eq(p->echo, CONFIG_ECHO_ON);
    ck_assert_str_eq(p->pool_logging_name, "inventorydb");
    ck_assert_int_eq(p->pool_mode, CONFIG_POOL_MODE_TRANSACTION);
    ck_assert(p->pool_recycle == -1.0);
    ck_assert(!p->pool_pre_ping && !p->pool_use_lifo && !p->read_only && !p->deferrable);
    ck_assert_int_eq(p->pool_reset_on_return, CONFIG_RESET_ROLLBACK);
    ck_assert_int_eq(p->max_client_prepared_statements, 10000);
    ck_assert_ptr_null(p->on_connect);
    ck_assert_int_eq(p->echo_pool, CONFIG_ECHO_OFF);
}

START_TEST(test_example_file_loads)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_file(example_path(), &cfg, &errs);
    dump(&errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(cfg->n_pools, 1);
    check_example(cfg);
    config_free(cfg);
}
END_TEST

static char *read_example(void)
{
    FILE *f = fopen(example_path(), "r");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    ck_assert_uint_lt(n, sizeof buf - 1);
    buf[n] = '\0';
    return buf;
}

/* The commented-out ";key = value" lines state the defaults: enabling them
 * all changes nothing (and enables the second, example pool). */
START_TEST(test_example_commented_defaults_are_true)
{
    const char *src = read_example();
    static char out[65536];
    size_t o = 0;
    for (const char *line = src; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        bool key = line[0] == ';' && (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z'));
        if (key) {
            line++;
            len--;
        }
        memcpy(out + o, line, len);
        o += len;
        line += len;
    }
    out[o] = '\0';
    config *cfg = load_ok(out);
    check_example(cfg);
    ck_assert_uint_eq(cfg->n_pools, 2);
    const config_pool *ro = config_find_pool(cfg, "inventorydb_readonly");
    ck_assert_ptr_nonnull(ro);
    ck_assert_str_eq(ro->conninfo, "postgresql://sa:sa1234@127.0.0.1:5432/inventorydb");
    ck_assert(ro->read_only);
    config_free(cfg);
}
END_TEST

/* Every key of SPEC §3 is written in the example, commented out or not. */
START_TEST(test_example_documents_every_key)
{
    const char *src = read_example();
    const char *keys[] = {
        "listen_addr", "listen_port", "unix_socket_dir", "unix_socket_mode", "max_client_conn",
        "auth_type", "auth_file", "admin_users", "log_level", "shutdown_timeout", "metrics_listen",
        "max_message_size", "client_login_timeout", "client_idle_timeout", "allowed_users",
        "url", "pool_mode", "pool_size", "max_overflow", "pool_timeout", "pool_recycle",
        "pool_pre_ping", "pool_use_lifo", "pool_reset_on_return", "isolation_level", "read_only",
        "deferrable", "on_connect", "echo", "echo_pool", "pool_logging_name",
        "client_tls_sslmode", "client_tls_cert_file", "client_tls_key_file", "client_tls_ca_file",
        "client_tls_protocols", "client_tls_ciphers",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "\n%s = ", keys[i]);
        snprintf(b, sizeof b, "\n;%s =", keys[i]);
        ck_assert_msg(strstr(src, a) || strstr(src, b), "%s is not in the example", keys[i]);
    }
}
END_TEST

/* ---- names ---------------------------------------------------------------- */

START_TEST(test_to_str)
{
    ck_assert_str_eq(config_pool_mode_to_str(CONFIG_POOL_MODE_TRANSACTION), "transaction");
    ck_assert_str_eq(config_pool_mode_to_str(CONFIG_POOL_MODE_SESSION), "session");
    ck_assert_str_eq(config_reset_style_to_str(CONFIG_RESET_ROLLBACK), "rollback");
    ck_assert_str_eq(config_reset_style_to_str(CONFIG_RESET_COMMIT), "commit");
    ck_assert_str_eq(config_reset_style_to_str(CONFIG_RESET_NONE), "none");
    ck_assert_str_eq(config_isolation_to_str(CONFIG_ISOLATION_DEFAULT), "");
    ck_assert_str_eq(config_isolation_to_str(CONFIG_ISOLATION_READ_UNCOMMITTED), "READ UNCOMMITTED");
    ck_assert_str_eq(config_isolation_to_str(CONFIG_ISOLATION_READ_COMMITTED), "READ COMMITTED");
    ck_assert_str_eq(config_isolation_to_str(CONFIG_ISOLATION_REPEATABLE_READ), "REPEATABLE READ");
    ck_assert_str_eq(config_isolation_to_str(CONFIG_ISOLATION_SERIALIZABLE), "SERIALIZABLE");
    ck_assert_str_eq(config_echo_to_str(CONFIG_ECHO_OFF), "false");
    ck_assert_str_eq(config_echo_to_str(CONFIG_ECHO_ON), "true");
    ck_assert_str_eq(config_echo_to_str(CONFIG_ECHO_DEBUG), "debug");
    ck_assert_str_eq(config_auth_type_to_str(CONFIG_AUTH_SCRAM_SHA_256), "scram-sha-256");
    ck_assert_str_eq(config_auth_type_to_str(CONFIG_AUTH_MD5), "md5");
    ck_assert_str_eq(config_auth_type_to_str(CONFIG_AUTH_PASSWORD), "password");
    ck_assert_str_eq(config_auth_type_to_str(CONFIG_AUTH_TRUST), "trust");
    ck_assert_str_eq(config_auth_type_to_str(CONFIG_AUTH_PEER), "peer");
    ck_assert_str_eq(config_log_level_to_str(CONFIG_LOG_ERROR), "error");
    ck_assert_str_eq(config_log_level_to_str(CONFIG_LOG_WARN), "warn");
    ck_assert_str_eq(config_log_level_to_str(CONFIG_LOG_INFO), "info");
    ck_assert_str_eq(config_log_level_to_str(CONFIG_LOG_DEBUG), "debug");

    /* Each name reads back as the same value. */
    for (int i = CONFIG_ISOLATION_READ_UNCOMMITTED; i <= CONFIG_ISOLATION_SERIALIZABLE; i++) {
        config *cfg = load_ok(one_pool(fmt("isolation_level = %s\n", config_isolation_to_str((config_isolation)i))));
        ck_assert_int_eq(cfg->pools[0].isolation_level, i);
        config_free(cfg);
    }
}
END_TEST

/* ---- client TLS keys (docs/tls.md) ---------------------------------------- */

START_TEST(test_tls_defaults)
{
    config *cfg = load_ok("");
    ck_assert_int_eq(cfg->client_tls_sslmode, CONFIG_TLS_DISABLE);
    ck_assert_ptr_null(cfg->client_tls_cert_file);
    ck_assert_ptr_null(cfg->client_tls_key_file);
    ck_assert_ptr_null(cfg->client_tls_ca_file);
    ck_assert_uint_eq(cfg->client_tls_protocols, CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3);
    ck_assert_str_eq(cfg->client_tls_ciphers, "HIGH:!aNULL:!MD5");
    config_free(cfg);
}
END_TEST

START_TEST(test_tls_every_key)
{
    config *cfg = load_ok("[tidepool]\n"
                          "client_tls_sslmode = Require\n"
                          "client_tls_cert_file = /etc/tidepool/server.crt\n"
                          "client_tls_key_file = /etc/tidepool/server.key\n"
                          "client_tls_ca_file = /etc/tidepool/ca.crt\n"
                          "client_tls_protocols = tlsv1.3\n"
                          "client_tls_ciphers = ECDHE+AESGCM\n");
    ck_assert_int_eq(cfg->client_tls_sslmode, CONFIG_TLS_REQUIRE);
    ck_assert_str_eq(cfg->client_tls_cert_file, "/etc/tidepool/server.crt");
    ck_assert_str_eq(cfg->client_tls_key_file, "/etc/tidepool/server.key");
    ck_assert_str_eq(cfg->client_tls_ca_file, "/etc/tidepool/ca.crt");
    ck_assert_uint_eq(cfg->client_tls_protocols, CONFIG_TLS_V1_3);
    ck_assert_str_eq(cfg->client_tls_ciphers, "ECDHE+AESGCM");
    config_free(cfg);
}
END_TEST

static const struct {
    const char *word;
    config_tls_mode mode;
} tls_modes[] = {
    {"disable", CONFIG_TLS_DISABLE},
    {"allow", CONFIG_TLS_ALLOW},
    {"prefer", CONFIG_TLS_PREFER},
    {"require", CONFIG_TLS_REQUIRE},
};

START_TEST(test_tls_modes)
{
    char text[256];
    snprintf(
        text, sizeof text,
        "[tidepool]\nclient_tls_sslmode = %s\nclient_tls_cert_file = a.crt\nclient_tls_key_file = a.key\n",
        tls_modes[_i].word);
    config *cfg = load_ok(text);
    ck_assert_int_eq(cfg->client_tls_sslmode, tls_modes[_i].mode);
    ck_assert_str_eq(config_tls_mode_to_str(tls_modes[_i].mode), tls_modes[_i].word);
    config_free(cfg);
}
END_TEST

static const struct {
    const char *text;
    unsigned bits;
} tls_protocols[] = {
    {"secure", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"all", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"legacy", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"tlsv1.2", CONFIG_TLS_V1_2},
    {"TLSv1.2,TLSv1.3", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"tlsv1.0, tlsv1.1", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1},
    {"tlsv1.1 tlsv1.3", CONFIG_TLS_V1_1 | CONFIG_TLS_V1_3},
};

START_TEST(test_tls_protocols)
{
    char text[256];
    snprintf(text, sizeof text, "[tidepool]\nclient_tls_protocols = %s\n", tls_protocols[_i].text);
    config *cfg = load_ok(text);
    ck_assert_uint_eq(cfg->client_tls_protocols, tls_protocols[_i].bits);
    config_free(cfg);
}
END_TEST

#define PROTOCOLS_EXPECTED                                                                                   \
    "expected tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure (= tlsv1.2,tlsv1.3) or all, comma-separated, got "

static const struct {
    const char *key, *value, *message;
} bad_tls_values[] = {
    {"client_tls_sslmode", "verify-full", "expected disable, allow, prefer or require, got 'verify-full'"},
    {"client_tls_sslmode", "on", "expected disable, allow, prefer or require, got 'on'"},
    {"client_tls_protocols", "", PROTOCOLS_EXPECTED "''"},
    {"client_tls_protocols", "sslv3", PROTOCOLS_EXPECTED "'sslv3'"},
    {"client_tls_protocols", "tlsv1.2,tlsv1.4", PROTOCOLS_EXPECTED "'tlsv1.2,tlsv1.4'"},
    {"client_tls_protocols", "tlsv1.2tlsv1.3tlsv1.3", PROTOCOLS_EXPECTED "'tlsv1.2tlsv1.3tlsv1.3'"},
    {"client_tls_ciphers", "", "expected an OpenSSL cipher list (like HIGH:!aNULL:!MD5), got ''"},
};

START_TEST(test_tls_bad_values)
{
    char text[256], want[512];
    snprintf(text, sizeof text, "[tidepool]\n%s = %s\n", bad_tls_values[_i].key, bad_tls_values[_i].value);
    snprintf(want, sizeof want, "t.ini:2: %s: %s", bad_tls_values[_i].key, bad_tls_values[_i].message);
    expect_one_error(text, want);
}
END_TEST

START_TEST(test_tls_mode_needs_cert_and_key)
{
    expect_one_error("[tidepool]\nlisten_port = 7000\nclient_tls_sslmode = require\n",
                     "t.ini:3: client_tls_sslmode: 'require' needs client_tls_cert_file and "
                     "client_tls_key_file");
    expect_one_error("[tidepool]\nclient_tls_sslmode = allow\nclient_tls_cert_file = a.crt\n",
                     "t.ini:2: client_tls_sslmode: 'allow' needs client_tls_key_file");
    expect_one_error("[tidepool]\nclient_tls_key_file = a.key\nclient_tls_sslmode = prefer\n",
                     "t.ini:3: client_tls_sslmode: 'prefer' needs client_tls_cert_file");
    /* disable: files may be written (for later) or not. */
    config *cfg = load_ok("[tidepool]\nclient_tls_sslmode = disable\nclient_tls_cert_file = a.crt\n");
    config_free(cfg);
}
END_TEST

START_TEST(test_tls_keys_not_in_pools)
{
    expect_one_error("[pool.p]\nurl = postgresql://h/db\nclient_tls_sslmode = require\n",
                     "t.ini:3: client_tls_sslmode: only allowed in [tidepool]");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_test(tc, test_empty_file_is_all_defaults);
    tcase_add_test(tc, test_zero_pools_is_valid);
    tcase_add_test(tc, test_pool_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_every_daemon_key);
    tcase_add_test(tc, test_every_pool_key);
    tcase_add_loop_test(tc, test_boolean_spellings, 0, sizeof bools / sizeof bools[0]);
    tcase_add_test(tc, test_echo_values);
    tcase_add_test(tc, test_reset_on_return_values);
    tcase_add_test(tc, test_isolation_spellings);
    tcase_add_test(tc, test_other_enums);
    tcase_add_test(tc, test_integer_bounds_accepted);
    tcase_add_test(tc, test_seconds_accepted);
    tcase_add_test(tc, test_seconds_ignore_locale);
    tcase_add_test(tc, test_lists_and_empties);
    tcase_add_test(tc, test_limits_keys);
    tcase_add_test(tc, test_allowed_users);
    tcase_add_test(tc, test_url_has_password);
    suite_add_tcase(s, tc);

    tc = tcase_create("resolution");
    tcase_add_test(tc, test_tidepool_pool_keys_are_defaults);
    tcase_add_test(tc, test_tidepool_section_last);
    tcase_add_test(tc, test_tidepool_section_between_pools);
    tcase_add_test(tc, test_url_default_in_tidepool);
    tcase_add_test(tc, test_pool_order_names_and_lines);
    tcase_add_test(tc, test_key_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_values");
    tcase_add_loop_test(tc, test_bad_pool_value, 0, sizeof bad_pool_values / sizeof bad_pool_values[0]);
    tcase_add_loop_test(tc, test_bad_daemon_value, 0, sizeof bad_daemon_values / sizeof bad_daemon_values[0]);
    tcase_add_test(tc, test_bad_pool_value_in_tidepool_reported_once);
    tcase_add_test(tc, test_autocommit_refused);
    tcase_add_test(tc, test_socket_path_too_long);
    suite_add_tcase(s, tc);

    tc = tcase_create("structure");
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_daemon_key_in_pool);
    tcase_add_test(tc, test_pool_only_key_in_tidepool);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_duplicate_section);
    tcase_add_test(tc, test_duplicate_logging_name);
    tcase_add_test(tc, test_missing_url);
    tcase_add_test(tc, test_reserved_and_empty_pool_names);
    tcase_add_test(tc, test_key_outside_section);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_bad_url);
    tcase_add_test(tc, test_all_errors_collected_in_file_order);
    tcase_add_test(tc, test_errors_are_appended);
    suite_add_tcase(s, tc);

    tc = tcase_create("url");
    tcase_add_test(tc, test_normalize_url_accepts);
    tcase_add_test(tc, test_normalize_url_refuses);
    tcase_add_test(tc, test_conninfo_check_hook);
    suite_add_tcase(s, tc);

    tc = tcase_create("syntax");
    tcase_add_test(tc, test_comments_and_blanks);
    tcase_add_test(tc, test_indented_lines);
    tcase_add_test(tc, test_on_connect_inline_comment);
    tcase_add_test(tc, test_crlf_and_bom);
    tcase_add_test(tc, test_long_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("client_tls");
    tcase_add_test(tc, test_tls_defaults);
    tcase_add_test(tc, test_tls_every_key);
    tcase_add_loop_test(tc, test_tls_modes, 0, sizeof tls_modes / sizeof tls_modes[0]);
    tcase_add_loop_test(tc, test_tls_protocols, 0, sizeof tls_protocols / sizeof tls_protocols[0]);
    tcase_add_loop_test(tc, test_tls_bad_values, 0, sizeof bad_tls_values / sizeof bad_tls_values[0]);
    tcase_add_test(tc, test_tls_mode_needs_cert_and_key);
    tcase_add_test(tc, test_tls_keys_not_in_pools);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_file_cannot_open);
    tcase_add_test(tc, test_example_file_loads);
    tcase_add_test(tc, test_example_commented_defaults_are_true);
    tcase_add_test(tc, test_example_documents_every_key);
    tcase_add_test(tc, test_to_str);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
