/* admin_commands.c: the admin console's commands that act on the daemon —
 * RELOAD, DISPOSE [pool], SHUTDOWN, and PAUSE/RESUME (admin_pause.c) — and
 * SHOW CONFIG; the parsing of them all. (admin.c owns the console itself and
 * its SHOW figures.) */
#include "daemon/admin_commands.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/admin_internal.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/reload.h"
#include "daemon/server.h"

static uv_timer_t shutdown_timer;
static bool timer_ready;

static void send_buf(tp_client *c, proto_buf *pb)
{
    if (client_send_buf(c, pb) < 0) log_debug("admin: client %llu gone", (unsigned long long)c->id);
    proto_buf_free(pb);
}

void admin_reply_error(tp_client *c, const char *sqlstate, const char *msg, const char *detail)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_error(&pb, "ERROR", sqlstate, msg, detail);
    proto_build_ready(&pb, 'I');
    send_buf(c, &pb);
}

void admin_reply_done(tp_client *c, const char *tag)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_command_complete(&pb, tag);
    proto_build_ready(&pb, 'I');
    send_buf(c, &pb);
}

/* The pool `name` names, for a command; replies 3D000 and returns NULL when
 * there is none. */
tp_pool *admin_named_pool(tp_client *c, const char *name)
{
    tp_pool *p = pools_find(name);
    if (!p) {
        char msg[300];
        snprintf(msg, sizeof msg, "no pool named \"%s\"", name);
        admin_reply_error(c, "3D000", msg, NULL);
    }
    return p;
}

/* ---- RELOAD ---- */

static void cmd_reload(tp_client *c)
{
    log_info("admin: client %llu (%s): RELOAD", (unsigned long long)c->id, c->user);
    config_errors errs = {0};
    if (server_reload(&errs) == 0) {
        admin_reply_done(c, "RELOAD");
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
    admin_reply_error(c, "F0000", msg, detail);
    free(detail);
    config_errors_clear(&errs);
}

/* ---- DISPOSE, SHUTDOWN ---- */

static void cmd_dispose(tp_client *c, const char *name)
{
    tp_pool *one = name ? admin_named_pool(c, name) : NULL;
    if (name && !one) return;
    log_info("admin: client %llu (%s): DISPOSE %s", (unsigned long long)c->id, c->user,
             name ? name : "(all)");
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (!p->removed && (!one || p == one)) pools_dispose(p, "DISPOSE");
    }
    admin_reply_done(c, "DISPOSE");
}

static void on_shutdown_timer(uv_timer_t *t)
{
    server_stop(true);
}

static void cmd_shutdown(tp_client *c)
{
    log_info("admin: client %llu (%s): SHUTDOWN: shutting down after running transactions",
             (unsigned long long)c->id, c->user);
    admin_reply_done(c, "SHUTDOWN");
    /* Out of this client's callback: stopping closes every client. */
    if (!timer_ready) {
        uv_timer_init(tp.loop, &shutdown_timer);
        uv_unref((uv_handle_t *)&shutdown_timer); /* it does not keep the loop alive */
        timer_ready = true;
    }
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
        admin_reply_error(c, "42601", msg, NULL);
        return true;
    }
    if (show_config)
        cmd_show_config(c);
    else if (strcasecmp(w[0], "reload") == 0)
        cmd_reload(c);
    else if (strcasecmp(w[0], "shutdown") == 0)
        cmd_shutdown(c);
    else if (strcasecmp(w[0], "pause") == 0)
        admin_pause(c, arg);
    else if (strcasecmp(w[0], "resume") == 0)
        admin_resume(c, arg);
    else
        cmd_dispose(c, arg);
    return true;
}
