/* admin_pause.c: PAUSE [pool] and RESUME [pool] on the admin console.
 *
 * PAUSE follows PgBouncer: the pools stop lending at once (clients wanting a
 * backend are queued, not refused, and do not time out while paused: see
 * pool_pause), and the command completes when every transaction in flight on
 * them has ended: no backend lent or connecting. Until then the admin
 * connection waits (its further input too); a check every PAUSE_CHECK_MS
 * answers it. A CancelRequest ends the wait with 57014 and leaves the pools
 * paused. */
#include <stdlib.h>
#include <string.h>

#include "daemon/admin_commands.h"
#include "daemon/admin_internal.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

#define PAUSE_CHECK_MS 20

/* An admin connection waiting for its PAUSE to complete. */
typedef struct pause_wait {
    tp_client *client;
    char *pool; /* the pool named, or NULL for every pool */
} pause_wait;

static pause_wait *waits;
static size_t n_waits;
static uv_timer_t pause_timer;
static bool timer_ready;

static bool pause_done(const pause_wait *w)
{
    if (w->pool) {
        tp_pool *p = pools_find(w->pool);
        /* Gone, or resumed by someone else meanwhile: nothing to wait for. */
        return !p || !pool_is_paused(p->algo) || pools_pause_done(p);
    }
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (!p->removed && pool_is_paused(p->algo) && !pools_pause_done(p)) return false;
    }
    return true;
}

static void end_wait(size_t i)
{
    free(waits[i].pool);
    waits[i] = waits[--n_waits];
    if (n_waits == 0) uv_timer_stop(&pause_timer);
}

static void finish_wait(tp_client *c)
{
    c->admin_waiting = false;
    client_start_reading(c);
    client_handle_input(c);
}

static void on_pause_check(uv_timer_t *t)
{
    for (size_t i = 0; i < n_waits;) {
        if (!pause_done(&waits[i])) {
            i++;
            continue;
        }
        tp_client *c = waits[i].client;
        end_wait(i);
        admin_reply_done(c, "PAUSE");
        if (c->state == CLIENT_ADMIN) finish_wait(c);
    }
}

void admin_pause(tp_client *c, const char *name)
{
    tp_pool *one = name ? admin_named_pool(c, name) : NULL;
    if (name && !one) return;
    size_t already = 0, live = 0;
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->removed || (one && p != one)) continue;
        live++;
        already += pool_is_paused(p->algo);
    }
    if (live > 0 && already == live) {
        admin_reply_error(c, "55000", name ? "the pool is already paused" : "every pool is already paused",
                          NULL);
        return;
    }
    log_info("admin: client %llu (%s): PAUSE %s", (unsigned long long)c->id, c->user, name ? name : "(all)");
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (!p->removed && (!one || p == one)) pools_pause(p);
    }
    pause_wait w = {.client = c, .pool = name ? strdup(name) : NULL};
    if (name && !w.pool) {
        admin_reply_error(c, "53200", "out of memory", NULL);
        return;
    }
    if (pause_done(&w)) {
        free(w.pool);
        admin_reply_done(c, "PAUSE");
        return;
    }
    pause_wait *v = realloc(waits, (n_waits + 1) * sizeof *v);
    if (!v) {
        free(w.pool);
        admin_reply_error(c, "53200", "out of memory", NULL);
        return;
    }
    waits = v;
    waits[n_waits++] = w;
    c->admin_waiting = true;
    client_stop_reading(c);
    if (!timer_ready) {
        uv_timer_init(tp.loop, &pause_timer);
        uv_unref((uv_handle_t *)&pause_timer); /* it does not keep the loop alive */
        timer_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&pause_timer))
        uv_timer_start(&pause_timer, on_pause_check, PAUSE_CHECK_MS, PAUSE_CHECK_MS);
}

void admin_resume(tp_client *c, const char *name)
{
    tp_pool *one = name ? admin_named_pool(c, name) : NULL;
    if (name && !one) return;
    size_t resumed = 0;
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->removed || (one && p != one) || !pool_is_paused(p->algo)) continue;
        pools_resume(p);
        resumed++;
    }
    if (resumed == 0) {
        admin_reply_error(c, "55000", name ? "the pool is not paused" : "no pool is paused", NULL);
        return;
    }
    log_info("admin: client %llu (%s): RESUME %s", (unsigned long long)c->id, c->user, name ? name : "(all)");
    admin_reply_done(c, "RESUME");
}

void admin_client_gone(tp_client *c)
{
    for (size_t i = 0; i < n_waits; i++)
        if (waits[i].client == c) {
            end_wait(i);
            return;
        }
}

void admin_cancel(tp_client *c)
{
    if (!c->admin_waiting) return;
    admin_client_gone(c);
    admin_reply_error(c, "57014", "canceling statement due to user request",
                      "the pools stay paused; RESUME them");
    if (c->state == CLIENT_ADMIN) finish_wait(c);
}
