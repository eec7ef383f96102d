/* pools.c: a pool at run time. Carries out the decisions of the pool
 * algorithm (pool/): lend an idle backend after its lend-time check (recycle,
 * invalidation, pre-ping), open a new one, queue the client and time it out
 * with SQLAlchemy's QueuePool message, and on checkin keep, hand off or
 * close; DISPOSE, PAUSE and RESUME. The set of pools (create, reload, drain,
 * free) is pools_set.c's. */
#include "daemon/pools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/server.h"

double tp_now(void) { return (double)uv_hrtime() / 1e9; }

config_log_level pools_echo_level(const tp_pool *p, bool detail)
{
    config_echo want = detail ? CONFIG_ECHO_DEBUG : CONFIG_ECHO_ON;
    return p->cfg.echo_pool >= want ? CONFIG_LOG_INFO : CONFIG_LOG_DEBUG;
}

static void on_pool_timer(uv_timer_t *t);

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
        pools_echo(p, false, "pool %s: client %llu: %s", p->cfg.pool_logging_name, (unsigned long long)c->id,
                   msg);
        client_on_backend_error(c, "53300", msg);
    }
    arm_timer(p);
}

/* Serve the waiters a freed slot lets through. */
static void serve_ready(tp_pool *p)
{
    if (p->freeing) return;
    pool_waiter *w;
    while ((w = pool_next_ready(p->algo))) pools_checkout(p, w->data);
    arm_timer(p);
}

/* ---- lending ---- */

/* `now` is the time the caller already took for the pool's decision. */
static void lend(tp_pool *p, tp_backend *b, tp_client *c, double now)
{
    b->state = BACKEND_LINKED;
    b->client = c;
    stats_hist_observe(&p->stats.wait, now - c->checkout_started);
    b->xact_started = now;
    pools_echo(p, false, "pool %s: Connection <backend %llu pid %d> checked out from pool for client %llu",
               p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid, (unsigned long long)c->id);
    client_on_backend(c, b);
}

static void lend_checked(tp_pool *p, tp_backend *b, tp_client *c, double now);
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
        if (c) lend(p, b, c, tp_now());
        else pools_checkin(p, b);
        return;
    }
    p->stats.pre_ping_failures++;
    pools_echo(p, false,
               "pool %s: Pool pre-ping on connection <backend %llu pid %d> failed, will invalidate pool",
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
static void lend_checked(tp_pool *p, tp_backend *b, tp_client *c, double now)
{
    pool_check chk = pool_lend_check(p->algo, &b->slot, now);
    switch (chk) {
    case POOL_CHECK_USE:
        lend(p, b, c, now);
        return;
    case POOL_CHECK_PING:
        pools_echo(p, true, "pool %s: Pool pre-ping on connection <backend %llu pid %d>",
                   p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
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
        pools_echo(p, false, "pool %s: Connection <backend %llu pid %d> %s; recycling",
                   p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid,
                   chk == POOL_CHECK_RECYCLE ? "exceeded timeout" : "invalidated due to pool invalidation");
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

#define CONNECT_FAILURE_LOG_SECONDS 10.0

/* While the server is down, waiting clients retry every CONNECT_RETRY_MS:
 * a warning each time would flood the log. The first failure is logged,
 * then at most one line every CONNECT_FAILURE_LOG_SECONDS with the count
 * since, and one line when a connect succeeds again. */
static void note_connect_failed(tp_pool *p, const tp_backend *b, const char *error)
{
    double now = tp_now();
    if (p->connect_failures++ == 0) {
        log_warn("pool %s: backend %llu connect failed: %s", p->cfg.pool_logging_name,
                 (unsigned long long)b->id, error);
        p->failures_unlogged = 0;
        p->failure_logged_at = now;
        return;
    }
    p->failures_unlogged++;
    if (now - p->failure_logged_at < CONNECT_FAILURE_LOG_SECONDS) return;
    log_warn("pool %s: %llu more connect attempt(s) failed in the last %.0f s, the last one: %s",
             p->cfg.pool_logging_name, (unsigned long long)p->failures_unlogged, now - p->failure_logged_at,
             error);
    p->failures_unlogged = 0;
    p->failure_logged_at = now;
}

static void note_connected(tp_pool *p, const tp_backend *b)
{
    if (p->connect_failures == 0) return;
    log_info("pool %s: backend %llu: connect succeeded again after %llu failed attempt(s)",
             p->cfg.pool_logging_name, (unsigned long long)b->id, (unsigned long long)p->connect_failures);
    p->connect_failures = 0;
    p->failures_unlogged = 0;
}

static void on_new_backend(tp_backend *b, const char *error)
{
    tp_pool *p = b->pool;
    tp_client *c = b->client;
    b->client = NULL;
    if (c) c->connecting = NULL;
    if (error) {
        note_connect_failed(p, b, error);
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
    note_connected(p, b);
    double now = tp_now();
    pool_connected(p->algo, &b->slot, now);
    if (p->server_params.count == 0 && params_copy(&p->server_params, &b->params) < 0)
        params_clear(&p->server_params);
    if (c) lend(p, b, c, now);
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
    double now = tp_now();
    pool_checkout_result r = pool_checkout(p->algo, &c->waiter, &fresh->slot, now, &got);
    if (r != POOL_OPEN) backend_discard(fresh);
    switch (r) {
    case POOL_LEND:
        lend_checked(p, got->data, c, now);
        return;
    case POOL_OPEN:
        fresh->client = c;
        c->connecting = fresh;
        pools_echo(p, true, "pool %s: opening a new connection for client %llu", p->cfg.pool_logging_name,
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
    if (b->cancels > 0) {
        /* A cancel of its last client's query is on its way to PostgreSQL:
         * lent now, it could stop the next client's query. It stays out of
         * the pool (still counted as lent) until the cancel has arrived;
         * backend_cancel.c checks it in then. */
        b->checkin_deferred = true;
        pools_echo(p, true, "pool %s: Connection <backend %llu pid %d> kept out of the pool until a cancel "
                   "in flight for it has arrived", p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
        return;
    }
    b->state = BACKEND_IDLE;
    double now = tp_now();
    if (b->xact_started > 0) {
        /* Transaction mode: the lend that ends here was one transaction. */
        p->stats.transactions++;
        stats_hist_observe(&p->stats.xact, now - b->xact_started);
        b->xact_started = 0;
    }
    pool_waiter *to = NULL;
    pool_checkin_result r = pool_checkin(p->algo, &b->slot, now, &to);
    switch (r) {
    case POOL_KEEP:
        pools_echo(p, false, "pool %s: Connection <backend %llu pid %d> being returned to pool",
                   p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
        if (p->removed) pools_maybe_free(p);
        return;
    case POOL_HANDOFF:
        arm_timer(p);
        lend_checked(p, b, to->data, now);
        return;
    case POOL_CLOSE:
        pools_echo(p, true, "pool %s: Closing connection <backend %llu pid %d> (not kept at checkin)",
                   p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
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

void pools_serve_waiters(tp_pool *p) { serve_ready(p); }

/* ---- admin: DISPOSE, PAUSE, RESUME ---- */

void pools_dispose(tp_pool *p, const char *why)
{
    double now = tp_now();
    pool_dispose(p->algo, now);
    pool_conn *c;
    int closed = 0;
    while ((c = pool_dispose_next_idle(p->algo, now))) {
        backend_close(c->data, why);
        closed++;
    }
    pool_stats st;
    pool_get_stats(p->algo, now, &st);
    log_info("pool %s: %s: %d idle backend(s) closed, %d lent or connecting retired when they come back",
             p->cfg.pool_logging_name, why, closed, st.lent + st.connecting);
    serve_ready(p);
}

void pools_pause(tp_pool *p)
{
    if (pool_is_paused(p->algo)) return;
    pool_pause(p->algo, tp_now());
    log_info("pool %s: paused", p->cfg.pool_logging_name);
    arm_timer(p); /* no deadline runs while paused */
}

void pools_resume(tp_pool *p)
{
    if (!pool_is_paused(p->algo)) return;
    pool_resume(p->algo, tp_now());
    log_info("pool %s: resumed", p->cfg.pool_logging_name);
    serve_ready(p);
}

bool pools_pause_done(const tp_pool *p)
{
    if (!pool_is_paused(p->algo)) return false;
    pool_stats st;
    pool_get_stats(p->algo, tp_now(), &st);
    return st.lent == 0 && st.connecting == 0;
}
