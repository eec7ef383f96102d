/* config.h: the typed, validated form of tidepool's INI file (SPEC §3).
 *
 * config/ turns the text of a file into a `config` struct: every key of
 * `[tidepool]` and `[pool.NAME]` with SQLAlchemy's defaults, types, ranges and
 * enums checked. Pool keys written in `[tidepool]` are defaults for every pool.
 * Problems are collected, not printed, each as "FILE:LINE: key: what is wrong".
 * No I/O beyond reading the file; no libuv, no libpq. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    CONFIG_POOL_MODE_TRANSACTION = 0,
    CONFIG_POOL_MODE_SESSION,
} config_pool_mode;

typedef enum {
    CONFIG_RESET_ROLLBACK = 0,
    CONFIG_RESET_COMMIT,
    CONFIG_RESET_NONE, /* close the backend instead */
} config_reset_style;

typedef enum {
    CONFIG_ISOLATION_DEFAULT = 0, /* server default: nothing is set */
    CONFIG_ISOLATION_READ_UNCOMMITTED,
    CONFIG_ISOLATION_READ_COMMITTED,
    CONFIG_ISOLATION_REPEATABLE_READ,
    CONFIG_ISOLATION_SERIALIZABLE,
} config_isolation;

typedef enum {
    CONFIG_ECHO_OFF = 0,
    CONFIG_ECHO_ON,
    CONFIG_ECHO_DEBUG,
} config_echo;

typedef enum {
    CONFIG_AUTH_SCRAM_SHA_256 = 0,
    CONFIG_AUTH_MD5,
    CONFIG_AUTH_PASSWORD,
    CONFIG_AUTH_TRUST,
    CONFIG_AUTH_PEER,
} config_auth_type;

typedef enum {
    CONFIG_LOG_ERROR = 0,
    CONFIG_LOG_WARN,
    CONFIG_LOG_INFO,
    CONFIG_LOG_DEBUG,
} config_log_level;

/* client_tls_sslmode: TLS between clients and tidepool (PgBouncer's names).
 * `prefer` is `allow` on the server side: TLS offered, plaintext accepted. */
typedef enum {
    CONFIG_TLS_DISABLE = 0, /* SSLRequest answered 'N' */
    CONFIG_TLS_ALLOW,       /* TLS when the client asks; plaintext too */
    CONFIG_TLS_PREFER,      /* same as allow */
    CONFIG_TLS_REQUIRE,     /* TCP clients must use TLS (Unix socket exempt) */
} config_tls_mode;

/* client_tls_protocols: a set of these bits. */
#define CONFIG_TLS_V1_0 0x1u
#define CONFIG_TLS_V1_1 0x2u
#define CONFIG_TLS_V1_2 0x4u
#define CONFIG_TLS_V1_3 0x8u

/* One [pool.NAME] section, defaults already applied. */
typedef struct config_pool {
    char *name;              /* NAME of [pool.NAME]: the dbname clients use */
    char *url;               /* as written in the file */
    char *conninfo;          /* url normalised for libpq: a postgresql:// URI
                                (any "+driver" removed) or a keyword string */
    config_pool_mode pool_mode;
    int pool_size;           /* >= 0; 0 = no limit (as SQLAlchemy) */
    int max_overflow;        /* >= -1; -1 = no limit */
    double pool_timeout;     /* seconds, >= 0 */
    double pool_recycle;     /* seconds; -1 = never, else >= 0 */
    bool pool_pre_ping;
    bool pool_use_lifo;
    config_reset_style pool_reset_on_return;
    config_isolation isolation_level;
    bool read_only;
    bool deferrable;
    char *on_connect;        /* SQL run on each new backend, or NULL */
    config_echo echo;
    config_echo echo_pool;
    char *pool_logging_name; /* defaults to name */
    int max_prepared_statements; /* transaction mode: named statements kept
                                    prepared per backend (PgBouncer's key) */
    int max_client_prepared_statements; /* transaction mode: named statements one
                                           client may have tidepool remember; 0 = no limit */
    char **allowed_users;    /* users who may use the pool; none = every user */
    size_t n_allowed_users;
    int line;                /* line of the [pool.NAME] header */
} config_pool;

/* Most keys config_key_count() may return (config_diff's masks are 64 bits). */
#define CONFIG_MAX_KEYS 64

typedef struct config {
    char *path;                /* file name used in messages */
    int key_lines[CONFIG_MAX_KEYS]; /* line in [tidepool] where key i (config_key_info_at)
                                       was last written, 0 = not written; for the
                                       daemon's own checks (--check). Of the file this
                                       config was loaded from */
    char **listen_addrs;       /* TCP addresses; "*" is kept as "*" */
    size_t n_listen_addrs;     /* 0 = no TCP */
    int listen_port;           /* 1..65535 */
    char *unix_socket_dir;     /* NULL = no Unix socket */
    int unix_socket_mode;      /* octal permissions, 0..0777 */
    int max_client_conn;       /* >= 1 */
    int max_message_size;      /* bytes a client message may declare (length
                                  field), PROTO's 4-byte length included */
    double client_login_timeout; /* seconds from accept to authenticated; 0 = off */
    double client_idle_timeout;  /* seconds idle outside a transaction; 0 = off */
    config_auth_type auth_type;
    char *auth_file;           /* NULL = none */
    char **admin_users;
    size_t n_admin_users;
    config_log_level log_level;
    double shutdown_timeout;   /* seconds, >= 0 */
    char *metrics_listen;      /* "HOST:PORT" or NULL */
    config_tls_mode client_tls_sslmode;
    char *client_tls_cert_file; /* PEM certificate (chain); required unless disable */
    char *client_tls_key_file;  /* PEM private key; required unless disable */
    char *client_tls_ca_file;   /* NULL, or CAs that client certificates must chain to */
    unsigned client_tls_protocols; /* CONFIG_TLS_V1_* bits, never 0 */
    char *client_tls_ciphers;   /* OpenSSL cipher list for TLS 1.2 and older */
    config_pool *pools;
    size_t n_pools;
} config;

/* Problems found while loading, in file order. */
typedef struct config_errors {
    char **items;  /* each "FILE:LINE: key: what is wrong" */
    size_t count;
} config_errors;

/* Optional extra check of a pool's conninfo (the daemon passes one that uses
 * libpq's parser). Returns NULL when fine, or a message it owns/static. */
typedef const char *(*config_conninfo_check)(const char *conninfo, void *arg);

/* Load and validate. On success returns 0 and *out is a new config. On
 * failure returns -1, *out is NULL and errs lists every problem found.
 * `display_name` is what messages use for FILE (defaults to path). */
int config_load_file(const char *path, config **out, config_errors *errs);
int config_load_string(const char *text, const char *display_name, config **out,
                       config_errors *errs);
void config_set_conninfo_check(config_conninfo_check fn, void *arg);

void config_free(config *cfg);
void config_errors_clear(config_errors *errs);

/* Deep copy of a pool's fields (the daemon keeps its own); -1 when out of
 * memory (dst is then cleared). */
int config_pool_copy(config_pool *dst, const config_pool *src) __attribute__((warn_unused_result));
/* Frees a pool's strings and lists and zeroes it. */
void config_pool_clear(config_pool *pool);

/* Whether `user` may use `pool` (allowed_users empty: everyone). */
bool config_pool_allows(const config_pool *pool, const char *user);

/* Whether a url as written holds a password (user:password@ in a URI, or a
 * password= keyword), so the file holding it is a secret too. */
bool config_url_has_password(const char *url);

/* The pool named `name`, or NULL. */
const config_pool *config_find_pool(const config *cfg, const char *name);

/* The line in [tidepool] where `key` was written, 0 when it was not. */
int config_key_line(const config *cfg, const char *key);
/* Where a problem with `key` that only the daemon can see (a host name that
 * does not resolve, an auth_file it cannot open) is reported: "FILE:LINE",
 * or "FILE" when the key was not written. Written into buf; returns buf. */
const char *config_key_where(const config *cfg, const char *key, char *buf, size_t len);

/* Turn a url as written into a conninfo for libpq: "postgresql+psycopg2://…"
 * and "postgres://…" become "postgresql://…"; keyword strings are kept.
 * Returns a malloc'd string, or NULL with *why set when it is neither. */
char *config_normalize_url(const char *url, const char **why);

/* Names for logs and SHOW CONFIG. */
const char *config_pool_mode_to_str(config_pool_mode m);
const char *config_reset_style_to_str(config_reset_style r);
const char *config_isolation_to_str(config_isolation i); /* "" for DEFAULT */
const char *config_echo_to_str(config_echo e);
const char *config_auth_type_to_str(config_auth_type a);
const char *config_log_level_to_str(config_log_level l);
const char *config_tls_mode_to_str(config_tls_mode m);

/* ---- the keys, for SHOW CONFIG and reload (config_keys.c) ---------------- */

/* What a reload does with a changed key. */
typedef enum {
    CONFIG_RELOAD_LIVE = 0,     /* applied at once */
    CONFIG_RELOAD_NEW_BACKENDS, /* it changes what a backend is: the pool's
                                   backends are retired as DISPOSE does and new
                                   ones use the new value */
    CONFIG_RELOAD_RESTART,      /* kept until tidepool restarts */
} config_reload_effect;

typedef struct config_key_info {
    const char *name;
    bool pool;         /* a pool key (else a [tidepool] key) */
    const char *dflt;  /* the default as written in a file; "" = none */
    config_reload_effect reload;
} config_key_info;

/* Every key, [tidepool] keys first, in the order of the docs. */
size_t config_key_count(void);
void config_key_info_at(size_t i, config_key_info *out);
/* Index of the key named `name`, or -1. */
int config_key_index(const char *name);
/* The value of key i in `base` (a config for [tidepool] keys, a config_pool
 * for pool keys) as a file would spell it; "" when unset. With hide_secrets
 * a password in a url is shown as "***". malloc'd; NULL when out of memory. */
char *config_key_format(size_t i, const void *base, bool hide_secrets);
const char *config_reload_effect_to_str(config_reload_effect e);
/* A url with its password (user:PASSWORD@ or password=...) replaced by ***;
 * malloc'd, NULL when out of memory. */
char *config_url_hide_password(const char *url);

/* ---- what a reload changes (config_diff.c) ------------------------------- */

typedef enum {
    CONFIG_POOL_ADDED = 0,
    CONFIG_POOL_REMOVED,
    CONFIG_POOL_CHANGED,
} config_pool_change;

typedef struct config_pool_diff {
    config_pool_change change;
    const config_pool *old_pool; /* NULL when added */
    const config_pool *new_pool; /* NULL when removed */
    unsigned long long keys;     /* CHANGED: bit i = key i (config_key_info_at) differs */
    bool new_backends;           /* CHANGED: a CONFIG_RELOAD_NEW_BACKENDS key differs */
} config_pool_diff;

typedef struct config_diff {
    config_pool_diff *pools;    /* pools that differ, old order then new ones */
    size_t n_pools;
    unsigned long long daemon_keys; /* bit i = [tidepool] key i differs */
    bool needs_restart;         /* one of those is CONFIG_RELOAD_RESTART */
} config_diff;

/* Compare two configurations (pools matched by name). Pure: pointers in the
 * result borrow from old and new. Returns 0, or -1 when out of memory. */
int config_diff_make(const config *old, const config *new_cfg, config_diff *out)
    __attribute__((warn_unused_result));
void config_diff_free(config_diff *d);
