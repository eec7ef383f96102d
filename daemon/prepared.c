/* prepared.c: named prepared statements across backends (see prepared.h). */
#include "daemon/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/client_internal.h"
#include "daemon/echo.h"
#include "daemon/log.h"
#include "daemon/pools.h"

/* ---- containers ---- */

void stmts_clear(tp_stmts *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->items[i].name);
        tp_shared_unref(s->items[i].rest);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

void expects_clear(tp_expects *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}

void replay_clear(tp_replay *r)
{
    free(r->data);
    memset(r, 0, sizeof *r);
}

void prepared_no_replay(tp_backend *b) { b->replay.capturing = b->replay.ready = false; }

/* Keep the client's batch while it may need a replay. */
static void replay_capture(tp_backend *b, uint8_t type, const uint8_t *msg, size_t total, uint64_t hash)
{
    tp_replay *r = &b->replay;
    if (type == 'B' && b->expects.count == 0 && b->txn_status == 'I' && hash) {
        r->capturing = true;
        r->ready = false;
        r->len = 0;
        r->popped_at = b->expects.popped;
        r->hash = hash;
    } else if (!r->capturing || (type != 'B' && type != 'D' && type != 'E' && type != 'S')) {
        r->capturing = r->ready = false;
        return;
    }
    if (r->len + total > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + total) cap *= 2;
        if (cap > 1024 * 1024) {
            r->capturing = false; /* too big to keep: no replay */
            return;
        }
        uint8_t *n = realloc(r->data, cap);
        if (!n) {
            r->capturing = false;
            return;
        }
        r->data = n;
        r->cap = cap;
    }
    memcpy(r->data + r->len, msg, total);
    r->len += total;
    if (type == 'S') {
        r->capturing = false;
        r->ready = true;
    }
}

void prepared_clear(tp_prepared *p)
{
    free(p->hashes);
    memset(p, 0, sizeof *p);
}

tp_stmt *stmts_find(tp_stmts *s, const char *name)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->items[i].name, name) == 0) return &s->items[i];
    return NULL;
}

void stmts_remove(tp_stmts *s, const char *name)
{
    tp_stmt *st = stmts_find(s, name);
    if (!st) return;
    free(st->name);
    tp_shared_unref(st->rest);
    size_t i = (size_t)(st - s->items);
    memmove(st, st + 1, (s->count - i - 1) * sizeof *st);
    s->count--;
}

int stmts_put_shared(tp_stmts *s, const char *name, uint64_t hash, tp_shared *rest)
{
    tp_stmt *st = stmts_find(s, name);
    if (!st) {
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            tp_stmt *n = realloc(s->items, cap * sizeof *n);
            if (!n) return -1;
            s->items = n;
            s->cap = cap;
        }
        st = &s->items[s->count];
        if (!(st->name = strdup(name))) return -1;
        st->rest = NULL;
        s->count++;
    }
    tp_shared_unref(st->rest);
    st->hash = hash;
    st->rest = tp_shared_ref(rest);
    st->effects =
        proto_sql_session_effects((const char *)rest->data, strnlen((const char *)rest->data, rest->len));
    return 0;
}

int stmts_put(tp_stmts *s, const char *name, uint64_t hash, const uint8_t *rest, size_t rest_len)
{
    tp_shared *copy = tp_shared_new(rest, rest_len);
    if (!copy) return -1;
    int rc = stmts_put_shared(s, name, hash, copy);
    tp_shared_unref(copy);
    return rc;
}

static int expect_push(tp_backend *b, uint8_t kind, uint64_t hash)
{
    tp_expects *q = &b->expects;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        tp_expect *n = malloc(cap * sizeof *n);
        if (!n) return -1;
        for (size_t i = 0; i < q->count; i++) n[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = n;
        q->cap = cap;
        q->head = 0;
    }
    q->items[(q->head + q->count) % q->cap] = (tp_expect){kind, hash};
    q->count++;
    return 0;
}

static tp_expect *expect_head(tp_backend *b)
{
    return b->expects.count ? &b->expects.items[b->expects.head] : NULL;
}

static void expect_pop(tp_backend *b)
{
    tp_expects *q = &b->expects;
    if (!q->count) return;
    q->popped++;
    q->head = (q->head + 1) % q->cap;
    q->count--;
}

/* ---- a backend's prepared statements (LRU order, most recent last) ---- */

static bool has_stmt(tp_backend *b, uint64_t hash)
{
    tp_prepared *p = &b->prepared;
    for (size_t i = 0; i < p->count; i++)
        if (p->hashes[i] == hash) {
            memmove(&p->hashes[i], &p->hashes[i + 1], (p->count - i - 1) * sizeof *p->hashes);
            p->hashes[p->count - 1] = hash;
            return true;
        }
    return false;
}

static void forget_stmt(tp_backend *b, uint64_t hash)
{
    tp_prepared *p = &b->prepared;
    for (size_t i = 0; i < p->count; i++)
        if (p->hashes[i] == hash) {
            memmove(&p->hashes[i], &p->hashes[i + 1], (p->count - i - 1) * sizeof *p->hashes);
            p->count--;
            return;
        }
}

static void server_name(uint64_t hash, char out[24])
{
    snprintf(out, 24, "tp_%016llx", (unsigned long long)hash);
}

/* Send what pb holds (the message tidepool built) to b, free pb, and note
 * that its answer is of `kind`. 0, or -1 on failure. */
static int send_expecting(tp_backend *b, proto_buf *pb, uint8_t kind, uint64_t hash)
{
    int rc = pb->failed ? -1 : backend_send(b, pb->data, pb->len);
    proto_buf_free(pb);
    if (rc == 0) rc = expect_push(b, kind, hash);
    return rc;
}

static int send_close(tp_backend *b, uint64_t hash)
{
    char name[24];
    server_name(hash, name);
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_close(&pb, 'S', name);
    return send_expecting(b, &pb, SWALLOW_CLOSE, 0);
}

/* Record hash as prepared on b, closing the least recently used statement
 * when the backend holds max_prepared_statements already. */
static int add_stmt(tp_backend *b, uint64_t hash)
{
    tp_prepared *p = &b->prepared;
    size_t max = b->pool->cfg.max_prepared_statements > 0 ? (size_t)b->pool->cfg.max_prepared_statements : 1;
    while (p->count >= max) {
        uint64_t victim = p->hashes[0];
        memmove(&p->hashes[0], &p->hashes[1], (p->count - 1) * sizeof *p->hashes);
        p->count--;
        if (send_close(b, victim) < 0) return -1;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        uint64_t *n = realloc(p->hashes, cap * sizeof *n);
        if (!n) return -1;
        p->hashes = n;
        p->cap = cap;
    }
    p->hashes[p->count++] = hash;
    return 0;
}

static int send_parse(tp_backend *b, const tp_stmt *st, uint8_t kind)
{
    char name[24];
    server_name(st->hash, name);
    if (add_stmt(b, st->hash) < 0) return -1;
    proto_buf pb;
    proto_buf_init(&pb);
    proto_buf_begin(&pb, 'P');
    proto_buf_put_str(&pb, name);
    proto_buf_put_bytes(&pb, st->rest->data, st->rest->len);
    proto_buf_end(&pb);
    return send_expecting(b, &pb, kind, st->hash);
}

/* The statement must exist on b before a Bind or Describe uses it. */
static int ensure_prepared(tp_backend *b, const tp_stmt *st)
{
    if (has_stmt(b, st->hash)) return 0;
    return send_parse(b, st, SWALLOW_PARSE);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- a client's limit (max_client_prepared_statements) ---- */

/* Whether remembering statement `name` would take the client past its
 * pool's max_client_prepared_statements: a new name while it has that many. */
static bool over_client_limit(tp_client *c, const char *name)
{
    int max = c->pool ? c->pool->cfg.max_client_prepared_statements : 0;
    if (max <= 0 || name[0] == '\0' || c->stmts.count < (size_t)max || stmts_find(&c->stmts, name))
        return false;
    if (!c->stmts_limit_logged) {
        c->stmts_limit_logged = true;
        log_warn("pool %s: client %llu (%s): Parse of a new prepared statement refused: it has %zu, "
                 "max_client_prepared_statements = %d (logged once per client)",
                 c->pool->cfg.pool_logging_name, (unsigned long long)c->id, c->peer, c->stmts.count, max);
    }
    return true;
}

bool prepared_parse_refused(tp_client *c, const uint8_t *msg, size_t total)
{
    /* The common case, below the limit, without parsing the message. */
    int max = c->pool ? c->pool->cfg.max_client_prepared_statements : 0;
    if (max <= 0 || c->stmts.count < (size_t)max) return false;
    proto_msg m = {'P', msg + 5, (uint32_t)(total - 5), total};
    const char *stmt, *query;
    return proto_parse_parse(&m, &stmt, &query) == PROTO_COMPLETE && over_client_limit(c, stmt);
}

void prepared_send_refusal(tp_client *c)
{
    char message[128];
    snprintf(message, sizeof message,
             "too many prepared statements for this client (max_client_prepared_statements = %d)",
             c->pool->cfg.max_client_prepared_statements);
    client_error(c, "53400", message);
}

/* A refused Parse in the middle of the client's stream still reaches the
 * backend, as a Parse that fails there: PostgreSQL then skips the rest up to
 * the Sync and aborts the transaction, as for any error, so the backend's
 * state stays what the client is told. Its error is replaced by the client's
 * 53400 (see prepared_backend_message). It is named so that it leaves the
 * unnamed statement alone, and it never creates anything. */
static int send_refused_parse(tp_backend *b)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_parse(&pb, "tp_refused", "tidepool refused this Parse (max_client_prepared_statements)", 0,
                      NULL);
    return send_expecting(b, &pb, REFUSED_PARSE, 0);
}

/* The backend's error for a refused Parse: the client is sent its 53400
 * instead. */
static void answer_refused_parse(tp_backend *b)
{
    tp_client *c = b->client;
    if (!c) return;
    if (c->echo) echo_backend_message(c, 'E', "53400");
    prepared_send_refusal(c);
}

/* ---- client -> backend ---- */

bool prepared_needs_whole(uint8_t type)
{
    return type == 'P' || type == 'B' || type == 'D' || type == 'C' || type == 'E' || type == 'S';
}

int prepared_note_query(tp_backend *b) { return expect_push(b, EXPECT_QUERY, 0); }

static int send_raw(tp_backend *b, const uint8_t *msg, size_t total, uint8_t kind)
{
    if (backend_send(b, msg, total) < 0) return -1;
    return kind ? expect_push(b, kind, 0) : 0;
}

/* Send `msg` with the statement name at body offset `at` (of length
 * `old_len`) replaced by the server name of `st`. */
static int send_renamed(tp_backend *b, uint8_t type, const uint8_t *body, size_t body_len, size_t at,
                        size_t old_len, const tp_stmt *st, uint8_t kind)
{
    char name[24];
    server_name(st->hash, name);
    proto_buf pb;
    proto_buf_init(&pb);
    proto_buf_begin(&pb, type);
    proto_buf_put_bytes(&pb, body, at);
    proto_buf_put_str(&pb, name);
    proto_buf_put_bytes(&pb, body + at + old_len + 1, body_len - at - old_len - 1);
    proto_buf_end(&pb);
    return send_expecting(b, &pb, kind, 0);
}

/* The client deallocates one of its statements: make sure the backend has
 * it, write "DEALLOCATE <server name>" into sql, and forget it on both sides
 * (st is freed). */
static int deallocate_sql(tp_client *c, tp_backend *b, tp_stmt *st, char sql[40])
{
    if (ensure_prepared(b, st) < 0) return -1;
    snprintf(sql, 40, "DEALLOCATE tp_%016llx", (unsigned long long)st->hash);
    forget_stmt(b, st->hash);
    stmts_remove(&c->stmts, st->name);
    return 0;
}

int prepared_client_message(tp_client *c, tp_backend *b, uint8_t type, const uint8_t *msg, size_t total)
{
    proto_msg m = {type, msg + 5, (uint32_t)(total - 5), total};
    const uint8_t *body = m.body;
    int rc;
    if (!b->replay.pending) {
        uint64_t hash = 0;
        const char *portal, *stmt;
        tp_stmt *bound;
        if (type == 'B' && proto_parse_bind(&m, &portal, &stmt) == PROTO_COMPLETE && stmt[0] &&
            (bound = stmts_find(&c->stmts, stmt)) && has_stmt(b, bound->hash))
            hash = bound->hash;
        replay_capture(b, type, msg, total, hash);
    }
    switch (type) {
    case 'P': {
        const char *stmt, *query;
        if (proto_parse_parse(&m, &stmt, &query) != PROTO_COMPLETE)
            return send_raw(b, msg, total, EXPECT_PARSE); /* PostgreSQL judges it */
        if (stmt[0] == '\0') {
            char name[128];
            tp_stmt *own;
            if (!proto_sql_deallocate_name(query, strlen(query), name, sizeof name) ||
                !(own = stmts_find(&c->stmts, name)))
                return send_raw(b, msg, total, EXPECT_PARSE);
            /* "DEALLOCATE name" of one of its statements (psycopg 3's cache
             * turning over): deallocate the server name instead. */
            char sql[40];
            if (deallocate_sql(c, b, own, sql) < 0) return -1;
            proto_buf pb;
            proto_buf_init(&pb);
            proto_build_parse(&pb, "", sql, 0, NULL);
            rc = send_expecting(b, &pb, EXPECT_PARSE, 0);
            break;
        }
        if (over_client_limit(c, stmt)) {
            rc = send_refused_parse(b);
            break;
        }
        size_t skip = strlen(stmt) + 1;
        const uint8_t *rest = body + skip;
        size_t rest_len = m.body_len - skip;
        uint64_t hash = hash_bytes(rest, rest_len);
        if (stmts_put(&c->stmts, stmt, hash, rest, rest_len) < 0) return -1;
        const tp_stmt *st = stmts_find(&c->stmts, stmt);
        if (has_stmt(b, hash)) rc = expect_push(b, FAKE_PARSE, 0);
        else rc = send_parse(b, st, EXPECT_PARSE);
        break;
    }
    case 'B': {
        const char *portal, *stmt;
        tp_stmt *st;
        if (proto_parse_bind(&m, &portal, &stmt) != PROTO_COMPLETE || stmt[0] == '\0' ||
            !(st = stmts_find(&c->stmts, stmt)))
            return send_raw(b, msg, total, EXPECT_BIND);
        if (st->effects) client_apply_session_effects(c, st->effects);
        if (ensure_prepared(b, st) < 0) return -1;
        rc = send_renamed(b, 'B', body, m.body_len, strlen(portal) + 1, strlen(stmt), st, EXPECT_BIND);
        break;
    }
    case 'D':
    case 'C': {
        char kind;
        const char *name;
        tp_stmt *st;
        uint8_t expect = type == 'D' ? EXPECT_DESCRIBE : EXPECT_CLOSE;
        if (proto_parse_close_describe(&m, &kind, &name) != PROTO_COMPLETE || kind != 'S' || name[0] == '\0')
            return send_raw(b, msg, total, expect);
        if (type == 'C') {
            /* The statement stays prepared on the backend for reuse; the
             * client's name is forgotten and its Close answered here. */
            stmts_remove(&c->stmts, name);
            rc = expect_push(b, FAKE_CLOSE, 0);
            break;
        }
        if (!(st = stmts_find(&c->stmts, name))) return send_raw(b, msg, total, expect);
        if (ensure_prepared(b, st) < 0) return -1;
        rc = send_renamed(b, 'D', body, m.body_len, 1, strlen(name), st, EXPECT_DESCRIBE);
        break;
    }
    case 'E':
        rc = send_raw(b, msg, total, EXPECT_EXECUTE);
        break;
    case 'S':
        rc = send_raw(b, msg, total, EXPECT_SYNC);
        break;
    default:
        rc = send_raw(b, msg, total, 0);
        break;
    }
    if (rc == 0) prepared_flush_fakes(b);
    return rc;
}

int stmts_register(tp_stmts *s, const uint8_t *msg, size_t total)
{
    proto_msg m = {'P', msg + 5, (uint32_t)(total - 5), total};
    const char *stmt, *query;
    if (proto_parse_parse(&m, &stmt, &query) != PROTO_COMPLETE || stmt[0] == '\0') return 0;
    size_t skip = strlen(stmt) + 1;
    const uint8_t *rest = m.body + skip;
    size_t rest_len = m.body_len - skip;
    return stmts_put(s, stmt, hash_bytes(rest, rest_len), rest, rest_len) < 0 ? -1 : 1;
}

int prepared_register(tp_client *c, const uint8_t *msg, size_t total)
{
    return stmts_register(&c->stmts, msg, total);
}

int prepared_deallocate(tp_client *c, tp_backend *b, const char *name)
{
    tp_stmt *st = stmts_find(&c->stmts, name);
    if (!st) return 0;
    /* The backend answers DEALLOCATE itself, so the client gets exactly what
     * PostgreSQL would send; the statement is prepared first if need be. */
    char sql[40];
    if (deallocate_sql(c, b, st, sql) < 0) return -1;
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_query(&pb, sql);
    int rc = send_expecting(b, &pb, EXPECT_QUERY, 0);
    return rc < 0 ? -1 : 1;
}

/* ---- backend -> client ---- */

void prepared_flush_fakes(tp_backend *b)
{
    tp_expect *h;
    while (b->client && (h = expect_head(b)) && (h->kind == FAKE_PARSE || h->kind == FAKE_CLOSE)) {
        uint8_t msg[5] = {h->kind == FAKE_PARSE ? '1' : '3', 0, 0, 0, 4};
        expect_pop(b);
        if (msg[0] == '1' && b->client->echo) echo_backend_message(b->client, '1', NULL);
        if (client_send(b->client, msg, sizeof msg) < 0) return;
    }
}

/* Everything up to the Sync is skipped by PostgreSQL after an error: forget
 * statements whose Parse will now never run. */
static void drop_to_sync(tp_backend *b)
{
    tp_expect *h;
    while ((h = expect_head(b)) && h->kind != EXPECT_SYNC && h->kind != EXPECT_QUERY) {
        if ((h->kind == EXPECT_PARSE || h->kind == SWALLOW_PARSE) && h->hash) forget_stmt(b, h->hash);
        expect_pop(b);
    }
}

/* Close the stale statement, then feed the kept batch through again: its
 * Bind prepares the statement anew first. Its Sync was counted once already
 * and the swallowed ReadyForQuery did not uncount it. */
static void replay_batch(tp_backend *b)
{
    tp_replay *r = &b->replay;
    tp_client *c = b->client;
    r->pending = false;
    r->ready = false;
    if (!c) return;
    log_info("pool %s: client %llu: plan gone stale under a schema change; statement prepared again",
             b->pool->cfg.pool_logging_name, (unsigned long long)c->id);
    forget_stmt(b, r->hash);
    uint8_t *batch = r->data;
    size_t len = r->len;
    r->data = NULL;
    r->len = r->cap = 0;
    if (send_close(b, r->hash) < 0) {
        free(batch);
        return;
    }
    for (size_t off = 0; off + 5 <= len;) {
        uint32_t n = ((uint32_t)batch[off + 1] << 24) | ((uint32_t)batch[off + 2] << 16) |
                     ((uint32_t)batch[off + 3] << 8) | batch[off + 4];
        if (prepared_client_message(c, b, batch[off], batch + off, (size_t)n + 1) < 0) break;
        off += (size_t)n + 1;
    }
    free(batch);
}

bool prepared_backend_message(tp_backend *b, uint8_t type, const char *sqlstate, const char *message)
{
    if (b->expects.count == 0) return false;
    prepared_flush_fakes(b);
    tp_expect *h = expect_head(b);
    if (!h) return false;
    bool drop = false;
    switch (type) {
    case '1':
        if (h->kind == EXPECT_PARSE || h->kind == SWALLOW_PARSE) {
            drop = h->kind == SWALLOW_PARSE;
            expect_pop(b);
        }
        break;
    case '2':
        if (h->kind == EXPECT_BIND) expect_pop(b);
        break;
    case '3':
        if (h->kind == EXPECT_CLOSE || h->kind == SWALLOW_CLOSE) {
            drop = h->kind == SWALLOW_CLOSE;
            expect_pop(b);
        }
        break;
    case 'T':
    case 'n':
        if (h->kind == EXPECT_DESCRIBE) expect_pop(b);
        break;
    case 'C':
    case 'I':
    case 's':
        if (h->kind == EXPECT_EXECUTE) expect_pop(b);
        break;
    case 'E':
        if (h->kind == REFUSED_PARSE) {
            answer_refused_parse(b);
            drop = true;
        } else if (sqlstate && strcmp(sqlstate, "0A000") == 0 && message &&
                   strstr(message, "cached plan must not change result type")) {
            if (b->replay.ready && h->kind == EXPECT_BIND && b->expects.popped == b->replay.popped_at) {
                /* Nothing of the batch reached the client yet: hide the
                 * error, and send the batch again once the statement is
                 * prepared afresh (at ReadyForQuery). */
                b->replay.pending = true;
                drop = true;
            } else {
                b->prepared.stale = true;
            }
        }
        if (h->kind != EXPECT_QUERY) drop_to_sync(b);
        break;
    case 'Z':
        drop_to_sync(b);
        expect_pop(b);
        if (b->replay.pending) {
            replay_batch(b);
            drop = true;
        }
        break;
    default:
        break;
    }
    return drop;
}

void prepared_client_dropped_all(tp_client *c, tp_backend *b)
{
    stmts_clear(&c->stmts);
    b->prepared.count = 0;
}
