/* admin.c: the admin console, the virtual database `tidepool` for the users
 * in admin_users (SPEC §5). It answers simple Query messages with real rows,
  * psql-friendly: SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS here (the
  * figures of SHOW POOLS and SHOW STATS come from daemon/figures.c, as do
  * those of /metrics); RELOAD, PAUSE, RESUME, DISPOSE, SHUTDOWN and SHOW
  * CONFIG in admin_commands.c. Anything else is refused with 0A000. */
#include "daemon/admin.h"
#include "daemon/admin_commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/backend.h"
#include "daemon/client_internal.h"
#include "daemon/figures.h"
#include "daemon/client_tls.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

bool admin_user_allowed(const char *user)
{
    for (size_t i = 0; i < tp.cfg->n_admin_users; i++)
        if (strcmp(tp.cfg->admin_users[i], user) == 0) return true;
    return false;
}

void admin_login(tp_client *c)
{
    static const char *const params[][2] = {
        {"server_version", "15.0 (tidepool admin console)"},
        {"server_encoding", "UTF8"},
        {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"},
        {"integer_datetimes", "on"},
        {"standard_conforming_strings", "on"},
        {"application_name", "tidepool"},
    };
    proto_buf pb;
    proto_buf_init(&pb);
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        proto_build_param_status(&pb, params[i][0], params[i][1]);
    proto_build_backend_key(&pb, c->key_pid, c->key_secret);
    proto_build_ready(&pb, 'I');
    if (client_send_buf(c, &pb) == 0) {
        c->state = CLIENT_ADMIN;
        c->logged_in = true;
        client_start_reading(c);
    }
    proto_buf_free(&pb);
}

static void row(proto_buf *pb, size_t n, const char *const *v) { proto_build_data_row(pb, n, v); }

static size_t show_pools(proto_buf *pb)
{
    static const char *const cols[] = {"pool", "mode", "isolation", "pool_size", "max_overflow",
                                       "checked_in", "checked_out", "connecting", "overflow",
                                       "waiting", "longest_wait", "timeouts", "invalidations",
                                       "clients", "pinned", "paused"};
    size_t nc = sizeof cols / sizeof cols[0];
    proto_build_row_description(pb, nc, cols);
    size_t n_all, n = 0;
    stats_figures *all = figures_all(&n_all);
    for (size_t i = 0; i < n_all; i++) {
        const tp_pool *p = pools_at(i);
        const stats_figures *f = &all[i];
        const pool_stats *st = &f->algo;
        if (p->removed) continue; /* draining: see SHOW CLIENTS and SHOW SERVERS */
        char v[16][64];
        snprintf(v[0], sizeof v[0], "%s", f->pool);
        snprintf(v[1], sizeof v[1], "%s", config_pool_mode_to_str(p->cfg.pool_mode));
        snprintf(v[2], sizeof v[2], "%s", config_isolation_to_str(p->cfg.isolation_level));
        snprintf(v[3], sizeof v[3], "%d", f->pool_size);
        snprintf(v[4], sizeof v[4], "%d", f->max_overflow);
        snprintf(v[5], sizeof v[5], "%d", st->idle);
        snprintf(v[6], sizeof v[6], "%d", st->lent);
        snprintf(v[7], sizeof v[7], "%d", st->connecting);
        snprintf(v[8], sizeof v[8], "%d", st->overflow);
        snprintf(v[9], sizeof v[9], "%d", st->waiting);
        snprintf(v[10], sizeof v[10], "%.3f", st->longest_wait);
        snprintf(v[11], sizeof v[11], "%llu", (unsigned long long)st->timeouts);
        snprintf(v[12], sizeof v[12], "%llu", (unsigned long long)st->invalidations);
        snprintf(v[13], sizeof v[13], "%llu", (unsigned long long)f->clients);
        snprintf(v[14], sizeof v[14], "%d", f->pinned);
        snprintf(v[15], sizeof v[15], "%s", pool_is_paused(p->algo) ? "yes" : "no");
        const char *vals[16];
        for (size_t k = 0; k < nc; k++) vals[k] = v[k];
        row(pb, nc, vals);
        n++;
    }
    free(all);
    return n;
}

/* Seconds as whole microseconds, PgBouncer's unit for times. */
static unsigned long long usec(double seconds) { return (unsigned long long)(seconds * 1e6 + 0.5); }

/* SHOW STATS: one row per pool, PgBouncer's column names where it has the
 * figure; times in microseconds. See docs/admin-console.md. */
static size_t show_stats(proto_buf *pb)
{
    static const char *const cols[] = {
        "pool",          "total_xact_count", "total_query_count", "total_received",
        "total_sent",    "total_xact_time",  "total_wait_time",   "avg_xact_time",
        "p99_xact_time", "avg_wait_time",    "p99_wait_time",     "total_server_assignment_count",
        "timeouts",      "invalidations",    "recycles",          "connects",
        "connect_failures", "pre_ping_failures"};
    enum { NC = sizeof cols / sizeof cols[0] };
    proto_build_row_description(pb, NC, cols);
    size_t n;
    stats_figures *all = figures_all(&n);
    for (size_t i = 0; i < n; i++) {
        const stats_figures *f = &all[i];
        const stats_counters *k = &f->counters;
        const unsigned long long nums[NC - 1] = {
            k->transactions,
            k->queries,
            k->bytes_received,
            k->bytes_sent,
            usec(k->xact.sum),
            usec(k->wait.sum),
            usec(stats_hist_mean(&k->xact)),
            usec(stats_hist_quantile(&k->xact, 0.99)),
            usec(stats_hist_mean(&k->wait)),
            usec(stats_hist_quantile(&k->wait, 0.99)),
            f->algo.checkouts,
            f->algo.timeouts,
            f->algo.invalidations,
            f->algo.recycles,
            f->algo.connects,
            f->algo.connect_failures,
            k->pre_ping_failures,
        };
        char v[NC - 1][24];
        const char *vals[NC];
        vals[0] = f->pool;
        for (size_t c = 0; c + 1 < NC; c++) {
            snprintf(v[c], sizeof v[c], "%llu", nums[c]);
            vals[c + 1] = v[c];
        }
        row(pb, NC, vals);
    }
    free(all);
    return n;
}

static const char *client_state_str(const tp_client *c)
{
    switch (c->state) {
    case CLIENT_STARTUP: return "startup";
    case CLIENT_AUTH: return "auth";
    case CLIENT_LOGIN_WAIT: return "login_wait";
    case CLIENT_READY: return "idle";
    case CLIENT_WAITING: return "waiting";
    case CLIENT_ACTIVE: return "active";
    case CLIENT_RELEASING: return "releasing";
    case CLIENT_CLOSING: return "closing";
    case CLIENT_ADMIN: return "admin";
    }
    return "?";
}

static size_t show_clients(proto_buf *pb)
{
    static const char *const cols[] = {"id", "user", "pool", "state", "addr", "backend_pid", "pinned",
                                       "prepared_statements", "connected_for", "tls"};
    size_t nc = sizeof cols / sizeof cols[0], n = 0;
    proto_build_row_description(pb, nc, cols);
    double now = tp_now();
    for (tp_client *c = tp.clients; c; c = c->next, n++) {
        char id[24], pid[16], stmts[16], age[32];
        snprintf(id, sizeof id, "%llu", (unsigned long long)c->id);
        snprintf(pid, sizeof pid, "%d", c->backend ? c->backend->pid : 0);
        snprintf(stmts, sizeof stmts, "%zu", c->stmts.count);
        snprintf(age, sizeof age, "%.1f", now - c->connected_at);
        const char *vals[] = {id,
                              c->user ? c->user : "",
                              c->pool ? c->pool->cfg.name : (c->state == CLIENT_ADMIN ? "tidepool" : ""),
                              client_state_str(c),
                              c->peer,
                              c->backend ? pid : NULL,
                              c->pins ? "yes" : "no",
                              stmts,
                              age,
                              client_tls_version(c)};
        row(pb, nc, vals);
    }
    return n;
}

/* A backend's state as SHOW SERVERS tells it: "linked" with no client is
 * being reset after its client left, or back and waiting for a cancel in
 * flight to arrive before it rejoins the pool; "idle" while lent is being
 * pre-pinged. */
static const char *server_state_str(const tp_backend *b)
{
    if (b->state == BACKEND_LINKED && b->checkin_deferred) return "cancel_wait";
    if (b->state == BACKEND_LINKED && !b->client) return "resetting";
    if (b->state == BACKEND_IDLE && b->slot.state == POOL_CONN_LENT) return "pinging";
    return backend_state_to_str(b->state);
}

static size_t show_servers(proto_buf *pb)
{
    static const char *const cols[] = {"id", "pool", "state", "pid", "client_id", "prepared_statements"};
    size_t nc = sizeof cols / sizeof cols[0], n = 0;
    proto_build_row_description(pb, nc, cols);
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        for (tp_backend *b = p->backends; b; b = b->next_all) {
            if (b->slot.state == POOL_CONN_GONE && b->state != BACKEND_CLOSING && !b->conn) continue;
            char id[24], pid[16], cid[24], stmts[16];
            snprintf(id, sizeof id, "%llu", (unsigned long long)b->id);
            snprintf(pid, sizeof pid, "%d", b->pid);
            snprintf(cid, sizeof cid, "%llu", b->client ? (unsigned long long)b->client->id : 0ull);
            snprintf(stmts, sizeof stmts, "%zu", b->prepared.count);
            const char *vals[] = {id, p->cfg.name, server_state_str(b), pid,
                                  b->client ? cid : NULL, stmts};
            row(pb, nc, vals);
            n++;
        }
    }
    return n;
}

/* Normalise "show  pools ;" to "show pools". */
static void normalise(const char *sql, char *out, size_t cap)
{
    size_t n = 0;
    bool space = false;
    for (const char *s = sql; *s && n + 1 < cap; s++) {
        char ch = *s;
        if (ch == ';') break;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap) out[n++] = ' ';
        space = false;
        out[n++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[n] = '\0';
}

void admin_query(tp_client *c, const char *sql)
{
    if (admin_command(c, sql)) return;
    char cmd[64];
    normalise(sql, cmd, sizeof cmd);
    proto_buf pb;
    proto_buf_init(&pb);
    size_t rows;
    char tag[32];
    if (strcmp(cmd, "show pools") == 0) rows = show_pools(&pb);
    else if (strcmp(cmd, "show clients") == 0) rows = show_clients(&pb);
    else if (strcmp(cmd, "show servers") == 0) rows = show_servers(&pb);
    else if (strcmp(cmd, "show stats") == 0) rows = show_stats(&pb);
    else if (cmd[0] == '\0') {
        proto_build_empty_query(&pb);
        goto done;
    } else {
        char msg[320];
        snprintf(msg, sizeof msg,
                 "admin console: unsupported command \"%s\" (try SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, "
                 "SHOW STATS, SHOW CONFIG, RELOAD, PAUSE, RESUME, DISPOSE, SHUTDOWN)",
                 cmd);
        proto_build_error(&pb, "ERROR", "0A000", msg, NULL);
        goto done;
    }
    snprintf(tag, sizeof tag, "SHOW %zu", rows);
    proto_build_command_complete(&pb, tag);
done:
    proto_build_ready(&pb, 'I');
    if (client_send_buf(c, &pb) < 0) log_debug("admin: client %llu gone", (unsigned long long)c->id);
    proto_buf_free(&pb);
}
