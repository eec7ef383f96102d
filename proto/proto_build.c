/* proto_build.c: the growable output buffer (proto_buf) and the builders of
 * whole messages on top of it. Like PgBouncer's pktbuf, a failure (no memory,
 * or a message that cannot be encoded) sets a sticky `failed` flag and turns
 * every later call into a no-op, so a caller chains appends and checks once.
 * begin() writes the type byte and a placeholder length; end() patches the
 * length in, so builders never compute a length by hand. */
#include "proto/proto.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto_internal.h"

#define PROTO_BUF_INITIAL 256u

void proto_buf_init(proto_buf *b)
{
    memset(b, 0, sizeof *b);
}

void proto_buf_free(proto_buf *b)
{
    free(b->data);
    proto_buf_init(b);
}

void proto_buf_reset(proto_buf *b)
{
    b->len = 0;
    b->failed = false;
    b->msg_start = 0;
    b->len_pos = 0;
    b->in_msg = false;
}

/* Make room for n more bytes; false (and the buffer failed) if impossible. */
static bool reserve(proto_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n > PROTO_BUF_MAX || b->len > PROTO_BUF_MAX - n) {
        b->failed = true;
        return false;
    }
    size_t want = b->len + n;
    if (want <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : PROTO_BUF_INITIAL;
    while (cap < want)
        cap *= 2; /* cannot overflow: want <= PROTO_BUF_MAX (1 GiB) */
    uint8_t *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void proto_buf_append(proto_buf *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return;
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(b->data + b->len, data, len);
    b->len += len;
}

void proto_buf_begin(proto_buf *b, uint8_t type)
{
    if (b->failed)
        return;
    if (b->in_msg) {
        b->failed = true;
        return;
    }
    b->msg_start = b->len;
    if (type)
        proto_buf_put_u8(b, type);
    b->len_pos = b->len;
    proto_buf_put_i32(b, 0);
    b->in_msg = !b->failed;
}

void proto_buf_put_u8(proto_buf *b, uint8_t v)
{
    proto_buf_append(b, &v, 1);
}

static void put_u16(proto_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    proto_buf_append(b, p, 2);
}

static void put_u32(proto_buf *b, uint32_t v)
{
    uint8_t p[4];
    proto_set_u32(p, v);
    proto_buf_append(b, p, 4);
}

void proto_buf_put_i16(proto_buf *b, int16_t v)
{
    put_u16(b, (uint16_t)v); /* modular conversion: well defined */
}

void proto_buf_put_i32(proto_buf *b, int32_t v)
{
    put_u32(b, (uint32_t)v);
}

void proto_buf_put_bytes(proto_buf *b, const void *data, size_t len)
{
    proto_buf_append(b, data, len);
}

void proto_buf_put_str(proto_buf *b, const char *s)
{
    if (!s)
        s = "";
    proto_buf_append(b, s, strlen(s) + 1);
}

void proto_buf_end(proto_buf *b)
{
    if (b->failed)
        return;
    if (!b->in_msg) {
        b->failed = true;
        return;
    }
    b->in_msg = false;
    size_t mlen = b->len - b->len_pos;
    if (mlen > INT32_MAX) {
        b->failed = true;
        return;
    }
    proto_set_u32(b->data + b->len_pos, (uint32_t)mlen);
}

/* A 16-bit count; anything larger fails the buffer. */
static void put_count(proto_buf *b, size_t n)
{
    if (n > UINT16_MAX) {
        b->failed = true;
        return;
    }
    put_u16(b, (uint16_t)n);
}

/* ---- whole messages ---- */

void proto_build_auth(proto_buf *b, int32_t code, const void *data, size_t len)
{
    proto_buf_begin(b, 'R');
    proto_buf_put_i32(b, code);
    proto_buf_put_bytes(b, data, len);
    proto_buf_end(b);
}

void proto_build_auth_ok(proto_buf *b)
{
    proto_build_auth(b, 0, NULL, 0);
}

void proto_build_param_status(proto_buf *b, const char *name, const char *value)
{
    proto_buf_begin(b, 'S');
    proto_buf_put_str(b, name);
    proto_buf_put_str(b, value);
    proto_buf_end(b);
}

void proto_build_backend_key(proto_buf *b, uint32_t pid, uint32_t key)
{
    proto_buf_begin(b, 'K');
    put_u32(b, pid);
    put_u32(b, key);
    proto_buf_end(b);
}

void proto_build_ready(proto_buf *b, char status)
{
    proto_buf_begin(b, 'Z');
    proto_buf_put_u8(b, (uint8_t)status);
    proto_buf_end(b);
}

static void put_field(proto_buf *b, char code, const char *value)
{
    proto_buf_put_u8(b, (uint8_t)code);
    proto_buf_put_str(b, value);
}

/* ErrorResponse and NoticeResponse share a layout: S and V carry the same
 * severity (we never localize), then C and M, an optional D, a zero byte. */
static void build_report(proto_buf *b, uint8_t type, const char *severity,
                         const char *sqlstate, const char *message, const char *detail)
{
    proto_buf_begin(b, type);
    put_field(b, 'S', severity);
    put_field(b, 'V', severity);
    put_field(b, 'C', sqlstate);
    put_field(b, 'M', message);
    if (detail)
        put_field(b, 'D', detail);
    proto_buf_put_u8(b, 0);
    proto_buf_end(b);
}

void proto_build_error(proto_buf *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail)
{
    build_report(b, 'E', severity, sqlstate, message, detail);
}

void proto_build_notice(proto_buf *b, const char *severity, const char *sqlstate,
                        const char *message)
{
    build_report(b, 'N', severity, sqlstate, message, NULL);
}

static void build_cstring_msg(proto_buf *b, uint8_t type, const char *s)
{
    proto_buf_begin(b, type);
    proto_buf_put_str(b, s);
    proto_buf_end(b);
}

void proto_build_query(proto_buf *b, const char *sql)
{
    build_cstring_msg(b, 'Q', sql);
}

void proto_build_command_complete(proto_buf *b, const char *tag)
{
    build_cstring_msg(b, 'C', tag);
}

static void build_empty_msg(proto_buf *b, uint8_t type)
{
    proto_buf_begin(b, type);
    proto_buf_end(b);
}

void proto_build_empty_query(proto_buf *b)
{
    build_empty_msg(b, 'I');
}

void proto_build_terminate(proto_buf *b)
{
    build_empty_msg(b, 'X');
}

void proto_build_sync(proto_buf *b)
{
    build_empty_msg(b, 'S');
}

#define TEXT_OID 25

void proto_build_row_description(proto_buf *b, size_t n, const char *const *names)
{
    proto_buf_begin(b, 'T');
    put_count(b, n);
    for (size_t i = 0; i < n && !b->failed; i++) {
        proto_buf_put_str(b, names[i]);
        proto_buf_put_i32(b, 0);        /* table oid: not a table column */
        proto_buf_put_i16(b, 0);        /* attribute number */
        proto_buf_put_i32(b, TEXT_OID); /* type oid */
        proto_buf_put_i16(b, -1);       /* typlen: variable */
        proto_buf_put_i32(b, -1);       /* typmod: none */
        proto_buf_put_i16(b, 0);        /* format: text */
    }
    proto_buf_end(b);
}

void proto_build_data_row(proto_buf *b, size_t n, const char *const *values)
{
    proto_buf_begin(b, 'D');
    put_count(b, n);
    for (size_t i = 0; i < n && !b->failed; i++) {
        if (!values[i]) {
            proto_buf_put_i32(b, -1);
            continue;
        }
        size_t len = strlen(values[i]);
        if (len > INT32_MAX) {
            b->failed = true;
            break;
        }
        proto_buf_put_i32(b, (int32_t)len);
        proto_buf_put_bytes(b, values[i], len);
    }
    proto_buf_end(b);
}

void proto_build_parse(proto_buf *b, const char *stmt, const char *query,
                       size_t n_types, const uint32_t *types)
{
    proto_buf_begin(b, 'P');
    proto_buf_put_str(b, stmt);
    proto_buf_put_str(b, query);
    put_count(b, n_types);
    for (size_t i = 0; i < n_types && !b->failed; i++)
        put_u32(b, types[i]);
    proto_buf_end(b);
}

void proto_build_close(proto_buf *b, char kind, const char *name)
{
    proto_buf_begin(b, 'C');
    proto_buf_put_u8(b, (uint8_t)kind);
    proto_buf_put_str(b, name);
    proto_buf_end(b);
}
