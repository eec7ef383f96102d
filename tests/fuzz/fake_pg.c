/* fake_pg.c: the stand-in PostgreSQL server of fake_pg.h. */
#include "tests/fuzz/fake_pg.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/buf.h"
#include "proto/proto.h"
#include "tests/fuzz/fuzz_check.h"

#define FAKE_MAX_MSG (1u << 20)

typedef enum { FAKE_STARTUP, FAKE_READY, FAKE_COPY_IN, FAKE_SKIP_TO_SYNC } fake_state;

typedef struct fake_conn {
    uv_pipe_t pipe;
    fake_state state;
    char txn; /* 'I', 'T' or 'E' */
    bool closing;
    tp_buf in;
} fake_conn;

typedef struct fake_write {
    uv_write_t req;
    uint8_t data[];
} fake_write;

static uv_pipe_t listener;
static size_t n_conns;
static uint32_t next_pid = 1000;

size_t fake_pg_connections(void)
{
    return n_conns;
}

static void on_conn_closed(uv_handle_t *h)
{
    fake_conn *fc = h->data;
    tp_buf_free(&fc->in);
    free(fc);
    n_conns--;
}

static void conn_close(fake_conn *fc)
{
    if (fc->closing) return;
    fc->closing = true;
    uv_close((uv_handle_t *)&fc->pipe, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

/* Send what b holds and empty it; a failed send closes the connection. */
static void send_buf(fake_conn *fc, proto_buf *b)
{
    FUZZ_CHECK(!b->failed);
    if (b->len == 0 || fc->closing) return;
    fake_write *w = malloc(sizeof *w + b->len);
    FUZZ_CHECK(w);
    memcpy(w->data, b->data, b->len);
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)b->len);
    if (uv_write(&w->req, (uv_stream_t *)&fc->pipe, &ub, 1, on_written) < 0) {
        free(w);
        conn_close(fc);
    }
    proto_buf_reset(b);
}

static void add_error(proto_buf *b, const char *severity, const char *sqlstate, const char *message)
{
    proto_build_error(b, severity, sqlstate, message, NULL);
}

static void add_ready(fake_conn *fc, proto_buf *b)
{
    proto_build_ready(b, fc->txn);
}

static bool starts_with(const char *sql, const char *word)
{
    while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '(')
        sql++;
    return strncasecmp(sql, word, strlen(word)) == 0;
}

static bool contains(const char *sql, const char *word)
{
    return strcasestr(sql, word) != NULL;
}

/* One statement of a simple Query or an Execute: its result. Returns false
 * when it failed (an ErrorResponse was added). */
static bool run_statement(fake_conn *fc, proto_buf *b, const char *sql, bool simple)
{
    if (fc->txn == 'E' && !starts_with(sql, "rollback") && !starts_with(sql, "abort")) {
        add_error(b, "ERROR", "25P02", "current transaction is aborted");
        return false;
    }
    if (contains(sql, "fail")) {
        add_error(b, "ERROR", "42000", "failed as asked");
        if (fc->txn == 'T') fc->txn = 'E';
        return false;
    }
    bool copy_in = simple && starts_with(sql, "copy") && contains(sql, "from stdin");
    bool copy_out = simple && starts_with(sql, "copy") && contains(sql, "to stdout");
    if (copy_in || copy_out) {
        /* CopyInResponse / CopyOutResponse: text, no columns. */
        proto_buf_begin(b, copy_in ? 'G' : 'H');
        proto_buf_put_u8(b, 0);
        proto_buf_put_i16(b, 0);
        proto_buf_end(b);
    }
    if (copy_in) {
        fc->state = FAKE_COPY_IN;
        return true;
    }
    if (copy_out) {
        proto_buf_begin(b, 'd');
        proto_buf_put_bytes(b, "1\n", 2);
        proto_buf_end(b);
        proto_buf_begin(b, 'c');
        proto_buf_end(b);
        proto_build_command_complete(b, "COPY 1");
        return true;
    }
    const char *tag = "SELECT 1";
    if (starts_with(sql, "begin") || starts_with(sql, "start")) {
        fc->txn = 'T';
        tag = "BEGIN";
    } else if (starts_with(sql, "commit") || starts_with(sql, "end")) {
        fc->txn = 'I';
        tag = "COMMIT";
    } else if (starts_with(sql, "rollback") || starts_with(sql, "abort")) {
        fc->txn = 'I';
        tag = "ROLLBACK";
    } else if (starts_with(sql, "set") || starts_with(sql, "reset")) {
        tag = starts_with(sql, "set") ? "SET" : "RESET";
    } else if (starts_with(sql, "discard")) {
        tag = "DISCARD ALL";
    } else if (starts_with(sql, "deallocate")) {
        tag = "DEALLOCATE";
    } else if (starts_with(sql, "select")) {
        static const char *const col[] = {"?column?"};
        static const char *const val[] = {"1"};
        if (simple) proto_build_row_description(b, 1, col);
        proto_build_data_row(b, 1, val);
    } else {
        tag = "OK";
    }
    proto_build_command_complete(b, tag);
    return true;
}

static void on_query(fake_conn *fc, proto_buf *b, const char *sql)
{
    if (!*sql)
        proto_build_empty_query(b);
    else
        run_statement(fc, b, sql, true);
    if (fc->state != FAKE_COPY_IN) add_ready(fc, b);
}

/* A body-less message of `type` when ok, else an error naming `what`. */
static bool reply(proto_buf *b, bool ok, uint8_t type, const char *what)
{
    if (ok) {
        proto_buf_begin(b, type);
        proto_buf_end(b);
    } else {
        add_error(b, "ERROR", "08P01", what);
    }
    return ok;
}

/* One extended-protocol message. */
static void on_extended(fake_conn *fc, proto_buf *b, const proto_msg *m)
{
    const char *s1, *s2;
    char kind;
    bool ok = true;
    switch (m->type) {
    case 'P':
        ok = reply(b, proto_parse_parse(m, &s1, &s2) == PROTO_COMPLETE && !contains(s2, "fail"), '1',
                   "could not parse");
        break;
    case 'B':
        ok = reply(b, proto_parse_bind(m, &s1, &s2) == PROTO_COMPLETE, '2', "bad Bind");
        break;
    case 'D':
        ok = proto_parse_close_describe(m, &kind, &s1) == PROTO_COMPLETE;
        if (ok && kind == 'S') {
            proto_buf_begin(b, 't');
            proto_buf_put_i16(b, 0);
            proto_buf_end(b);
        }
        ok = reply(b, ok, 'n', "bad Describe");
        break;
    case 'E':
        ok = run_statement(fc, b, "select", false);
        break;
    case 'C':
        ok = reply(b, proto_parse_close_describe(m, &kind, &s1) == PROTO_COMPLETE, '3', "bad Close");
        break;
    }
    if (!ok) {
        if (fc->txn == 'T') fc->txn = 'E';
        fc->state = FAKE_SKIP_TO_SYNC;
    }
}

/* Handle every whole message buffered. */
static void process(fake_conn *fc)
{
    proto_buf b;
    proto_buf_init(&b);
    while (!fc->closing) {
        const uint8_t *p = tp_buf_head(&fc->in);
        size_t avail = tp_buf_size(&fc->in);
        if (fc->state == FAKE_STARTUP) {
            proto_startup st;
            proto_status s = proto_read_startup(p, avail, &st, NULL, NULL);
            if (s == PROTO_NEED_MORE) break;
            if (s == PROTO_INVALID) {
                conn_close(fc);
                break;
            }
            tp_buf_consume(&fc->in, st.total_len);
            if (st.code == PROTO_SSL_REQUEST || st.code == PROTO_GSSENC_REQUEST) {
                proto_buf_append(&b, "N", 1);
                send_buf(fc, &b);
                continue;
            }
            if (st.code == PROTO_CANCEL_REQUEST) {
                conn_close(fc);
                break;
            }
            static const char *const params[][2] = {
                {"server_version", "16.0"},
                {"server_encoding", "UTF8"},
                {"client_encoding", "UTF8"},
                {"DateStyle", "ISO, MDY"},
                {"TimeZone", "UTC"},
                {"integer_datetimes", "on"},
                {"IntervalStyle", "postgres"},
                {"standard_conforming_strings", "on"},
                {"application_name", "tidepool"},
                {"is_superuser", "off"},
            };
            proto_build_auth_ok(&b);
            for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
                proto_build_param_status(&b, params[i][0], params[i][1]);
            proto_build_backend_key(&b, next_pid++, 42);
            proto_build_ready(&b, 'I');
            fc->state = FAKE_READY;
            fc->txn = 'I';
            send_buf(fc, &b);
            continue;
        }
        proto_msg m;
        proto_status s = proto_read_msg(p, avail, FAKE_MAX_MSG, &m, NULL, NULL);
        if (s == PROTO_NEED_MORE) break;
        if (s == PROTO_INVALID) {
            add_error(&b, "FATAL", "08P01", "invalid message length");
            send_buf(fc, &b);
            conn_close(fc);
            break;
        }
        /* The message stays readable until the next read callback. */
        tp_buf_consume(&fc->in, m.total_len);
        const char *sql;
        if (m.type == 'X') {
            conn_close(fc);
            break;
        }
        if (fc->state == FAKE_COPY_IN) {
            if (m.type == 'c') {
                proto_build_command_complete(&b, "COPY 0");
                fc->state = FAKE_READY;
                add_ready(fc, &b);
            } else if (m.type == 'f') {
                add_error(&b, "ERROR", "57014", "COPY from stdin failed");
                if (fc->txn == 'T') fc->txn = 'E';
                fc->state = FAKE_READY;
                add_ready(fc, &b);
            } else if (m.type != 'd' && m.type != 'H' && m.type != 'S') {
                add_error(&b, "FATAL", "08P01", "unexpected message during COPY");
                send_buf(fc, &b);
                conn_close(fc);
                break;
            }
        } else if (m.type == 'S') {
            fc->state = FAKE_READY;
            add_ready(fc, &b);
        } else if (fc->state == FAKE_SKIP_TO_SYNC) {
            /* dropped, as PostgreSQL does after an error */
        } else if (m.type == 'Q') {
            if (proto_parse_cstring(&m, &sql) != PROTO_COMPLETE) {
                add_error(&b, "FATAL", "08P01", "invalid Query");
                send_buf(fc, &b);
                conn_close(fc);
                break;
            }
            on_query(fc, &b, sql);
        } else if (m.type == 'F') {
            proto_buf_begin(&b, 'V');
            proto_buf_put_i32(&b, -1);
            proto_buf_end(&b);
            add_ready(fc, &b);
        } else if (strchr("PBDECH", m.type) && m.type) {
            on_extended(fc, &b, &m);
        } else if (m.type != 'd' && m.type != 'c' && m.type != 'f') {
            add_error(&b, "FATAL", "08P01", "invalid frontend message type");
            send_buf(fc, &b);
            conn_close(fc);
            break;
        }
        send_buf(fc, &b);
    }
    proto_buf_free(&b);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fake_conn *fc = h->data;
    uint8_t *p = tp_buf_reserve(&fc->in, 8192);
    FUZZ_CHECK(p);
    *buf = uv_buf_init((char *)p, 8192);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fake_conn *fc = s->data;
    if (nread < 0) {
        conn_close(fc);
        return;
    }
    fc->in.len += (size_t)nread;
    process(fc);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    fake_conn *fc = calloc(1, sizeof *fc);
    FUZZ_CHECK(fc);
    uv_pipe_init(server->loop, &fc->pipe, 0);
    fc->pipe.data = fc;
    n_conns++;
    if (uv_accept(server, (uv_stream_t *)&fc->pipe) < 0 ||
        uv_read_start((uv_stream_t *)&fc->pipe, on_alloc, on_read) < 0)
        conn_close(fc);
}

int fake_pg_start(uv_loop_t *loop, const char *dir, int port)
{
    char path[108];
    snprintf(path, sizeof path, "%s/.s.PGSQL.%d", dir, port);
    uv_pipe_init(loop, &listener, 0);
    int rc = uv_pipe_bind(&listener, path);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&listener, 128, on_connection);
    return rc;
}
