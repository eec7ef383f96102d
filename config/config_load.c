/* config_load.c: from a file's text to a validated `config`.
 *
 * The whole file is read first (config_lex.c), then resolved here: every
 * field starts at its default (config_keys.c); pool keys written in
 * [tidepool] replace those defaults, wherever [tidepool] stands in the file;
 * then each [pool.NAME] starts from that and applies its own keys. Every
 * problem is collected, so one run shows them all; the caller gets either a
 * complete config or none. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config/config_internal.h"

/* Larger is surely not a config file (and guards against /dev/zero). */
#define MAX_FILE_SIZE (16u << 20)

void config_free(config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    config_free_list(cfg->listen_addrs, cfg->n_listen_addrs);
    free(cfg->unix_socket_dir);
    free(cfg->auth_file);
    config_free_list(cfg->admin_users, cfg->n_admin_users);
    free(cfg->metrics_listen);
    free(cfg->client_tls_cert_file);
    free(cfg->client_tls_key_file);
    free(cfg->client_tls_ca_file);
    free(cfg->client_tls_ciphers);
    for (size_t i = 0; i < cfg->n_pools; i++)
        config_pool_clear(&cfg->pools[i]);
    free(cfg->pools);
    free(cfg);
}

const config_pool *config_find_pool(const config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (strcmp(cfg->pools[i].name, name) == 0)
            return &cfg->pools[i];
    return NULL;
}

int config_key_line(const config *cfg, const char *key)
{
    int i = config_key_index(key);
    return i < 0 ? 0 : cfg->key_lines[i];
}

const char *config_key_where(const config *cfg, const char *key, char *buf, size_t len)
{
    int line = config_key_line(cfg, key);
    if (line > 0)
        snprintf(buf, len, "%s:%d", cfg->path, line);
    else
        snprintf(buf, len, "%s", cfg->path);
    return buf;
}

/* Applies one entry to `base`, reporting a bad value at its line. */
static void apply(config_errlist *el, const config_key *k, const config_entry *e, void *base)
{
    char *why;
    if (config_key_apply(k, e->value, base, &why) < 0) config_errlist_add_owned(el, e->line, e->key, why);
}

static void unknown_key(config_errlist *el, const config_entry *e)
{
    const char *near = config_key_suggest(e->key);
    if (strpbrk(e->key, " \t"))
        config_errlist_add(el, e->line, e->key,
                           "unknown key (a value cannot go on over several lines)");
    else if (near)
        config_errlist_add(el, e->line, e->key, "unknown key (did you mean %s?)", near);
    else
        config_errlist_add(el, e->line, e->key, "unknown key");
}

/* [tidepool]: daemon keys into cfg, pool keys into the pools' defaults.
 * Returns the line unix_socket_dir was set on, or 0. */
static int resolve_daemon(config_errlist *el, const config_section *s, config *cfg,
                          config_pool *defaults)
{
    int socket_dir_line = 0;
    for (size_t i = 0; i < s->n; i++) {
        const config_entry *e = &s->entries[i];
        const config_key *k = config_key_find(e->key);
        if (!k) {
            unknown_key(el, e);
        } else if (config_key_scope(k) == CONFIG_SCOPE_POOL_ONLY) {
            config_errlist_add(el, e->line, e->key,
                               "only allowed in [pool.NAME] (it names one pool)");
        } else if (config_key_scope(k) == CONFIG_SCOPE_DAEMON) {
            apply(el, k, e, cfg);
            if (strcmp(e->key, "unix_socket_dir") == 0)
                socket_dir_line = e->line;
        } else {
            apply(el, k, e, defaults);
        }
        if (k) cfg->key_lines[config_key_index(e->key)] = e->line;
    }
    return socket_dir_line;
}

static bool has_key(const config_section *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0)
            return true;
    return false;
}

/* [pool.NAME]: the defaults, then the section's own keys.
 * `url_default_written`: [tidepool] has a url, maybe a refused one (then
 * reported there, not as missing in every pool). */
static int resolve_pool(config_errlist *el, const config_section *s, const config_pool *defaults,
                        bool url_default_written, config_pool *pool)
{
    if (config_pool_copy(pool, defaults) < 0)
        return -1;
    pool->name = strdup(s->name);
    if (!pool->name)
        return -1;
    pool->line = s->line;
    for (size_t i = 0; i < s->n; i++) {
        const config_entry *e = &s->entries[i];
        const config_key *k = config_key_find(e->key);
        if (!k)
            unknown_key(el, e);
        else if (config_key_scope(k) == CONFIG_SCOPE_DAEMON)
            config_errlist_add(el, e->line, e->key, "only allowed in [tidepool]");
        else
            apply(el, k, e, pool);
    }
    if (!pool->url && !s->rejected && !url_default_written && !has_key(s, "url"))
        config_errlist_add(el, s->line, "url", "missing in %s", s->header);
    if (!pool->pool_logging_name) {
        pool->pool_logging_name = strdup(pool->name);
        if (!pool->pool_logging_name)
            return -1;
    }
    return 0;
}

/* The socket path "DIR/.s.PGSQL.PORT" must fit in sockaddr_un. */
static void check_socket_path(config_errlist *el, const config *cfg, int line)
{
    if (!cfg->unix_socket_dir)
        return;
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    int n = snprintf(NULL, 0, "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
    if (n > 0 && (size_t)n > max)
        config_errlist_add(el, line, "unix_socket_dir",
                           "too long: the socket path '%s/.s.PGSQL.%d' must be at most %zu characters",
                           cfg->unix_socket_dir, cfg->listen_port, max);
}

/* Line of the last `key` written in [tidepool], or 0. */
static int daemon_key_line(const config_doc *doc, const char *key)
{
    int line = 0;
    for (size_t i = 0; i < doc->n; i++) {
        const config_section *s = &doc->v[i];
        if (s->kind != CONFIG_SECTION_DAEMON)
            continue;
        for (size_t j = 0; j < s->n; j++)
            if (strcmp(s->entries[j].key, key) == 0)
                line = s->entries[j].line;
    }
    return line;
}

/* Client TLS needs a certificate and its key (whether they can be read is
 * the daemon's check: config/ does no I/O beyond its own file). */
static void check_client_tls(config_errlist *el, const config *cfg, const config_doc *doc)
{
    if (cfg->client_tls_sslmode == CONFIG_TLS_DISABLE)
        return;
    const char *missing = !cfg->client_tls_cert_file && !cfg->client_tls_key_file
                              ? "client_tls_cert_file and client_tls_key_file"
                          : !cfg->client_tls_cert_file ? "client_tls_cert_file"
                          : !cfg->client_tls_key_file  ? "client_tls_key_file"
                                                       : NULL;
    if (missing)
        config_errlist_add(el, daemon_key_line(doc, "client_tls_sslmode"), "client_tls_sslmode",
                           "'%s' needs %s", config_tls_mode_to_str(cfg->client_tls_sslmode), missing);
}

/* Line of `key` in section s, or of its header when s does not write it. */
static int key_or_header_line(const config_section *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return s->entries[i].line;
    return s->line;
}

/* pool_logging_name is the pool label of every metric series and the name in
 * log lines: two pools sharing one would emit duplicate series. Each pool
 * whose logging name an earlier pool has is reported, at its own line.
 * Pools of rejected sections (already reported) are left out. */
static void check_logging_names(config_errlist *el, const config *cfg, const config_doc *doc)
{
    const config_section **of = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *of);
    if (!of) {
        el->oom = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < doc->n && n < cfg->n_pools; i++)
        if (doc->v[i].kind == CONFIG_SECTION_POOL) of[n++] = &doc->v[i]; /* pools are made in section order */
    for (size_t i = 0; i < n; i++) {
        if (of[i]->rejected) continue;
        const char *name = cfg->pools[i].pool_logging_name;
        for (size_t j = 0; j < i; j++) {
            if (of[j]->rejected || strcmp(cfg->pools[j].pool_logging_name, name) != 0) continue;
            config_errlist_add(el, key_or_header_line(of[i], "pool_logging_name"), "pool_logging_name",
                               "'%s' is the logging name of %s too (line %d); each pool needs its own "
                               "(it is the pool label of the metrics)",
                               name, of[j]->header, key_or_header_line(of[j], "pool_logging_name"));
            break;
        }
    }
    free(of);
}

static config *resolve(config_errlist *el, const config_doc *doc, const char *name)
{
    config *cfg = calloc(1, sizeof *cfg);
    config_pool defaults = {0};
    if (!cfg || config_defaults_daemon(cfg) < 0 || config_defaults_pool(&defaults) < 0)
        goto oom;
    cfg->path = strdup(name);
    if (!cfg->path)
        goto oom;

    int socket_dir_line = 0;
    bool url_default_written = false;
    size_t n_pools = 0;
    for (size_t i = 0; i < doc->n; i++) {
        const config_section *s = &doc->v[i];
        if (s->kind == CONFIG_SECTION_DAEMON) {
            int line = resolve_daemon(el, s, cfg, &defaults);
            if (line)
                socket_dir_line = line;
            url_default_written = url_default_written || has_key(s, "url");
        }
        n_pools += s->kind == CONFIG_SECTION_POOL;
    }
    if (socket_dir_line)
        check_socket_path(el, cfg, socket_dir_line);
    check_client_tls(el, cfg, doc);

    if (n_pools) {
        cfg->pools = calloc(n_pools, sizeof *cfg->pools);
        if (!cfg->pools)
            goto oom;
    }
    for (size_t i = 0; i < doc->n; i++) {
        const config_section *s = &doc->v[i];
        if (s->kind != CONFIG_SECTION_POOL)
            continue;
        /* Counted before filling, so config_free sees a partly built one. */
        config_pool *pool = &cfg->pools[cfg->n_pools++];
        if (resolve_pool(el, s, &defaults, url_default_written, pool) < 0)
            goto oom;
    }
    check_logging_names(el, cfg, doc);
    config_pool_clear(&defaults);
    return cfg;

oom:
    el->oom = true;
    config_pool_clear(&defaults);
    config_free(cfg);
    return NULL;
}

static int load(const char *text, size_t len, const char *name, config **out, config_errors *errs)
{
    config_errlist el = {.file = name};
    config_doc doc = {0};
    config *cfg = NULL;
    if (config_lex(text, len, &doc, &el) == 0)
        cfg = resolve(&el, &doc, name);
    config_doc_free(&doc);
    if (el.oom)
        config_errlist_add(&el, 0, NULL, "out of memory");
    if (config_errlist_finish(&el, errs) > 0 || el.oom) {
        config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return cfg ? 0 : -1;
}

int config_load_string(const char *text, const char *display_name, config **out,
                       config_errors *errs)
{
    return load(text ? text : "", text ? strlen(text) : 0,
                display_name ? display_name : "<string>", out, errs);
}

int config_load_file(const char *path, config **out, config_errors *errs)
{
    config_errlist el = {.file = path};
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        config_errlist_add(&el, 0, NULL, "cannot open: %s", strerror(errno));
        config_errlist_finish(&el, errs);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8192;
            char *b = cap <= MAX_FILE_SIZE ? realloc(buf, cap) : NULL;
            if (!b) {
                if (cap <= MAX_FILE_SIZE)
                    config_errlist_add(&el, 0, NULL, "out of memory");
                else
                    config_errlist_add(&el, 0, NULL, "too large (more than %u bytes)",
                                       MAX_FILE_SIZE);
                rc = -1;
                break;
            }
            buf = b;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                config_errlist_add(&el, 0, NULL, "cannot read: %s", strerror(errno));
                rc = -1;
            }
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        config_errlist_finish(&el, errs);
        return -1;
    }
    rc = load(buf, len, path, out, errs);
    free(buf);
    return rc;
}
