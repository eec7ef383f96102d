/* client_login.c: from a successful authentication to the first
 * ReadyForQuery, and keeping a client's session parameters whichever backend
 * serves it.
 *
 * Login picks the pool named by the client's dbname (3D000 when none; 28000
 * when the pool's allowed_users does not name the user). In
 * transaction mode, once the pool knows its server's parameters (from its
 * first backend), the client is answered at once without holding a backend;
 * otherwise (and always in session mode) a backend is taken first. The client
 * gets the server's reported parameters overlaid with its own, a
 * BackendKeyData of tidepool's own, and ReadyForQuery.
 *
 * Before a backend serves a client, the parameters where the two differ are
 * set (only those), and settings an earlier client left that this one does not
 * have are reset, so nothing of one client is seen by another. In a pool with
 * on_connect a RESET would undo what on_connect set too: the backend's
 * session is started afresh instead (reset.c), then the sync sets what the
 * client needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/admin.h"
#include "daemon/backend.h"
#include "daemon/client_internal.h"
#include "daemon/client_limits.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/reset.h"
#include "daemon/server.h"

bool client_param_is_reported(const char *name) { return params_is_reported(name); }

static void send_login_reply(tp_client *c, const tp_params *server, char txn_status)
{
    /* The client's view: its own values, the server's for the rest. The
     * server's are not copied into the client (an idle client stays small);
     * sync falls back to the pool's values for what the client has not set. */
    proto_buf pb;
    proto_buf_init(&pb);
    for (size_t i = 0; i < server->count; i++) {
        const tp_param *sp = &server->items[i];
        if (!(sp->kind & PARAM_REPORTED)) continue;
        const char *own = params_get_like(&c->params, sp);
        proto_build_param_status(&pb, sp->name, own ? own : sp->value);
    }
    for (size_t i = 0; i < c->params.count; i++) {
        const tp_param *cp = &c->params.items[i];
        if ((cp->kind & PARAM_REPORTED) && !params_get_like(server, cp))
            proto_build_param_status(&pb, cp->name, cp->value);
    }
    proto_build_backend_key(&pb, c->key_pid, c->key_secret);
    proto_build_ready(&pb, txn_status);
    int rc = client_send_buf(c, &pb);
    proto_buf_free(&pb);
    if (rc < 0) return;
    c->logged_in = true;
    c->idle_since = client_limits_clock();
}

/* Clients log in with the same parameters mostly (a driver's, an
 * application's): the same as the previous login's, they take its tag, so
 * that a backend in sync with one is seen in sync with all at once. */
static void share_login_tag(tp_client *c)
{
    static tp_params last;
    if (params_equal(&c->params, &last)) {
        c->params.tag = last.tag;
        return;
    }
    params_clear(&last);
    if (params_copy(&last, &c->params) < 0) params_clear(&last);
}

void client_login(tp_client *c)
{
    if (strcmp(c->database, "tidepool") == 0) {
        if (!admin_user_allowed(c->user)) {
            char msg[300];
            snprintf(msg, sizeof msg, "user \"%s\" is not allowed on the admin console (admin_users)", c->user);
            log_info("client %llu (%s): %s", (unsigned long long)c->id, c->peer, msg);
            client_fatal(c, "42501", msg);
            return;
        }
        admin_login(c);
        return;
    }
    tp_pool *p = pools_find(c->database);
    if (!p) {
        char msg[300];
        snprintf(msg, sizeof msg, "database \"%s\" does not exist", c->database);
        log_info("client %llu (%s): user \"%s\": no pool named \"%s\"", (unsigned long long)c->id, c->peer,
                 c->user, c->database);
        client_fatal(c, "3D000", msg);
        return;
    }
    if (!config_pool_allows(&p->cfg, c->user)) {
        char msg[300];
        snprintf(msg, sizeof msg, "user \"%s\" is not allowed to use pool \"%s\"", c->user, p->cfg.name);
        log_info("client %llu (%s): %s (allowed_users)", (unsigned long long)c->id, c->peer, msg);
        client_fatal(c, "28000", msg);
        return;
    }
    c->pool = p;
    c->txn_pooling = p->cfg.pool_mode == CONFIG_POOL_MODE_TRANSACTION;
    p->clients++;
    share_login_tag(c);
    log_debug("client %llu (%s): user \"%s\" logged in to pool %s", (unsigned long long)c->id, c->peer,
              c->user, p->cfg.name);
    if (p->cfg.pool_mode == CONFIG_POOL_MODE_TRANSACTION && p->server_params.count > 0) {
        send_login_reply(c, &p->server_params, 'I');
        if (c->state == CLIENT_CLOSING) return;
        c->state = CLIENT_READY;
        client_start_reading(c);
        return;
    }
    c->state = CLIENT_LOGIN_WAIT;
    client_stop_reading(c);
    c->checkout_started = tp_now();
    pools_checkout(p, c);
}

void client_append_quoted(proto_buf *b, const char *s, char q)
{
    proto_buf_append(b, &q, 1);
    for (; *s; s++) {
        if (*s == q) proto_buf_append(b, &q, 1);
        proto_buf_append(b, s, 1);
    }
    proto_buf_append(b, &q, 1);
}

/* What a sync compares, as tags: equal tags, nothing to compare. */
static void note_in_sync(const tp_client *c, tp_backend *b)
{
    b->synced_tags[0] = c->params.tag;
    b->synced_tags[1] = c->pool->server_params.tag;
    b->synced_tags[2] = b->params.tag;
}

static bool known_in_sync(const tp_client *c, const tp_backend *b)
{
    return b->synced_tags[0] == c->params.tag && b->synced_tags[1] == c->pool->server_params.tag &&
           b->synced_tags[2] == b->params.tag;
}

static void continue_after_sync(tp_client *c)
{
    bool login = c->state == CLIENT_LOGIN_WAIT;
    if (!login && client_cancel_unsent(c)) return;
    if (login) {
        c->backend->xact_started = 0; /* a backend taken to log in: no transaction yet */
        send_login_reply(c, &c->backend->params, c->backend->txn_status);
        if (c->state == CLIENT_CLOSING) return;
    }
    c->state = CLIENT_ACTIVE;
    client_start_reading(c);
    /* Transaction mode: a backend taken only to log in goes back now. */
    if (login) client_on_ready(c);
    if (c->state == CLIENT_ACTIVE) client_process_input(c);
}

/* Which side wins for a parameter at sync time. */
static bool wants_set(const tp_client *c, const tp_backend *b, const tp_param *cp)
{
    if ((cp->kind & PARAM_REPORTED) && !(cp->kind & PARAM_SETTABLE)) return false;
    const char *have = params_get_like(&b->params, cp);
    return !have || strcmp(have, cp->value) != 0;
}

static bool wants_reset(const tp_client *c, const tp_param *bp)
{
    return !(bp->kind & PARAM_REPORTED) && !params_get_like(&c->params, bp);
}

static void on_params_synced(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    tp_client *c = b->client;
    if (!c) return;
    if (!ok) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", message ? message : "could not apply connection parameters");
        /* As PostgreSQL does for a bad startup parameter: refuse the session. */
        client_fatal(c, sqlstate ? sqlstate : "08006", msg);
        return;
    }
    /* Unreported settings are known only from what was set; reported ones
     * came back in ParameterStatus, in the server's spelling, which the
     * client's copy now takes so the next sync compares equal. A client
     * whose login reply carried its own spelling (latin1, "iso,dmy") is told
     * the server's now, as PostgreSQL would have told it at login. */
    proto_buf respelled;
    proto_buf_init(&respelled);
    for (size_t i = 0; i < b->params.count;) {
        if (wants_reset(c, &b->params.items[i])) params_remove(&b->params, b->params.items[i].name);
        else i++;
    }
    for (size_t i = 0; i < c->params.count; i++) {
        tp_param *cp = &c->params.items[i];
        int rc = 0;
        const char *spelled;
        if (!(cp->kind & PARAM_REPORTED))
            rc = params_set(&b->params, cp->name, cp->value);
        else if ((cp->kind & PARAM_SETTABLE) && (spelled = params_get_like(&b->params, cp)) &&
                 strcmp(spelled, cp->value) != 0) {
            proto_build_param_status(&respelled, cp->name, spelled);
            rc = client_param_set(c, cp->name, spelled);
        }
        if (rc < 0 || respelled.failed) {
            proto_buf_free(&respelled);
            client_fatal(c, "53200", "out of memory");
            return;
        }
    }
    int rc = respelled.len ? client_send_buf(c, &respelled) : 0;
    proto_buf_free(&respelled);
    if (rc < 0) return;
    note_in_sync(c, b);
    continue_after_sync(c);
}

/* One more "pg_catalog.set_config(name, value, false)" in a SELECT list. */
static void append_set_config(proto_buf *sql, int *sets, const char *name, const char *value)
{
    proto_buf_append(sql, *sets == 0 ? "SELECT " : ", ", *sets == 0 ? 7 : 2);
    proto_buf_append(sql, "pg_catalog.set_config(", 22);
    client_append_quoted(sql, name, '\'');
    proto_buf_append(sql, ", ", 2);
    client_append_quoted(sql, value, '\'');
    proto_buf_append(sql, ", false)", 8);
    (*sets)++;
}

static void on_session_reset(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    tp_client *c = b->client;
    if (!c) return;
    if (!ok || !backend_is_clean(b)) {
        char msg[512];
        snprintf(msg, sizeof msg, "on_connect failed: %s", message ? message : "backend not idle");
        log_warn("pool %s: backend %llu: %s; closing it", b->pool->cfg.pool_logging_name,
                 (unsigned long long)b->id, msg);
        client_on_backend_lost(c, msg);
        pools_backend_gone(b->pool, b, false);
        return;
    }
    client_sync_params(c); /* now with nothing to reset */
}

/* The sync would RESET a setting an earlier client left, in a pool with
 * on_connect: what on_connect set would go with it. */
static bool reset_loses_on_connect(const tp_client *c, const tp_backend *b)
{
    if (!c->pool->cfg.on_connect) return false;
    if (backend_needs_on_connect(b)) return true;
    for (size_t i = 0; i < b->params.count; i++)
        if (wants_reset(c, &b->params.items[i])) return true;
    return false;
}

void client_sync_params(tp_client *c)
{
    tp_backend *b = c->backend;
    if (reset_loses_on_connect(c, b)) {
        if (backend_reset_session(b, on_session_reset) < 0 && c->state != CLIENT_CLOSING)
            client_on_backend_lost(c, "could not send to the server");
        return;
    }
    if (known_in_sync(c, b)) {
        continue_after_sync(c);
        return;
    }
    proto_buf sql;
    proto_buf_init(&sql);
    int sets = 0, resets = 0;
    for (size_t i = 0; i < c->params.count; i++) {
        const tp_param *cp = &c->params.items[i];
        if (!wants_set(c, b, cp)) continue;
        append_set_config(&sql, &sets, cp->name, cp->value);
    }
    /* Reported settings the client never set: the pool's own values (another
     * client's TimeZone must not show). */
    const tp_params *pool_values = &c->pool->server_params;
    for (size_t i = 0; i < b->params.count; i++) {
        const tp_param *bp = &b->params.items[i];
        if (!(bp->kind & PARAM_SETTABLE) || params_get_like(&c->params, bp)) continue;
        const char *want = params_get_like(pool_values, bp);
        if (!want || strcmp(want, bp->value) == 0) continue;
        append_set_config(&sql, &sets, bp->name, want);
    }
    for (size_t i = 0; i < b->params.count; i++) {
        const tp_param *bp = &b->params.items[i];
        if (!wants_reset(c, bp)) continue;
        proto_buf_append(&sql, sets + resets == 0 ? "RESET " : "; RESET ", sets + resets == 0 ? 6 : 8);
        client_append_quoted(&sql, bp->name, '"');
        resets++;
    }
    proto_buf_append(&sql, "", 1);
    if (sql.failed) {
        proto_buf_free(&sql);
        client_fatal(c, "53200", "out of memory");
        return;
    }
    if (sets + resets == 0) {
        proto_buf_free(&sql);
        note_in_sync(c, b);
        continue_after_sync(c);
        return;
    }
    int rc = backend_query(b, (const char *)sql.data, on_params_synced);
    proto_buf_free(&sql);
    if (rc < 0 && c->state != CLIENT_CLOSING) client_on_backend_lost(c, "could not send to the server");
}
