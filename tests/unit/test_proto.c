/* test_proto.c: Check suites for proto/, the PostgreSQL v3 wire codec.
 *
 * Golden bytes are written out by hand from the protocol documentation
 * ("Message Formats"), never produced by the code under test. Every input is
 * copied into a heap block of exactly its size first, so that ASan reports any
 * read past the end of a view. Every message is also fed one prefix at a time
 * (split at every offset), alone and in a stream of several.
 *
 * A note on the literals: "\x19" "abc" is split on purpose, because a hex
 * escape swallows every hex digit that follows it; likewise "\0" before a
 * digit. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* A string literal as a byte view (without the literal's own final NUL). */
#define GOLD(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* ---- helpers ---- */

static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static void ck_bytes_eq(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    size_t n = got_len < want_len ? got_len : want_len;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(got[i] == want[i], "byte %zu: got 0x%02x want 0x%02x (got_len %zu want_len %zu)",
                      i, got[i], want[i], got_len, want_len);
    }
    ck_assert_msg(got_len == want_len, "length: got %zu want %zu", got_len, want_len);
}

static void ck_buf_eq(const proto_buf *b, const uint8_t *want, size_t want_len)
{
    ck_assert(!b->failed);
    ck_bytes_eq(b->data, b->len, want, want_len);
}

/* A message view over a heap copy of body (exactly body_len bytes). The copy
 * is returned through *owned for the caller to free. */
static proto_msg msg_of(uint8_t type, const uint8_t *body, size_t body_len, uint8_t **owned)
{
    *owned = dup_exact(body, body_len);
    proto_msg m = {.type = type, .body = *owned, .body_len = (uint32_t)body_len,
                   .total_len = body_len + 5};
    return m;
}

/* buf holds exactly one regular message of n bytes. Feed every prefix and
 * check NEED_MORE with the right need until the last byte, then COMPLETE. */
static void check_msg_splits(const uint8_t *buf, size_t n)
{
    for (size_t k = 0; k <= n; k++) {
        uint8_t *p = dup_exact(buf, k);
        proto_msg m;
        size_t need = 0;
        const char *why = NULL;
        proto_status st = proto_read_msg(p, k, 1u << 20, &m, &need, &why);
        if (k < n) {
            ck_assert_msg(st == PROTO_NEED_MORE, "prefix %zu of %zu: %s", k, n,
                          proto_status_to_str(st));
            ck_assert_uint_eq(need, k < 5 ? 5 : n);
            ck_assert_uint_gt(need, k);
        } else {
            ck_assert_msg(st == PROTO_COMPLETE, "whole %zu: %s (%s)", n,
                          proto_status_to_str(st), why ? why : "");
            ck_assert_uint_eq(m.total_len, n);
            ck_assert_uint_eq(m.type, buf[0]);
            ck_assert_uint_eq(m.body_len, n - 5);
            ck_assert_ptr_eq(m.body, p + 5);
        }
        free(p);
    }
}

/* Read one message that must be complete and exactly n bytes. */
static proto_msg read_one(const uint8_t *buf, size_t n)
{
    proto_msg m;
    size_t need = 0;
    const char *why = NULL;
    proto_status st = proto_read_msg(buf, n, 1u << 20, &m, &need, &why);
    ck_assert_msg(st == PROTO_COMPLETE, "read_one: %s (%s)", proto_status_to_str(st),
                  why ? why : "");
    ck_assert_uint_eq(m.total_len, n);
    return m;
}

/* Build a startup-style packet: code, then name/value pairs, terminator. */
static void build_startup(proto_buf *b, uint32_t code, size_t n, const char *const *kv)
{
    proto_buf_begin(b, 0);
    proto_buf_put_i32(b, (int32_t)code);
    for (size_t i = 0; i < 2 * n; i++)
        proto_buf_put_str(b, kv[i]);
    proto_buf_put_u8(b, 0);
    proto_buf_end(b);
}

static proto_status startup_of(const uint8_t *buf, size_t n, proto_startup *s, size_t *need,
                               const char **why, uint8_t **owned)
{
    *owned = dup_exact(buf, n);
    return proto_read_startup(*owned, n, s, need, why);
}

/* ---- golden messages (hand-written from the spec) ---- */

static const char g_auth_ok[] = "R" "\0\0\0\x08" "\0\0\0\0";
static const char g_auth_md5[] = "R" "\0\0\0\x0c" "\0\0\0\x05" "\x01\x02\x03\x04";
static const char g_auth_sasl[] = "R" "\0\0\0\x17" "\0\0\0\x0a" "SCRAM-SHA-256\0" "\0";
static const char g_param[] = "S" "\0\0\0\x19" "client_encoding\0" "UTF8\0";
static const char g_key[] = "K" "\0\0\0\x0c" "\x01\x02\x03\x04" "\xde\xad\xbe\xef";
static const char g_ready_i[] = "Z" "\0\0\0\x05" "I";
static const char g_ready_t[] = "Z" "\0\0\0\x05" "T";
static const char g_ready_e[] = "Z" "\0\0\0\x05" "E";
static const char g_error[] = "E" "\0\0\0\x2c"
                              "SFATAL\0" "VFATAL\0" "C53300\0" "Mtoo many clients\0" "\0";
static const char g_error_d[] = "E" "\0\0\0\x2f"
                                "SFATAL\0" "VFATAL\0" "C53300\0" "Mtoo many clients\0"
                                "Dx\0" "\0";
static const char g_notice[] = "N" "\0\0\0\x27"
                               "SWARNING\0" "VWARNING\0" "C01000\0" "Mcareful\0" "\0";
static const char g_query[] = "Q" "\0\0\0\x0d" "SELECT 1\0";
static const char g_cc[] = "C" "\0\0\0\x0d" "SELECT 1\0";
static const char g_empty_query[] = "I" "\0\0\0\x04";
static const char g_terminate[] = "X" "\0\0\0\x04";
static const char g_sync[] = "S" "\0\0\0\x04";
static const char g_rowdesc[] = "T" "\0\0\0\x2f" "\0\x02"
                                "a\0" "\0\0\0\0" "\0\0" "\0\0\0\x19" "\xff\xff" "\xff\xff\xff\xff" "\0\0"
                                "bc\0" "\0\0\0\0" "\0\0" "\0\0\0\x19" "\xff\xff" "\xff\xff\xff\xff" "\0\0";
static const char g_rowdesc0[] = "T" "\0\0\0\x06" "\0\0";
static const char g_datarow[] = "D" "\0\0\0\x13" "\0\x03"
                                "\0\0\0\x01" "1" "\xff\xff\xff\xff" "\0\0\0\0";
static const char g_datarow0[] = "D" "\0\0\0\x06" "\0\0";
static const char g_parse[] = "P" "\0\0\0\x17" "s1\0" "SELECT $1\0" "\0\x01" "\0\0\0\x17";
static const char g_parse0[] = "P" "\0\0\0\x10" "\0" "SELECT 1\0" "\0\0";
static const char g_close_s[] = "C" "\0\0\0\x08" "Ss1\0";
static const char g_close_p[] = "C" "\0\0\0\x06" "P\0";
/* Bind of s1 to the unnamed portal: formats (text, text, binary), values
 * '42', NULL and int4 42, one result format (binary). */
static const char g_bind[] = "B"
                             "\0\0\0\x28"
                             "\0"
                             "s1\0"
                             "\0\x03"
                             "\0\0"
                             "\0\0"
                             "\0\x01"
                             "\0\x03"
                             "\0\0\0\x02"
                             "42"
                             "\xff\xff\xff\xff"
                             "\0\0\0\x04"
                             "\0\0\0\x2a"
                             "\0\x01"
                             "\0\x01";

/* psql 15 connecting as alice to app: user, database, application_name,
 * client_encoding, in libpq's order. 8 + 5+6 + 9+4 + 17+5 + 16+5 + 1 = 76. */
static const char g_psql_startup[] = "\0\0\0\x4c" "\0\x03\0\0"
                                     "user\0" "alice\0" "database\0" "app\0"
                                     "application_name\0" "psql\0"
                                     "client_encoding\0" "UTF8\0" "\0";
static const char g_ssl_request[] = "\0\0\0\x08" "\x04\xd2\x16\x2f";
static const char g_gss_request[] = "\0\0\0\x08" "\x04\xd2\x16\x30";
static const char g_cancel[] = "\0\0\0\x10" "\x04\xd2\x16\x2e" "\0\0\x30\x39" "\xca\xfe\xba\xbe";

/* ======================= framing ======================= */

START_TEST(test_read_msg_golden)
{
    uint8_t *p = dup_exact(GOLD(g_ready_i));
    proto_msg m;
    size_t need = 12345;
    ck_assert_int_eq(proto_read_msg(p, 6, 1024, &m, &need, NULL), PROTO_COMPLETE);
    ck_assert_uint_eq(m.type, 'Z');
    ck_assert_uint_eq(m.body_len, 1);
    ck_assert_uint_eq(m.body[0], 'I');
    ck_assert_uint_eq(m.total_len, 6);
    ck_assert_uint_eq(need, 12345); /* untouched on COMPLETE */
    free(p);
}
END_TEST

START_TEST(test_read_msg_empty_body)
{
    uint8_t *p = dup_exact(GOLD(g_sync));
    proto_msg m;
    ck_assert_int_eq(proto_read_msg(p, 5, 1024, &m, NULL, NULL), PROTO_COMPLETE);
    ck_assert_uint_eq(m.type, 'S');
    ck_assert_uint_eq(m.body_len, 0);
    ck_assert_uint_eq(m.total_len, 5);
    free(p);
}
END_TEST

START_TEST(test_read_msg_trailing_bytes_ignored)
{
    /* A complete message followed by the start of the next one. */
    static const char two[] = "Z" "\0\0\0\x05" "I" "Q\0";
    uint8_t *p = dup_exact(GOLD(two));
    proto_msg m;
    ck_assert_int_eq(proto_read_msg(p, sizeof two - 1, 1024, &m, NULL, NULL), PROTO_COMPLETE);
    ck_assert_uint_eq(m.total_len, 6);
    free(p);
}
END_TEST

START_TEST(test_read_msg_type_not_validated)
{
    static const char odd[] = "\0" "\0\0\0\x05" "x";
    static const char high[] = "\xff" "\0\0\0\x04";
    uint8_t *p = dup_exact(GOLD(odd));
    proto_msg m;
    ck_assert_int_eq(proto_read_msg(p, 6, 1024, &m, NULL, NULL), PROTO_COMPLETE);
    ck_assert_uint_eq(m.type, 0);
    free(p);
    p = dup_exact(GOLD(high));
    ck_assert_int_eq(proto_read_msg(p, 5, 1024, &m, NULL, NULL), PROTO_COMPLETE);
    ck_assert_uint_eq(m.type, 0xff);
    free(p);
}
END_TEST

START_TEST(test_read_msg_null_outputs)
{
    uint8_t *p = dup_exact(GOLD(g_query));
    ck_assert_int_eq(proto_read_msg(p, 3, 1024, NULL, NULL, NULL), PROTO_NEED_MORE);
    ck_assert_int_eq(proto_read_msg(p, 10, 1024, NULL, NULL, NULL), PROTO_NEED_MORE);
    ck_assert_int_eq(proto_read_msg(p, sizeof g_query - 1, 1024, NULL, NULL, NULL),
                     PROTO_COMPLETE);
    free(p);
    static const char bad[] = "Q" "\0\0\0\x03";
    p = dup_exact(GOLD(bad));
    ck_assert_int_eq(proto_read_msg(p, 5, 1024, NULL, NULL, NULL), PROTO_INVALID);
    free(p);
}
END_TEST

START_TEST(test_read_msg_zero_length_buffer)
{
    size_t need = 0;
    ck_assert_int_eq(proto_read_msg(NULL, 0, 1024, NULL, &need, NULL), PROTO_NEED_MORE);
    ck_assert_uint_eq(need, 5);
}
END_TEST

/* Lengths 0..3 cannot even cover the length field itself. */
START_TEST(test_read_msg_short_length)
{
    for (uint8_t l = 0; l < 4; l++) {
        uint8_t raw[5] = {'Q', 0, 0, 0, l};
        uint8_t *p = dup_exact(raw, 5);
        const char *why = NULL;
        size_t need = 777;
        ck_assert_int_eq(proto_read_msg(p, 5, 1024, NULL, &need, &why), PROTO_INVALID);
        ck_assert_str_eq(why, "invalid message length");
        why = NULL;
        ck_assert_int_eq(proto_read_header(p, 5, 1024, NULL, NULL, &why), PROTO_INVALID);
        ck_assert_str_eq(why, "invalid message length");
        free(p);
    }
    /* A negative length, read as int32, is a huge one as uint32: too large. */
    static const char neg[] = "Q" "\xff\xff\xff\xff";
    uint8_t *p = dup_exact(GOLD(neg));
    const char *why = NULL;
    ck_assert_int_eq(proto_read_msg(p, 5, 1024, NULL, NULL, &why), PROTO_INVALID);
    ck_assert_str_eq(why, "message too large");
    free(p);
}
END_TEST

START_TEST(test_read_msg_huge_length)
{
    /* A 2 GB length prefix must be refused from the header alone, without
     * waiting for (or allocating) 2 GB. */
    static const char huge[] = "D" "\x80\0\0\0";
    uint8_t *p = dup_exact(GOLD(huge));
    const char *why = NULL;
    size_t need = 0;
    ck_assert_int_eq(proto_read_msg(p, 5, 1u << 30, NULL, &need, &why), PROTO_INVALID);
    ck_assert_str_eq(why, "message too large");
    uint8_t type = 0;
    size_t total = 0;
    why = NULL;
    ck_assert_int_eq(proto_read_header(p, 5, 1u << 30, &type, &total, &why), PROTO_INVALID);
    ck_assert_str_eq(why, "message too large");
    free(p);

    static const char big[] = "D" "\x7f\xff\xff\xff";
    p = dup_exact(GOLD(big));
    ck_assert_int_eq(proto_read_msg(p, 5, 8192, NULL, NULL, &why), PROTO_INVALID);
    ck_assert_str_eq(why, "message too large");
    free(p);
}
END_TEST

START_TEST(test_read_msg_max_len_boundary)
{
    /* length field == max_len is fine, max_len + 1 is not. */
    uint8_t raw[5] = {'d', 0, 0, 0x10, 0x00}; /* 4096 */
    size_t need = 0;
    const char *why = NULL;
    ck_assert_int_eq(proto_read_msg(raw, 5, 4096, NULL, &need, &why), PROTO_NEED_MORE);
    ck_assert_uint_eq(need, 4097);
    ck_assert_int_eq(proto_read_msg(raw, 5, 4095, NULL, &need, &why), PROTO_INVALID);
    ck_assert_str_eq(why, "message too large");
    /* max_len smaller than 4 refuses everything. */
    uint8_t four[5] = {'S', 0, 0, 0, 4};
    ck_assert_int_eq(proto_read_msg(four, 5, 3, NULL, NULL, &why), PROTO_INVALID);
    ck_assert_int_eq(proto_read_msg(four, 5, 4, NULL, NULL, &why), PROTO_COMPLETE);
}
END_TEST

START_TEST(test_read_msg_max_uint32)
{
    /* With no limit at all, the largest length is still framed correctly. */
    uint8_t raw[5] = {'d', 0xff, 0xff, 0xff, 0xff};
    size_t need = 0;
    const char *why = NULL;
#if SIZE_MAX > UINT32_MAX
    ck_assert_int_eq(proto_read_msg(raw, 5, UINT32_MAX, NULL, &need, &why), PROTO_NEED_MORE);
    ck_assert_uint_eq(need, (size_t)UINT32_MAX + 1);
#else
    ck_assert_int_eq(proto_read_msg(raw, 5, UINT32_MAX, NULL, &need, &why), PROTO_INVALID);
#endif
}
END_TEST

START_TEST(test_read_header)
{
    uint8_t *p = dup_exact(GOLD(g_error));
    uint8_t type = 0;
    size_t total = 0;
    for (size_t k = 0; k < 5; k++)
        ck_assert_int_eq(proto_read_header(p, k, 1024, &type, &total, NULL), PROTO_NEED_MORE);
    /* The header alone is enough: the body need not be there. */
    for (size_t k = 5; k <= sizeof g_error - 1; k++) {
        type = 0;
        total = 0;
        ck_assert_int_eq(proto_read_header(p, k, 1024, &type, &total, NULL), PROTO_COMPLETE);
        ck_assert_uint_eq(type, 'E');
        ck_assert_uint_eq(total, sizeof g_error - 1);
    }
    ck_assert_int_eq(proto_read_header(p, 5, 1024, NULL, NULL, NULL), PROTO_COMPLETE);
    free(p);
}
END_TEST

START_TEST(test_read_frontend_header)
{
    /* Every type PostgresMain takes from a logged-in frontend passes. */
    const char *ok = "QPBEFCDHSXdcf";
    for (const char *t = ok; *t; t++) {
        uint8_t m[5] = {(uint8_t)*t, 0, 0, 0, 4};
        uint8_t type = 0;
        size_t total = 0;
        ck_assert_int_eq(proto_read_frontend_header(m, 5, 1024, &type, &total, NULL), PROTO_COMPLETE);
        ck_assert_uint_eq(type, (uint8_t)*t);
        ck_assert_uint_eq(total, 5);
    }
    /* Others are refused from the type byte alone, as PostgreSQL words it. */
    const uint8_t bad[] = {0, 'p', 'Z', 'E' + 32, '!', 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t m[5] = {bad[i], 0, 0, 0, 4};
        const char *why = NULL;
        char expect[48];
        snprintf(expect, sizeof expect, "invalid frontend message type %d", bad[i]);
        ck_assert_int_eq(proto_read_frontend_header(m, 1, 1024, NULL, NULL, &why), PROTO_INVALID);
        ck_assert_str_eq(why, expect);
        ck_assert_int_eq(proto_read_frontend_header(m, 5, 1024, NULL, NULL, &why), PROTO_INVALID);
    }
    /* The length is still checked, and an empty view needs more. */
    uint8_t huge[5] = {'Q', 0x80, 0, 0, 0};
    ck_assert_int_eq(proto_read_frontend_header(huge, 5, 1u << 30, NULL, NULL, NULL), PROTO_INVALID);
    ck_assert_int_eq(proto_read_frontend_header(huge, 0, 1u << 30, NULL, NULL, NULL), PROTO_NEED_MORE);
}
END_TEST

static const struct golden {
    const char *name;
    const char *bytes;
    size_t len;
} goldens[] = {
#define G(x) {#x, x, sizeof(x) - 1}
    G(g_auth_ok), G(g_auth_md5), G(g_auth_sasl), G(g_param),       G(g_key),
    G(g_ready_i), G(g_ready_t),  G(g_ready_e),   G(g_error),       G(g_error_d),
    G(g_notice),  G(g_query),    G(g_cc),        G(g_empty_query), G(g_terminate),
    G(g_sync),    G(g_rowdesc),  G(g_rowdesc0),  G(g_datarow),     G(g_datarow0),
    G(g_parse),   G(g_parse0),   G(g_close_s),   G(g_close_p),     G(g_bind),
#undef G
};
#define N_GOLDENS (sizeof goldens / sizeof goldens[0])

/* Every golden message, split at every offset. */
START_TEST(test_read_msg_split_every_offset)
{
    const struct golden *g = &goldens[_i];
    check_msg_splits((const uint8_t *)g->bytes, g->len);
}
END_TEST

/* Frame a byte stream of several messages: every prefix of the stream yields
 * exactly the messages that end inside it, in order, then NEED_MORE with the
 * right need; the whole stream frames back to exactly the messages. */
static void check_stream(const uint8_t *stream, size_t n, const size_t *ends, size_t n_msgs)
{
    for (size_t k = 0; k <= n; k++) {
        uint8_t *p = dup_exact(stream, k);
        size_t off = 0, i = 0;
        for (;;) {
            proto_msg m;
            size_t need = 0;
            const char *why = NULL;
            proto_status st = proto_read_msg(p + off, k - off, 1u << 20, &m, &need, &why);
            if (st == PROTO_COMPLETE) {
                ck_assert_uint_lt(i, n_msgs);
                size_t start = i ? ends[i - 1] : 0;
                ck_assert_uint_eq(off, start);
                ck_assert_uint_eq(off + m.total_len, ends[i]);
                ck_assert_uint_eq(m.type, stream[start]);
                ck_assert_ptr_eq(m.body, p + start + 5);
                ck_assert_uint_eq(m.body_len, ends[i] - start - 5);
                off += m.total_len;
                i++;
                continue;
            }
            ck_assert_msg(st == PROTO_NEED_MORE, "prefix %zu at %zu: %s (%s)", k, off,
                          proto_status_to_str(st), why ? why : "");
            /* Every message ending within the prefix was framed. */
            size_t framed = 0;
            while (framed < n_msgs && ends[framed] <= k)
                framed++;
            ck_assert_uint_eq(i, framed);
            size_t start = i ? ends[i - 1] : 0;
            ck_assert_uint_eq(off, start);
            size_t rest = k - off;
            if (rest < 5)
                ck_assert_uint_eq(need, 5);
            else
                ck_assert_uint_eq(need, ends[i] - start);
            ck_assert_uint_gt(need, rest);
            break;
        }
        if (k == n)
            ck_assert_uint_eq(i, n_msgs);
        free(p);
    }
}

START_TEST(test_read_msg_stream_of_goldens)
{
    proto_buf b;
    proto_buf_init(&b);
    size_t ends[N_GOLDENS];
    for (size_t i = 0; i < N_GOLDENS; i++) {
        proto_buf_append(&b, goldens[i].bytes, goldens[i].len);
        ends[i] = b.len;
    }
    ck_assert(!b.failed);
    check_stream(b.data, b.len, ends, N_GOLDENS);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_read_msg_stream_of_built)
{
    /* What a server sends after authentication, built by the builders. */
    proto_buf b;
    proto_buf_init(&b);
    size_t ends[16];
    size_t n = 0;
    proto_build_auth_ok(&b);
    ends[n++] = b.len;
    proto_build_param_status(&b, "server_version", "15.4");
    ends[n++] = b.len;
    proto_build_param_status(&b, "client_encoding", "UTF8");
    ends[n++] = b.len;
    proto_build_backend_key(&b, 4242, 0x12345678);
    ends[n++] = b.len;
    proto_build_ready(&b, 'I');
    ends[n++] = b.len;
    const char *cols[] = {"?column?"};
    proto_build_row_description(&b, 1, cols);
    ends[n++] = b.len;
    const char *vals[] = {"1"};
    proto_build_data_row(&b, 1, vals);
    ends[n++] = b.len;
    proto_build_command_complete(&b, "SELECT 1");
    ends[n++] = b.len;
    proto_build_ready(&b, 'I');
    ends[n++] = b.len;
    proto_build_empty_query(&b);
    ends[n++] = b.len;
    ck_assert(!b.failed);
    check_stream(b.data, b.len, ends, n);
    proto_buf_free(&b);
}
END_TEST

/* ======================= startup ======================= */

START_TEST(test_startup_psql)
{
    proto_startup s;
    size_t need = 0;
    const char *why = NULL;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(g_psql_startup), &s, &need, &why, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, PROTO_VERSION_3);
    ck_assert_uint_eq(s.total_len, 76);
    ck_assert_uint_eq(s.n_params, 4);
    ck_assert_str_eq(s.names[0], "user");
    ck_assert_str_eq(s.values[0], "alice");
    ck_assert_str_eq(s.names[1], "database");
    ck_assert_str_eq(s.values[1], "app");
    ck_assert_str_eq(s.names[2], "application_name");
    ck_assert_str_eq(s.values[2], "psql");
    ck_assert_str_eq(s.names[3], "client_encoding");
    ck_assert_str_eq(s.values[3], "UTF8");
    /* Borrowed: pointers into the caller's buffer. */
    ck_assert_ptr_eq(s.names[0], (const char *)p + 8);
    ck_assert_ptr_eq(s.values[0], (const char *)p + 13);
    ck_assert_str_eq(proto_startup_get(&s, "user"), "alice");
    ck_assert_str_eq(proto_startup_get(&s, "database"), "app");
    ck_assert_str_eq(proto_startup_get(&s, "client_encoding"), "UTF8");
    ck_assert_ptr_null(proto_startup_get(&s, "options"));
    ck_assert_ptr_null(proto_startup_get(&s, "User")); /* case-sensitive */
    ck_assert_ptr_null(proto_startup_get(&s, ""));
    free(p);
}
END_TEST

START_TEST(test_startup_psql_built_matches_golden)
{
    proto_buf b;
    proto_buf_init(&b);
    const char *kv[] = {"user", "alice", "database", "app", "application_name", "psql",
                        "client_encoding", "UTF8"};
    build_startup(&b, PROTO_VERSION_3, 4, kv);
    ck_buf_eq(&b, GOLD(g_psql_startup));
    proto_buf_free(&b);
}
END_TEST

/* Feed every prefix of a startup-phase packet: need 4 until the length word
 * is in, then the packet length, then COMPLETE. */
static void check_startup_splits(const uint8_t *buf, size_t n)
{
    for (size_t k = 0; k <= n; k++) {
        proto_startup s;
        size_t need = 0;
        const char *why = NULL;
        uint8_t *p;
        proto_status st = startup_of(buf, k, &s, &need, &why, &p);
        if (k < n) {
            ck_assert_msg(st == PROTO_NEED_MORE, "prefix %zu of %zu: %s (%s)", k, n,
                          proto_status_to_str(st), why ? why : "");
            ck_assert_uint_eq(need, k < 4 ? 4 : n);
        } else {
            ck_assert_msg(st == PROTO_COMPLETE, "whole: %s", why ? why : "");
            ck_assert_uint_eq(s.total_len, n);
        }
        free(p);
    }
}

START_TEST(test_startup_split_every_offset)
{
    check_startup_splits(GOLD(g_psql_startup));
    check_startup_splits(GOLD(g_ssl_request));
    check_startup_splits(GOLD(g_gss_request));
    check_startup_splits(GOLD(g_cancel));
}
END_TEST

START_TEST(test_startup_then_more_bytes)
{
    /* An SSLRequest followed by the client's TLS hello (or anything): only
     * the first 8 bytes are the packet. */
    static const char buf[] = "\0\0\0\x08" "\x04\xd2\x16\x2f" "\x16\x03\x01";
    proto_startup s;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(buf), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, PROTO_SSL_REQUEST);
    ck_assert_uint_eq(s.total_len, 8);
    free(p);
}
END_TEST

START_TEST(test_startup_ssl_gss_cancel)
{
    proto_startup s;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(g_ssl_request), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, PROTO_SSL_REQUEST);
    ck_assert_uint_eq(s.n_params, 0);
    free(p);
    ck_assert_int_eq(startup_of(GOLD(g_gss_request), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, PROTO_GSSENC_REQUEST);
    free(p);
    ck_assert_int_eq(startup_of(GOLD(g_cancel), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, PROTO_CANCEL_REQUEST);
    ck_assert_uint_eq(s.total_len, 16);
    ck_assert_uint_eq(s.cancel_pid, 12345);
    ck_assert_uint_eq(s.cancel_key, 0xcafebabeu);
    ck_assert_uint_eq(s.n_params, 0);
    free(p);
    /* The constants are the documented codes. */
    ck_assert_uint_eq(PROTO_SSL_REQUEST, (1234u << 16) | 5679u);
    ck_assert_uint_eq(PROTO_GSSENC_REQUEST, (1234u << 16) | 5680u);
    ck_assert_uint_eq(PROTO_CANCEL_REQUEST, (1234u << 16) | 5678u);
    ck_assert_uint_eq(PROTO_VERSION_3, 3u << 16);
}
END_TEST

START_TEST(test_startup_request_wrong_length)
{
    struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"\0\0\0\x10" "\x04\xd2\x16\x2f" "\0\0\0\0" "\0\0\0\0", 16,
         "invalid length of SSL request packet"},
        {"\0\0\0\x09" "\x04\xd2\x16\x2f" "\0", 9, "invalid length of SSL request packet"},
        {"\0\0\0\x0c" "\x04\xd2\x16\x30" "\0\0\0\0", 12,
         "invalid length of GSSENC request packet"},
        {"\0\0\0\x0c" "\x04\xd2\x16\x2e" "\0\0\0\x01", 12,
         "invalid length of cancel request packet"},
        {"\0\0\0\x08" "\x04\xd2\x16\x2e", 8, "invalid length of cancel request packet"},
        {"\0\0\0\x14" "\x04\xd2\x16\x2e" "\0\0\0\x01" "\0\0\0\x02" "\0\0\0\0", 20,
         "invalid length of cancel request packet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Refused as soon as the length and code are in, and after. */
        for (size_t k = 8; k <= cases[i].len; k++) {
            proto_startup s;
            const char *why = NULL;
            uint8_t *p;
            ck_assert_int_eq(startup_of((const uint8_t *)cases[i].bytes, k, &s, NULL, &why, &p),
                             PROTO_INVALID);
            ck_assert_str_eq(why, cases[i].why);
            free(p);
        }
    }
}
END_TEST

START_TEST(test_startup_bad_length)
{
    static const char *const lens[] = {
        "\0\0\0\0", "\0\0\0\x04", "\0\0\0\x07", "\0\0\x27\x11" /* 10001 */,
        "\x7f\xff\xff\xff", "\xff\xff\xff\xff", "\x80\0\0\0",
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        proto_startup s;
        const char *why = NULL;
        size_t need = 0;
        uint8_t *p;
        /* Decided from the length word alone. */
        ck_assert_int_eq(startup_of((const uint8_t *)lens[i], 4, &s, &need, &why, &p),
                         PROTO_INVALID);
        ck_assert_str_eq(why, "invalid length of startup packet");
        free(p);
    }
}
END_TEST

START_TEST(test_startup_max_size)
{
    /* A packet of exactly PROTO_MAX_STARTUP bytes is accepted; one more is not.
     * 8 + "user\0alice\0" (11) + "options\0" (8) + value + NUL + terminator. */
    size_t vlen = PROTO_MAX_STARTUP - 8 - 11 - 8 - 1 - 1;
    char *value = malloc(vlen + 1);
    memset(value, 'x', vlen);
    value[vlen] = '\0';
    const char *kv[] = {"user", "alice", "options", value};
    proto_buf b;
    proto_buf_init(&b);
    build_startup(&b, PROTO_VERSION_3, 2, kv);
    ck_assert(!b.failed);
    ck_assert_uint_eq(b.len, PROTO_MAX_STARTUP);
    proto_startup s;
    const char *why = NULL;
    uint8_t *p;
    ck_assert_int_eq(startup_of(b.data, b.len, &s, NULL, &why, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(strlen(proto_startup_get(&s, "options")), vlen);
    free(p);

    value[vlen] = 'x';
    value = realloc(value, vlen + 2);
    value[vlen + 1] = '\0';
    kv[3] = value;
    proto_buf_reset(&b);
    build_startup(&b, PROTO_VERSION_3, 2, kv);
    ck_assert_uint_eq(b.len, PROTO_MAX_STARTUP + 1);
    size_t need = 0;
    ck_assert_int_eq(startup_of(b.data, 4, &s, &need, &why, &p), PROTO_INVALID);
    ck_assert_str_eq(why, "invalid length of startup packet");
    free(p);
    ck_assert_int_eq(startup_of(b.data, b.len, &s, &need, &why, &p), PROTO_INVALID);
    free(p);
    free(value);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_startup_bad_version)
{
    struct {
        const char *code;
        const char *why;
    } cases[] = {
        {"\0\x02\0\0", "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"},
        {"\0\x04\0\0", "unsupported frontend protocol 4.0: server supports 3.0 to 3.0"},
        {"\0\x01\0\x05", "unsupported frontend protocol 1.5: server supports 3.0 to 3.0"},
        {"\0\0\0\0", "unsupported frontend protocol 0.0: server supports 3.0 to 3.0"},
        {"\x04\xd2\x16\x31", "unsupported frontend protocol 1234.5681: server supports 3.0 to 3.0"},
        {"\xff\xff\xff\xff", "unsupported frontend protocol 65535.65535: server supports 3.0 to 3.0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t raw[18];
        memcpy(raw, "\0\0\0\x12", 4);
        memcpy(raw + 4, cases[i].code, 4);
        memcpy(raw + 8, "user\0" "bob\0" "\0", 10);
        /* Refused once the code is in, without waiting for the rest. */
        for (size_t k = 8; k <= sizeof raw; k++) {
            proto_startup s;
            const char *why = NULL;
            uint8_t *p;
            ck_assert_int_eq(startup_of(raw, k, &s, NULL, &why, &p), PROTO_INVALID);
            ck_assert_str_eq(why, cases[i].why);
            free(p);
        }
    }
}
END_TEST

START_TEST(test_startup_minor_version_accepted)
{
    static const char buf[] = "\0\0\0\x12" "\0\x03\0\x02" "user\0" "bob\0" "\0";
    proto_startup s;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(buf), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, 0x00030002u);
    ck_assert_str_eq(proto_startup_get(&s, "user"), "bob");
    free(p);
    /* _pq_ protocol options pass through as ordinary parameters. */
    static const char opt[] = "\0\0\0\x24" "\0\x03\0\x01" "user\0" "bob\0"
                              "_pq_.something\0" "on\0" "\0";
    ck_assert_int_eq(startup_of(GOLD(opt), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.code, 0x00030001u);
    ck_assert_str_eq(proto_startup_get(&s, "_pq_.something"), "on");
    free(p);
}
END_TEST

START_TEST(test_startup_missing_user)
{
    struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        /* only a terminator */
        {"\0\0\0\x09" "\0\x03\0\0" "\0", 9},
        /* database but no user */
        {"\0\0\0\x16" "\0\x03\0\0" "database\0" "app\0" "\0", 22},
        /* empty user */
        {"\0\0\0\x0f" "\0\x03\0\0" "user\0" "\0" "\0", 15},
        /* "users" is not "user" */
        {"\0\0\0\x13" "\0\x03\0\0" "users\0" "bob\0" "\0", 19},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_startup s;
        const char *why = NULL;
        uint8_t *p;
        ck_assert_int_eq(startup_of((const uint8_t *)cases[i].bytes, cases[i].len, &s, NULL,
                                    &why, &p),
                         PROTO_INVALID);
        ck_assert_str_eq(why, "no PostgreSQL user name specified in startup packet");
        free(p);
    }
}
END_TEST

START_TEST(test_startup_bad_layout)
{
    struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        /* no terminator at all: empty parameter list */
        {"\0\0\0\x08" "\0\x03\0\0", 8},
        /* name unterminated */
        {"\0\0\0\x0a" "\0\x03\0\0" "us", 10},
        /* name without a value */
        {"\0\0\0\x0d" "\0\x03\0\0" "user\0", 13},
        /* value unterminated */
        {"\0\0\0\x10" "\0\x03\0\0" "user\0" "bob", 16},
        /* missing final terminator */
        {"\0\0\0\x11" "\0\x03\0\0" "user\0" "bob\0", 17},
        /* bytes after the terminator */
        {"\0\0\0\x13" "\0\x03\0\0" "user\0" "bob\0" "\0" "x", 19},
        {"\0\0\0\x13" "\0\x03\0\0" "user\0" "bob\0" "\0" "\0", 19},
        /* a second pair unterminated */
        {"\0\0\0\x14" "\0\x03\0\0" "user\0" "bob\0" "abc", 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_startup s;
        const char *why = NULL;
        uint8_t *p;
        ck_assert_msg(startup_of((const uint8_t *)cases[i].bytes, cases[i].len, &s, NULL, &why,
                                 &p) == PROTO_INVALID,
                      "case %zu", i);
        ck_assert_ptr_nonnull(why);
        ck_assert_msg(strncmp(why, "invalid startup packet layout", 29) == 0, "case %zu: %s", i,
                      why);
        free(p);
    }
}
END_TEST

static void build_n_params(proto_buf *b, size_t n)
{
    /* user plus n - 1 others */
    proto_buf_begin(b, 0);
    proto_buf_put_i32(b, (int32_t)PROTO_VERSION_3);
    proto_buf_put_str(b, "user");
    proto_buf_put_str(b, "bob");
    for (size_t i = 1; i < n; i++) {
        char name[16], value[16];
        snprintf(name, sizeof name, "p%zu", i);
        snprintf(value, sizeof value, "v%zu", i);
        proto_buf_put_str(b, name);
        proto_buf_put_str(b, value);
    }
    proto_buf_put_u8(b, 0);
    proto_buf_end(b);
}

START_TEST(test_startup_too_many_params)
{
    proto_buf b;
    proto_buf_init(&b);
    build_n_params(&b, PROTO_MAX_STARTUP_PARAMS);
    proto_startup s;
    const char *why = NULL;
    uint8_t *p;
    ck_assert_int_eq(startup_of(b.data, b.len, &s, NULL, &why, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.n_params, PROTO_MAX_STARTUP_PARAMS);
    ck_assert_str_eq(proto_startup_get(&s, "p63"), "v63");
    free(p);

    proto_buf_reset(&b);
    build_n_params(&b, PROTO_MAX_STARTUP_PARAMS + 1);
    ck_assert_int_eq(startup_of(b.data, b.len, &s, NULL, &why, &p), PROTO_INVALID);
    ck_assert_str_eq(why, "too many parameters in startup packet");
    free(p);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_startup_duplicate_last_wins)
{
    static const char buf[] = "\0\0\0\x1b" "\0\x03\0\0" "user\0" "bob\0" "user\0" "eve\0" "\0";
    proto_startup s;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(buf), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_uint_eq(s.n_params, 2);
    ck_assert_str_eq(proto_startup_get(&s, "user"), "eve");
    free(p);
}
END_TEST

START_TEST(test_startup_empty_value_and_null_out)
{
    static const char buf[] = "\0\0\0\x1b" "\0\x03\0\0" "user\0" "bob\0" "options\0" "\0" "\0";
    proto_startup s;
    uint8_t *p;
    ck_assert_int_eq(startup_of(GOLD(buf), &s, NULL, NULL, &p), PROTO_COMPLETE);
    ck_assert_str_eq(proto_startup_get(&s, "options"), "");
    free(p);
    /* out may be NULL: only the verdict. */
    ck_assert_int_eq(startup_of(GOLD(buf), NULL, NULL, NULL, &p), PROTO_COMPLETE);
    free(p);
}
END_TEST

/* ======================= body parsers ======================= */

START_TEST(test_parse_error_postgres)
{
    /* An ErrorResponse body as PostgreSQL 15 sends it. */
    static const char body[] = "SERROR\0" "VERROR\0" "C42P01\0"
                               "Mrelation \"nope\" does not exist\0" "P15\0"
                               "Fparse_relation.c\0" "L1392\0" "RparserOpenTable\0" "\0";
    uint8_t *own;
    proto_msg m = msg_of('E', GOLD(body), &own);
    proto_error_fields f;
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "ERROR");
    ck_assert_str_eq(f.sqlstate, "42P01");
    ck_assert_str_eq(f.message, "relation \"nope\" does not exist");
    ck_assert_ptr_null(f.detail);
    ck_assert_ptr_null(f.hint);
    free(own);
}
END_TEST

START_TEST(test_parse_error_prefers_v)
{
    static const char body[] = "SFEHLER\0" "VERROR\0" "C42601\0" "MSyntaxfehler\0"
                               "Dmehr\0" "Hversuch es\0" "\0";
    uint8_t *own;
    proto_msg m = msg_of('E', GOLD(body), &own);
    proto_error_fields f;
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "ERROR");
    ck_assert_str_eq(f.detail, "mehr");
    ck_assert_str_eq(f.hint, "versuch es");
    free(own);
    /* V first, then S: still V. */
    static const char body2[] = "VFATAL\0" "SFATAL-LOCAL\0" "\0";
    m = msg_of('E', GOLD(body2), &own);
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "FATAL");
    free(own);
    /* Only S (servers before 9.6). */
    static const char body3[] = "SNOTICE\0" "C00000\0" "Mhi\0" "\0";
    m = msg_of('N', GOLD(body3), &own);
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "NOTICE");
    ck_assert_str_eq(f.message, "hi");
    free(own);
    /* No fields at all. */
    static const char body4[] = "\0";
    m = msg_of('E', GOLD(body4), &own);
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_ptr_null(f.severity);
    ck_assert_ptr_null(f.sqlstate);
    ck_assert_ptr_null(f.message);
    free(own);
}
END_TEST

START_TEST(test_parse_error_invalid)
{
    struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"", 0},                    /* empty body */
        {"SERROR", 6},              /* unterminated field */
        {"SERROR\0", 7},            /* no final zero */
        {"SERROR\0" "M", 8},        /* field type without a string */
        {"SERROR\0" "\0" "x", 9},   /* bytes after the end */
        {"S", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *own;
        proto_msg m = msg_of('E', (const uint8_t *)cases[i].bytes, cases[i].len, &own);
        proto_error_fields f;
        ck_assert_msg(proto_parse_error(&m, &f) == PROTO_INVALID, "case %zu", i);
        free(own);
    }
}
END_TEST

START_TEST(test_parse_param_status)
{
    uint8_t *own;
    proto_msg m = msg_of('S', GOLD("client_encoding\0" "UTF8\0"), &own);
    const char *name = NULL, *value = NULL;
    ck_assert_int_eq(proto_parse_param_status(&m, &name, &value), PROTO_COMPLETE);
    ck_assert_str_eq(name, "client_encoding");
    ck_assert_str_eq(value, "UTF8");
    ck_assert_ptr_eq(name, (const char *)own);
    free(own);
    m = msg_of('S', GOLD("search_path\0" "\0"), &own);
    ck_assert_int_eq(proto_parse_param_status(&m, &name, &value), PROTO_COMPLETE);
    ck_assert_str_eq(value, "");
    free(own);
    const char *bad[] = {"", "name", "name\0", "name\0" "value", "name\0" "v\0" "x"};
    size_t bad_len[] = {0, 4, 5, 10, 8};
    for (size_t i = 0; i < 5; i++) {
        m = msg_of('S', (const uint8_t *)bad[i], bad_len[i], &own);
        ck_assert_msg(proto_parse_param_status(&m, &name, &value) == PROTO_INVALID, "case %zu", i);
        free(own);
    }
}
END_TEST

START_TEST(test_parse_cstring)
{
    uint8_t *own;
    const char *s = NULL;
    proto_msg m = msg_of('Q', GOLD("SELECT 1\0"), &own);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_COMPLETE);
    ck_assert_str_eq(s, "SELECT 1");
    free(own);
    m = msg_of('Q', GOLD("\0"), &own);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_COMPLETE);
    ck_assert_str_eq(s, "");
    free(own);
    /* unterminated, empty, trailing bytes after the NUL */
    m = msg_of('Q', GOLD("SELECT 1"), &own);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_INVALID);
    free(own);
    m = msg_of('p', GOLD(""), &own);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_INVALID);
    free(own);
    m = msg_of('p', GOLD("secret\0" "x"), &own);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_INVALID);
    free(own);
    /* A view with no body at all. */
    proto_msg empty = {.type = 'Q', .body = NULL, .body_len = 0, .total_len = 5};
    ck_assert_int_eq(proto_parse_cstring(&empty, &s), PROTO_INVALID);
}
END_TEST

START_TEST(test_parse_parse)
{
    uint8_t *own;
    const char *stmt = NULL, *query = NULL;
    proto_msg m = read_one(GOLD(g_parse));
    own = dup_exact(m.body, m.body_len);
    m.body = own;
    ck_assert_int_eq(proto_parse_parse(&m, &stmt, &query), PROTO_COMPLETE);
    ck_assert_str_eq(stmt, "s1");
    ck_assert_str_eq(query, "SELECT $1");
    free(own);
    m = msg_of('P', GOLD("\0" "SELECT 1\0" "\0\0"), &own);
    ck_assert_int_eq(proto_parse_parse(&m, &stmt, &query), PROTO_COMPLETE);
    ck_assert_str_eq(stmt, "");
    ck_assert_str_eq(query, "SELECT 1");
    free(own);
    /* three parameter types, one unspecified (0) */
    m = msg_of('P', GOLD("q\0" "SELECT $1, $2, $3\0" "\0\x03" "\0\0\0\x17" "\0\0\0\0"
                         "\0\0\0\x19"), &own);
    ck_assert_int_eq(proto_parse_parse(&m, &stmt, &query), PROTO_COMPLETE);
    free(own);
    struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"s1\0" "SELECT 1\0", 12},                      /* missing count */
        {"s1\0" "SELECT 1\0" "\0", 13},                 /* half a count */
        {"s1\0" "SELECT 1\0" "\0\x01", 14},             /* count 1, no oid */
        {"s1\0" "SELECT 1\0" "\0\x01" "\0\0\0", 17},    /* truncated oid */
        {"s1\0" "SELECT 1\0" "\0\0" "x", 15},           /* trailing byte */
        {"s1\0" "SELECT 1", 11},                        /* unterminated query */
        {"s1", 2},                                      /* unterminated name */
        {"s1\0" "SELECT 1\0" "\xff\xff", 14},           /* count 65535, no oids */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = msg_of('P', (const uint8_t *)bad[i].bytes, bad[i].len, &own);
        ck_assert_msg(proto_parse_parse(&m, &stmt, &query) == PROTO_INVALID, "case %zu", i);
        free(own);
    }
}
END_TEST

static const char g_bind_body[] = "\0" "s1\0" "\0\x01" "\0\0" "\0\x02" "\0\0\0\x02" "42"
                                  "\xff\xff\xff\xff" "\0\x01" "\0\x01";

START_TEST(test_parse_bind)
{
    uint8_t *own;
    const char *portal = NULL, *stmt = NULL;
    proto_msg m = msg_of('B', GOLD(g_bind_body), &own);
    ck_assert_int_eq(proto_parse_bind(&m, &portal, &stmt), PROTO_COMPLETE);
    ck_assert_str_eq(portal, "");
    ck_assert_str_eq(stmt, "s1");
    free(own);
    /* The smallest Bind: unnamed everything, no formats, params or results. */
    m = msg_of('B', GOLD("\0" "\0" "\0\0" "\0\0" "\0\0"), &own);
    ck_assert_int_eq(proto_parse_bind(&m, &portal, &stmt), PROTO_COMPLETE);
    ck_assert_str_eq(portal, "");
    ck_assert_str_eq(stmt, "");
    free(own);
    /* An empty (not NULL) parameter. */
    m = msg_of('B', GOLD("p\0" "s\0" "\0\0" "\0\x01" "\0\0\0\0" "\0\0"), &own);
    ck_assert_int_eq(proto_parse_bind(&m, &portal, &stmt), PROTO_COMPLETE);
    ck_assert_str_eq(portal, "p");
    free(own);
    struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        /* parameter length -2 */
        {"\0" "\0" "\0\0" "\0\x01" "\xff\xff\xff\xfe" "\0\0", 12},
        /* parameter longer than the body */
        {"\0" "\0" "\0\0" "\0\x01" "\0\0\0\x09" "abc" "\0\0", 15},
        /* huge parameter length */
        {"\0" "\0" "\0\0" "\0\x01" "\x7f\xff\xff\xff" "\0\0", 12},
        /* two formats announced, one given */
        {"\0" "\0" "\0\x02" "\0\0" "\0\0" "\0\0", 10},
        /* missing result-format count */
        {"\0" "\0" "\0\0" "\0\0", 6},
        /* trailing byte */
        {"\0" "\0" "\0\0" "\0\0" "\0\0" "x", 9},
        /* unterminated statement name */
        {"\0" "s1", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = msg_of('B', (const uint8_t *)bad[i].bytes, bad[i].len, &own);
        ck_assert_msg(proto_parse_bind(&m, &portal, &stmt) == PROTO_INVALID, "case %zu", i);
        free(own);
    }
}
END_TEST

/* Values of a Bind, one by one. */
static void ck_value(const proto_bind *b, proto_bind_iter *it, bool binary, const char *data, int32_t len)
{
    proto_bind_value v;
    ck_assert(proto_bind_next(b, it, &v));
    ck_assert_int_eq(v.binary, binary);
    ck_assert_int_eq(v.len, len);
    if (!data)
        ck_assert_ptr_null(v.data);
    else
        ck_assert_mem_eq(v.data, data, (size_t)len);
}

START_TEST(test_parse_bind_params)
{
    proto_msg m = read_one(GOLD(g_bind));
    proto_bind b;
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    ck_assert_str_eq(b.portal, "");
    ck_assert_str_eq(b.stmt, "s1");
    ck_assert_uint_eq(b.n_formats, 3);
    ck_assert_ptr_eq(b.formats, m.body + 6);
    ck_assert_uint_eq(b.n_params, 3);
    ck_assert_ptr_eq(b.values, m.body + 14);
    ck_assert_uint_eq(b.n_result_formats, 1);
    proto_bind_iter it = {0};
    ck_value(&b, &it, false, "42", 2);
    ck_value(&b, &it, false, NULL, -1);
    ck_value(&b, &it, true, "\0\0\0\x2a", 4);
    proto_bind_value v;
    ck_assert(!proto_bind_next(&b, &it, &v));
    ck_assert(!proto_bind_next(&b, &it, &v));
    /* The names through the short form agree. */
    const char *portal, *stmt;
    ck_assert_int_eq(proto_parse_bind(&m, &portal, &stmt), PROTO_COMPLETE);
    ck_assert_ptr_eq(portal, b.portal);
    ck_assert_ptr_eq(stmt, b.stmt);

    /* One format code for all; an empty value is not NULL. */
    uint8_t *own;
    m = msg_of('B',
               GOLD("p\0"
                    "\0"
                    "\0\x01"
                    "\0\x01"
                    "\0\x02"
                    "\0\0\0\0"
                    "\0\0\0\x01"
                    "x"
                    "\0\0"),
               &own);
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    ck_assert_str_eq(b.portal, "p");
    it = (proto_bind_iter){0};
    ck_value(&b, &it, true, "", 0);
    ck_value(&b, &it, true, "x", 1);
    ck_assert(!proto_bind_next(&b, &it, &v));
    free(own);
    /* No format codes: all text; fewer codes than values (PostgreSQL's to
     * refuse): the rest count as text. */
    m = msg_of('B',
               GOLD("\0"
                    "\0"
                    "\0\0"
                    "\0\x01"
                    "\0\0\0\x01"
                    "y"
                    "\0\0"),
               &own);
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    it = (proto_bind_iter){0};
    ck_value(&b, &it, false, "y", 1);
    free(own);
    m = msg_of('B',
               GOLD("\0"
                    "\0"
                    "\0\x02"
                    "\0\x01"
                    "\0\x01"
                    "\0\x03"
                    "\0\0\0\x01"
                    "a"
                    "\0\0\0\x01"
                    "b"
                    "\0\0\0\x01"
                    "c"
                    "\0\0"),
               &own);
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    it = (proto_bind_iter){0};
    ck_value(&b, &it, true, "a", 1);
    ck_value(&b, &it, true, "b", 1);
    ck_value(&b, &it, false, "c", 1);
    free(own);
    /* A huge parameter count with nothing behind it, and a short value. */
    m = msg_of('B',
               GOLD("\0"
                    "\0"
                    "\0\0"
                    "\xff\xff"
                    "\0\0\0\x01"
                    "a"
                    "\0\0"),
               &own);
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_INVALID);
    free(own);
    m = msg_of('B',
               GOLD("\0"
                    "\0"
                    "\0\0"
                    "\0\x01"
                    "\0\0\0\x05"
                    "a"
                    "\0\0"),
               &own);
    ck_assert_int_eq(proto_parse_bind_params(&m, NULL), PROTO_INVALID);
    free(own);
}
END_TEST

/* A Bind body with these values (text format; NULL data = SQL NULL) and the
 * text of its parameters in a buffer of cap bytes. */
static void ck_params_text(size_t n, const char *const *vals, const int32_t *lens, uint16_t format,
                           size_t cap, const char *want)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_buf_begin(&pb, 'B');
    proto_buf_put_str(&pb, "");
    proto_buf_put_str(&pb, "");
    proto_buf_put_i16(&pb, 1);
    proto_buf_put_i16(&pb, (int16_t)format);
    proto_buf_put_i16(&pb, (int16_t)n);
    for (size_t i = 0; i < n; i++) {
        proto_buf_put_i32(&pb, vals[i] ? lens[i] : -1);
        if (vals[i]) proto_buf_put_bytes(&pb, vals[i], (size_t)lens[i]);
    }
    proto_buf_put_i16(&pb, 0);
    proto_buf_end(&pb);
    ck_assert(!pb.failed);
    uint8_t *own = dup_exact(pb.data, pb.len);
    proto_msg m = read_one(own, pb.len);
    proto_bind b;
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    char *out = malloc(cap ? cap : 1); /* exactly cap: ASan sees an overrun */
    size_t len = proto_bind_params_text(&b, out, cap);
    if (cap) {
        ck_assert_str_eq(out, want);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_uint_lt(len, cap);
    }
    free(out);
    free(own);
    proto_buf_free(&pb);
}

START_TEST(test_bind_params_text)
{
    /* The golden Bind: text, NULL, binary. */
    proto_msg m = read_one(GOLD(g_bind));
    proto_bind b;
    ck_assert_int_eq(proto_parse_bind_params(&m, &b), PROTO_COMPLETE);
    char out[256];
    ck_assert_uint_eq(proto_bind_params_text(&b, out, sizeof out), 30);
    ck_assert_str_eq(out, "('42', NULL, <binary 4 bytes>)");
    /* None, one. */
    ck_params_text(0, NULL, NULL, 0, 64, "()");
    const char *one[] = {"it's a \\ test"};
    const int32_t one_len[] = {13};
    ck_params_text(1, one, one_len, 0, 64, "('it\\'s a \\\\ test')");
    /* Control bytes, and a NUL inside a (binary-safe) text value. */
    const char *ctl[] = {"a\nb\rc\td\x01"
                         "e\x7f"
                         "f\0g"};
    const int32_t ctl_len[] = {13};
    ck_params_text(1, ctl, ctl_len, 0, 64, "('a\\nb\\rc\\td\\x01e\\x7ff\\x00g')");
    /* Binary for all. */
    ck_params_text(1, one, one_len, 1, 64, "(<binary 13 bytes>)");
    /* An empty value is '' and NULL is NULL. */
    const char *empty[] = {"", NULL};
    const int32_t empty_len[] = {0, 0};
    ck_params_text(2, empty, empty_len, 0, 64, "('', NULL)");

    /* Long values: 200 characters, then "..." after the quote. */
    char long_val[300], want[320];
    memset(long_val, 'x', sizeof long_val);
    const char *lv[] = {long_val};
    int32_t lv_len[] = {200};
    snprintf(want, sizeof want, "('%.200s')", long_val);
    ck_params_text(1, lv, lv_len, 0, 1024, want);
    lv_len[0] = 201;
    snprintf(want, sizeof want, "('%.200s'...)", long_val);
    ck_params_text(1, lv, lv_len, 0, 1024, want);
    /* A UTF-8 character is never cut: 199 x, then "é" (2 bytes) is the 200th. */
    memcpy(long_val + 199,
           "\xc3\xa9"
           "zz",
           4);
    lv_len[0] = 203;
    snprintf(want, sizeof want, "('%.199s\xc3\xa9'...)", long_val);
    ck_params_text(1, lv, lv_len, 0, 1024, want);
    /* Continuation bytes alone (not UTF-8) count no characters, yet no more
     * than four bytes a character are shown. */
    char junk[2000], junk_want[1000];
    memset(junk, 0x80, sizeof junk);
    const char *jv[] = {junk};
    const int32_t jv_len[] = {2000};
    snprintf(junk_want, sizeof junk_want, "('%.*s'...)", PROTO_PARAM_SHOW_CHARS * 4 + 3, junk);
    ck_params_text(1, jv, jv_len, 0, 4096, junk_want);
    /* A first value that does not fit at all. */
    lv_len[0] = 200;
    ck_params_text(1, lv, lv_len, 0, 64, "(...)");

    /* A small buffer: whole parameters or "...". */
    const char *three[] = {"aaaa", "bbbb", "cccc"};
    const int32_t three_len[] = {4, 4, 4};
    ck_params_text(3, three, three_len, 0, 64, "('aaaa', 'bbbb', 'cccc')");
    ck_params_text(3, three, three_len, 0, 25, "('aaaa', 'bbbb', 'cccc')");
    ck_params_text(3, three, three_len, 0, 24, "('aaaa', 'bbbb', ...)");
    ck_params_text(3, three, three_len, 0, 22, "('aaaa', 'bbbb', ...)");
    ck_params_text(3, three, three_len, 0, 21, "('aaaa', ...)");
    ck_params_text(3, three, three_len, 0, 16, "('aaaa', ...)");
    ck_params_text(3, three, three_len, 0, 15, "");
    ck_params_text(3, three, three_len, 0, 0, "");
}
END_TEST

/* The names at the start of a Bind, from every prefix of its body. */
START_TEST(test_peek_cstrings)
{
    const uint8_t *body = (const uint8_t *)g_bind + 5;
    size_t len = sizeof g_bind - 1 - 5;
    for (size_t k = 0; k <= len; k++) {
        uint8_t *own = dup_exact(body, k);
        const char *names[2] = {NULL, NULL};
        proto_status st = proto_peek_cstrings(own, k, 2, names);
        if (k < 4) { /* "\0" "s1\0": both end at byte 4 */
            ck_assert_msg(st == PROTO_NEED_MORE, "prefix %zu", k);
        } else {
            ck_assert_msg(st == PROTO_COMPLETE, "prefix %zu", k);
            ck_assert_ptr_eq(names[0], (const char *)own);
            ck_assert_str_eq(names[0], "");
            ck_assert_ptr_eq(names[1], (const char *)own + 1);
            ck_assert_str_eq(names[1], "s1");
        }
        ck_assert_int_eq(proto_peek_cstrings(own, k, 1, NULL), k < 1 ? PROTO_NEED_MORE : PROTO_COMPLETE);
        ck_assert_int_eq(proto_peek_cstrings(own, k, 0, NULL), PROTO_COMPLETE);
        free(own);
    }
    ck_assert_int_eq(proto_peek_cstrings(NULL, 0, 1, NULL), PROTO_NEED_MORE);
}
END_TEST

START_TEST(test_parse_close_describe)
{
    uint8_t *own;
    char kind = 0;
    const char *name = NULL;
    proto_msg m = msg_of('C', GOLD("Ss1\0"), &own);
    ck_assert_int_eq(proto_parse_close_describe(&m, &kind, &name), PROTO_COMPLETE);
    ck_assert_int_eq(kind, 'S');
    ck_assert_str_eq(name, "s1");
    free(own);
    m = msg_of('D', GOLD("P\0"), &own);
    ck_assert_int_eq(proto_parse_close_describe(&m, &kind, &name), PROTO_COMPLETE);
    ck_assert_int_eq(kind, 'P');
    ck_assert_str_eq(name, "");
    free(own);
    const char *bad[] = {"", "S", "Ss1", "Xs1\0", "Ss1\0" "x", "\0\0"};
    size_t bad_len[] = {0, 1, 3, 4, 5, 2};
    for (size_t i = 0; i < 6; i++) {
        m = msg_of('C', (const uint8_t *)bad[i], bad_len[i], &own);
        ck_assert_msg(proto_parse_close_describe(&m, &kind, &name) == PROTO_INVALID, "case %zu",
                      i);
        free(own);
    }
}
END_TEST

static const char g_sasl_body[] = "SCRAM-SHA-256\0" "\0\0\0\x0b" "n,,n=,r=abc";

START_TEST(test_parse_sasl_initial)
{
    uint8_t *own;
    const char *mech = NULL;
    const uint8_t *data = NULL;
    int32_t data_len = 0;
    proto_msg m = msg_of('p', GOLD(g_sasl_body), &own);
    ck_assert_int_eq(proto_parse_sasl_initial(&m, &mech, &data, &data_len), PROTO_COMPLETE);
    ck_assert_str_eq(mech, "SCRAM-SHA-256");
    ck_assert_int_eq(data_len, 11);
    ck_assert_mem_eq(data, "n,,n=,r=abc", 11);
    ck_assert_ptr_eq(data, own + 18);
    free(own);
    /* -1: no initial response */
    m = msg_of('p', GOLD("SCRAM-SHA-256\0" "\xff\xff\xff\xff"), &own);
    ck_assert_int_eq(proto_parse_sasl_initial(&m, &mech, &data, &data_len), PROTO_COMPLETE);
    ck_assert_ptr_null(data);
    ck_assert_int_eq(data_len, -1);
    free(own);
    /* 0: an empty one */
    m = msg_of('p', GOLD("SCRAM-SHA-256\0" "\0\0\0\0"), &own);
    ck_assert_int_eq(proto_parse_sasl_initial(&m, &mech, &data, &data_len), PROTO_COMPLETE);
    ck_assert_int_eq(data_len, 0);
    free(own);
    struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"SCRAM-SHA-256", 13},                                  /* unterminated mechanism */
        {"SCRAM-SHA-256\0", 14},                                /* no length */
        {"SCRAM-SHA-256\0" "\0\0\0", 17},                       /* short length */
        {"SCRAM-SHA-256\0" "\0\0\0\x0c" "n,,n=,r=abc", 29},     /* data shorter than said */
        {"SCRAM-SHA-256\0" "\0\0\0\x0a" "n,,n=,r=abc", 29},     /* data longer than said */
        {"SCRAM-SHA-256\0" "\xff\xff\xff\xfe", 18},             /* -2 */
        {"SCRAM-SHA-256\0" "\x80\0\0\0", 18},                   /* INT32_MIN */
        {"SCRAM-SHA-256\0" "\xff\xff\xff\xff" "x", 19},         /* -1 and data */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = msg_of('p', (const uint8_t *)bad[i].bytes, bad[i].len, &own);
        ck_assert_msg(proto_parse_sasl_initial(&m, &mech, &data, &data_len) == PROTO_INVALID,
                      "case %zu", i);
        free(own);
    }
}
END_TEST

/* Every parser: each strict prefix of a valid body, and the body plus one
 * byte, is invalid; out-pointers may all be NULL. */
typedef proto_status (*body_parser)(const proto_msg *m);

static proto_status p_error(const proto_msg *m)
{
    return proto_parse_error(m, NULL);
}
static proto_status p_param(const proto_msg *m)
{
    return proto_parse_param_status(m, NULL, NULL);
}
static proto_status p_cstring(const proto_msg *m)
{
    return proto_parse_cstring(m, NULL);
}
static proto_status p_parse(const proto_msg *m)
{
    return proto_parse_parse(m, NULL, NULL);
}
static proto_status p_bind(const proto_msg *m)
{
    return proto_parse_bind(m, NULL, NULL);
}
static proto_status p_bind_params(const proto_msg *m)
{
    return proto_parse_bind_params(m, NULL);
}
static proto_status p_close(const proto_msg *m)
{
    return proto_parse_close_describe(m, NULL, NULL);
}
static proto_status p_sasl(const proto_msg *m)
{
    return proto_parse_sasl_initial(m, NULL, NULL, NULL);
}

static const struct {
    const char *name;
    body_parser parse;
    const char *body;
    size_t len;
} parser_cases[] = {
#define PC(fn, lit) {#fn, fn, lit, sizeof(lit) - 1}
    PC(p_error, "SERROR\0"
                "VERROR\0"
                "C42P01\0"
                "Mno\0"
                "Dd\0"
                "Hh\0"
                "\0"),
    PC(p_param, "TimeZone\0"
                "UTC\0"),
    PC(p_cstring, "SELECT 1\0"),
    PC(p_parse, "s1\0"
                "SELECT $1\0"
                "\0\x01"
                "\0\0\0\x17"),
    PC(p_bind, "\0"
               "s1\0"
               "\0\x01"
               "\0\0"
               "\0\x02"
               "\0\0\0\x02"
               "42"
               "\xff\xff\xff\xff"
               "\0\x01"
               "\0\x01"),
    PC(p_bind_params, "p\0"
                      "s1\0"
                      "\0\x02"
                      "\0\0"
                      "\0\x01"
                      "\0\x02"
                      "\0\0\0\x01"
                      "a"
                      "\xff\xff\xff\xff"
                      "\0\0"),
    PC(p_close, "Ss1\0"),
    PC(p_sasl, "SCRAM-SHA-256\0"
               "\0\0\0\x0b"
               "n,,n=,r=abc"),
#undef PC
};

START_TEST(test_parsers_prefixes_and_extra)
{
    const char *name = parser_cases[_i].name;
    body_parser parse = parser_cases[_i].parse;
    const uint8_t *body = (const uint8_t *)parser_cases[_i].body;
    size_t len = parser_cases[_i].len;
    for (size_t k = 0; k <= len; k++) {
        uint8_t *own;
        proto_msg m = msg_of('?', body, k, &own);
        proto_status want = k == len ? PROTO_COMPLETE : PROTO_INVALID;
        ck_assert_msg(parse(&m) == want, "%s prefix %zu of %zu", name, k, len);
        free(own);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, body, len);
    for (int extra = 0; extra < 256; extra += 85) {
        longer[len] = (uint8_t)extra;
        proto_msg m = {.type = '?', .body = longer, .body_len = (uint32_t)len + 1};
        ck_assert_msg(parse(&m) == PROTO_INVALID, "%s plus 0x%02x", name, extra);
    }
    free(longer);
}
END_TEST

/* Random bodies and packets: nothing may read out of bounds (ASan watches);
 * the verdicts are not checked. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

START_TEST(test_fuzz_no_overreads)
{
    /* Small alphabets make NULs, 'S'/'P', -1 and short lengths frequent. */
    static const uint8_t alphabet[] = {0, 0, 0, 0xff, 1, 2, 3, 4, 'S', 'P', 'V', 'x', 8, 0x10};
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rng() % 40;
        uint8_t *p = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            p[i] = (rng() & 1) ? alphabet[rng() % sizeof alphabet] : (uint8_t)rng();
        proto_msg m = {.type = 'x', .body = p, .body_len = (uint32_t)n, .total_len = n + 5};
        for (size_t j = 0; j < sizeof parser_cases / sizeof parser_cases[0]; j++)
            (void)parser_cases[j].parse(&m);
        proto_error_fields f;
        (void)proto_parse_error(&m, &f);
        proto_msg out;
        size_t need;
        const char *why;
        (void)proto_read_msg(p, n, 64, &out, &need, &why);
        proto_startup s;
        (void)proto_read_startup(p, n, &s, &need, &why);
        /* And as a startup packet whose length and code are plausible. */
        if (n >= 8) {
            p[0] = 0;
            p[1] = 0;
            p[2] = 0;
            p[3] = (uint8_t)n;
            p[4] = 0;
            p[5] = 3;
            p[6] = 0;
            p[7] = 0;
            proto_status st = proto_read_startup(p, n, &s, &need, &why);
            if (st == PROTO_COMPLETE) {
                ck_assert_ptr_nonnull(proto_startup_get(&s, "user"));
                for (size_t i = 0; i < s.n_params; i++) {
                    ck_assert((const uint8_t *)s.names[i] >= p + 8);
                    ck_assert((const uint8_t *)s.values[i] + strlen(s.values[i]) < p + n);
                }
            }
        }
        free(p);
    }
}
END_TEST

/* ======================= builders ======================= */

#define BUILD_EQ(golden, ...)                                                                  \
    do {                                                                                       \
        proto_buf b_;                                                                          \
        proto_buf_init(&b_);                                                                   \
        __VA_ARGS__;                                                                           \
        ck_buf_eq(&b_, GOLD(golden));                                                          \
        proto_buf_free(&b_);                                                                   \
    } while (0)

START_TEST(test_build_auth)
{
    BUILD_EQ(g_auth_ok, proto_build_auth_ok(&b_));
    BUILD_EQ(g_auth_ok, proto_build_auth(&b_, 0, NULL, 0));
    BUILD_EQ(g_auth_md5, proto_build_auth(&b_, 5, "\x01\x02\x03\x04", 4));
    BUILD_EQ(g_auth_sasl, proto_build_auth(&b_, 10, "SCRAM-SHA-256\0", 15));
    /* AuthenticationCleartextPassword */
    BUILD_EQ("R" "\0\0\0\x08" "\0\0\0\x03", proto_build_auth(&b_, 3, NULL, 0));
}
END_TEST

START_TEST(test_build_param_status)
{
    BUILD_EQ(g_param, proto_build_param_status(&b_, "client_encoding", "UTF8"));
    BUILD_EQ("S" "\0\0\0\x0f" "DateStyle\0" "\0", proto_build_param_status(&b_, "DateStyle", ""));
}
END_TEST

START_TEST(test_build_backend_key)
{
    BUILD_EQ(g_key, proto_build_backend_key(&b_, 0x01020304u, 0xdeadbeefu));
    BUILD_EQ("K" "\0\0\0\x0c" "\0\0\x30\x39" "\xff\xff\xff\xff",
             proto_build_backend_key(&b_, 12345, UINT32_MAX));
}
END_TEST

START_TEST(test_build_ready)
{
    BUILD_EQ(g_ready_i, proto_build_ready(&b_, 'I'));
    BUILD_EQ(g_ready_t, proto_build_ready(&b_, 'T'));
    BUILD_EQ(g_ready_e, proto_build_ready(&b_, 'E'));
}
END_TEST

START_TEST(test_build_error_notice)
{
    BUILD_EQ(g_error, proto_build_error(&b_, "FATAL", "53300", "too many clients", NULL));
    BUILD_EQ(g_error_d, proto_build_error(&b_, "FATAL", "53300", "too many clients", "x"));
    BUILD_EQ(g_notice, proto_build_notice(&b_, "WARNING", "01000", "careful"));
}
END_TEST

START_TEST(test_build_simple)
{
    BUILD_EQ(g_query, proto_build_query(&b_, "SELECT 1"));
    BUILD_EQ(g_cc, proto_build_command_complete(&b_, "SELECT 1"));
    BUILD_EQ(g_empty_query, proto_build_empty_query(&b_));
    BUILD_EQ(g_terminate, proto_build_terminate(&b_));
    BUILD_EQ(g_sync, proto_build_sync(&b_));
    BUILD_EQ("Q" "\0\0\0\x05" "\0", proto_build_query(&b_, ""));
}
END_TEST

START_TEST(test_build_row_description)
{
    const char *names[] = {"a", "bc"};
    BUILD_EQ(g_rowdesc, proto_build_row_description(&b_, 2, names));
    BUILD_EQ(g_rowdesc0, proto_build_row_description(&b_, 0, NULL));
}
END_TEST

START_TEST(test_build_data_row)
{
    const char *values[] = {"1", NULL, ""};
    BUILD_EQ(g_datarow, proto_build_data_row(&b_, 3, values));
    BUILD_EQ(g_datarow0, proto_build_data_row(&b_, 0, NULL));
}
END_TEST

START_TEST(test_build_parse)
{
    const uint32_t types[] = {23};
    BUILD_EQ(g_parse, proto_build_parse(&b_, "s1", "SELECT $1", 1, types));
    BUILD_EQ(g_parse0, proto_build_parse(&b_, "", "SELECT 1", 0, NULL));
    BUILD_EQ(g_parse0, proto_build_parse(&b_, NULL, "SELECT 1", 0, NULL));
    const uint32_t big[] = {0xfffffffeu};
    BUILD_EQ("P" "\0\0\0\x0c" "\0" "\0" "\0\x01" "\xff\xff\xff\xfe",
             proto_build_parse(&b_, "", "", 1, big));
}
END_TEST

START_TEST(test_build_close)
{
    BUILD_EQ(g_close_s, proto_build_close(&b_, 'S', "s1"));
    BUILD_EQ(g_close_p, proto_build_close(&b_, 'P', ""));
}
END_TEST

START_TEST(test_build_generic)
{
    /* Typeless packets: an SSLRequest and a CancelRequest built by hand. */
    BUILD_EQ(g_ssl_request, proto_buf_begin(&b_, 0);
             proto_buf_put_i32(&b_, (int32_t)PROTO_SSL_REQUEST); proto_buf_end(&b_));
    BUILD_EQ(g_cancel, proto_buf_begin(&b_, 0);
             proto_buf_put_i32(&b_, (int32_t)PROTO_CANCEL_REQUEST);
             proto_buf_put_i32(&b_, 12345); proto_buf_put_i32(&b_, (int32_t)0xcafebabeu);
             proto_buf_end(&b_));
    /* Every put, with negative numbers and NULL strings. */
    BUILD_EQ("x" "\0\0\0\x13" "\x7f" "\xff\xfe" "\x80\0\0\0" "ab" "\0" "cd\0" "\x01\x02",
             proto_buf_begin(&b_, 'x'); proto_buf_put_u8(&b_, 0x7f);
             proto_buf_put_i16(&b_, -2); proto_buf_put_i32(&b_, INT32_MIN);
             proto_buf_put_bytes(&b_, "ab", 2); proto_buf_put_str(&b_, NULL);
             proto_buf_put_str(&b_, "cd"); proto_buf_put_bytes(&b_, NULL, 0);
             proto_buf_append(&b_, "\x01\x02", 2); proto_buf_end(&b_));
    /* Two messages in a row into one buffer. */
    BUILD_EQ("Z" "\0\0\0\x05" "I" "X" "\0\0\0\x04", proto_build_ready(&b_, 'I');
             proto_build_terminate(&b_));
}
END_TEST

/* Every builder's output frames back and parses to what was built. */
START_TEST(test_build_round_trip)
{
    proto_buf b;
    proto_buf_init(&b);
    proto_msg m;

    proto_build_error(&b, "ERROR", "08P01", "protocol violation", "bad message");
    m = read_one(b.data, b.len);
    ck_assert_uint_eq(m.type, 'E');
    proto_error_fields f;
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "ERROR");
    ck_assert_str_eq(f.sqlstate, "08P01");
    ck_assert_str_eq(f.message, "protocol violation");
    ck_assert_str_eq(f.detail, "bad message");
    ck_assert_ptr_null(f.hint);

    proto_buf_reset(&b);
    proto_build_notice(&b, "NOTICE", "00000", "hello");
    m = read_one(b.data, b.len);
    ck_assert_uint_eq(m.type, 'N');
    ck_assert_int_eq(proto_parse_error(&m, &f), PROTO_COMPLETE);
    ck_assert_str_eq(f.severity, "NOTICE");
    ck_assert_ptr_null(f.detail);

    const char *name, *value;
    proto_buf_reset(&b);
    proto_build_param_status(&b, "TimeZone", "Europe/Paris");
    m = read_one(b.data, b.len);
    ck_assert_int_eq(proto_parse_param_status(&m, &name, &value), PROTO_COMPLETE);
    ck_assert_str_eq(name, "TimeZone");
    ck_assert_str_eq(value, "Europe/Paris");

    const char *s;
    proto_buf_reset(&b);
    proto_build_query(&b, "BEGIN; SELECT 1; COMMIT");
    m = read_one(b.data, b.len);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_COMPLETE);
    ck_assert_str_eq(s, "BEGIN; SELECT 1; COMMIT");

    proto_buf_reset(&b);
    proto_build_command_complete(&b, "INSERT 0 1");
    m = read_one(b.data, b.len);
    ck_assert_int_eq(proto_parse_cstring(&m, &s), PROTO_COMPLETE);
    ck_assert_str_eq(s, "INSERT 0 1");

    const char *stmt, *query;
    const uint32_t types[] = {23, 25, 0};
    proto_buf_reset(&b);
    proto_build_parse(&b, "tp_1", "SELECT $1, $2, $3", 3, types);
    m = read_one(b.data, b.len);
    ck_assert_int_eq(proto_parse_parse(&m, &stmt, &query), PROTO_COMPLETE);
    ck_assert_str_eq(stmt, "tp_1");
    ck_assert_str_eq(query, "SELECT $1, $2, $3");

    char kind;
    proto_buf_reset(&b);
    proto_build_close(&b, 'S', "tp_1");
    m = read_one(b.data, b.len);
    ck_assert_int_eq(proto_parse_close_describe(&m, &kind, &name), PROTO_COMPLETE);
    ck_assert_int_eq(kind, 'S');
    ck_assert_str_eq(name, "tp_1");

    proto_buf_free(&b);
}
END_TEST

/* ======================= proto_buf ======================= */

START_TEST(test_buf_grows)
{
    proto_buf b;
    proto_buf_init(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert(!b.failed);
    for (size_t i = 0; i < 5000; i++) {
        uint8_t v = (uint8_t)(i * 7);
        proto_buf_append(&b, &v, 1);
    }
    ck_assert(!b.failed);
    ck_assert_uint_eq(b.len, 5000);
    ck_assert_uint_ge(b.cap, 5000);
    for (size_t i = 0; i < 5000; i++)
        ck_assert_uint_eq(b.data[i], (uint8_t)(i * 7));
    /* One big append past the current capacity. */
    uint8_t *big = calloc(100000, 1);
    proto_buf_append(&b, big, 100000);
    ck_assert_uint_eq(b.len, 105000);
    free(big);
    /* A long message: its length is patched correctly. */
    proto_buf_reset(&b);
    char *sql = malloc(70001);
    memset(sql, 'a', 70000);
    sql[70000] = '\0';
    proto_build_query(&b, sql);
    ck_assert(!b.failed);
    ck_assert_uint_eq(b.len, 70006);
    static const uint8_t hdr[] = {'Q', 0, 1, 0x11, 0x75}; /* 4 + 70001 = 0x00011175 */
    ck_bytes_eq(b.data, 5, hdr, 5);
    free(sql);
    proto_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_reset_keeps_memory)
{
    proto_buf b;
    proto_buf_init(&b);
    proto_build_query(&b, "SELECT 1");
    uint8_t *data = b.data;
    size_t cap = b.cap;
    proto_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    proto_build_sync(&b);
    ck_buf_eq(&b, GOLD(g_sync));
    proto_buf_free(&b);
    /* A zeroed struct works as well as init. */
    proto_buf z = {0};
    proto_build_sync(&z);
    ck_buf_eq(&z, GOLD(g_sync));
    proto_buf_free(&z);
}
END_TEST

/* Once failed, every call is a no-op until reset. */
static void check_all_noops(proto_buf *b)
{
    size_t len = b->len;
    const char *names[] = {"a"};
    const uint32_t types[] = {23};
    proto_buf_append(b, "abc", 3);
    proto_buf_begin(b, 'Q');
    proto_buf_put_u8(b, 1);
    proto_buf_put_i16(b, 1);
    proto_buf_put_i32(b, 1);
    proto_buf_put_bytes(b, "x", 1);
    proto_buf_put_str(b, "x");
    proto_buf_end(b);
    proto_build_auth_ok(b);
    proto_build_auth(b, 5, "salt", 4);
    proto_build_param_status(b, "a", "b");
    proto_build_backend_key(b, 1, 2);
    proto_build_ready(b, 'I');
    proto_build_error(b, "ERROR", "XX000", "m", "d");
    proto_build_notice(b, "NOTICE", "00000", "m");
    proto_build_query(b, "q");
    proto_build_command_complete(b, "t");
    proto_build_empty_query(b);
    proto_build_terminate(b);
    proto_build_sync(b);
    proto_build_row_description(b, 1, names);
    proto_build_data_row(b, 1, names);
    proto_build_parse(b, "s", "q", 1, types);
    proto_build_close(b, 'S', "s");
    ck_assert(b->failed);
    ck_assert_uint_eq(b->len, len);
}

START_TEST(test_buf_failed_sticky_overflow)
{
    proto_buf b;
    proto_buf_init(&b);
    proto_build_ready(&b, 'I');
    /* An append whose size overflows: refused before any copy. */
    static const uint8_t one = 1;
    proto_buf_append(&b, &one, SIZE_MAX);
    ck_assert(b.failed);
    ck_assert_uint_eq(b.len, 6);
    check_all_noops(&b);
    /* reset clears the flag and the buffer works again. */
    proto_buf_reset(&b);
    ck_assert(!b.failed);
    proto_build_ready(&b, 'T');
    ck_buf_eq(&b, GOLD(g_ready_t));
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_buf_failed_sticky_too_big)
{
    proto_buf b;
    proto_buf_init(&b);
    /* Growing past PROTO_BUF_MAX fails without allocating or copying. */
    static const uint8_t one = 1;
    proto_buf_append(&b, &one, (size_t)PROTO_BUF_MAX + 1);
    ck_assert(b.failed);
    ck_assert_uint_eq(b.len, 0);
    check_all_noops(&b);
    proto_buf_free(&b);
    ck_assert(!b.failed);
}
END_TEST

START_TEST(test_buf_failed_mid_message)
{
    /* A failure in the middle of a message leaves the flag set after end(). */
    proto_buf b;
    proto_buf_init(&b);
    proto_buf_begin(&b, 'Q');
    static const uint8_t one = 1;
    proto_buf_put_bytes(&b, &one, SIZE_MAX - 2);
    proto_buf_put_str(&b, "x");
    proto_buf_end(&b);
    ck_assert(b.failed);
    check_all_noops(&b);
    proto_buf_reset(&b);
    proto_build_sync(&b);
    ck_buf_eq(&b, GOLD(g_sync));
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_buf_failed_misuse)
{
    proto_buf b;
    proto_buf_init(&b);
    proto_buf_end(&b); /* end without begin */
    ck_assert(b.failed);
    check_all_noops(&b);
    proto_buf_reset(&b);
    proto_buf_begin(&b, 'Q');
    proto_buf_begin(&b, 'Q'); /* begin inside a message */
    ck_assert(b.failed);
    check_all_noops(&b);
    proto_buf_reset(&b);
    /* reset also closes an open message */
    proto_buf_begin(&b, 'Q');
    proto_buf_reset(&b);
    proto_build_sync(&b);
    ck_buf_eq(&b, GOLD(g_sync));
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_buf_failed_counts)
{
    proto_buf b;
    proto_buf_init(&b);
    /* The count check fails before any element is read. */
    proto_build_row_description(&b, 65536, NULL);
    ck_assert(b.failed);
    proto_buf_reset(&b);
    proto_build_data_row(&b, 65536, NULL);
    ck_assert(b.failed);
    proto_buf_reset(&b);
    proto_build_parse(&b, "", "", 65536, NULL);
    ck_assert(b.failed);
    proto_buf_reset(&b);
    /* 65535 parameter types is the most the protocol allows. */
    uint32_t *types = calloc(65535, sizeof *types);
    proto_build_parse(&b, "", "", 65535, types);
    ck_assert(!b.failed);
    ck_assert_uint_eq(b.len, 1 + 4 + 1 + 1 + 2 + 65535 * 4);
    ck_assert_uint_eq(b.data[7], 0xff);
    ck_assert_uint_eq(b.data[8], 0xff);
    free(types);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_status_to_str)
{
    ck_assert_str_eq(proto_status_to_str(PROTO_COMPLETE), "complete");
    ck_assert_str_eq(proto_status_to_str(PROTO_NEED_MORE), "need more");
    ck_assert_str_eq(proto_status_to_str(PROTO_INVALID), "invalid");
}
END_TEST

/* ======================= runner ======================= */

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");

    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_read_msg_golden);
    tcase_add_test(tc, test_read_msg_empty_body);
    tcase_add_test(tc, test_read_msg_trailing_bytes_ignored);
    tcase_add_test(tc, test_read_msg_type_not_validated);
    tcase_add_test(tc, test_read_msg_null_outputs);
    tcase_add_test(tc, test_read_msg_zero_length_buffer);
    tcase_add_test(tc, test_read_msg_short_length);
    tcase_add_test(tc, test_read_msg_huge_length);
    tcase_add_test(tc, test_read_frontend_header);
    tcase_add_test(tc, test_read_msg_max_len_boundary);
    tcase_add_test(tc, test_read_msg_max_uint32);
    tcase_add_test(tc, test_read_header);
    tcase_add_loop_test(tc, test_read_msg_split_every_offset, 0, (int)N_GOLDENS);
    tcase_add_test(tc, test_read_msg_stream_of_goldens);
    tcase_add_test(tc, test_read_msg_stream_of_built);
    tcase_add_test(tc, test_status_to_str);
    suite_add_tcase(s, tc);

    tc = tcase_create("startup");
    tcase_add_test(tc, test_startup_psql);
    tcase_add_test(tc, test_startup_psql_built_matches_golden);
    tcase_add_test(tc, test_startup_split_every_offset);
    tcase_add_test(tc, test_startup_then_more_bytes);
    tcase_add_test(tc, test_startup_ssl_gss_cancel);
    tcase_add_test(tc, test_startup_request_wrong_length);
    tcase_add_test(tc, test_startup_bad_length);
    tcase_add_test(tc, test_startup_max_size);
    tcase_add_test(tc, test_startup_bad_version);
    tcase_add_test(tc, test_startup_minor_version_accepted);
    tcase_add_test(tc, test_startup_missing_user);
    tcase_add_test(tc, test_startup_bad_layout);
    tcase_add_test(tc, test_startup_too_many_params);
    tcase_add_test(tc, test_startup_duplicate_last_wins);
    tcase_add_test(tc, test_startup_empty_value_and_null_out);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers");
    tcase_add_test(tc, test_parse_error_postgres);
    tcase_add_test(tc, test_parse_error_prefers_v);
    tcase_add_test(tc, test_parse_error_invalid);
    tcase_add_test(tc, test_parse_param_status);
    tcase_add_test(tc, test_parse_cstring);
    tcase_add_test(tc, test_parse_parse);
    tcase_add_test(tc, test_parse_bind);
    tcase_add_test(tc, test_parse_bind_params);
    tcase_add_test(tc, test_bind_params_text);
    tcase_add_test(tc, test_peek_cstrings);
    tcase_add_test(tc, test_parse_close_describe);
    tcase_add_test(tc, test_parse_sasl_initial);
    tcase_add_loop_test(tc, test_parsers_prefixes_and_extra, 0,
                        (int)(sizeof parser_cases / sizeof parser_cases[0]));
    tcase_add_test(tc, test_fuzz_no_overreads);
    suite_add_tcase(s, tc);

    tc = tcase_create("builders");
    tcase_add_test(tc, test_build_auth);
    tcase_add_test(tc, test_build_param_status);
    tcase_add_test(tc, test_build_backend_key);
    tcase_add_test(tc, test_build_ready);
    tcase_add_test(tc, test_build_error_notice);
    tcase_add_test(tc, test_build_simple);
    tcase_add_test(tc, test_build_row_description);
    tcase_add_test(tc, test_build_data_row);
    tcase_add_test(tc, test_build_parse);
    tcase_add_test(tc, test_build_close);
    tcase_add_test(tc, test_build_generic);
    tcase_add_test(tc, test_build_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("buf");
    tcase_add_test(tc, test_buf_grows);
    tcase_add_test(tc, test_buf_reset_keeps_memory);
    tcase_add_test(tc, test_buf_failed_sticky_overflow);
    tcase_add_test(tc, test_buf_failed_sticky_too_big);
    tcase_add_test(tc, test_buf_failed_mid_message);
    tcase_add_test(tc, test_buf_failed_misuse);
    tcase_add_test(tc, test_buf_failed_counts);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
