/* pools.c: pools at run time. Creates one tp_pool per [pool.NAME], carries
 * out the decisions of the pool algorithm (pool/): lend an idle backend after
 * its lend-time check (recycle, invalidation, pre-ping), open a new one, queue
 * the client and time it out with SQLAlchemy's QueuePool message, and on
 * checkin keep, hand off or close. Also resets a backend whose client left
 * (pool_reset_on_return, and DISCARD ALL in session mode). */
#include "daemon/pools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/server.h"

static tp_pool *all_pools;
static size_t n_all_pools;

double tp_now(void) { return (double)uv_hrtime() / 1e9; }

size_t pools_count(void) { return n_all_pools; }
tp_pool *pools_at(size_t i) { return i < n_all_pools ? &all_pools[i] : NULL; }

tp_pool *pools_find(const char *name)
{
    for (size_t i = 0; i < n_all_pools; i++)
        if (strcmp(all_pools[i].cfg.name, name) == 0) return &all_pools[i];
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

static bool echo_pool(const tp_pool *p) { return p->cfg.echo_pool != CONFIG_ECHO_OFF; }

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

static void on_pool_timer(uv_timer_t *t);

int pools_create(const config *cfg)
{
    all_pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *all_pools);
    if (!all_pools) return -1;
    for (size_t i = 0; i < cfg->n_pools; i++) {
        tp_pool *p = &all_pools[i];
        if (config_pool_copy(&p->cfg, &cfg->pools[i]) < 0) return -1;
        p->startup_options = build_startup_options(&p->cfg);
        pool_limits l = limits_of(&p->cfg);
        p->algo = pool_new(&l);
        if (!p->algo) return -1;
        uv_timer_init(tp.loop, &p->timer);
        p->timer.data = p;
        uv_timer_init(tp.loop, &p->retry_timer);
        p->retry_timer.data = p;
        n_all_pools++;
    }
    return 0;
}

void pools_close_all(void)
{
    for (size_t i = 0; i < n_all_pools; i++) {
        tp_pool *p = &all_pools[i];
        for (tp_backend *b = p->backends, *next; b; b = next) {
            next = b->next_all;
            backend_close(b, "shutdown");
        }
        uv_timer_stop(&p->timer);
        if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_close((uv_handle_t *)&p->timer, NULL);
        if (!uv_is_closing((uv_handle_t *)&p->retry_timer)) uv_close((uv_handle_t *)&p->retry_timer, NULL);
    }
}

void pools_free(void)
{
    for (size_t i = 0; i < n_all_pools; i++) {
        config_pool_clear(&all_pools[i].cfg);
        free(all_pools[i].startup_options);
        params_clear(&all_pools[i].server_params);
        pool_free(all_pools[i].algo);
    }
    free(all_pools);
    all_pools = NULL;
    n_all_pools = 0;
}

/* ---- waiting and timeouts ---- */

static void arm_timer(tp_pool *p)
{
    double d = pool_next_deadline(p->algo);
    if (d < 0) {
        uv_timer_stop(&p->timer);
        return;
    }
    double ms = (d - tp_now()) * 1000.0;
    uv_timer_start(&p->timer, on_pool_timer, ms > 0 ? (uint64_t)ms + 1 : 0, 0);
}

static void on_pool_timer(uv_timer_t *t)
{
    tp_pool *p = t->data;
    pool_waiter *w;
    while ((w = pool_expire(p->algo, tp_now()))) {
        tp_client *c = w->data;
        char msg[256];
        pool_format_timeout_message(p->algo, msg, sizeof msg);
        if (echo_pool(p))
            log_info("pool %s: client %llu: %s", p->cfg.pool_logging_name, (unsigned long long)c->id, msg);
        client_on_backend_error(c, "53300", msg);
    }
    arm_timer(p);
}

/* Serve the waiters a freed slot lets through. */
static void serve_ready(tp_pool *p)
{
    pool_waiter *w;
    while ((w = pool_next_ready(p->algo))) pools_checkout(p, w->data);
    arm_timer(p);
}

/* ---- lending ---- */

static void lend(tp_pool *p, tp_backend *b, tp_client *c)
{
    b->state = BACKEND_LINKED;
    b->client = c;
    if (p->cfg.echo_pool == CONFIG_ECHO_DEBUG || log_enabled(CONFIG_LOG_DEBUG))
        log_info("pool %s: Connection <backend %llu pid %d> checked out from pool for client %llu",
                 p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid,
                 (unsigned long long)c->id);
    client_on_backend(c, b);
}

static void lend_checked(tp_pool *p, tp_backend *b, tp_client *c);
static void on_new_backend(tp_backend *b, const char *error);

/* Replace `old` by a new connection in its slot, for the same client: it
 * keeps its place (SQLAlchemy reconnects in the same record). */
static void replace_for(tp_pool *p, tp_backend *old, tp_client *c, const char *why)
{
    tp_backend *fresh = backend_alloc(p);
    if (!fresh) {
        backend_close(old, why);
        client_on_backend_error(c, "53200", "out of memory");
        serve_ready(p);
        return;
    }
    pool_replace(p->algo, &old->slot, &fresh->slot, tp_now());
    backend_close(old, why);
    fresh->client = c;
    c->connecting = fresh;
    backend_start(fresh, on_new_backend);
}

static void on_ping_done(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    tp_pool *p = b->pool;
    tp_client *c = b->client;
    b->client = NULL;
    if (c) c->connecting = NULL;
    if (ok && backend_is_clean(b)) {
        if (c) lend(p, b, c);
        else pools_checkin(p, b);
        return;
    }
    if (echo_pool(p))
        log_info("pool %s: Pool pre-ping on connection <backend %llu pid %d> failed, will invalidate pool",
                 p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
    pool_invalidate(p->algo, &b->slot, tp_now());
    if (c && b->state != BACKEND_CLOSING) {
        replace_for(p, b, c, "pre-ping failed");
        return;
    }
    backend_close(b, "pre-ping failed");
    if (c) pools_checkout(p, c);
    serve_ready(p);
}

/* Lend-time checks in SQLAlchemy's order, then lend. */
static void lend_checked(tp_pool *p, tp_backend *b, tp_client *c)
{
    pool_check chk = pool_lend_check(p->algo, &b->slot, tp_now());
    switch (chk) {
    case POOL_CHECK_USE:
        lend(p, b, c);
        return;
    case POOL_CHECK_PING:
        /* Like a connect in progress: the client may leave meanwhile. */
        b->client = c;
        c->connecting = b;
        if (backend_query(b, ";", on_ping_done) < 0 && b->state != BACKEND_CLOSING) {
            b->client = NULL;
            c->connecting = NULL;
            backend_close(b, "ping could not be sent");
            pools_checkout(p, c);
        }
        return;
    case POOL_CHECK_RECYCLE:
    case POOL_CHECK_INVALID:
        if (echo_pool(p))
            log_info("pool %s: Connection <backend %llu pid %d> %s; recycling", p->cfg.pool_logging_name,
                     (unsigned long long)b->id, b->pid,
                     chk == POOL_CHECK_RECYCLE ? "exceeded timeout"
                                               : "invalidated due to pool invalidation");
        replace_for(p, b, c, chk == POOL_CHECK_RECYCLE ? "recycled" : "invalidated");
        return;
    }
}

#define CONNECT_RETRY_MS 100

static void retry_remove(tp_pool *p, tp_client *c)
{
    if (!c->retrying) return;
    if (c->retry_prev) c->retry_prev->retry_next = c->retry_next;
    else p->retrying = c->retry_next;
    if (c->retry_next) c->retry_next->retry_prev = c->retry_prev;
    c->retry_next = c->retry_prev = NULL;
    c->retrying = false;
}

static void on_retry_timer(uv_timer_t *t)
{
    tp_pool *p = t->data;
    while (p->retrying) {
        tp_client *c = p->retrying;
        retry_remove(p, c);
        pools_checkout(p, c);
    }
}

/* A connect failed while the server may be restarting: a client that has
 * waited less than pool_timeout tries again shortly instead of failing, as
 * PgBouncer holds clients while its server is unreachable. */
static bool retry_later(tp_pool *p, tp_client *c)
{
    if (tp.stopping || tp_now() + CONNECT_RETRY_MS / 1000.0 >= c->checkout_started + p->cfg.pool_timeout)
        return false;
    c->retrying = true;
    c->retry_prev = NULL;
    c->retry_next = p->retrying;
    if (p->retrying) p->retrying->retry_prev = c;
    p->retrying = c;
    if (!uv_is_active((uv_handle_t *)&p->retry_timer))
        uv_timer_start(&p->retry_timer, on_retry_timer, CONNECT_RETRY_MS, 0);
    return true;
}

static void on_new_backend(tp_backend *b, const char *error)
{
    tp_pool *p = b->pool;
    tp_client *c = b->client;
    b->client = NULL;
    if (c) c->connecting = NULL;
    if (error) {
        pool_connect_failed(p->algo, &b->slot, tp_now());
        backend_close(b, "connect failed");
        if (c && retry_later(p, c)) {
            serve_ready(p);
            return;
        }
        if (c) {
            char msg[600];
            snprintf(msg, sizeof msg, "could not connect to the server of pool \"%s\": %s", p->cfg.name, error);
            client_on_backend_error(c, "08006", msg);
        }
        serve_ready(p);
        return;
    }
    pool_connected(p->algo, &b->slot, tp_now());
    if (p->server_params.count == 0 && params_copy(&p->server_params, &b->params) < 0)
        params_clear(&p->server_params);
    if (c) lend(p, b, c);
    else pools_checkin(p, b);
}

void pools_checkout(tp_pool *p, tp_client *c)
{
    tp_backend *fresh = backend_alloc(p);
    if (!fresh) {
        client_on_backend_error(c, "53200", "out of memory");
        return;
    }
    c->waiter.data = c;
    pool_conn *got = NULL;
    pool_checkout_result r = pool_checkout(p->algo, &c->waiter, &fresh->slot, tp_now(), &got);
    if (r != POOL_OPEN) backend_discard(fresh);
    switch (r) {
    case POOL_LEND:
        lend_checked(p, got->data, c);
        return;
    case POOL_OPEN:
        fresh->client = c;
        c->connecting = fresh;
        if (echo_pool(p))
            log_debug("pool %s: opening a new connection for client %llu", p->cfg.pool_logging_name,
                      (unsigned long long)c->id);
        backend_start(fresh, on_new_backend);
        return;
    case POOL_WAIT:
        arm_timer(p);
        return;
    }
}

void pools_cancel_checkout(tp_pool *p, tp_client *c)
{
    pool_cancel_wait(p->algo, &c->waiter);
    retry_remove(p, c);
    if (c->connecting) {
        c->connecting->client = NULL; /* it joins the pool when connected */
        c->connecting = NULL;
    }
    arm_timer(p);
}

void pools_checkin(tp_pool *p, tp_backend *b)
{
    b->client = NULL;
    b->state = BACKEND_IDLE;
    pool_waiter *to = NULL;
    pool_checkin_result r = pool_checkin(p->algo, &b->slot, tp_now(), &to);
    switch (r) {
    case POOL_KEEP:
        if (p->cfg.echo_pool == CONFIG_ECHO_DEBUG || log_enabled(CONFIG_LOG_DEBUG))
            log_info("pool %s: Connection <backend %llu pid %d> being returned to pool",
                     p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
        return;
    case POOL_HANDOFF:
        arm_timer(p);
        lend_checked(p, b, to->data);
        return;
    case POOL_CLOSE:
        backend_close(b, "not kept at checkin (pool_size idle, over capacity, or disposed)");
        serve_ready(p);
        return;
    }
}

void pools_backend_gone(tp_pool *p, tp_backend *b, bool died)
{
    if (died) pool_invalidate(p->algo, &b->slot, tp_now());
    backend_close(b, died ? "lost" : "closed");
    serve_ready(p);
}
