/* client_reset.c: giving a client its startup values back after a RESET.
 *
 * PostgreSQL takes a connection's startup values (application_name,
 * DateStyle, options=-c work_mem=…) as its reset values: RESET ALL, RESET x
 * and DISCARD ALL go back to them. A backend of tidepool's was opened with
 * the pool's parameters and got the client's by SET, so a reset on it goes
 * to the pool's values. When the reset's ReadyForQuery comes, tidepool holds
 * it back, sets the client's startup values again on the same backend, and
 * only then sends the ReadyForQuery: the client's next statement sees them,
 * whether it keeps the backend (session mode, pinned, inside a transaction
 * block) or not.
 *
 * Only the settings the reset did put back are set: those PostgreSQL no
 * longer says were set in this session (pg_settings.source is not
 * 'session'), so a RESET x leaves the client's other SETs alone. Inside a
 * transaction block the SETs are part of it, as the reset is: ROLLBACK
 * undoes both. The ParameterStatus messages of the reset for the values set
 * again are held back too; the client is told the final values that differ
 * from what it was told last, as PostgreSQL tells it the reset ones. */
#include <string.h>

#include "daemon/backend.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"

/* Settings the client gave at login that tidepool sets on its backends. */
static bool restorable(const tp_param *sp)
{
    return !(sp->kind & PARAM_REPORTED) || (sp->kind & PARAM_SETTABLE);
}

/* Nothing else of the client's is queued on the backend (the reset's
 * ReadyForQuery was the last one owed), and its transaction has not failed
 * (no SET could run in it). */
static bool can_restore_now(const tp_backend *b)
{
    return b->pending_syncs == 0 && b->txn_status != 'E';
}

bool client_holds_reset_status(const tp_client *c, const char *name)
{
    tp_backend *b = c->backend;
    if (!b || b->pending_syncs != 1) return false; /* the reset's own ReadyForQuery is the next */
    return params_is_settable(name) && params_get(client_startup_params(c), name);
}

/* Tell the client the values of its reported startup settings that differ
 * from what it was told last: PostgreSQL reports what a reset changed. */
static int report_changed(tp_client *c, const tp_backend *b)
{
    const tp_params *startup = client_startup_params(c);
    proto_buf pb;
    proto_buf_init(&pb);
    int rc = 0;
    for (size_t i = 0; i < startup->count && rc == 0; i++) {
        const tp_param *sp = &startup->items[i];
        if (!(sp->kind & PARAM_SETTABLE)) continue;
        const char *now = params_get_like(&b->params, sp);
        const char *told = params_get_like(&c->params, sp);
        if (!now || (told && strcmp(told, now) == 0)) continue;
        proto_build_param_status(&pb, sp->name, now);
        rc = client_param_set(c, sp->name, now);
    }
    if (rc < 0 || pb.failed) rc = -1;
    else if (pb.len) rc = client_send_buf(c, &pb);
    proto_buf_free(&pb);
    return rc;
}

static void append_text(proto_buf *b, const char *s) { proto_buf_append(b, s, strlen(s)); }

/* The SELECT that sets, of the client's startup settings, those the reset
 * put back: '' when there are none to set. */
static void build_restore(const tp_params *startup, proto_buf *sql)
{
    int n = 0;
    for (size_t i = 0; i < startup->count; i++) {
        const tp_param *sp = &startup->items[i];
        if (!restorable(sp)) continue;
        append_text(sql, n == 0 ? "SELECT pg_catalog.set_config(s.name, v.value, false) "
                                  "FROM pg_catalog.pg_settings s JOIN (VALUES ("
                                : "), (");
        client_append_quoted(sql, sp->name, '\'');
        proto_buf_append(sql, ", ", 2);
        client_append_quoted(sql, sp->value, '\'');
        n++;
    }
    if (n > 0)
        append_text(sql, ")) v(name, value) ON pg_catalog.lower(s.name) = pg_catalog.lower(v.name) "
                         "WHERE s.source <> 'session'");
    proto_buf_append(sql, "", 1);
}

/* What the held ReadyForQuery would have done: send it, then carry on. */
static void release_ready(tp_client *c, tp_backend *b)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_ready(&pb, b->txn_status);
    int rc = client_send_buf(c, &pb);
    proto_buf_free(&pb);
    c->restoring = false;
    if (rc < 0) return;
    backend_after_relayed_ready(b);
    if (c->state == CLIENT_ACTIVE && c->backend == b) client_process_input(c);
}

static void on_restored(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    tp_client *c = b->client;
    if (!c) return;
    if (!ok)
        log_warn("pool %s: client %llu: its startup settings could not be set again after a RESET: %s",
                 b->pool->cfg.pool_logging_name, (unsigned long long)c->id, message ? message : "error");
    if (report_changed(c, b) < 0) {
        if (c->state != CLIENT_CLOSING) client_fatal(c, "53200", "out of memory");
        return;
    }
    release_ready(c, b);
}

bool client_restore_after_reset(tp_client *c, tp_backend *b)
{
    if (!can_restore_now(b)) {
        /* Its next statement is at the backend already, or the transaction
         * failed: only what it is told is made right. */
        if (report_changed(c, b) < 0 && c->state != CLIENT_CLOSING) client_fatal(c, "53200", "out of memory");
        return false;
    }
    proto_buf sql;
    proto_buf_init(&sql);
    build_restore(client_startup_params(c), &sql);
    if (sql.failed) {
        proto_buf_free(&sql);
        client_fatal(c, "53200", "out of memory");
        return true;
    }
    if (sql.len == 1) {
        proto_buf_free(&sql);
        return false;
    }
    c->restoring = true; /* its input waits (client_process_input) */
    int rc = backend_query(b, (const char *)sql.data, on_restored);
    proto_buf_free(&sql);
    if (rc < 0 && c->state != CLIENT_CLOSING) client_on_backend_lost(c, "could not send to the server");
    return true;
}
