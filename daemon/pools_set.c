/* pools_set.c: the set of pools. Creates one tp_pool per [pool.NAME] at
 * start, and on reload adds new pools, retunes changed ones in place (limits
 * at once; a new url, mode or session default through fresh backends) and
 * drains removed ones: a removed pool is no longer found by name, so new
 * clients get 3D000, while its connected clients carry on; it is freed when
 * its last client and backend are gone. Pools are allocated one by one, so
 * clients and backends keep pointing at theirs whatever the set becomes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

static tp_pool **all_pools;
static size_t n_all_pools, cap_all_pools;
static bool closing_all; /* shutdown: pools are closed and freed as a whole */

size_t pools_count(void)
{
    return n_all_pools;
}
tp_pool *pools_at(size_t i)
{
    return i < n_all_pools ? all_pools[i] : NULL;
}

tp_pool *pools_find(const char *name)
{
    for (size_t i = 0; i < n_all_pools; i++)
        if (!all_pools[i]->removed && strcmp(all_pools[i]->cfg.name, name) == 0) return all_pools[i];
    return NULL;
}

static pool_limits limits_of(const config_pool *c)
{
    pool_limits l = {
        .pool_size = c->pool_size,
        .max_overflow = c->max_overflow,
        .timeout = c->pool_timeout,
        .recycle = c->pool_recycle,
        .pre_ping = c->pool_pre_ping,
        .use_lifo = c->pool_use_lifo,
    };
    return l;
}

/* "-c default_transaction_isolation=…" for the pool's transaction defaults.
 * Values set this way are the session's reset values, so RESET ALL and
 * DISCARD ALL keep them. */
static char *build_startup_options(const config_pool *c)
{
    char opts[512] = "";
    size_t n = 0;
    static const char *const iso[] = {
        [CONFIG_ISOLATION_READ_UNCOMMITTED] = "read\\ uncommitted",
        [CONFIG_ISOLATION_READ_COMMITTED] = "read\\ committed",
        [CONFIG_ISOLATION_REPEATABLE_READ] = "repeatable\\ read",
        [CONFIG_ISOLATION_SERIALIZABLE] = "serializable",
    };
    if (c->isolation_level != CONFIG_ISOLATION_DEFAULT)
        n += (size_t)snprintf(opts + n, sizeof opts - n, "-c default_transaction_isolation=%s ",
                              iso[c->isolation_level]);
    if (c->read_only)
        n += (size_t)snprintf(opts + n, sizeof opts - n, "-c default_transaction_read_only=on ");
    if (c->deferrable)
        n += (size_t)snprintf(opts + n, sizeof opts - n, "-c default_transaction_deferrable=on ");
    if (n == 0) return NULL;
    opts[n - 1] = '\0';
    return strdup(opts);
}

/* The pool's private copy of its configuration, named for logs. */
static int copy_pool_config(config_pool *dst, const config_pool *src)
{
    if (config_pool_copy(dst, src) < 0) return -1;
    if (!dst->pool_logging_name && !(dst->pool_logging_name = strdup(dst->name))) {
        config_pool_clear(dst);
        return -1;
    }
    return 0;
}

static void destroy(tp_pool *p)
{
    config_pool_clear(&p->cfg);
    free(p->startup_options);
    params_clear(&p->server_params);
    pool_free(p->algo);
    free(p);
}

/* A new pool, appended to the set; NULL when out of memory. */
static tp_pool *open_pool(const config_pool *c)
{
    if (n_all_pools == cap_all_pools) {
        size_t cap = cap_all_pools ? cap_all_pools * 2 : 8;
        tp_pool **v = realloc(all_pools, cap * sizeof *v);
        if (!v) return NULL;
        all_pools = v;
        cap_all_pools = cap;
    }
    tp_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pool_limits l = limits_of(c);
    if (copy_pool_config(&p->cfg, c) < 0 || !(p->algo = pool_new(&l))) {
        destroy(p);
        return NULL;
    }
    p->startup_options = build_startup_options(&p->cfg);
    uv_timer_init(tp.loop, &p->timer);
    p->timer.data = p;
    uv_timer_init(tp.loop, &p->retry_timer);
    p->retry_timer.data = p;
    all_pools[n_all_pools++] = p;
    return p;
}

int pools_create(const config *cfg)
{
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (!open_pool(&cfg->pools[i])) return -1;
    return 0;
}

static void close_timers(tp_pool *p, uv_close_cb cb)
{
    uv_timer_stop(&p->timer);
    uv_timer_stop(&p->retry_timer);
    if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_close((uv_handle_t *)&p->timer, cb);
    if (!uv_is_closing((uv_handle_t *)&p->retry_timer)) uv_close((uv_handle_t *)&p->retry_timer, cb);
}

void pools_close_all(void)
{
    closing_all = true;
    for (size_t i = 0; i < n_all_pools; i++) {
        tp_pool *p = all_pools[i];
        for (tp_backend *b = p->backends, *next; b; b = next) {
            next = b->next_all;
            backend_close(b, "shutdown");
        }
        close_timers(p, NULL);
    }
}

void pools_free(void)
{
    for (size_t i = 0; i < n_all_pools; i++)
        destroy(all_pools[i]);
    free(all_pools);
    all_pools = NULL;
    n_all_pools = cap_all_pools = 0;
}

/* ---- draining a removed pool ---- */

static void on_timer_closed(uv_handle_t *h)
{
    tp_pool *p = h->data;
    if (--p->closing_handles == 0) destroy(p);
}

void pools_maybe_free(tp_pool *p)
{
    if (!p->removed || p->freeing || p->clients > 0 || closing_all) return;
    pool_conn *c;
    while ((c = pool_pop_idle(p->algo, tp_now())))
        backend_close(c->data, "pool removed");
    /* Closing may have freed the last backend and come back here. */
    if (p->freeing || p->n_backends > 0) return;
    p->freeing = true;
    for (size_t i = 0; i < n_all_pools; i++) {
        if (all_pools[i] != p) continue;
        memmove(&all_pools[i], &all_pools[i + 1], (n_all_pools - i - 1) * sizeof *all_pools);
        n_all_pools--;
        break;
    }
    log_info("pool %s: drained; removed", p->cfg.name);
    p->closing_handles = 2;
    close_timers(p, on_timer_closed);
}

/* ---- reload ---- */

static void log_changes(const config_pool_diff *e)
{
    for (size_t i = 0; i < config_key_count(); i++) {
        if (!((e->keys >> i) & 1)) continue;
        config_key_info info;
        config_key_info_at(i, &info);
        char *was = config_key_format(i, e->old_pool, true);
        char *now = config_key_format(i, e->new_pool, true);
        log_info("pool %s: %s: '%s' -> '%s'%s", e->new_pool->name, info.name, was ? was : "?",
                 now ? now : "?", info.reload == CONFIG_RELOAD_NEW_BACKENDS ? " (new backends)" : "");
        free(was);
        free(now);
    }
}

static void change_pool(tp_pool *p, const config_pool_diff *e)
{
    config_pool fresh;
    char *opts = build_startup_options(e->new_pool);
    bool want_opts = e->new_pool->isolation_level != CONFIG_ISOLATION_DEFAULT || e->new_pool->read_only ||
                     e->new_pool->deferrable;
    if (copy_pool_config(&fresh, e->new_pool) < 0 || (want_opts && !opts)) {
        free(opts);
        log_error("pool %s: out of memory: its settings were not changed", p->cfg.name);
        return;
    }
    log_changes(e);
    config_pool_clear(&p->cfg);
    p->cfg = fresh;
    free(p->startup_options);
    p->startup_options = opts;
    pool_limits l = limits_of(&p->cfg);
    pool_set_limits(p->algo, &l);
    if (e->new_backends) {
        /* The server may be another one now: learn its parameters again. */
        params_clear(&p->server_params);
        pools_dispose(p, "settings of its backends changed");
    }
    /* Smaller limits: idle backends above them go now (lent ones at checkin). */
    for (int n = pool_idle_excess(p->algo); n > 0; n--) {
        pool_conn *c = pool_pop_idle(p->algo, tp_now());
        if (!c) break;
        backend_close(c->data, "pool_size lowered by reload");
    }
    pools_serve_waiters(p);
}

void pools_apply(const config_diff *d)
{
    for (size_t i = 0; i < d->n_pools; i++) {
        const config_pool_diff *e = &d->pools[i];
        switch (e->change) {
        case CONFIG_POOL_ADDED:
            if (open_pool(e->new_pool))
                log_info("pool %s: added", e->new_pool->name);
            else
                log_error("pool %s: out of memory: not added", e->new_pool->name);
            break;
        case CONFIG_POOL_REMOVED: {
            tp_pool *p = pools_find(e->old_pool->name);
            if (!p) break;
            p->removed = true;
            pools_resume(p); /* its clients finish; holding them serves nothing */
            log_info("pool %s: removed from the configuration; draining %llu client(s)", p->cfg.name,
                     (unsigned long long)p->clients);
            pools_maybe_free(p);
            break;
        }
        case CONFIG_POOL_CHANGED: {
            tp_pool *p = pools_find(e->old_pool->name);
            if (p) change_pool(p, e);
            break;
        }
        }
    }
}
