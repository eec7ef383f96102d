/* echo.c: what the pool key `echo` logs, and the state of each client it
 * takes to log the right statement for each run.
 *
 * Responses come back in the order the messages went, so echo keeps a queue
 * of what is in flight: an entry for each Parse and Bind (logged only if it
 * fails: an error can come back before the client has sent the Execute),
 * each Execute and each simple Query (logged at its CommandComplete,
 * EmptyQueryResponse, PortalSuspended or ErrorResponse), and a mark for each
 * Sync and FunctionCall (answered by a ReadyForQuery). After an error the
 * server skips what follows up to the Sync: those entries are dropped
 * unlogged at its ReadyForQuery. A Query's entry stays until its
 * ReadyForQuery, so each statement of a multi-statement Query is logged
 * with that Query's text. The Sync sent after the Execute of a COPY FROM
 * STDIN, which the server ignores, is taken off at its CopyInResponse.
 *
 * Which text an Execute runs is followed as PostgreSQL does: a Parse gives a
 * statement name its text, a Bind gives a portal the text of its statement
 * (and, with echo = debug, its parameters, rendered once there by
 * proto_bind_params_text), an Execute queues the portal's. Texts are
 * tp_shared, held by reference: a run in flight keeps its text when the
 * client closes or replaces the statement, and a Bind copies nothing.
 *
 * Named statements: in transaction mode prepared.c keeps them already
 * (c->stmts: name -> Parse body, to prepare them on whichever backend serves
 * the client); echo reads that list and keeps no copy. In session mode
 * prepared.c is not involved, so echo keeps a list of the same kind itself
 * (client_echo.stmts), bounded to ECHO_MAX_STATEMENTS: beyond, the oldest is
 * forgotten and a run of it logs (unknown statement "name"). Close,
 * DEALLOCATE name, DEALLOCATE ALL and DISCARD ALL forget names. The unnamed
 * statement and portal are kept here in both modes, and named portals up to
 * ECHO_MAX_PORTALS.
 *
 * None of this exists for a client whose pool has echo off: c->echo stays
 * NULL and the relay tests no more than that. Startup and authentication
 * messages never come here. */
#include "daemon/echo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "proto/proto.h"

#define ECHO_MAX_STATEMENTS 256 /* session mode: named statements remembered */
#define ECHO_MAX_PORTALS 16     /* named portals remembered */
#define PARAMS_SHOWN 1024       /* bytes of parameters on one line (a log line holds 2 KB) */
#define PART_SHOWN 200          /* bytes shown of a statement seen in part */

typedef enum {
    ECHO_PARSE = 1, /* a Parse: logged if it fails */
    ECHO_BIND,      /* a Bind: logged if it fails */
    ECHO_EXECUTE,   /* an Execute: logged at its result */
    ECHO_QUERY,     /* a simple Query: logged at each result, kept to its ReadyForQuery */
    ECHO_SYNC,      /* a Sync or FunctionCall: ends at a ReadyForQuery */
} echo_kind;

typedef struct echo_entry {
    uint8_t kind;
    tp_shared *sql;    /* the statement's text (a C string at data); NULL for a Sync
                          or a Parse too malformed to read */
    tp_shared *params; /* a Bind or Execute with echo = debug: the Bind's parameters as text */
    double started;    /* tp_now() when it was relayed */
} echo_entry;

typedef struct echo_portal {
    char *name;        /* named portals; NULL for the unnamed one */
    tp_shared *sql;    /* the text of the statement bound to it, NULL before a Bind */
    tp_shared *params; /* echo = debug: that Bind's parameters as text */
} echo_portal;

struct client_echo {
    echo_entry *q; /* ring buffer of what is in flight, oldest first */
    size_t head, count, cap;
    /* An error was logged: the server skips up to the Sync (and a second
     * error, a FATAL, is not the next entry's). */
    bool skipping;
    bool copy_in;                        /* a COPY FROM STDIN runs: the server ignores the client's Syncs */
    tp_shared *unnamed;                  /* the unnamed statement: its Parse body after the name */
    echo_portal portal;                  /* the unnamed portal */
    echo_portal named[ECHO_MAX_PORTALS]; /* named portals, oldest first */
    size_t n_named;
    tp_stmts stmts; /* session mode only: the named statements (see above) */
};

/* ---- the queue ---- */

static void entry_clear(echo_entry *x)
{
    tp_shared_unref(x->sql);
    tp_shared_unref(x->params);
}

static echo_entry *head_entry(client_echo *e)
{
    return e->count ? &e->q[e->head] : NULL;
}

static void pop(client_echo *e)
{
    if (!e->count) return;
    entry_clear(&e->q[e->head]);
    e->head = (e->head + 1) % e->cap;
    e->count--;
}

/* Queue an entry; it takes the references sql and params. */
static int push(client_echo *e, uint8_t kind, tp_shared *sql, tp_shared *params)
{
    if (e->count == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        echo_entry *n = malloc(cap * sizeof *n);
        if (!n) {
            tp_shared_unref(sql);
            tp_shared_unref(params);
            return -1;
        }
        for (size_t i = 0; i < e->count; i++)
            n[i] = e->q[(e->head + i) % e->cap];
        free(e->q);
        e->q = n;
        e->cap = cap;
        e->head = 0;
    }
    e->q[(e->head + e->count) % e->cap] = (echo_entry){kind, sql, params, tp_now()};
    e->count++;
    return 0;
}

/* CopyInResponse: the Syncs queued after the COPY's entry get no answer. */
static void drop_syncs_after_head(client_echo *e)
{
    size_t keep = e->count ? 1 : 0;
    for (size_t i = 1; i < e->count; i++) {
        echo_entry *x = &e->q[(e->head + i) % e->cap];
        if (x->kind == ECHO_SYNC) {
            entry_clear(x);
            continue;
        }
        e->q[(e->head + keep++) % e->cap] = *x;
    }
    e->count = keep;
}

/* ---- texts ---- */

static tp_shared *text_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static tp_shared *text_printf(const char *fmt, ...)
{
    char buf[PART_SHOWN + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    return tp_shared_new(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A statement of a message too big to keep whole: its first bytes, and its size. */
static tp_shared *text_in_part(const uint8_t *s, size_t have, size_t total)
{
    size_t n = strnlen((const char *)s, have < PART_SHOWN ? have : PART_SHOWN);
    return text_printf("%.*s... (%zu bytes)", (int)n, (const char *)s, total);
}

static tp_shared *unknown(const char *what, const char *name)
{
    if (!name || !name[0]) return text_printf("(unknown %s)", what);
    return text_printf("(unknown %s \"%.64s\")", what, name);
}

/* The client's named statements: prepared.c's list in transaction mode. */
static tp_stmts *statements(tp_client *c)
{
    return c->txn_pooling ? &c->stmts : &c->echo->stmts;
}

/* A new reference to the text of statement `name`, or NULL when unknown. */
static tp_shared *statement_text(tp_client *c, const char *name)
{
    if (!name[0]) return tp_shared_ref(c->echo->unnamed);
    tp_stmt *st = stmts_find(statements(c), name);
    return st ? tp_shared_ref(st->rest) : NULL;
}

/* Session mode: "DEALLOCATE name" forgets the name. */
static void forget_deallocated(tp_client *c, const char *sql)
{
    char name[128];
    if (!c->txn_pooling && proto_sql_deallocate_name(sql, strlen(sql), name, sizeof name))
        stmts_remove(&c->echo->stmts, name);
}

/* ---- portals ---- */

static void portal_clear(echo_portal *p)
{
    free(p->name);
    tp_shared_unref(p->sql);
    tp_shared_unref(p->params);
    memset(p, 0, sizeof *p);
}

static echo_portal *portal_find(client_echo *e, const char *name)
{
    if (!name[0]) return &e->portal;
    for (size_t i = 0; i < e->n_named; i++)
        if (strcmp(e->named[i].name, name) == 0) return &e->named[i];
    return NULL;
}

/* The portal a Bind fills: made (the oldest named one forgotten when there
 * are too many); NULL when out of memory. */
static echo_portal *portal_make(client_echo *e, const char *name)
{
    echo_portal *p = portal_find(e, name);
    if (p) return p;
    char *copy = strdup(name);
    if (!copy) return NULL;
    if (e->n_named == ECHO_MAX_PORTALS) {
        portal_clear(&e->named[0]);
        memmove(&e->named[0], &e->named[1], (ECHO_MAX_PORTALS - 1) * sizeof e->named[0]);
        e->n_named--;
    }
    p = &e->named[e->n_named++];
    *p = (echo_portal){.name = copy};
    return p;
}

static void portal_close(client_echo *e, const char *name)
{
    echo_portal *p = portal_find(e, name);
    if (!p) return;
    portal_clear(p);
    if (p == &e->portal) return;
    size_t i = (size_t)(p - e->named);
    memmove(p, p + 1, (e->n_named - i - 1) * sizeof *p);
    e->n_named--;
}

/* ---- client messages ---- */

static int on_parse(tp_client *c, const uint8_t *body, size_t have, size_t total)
{
    client_echo *e = c->echo;
    const char *stmt, *query;
    tp_shared *text;
    if (have == total) {
        proto_msg m = {'P', body, (uint32_t)have, have + 5};
        if (proto_parse_parse(&m, &stmt, &query) != PROTO_COMPLETE)
            return push(e, ECHO_PARSE, NULL, NULL); /* PostgreSQL refuses it */
        size_t skip = strlen(stmt) + 1;
        text = tp_shared_new(body + skip, have - skip);
    } else {
        if (proto_peek_cstrings(body, have, 1, &stmt) != PROTO_COMPLETE)
            return push(e, ECHO_PARSE, NULL, NULL);
        size_t skip = strlen(stmt) + 1;
        text = text_in_part(body + skip, have - skip, total - skip);
    }
    if (!text) return -1;
    if (!stmt[0]) {
        tp_shared_unref(e->unnamed);
        e->unnamed = tp_shared_ref(text);
        forget_deallocated(c, (const char *)text->data);
    } else if (!c->txn_pooling) {
        /* Session mode: the name stands for this text from now on. */
        if (stmts_put_shared(&e->stmts, stmt, 0, text) < 0) {
            tp_shared_unref(text);
            return -1;
        }
        if (e->stmts.count > ECHO_MAX_STATEMENTS) stmts_remove(&e->stmts, e->stmts.items[0].name);
    }
    /* In transaction mode prepared.c remembers a named one. */
    return push(e, ECHO_PARSE, text, NULL);
}

static int on_bind(tp_client *c, const uint8_t *body, size_t have, size_t total)
{
    client_echo *e = c->echo;
    proto_bind b;
    const char *names[2];
    bool parsed = false;
    if (have == total) {
        proto_msg m = {'B', body, (uint32_t)have, have + 5};
        parsed = proto_parse_bind_params(&m, &b) == PROTO_COMPLETE;
    }
    if (parsed) {
        names[0] = b.portal;
        names[1] = b.stmt;
    } else if (proto_peek_cstrings(body, have, 2, names) != PROTO_COMPLETE) {
        /* PostgreSQL refuses it (and skips the Execute after it). */
        tp_shared *sql = unknown("statement", NULL);
        return sql ? push(e, ECHO_BIND, sql, NULL) : -1;
    }
    echo_portal *p = portal_make(e, names[0]);
    if (!p) return -1;
    tp_shared *sql = statement_text(c, names[1]);
    if (!sql && !(sql = unknown("statement", names[1]))) return -1;
    tp_shared *params = NULL;
    if (c->pool->cfg.echo == CONFIG_ECHO_DEBUG && (parsed || have < total)) {
        char buf[PARAMS_SHOWN];
        size_t n = parsed ? proto_bind_params_text(&b, buf, sizeof buf)
                          : (size_t)snprintf(buf, sizeof buf, "(not shown: a Bind of %zu bytes)", total);
        if (!(params = tp_shared_new(buf, n))) {
            tp_shared_unref(sql);
            return -1;
        }
    }
    tp_shared_unref(p->sql);
    tp_shared_unref(p->params);
    p->sql = sql;
    p->params = params;
    return push(e, ECHO_BIND, tp_shared_ref(sql), tp_shared_ref(params));
}

static int on_execute(tp_client *c, const uint8_t *body, size_t have)
{
    const char *name = NULL;
    echo_portal *p = NULL;
    if (proto_peek_cstrings(body, have, 1, &name) == PROTO_COMPLETE) p = portal_find(c->echo, name);
    tp_shared *sql = p ? tp_shared_ref(p->sql) : NULL;
    if (!sql && !(sql = unknown("portal", name))) return -1;
    return push(c->echo, ECHO_EXECUTE, sql, p ? tp_shared_ref(p->params) : NULL);
}

static int on_query(tp_client *c, const uint8_t *body, size_t have, size_t total)
{
    /* Whole: the text with its NUL (tp_shared adds one if it lacked it). */
    tp_shared *sql = have == total ? tp_shared_new(body, have) : text_in_part(body, have, total);
    if (!sql) return -1;
    if (have == total) forget_deallocated(c, (const char *)sql->data);
    return push(c->echo, ECHO_QUERY, sql, NULL);
}

static void on_close(tp_client *c, const uint8_t *body, size_t have, size_t total)
{
    client_echo *e = c->echo;
    proto_msg m = {'C', body, (uint32_t)have, have + 5};
    char kind;
    const char *name;
    if (have != total || proto_parse_close_describe(&m, &kind, &name) != PROTO_COMPLETE) return;
    if (kind == 'P') {
        portal_close(e, name);
    } else if (!name[0]) {
        tp_shared_unref(e->unnamed);
        e->unnamed = NULL;
    } else if (!c->txn_pooling) {
        stmts_remove(&e->stmts, name);
    }
}

int echo_client_message(tp_client *c, uint8_t type, const uint8_t *msg, size_t have, size_t total)
{
    client_echo *e = c->echo;
    if (!e && !(e = c->echo = calloc(1, sizeof *e))) return -1;
    const uint8_t *body = msg + 5; /* the header is there: the relay framed it */
    have -= 5;
    total -= 5;
    switch (type) {
    case 'P':
        return on_parse(c, body, have, total);
    case 'B':
        return on_bind(c, body, have, total);
    case 'E':
        return on_execute(c, body, have);
    case 'Q':
        return on_query(c, body, have, total);
    case 'C':
        on_close(c, body, have, total);
        return 0;
    case 'S':
        return e->copy_in ? 0 : push(e, ECHO_SYNC, NULL, NULL);
    case 'F':
        return push(e, ECHO_SYNC, NULL, NULL);
    case 'c':
    case 'f':
        e->copy_in = false;
        return 0;
    default:
        return 0;
    }
}

/* ---- backend messages ---- */

static void log_run(tp_client *c, const echo_entry *h, bool error, const char *tag)
{
    const config_pool *cfg = &c->pool->cfg;
    if (cfg->echo == CONFIG_ECHO_OFF) return; /* turned off by a reload since */
    double ms = (tp_now() - h->started) * 1000.0;
    const char *sql = h->sql ? (const char *)h->sql->data : "(statement)";
    bool params = cfg->echo == CONFIG_ECHO_DEBUG && h->params;
    log_info("echo pool=%s client=%llu user=%s: %s [%s%s, %.3f ms]%s%s", cfg->pool_logging_name,
             (unsigned long long)c->id, c->user, sql, error ? "ERROR " : "", tag, ms,
             params ? " parameters: " : "", params ? (const char *)h->params->data : "");
}

/* Drop entries answered without a word echo watches for (their Parse or
 * Bind succeeded) up to one of `kind`; the head then, or NULL. */
static echo_entry *head_of(client_echo *e, uint8_t kind)
{
    echo_entry *h;
    while ((h = head_entry(e)) && h->kind < kind && (h->kind == ECHO_PARSE || h->kind == ECHO_BIND))
        pop(e);
    return h;
}

void echo_backend_message(tp_client *c, uint8_t type, const char *arg)
{
    client_echo *e = c->echo;
    echo_entry *h;
    switch (type) {
    case '1':
        if ((h = head_entry(e)) && h->kind == ECHO_PARSE) pop(e);
        break;
    case '2':
        if ((h = head_of(e, ECHO_BIND)) && h->kind == ECHO_BIND) pop(e);
        break;
    case 'C':
    case 'I':
    case 's':
        if (type == 'C' && !c->txn_pooling &&
            (strcmp(arg, "DEALLOCATE ALL") == 0 || strcmp(arg, "DISCARD ALL") == 0))
            stmts_clear(&e->stmts); /* (prepared.c clears c->stmts) */
        h = head_of(e, ECHO_EXECUTE);
        if (!h || (h->kind != ECHO_EXECUTE && h->kind != ECHO_QUERY)) break; /* none of echo's */
        log_run(c, h, false, type == 'C' ? arg : type == 'I' ? "EMPTY" : "SUSPENDED");
        if (h->kind == ECHO_EXECUTE) pop(e);
        break;
    case 'E':
        h = head_entry(e);
        if (!h || h->kind == ECHO_SYNC || e->skipping) break; /* not a statement's */
        log_run(c, h, true, arg);
        e->skipping = true;
        e->copy_in = false;
        if (h->kind != ECHO_QUERY) pop(e);
        break;
    case 'G':
        e->copy_in = true;
        drop_syncs_after_head(e);
        break;
    case 'Z':
        /* What is left before the Sync was skipped: not run, not logged. */
        e->skipping = false;
        while ((h = head_entry(e))) {
            bool end = h->kind == ECHO_SYNC || h->kind == ECHO_QUERY;
            pop(e);
            if (end) break;
        }
        break;
    default:
        break;
    }
}

void echo_free(client_echo *e)
{
    if (!e) return;
    while (e->count)
        pop(e);
    free(e->q);
    tp_shared_unref(e->unnamed);
    portal_clear(&e->portal);
    for (size_t i = 0; i < e->n_named; i++)
        portal_clear(&e->named[i]);
    stmts_clear(&e->stmts);
    free(e);
}
