/* backend.c: a connected backend's I/O. Reads PostgreSQL's bytes into a
 * buffer, frames them with the codec and relays them to the linked client;
 * only the few message types tidepool acts on (ReadyForQuery, ParameterStatus,
 * ErrorResponse, CommandComplete, Copy*Response) are looked at whole, every
 * other message (rows above all) streams through as it arrives. Writes go
 * straight to the socket, the rest is queued until it is writable. Internal
 * queries (on_connect, parameter sync, reset) run here without relaying. */
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/backend.h"
#include "daemon/backend_internal.h"
#include "daemon/client.h"
#include "daemon/client_internal.h"
#include "daemon/echo.h"
#include "daemon/flush.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (256 * 1024)          /* per poll callback, for fairness */
#define CLIENT_HIGH_WATER (512 * 1024)    /* pause reading the backend above */
#define MAX_BACKEND_MSG (1024u * 1024u * 1024u)
#define WHOLE_LIMIT (1024 * 1024)         /* whole-message types above this stream */

const char *backend_state_to_str(backend_state s)
{
    switch (s) {
    case BACKEND_RESOLVING: return "resolving";
    case BACKEND_CONNECTING: return "connecting";
    case BACKEND_SETUP: return "setup";
    case BACKEND_IDLE: return "idle";
    case BACKEND_LINKED: return "linked";
    case BACKEND_CLOSING: return "closing";
    }
    return "?";
}

static void on_poll(uv_poll_t *h, int status, int events);

int backend_poll_open(tp_backend *b)
{
    uv_poll_t *h = malloc(sizeof *h);
    if (!h) return -1;
    if (uv_poll_init(tp.loop, h, b->fd) < 0) {
        free(h);
        return -1;
    }
    h->data = b;
    b->poll = h;
    b->poll_events = 0;
    b->open_handles++;
    return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    tp_backend *b = h->data;
    free(h);
    b->open_handles--;
    backend_maybe_free(b);
}

void backend_poll_close(tp_backend *b)
{
    if (!b->poll) return;
    uv_poll_stop(b->poll);
    uv_close((uv_handle_t *)b->poll, on_poll_closed);
    b->poll = NULL;
}

void backend_poll_update(tp_backend *b, int events)
{
    if (!b->poll) return;
    if (events == b->poll_events) return;
    b->poll_events = events;
    if (events) uv_poll_start(b->poll, events, on_poll);
    else uv_poll_stop(b->poll);
}

static int wanted_events(const tp_backend *b)
{
    int ev = b->read_paused ? 0 : UV_READABLE;
    if (tp_buf_size(&b->out) > 0) ev |= UV_WRITABLE;
    return ev;
}

void backend_maybe_free(tp_backend *b)
{
    /* A cancel in flight still points at it: after_cancel frees it. */
    if (b->state == BACKEND_CLOSING && b->open_handles == 0 && b->cancels == 0) backend_free_memory(b);
}

void backend_close(tp_backend *b, const char *why)
{
    if (b->state == BACKEND_CLOSING) return;
    tp_pool *p = b->pool;
    if (b->state >= BACKEND_SETUP && b->pid)
        log_debug("pool %s: closing backend %llu (pid %d): %s", p->cfg.pool_logging_name,
                  (unsigned long long)b->id, b->pid, why);
    if (b->slot.state != POOL_CONN_GONE) pool_remove(p->algo, &b->slot, tp_now());
    b->state = BACKEND_CLOSING;
    flush_forget_backend(b);
    b->client = NULL;
    b->query_cb = NULL;
    b->on_connected = NULL;
    backend_connect_timer_stop(b);
    if (b->open_handles > 0 && !b->poll) uv_cancel((uv_req_t *)&b->gai);
    backend_poll_close(b);
    backend_maybe_free(b);
}

/* ---- raw socket I/O (plain or through libpq's SSL object) ---- */

/* Returns bytes read, 0 for EOF, -EAGAIN when nothing now, other < 0 errors. */
static ssize_t raw_read(tp_backend *b, void *buf, size_t len)
{
    if (b->ssl) {
        ERR_clear_error();
        int n = SSL_read(b->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
        if (n > 0) return n;
        int e = SSL_get_error(b->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -EAGAIN;
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        return -EIO;
    }
    for (;;) {
        ssize_t n = read(b->fd, buf, len);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t raw_write(tp_backend *b, const void *buf, size_t len)
{
    if (b->ssl) {
        ERR_clear_error();
        int n = SSL_write(b->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
        if (n > 0) return n;
        int e = SSL_get_error(b->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -EAGAIN;
        return -EIO;
    }
    for (;;) {
        ssize_t n = write(b->fd, buf, len);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static void backend_died(tp_backend *b, const char *why);

/* Write as much of the queue as the socket takes. -1 if the link is dead. */
static int flush_out(tp_backend *b)
{
    while (tp_buf_size(&b->out) > 0) {
        ssize_t n = raw_write(b, tp_buf_head(&b->out), tp_buf_size(&b->out));
        if (n == -EAGAIN) break;
        if (n <= 0) return -1;
        tp_buf_consume(&b->out, (size_t)n);
    }
    tp_buf_shrink_if_empty(&b->out, 64 * 1024);
    return 0;
}

#define FLUSH_NOW (256 * 1024) /* write at once above this, don't wait for the batch */

void backend_flush(tp_backend *b)
{
    if (b->state == BACKEND_CLOSING || b->dead || b->fd < 0) return;
    if (flush_out(b) < 0) {
        backend_died(b, "could not send data to server");
        return;
    }
    backend_poll_update(b, wanted_events(b));
    if (b->client && tp_buf_size(&b->out) < 64 * 1024) client_on_backend_drained(b->client);
}

int backend_send(tp_backend *b, const void *data, size_t len)
{
    if (b->state == BACKEND_CLOSING || b->dead || b->fd < 0) return -1;
    if (tp_buf_append(&b->out, data, len) < 0) {
        backend_died(b, "out of memory");
        return -1;
    }
    if (tp_buf_size(&b->out) >= FLUSH_NOW && !(b->poll_events & UV_WRITABLE)) backend_flush(b);
    else flush_backend_later(b);
    return b->dead ? -1 : 0;
}

size_t backend_out_queue(const tp_backend *b) { return tp_buf_size(&b->out); }

/* Send a built message as tidepool's own work (answers not relayed; cb at
 * the ReadyForQuery that ends it); syncs: ReadyForQuery it adds. Frees pb. */
static int send_internal(tp_backend *b, proto_buf *pb, int syncs, backend_query_cb cb)
{
    if (pb->failed) {
        proto_buf_free(pb);
        return -1;
    }
    b->query_cb = cb;
    free(b->query_sqlstate);
    free(b->query_message);
    b->query_sqlstate = b->query_message = NULL;
    b->pending_syncs += syncs;
    int rc = backend_send(b, pb->data, pb->len);
    proto_buf_free(pb);
    return rc;
}

int backend_query(tp_backend *b, const char *sql, backend_query_cb cb)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_query(&pb, sql);
    return send_internal(b, &pb, 1, cb);
}

int backend_query_each(tp_backend *b, const char *const *sqls, int n, backend_query_cb cb)
{
    proto_buf pb;
    proto_buf_init(&pb);
    for (int i = 0; i < n; i++)
        proto_build_query(&pb, sqls[i]);
    return send_internal(b, &pb, n, cb);
}

int backend_copy_fail(tp_backend *b, const char *why, backend_query_cb cb)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_buf_begin(&pb, 'f');
    proto_buf_put_str(&pb, why);
    proto_buf_end(&pb);
    return send_internal(b, &pb, 0, cb); /* the COPY's own ReadyForQuery ends it */
}

void backend_count_client_message(tp_backend *b, uint8_t type)
{
    switch (type) {
    case 'Q':
    case 'E':
        if (type == 'Q') b->pending_syncs++;
        b->copy_syncs = 0;
        b->copy_in_over = false;
        break;
    case 'F': b->pending_syncs++; break;
    case 'S':
        if (b->copy_in_over) {
            b->pending_syncs++;
        } else if (!(b->in_copy && b->copy_in)) {
            b->pending_syncs++; /* taken back at CopyInResponse if a COPY FROM STDIN runs */
            b->copy_syncs++;
        }
        break;
    case 'c':
    case 'f': b->copy_in_over = true; break;
    default: break;
    }
}

bool backend_is_clean(const tp_backend *b)
{
    return b->state != BACKEND_CLOSING && b->txn_status == 'I' && b->pending_syncs == 0 &&
           !b->in_copy && b->query_cb == NULL;
}

void backend_pause_reading(tp_backend *b)
{
    if (b->read_paused) return;
    b->read_paused = true;
    backend_poll_update(b, wanted_events(b));
}

void backend_resume_reading(tp_backend *b)
{
    if (!b->read_paused || b->state == BACKEND_CLOSING) return;
    b->read_paused = false;
    backend_poll_update(b, wanted_events(b));
}

/* ---- the relay: framing what PostgreSQL sends ---- */

static bool relaying(const tp_backend *b) { return b->query_cb == NULL && b->client != NULL; }

/* Bytes of a message that is passed on (or dropped during internal work). */
static int forward(tp_backend *b, const uint8_t *data, size_t len)
{
    if (!relaying(b)) return 0;
    return client_send(b->client, data, len);
}

static void finish_internal_query(tp_backend *b)
{
    backend_query_cb cb = b->query_cb;
    b->query_cb = NULL;
    bool ok = b->query_sqlstate == NULL && b->query_message == NULL;
    cb(b, ok, b->query_sqlstate, b->query_message);
}

/* A client's SET/RESET changed settings PostgreSQL does not report: the
 * recorded values are no longer known, so mark them unknown; the next sync
 * then sets or resets each of them for whichever client comes next. */
#define UNKNOWN_VALUE "\x01unknown"
void backend_forget_unreported_params(tp_backend *b)
{
    for (size_t i = 0; i < b->params.count; i++) {
        const tp_param *bp = &b->params.items[i];
        if (bp->kind & PARAM_REPORTED) continue;
        if (params_set(&b->params, bp->name, UNKNOWN_VALUE) < 0) continue; /* stays as it was */
    }
}

void backend_after_relayed_ready(tp_backend *b)
{
    if (b->client && b->client->echo) echo_backend_message(b->client, 'Z', NULL);
    if (b->client && b->client->pending_set_name) client_on_set_done(b->client, NULL);
    if (b->client && b->client->reset_pending) {
        b->client->reset_pending = false;
        if (b->client->reset_all_sent) client_on_session_reset(b->client);
    }
    if (b->client && b->pending_syncs == 0) b->client->reset_all_sent = false; /* done, or it failed */
    if (b->client) client_on_ready(b->client);
}

/* Act on a whole message of one of the types tidepool looks at. */
static int on_whole_message(tp_backend *b, const proto_msg *m, const uint8_t *raw)
{
    if (relaying(b) && b->expects.count) {
        proto_error_fields f = {0};
        if (m->type == 'E' && proto_parse_error(m, &f) != PROTO_COMPLETE) return -1;
        if (prepared_backend_message(b, m->type, f.sqlstate, f.message)) return 0; /* tidepool's own */
    }
    switch (m->type) {
    case 'Z':
        if (m->body_len != 1) return -1;
        b->txn_status = (char)m->body[0];
        if (b->pending_syncs > 0) b->pending_syncs--;
        b->in_copy = false;
        if (b->query_cb) {
            if (b->pending_syncs == 0) finish_internal_query(b);
            return 0;
        }
        /* After a RESET: the client's startup values are set again first. */
        if (relaying(b) && b->client->reset_pending && client_restore_after_reset(b->client, b)) return 0;
        if (forward(b, raw, m->total_len) < 0) return 0;
        backend_after_relayed_ready(b);
        return 0;
    case 'S': {
        const char *name, *value;
        if (proto_parse_param_status(m, &name, &value) != PROTO_COMPLETE) return -1;
        if (params_set(&b->params, name, value) < 0) return -1;
        if (relaying(b) && b->client->reset_pending && client_holds_reset_status(b->client, name)) return 0;
        /* A change the client made (SET application_name …) is now its own. */
        if (relaying(b) && client_param_set(b->client, name, value) < 0) return -1;
        forward(b, raw, m->total_len);
        return 0;
    }
    case 'E':
        if (b->in_copy && b->copy_in) b->copy_in_over = true; /* the server left COPY: Syncs count again */
        if (b->query_cb) {
            proto_error_fields f;
            if (proto_parse_error(m, &f) == PROTO_COMPLETE && !b->query_message) {
                b->query_sqlstate = strdup(f.sqlstate ? f.sqlstate : "XX000");
                b->query_message = strdup(f.message ? f.message : "error");
            }
            return 0;
        }
        if (relaying(b) && b->client->echo) {
            proto_error_fields f;
            if (proto_parse_error(m, &f) == PROTO_COMPLETE)
                echo_backend_message(b->client, 'E', f.sqlstate ? f.sqlstate : "?");
        }
        forward(b, raw, m->total_len);
        return 0;
    case 'C': {
        const char *tag = NULL;
        if (relaying(b) && proto_parse_cstring(m, &tag) == PROTO_COMPLETE) {
            if (b->client->echo) echo_backend_message(b->client, 'C', tag);
            if (strcmp(tag, "SET") == 0 || strcmp(tag, "RESET") == 0 || strcmp(tag, "DISCARD ALL") == 0)
                backend_forget_unreported_params(b);
            if (strcmp(tag, "SET") == 0) client_on_set_done(b->client, b);
            /* A reset (RESET, DISCARD ALL, a "SET" that was SET x TO
             * DEFAULT): its ParameterStatus follows; the client's own values
             * are put back after them, at ReadyForQuery. */
            bool reset = strcmp(tag, "RESET") == 0 || strcmp(tag, "DISCARD ALL") == 0 ||
                         (b->client->set_default_sent && strcmp(tag, "SET") == 0);
            b->client->set_default_sent = false;
            if (reset) b->client->reset_pending = true;
            if (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0)
                prepared_client_dropped_all(b->client, b);
            /* What on_connect set may be gone with it (reset.c runs it again). */
            if (reset || strncmp(tag, "DISCARD", 7) == 0) b->session_reset = true;
        }
        forward(b, raw, m->total_len);
        return 0;
    }
    case 'G':
    case 'H':
    case 'W':
        b->in_copy = true;
        b->copy_in = m->type == 'G';
        if (b->copy_in && relaying(b) && b->client->echo) echo_backend_message(b->client, 'G', NULL);
        if (b->copy_in) {
            /* The server ignores the Syncs sent between the COPY and its
             * CopyDone/CopyFail: no ReadyForQuery will answer them. */
            b->pending_syncs -= b->copy_syncs < b->pending_syncs ? b->copy_syncs : b->pending_syncs;
            b->copy_syncs = 0;
        }
        forward(b, raw, m->total_len);
        return 0;
    case '1':
        if (relaying(b) && b->client->echo) echo_backend_message(b->client, '1', NULL);
        forward(b, raw, m->total_len);
        return 0;
    default:
        forward(b, raw, m->total_len);
        return 0;
    }
}

static bool is_whole_type(uint8_t t)
{
    return t == 'Z' || t == 'S' || t == 'E' || t == 'C' || t == 'G' || t == 'H' || t == 'W' || t == '1' ||
           t == '3';
}

/* Frame and act on everything buffered. Returns -1 on a protocol error. */
static int process_input(tp_backend *b)
{
    while (tp_buf_size(&b->in) > 0 && b->state != BACKEND_CLOSING) {
        const uint8_t *p = tp_buf_head(&b->in);
        size_t avail = tp_buf_size(&b->in);
        if (b->pass_remaining > 0) {
            size_t n = avail < b->pass_remaining ? avail : b->pass_remaining;
            forward(b, p, n);
            b->pass_remaining -= n;
            tp_buf_consume(&b->in, n);
            if (b->pass_remaining == 0 && relaying(b) && b->expects.count) prepared_flush_fakes(b);
            continue;
        }
        if (relaying(b) && b->expects.count) prepared_flush_fakes(b);
        uint8_t type;
        size_t total;
        const char *why = NULL;
        proto_status st = proto_read_header(p, avail, MAX_BACKEND_MSG, &type, &total, &why);
        if (st == PROTO_NEED_MORE) break;
        if (st == PROTO_INVALID) return -1;
        if (is_whole_type(type) && total <= WHOLE_LIMIT) {
            if (avail < total) {
                if (!tp_buf_reserve(&b->in, total - avail)) return -1;
                break;
            }
            proto_msg m;
            if (proto_read_msg(p, avail, MAX_BACKEND_MSG, &m, NULL, &why) != PROTO_COMPLETE) return -1;
            /* Consume first: the handler may link, unlink or close. */
            uint8_t small[WHOLE_LIMIT > 4096 ? 4096 : WHOLE_LIMIT];
            const uint8_t *raw = p;
            uint8_t *copy = NULL;
            if (total <= sizeof small) {
                memcpy(small, p, total);
                raw = small;
            } else {
                copy = malloc(total);
                if (!copy) return -1;
                memcpy(copy, p, total);
                raw = copy;
            }
            tp_buf_consume(&b->in, total);
            proto_msg view = {m.type, raw + 5, m.body_len, m.total_len};
            int rc = on_whole_message(b, &view, raw);
            free(copy);
            if (rc < 0) return -1;
            if (relaying(b) && b->expects.count) prepared_flush_fakes(b);
            continue;
        }
        /* Stream it: header now, the rest as it comes. */
        if (relaying(b)) {
            if (b->expects.count) prepared_backend_message(b, type, NULL, NULL);
            if (b->client->echo && echo_streamed_type(type)) echo_backend_message(b->client, type, NULL);
        }
        size_t n = avail < total ? avail : total;
        forward(b, p, n);
        b->pass_remaining = total - n;
        tp_buf_consume(&b->in, n);
    }
    return 0;
}

static void backend_died(tp_backend *b, const char *why)
{
    if (b->state == BACKEND_CLOSING || b->dead) return;
    b->dead = true;
    tp_client *c = b->client;
    backend_query_cb qcb = b->query_cb;
    backend_connect_cb ccb = b->on_connected;
    tp_pool *p = b->pool;
    log_warn("pool %s: backend %llu (pid %d) lost: %s", p->cfg.pool_logging_name,
             (unsigned long long)b->id, b->pid, why);
    b->query_cb = NULL;
    b->on_connected = NULL;
    if (ccb) {
        /* Still in on_connect: a failed connect. */
        ccb(b, why);
        return;
    }
    if (qcb) {
        qcb(b, false, NULL, why);
        if (b->state == BACKEND_CLOSING) return;
    }
    c = b->client;
    if (c && b->state == BACKEND_LINKED) client_on_backend_lost(c, why);
    if (b->state != BACKEND_CLOSING) pools_backend_gone(p, b, true);
}

static void on_readable(tp_backend *b)
{
    size_t budget = READ_BUDGET;
    while (budget > 0 && b->state != BACKEND_CLOSING && !b->read_paused) {
        uint8_t *w = tp_buf_reserve(&b->in, READ_CHUNK);
        if (!w) {
            backend_died(b, "out of memory");
            return;
        }
        ssize_t n = raw_read(b, w, READ_CHUNK);
        if (n == -EAGAIN) break;
        if (n == 0) {
            backend_died(b, "server closed the connection unexpectedly");
            return;
        }
        if (n < 0) {
            backend_died(b, "could not receive data from server");
            return;
        }
        b->in.len += (size_t)n;
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        /* A short read drained the socket (level-triggered: more will be
         * signalled); TLS may hold decrypted bytes, so it reads on. */
        if (!b->ssl && (size_t)n < READ_CHUNK) budget = 0;
        if (process_input(b) < 0) {
            backend_died(b, "protocol error from server");
            return;
        }
        if (b->client && client_write_queue(b->client) > CLIENT_HIGH_WATER) backend_pause_reading(b);
    }
    if (b->state != BACKEND_CLOSING) tp_buf_shrink_if_empty(&b->in, 64 * 1024);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    tp_backend *b = h->data;
    if (b->state == BACKEND_CLOSING) return;
    if (b->state == BACKEND_RESOLVING || b->state == BACKEND_CONNECTING) {
        backend_on_connect_poll(b, status, events);
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF: the connection failed. */
        backend_died(b, status == UV_EBADF ? "connection to the server failed" : uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        if (flush_out(b) < 0) {
            backend_died(b, "could not send data to server");
            return;
        }
        if (b->client && tp_buf_size(&b->out) < 64 * 1024) client_on_backend_drained(b->client);
        if (b->state == BACKEND_CLOSING) return;
    }
    if ((events & UV_READABLE) || (b->ssl && SSL_pending(b->ssl) > 0)) on_readable(b);
    if (b->state != BACKEND_CLOSING) backend_poll_update(b, wanted_events(b));
}
