/* client_login.c: from a successful authentication to the first
 * ReadyForQuery. Picks the pool named by the client's dbname (3D000 when none),
 * takes a backend from it, applies the client's startup parameters that differ
 * from the backend's (only those), then sends the client the backend's
 * reported parameters, a BackendKeyData of tidepool's own and ReadyForQuery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/backend.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

/* Startup parameters that are not session settings. */
static bool is_connection_param(const char *name)
{
    return strcasecmp(name, "user") == 0 || strcasecmp(name, "database") == 0 ||
           strcasecmp(name, "replication") == 0 || strcasecmp(name, "options") == 0;
}

/* Reported with ParameterStatus by PostgreSQL 15 (GUC_REPORT). */
static bool is_reported_param(const char *name)
{
    static const char *const names[] = {
        "application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
        "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
        "server_encoding", "server_version", "session_authorization",
        "standard_conforming_strings", "TimeZone", NULL};
    for (int i = 0; names[i]; i++)
        if (strcasecmp(names[i], name) == 0) return true;
    return false;
}

void client_login(tp_client *c)
{
    tp_pool *p = pools_find(c->database);
    if (!p) {
        char msg[300];
        snprintf(msg, sizeof msg, "database \"%s\" does not exist", c->database);
        log_info("client %llu (%s): user \"%s\": no pool named \"%s\"", (unsigned long long)c->id, c->peer,
                 c->user, c->database);
        client_fatal(c, "3D000", msg);
        return;
    }
    c->pool = p;
    p->clients++;
    c->state = CLIENT_LOGIN_WAIT;
    client_stop_reading(c);
    log_debug("client %llu (%s): user \"%s\" logged in to pool %s", (unsigned long long)c->id, c->peer,
              c->user, p->cfg.name);
    pools_checkout(p, c);
}

/* Append `s` as a SQL string literal. */
static void append_literal(proto_buf *b, const char *s)
{
    proto_buf_append(b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'') proto_buf_append(b, "'", 1);
        proto_buf_append(b, s, 1);
    }
    proto_buf_append(b, "'", 1);
}

static void finish_login(tp_client *c)
{
    tp_backend *b = c->backend;
    proto_buf pb;
    proto_buf_init(&pb);
    for (size_t i = 0; i < b->params.count; i++)
        if (is_reported_param(b->params.items[i].name))
            proto_build_param_status(&pb, b->params.items[i].name, b->params.items[i].value);
    proto_build_backend_key(&pb, c->key_pid, c->key_secret);
    proto_build_ready(&pb, b->txn_status);
    int rc = client_send_buf(c, &pb);
    proto_buf_free(&pb);
    if (rc < 0) return;
    c->state = CLIENT_ACTIVE;
    client_start_reading(c);
    client_process_input(c);
}

static void continue_after_sync(tp_client *c)
{
    if (c->state == CLIENT_LOGIN_WAIT) {
        finish_login(c);
        return;
    }
    c->state = CLIENT_ACTIVE;
    client_start_reading(c);
    client_process_input(c);
}

static void on_params_synced(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    tp_client *c = b->client;
    if (!c) return;
    if (!ok) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", message ? message : "could not apply connection parameters");
        /* As PostgreSQL does for a bad startup parameter: refuse the login. */
        client_fatal(c, sqlstate ? sqlstate : "08006", msg);
        return;
    }
    for (size_t i = 0; i < c->startup.count; i++) {
        const tp_param *sp = &c->startup.items[i];
        if (!is_reported_param(sp->name) && params_set(&b->params, sp->name, sp->value) < 0) {
            client_fatal(c, "53200", "out of memory");
            return;
        }
    }
    continue_after_sync(c);
}

void client_sync_params(tp_client *c)
{
    tp_backend *b = c->backend;
    proto_buf sql;
    proto_buf_init(&sql);
    int n = 0;
    for (size_t i = 0; i < c->startup.count; i++) {
        const tp_param *sp = &c->startup.items[i];
        if (is_connection_param(sp->name)) continue;
        const char *have = params_get(&b->params, sp->name);
        if (have && strcmp(have, sp->value) == 0) continue;
        proto_buf_append(&sql, n == 0 ? "SELECT " : ", ", n == 0 ? 7 : 2);
        proto_buf_append(&sql, "pg_catalog.set_config(", 22);
        append_literal(&sql, sp->name);
        proto_buf_append(&sql, ", ", 2);
        append_literal(&sql, sp->value);
        proto_buf_append(&sql, ", false)", 8);
        n++;
    }
    proto_buf_append(&sql, "", 1);
    if (sql.failed) {
        proto_buf_free(&sql);
        client_fatal(c, "53200", "out of memory");
        return;
    }
    if (n == 0) {
        proto_buf_free(&sql);
        continue_after_sync(c);
        return;
    }
    int rc = backend_query(b, (const char *)sql.data, on_params_synced);
    proto_buf_free(&sql);
    if (rc < 0) client_on_backend_lost(c, "could not send to the server");
}
