/* fuzz_codec.c: libFuzzer target for proto/, the wire codec and the SQL
 * scanner. Every input goes through every reader:
 *
 * - proto_read_startup on the whole input (a StartupMessage read back is
 *   rebuilt with the builders and must give the same bytes);
 * - the message framer over the input as a stream, once whole and once fed in
 *   chunks (a chunk size taken from the input): both must frame the same
 *   messages and end the same way;
 * - each framed message through every body parser; what parses is rebuilt
 *   (ParameterStatus, Query, Parse, Close) and must give the same body, or
 *   parsed again (ErrorResponse) and must give the same fields; a Bind's
 *   values are walked and shown as a log line would (buffer size from the
 *   input);
 * - DataRow and RowDescription built from the input's strings, decoded here;
 * - the SQL scanner (session effects, DEALLOCATE, RESET, simple SET) on the
 *   raw input and on each Query's text, with output buffers of a size taken
 *   from the input, allocated to that exact size so ASan sees any overrun.
 *
 * Input: byte 0 = chunk size for the stream, byte 1 = name buffer size; the
 * rest is the bytes under test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_check.h"

#define MAX_MSG (1u << 20)
#define MAX_FRAMED 256

typedef struct framed {
    uint8_t type;
    size_t off, total;
} framed;

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void check_body_eq(const proto_buf *b, const proto_msg *m)
{
    FUZZ_CHECK(!b->failed);
    FUZZ_CHECK(b->len == m->total_len);
    FUZZ_CHECK(memcmp(b->data + 5, m->body, m->body_len) == 0);
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* ---- startup ---- */

static void fuzz_startup(const uint8_t *data, size_t len)
{
    proto_startup st;
    size_t need = 0;
    const char *why = NULL;
    proto_status s = proto_read_startup(data, len, &st, &need, &why);
    if (s == PROTO_NEED_MORE) {
        FUZZ_CHECK(need > len && need <= PROTO_MAX_STARTUP);
        return;
    }
    if (s == PROTO_INVALID) {
        FUZZ_CHECK(why != NULL);
        return;
    }
    FUZZ_CHECK(st.total_len >= 8 && st.total_len <= len && st.total_len <= PROTO_MAX_STARTUP);
    /* One byte short of the packet: not yet. */
    need = 0;
    FUZZ_CHECK(proto_read_startup(data, st.total_len - 1, NULL, &need, NULL) == PROTO_NEED_MORE);
    FUZZ_CHECK(need == (st.total_len - 1 < 4 ? 4 : st.total_len));
    if (st.code == PROTO_SSL_REQUEST || st.code == PROTO_GSSENC_REQUEST) {
        FUZZ_CHECK(st.total_len == 8);
        return;
    }
    if (st.code == PROTO_CANCEL_REQUEST) {
        FUZZ_CHECK(st.total_len == 16);
        FUZZ_CHECK(st.cancel_pid == get_u32(data + 8) && st.cancel_key == get_u32(data + 12));
        return;
    }
    FUZZ_CHECK(st.code >> 16 == 3);
    const char *user = proto_startup_get(&st, "user");
    FUZZ_CHECK(user && *user);
    proto_buf b;
    proto_buf_init(&b);
    proto_buf_begin(&b, 0);
    proto_buf_put_i32(&b, (int32_t)st.code);
    for (size_t i = 0; i < st.n_params; i++) {
        FUZZ_CHECK((const uint8_t *)st.names[i] > data &&
                   (const uint8_t *)st.values[i] < data + st.total_len);
        proto_buf_put_str(&b, st.names[i]);
        proto_buf_put_str(&b, st.values[i]);
        /* The last occurrence of a name wins. */
        const char *got = proto_startup_get(&st, st.names[i]);
        bool later = false;
        for (size_t j = i + 1; j < st.n_params; j++)
            later |= strcmp(st.names[j], st.names[i]) == 0;
        FUZZ_CHECK(later || got == st.values[i]);
    }
    proto_buf_put_u8(&b, 0);
    proto_buf_end(&b);
    FUZZ_CHECK(!b.failed && b.len == st.total_len && memcmp(b.data, data, b.len) == 0);
    proto_buf_free(&b);
}

/* ---- SQL scanner ---- */

static void fuzz_sql(const char *sql, size_t len, size_t cap)
{
    (void)proto_sql_session_effects(sql, len);
    char *name = malloc(cap), *value = malloc(cap);
    FUZZ_CHECK(name && value);
    if (proto_sql_deallocate_name(sql, len, name, cap)) FUZZ_CHECK(strlen(name) < cap);
    if (proto_sql_reset_name(sql, len, name, cap)) FUZZ_CHECK(strlen(name) < cap);
    if (proto_sql_simple_set(sql, len, name, cap, value, cap)) {
        FUZZ_CHECK(strlen(name) < cap);
        FUZZ_CHECK(strlen(value) < cap);
    }
    free(name);
    free(value);
}

/* ---- message bodies ---- */

static void fuzz_error(const proto_msg *m)
{
    proto_error_fields f;
    if (proto_parse_error(m, &f) != PROTO_COMPLETE || !f.severity || !f.sqlstate || !f.message) return;
    proto_buf b;
    proto_buf_init(&b);
    proto_build_error(&b, f.severity, f.sqlstate, f.message, f.detail);
    FUZZ_CHECK(!b.failed);
    proto_msg again;
    FUZZ_CHECK(proto_read_msg(b.data, b.len, MAX_MSG, &again, NULL, NULL) == PROTO_COMPLETE);
    FUZZ_CHECK(again.type == 'E' && again.total_len == b.len);
    proto_error_fields g;
    FUZZ_CHECK(proto_parse_error(&again, &g) == PROTO_COMPLETE);
    FUZZ_CHECK(str_eq(f.severity, g.severity) && str_eq(f.sqlstate, g.sqlstate) &&
               str_eq(f.message, g.message) && str_eq(f.detail, g.detail) && g.hint == NULL);
    proto_buf_free(&b);
}

/* A Bind's values, walked and shown in a buffer of exactly cap bytes: the
 * walk ends at the values' end and the text fits. */
static void fuzz_bind(const proto_msg *m, size_t cap)
{
    proto_bind b;
    const char *names[2];
    if (proto_peek_cstrings(m->body, m->body_len, 2, names) == PROTO_COMPLETE)
        FUZZ_CHECK((const uint8_t *)names[1] == m->body + strlen(names[0]) + 1);
    if (proto_parse_bind_params(m, &b) != PROTO_COMPLETE) return;
    FUZZ_CHECK(proto_peek_cstrings(m->body, m->body_len, 2, names) == PROTO_COMPLETE);
    proto_bind_iter it = {0};
    proto_bind_value v;
    size_t n = 0;
    while (proto_bind_next(&b, &it, &v)) {
        FUZZ_CHECK(v.len >= -1 && (v.len == -1) == (v.data == NULL));
        n++;
    }
    FUZZ_CHECK(n == b.n_params);
    FUZZ_CHECK(b.values + it.off + 2 + 2 * (size_t)b.n_result_formats == m->body + m->body_len);
    char *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out);
    size_t len = proto_bind_params_text(&b, out, cap);
    FUZZ_CHECK(cap < 16 ? len == 0 : len < cap && strlen(out) == len);
    free(out);
}

static void fuzz_bodies(const proto_msg *m, size_t cap)
{
    proto_buf b;
    proto_buf_init(&b);
    const char *s1, *s2;
    fuzz_error(m);
    if (proto_parse_param_status(m, &s1, &s2) == PROTO_COMPLETE) {
        proto_build_param_status(&b, s1, s2);
        check_body_eq(&b, m);
        proto_buf_reset(&b);
    }
    if (proto_parse_cstring(m, &s1) == PROTO_COMPLETE) {
        proto_build_query(&b, s1);
        check_body_eq(&b, m);
        proto_buf_reset(&b);
        fuzz_sql(s1, strlen(s1), cap);
    }
    if (proto_parse_parse(m, &s1, &s2) == PROTO_COMPLETE) {
        const uint8_t *p = m->body + strlen(s1) + 1 + strlen(s2) + 1;
        size_t n = (size_t)p[0] << 8 | p[1];
        uint32_t *types = malloc(n * sizeof *types + 1);
        FUZZ_CHECK(types);
        for (size_t i = 0; i < n; i++)
            types[i] = get_u32(p + 2 + 4 * i);
        proto_build_parse(&b, s1, s2, n, types);
        check_body_eq(&b, m);
        proto_buf_reset(&b);
        free(types);
    }
    if (proto_parse_bind(m, &s1, &s2) == PROTO_COMPLETE)
        FUZZ_CHECK((const uint8_t *)s2 == m->body + strlen(s1) + 1);
    fuzz_bind(m, cap);
    char kind;
    if (proto_parse_close_describe(m, &kind, &s1) == PROTO_COMPLETE) {
        FUZZ_CHECK(kind == 'S' || kind == 'P');
        proto_build_close(&b, kind, s1);
        check_body_eq(&b, m);
        proto_buf_reset(&b);
    }
    const uint8_t *d;
    int32_t dlen;
    if (proto_parse_sasl_initial(m, &s1, &d, &dlen) == PROTO_COMPLETE) {
        FUZZ_CHECK(dlen >= -1);
        if (dlen >= 0)
            FUZZ_CHECK(d && d + dlen == m->body + m->body_len);
        else
            FUZZ_CHECK(d == NULL);
    }
    proto_buf_free(&b);
}

/* ---- framing ---- */

/* Frame the stream whole; returns how many messages, *end the final status. */
static size_t frame_whole(const uint8_t *data, size_t len, framed *out, proto_status *end, size_t cap)
{
    size_t off = 0, n = 0;
    for (;;) {
        proto_msg m;
        size_t need = 0;
        const char *why = NULL;
        proto_status s = proto_read_msg(data + off, len - off, MAX_MSG, &m, &need, &why);
        uint8_t htype;
        size_t htotal;
        proto_status hs = proto_read_header(data + off, len - off, MAX_MSG, &htype, &htotal, NULL);
        if (s == PROTO_INVALID) FUZZ_CHECK(hs == PROTO_INVALID && why);
        if (s == PROTO_NEED_MORE) {
            FUZZ_CHECK(need > len - off);
            FUZZ_CHECK(need == (len - off < 5 ? 5 : htotal));
        }
        if (s != PROTO_COMPLETE || n == MAX_FRAMED) {
            *end = s;
            return n;
        }
        FUZZ_CHECK(hs == PROTO_COMPLETE && htype == m.type && htotal == m.total_len);
        FUZZ_CHECK(m.total_len == (size_t)m.body_len + 5 && m.total_len <= len - off);
        FUZZ_CHECK(m.body == data + off + 5);
        fuzz_bodies(&m, cap);
        out[n++] = (framed){m.type, off, m.total_len};
        off += m.total_len;
    }
}

/* Feed the stream in chunks into a growing buffer, as a socket would, and
 * check each message against the whole framing. */
static void frame_chunked(const uint8_t *data, size_t len, size_t chunk, const framed *want, size_t n_want,
                          proto_status want_end)
{
    uint8_t *buf = malloc(len + 1);
    FUZZ_CHECK(buf);
    size_t have = 0, head = 0, n = 0;
    proto_status s = PROTO_NEED_MORE;
    do {
        size_t k = len - have < chunk ? len - have : chunk;
        memcpy(buf + have, data + have, k);
        have += k;
        proto_msg m;
        while ((s = proto_read_msg(buf + head, have - head, MAX_MSG, &m, NULL, NULL)) == PROTO_COMPLETE) {
            if (n == n_want) { /* the whole framing stopped counting */
                FUZZ_CHECK(n == MAX_FRAMED);
                free(buf);
                return;
            }
            FUZZ_CHECK(head == want[n].off && m.type == want[n].type && m.total_len == want[n].total);
            head += m.total_len;
            n++;
        }
    } while (s == PROTO_NEED_MORE && have < len);
    FUZZ_CHECK(n == n_want && s == want_end);
    free(buf);
}

/* ---- builders only ---- */

/* Up to 8 strings cut from the input at NULs; "" stands for SQL NULL. */
static size_t split_strings(const uint8_t *data, size_t len, char **out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len && n < 8; i++) {
        if (i == len || data[i] == '\0') {
            out[n] = malloc(i - start + 1);
            FUZZ_CHECK(out[n]);
            memcpy(out[n], data + start, i - start);
            out[n][i - start] = '\0';
            n++;
            start = i + 1;
        }
    }
    return n;
}

static void fuzz_rows(const uint8_t *data, size_t len)
{
    char *strs[8];
    const char *values[8];
    size_t n = split_strings(data, len > 4096 ? 4096 : len, strs);
    for (size_t i = 0; i < n; i++)
        values[i] = strs[i][0] ? strs[i] : NULL;
    proto_buf b;
    proto_buf_init(&b);
    proto_build_data_row(&b, n, values);
    proto_msg m;
    FUZZ_CHECK(!b.failed && proto_read_msg(b.data, b.len, MAX_MSG, &m, NULL, NULL) == PROTO_COMPLETE);
    FUZZ_CHECK(m.type == 'D' && m.total_len == b.len && m.body_len >= 2);
    FUZZ_CHECK(((size_t)m.body[0] << 8 | m.body[1]) == n);
    size_t off = 2;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(off + 4 <= m.body_len);
        uint32_t l = get_u32(m.body + off);
        off += 4;
        if (!values[i]) {
            FUZZ_CHECK(l == 0xffffffffu);
            continue;
        }
        FUZZ_CHECK(l == strlen(values[i]) && off + l <= m.body_len &&
                   memcmp(m.body + off, values[i], l) == 0);
        off += l;
    }
    FUZZ_CHECK(off == m.body_len);

    proto_buf_reset(&b);
    proto_build_row_description(&b, n, (const char *const *)strs);
    FUZZ_CHECK(!b.failed && proto_read_msg(b.data, b.len, MAX_MSG, &m, NULL, NULL) == PROTO_COMPLETE);
    off = 2;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(strcmp((const char *)m.body + off, strs[i]) == 0);
        off += strlen(strs[i]) + 1 + 18;
    }
    FUZZ_CHECK(off == m.body_len);

    if (len >= 8) {
        proto_buf_reset(&b);
        proto_build_backend_key(&b, get_u32(data), get_u32(data + 4));
        FUZZ_CHECK(!b.failed && b.len == 13 && memcmp(b.data + 5, data, 8) == 0);
    }
    proto_buf_free(&b);
    for (size_t i = 0; i < n; i++)
        free(strs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t chunk = 1 + data[0] % 64;
    size_t cap = 1 + data[1] % 160;
    data += 2;
    size -= 2;

    fuzz_startup(data, size);
    fuzz_sql((const char *)data, size, cap);

    static framed msgs[MAX_FRAMED];
    proto_status end;
    size_t n = frame_whole(data, size, msgs, &end, cap);
    frame_chunked(data, size, chunk, msgs, n, end);

    fuzz_rows(data, size);
    return 0;
}
