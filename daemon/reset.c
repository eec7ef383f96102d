/* reset.c: the reset-on-return path (SQLAlchemy's pool_reset_on_return, and
 * PgBouncer's server_reset_query for session mode). ROLLBACK runs first, then
 * DISCARD ALL, which cannot run inside a transaction block; any failure
 * closes the backend, so no backend is ever lent in a transaction or with a
 * previous client's session state.
 *
 * on_connect's effects are meant to hold for every client a backend serves,
 * so one rule keeps them: whatever resets a backend's session — tidepool's
 * DISCARD ALL when a session ends, a client's RESET, DISCARD or SET x TO
 * DEFAULT, tidepool's own RESET of a setting in a parameter sync — is
 * followed by DISCARD ALL and on_connect before the backend serves anyone
 * again (client_login.c does it before a sync that would RESET). DISCARD ALL
 * first gives on_connect the session of a new backend, so it runs again
 * exactly as it ran on the new one. */
#include "daemon/reset.h"

#include "daemon/log.h"
#include "daemon/pools.h"

bool backend_needs_on_connect(const tp_backend *b)
{
    return b->session_reset && b->pool->cfg.on_connect != NULL;
}

int backend_reset_session(tp_backend *b, backend_query_cb cb)
{
    const char *sqls[2] = {"DISCARD ALL", b->pool->cfg.on_connect};
    int n = sqls[1] ? 2 : 1;
    pools_echo(b->pool, true, "pool %s: Connection <backend %llu pid %d> reset: DISCARD ALL%s",
               b->pool->cfg.pool_logging_name, (unsigned long long)b->id, b->pid,
               n == 2 ? ", then on_connect" : "");
    /* DISCARD ALL drops every statement and puts every setting back to its
     * reset value: the reported ones come back in ParameterStatus; the
     * others, recorded only as tidepool set them, are at the pool's values
     * again (on_connect's, or the startup options'), so forgotten. */
    b->prepared.count = 0;
    b->prepared.stale = false;
    for (size_t i = 0; i < b->params.count;) {
        if (b->params.items[i].kind & PARAM_REPORTED)
            i++;
        else
            params_remove(&b->params, b->params.items[i].name);
    }
    b->session_reset = false;
    return backend_query_each(b, sqls, n, cb);
}

static void on_discarded(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    if (!ok || !backend_is_clean(b)) {
        log_warn("pool %s: reset of backend %llu failed (%s); closing it", b->pool->cfg.pool_logging_name,
                 (unsigned long long)b->id, message ? message : "not idle");
        pools_backend_gone(b->pool, b, false);
        return;
    }
    pools_checkin(b->pool, b);
}

static void discard_or_checkin(tp_backend *b, bool reset)
{
    if (reset) {
        if (backend_reset_session(b, on_discarded) < 0 && b->state != BACKEND_CLOSING)
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
    b->discard_after_reset = session_end || backend_needs_on_connect(b);
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
    if (b->prepared.stale && !b->discard_after_reset) {
        /* A plan went stale under a schema change: start its statements
         * afresh, so the next execution re-prepares instead of failing. */
        b->prepared.count = 0;
        b->prepared.stale = false;
        if (backend_query(b, "DEALLOCATE ALL", on_deallocated) < 0 && b->state != BACKEND_CLOSING)
            pools_backend_gone(p, b, false);
        return;
    }
    discard_or_checkin(b, b->discard_after_reset);
}
