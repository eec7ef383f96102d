/* config_keys.c: the table of every key tidepool knows (SPEC §3).
 *
 * One row per key says where it may be written, what type of value it takes,
 * which field it fills, what to tell a user who got it wrong, and its default
 * written as text. Defaults go through the same parsers as the file, so the
 * table is the single place that states them, and a default can never be a
 * value the file would refuse. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

typedef enum {
    KIND_INT,       /* int, min..max */
    KIND_OCTAL,     /* int, a file mode 0..0777 */
    KIND_SECONDS,   /* double >= 0; -1 too when min is -1 */
    KIND_BOOL,      /* bool */
    KIND_ENUM,      /* an enum, from `words` */
    KIND_ISOLATION, /* config_isolation */
    KIND_ADDRS,     /* char ** at offset, size_t count at offset2 */
    KIND_USERS,     /* same, items may hold blanks */
    KIND_DIR,       /* char *: an absolute path, empty = NULL */
    KIND_TEXT,      /* char *: anything, empty = NULL */
    KIND_NAME,      /* char *: anything not empty */
    KIND_HOSTPORT,  /* char *: HOST:PORT, empty = NULL */
    KIND_URL,       /* char * url at offset, char * conninfo at offset2 */
    KIND_TLS_PROTOCOLS, /* unsigned: CONFIG_TLS_V1_* bits */
} key_kind;

struct config_key {
    const char *name;
    config_scope scope;
    key_kind kind;
    size_t offset;
    size_t offset2;
    long min, max;
    const config_word *words;
    const char *expected; /* completes "expected …, got '…'" */
    const char *dflt;     /* the default as text; NULL = none (field stays 0) */
};

_Static_assert(sizeof(config_pool_mode) == sizeof(int) && sizeof(config_reset_style) == sizeof(int) &&
                   sizeof(config_echo) == sizeof(int) && sizeof(config_auth_type) == sizeof(int) &&
                   sizeof(config_log_level) == sizeof(int) && sizeof(config_tls_mode) == sizeof(int),
               "enum fields are stored as int");

static const config_word pool_mode_words[] = {
    {"transaction", CONFIG_POOL_MODE_TRANSACTION},
    {"session", CONFIG_POOL_MODE_SESSION},
    {NULL, 0},
};

/* SQLAlchemy also takes True (= rollback) and False/None (= none). */
static const config_word reset_words[] = {
    {"rollback", CONFIG_RESET_ROLLBACK}, {"commit", CONFIG_RESET_COMMIT},
    {"none", CONFIG_RESET_NONE},         {"true", CONFIG_RESET_ROLLBACK},
    {"yes", CONFIG_RESET_ROLLBACK},      {"on", CONFIG_RESET_ROLLBACK},
    {"1", CONFIG_RESET_ROLLBACK},        {"false", CONFIG_RESET_NONE},
    {"no", CONFIG_RESET_NONE},           {"off", CONFIG_RESET_NONE},
    {"0", CONFIG_RESET_NONE},            {NULL, 0},
};

static const config_word echo_words[] = {
    {"true", CONFIG_ECHO_ON},   {"yes", CONFIG_ECHO_ON},  {"on", CONFIG_ECHO_ON},
    {"1", CONFIG_ECHO_ON},      {"false", CONFIG_ECHO_OFF}, {"no", CONFIG_ECHO_OFF},
    {"off", CONFIG_ECHO_OFF},   {"0", CONFIG_ECHO_OFF},   {"debug", CONFIG_ECHO_DEBUG},
    {NULL, 0},
};

static const config_word auth_words[] = {
    {"scram-sha-256", CONFIG_AUTH_SCRAM_SHA_256},
    {"md5", CONFIG_AUTH_MD5},
    {"password", CONFIG_AUTH_PASSWORD},
    {"trust", CONFIG_AUTH_TRUST},
    {"peer", CONFIG_AUTH_PEER},
    {NULL, 0},
};

static const config_word log_words[] = {
    {"error", CONFIG_LOG_ERROR}, {"warn", CONFIG_LOG_WARN},   {"warning", CONFIG_LOG_WARN},
    {"info", CONFIG_LOG_INFO},   {"debug", CONFIG_LOG_DEBUG}, {NULL, 0},
};

static const config_word tls_mode_words[] = {
    {"disable", CONFIG_TLS_DISABLE}, {"allow", CONFIG_TLS_ALLOW},
    {"prefer", CONFIG_TLS_PREFER},   {"require", CONFIG_TLS_REQUIRE},
    {NULL, 0},
};

#define BOOLEAN "a boolean (true/false, yes/no, on/off, 1/0)"
#define D(field) offsetof(config, field)
#define P(field) offsetof(config_pool, field)

static const config_key keys[] = {
    /* [tidepool] (SPEC §3.1) */
    {"listen_addr", CONFIG_SCOPE_DAEMON, KIND_ADDRS, D(listen_addrs), D(n_listen_addrs), 0, 0, NULL,
     "comma-separated addresses or host names (like 127.0.0.1,::1, localhost or *), or nothing for no TCP",
     "127.0.0.1"},
    {"listen_port", CONFIG_SCOPE_DAEMON, KIND_INT, D(listen_port), 0, 1, 65535, NULL,
     "an integer from 1 to 65535", "6432"},
    {"unix_socket_dir", CONFIG_SCOPE_DAEMON, KIND_DIR, D(unix_socket_dir), 0, 0, 0, NULL,
     "an absolute directory path, or nothing for no Unix socket", "/run/tidepool"},
    {"unix_socket_mode", CONFIG_SCOPE_DAEMON, KIND_OCTAL, D(unix_socket_mode), 0, 0, 0777, NULL,
     "an octal mode from 0 to 0777 (like 0777 or 0660)", "0777"},
    {"max_client_conn", CONFIG_SCOPE_DAEMON, KIND_INT, D(max_client_conn), 0, 1, INT_MAX, NULL,
     "an integer >= 1", "10000"},
    {"max_message_size", CONFIG_SCOPE_DAEMON, KIND_INT, D(max_message_size), 0, 1024, 1073741824, NULL,
     "a number of bytes from 1024 to 1073741824", "1073741824"},
    {"client_login_timeout", CONFIG_SCOPE_DAEMON, KIND_SECONDS, D(client_login_timeout), 0, 0, 0, NULL,
     "a number of seconds >= 0 (0 = no limit)", "60"},
    {"client_idle_timeout", CONFIG_SCOPE_DAEMON, KIND_SECONDS, D(client_idle_timeout), 0, 0, 0, NULL,
     "a number of seconds >= 0 (0 = no limit)", "0"},
    {"auth_type", CONFIG_SCOPE_DAEMON, KIND_ENUM, D(auth_type), 0, 0, 0, auth_words,
     "scram-sha-256, md5, password, trust or peer", "scram-sha-256"},
    {"auth_file", CONFIG_SCOPE_DAEMON, KIND_TEXT, D(auth_file), 0, 0, 0, NULL, "a file name", ""},
    {"admin_users", CONFIG_SCOPE_DAEMON, KIND_USERS, D(admin_users), D(n_admin_users), 0, 0, NULL,
     "comma-separated user names, or nothing for none", ""},
    {"log_level", CONFIG_SCOPE_DAEMON, KIND_ENUM, D(log_level), 0, 0, 0, log_words,
     "error, warn, info or debug", "info"},
    {"shutdown_timeout", CONFIG_SCOPE_DAEMON, KIND_SECONDS, D(shutdown_timeout), 0, 0, 0, NULL,
     "a number of seconds >= 0", "30"},
    {"metrics_listen", CONFIG_SCOPE_DAEMON, KIND_HOSTPORT, D(metrics_listen), 0, 0, 0, NULL,
     "HOST:PORT (like 127.0.0.1:9127 or [::1]:9127), or nothing for none", ""},
    /* client TLS (docs/tls.md); files are checked by the daemon (--check) */
    {"client_tls_sslmode", CONFIG_SCOPE_DAEMON, KIND_ENUM, D(client_tls_sslmode), 0, 0, 0, tls_mode_words,
     "disable, allow, prefer or require", "disable"},
    {"client_tls_cert_file", CONFIG_SCOPE_DAEMON, KIND_TEXT, D(client_tls_cert_file), 0, 0, 0, NULL,
     "a file name", ""},
    {"client_tls_key_file", CONFIG_SCOPE_DAEMON, KIND_TEXT, D(client_tls_key_file), 0, 0, 0, NULL,
     "a file name", ""},
    {"client_tls_ca_file", CONFIG_SCOPE_DAEMON, KIND_TEXT, D(client_tls_ca_file), 0, 0, 0, NULL,
     "a file name", ""},
    {"client_tls_protocols", CONFIG_SCOPE_DAEMON, KIND_TLS_PROTOCOLS, D(client_tls_protocols), 0, 0, 0,
     NULL, "tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure (= tlsv1.2,tlsv1.3) or all, comma-separated",
     "secure"},
    {"client_tls_ciphers", CONFIG_SCOPE_DAEMON, KIND_NAME, D(client_tls_ciphers), 0, 0, 0, NULL,
     "an OpenSSL cipher list (like HIGH:!aNULL:!MD5)", "HIGH:!aNULL:!MD5"},

    /* [pool.NAME], and defaults for every pool in [tidepool] (SPEC §3.2) */
    {"url", CONFIG_SCOPE_POOL, KIND_URL, P(url), P(conninfo), 0, 0, NULL, NULL, NULL},
    {"pool_mode", CONFIG_SCOPE_POOL, KIND_ENUM, P(pool_mode), 0, 0, 0, pool_mode_words,
     "'transaction' or 'session'", "transaction"},
    {"pool_size", CONFIG_SCOPE_POOL, KIND_INT, P(pool_size), 0, 0, INT_MAX, NULL,
     "an integer >= 0", "5"},
    {"max_overflow", CONFIG_SCOPE_POOL, KIND_INT, P(max_overflow), 0, -1, INT_MAX, NULL,
     "an integer >= -1 (-1 = no limit)", "10"},
    {"pool_timeout", CONFIG_SCOPE_POOL, KIND_SECONDS, P(pool_timeout), 0, 0, 0, NULL,
     "a number of seconds >= 0", "30"},
    {"pool_recycle", CONFIG_SCOPE_POOL, KIND_SECONDS, P(pool_recycle), 0, -1, 0, NULL,
     "a number of seconds >= 0, or -1 for never", "-1"},
    {"pool_pre_ping", CONFIG_SCOPE_POOL, KIND_BOOL, P(pool_pre_ping), 0, 0, 0, NULL, BOOLEAN, "false"},
    {"pool_use_lifo", CONFIG_SCOPE_POOL, KIND_BOOL, P(pool_use_lifo), 0, 0, 0, NULL, BOOLEAN, "false"},
    {"pool_reset_on_return", CONFIG_SCOPE_POOL, KIND_ENUM, P(pool_reset_on_return), 0, 0, 0,
     reset_words, "'rollback', 'commit' or 'none' (true = rollback, false = none)", "rollback"},
    {"isolation_level", CONFIG_SCOPE_POOL, KIND_ISOLATION, P(isolation_level), 0, 0, 0, NULL,
     "READ COMMITTED, REPEATABLE READ, SERIALIZABLE or READ UNCOMMITTED, or nothing for the "
     "server's default",
     ""},
    {"read_only", CONFIG_SCOPE_POOL, KIND_BOOL, P(read_only), 0, 0, 0, NULL, BOOLEAN, "false"},
    {"deferrable", CONFIG_SCOPE_POOL, KIND_BOOL, P(deferrable), 0, 0, 0, NULL, BOOLEAN, "false"},
    {"on_connect", CONFIG_SCOPE_POOL, KIND_TEXT, P(on_connect), 0, 0, 0, NULL, "SQL", ""},
    {"echo", CONFIG_SCOPE_POOL, KIND_ENUM, P(echo), 0, 0, 0, echo_words, BOOLEAN " or 'debug'",
     "false"},
    {"echo_pool", CONFIG_SCOPE_POOL, KIND_ENUM, P(echo_pool), 0, 0, 0, echo_words,
     BOOLEAN " or 'debug'", "false"},
    {"max_prepared_statements", CONFIG_SCOPE_POOL, KIND_INT, P(max_prepared_statements), 0, 0, 1000000,
     NULL, "an integer >= 0 (0 = do not cache prepared statements on backends)", "200"},
    {"max_client_prepared_statements", CONFIG_SCOPE_POOL, KIND_INT, P(max_client_prepared_statements), 0, 0,
     INT_MAX, NULL, "an integer >= 0 (0 = no limit)", "10000"},
    {"allowed_users", CONFIG_SCOPE_POOL, KIND_USERS, P(allowed_users), P(n_allowed_users), 0, 0, NULL,
     "comma-separated user names, or nothing for every user", ""},
    {"pool_logging_name", CONFIG_SCOPE_POOL_ONLY, KIND_NAME, P(pool_logging_name), 0, 0, 0, NULL,
     "a name that is not empty", NULL},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

const config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

config_scope config_key_scope(const config_key *k)
{
    return k->scope;
}

/* Edit distance between a (lower-cased) and b, giving up above 3. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40 || (la > lb ? la - lb : lb - la) > 3)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != b[j - 1];
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *config_key_suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* at most 2 edits */
    size_t len = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t d = distance(name, keys[i].name);
        if (d < best_d && d < len) {
            best = keys[i].name;
            best_d = d;
        }
    }
    if (best)
        return best;
    /* "listen_addresses" (PostgreSQL's name): the longest key it starts with. */
    size_t best_len = 3;
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t kl = strlen(keys[i].name);
        if (kl > best_len && kl < len && strncmp(name, keys[i].name, kl) == 0) {
            best = keys[i].name;
            best_len = kl;
        }
    }
    return best;
}

static void *field(void *base, size_t offset)
{
    return (char *)base + offset;
}

static void set_string(void *base, size_t offset, char *s)
{
    char **slot = field(base, offset);
    free(*slot);
    *slot = s;
}

/* "expected …, got '…'", the usual refusal. */
static char *expected(const config_key *k, const char *text, const char *note)
{
    return config_fmt("expected %s, got '%s'%s", k->expected, text, note);
}

static int apply_url(const config_key *k, const char *text, void *base, char **why)
{
    const char *bad = NULL;
    char *conninfo = config_normalize_url(text, &bad);
    if (!conninfo) {
        if (bad && strcmp(bad, "out of memory") == 0) {
            *why = NULL;
            return -1;
        }
        /* Never echo the url: it may hold a password. The scheme is safe. */
        char *scheme = config_url_scheme(text);
        *why = scheme ? config_fmt("%s, got '%s://...'", bad, scheme) : config_fmt("%s", bad);
        free(scheme);
        return -1;
    }
    const char *hook = config_run_conninfo_check(conninfo);
    if (hook) {
        free(conninfo);
        size_t n = strlen(hook);
        while (n > 0 && isspace((unsigned char)hook[n - 1]))
            n--; /* libpq's messages end with a newline */
        *why = config_fmt("%.*s", (int)n, hook);
        return -1;
    }
    char *url = strdup(text);
    if (!url) {
        free(conninfo);
        *why = NULL;
        return -1;
    }
    set_string(base, k->offset, url);
    set_string(base, k->offset2, conninfo);
    return 0;
}

static int apply_list(const config_key *k, const char *text, void *base, char **why)
{
    char **items;
    size_t n;
    int rc = config_split_list(text, k->kind == KIND_ADDRS, &items, &n);
    if (rc == -2) {
        *why = NULL;
        return -1;
    }
    if (rc < 0) {
        *why = expected(k, text, "");
        return -1;
    }
    char ***slot = field(base, k->offset);
    size_t *count = field(base, k->offset2);
    config_free_list(*slot, *count);
    *slot = items;
    *count = n;
    return 0;
}

/* KIND_DIR, KIND_TEXT, KIND_NAME, KIND_HOSTPORT: a string or NULL. */
static int apply_string(const config_key *k, const char *text, void *base, char **why)
{
    bool ok = true;
    if (k->kind == KIND_NAME)
        ok = *text != '\0';
    else if (k->kind == KIND_DIR)
        ok = *text == '\0' || *text == '/';
    else if (k->kind == KIND_HOSTPORT)
        ok = *text == '\0' || config_check_hostport(text) == 0;
    if (!ok) {
        *why = expected(k, text, "");
        return -1;
    }
    char *s = NULL;
    if (*text) {
        s = strdup(text);
        if (!s) {
            *why = NULL;
            return -1;
        }
    }
    set_string(base, k->offset, s);
    return 0;
}

int config_key_apply(const config_key *k, const char *text, void *base, char **why)
{
    *why = NULL;
    switch (k->kind) {
    case KIND_INT: {
        long v;
        if (config_parse_int(text, k->min, k->max, &v) < 0) {
            bool big = config_int_out_of_range(text);
            *why = expected(k, text, big ? " (out of range)" : "");
            return -1;
        }
        *(int *)field(base, k->offset) = (int)v;
        return 0;
    }
    case KIND_OCTAL: {
        int v;
        if (config_parse_octal_mode(text, &v) < 0) {
            *why = expected(k, text, "");
            return -1;
        }
        *(int *)field(base, k->offset) = v;
        return 0;
    }
    case KIND_SECONDS: {
        double v;
        bool too_large;
        if (config_parse_seconds(text, k->min == -1, &v, &too_large) < 0) {
            char note[64] = "";
            if (too_large)
                snprintf(note, sizeof note, " (too large: at most %.0f)", CONFIG_MAX_SECONDS);
            *why = expected(k, text, note);
            return -1;
        }
        *(double *)field(base, k->offset) = v;
        return 0;
    }
    case KIND_BOOL: {
        bool v;
        if (config_parse_bool(text, &v) < 0) {
            *why = expected(k, text, "");
            return -1;
        }
        *(bool *)field(base, k->offset) = v;
        return 0;
    }
    case KIND_ENUM: {
        int v;
        if (config_parse_word(text, k->words, &v) < 0) {
            *why = expected(k, text, "");
            return -1;
        }
        *(int *)field(base, k->offset) = v;
        return 0;
    }
    case KIND_ISOLATION: {
        config_isolation v;
        bool autocommit;
        if (config_parse_isolation(text, &v, &autocommit) < 0) {
            if (autocommit)
                *why = config_fmt(
                    "AUTOCOMMIT is a client-side setting (the driver not sending BEGIN); a pooler "
                    "cannot impose it: leave isolation_level unset and use autocommit in the client");
            else
                *why = expected(k, text, "");
            return -1;
        }
        *(config_isolation *)field(base, k->offset) = v;
        return 0;
    }
    case KIND_ADDRS:
    case KIND_USERS:
        return apply_list(k, text, base, why);
    case KIND_DIR:
    case KIND_TEXT:
    case KIND_NAME:
    case KIND_HOSTPORT:
        return apply_string(k, text, base, why);
    case KIND_URL:
        return apply_url(k, text, base, why);
    case KIND_TLS_PROTOCOLS: {
        unsigned v;
        if (config_parse_tls_protocols(text, &v) < 0) {
            *why = expected(k, text, "");
            return -1;
        }
        *(unsigned *)field(base, k->offset) = v;
        return 0;
    }
    }
    return -1;
}

static int apply_defaults(config_scope scope, void *base)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        bool mine = scope == CONFIG_SCOPE_DAEMON ? k->scope == CONFIG_SCOPE_DAEMON
                                                 : k->scope != CONFIG_SCOPE_DAEMON;
        if (!mine || !k->dflt)
            continue;
        char *why;
        if (config_key_apply(k, k->dflt, base, &why) < 0) {
            free(why); /* a default the parsers refuse: the unit tests catch it */
            return -1;
        }
    }
    return 0;
}

int config_defaults_daemon(config *cfg)
{
    return apply_defaults(CONFIG_SCOPE_DAEMON, cfg);
}

int config_defaults_pool(config_pool *pool)
{
    return apply_defaults(CONFIG_SCOPE_POOL, pool);
}

void config_pool_clear(config_pool *p)
{
    free(p->name);
    free(p->url);
    free(p->conninfo);
    free(p->on_connect);
    free(p->pool_logging_name);
    config_free_list(p->allowed_users, p->n_allowed_users);
    *p = (config_pool){0};
}

static int dup_or_null(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

static int copy_list(char ***dst, size_t *n_dst, char *const *src, size_t n)
{
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = strdup(src[i]))) {
            config_free_list(v, i);
            return -1;
        }
    }
    *dst = v;
    *n_dst = n;
    return 0;
}

bool config_pool_allows(const config_pool *pool, const char *user)
{
    if (pool->n_allowed_users == 0)
        return true;
    for (size_t i = 0; i < pool->n_allowed_users; i++)
        if (strcmp(pool->allowed_users[i], user) == 0)
            return true;
    return false;
}

int config_pool_copy(config_pool *dst, const config_pool *src)
{
    *dst = *src;
    dst->name = dst->url = dst->conninfo = dst->on_connect = dst->pool_logging_name = NULL;
    dst->allowed_users = NULL;
    dst->n_allowed_users = 0;
    if (dup_or_null(&dst->name, src->name) < 0 || dup_or_null(&dst->url, src->url) < 0 ||
        dup_or_null(&dst->conninfo, src->conninfo) < 0 ||
        dup_or_null(&dst->on_connect, src->on_connect) < 0 ||
        dup_or_null(&dst->pool_logging_name, src->pool_logging_name) < 0 ||
        copy_list(&dst->allowed_users, &dst->n_allowed_users, src->allowed_users,
                  src->n_allowed_users) < 0) {
        config_pool_clear(dst);
        return -1;
    }
    return 0;
}

/* ---- the keys, for SHOW CONFIG and reload --------------------------------------- */

_Static_assert(N_KEYS <= 64 && N_KEYS <= CONFIG_MAX_KEYS, "config_diff keeps changed keys in a 64-bit mask");

/* Listeners are opened once; a backend's url, mode and session defaults are
 * fixed when it connects. Everything else is read where it is used. */
static config_reload_effect reload_effect(const char *name)
{
    static const char *const restart[] = {"listen_addr", "listen_port", "unix_socket_dir",
                                          "unix_socket_mode", "metrics_listen", NULL};
    static const char *const backends[] = {"url",        "pool_mode", "isolation_level", "read_only",
                                           "deferrable", "on_connect", NULL};
    for (size_t i = 0; restart[i]; i++)
        if (strcmp(restart[i], name) == 0)
            return CONFIG_RELOAD_RESTART;
    for (size_t i = 0; backends[i]; i++)
        if (strcmp(backends[i], name) == 0)
            return CONFIG_RELOAD_NEW_BACKENDS;
    return CONFIG_RELOAD_LIVE;
}

size_t config_key_count(void)
{
    return N_KEYS;
}

void config_key_info_at(size_t i, config_key_info *out)
{
    const config_key *k = &keys[i];
    out->name = k->name;
    out->pool = k->scope != CONFIG_SCOPE_DAEMON;
    out->dflt = k->dflt ? k->dflt : "";
    out->reload = reload_effect(k->name);
}

int config_key_index(const char *name)
{
    const config_key *k = config_key_find(name);
    return k ? (int)(k - keys) : -1;
}

const char *config_reload_effect_to_str(config_reload_effect e)
{
    switch (e) {
    case CONFIG_RELOAD_LIVE: return "live";
    case CONFIG_RELOAD_NEW_BACKENDS: return "new backends";
    case CONFIG_RELOAD_RESTART: return "restart";
    }
    return "unknown";
}

static const char *word_of(const config_word *words, int value)
{
    for (size_t i = 0; words[i].word; i++)
        if (words[i].value == value)
            return words[i].word;
    return "unknown";
}

static char *join_list(char *const *items, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, items[i]);
    }
    return s;
}

/* client_tls_protocols as a file would spell it: "secure", "all", or a list
 * such as "tlsv1.1,tlsv1.2". */
static char *format_tls_protocols(unsigned set)
{
    if (set == (CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3))
        return config_fmt("secure");
    if (set == (CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3))
        return config_fmt("all");
    static const char *const names[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    char out[40] = "";
    for (unsigned b = 0; b < 4; b++)
        if (set & (1u << b)) {
            if (out[0])
                strcat(out, ",");
            strcat(out, names[b]);
        }
    return config_fmt("%s", out);
}

char *config_key_format(size_t i, const void *base_in, bool hide_secrets)
{
    const config_key *k = &keys[i];
    void *base = (void *)base_in; /* only read */
    switch (k->kind) {
    case KIND_INT: return config_fmt("%d", *(int *)field(base, k->offset));
    case KIND_OCTAL: return config_fmt("%04o", (unsigned)*(int *)field(base, k->offset));
    case KIND_SECONDS: return config_fmt("%g", *(double *)field(base, k->offset));
    case KIND_BOOL: return config_fmt("%s", *(bool *)field(base, k->offset) ? "true" : "false");
    case KIND_ENUM: return config_fmt("%s", word_of(k->words, *(int *)field(base, k->offset)));
    case KIND_ISOLATION:
        return config_fmt("%s", config_isolation_to_str(*(config_isolation *)field(base, k->offset)));
    case KIND_TLS_PROTOCOLS: return format_tls_protocols(*(unsigned *)field(base, k->offset));
    case KIND_ADDRS:
    case KIND_USERS:
        return join_list(*(char ***)field(base, k->offset), *(size_t *)field(base, k->offset2));
    case KIND_URL: {
        const char *url = *(char **)field(base, k->offset);
        if (url && hide_secrets)
            return config_url_hide_password(url);
        return config_fmt("%s", url ? url : "");
    }
    case KIND_DIR:
    case KIND_TEXT:
    case KIND_NAME:
    case KIND_HOSTPORT: {
        const char *s = *(char **)field(base, k->offset);
        return config_fmt("%s", s ? s : "");
    }
    }
    return NULL;
}
