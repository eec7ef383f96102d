/* reset.c: the reset-on-return path (SQLAlchemy's pool_reset_on_return, and
 * PgBouncer's server_reset_query for session mode). ROLLBACK runs first, then
 * DISCARD ALL, which cannot run inside a transaction block; any failure
 * closes the backend, so no backend is ever lent in a transaction or with a
 * previous client's session state. */
#include "daemon/reset.h"

#include "daemon/backend.h"
#include "daemon/log.h"
#include "daemon/pools.h"

static void on_discarded(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    b->prepared.count = 0; /* DISCARD ALL dropped them, and every setting */
    backend_forget_unreported_params(b);
    if (!ok || !backend_is_clean(b)) {
        log_warn("pool %s: reset of backend %llu failed (%s); closing it", b->pool->cfg.pool_logging_name,
                 (unsigned long long)b->id, message ? message : "not idle");
        pools_backend_gone(b->pool, b, false);
        return;
    }
    pools_checkin(b->pool, b);
}

static void discard_or_checkin(tp_backend *b, bool session_end)
{
    if (session_end) {
        if (backend_query(b, "DISCARD ALL", on_discarded) < 0 && b->state != BACKEND_CLOSING)
            pools_backend_gone(b->pool, b, false);
        return;
    }
    pools_checkin(b->pool, b);
}

static void on_ended_txn(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    if (!ok || !backend_is_clean(b)) {
        log_warn("pool %s: reset of backend %llu failed (%s); closing it", b->pool->cfg.pool_logging_name,
                 (unsigned long long)b->id, message ? message : "still in a transaction");
        pools_backend_gone(b->pool, b, false);
        return;
    }
    discard_or_checkin(b, b->discard_after_reset);
}

static void on_deallocated(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    if (!ok || !backend_is_clean(b)) {
        pools_backend_gone(b->pool, b, false);
        return;
    }
    pools_checkin(b->pool, b);
}

static void on_copy_failed(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    if (b->dead || b->state == BACKEND_CLOSING) return;
    if (b->pending_syncs > 0 || b->in_copy) {
        pools_backend_gone(b->pool, b, false);
        return;
    }
    /* CopyFail's error was expected; now the usual reset. */
    backend_release(b, b->discard_after_reset);
}

void backend_release(tp_backend *b, bool session_end)
{
    tp_pool *p = b->pool;
    b->client = NULL;
    b->expects.count = 0; /* a clean backend owes no answers */
    b->discard_after_reset = session_end;
    if (b->dead || b->state == BACKEND_CLOSING) return;
    if (b->in_copy && b->copy_in && b->last_run == 'Q' && b->pending_syncs == 1 && !b->query_cb) {
        /* The client left during the COPY FROM STDIN of a simple Query (its
         * last message whole): CopyFail ends the COPY with an error and a
         * ReadyForQuery; the transaction is then reset as usual and the
         * backend kept. (An extended-protocol COPY would wait for a Sync
         * after CopyFail: that backend is closed below.) */
        if (backend_copy_fail(b, "client left during COPY", on_copy_failed) < 0 && b->state != BACKEND_CLOSING)
            pools_backend_gone(p, b, false);
        return;
    }
    if (b->pending_syncs > 0 || b->in_copy || b->query_cb) {
        /* The client left mid-query: only closing is safe (SQLAlchemy's
         * "exit exception" path: this backend alone, no pool invalidation). */
        pools_backend_gone(p, b, false);
        return;
    }
    if (b->txn_status != 'I') {
        const char *sql = NULL;
        switch (p->cfg.pool_reset_on_return) {
        case CONFIG_RESET_ROLLBACK: sql = "ROLLBACK"; break;
        case CONFIG_RESET_COMMIT: sql = "COMMIT"; break;
        case CONFIG_RESET_NONE: sql = NULL; break;
        }
        pools_echo(p, true, "pool %s: Connection <backend %llu pid %d> %s on return",
                   p->cfg.pool_logging_name, (unsigned long long)b->id, b->pid,
                   sql ? sql : "closed (reset_on_return none)");
        if (!sql) {
            pools_backend_gone(p, b, false);
            return;
        }
        if (backend_query(b, sql, on_ended_txn) < 0 && b->state != BACKEND_CLOSING)
            pools_backend_gone(p, b, false);
        return;
    }
    if (b->prepared.stale && !session_end) {
        /* A plan went stale under a schema change: start its statements
         * afresh, so the next execution re-prepares instead of failing. */
        b->prepared.count = 0;
        b->prepared.stale = false;
        if (backend_query(b, "DEALLOCATE ALL", on_deallocated) < 0 && b->state != BACKEND_CLOSING)
            pools_backend_gone(p, b, false);
        return;
    }
    discard_or_checkin(b, session_end);
}
