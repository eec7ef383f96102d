/* client.c: an application's connection to tidepool — accept, the startup
 * packet (SSLRequest starts TLS when client_tls_sslmode allows it, else it
 * and GSSENCRequest are answered 'N'; CancelRequest is forwarded), reading
 * and writing with backpressure (through client_tls.c for a TLS client),
 * relaying its messages to the backend it holds, and leaving: the backend is handed back to be
 * reset (pool_reset_on_return; DISCARD ALL in session mode) before reuse. */
#include "daemon/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "daemon/admin.h"
#include "daemon/admin_commands.h"
#include "daemon/backend.h"
#include "daemon/client_internal.h"
#include "daemon/client_limits.h"
#include "daemon/client_tls.h"
#include "daemon/echo.h"
#include "daemon/flush.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/pools.h"
#include "daemon/reset.h"
#include "daemon/server.h"

#define CLIENT_READ_CHUNK (64 * 1024)
#define MAX_CLIENT_MSG ((uint32_t)tp.cfg->max_message_size) /* larger: 08P01, never buffered */
#define BACKEND_HIGH_WATER (512 * 1024)
#define BACKEND_LOW_WATER (64 * 1024)
#define CLIENT_LOW_WATER (64 * 1024)
#define WAITING_READ_LIMIT (256 * 1024) /* bytes buffered while waiting for a backend */

static uint64_t next_client_id;
/* One read buffer for every client: the loop is single-threaded and each
 * read is processed (or its remainder copied) before the next one. */
static uint8_t read_buffer[CLIENT_READ_CHUNK];

static void client_close(tp_client *c);

size_t client_write_queue(const tp_client *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->h.stream) + tp_buf_size(&c->out);
}

tp_client *client_find_by_key(uint32_t pid, uint32_t secret)
{
    for (tp_client *c = tp.clients; c; c = c->next)
        if (c->key_pid == pid && c->key_secret == secret) return c;
    return NULL;
}

/* ---- writing ---- */

typedef struct write_req {
    uv_write_t req;
    tp_client *client;
    size_t len;
    uint8_t data[];
} write_req;

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    tp_client *c = w->client;
    free(w);
    if (c->state == CLIENT_CLOSING) return;
    if (status < 0) {
        client_close(c);
        return;
    }
    if (c->backend && c->backend->read_paused && client_write_queue(c) < CLIENT_LOW_WATER)
        backend_resume_reading(c->backend);
}

/* Write bytes now: straight to the socket if nothing is in flight, the rest
 * through a uv_write that owns a copy. */
int client_write_raw(tp_client *c, const uint8_t *data, size_t len)
{
    if (uv_stream_get_write_queue_size(&c->h.stream) == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            return -1;
        }
    }
    if (len == 0) return 0;
    write_req *w = malloc(sizeof *w + len);
    if (!w) return -1;
    w->client = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, &c->h.stream, &b, 1, on_write) < 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* TLS hook (write side): a TLS client's bytes are encrypted first. */
static int write_now(tp_client *c, const uint8_t *data, size_t len)
{
    return c->tls ? client_tls_write(c, data, len) : client_write_raw(c, data, len);
}

void client_flush(tp_client *c)
{
    if (c->state == CLIENT_CLOSING || tp_buf_size(&c->out) == 0) return;
    int rc = write_now(c, tp_buf_head(&c->out), tp_buf_size(&c->out));
    tp_buf_consume(&c->out, tp_buf_size(&c->out));
    tp_buf_shrink_if_empty(&c->out, 0); /* an idle client keeps no buffer */
    if (rc < 0) {
        client_close(c);
        return;
    }
    /* Everything may have gone out at once, with no on_write to follow:
     * reading the backend must resume here too, or a paused relay of a
     * large result would wait forever. */
    if (c->backend && c->backend->read_paused && client_write_queue(c) < CLIENT_LOW_WATER)
        backend_resume_reading(c->backend);
}

#define CLIENT_FLUSH_NOW (256 * 1024)
/* A piece this large with nothing batched before it (a large row streamed
 * from the backend, 64 KiB per read) is written from where it is rather
 * than copied into c->out first: only what the socket does not take is
 * copied (client_write_raw). */
#define CLIENT_WRITE_DIRECT (16 * 1024)

int client_send(tp_client *c, const void *data, size_t len)
{
    if (c->state == CLIENT_CLOSING) return -1;
    if (c->pool) c->pool->stats.bytes_sent += len;
    if (len >= CLIENT_WRITE_DIRECT && tp_buf_size(&c->out) == 0) {
        if (write_now(c, data, len) < 0) {
            client_close(c);
            return -1;
        }
        return c->state == CLIENT_CLOSING ? -1 : 0;
    }
    if (tp_buf_append(&c->out, data, len) < 0) {
        client_close(c);
        return -1;
    }
    if (tp_buf_size(&c->out) >= CLIENT_FLUSH_NOW) client_flush(c);
    else flush_client_later(c);
    return c->state == CLIENT_CLOSING ? -1 : 0;
}

int client_send_buf(tp_client *c, proto_buf *b)
{
    if (b->failed) {
        client_close(c);
        return -1;
    }
    return client_send(c, b->data, b->len);
}

static void send_error(tp_client *c, const char *severity, const char *sqlstate, const char *message)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_error(&pb, severity, sqlstate, message, NULL);
    if (!pb.failed && client_send(c, pb.data, pb.len) < 0)
        log_debug("client %llu: could not send an error", (unsigned long long)c->id);
    proto_buf_free(&pb);
}

void client_error(tp_client *c, const char *sqlstate, const char *message)
{
    send_error(c, "ERROR", sqlstate, message);
}

void client_fatal(tp_client *c, const char *sqlstate, const char *message)
{
    if (c->state == CLIENT_CLOSING) return;
    if (sqlstate) {
        /* A protocol violation is the client's doing: worth a line at info
         * (during authentication client_auth.c writes that line). */
        bool info = strcmp(sqlstate, "08P01") == 0 && c->state != CLIENT_AUTH;
        log_msg(info ? CONFIG_LOG_INFO : CONFIG_LOG_DEBUG, "client %llu (%s): FATAL %s: %s",
                (unsigned long long)c->id, c->peer, sqlstate, message);
        send_error(c, "FATAL", sqlstate, message);
    }
    client_close(c);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    *buf = uv_buf_init((char *)read_buffer, sizeof read_buffer);
}

static void handle_input(tp_client *c);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tp_client *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("client %llu (%s): read error: %s", (unsigned long long)c->id, c->peer,
                      uv_strerror((int)nread));
        c->eof = true;
        client_close(c);
        return;
    }
    if (c->pool) c->pool->stats.bytes_received += (uint64_t)nread;
    if (c->tls) {
        /* TLS hook (read side): decrypt into c->in (or go on handshaking). */
        if (client_tls_read(c, (const uint8_t *)buf->base, (size_t)nread) < 0) {
            client_close(c);
            return;
        }
    } else if (tp_buf_size(&c->in) == 0) {
        /* Nothing kept from before: work on the shared buffer itself, and
         * keep (copy) only what is left of it, a partial message mostly. */
        tp_buf_borrow(&c->in, (uint8_t *)buf->base, (size_t)nread);
    } else if (tp_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        client_fatal(c, "53200", "out of memory");
        return;
    }
    handle_input(c);
    if (c->state == CLIENT_CLOSING)
        tp_buf_free(&c->in);
    else if (tp_buf_own(&c->in) < 0)
        client_fatal(c, "53200", "out of memory");
}

void client_start_reading(tp_client *c)
{
    if (c->reading || c->state == CLIENT_CLOSING || c->eof || c->backend_full) return;
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0) c->reading = true;
}

void client_stop_reading(tp_client *c)
{
    if (!c->reading) return;
    uv_read_stop(&c->h.stream);
    c->reading = false;
}

void client_on_backend_drained(tp_client *c)
{
    if (!c->backend_full) return;
    c->backend_full = false;
    if (c->state == CLIENT_ACTIVE) {
        client_start_reading(c);
        client_process_input(c);
    }
}

/* ---- startup ---- */

/* Split libpq's `options` ("-c a=b --c=d", backslash escapes) into params. */
static int parse_options(tp_client *c, const char *opts)
{
    char word[1024];
    bool expect_c = false;
    const char *s = opts;
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        size_t n = 0;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '\\' && s[1]) s++;
            if (n + 1 < sizeof word) word[n++] = *s;
            s++;
        }
        word[n] = '\0';
        const char *setting = NULL;
        if (expect_c) {
            setting = word;
            expect_c = false;
        } else if (strcmp(word, "-c") == 0) {
            expect_c = true;
            continue;
        } else if (strncmp(word, "-c", 2) == 0) {
            setting = word + 2;
        } else if (strncmp(word, "--", 2) == 0) {
            setting = word + 2;
        } else {
            return -1;
        }
        char *eq = strchr(setting, '=');
        if (!eq || eq == setting) return -1;
        *eq = '\0';
        /* PostgreSQL treats '-' in option names as '_'. */
        for (char *p = (char *)setting; *p; p++)
            if (*p == '-') *p = '_';
        if (params_set(&c->params, setting, eq + 1) < 0) return -1;
    }
    return expect_c ? -1 : 0;
}

/* CancelRequest: cancel the query of the client holding that key, and
 * nothing else. A client waiting for a backend gets 57014 for the message
 * it waits with; one whose backend is lent but still being set up for it
 * (its parameters, on_connect) gets it once that is done, instead of its
 * message being sent (client_cancel_unsent); one that runs a query has the
 * cancel forwarded to its backend (backend_cancel.c: until PostgreSQL has
 * it, that backend serves no one else). A client between transactions —
 * no backend, or one it keeps idle — has no query to cancel: nothing
 * happens, as with PostgreSQL. */
static void handle_cancel(uint32_t pid, uint32_t key)
{
    tp_client *target = client_find_by_key(pid, key);
    if (!target) {
        log_debug("cancel request for an unknown key");
        return;
    }
    if (target->state == CLIENT_WAITING && target->backend) {
        target->cancel_unsent = true;
        return;
    }
    if (target->state == CLIENT_WAITING || target->state == CLIENT_LOGIN_WAIT) {
        if (target->pool) pools_cancel_checkout(target->pool, target);
        client_on_backend_error(target, "57014", "canceling statement due to user request");
        return;
    }
    if (target->state == CLIENT_ADMIN) {
        admin_cancel(target);
        return;
    }
    tp_backend *b = target->backend;
    if (target->state != CLIENT_ACTIVE || !b || client_is_idle_on_backend(target)) return;
    if (backend_cancel(b) < 0)
        log_warn("client %llu: its cancel request could not be forwarded", (unsigned long long)target->id);
}

bool client_cancel_unsent(tp_client *c)
{
    if (!c->cancel_unsent) return false;
    c->cancel_unsent = false;
    if (c->state != CLIENT_WAITING || !c->backend) return false;
    /* Its message was not sent: the backend goes back as it is (clean, set
     * up for this client) and the message gets the cancel's error. */
    tp_backend *b = c->backend;
    c->backend = NULL;
    b->xact_started = 0; /* no transaction ran */
    backend_release(b, false);
    client_on_backend_error(c, "57014", "canceling statement due to user request");
    return true;
}

static void handle_startup(tp_client *c, const proto_startup *st)
{
    const char *user = proto_startup_get(st, "user");
    const char *db = proto_startup_get(st, "database");
    if (proto_startup_get(st, "replication")) {
        client_fatal(c, "08P01", "replication connections are not supported by tidepool");
        return;
    }
    if (!db || !*db) db = user;
    size_t ul = strlen(user) + 1, dl = strlen(db) + 1;
    if ((c->user = malloc(ul + dl))) {
        memcpy(c->user, user, ul);
        c->database = memcpy(c->user + ul, db, dl);
    }
    if (!c->user) {
        client_fatal(c, "53200", "out of memory");
        return;
    }
    for (size_t i = 0; i < st->n_params; i++) {
        const char *name = st->names[i];
        if (strcasecmp(name, "user") == 0 || strcasecmp(name, "database") == 0) continue;
        if (strcasecmp(name, "options") == 0) {
            if (parse_options(c, st->values[i]) < 0) {
                client_fatal(c, "08P01", "invalid options in startup packet");
                return;
            }
            continue;
        }
        if (strncmp(name, "_pq_.", 5) == 0) continue; /* protocol extensions: none supported */
        if (params_set(&c->params, name, st->values[i]) < 0) {
            client_fatal(c, "53200", "out of memory");
            return;
        }
    }
    client_auth_start(c);
}

/* Parse the startup packet at the head of c->in. Returns 1 when one was
 * consumed, 0 when more bytes are needed, -1 when the client closed. The
 * packet is consumed before it is acted on: acting may start relaying. */
static int process_startup(tp_client *c)
{
    proto_startup st;
    const char *why = NULL;
    proto_status s = proto_read_startup(tp_buf_head(&c->in), tp_buf_size(&c->in), &st, NULL, &why);
    if (s == PROTO_NEED_MORE) return 0;
    if (s == PROTO_INVALID) {
        log_info("client %llu (%s): bad startup packet: %s", (unsigned long long)c->id, c->peer,
                 why ? why : "invalid");
        client_fatal(c, "08P01", why ? why : "invalid startup packet");
        return -1;
    }
    tp_buf_consume(&c->in, st.total_len); /* st's strings stay readable until the next read */
    if (st.code == PROTO_SSL_REQUEST || st.code == PROTO_GSSENC_REQUEST) {
        if (c->tls) {
            client_fatal(c, "08P01", "unexpected encryption request inside an encrypted connection");
            return -1;
        }
        if (tp_buf_size(&c->in) > 0) {
            /* Bytes after SSLRequest before our answer: a TLS hello sent blindly. */
            client_fatal(c, "08P01", "received unencrypted data after SSL request");
            return -1;
        }
        if (st.code == PROTO_SSL_REQUEST && client_tls_enabled() && !c->unix_socket) {
            /* 'S' goes out in plaintext, before the TLS state exists. */
            static const uint8_t yes = 'S';
            client_flush(c); /* an earlier 'N' (GSSENCRequest) first */
            if (c->state == CLIENT_CLOSING) return -1;
            if (client_write_raw(c, &yes, 1) < 0 || client_tls_start(c) < 0) {
                client_close(c);
                return -1;
            }
            return 1;
        }
        return client_send(c, "N", 1) < 0 ? -1 : 1;
    }
    if (st.code == PROTO_CANCEL_REQUEST) {
        handle_cancel(st.cancel_pid, st.cancel_key);
        client_close(c);
        return -1;
    }
    if (!c->tls && !c->unix_socket && tp.cfg->client_tls_sslmode == CONFIG_TLS_REQUIRE) {
        log_info("client %llu (%s): refused: plaintext connection, client_tls_sslmode is require",
                 (unsigned long long)c->id, c->peer);
        client_fatal(c, "28000", "SSL required: this server accepts TCP connections over TLS only");
        return -1;
    }
    handle_startup(c, &st);
    return c->state == CLIENT_CLOSING ? -1 : 1;
}

/* ---- relay ---- */

const tp_params *client_startup_params(const tp_client *c)
{
    return c->startup ? c->startup : &c->params;
}

int client_param_set(tp_client *c, const char *name, const char *value)
{
    const char *have = params_get(&c->params, name);
    if (value ? have && strcmp(have, value) == 0 : !have) return 0;
    if (!c->startup) {
        tp_params *copy = calloc(1, sizeof *copy);
        if (!copy || params_copy(copy, &c->params) < 0) {
            if (copy) params_clear(copy);
            free(copy);
            return -1;
        }
        c->startup = copy;
    }
    if (value) return params_set(&c->params, name, value);
    params_remove(&c->params, name);
    return 0;
}

static bool transaction_mode(const tp_client *c)
{
    return c->pool && c->txn_pooling;
}

static const char *pin_reason(unsigned pins)
{
    if (pins & PROTO_SQL_LISTEN) return "LISTEN";
    if (pins & PROTO_SQL_ADVISORY) return "advisory lock";
    if (pins & PROTO_SQL_TEMP) return "temporary object";
    if (pins & PROTO_SQL_CURSOR) return "WITH HOLD cursor";
    if (pins & PROTO_SQL_PREPARE) return "SQL PREPARE";
    return "session SET";
}

static void set_pins(tp_client *c, unsigned pins)
{
    if (!c->pins == !pins) {
        c->pins = pins;
        return;
    }
    if (pins) {
        c->pool->pinned++;
        log_info("pool %s: client %llu pinned to its backend (%s)", c->pool->cfg.pool_logging_name,
                 (unsigned long long)c->id, pin_reason(pins));
    } else {
        c->pool->pinned--;
        log_info("pool %s: client %llu no longer pinned", c->pool->cfg.pool_logging_name,
                 (unsigned long long)c->id);
    }
    c->pins = pins;
}

/* Session mode: a Query "SET x TO DEFAULT" goes back to x's startup value,
 * as a RESET x does (client_reset.c, at its "SET"). Transaction mode sees it
 * in note_session_effects. */
static void note_set_default(tp_client *c, const uint8_t *p, size_t total)
{
    proto_msg m;
    const char *sql = NULL;
    char name[128];
    if (proto_read_msg(p, total, MAX_CLIENT_MSG, &m, NULL, NULL) != PROTO_COMPLETE ||
        proto_parse_cstring(&m, &sql) != PROTO_COMPLETE)
        return;
    if (proto_sql_reset_name(sql, strlen(sql), name, sizeof name)) c->set_default_sent = true;
}

/* Session state the statement creates keeps the client on its backend
 * (pins it) until the state is gone; nothing of it reaches other clients. */
static void note_session_effects(tp_client *c, uint8_t type, const uint8_t *p, size_t total)
{
    proto_msg m;
    const char *sql = NULL, *stmt = NULL;
    if (proto_read_msg(p, total, MAX_CLIENT_MSG, &m, NULL, NULL) != PROTO_COMPLETE) return;
    if (type == 'Q' ? proto_parse_cstring(&m, &sql) : proto_parse_parse(&m, &stmt, &sql)) return;
    char name[128];
    if (type == 'Q' && proto_sql_reset_name(sql, strlen(sql), name, sizeof name)) {
        /* Back to the session default (psycopg2 sends "SET
         * default_transaction_isolation TO DEFAULT"): no state of the
         * client's own; its startup value, if any, is set again at the next
         * sync. */
        if (!client_param_is_reported(name)) {
            if (client_param_set(c, name, params_get(client_startup_params(c), name)) < 0) {
                client_fatal(c, "53200", "out of memory");
                return;
            }
            params_remove(&c->backend->params, name);
        }
        c->backend->session_reset = true; /* on_connect's value of it is gone too */
        c->set_default_sent = true;
        return;
    }
    char value[512];
    if ((type == 'Q' || stmt[0] == '\0') && c->backend->txn_status == 'I' &&
        proto_sql_simple_set(sql, strlen(sql), name, sizeof name, value, sizeof value) &&
        !client_param_is_reported(name)) {
        /* "SET x = v" outside a transaction (JDBC's extra_float_digits):
         * once it succeeds, x = v follows the client like a startup
         * parameter, instead of pinning it. */
        free(c->pending_set_name);
        free(c->pending_set_value);
        c->pending_set_name = strdup(name);
        c->pending_set_value = strdup(value);
        return;
    }
    /* A named statement runs at its Binds (which apply its effects), not here. */
    if (type == 'P' && stmt[0] != '\0') return;
    client_apply_session_effects(c, proto_sql_session_effects(sql, strlen(sql)));
}

void client_on_set_done(tp_client *c, tp_backend *b)
{
    /* b NULL: the statement ended without "SET" (it failed): forget it. */
    if (b && c->pending_set_name && c->pending_set_value &&
        (client_param_set(c, c->pending_set_name, c->pending_set_value) < 0 ||
         params_set(&b->params, c->pending_set_name, c->pending_set_value) < 0))
        client_fatal(c, "53200", "out of memory");
    free(c->pending_set_name);
    free(c->pending_set_value);
    c->pending_set_name = c->pending_set_value = NULL;
}

void client_apply_session_effects(tp_client *c, unsigned f)
{
    if (!f) return;
    /* Every setting goes back (else only the one a RESET x names, which
     * note_session_effects took care of). */
    if (f & (PROTO_SQL_DISCARD_ALL | PROTO_SQL_RESET_ALL)) c->reset_all_sent = true;
    unsigned pins = c->pins;
    if (f & PROTO_SQL_DISCARD_ALL) pins = 0;
    if (f & PROTO_SQL_RESET_ALL) pins &= ~(unsigned)PROTO_SQL_SET;
    if (f & PROTO_SQL_UNLISTEN_ALL) pins &= ~(unsigned)PROTO_SQL_LISTEN;
    if (f & PROTO_SQL_DISCARD_TEMP) pins &= ~(unsigned)PROTO_SQL_TEMP;
    if (f & PROTO_SQL_DEALLOCATE_ALL) pins &= ~(unsigned)PROTO_SQL_PREPARE;
    if (f & PROTO_SQL_CLOSE_ALL) pins &= ~(unsigned)PROTO_SQL_CURSOR;
    if (f & PROTO_SQL_ADVISORY_UNLOCK_ALL) pins &= ~(unsigned)PROTO_SQL_ADVISORY;
    pins |= f & PROTO_SQL_CREATES_STATE;
    set_pins(c, pins);
}

/* A Query "DEALLOCATE name" of a protocol-level statement of the client's
 * (psycopg 3 does this when its statement cache turns over). */
static int deallocate_own_statement(tp_client *c, tp_backend *b, const uint8_t *p, size_t total)
{
    proto_msg m;
    const char *sql;
    char name[128];
    if (proto_read_msg(p, total, MAX_CLIENT_MSG, &m, NULL, NULL) != PROTO_COMPLETE ||
        proto_parse_cstring(&m, &sql) != PROTO_COMPLETE ||
        !proto_sql_deallocate_name(sql, strlen(sql), name, sizeof name))
        return 0;
    return prepared_deallocate(c, b, name);
}

/* Statistics of a message about to be relayed: queries (Query, Execute),
 * and the start of a transaction where the lend did not mark one (session
 * mode, pinned clients). */
static inline void count_message(tp_client *c, tp_backend *b, uint8_t type)
{
    if (type == 'Q' || type == 'E') c->pool->stats.queries++;
    if (b->xact_started == 0) b->xact_started = tp_now();
}

/* Forward what is buffered to the linked backend, framing messages. */
void client_process_input(tp_client *c)
{
    while (c->state == CLIENT_ACTIVE && tp_buf_size(&c->in) > 0 && !c->backend_full && !c->restoring) {
        tp_backend *b = c->backend;
        const uint8_t *p = tp_buf_head(&c->in);
        size_t avail = tp_buf_size(&c->in);
        if (c->pass_remaining > 0) {
            size_t n = avail < c->pass_remaining ? avail : c->pass_remaining;
            if (backend_send(b, p, n) < 0) return;
            c->pass_remaining -= n;
            tp_buf_consume(&c->in, n);
        } else {
            uint8_t type;
            size_t total;
            const char *why = NULL;
            proto_status st = proto_read_frontend_header(p, avail, MAX_CLIENT_MSG, &type, &total, &why);
            if (st == PROTO_NEED_MORE) break;
            if (st == PROTO_INVALID) {
                client_fatal(c, "08P01", why ? why : "invalid message");
                return;
            }
            if (type == 'X') {
                client_close(c);
                return;
            }
            bool tracked = transaction_mode(c);
            if (type == 'Q' && !tracked && avail >= total && total > 5 && (p[5] | 0x20) == 's')
                note_set_default(c, p, total);
            bool echo = c->pool->cfg.echo != CONFIG_ECHO_OFF;
            bool statement = type == 'Q' || type == 'P';
            if ((statement && tracked) || (echo && echo_wants_whole(type))) {
                if (avail < total && total <= ECHO_WHOLE_LIMIT) {
                    if (!tp_buf_reserve(&c->in, total - avail)) {
                        client_fatal(c, "53200", "out of memory");
                        return;
                    }
                    break; /* wait for the whole message to log and scan it */
                }
                if (statement && tracked && avail >= total) note_session_effects(c, type, p, total);
            }
            if (tracked && prepared_needs_whole(type) && avail < total) {
                /* Room for the next read, not for what the header claims:
                 * a 5-byte header announcing 1 GB must not cost 1 GB. */
                size_t ahead = total - avail < CLIENT_READ_CHUNK ? total - avail : CLIENT_READ_CHUNK;
                if (!tp_buf_reserve(&c->in, ahead)) {
                    client_fatal(c, "53200", "out of memory");
                    return;
                }
                break; /* statement names are rewritten on whole messages */
            }
            backend_count_client_message(b, type);
            count_message(c, b, type);
            if (echo && echo_client_message(c, type, p, avail < total ? avail : total, total) < 0) {
                client_fatal(c, "53200", "out of memory");
                return;
            }
            if (type == 'Q' || type == 'E') b->last_run = (char)type;
            if (type == 'S' || type == 'Q') c->unsynced = false;
            else if (type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C' || type == 'H')
                c->unsynced = true;
            if (tracked && prepared_needs_whole(type)) {
                tp_buf_consume(&c->in, total); /* the bytes stay readable until the next read */
                if (prepared_client_message(c, b, type, p, total) < 0) {
                    if (c->state != CLIENT_CLOSING) client_on_backend_lost(c, "could not send to the server");
                    return;
                }
                continue;
            }
            if (tracked && type == 'Q' && avail >= total) {
                int r = deallocate_own_statement(c, b, p, total);
                if (r < 0) {
                    if (c->state != CLIENT_CLOSING) client_on_backend_lost(c, "could not send to the server");
                    return;
                }
                if (r > 0) {
                    tp_buf_consume(&c->in, total);
                    continue;
                }
            }
            if (tracked) prepared_no_replay(b);
            if (tracked && (type == 'Q' || type == 'F') && prepared_note_query(b) < 0) {
                client_fatal(c, "53200", "out of memory");
                return;
            }
            size_t n = avail < total ? avail : total;
            if (backend_send(b, p, n) < 0) return;
            c->pass_remaining = total - n;
            tp_buf_consume(&c->in, n);
        }
        if (c->backend && backend_out_queue(c->backend) > BACKEND_HIGH_WATER) {
            c->backend_full = true;
            client_stop_reading(c);
        }
    }
    if (c->state != CLIENT_CLOSING) tp_buf_shrink_if_empty(&c->in, 0);
}

static int send_ready(tp_client *c)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_ready(&pb, 'I');
    int rc = client_send_buf(c, &pb);
    proto_buf_free(&pb);
    return rc;
}

/* Drop messages after an error of tidepool's own, up to the next Sync, as
 * PostgreSQL does in the extended protocol; then ReadyForQuery. Returns false
 * when more bytes are needed or the client closed. */
static bool discard_to_sync(tp_client *c)
{
    while (c->discard_until_sync) {
        if (c->pass_remaining > 0) {
            size_t n = tp_buf_size(&c->in) < c->pass_remaining ? tp_buf_size(&c->in) : c->pass_remaining;
            tp_buf_consume(&c->in, n);
            c->pass_remaining -= n;
            if (c->pass_remaining > 0) return false;
            continue;
        }
        uint8_t type;
        size_t total;
        const char *why = NULL;
        proto_status st = proto_read_frontend_header(tp_buf_head(&c->in), tp_buf_size(&c->in), MAX_CLIENT_MSG,
                                            &type, &total, &why);
        if (st == PROTO_NEED_MORE) return false;
        if (st == PROTO_INVALID) {
            client_fatal(c, "08P01", why ? why : "invalid message");
            return false;
        }
        if (type == 'X') {
            client_close(c);
            return false;
        }
        size_t n = tp_buf_size(&c->in) < total ? tp_buf_size(&c->in) : total;
        c->pass_remaining = total - n;
        tp_buf_consume(&c->in, n);
        if (type == 'S') {
            c->discard_until_sync = false;
            c->unsynced = false;
            if (send_ready(c) < 0) return false;
        }
    }
    return true;
}

/* Transaction mode, no backend: a message starts a transaction. */
static void process_ready(tp_client *c)
{
    uint8_t type;
    size_t total;
    const char *why = NULL;
    proto_status st = proto_read_frontend_header(tp_buf_head(&c->in), tp_buf_size(&c->in), MAX_CLIENT_MSG, &type,
                                        &total, &why);
    if (st == PROTO_NEED_MORE) return;
    if (st == PROTO_INVALID) {
        client_fatal(c, "08P01", why ? why : "invalid message");
        return;
    }
    if (type == 'X') {
        client_close(c);
        return;
    }
    if (tp_buf_size(&c->in) < total && total <= CLIENT_READ_CHUNK)
        return; /* a small message is taken whole before a backend is lent:
                 * a client that stalls half-way through one holds none */
    const uint8_t *head = tp_buf_head(&c->in);
    if (type == 'P' && tp_buf_size(&c->in) >= total && prepared_parse_refused(c, head, total)) {
        /* A new statement past max_client_prepared_statements, outside a
         * transaction: refused here, without a backend, and the rest is
         * dropped up to its Sync as after any error. */
        tp_buf_consume(&c->in, total);
        prepared_send_refusal(c);
        c->discard_until_sync = true;
        return;
    }
    if (type == 'P' && tp_buf_size(&c->in) >= total + 5 && tp_buf_head(&c->in)[total] == 'S' &&
        !c->unsynced) {
        /* Parse + Sync alone (PQprepare): no backend needed until it is used,
         * so a client preparing does not wait behind a busy pool (pgbench
         * prepares synchronously while its other clients hold backends). */
        const uint8_t *p = tp_buf_head(&c->in);
        int r = prepared_register(c, p, total);
        if (r < 0) {
            client_fatal(c, "53200", "out of memory");
            return;
        }
        if (r > 0) {
            tp_buf_consume(&c->in, total + 5);
            static const uint8_t parse_complete[5] = {'1', 0, 0, 0, 4};
            if (client_send(c, parse_complete, sizeof parse_complete) == 0) (void)send_ready(c);
            return;
        }
    }
    if (type == 'S' && tp_buf_size(&c->in) >= total && !c->unsynced) {
        /* A Sync with nothing before it: answer without a backend. */
        tp_buf_consume(&c->in, total);
        (void)send_ready(c);
        return;
    }
    c->state = CLIENT_WAITING;
    c->checkout_started = tp_now();
    pools_checkout(c->pool, c);
}

/* Process what is buffered, by state, until more bytes are needed. */
static void handle_input_loop(tp_client *c)
{
    for (;;) {
        if (c->discard_until_sync && !discard_to_sync(c)) return;
        if (tp_buf_size(&c->in) == 0) return;
        switch (c->state) {
        case CLIENT_STARTUP:
            if (process_startup(c) <= 0) return;
            break;
        case CLIENT_AUTH: {
            proto_msg m;
            const char *why = NULL;
            proto_status s = proto_read_msg(tp_buf_head(&c->in), tp_buf_size(&c->in), PROTO_MAX_STARTUP,
                                            &m, NULL, &why);
            if (s == PROTO_NEED_MORE) return;
            if (s == PROTO_INVALID) {
                client_auth_refused(c, "08P01", why ? why : "invalid authentication message");
                return;
            }
            tp_buf_consume(&c->in, m.total_len); /* m stays readable until the next read */
            client_auth_message(c, &m);
            if (c->state == CLIENT_CLOSING) return;
            break;
        }
        case CLIENT_READY: {
            size_t before = tp_buf_size(&c->in);
            process_ready(c);
            /* Nothing consumed and still ready: the message is incomplete
             * (unless it failed and is now to be discarded up to its Sync). */
            if (c->state == CLIENT_READY && tp_buf_size(&c->in) == before && !c->discard_until_sync) return;
            break;
        }
        case CLIENT_ACTIVE:
            client_process_input(c);
            return;
        case CLIENT_ADMIN: {
            if (c->admin_waiting) return; /* PAUSE in progress: the rest waits */
            proto_msg m;
            const char *why = NULL, *sql = NULL;
            proto_status s = proto_read_msg(tp_buf_head(&c->in), tp_buf_size(&c->in), 1024 * 1024, &m, NULL, &why);
            if (s == PROTO_NEED_MORE) return;
            if (s == PROTO_INVALID) {
                client_fatal(c, "08P01", why ? why : "invalid message");
                return;
            }
            tp_buf_consume(&c->in, m.total_len);
            if (m.type == 'X') {
                client_close(c);
                return;
            }
            if (m.type != 'Q' || proto_parse_cstring(&m, &sql) != PROTO_COMPLETE) {
                client_error(c, "0A000", "the admin console takes simple queries only");
                if (m.type == 'S' || m.type == 'Q') (void)send_ready(c);
                else c->discard_until_sync = m.type != 'S';
                break;
            }
            admin_query(c, sql);
            break;
        }
        default:
            /* Waiting for a backend: keep the bytes until there is one; stop
             * reading only if the client sends a lot meanwhile. */
            if (tp_buf_size(&c->in) > WAITING_READ_LIMIT) client_stop_reading(c);
            return;
        }
    }
}

/* The client whose input is being processed. A checkout that fails at once
 * (the server's socket is missing) answers inside process_ready(); entering
 * the loop again from there would nest one level per pipelined message and
 * overflow the stack: the loop already running goes on instead. */
static tp_client *handling;

static void handle_input(tp_client *c)
{
    if (c == handling) return;
    tp_client *outer = handling;
    handling = c;
    handle_input_loop(c);
    handling = outer;
}

void client_handle_input(tp_client *c) { handle_input(c); }

void client_on_session_reset(tp_client *c)
{
    /* Settings it SET itself are gone; its startup ones are back. */
    if (!c->startup) return; /* none changed */
    for (size_t i = 0; i < c->params.count;) {
        const tp_param *cp = &c->params.items[i];
        if (!(cp->kind & PARAM_REPORTED) && !params_get_like(c->startup, cp))
            params_remove(&c->params, cp->name);
        else
            i++;
    }
    /* Reported ones are as the backend reported them (client_reset.c told
     * the client): only the others are taken from the startup set. */
    for (size_t i = 0; i < c->startup->count; i++)
        if (!(c->startup->items[i].kind & PARAM_REPORTED) &&
            params_set(&c->params, c->startup->items[i].name, c->startup->items[i].value) < 0) {
            client_fatal(c, "53200", "out of memory");
            return;
        }
}

/* ---- pool answers ---- */

void client_on_backend(tp_client *c, tp_backend *b)
{
    c->backend = b;
    b->client = c;
    client_sync_params(c);
}

void client_on_backend_error(tp_client *c, const char *sqlstate, const char *message)
{
    if (c->state != CLIENT_WAITING) {
        /* At login there is no way to carry on: the connection ends, as with
         * PostgreSQL's own startup errors. */
        client_fatal(c, sqlstate, message);
        return;
    }
    /* The transaction could not start: an ERROR for it, the connection stays
     * usable. A simple Query (or FunctionCall) ends here; extended-protocol
     * messages are dropped up to their Sync. */
    client_error(c, sqlstate, message);
    if (c->state == CLIENT_CLOSING) return;
    c->state = CLIENT_READY;
    uint8_t type = 0;
    size_t total = 0;
    const char *why = NULL;
    if (proto_read_frontend_header(tp_buf_head(&c->in), tp_buf_size(&c->in), MAX_CLIENT_MSG, &type, &total, &why) ==
            PROTO_COMPLETE &&
        (type == 'Q' || type == 'F') && tp_buf_size(&c->in) >= total) {
        tp_buf_consume(&c->in, total);
        if (send_ready(c) < 0) return;
    } else {
        c->discard_until_sync = true;
    }
    client_start_reading(c);
    handle_input(c);
}

void client_on_backend_lost(tp_client *c, const char *message)
{
    c->backend = NULL;
    char msg[512];
    snprintf(msg, sizeof msg, "server connection lost: %s", message);
    client_fatal(c, "08006", msg);
}

/* Its transaction is over and nothing of it is pending: the backend
 * reported ReadyForQuery 'I' to the last of its messages. */
static bool between_transactions(const tp_client *c, const tp_backend *b)
{
    return backend_is_clean(b) && c->pass_remaining == 0 && !c->unsynced;
}

bool client_is_idle_on_backend(const tp_client *c)
{
    return c->state == CLIENT_ACTIVE && c->backend && between_transactions(c, c->backend) &&
           tp_buf_size(&c->in) == 0;
}

/* Transaction mode: give the backend back once the transaction is over and
 * nothing of the client is pending. */
void client_on_ready(tp_client *c)
{
    c->idle_since = client_limits_clock(); /* for client_idle_timeout */
    tp_backend *b = c->backend;
    if (!b || c->state != CLIENT_ACTIVE) return;
    if (!between_transactions(c, b)) return;
    if (!transaction_mode(c) || c->pins) {
        /* Session mode (or a pinned client) keeps its backend, unless the
         * daemon is stopping; the transaction ends here. */
        if (b->xact_started > 0) {
            c->pool->stats.transactions++;
            stats_hist_observe(&c->pool->stats.xact, tp_now() - b->xact_started);
            b->xact_started = 0;
        }
        if (tp.stopping) client_fatal(c, "57P01", "terminating connection due to administrator command");
        return;
    }
    c->backend = NULL;
    c->backend_full = false;
    backend_release(b, false);
    c->state = CLIENT_READY;
    if (tp.stopping) {
        /* Shutting down: the transaction is over, the client goes. */
        client_fatal(c, "57P01", "terminating connection due to administrator command");
        return;
    }
    client_start_reading(c);
    if (tp_buf_size(&c->in) > 0) handle_input(c);
}

/* ---- accept and close ---- */

static void on_client_closed(uv_handle_t *h)
{
    tp_client *c = h->data;
    tp_buf_free(&c->in);
    tp_buf_free(&c->out);
    params_clear(&c->params);
    if (c->startup) params_clear(c->startup);
    free(c->startup);
    free(c->user); /* and c->database with it */
    echo_free(c->echo);
    free(c->pending_set_name);
    free(c->pending_set_value);
    stmts_clear(&c->stmts);
    client_tls_free(c->tls);
    free(c);
    server_maybe_finish();
}

static void client_close(tp_client *c)
{
    if (c->state == CLIENT_CLOSING) return;
    client_state was = c->state;
    /* Last words (a FATAL error) go out before the socket closes. */
    if (tp_buf_size(&c->out) > 0 && write_now(c, tp_buf_head(&c->out), tp_buf_size(&c->out)) < 0)
        log_debug("client %llu: could not send its last message", (unsigned long long)c->id);
    client_tls_close_notify(c);
    flush_forget_client(c);
    c->state = CLIENT_CLOSING;
    client_auth_clear(c);
    if (was == CLIENT_ADMIN) admin_client_gone(c);
    if (c->pool) {
        if (was == CLIENT_LOGIN_WAIT || was == CLIENT_WAITING) pools_cancel_checkout(c->pool, c);
        if (c->pins) c->pool->pinned--;
        c->pool->clients--;
    }
    tp_backend *b = c->backend;
    c->backend = NULL;
    if (b) {
        b->client = NULL;
        b->xact_started = 0; /* abandoned: not a completed transaction */
        /* Gone half-way through a message it was sending: the backend waits
         * for the rest and would take whatever comes next for it, so it can
         * be neither reset nor lent again. */
        if (c->pass_remaining > 0) pools_backend_gone(b->pool, b, false);
        else backend_release(b, !transaction_mode(c) || c->pins);
    }
    if (c->pool) pools_maybe_free(c->pool); /* a removed pool's last client */
    if (c->prev) c->prev->next = c->next;
    else tp.clients = c->next;
    if (c->next) c->next->prev = c->prev;
    tp.n_clients--;
    client_stop_reading(c);
    uv_close(&c->h.handle, on_client_closed);
}

static void describe_peer(tp_client *c)
{
    if (c->unix_socket) {
        snprintf(c->peer, sizeof c->peer, "unix");
        return;
    }
    peer_describe(&c->h.tcp, c->peer, sizeof c->peer);
}

/* A connected client handle: count it, check max_client_conn, start reading. */
static void client_begin(tp_client *c)
{
    if (!c->unix_socket) uv_tcp_nodelay(&c->h.tcp, 1);
    c->id = ++next_client_id;
    c->state = CLIENT_STARTUP;
    c->connected_at = tp_now();
    c->key_pid = (uint32_t)c->id;
    if (auth_random_bytes((uint8_t *)&c->key_secret, sizeof c->key_secret) < 0) c->key_secret = (uint32_t)rand();
    describe_peer(c);
    c->next = tp.clients;
    if (tp.clients) tp.clients->prev = c;
    tp.clients = c;
    tp.n_clients++;
    if (tp.n_clients > (size_t)tp.cfg->max_client_conn) {
        log_warn("max_client_conn (%d) reached: refusing %s", tp.cfg->max_client_conn, c->peer);
        client_fatal(c, "53300", "sorry, too many clients already");
        return;
    }
    client_start_reading(c);
}

void client_accept(uv_stream_t *server, bool unix_socket)
{
    tp_client *c = calloc(1, sizeof *c);
    if (!c) return;
    c->unix_socket = unix_socket;
    if (unix_socket) uv_pipe_init(tp.loop, &c->h.pipe, 0);
    else uv_tcp_init(tp.loop, &c->h.tcp);
    c->h.handle.data = c;
    if (uv_accept(server, &c->h.stream) < 0) {
        uv_close(&c->h.handle, (uv_close_cb)free);
        return;
    }
    client_begin(c);
}

int client_adopt_fd(int fd)
{
    tp_client *c = calloc(1, sizeof *c);
    if (!c) return UV_ENOMEM;
    c->unix_socket = true;
    uv_pipe_init(tp.loop, &c->h.pipe, 0);
    c->h.handle.data = c;
    int rc = uv_pipe_open(&c->h.pipe, fd);
    if (rc < 0) {
        uv_close(&c->h.handle, (uv_close_cb)free);
        return rc;
    }
    client_begin(c);
    return 0;
}
