/* backend_cancel.c: forwarding a client's CancelRequest to the backend that
 * runs its query, so that it stops that query and nothing else (SPEC §4).
 *
 * libpq 15's PQcancel blocks, so it runs on libuv's thread pool. From the
 * moment tidepool picks the backend until PQcancel returns, the cancel is in
 * flight: it reaches PostgreSQL a millisecond or more later (a connect, and
 * the postmaster's process for it). PQcancel returns once the server has
 * closed that connection, which it does after signalling the backend. If the
 * client's transaction ended in that window and the backend were lent at once,
 * the cancel would stop the next client's query. So while b->cancels > 0:
 *
 * - the backend is lent to no one: pools_checkin() does not put it back in
 *   the pool but marks it (checkin_deferred); once the last cancel is over,
 *   after_cancel() checks it in, and the pool keeps, hands off or closes it
 *   as it would have (a DISPOSE or a pool removed meanwhile included). A
 *   cancel that arrives after the transaction ended finds the backend idle,
 *   where PostgreSQL ignores it; so it cannot reach the client's next
 *   transaction either.
 * - the struct is not freed: backend_maybe_free() waits for the count, so a
 *   backend closed meanwhile (its client left, it died, DISPOSE, a reload
 *   removed its pool, shutdown) is freed by after_cancel(). The work keeps a
 *   pointer to the backend and reads nothing else of it on the thread. The
 *   loop runs until every work request is done, shutdown included. */
#include <libpq-fe.h>
#include <stdlib.h>

#include "daemon/backend.h"
#include "daemon/backend_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

typedef struct cancel_work {
    uv_work_t req;
    tp_backend *backend; /* counted in backend->cancels until after_cancel */
    PGcancel *cancel;    /* the backend's; freed with it, never before after_cancel */
    char error[256];     /* PQcancel's message when it failed (written on the thread) */
    bool failed;
} cancel_work;

static void do_cancel(uv_work_t *req)
{
    cancel_work *w = req->data;
    w->failed = !PQcancel(w->cancel, w->error, sizeof w->error);
}

static void after_cancel(uv_work_t *req, int status)
{
    cancel_work *w = req->data;
    tp_backend *b = w->backend;
    if (w->failed) log_warn("cancel request failed: %s", w->error);
    free(w);
    if (--b->cancels > 0) return;
    if (b->state == BACKEND_CLOSING) {
        backend_maybe_free(b); /* closed meanwhile: freed now */
        return;
    }
    if (b->checkin_deferred) {
        b->checkin_deferred = false;
        pools_echo(b->pool, true, "pool %s: Connection <backend %llu pid %d>: the cancel in flight has arrived",
                   b->pool->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
        pools_checkin(b->pool, b);
    }
}

int backend_cancel(tp_backend *b)
{
    if (b->state != BACKEND_LINKED || !b->cancel) return -1;
    cancel_work *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->backend = b;
    w->cancel = b->cancel;
    w->req.data = w;
    int rc = uv_queue_work(tp.loop, &w->req, do_cancel, after_cancel);
    if (rc < 0) {
        free(w);
        return rc;
    }
    b->cancels++;
    return 0;
}
