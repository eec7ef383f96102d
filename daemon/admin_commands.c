/* admin_commands.c: the admin console's commands that act on the daemon —
 * RELOAD, PAUSE [pool], RESUME [pool], DISPOSE [pool], SHUTDOWN — and SHOW
 * CONFIG. (admin.c owns the console itself and its SHOW figures.)
 *
 * PAUSE follows PgBouncer: the pools stop lending at once (clients wanting a
 * backend are queued, not refused, and do not time out while paused), and
 * the command completes when every transaction in flight on them has ended:
 * no backend lent or connecting. Until then the admin connection waits; a
 * CancelRequest ends the wait with 57014 and leaves the pools paused. */
#include "daemon/admin_commands.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/reload.h"
#include "daemon/server.h"

#define PAUSE_CHECK_MS 20

/* An admin connection waiting for its PAUSE to complete. */
typedef struct pause_wait {
    tp_client *client;
    char *pool; /* the pool named, or NULL for every pool */
} pause_wait;

static pause_wait *waits;
static size_t n_waits;
static uv_timer_t pause_timer, shutdown_timer;
static bool timers_ready;

static void init_timers(void)
{
    if (timers_ready) return;
    uv_timer_init(tp.loop, &pause_timer);
    uv_timer_init(tp.loop, &shutdown_timer);
    uv_unref((uv_handle_t *)&pause_timer); /* neither keeps the loop alive */
    uv_unref((uv_handle_t *)&shutdown_timer);
    timers_ready = true;
}

static void send_buf(tp_client *c, proto_buf *pb)
{
    if (client_send_buf(c, pb) < 0) log_debug("admin: client %llu gone", (unsigned long long)c->id);
    proto_buf_free(pb);
}

static void reply_error(tp_client *c, const char *sqlstate, const char *msg, const char *detail)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_error(&pb, "ERROR", sqlstate, msg, detail);
    proto_build_ready(&pb, 'I');
    send_buf(c, &pb);
}

static void reply_done(tp_client *c, const char *tag)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_command_complete(&pb, tag);
    proto_build_ready(&pb, 'I');
    send_buf(c, &pb);
}

/* The pool `name` names, for a command; replies 3D000 and returns NULL when
 * there is none. */
static tp_pool *named_pool(tp_client *c, const char *name)
{
    tp_pool *p = pools_find(name);
    if (!p) {
        char msg[300];
        snprintf(msg, sizeof msg, "no pool named \"%s\"", name);
        reply_error(c, "3D000", msg, NULL);
    }
    return p;
}

/* ---- RELOAD ---- */

static void cmd_reload(tp_client *c)
{
    log_info("admin: client %llu (%s): RELOAD", (unsigned long long)c->id, c->user);
    config_errors errs = {0};
    if (server_reload(&errs) == 0) {
        reply_done(c, "RELOAD");
        return;
    }
    size_t len = 1;
    for (size_t i = 0; i < errs.count; i++)
        len += strlen(errs.items[i]) + 1;
    char *detail = malloc(len);
    if (detail) {
        detail[0] = '\0';
        for (size_t i = 0; i < errs.count; i++) {
            if (i) strcat(detail, "\n");
            strcat(detail, errs.items[i]);
        }
    }
    char msg[160];
    snprintf(msg, sizeof msg, "reload refused: %zu error(s) in the configuration file; nothing was changed",
             errs.count);
    reply_error(c, "F0000", msg, detail);
    free(detail);
    config_errors_clear(&errs);
}

/* ---- PAUSE / RESUME ---- */

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
        reply_done(c, "PAUSE");
        if (c->state == CLIENT_ADMIN) finish_wait(c);
    }
}

static void cmd_pause(tp_client *c, const char *name)
{
    tp_pool *one = name ? named_pool(c, name) : NULL;
    if (name && !one) return;
    size_t already = 0, live = 0;
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->removed || (one && p != one)) continue;
        live++;
        already += pool_is_paused(p->algo);
    }
    if (live > 0 && already == live) {
        reply_error(c, "55000", name ? "the pool is already paused" : "every pool is already paused", NULL);
        return;
    }
    log_info("admin: client %llu (%s): PAUSE %s", (unsigned long long)c->id, c->user, name ? name : "(all)");
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (!p->removed && (!one || p == one)) pools_pause(p);
    }
    pause_wait w = {.client = c, .pool = name ? strdup(name) : NULL};
    if (name && !w.pool) {
        reply_error(c, "53200", "out of memory", NULL);
        return;
    }
    if (pause_done(&w)) {
        free(w.pool);
        reply_done(c, "PAUSE");
        return;
    }
    pause_wait *v = realloc(waits, (n_waits + 1) * sizeof *v);
    if (!v) {
        free(w.pool);
        reply_error(c, "53200", "out of memory", NULL);
        return;
    }
    waits = v;
    waits[n_waits++] = w;
    c->admin_waiting = true;
    client_stop_reading(c);
    init_timers();
    if (!uv_is_active((uv_handle_t *)&pause_timer))
        uv_timer_start(&pause_timer, on_pause_check, PAUSE_CHECK_MS, PAUSE_CHECK_MS);
}

static void cmd_resume(tp_client *c, const char *name)
{
    tp_pool *one = name ? named_pool(c, name) : NULL;
    if (name && !one) return;
    size_t resumed = 0;
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->removed || (one && p != one) || !pool_is_paused(p->algo)) continue;
        pools_resume(p);
        resumed++;
    }
    if (resumed == 0) {
        reply_error(c, "55000", name ? "the pool is not paused" : "no pool is paused", NULL);
        return;
    }
    log_info("admin: client %llu (%s): RESUME %s", (unsigned long long)c->id, c->user, name ? name : "(all)");
    reply_done(c, "RESUME");
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
    reply_error(c, "57014", "canceling statement due to user request", "the pools stay paused; RESUME them");
    if (c->state == CLIENT_ADMIN) finish_wait(c);
}

/* ---- DISPOSE, SHUTDOWN ---- */

static void cmd_dispose(tp_client *c, const char *name)
{
    tp_pool *one = name ? named_pool(c, name) : NULL;
    if (name && !one) return;
    log_info("admin: client %llu (%s): DISPOSE %s", (unsigned long long)c->id, c->user,
             name ? name : "(all)");
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (!p->removed && (!one || p == one)) pools_dispose(p, "DISPOSE");
    }
    reply_done(c, "DISPOSE");
}

static void on_shutdown_timer(uv_timer_t *t)
{
    server_stop(true);
}

static void cmd_shutdown(tp_client *c)
{
    log_info("admin: client %llu (%s): SHUTDOWN: shutting down after running transactions",
             (unsigned long long)c->id, c->user);
    reply_done(c, "SHUTDOWN");
    /* Out of this client's callback: stopping closes every client. */
    init_timers();
    uv_timer_start(&shutdown_timer, on_shutdown_timer, 0, 0);
}

/* ---- SHOW CONFIG ---- */

static size_t config_rows(proto_buf *pb, bool pools, const char *section, const void *base, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < config_key_count(); i++) {
        config_key_info info;
        config_key_info_at(i, &info);
        if (info.pool != pools) continue;
        char *value = config_key_format(i, base, true);
        const char *dflt = strcmp(info.name, "pool_logging_name") == 0 ? name : info.dflt;
        const char *vals[] = {section, info.name, value ? value : "", dflt,
                              config_reload_effect_to_str(info.reload)};
        proto_build_data_row(pb, 5, vals);
        free(value);
        n++;
    }
    return n;
}

static void cmd_show_config(tp_client *c)
{
    static const char *const cols[] = {"section", "key", "value", "default", "changeable"};
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_row_description(&pb, 5, cols);
    size_t n = config_rows(&pb, false, "tidepool", tp.cfg, NULL);
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->removed) continue;
        char section[300];
        snprintf(section, sizeof section, "pool.%s", p->cfg.name);
        n += config_rows(&pb, true, section, &p->cfg, p->cfg.name);
    }
    char tag[32];
    snprintf(tag, sizeof tag, "SHOW %zu", n);
    proto_build_command_complete(&pb, tag);
    proto_build_ready(&pb, 'I');
    send_buf(c, &pb);
}

/* ---- parsing ---- */

/* Splits "  pause  mypool ; " into at most 3 words (a double-quoted word
 * keeps its case and blanks). Returns the count, or -1 when malformed. */
static int split_words(const char *sql, char words[3][256])
{
    int n = 0;
    const char *s = sql;
    for (;;) {
        while (isspace((unsigned char)*s))
            s++;
        if (*s == ';') {
            s++;
            while (isspace((unsigned char)*s))
                s++;
            return *s ? -1 : n;
        }
        if (!*s) return n;
        if (n == 3) return -1;
        size_t len = 0;
        if (*s == '"') {
            for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
                if (*s == '"') s++; /* "" is a quote */
                if (len + 1 < 256) words[n][len++] = *s;
            }
            if (*s != '"') return -1;
            s++;
        } else {
            for (; *s && !isspace((unsigned char)*s) && *s != ';'; s++)
                if (len + 1 < 256) words[n][len++] = *s;
        }
        words[n++][len] = '\0';
    }
}

bool admin_command(tp_client *c, const char *sql)
{
    char w[3][256];
    int n = split_words(sql, w);
    if (n <= 0) return false;
    const char *arg = n >= 2 ? w[1] : NULL;
    bool takes_pool =
        strcasecmp(w[0], "pause") == 0 || strcasecmp(w[0], "resume") == 0 || strcasecmp(w[0], "dispose") == 0;
    bool bare = strcasecmp(w[0], "reload") == 0 || strcasecmp(w[0], "shutdown") == 0;
    bool show_config = n == 2 && strcasecmp(w[0], "show") == 0 && strcasecmp(w[1], "config") == 0;
    if (!takes_pool && !bare && !show_config) return false;
    if ((takes_pool && n > 2) || (bare && n > 1)) {
        char msg[300];
        snprintf(msg, sizeof msg, "syntax error: %s takes %s", w[0],
                 bare ? "no argument" : "at most a pool name");
        reply_error(c, "42601", msg, NULL);
        return true;
    }
    if (show_config)
        cmd_show_config(c);
    else if (strcasecmp(w[0], "reload") == 0)
        cmd_reload(c);
    else if (strcasecmp(w[0], "shutdown") == 0)
        cmd_shutdown(c);
    else if (strcasecmp(w[0], "pause") == 0)
        cmd_pause(c, arg);
    else if (strcasecmp(w[0], "resume") == 0)
        cmd_resume(c, arg);
    else
        cmd_dispose(c, arg);
    return true;
}
