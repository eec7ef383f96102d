/* proto_parse.c: parsers for the bodies of framed messages. Each takes a
 * proto_msg from proto_read_msg() and hands back views borrowed from its body.
 * A body is checked whole, as PostgreSQL's pq_getmsg* + pq_getmsgend() do:
 * every C string must end with a NUL inside the body, every integer and byte
 * run must fit, counts may not be negative, and no bytes may be left over.
 * Anything else is PROTO_INVALID and the out-parameters are then unspecified.
 * The message type is not checked here: the caller dispatched on it already
 * (and 'C' and 'D' mean different things from either side anyway). */
#include "proto/proto.h"

#include <string.h>

#include "proto/proto_internal.h"

/* A read cursor over a body. Once `bad` is set every getter fails, so a
 * parser reads all its fields and checks once. */
typedef struct cursor {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool bad;
} cursor;

static cursor cursor_of(const proto_msg *m)
{
    cursor c = {.p = m->body, .len = m->body ? m->body_len : 0, .off = 0, .bad = false};
    return c;
}

static size_t remaining(const cursor *c)
{
    return c->len - c->off;
}

static const char *get_str(cursor *c)
{
    if (c->bad || remaining(c) == 0) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *start = c->p + c->off;
    const uint8_t *nul = memchr(start, '\0', remaining(c));
    if (!nul) {
        c->bad = true;
        return NULL;
    }
    c->off += (size_t)(nul - start) + 1;
    return (const char *)start;
}

static uint8_t get_u8(cursor *c)
{
    if (c->bad || remaining(c) < 1) {
        c->bad = true;
        return 0;
    }
    return c->p[c->off++];
}

static uint16_t get_u16(cursor *c)
{
    if (c->bad || remaining(c) < 2) {
        c->bad = true;
        return 0;
    }
    uint16_t v = proto_get_u16(c->p + c->off);
    c->off += 2;
    return v;
}

static int32_t get_i32(cursor *c)
{
    if (c->bad || remaining(c) < 4) {
        c->bad = true;
        return 0;
    }
    int32_t v = proto_u32_to_i32(proto_get_u32(c->p + c->off));
    c->off += 4;
    return v;
}

static const uint8_t *get_bytes(cursor *c, size_t n)
{
    if (c->bad || remaining(c) < n) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

/* A length-prefixed value as in Bind or SASLInitialResponse: -1 is NULL, any
 * other negative length is invalid. */
static void skip_value(cursor *c)
{
    int32_t n = get_i32(c);
    if (n < -1)
        c->bad = true;
    else if (n >= 0)
        (void)get_bytes(c, (size_t)n);
}

/* The final check: nothing went wrong and nothing is left over. */
static proto_status finish(const cursor *c)
{
    return !c->bad && c->off == c->len ? PROTO_COMPLETE : PROTO_INVALID;
}

proto_status proto_parse_error(const proto_msg *m, proto_error_fields *out)
{
    cursor c = cursor_of(m);
    proto_error_fields f = {0};
    const char *localized = NULL, *nonlocalized = NULL;
    for (;;) {
        uint8_t code = get_u8(&c);
        if (c.bad || code == 0)
            break;
        const char *value = get_str(&c);
        switch (code) {
        case 'S':
            localized = value;
            break;
        case 'V':
            nonlocalized = value;
            break;
        case 'C':
            f.sqlstate = value;
            break;
        case 'M':
            f.message = value;
            break;
        case 'D':
            f.detail = value;
            break;
        case 'H':
            f.hint = value;
            break;
        default:
            break; /* other fields are allowed and skipped */
        }
    }
    f.severity = nonlocalized ? nonlocalized : localized;
    if (out)
        *out = f;
    return finish(&c);
}

proto_status proto_parse_param_status(const proto_msg *m, const char **name,
                                      const char **value)
{
    cursor c = cursor_of(m);
    const char *n = get_str(&c);
    const char *v = get_str(&c);
    if (name)
        *name = n;
    if (value)
        *value = v;
    return finish(&c);
}

proto_status proto_parse_cstring(const proto_msg *m, const char **s)
{
    cursor c = cursor_of(m);
    const char *v = get_str(&c);
    if (s)
        *s = v;
    return finish(&c);
}

proto_status proto_parse_parse(const proto_msg *m, const char **stmt, const char **query)
{
    cursor c = cursor_of(m);
    const char *st = get_str(&c);
    const char *q = get_str(&c);
    uint16_t n_types = get_u16(&c);
    (void)get_bytes(&c, (size_t)n_types * 4);
    if (stmt)
        *stmt = st;
    if (query)
        *query = q;
    return finish(&c);
}

proto_status proto_parse_bind_params(const proto_msg *m, proto_bind *out)
{
    cursor c = cursor_of(m);
    proto_bind b = {0};
    b.portal = get_str(&c);
    b.stmt = get_str(&c);
    b.n_formats = get_u16(&c);
    b.formats = get_bytes(&c, (size_t)b.n_formats * 2);
    b.n_params = get_u16(&c);
    b.values = c.bad ? NULL : c.p + c.off;
    for (uint16_t i = 0; i < b.n_params && !c.bad; i++)
        skip_value(&c);
    b.n_result_formats = get_u16(&c);
    (void)get_bytes(&c, (size_t)b.n_result_formats * 2);
    if (out) *out = b;
    return finish(&c);
}

proto_status proto_parse_bind(const proto_msg *m, const char **portal, const char **stmt)
{
    proto_bind b;
    proto_status st = proto_parse_bind_params(m, &b);
    if (portal) *portal = b.portal;
    if (stmt) *stmt = b.stmt;
    return st;
}

proto_status proto_parse_close_describe(const proto_msg *m, char *kind, const char **name)
{
    cursor c = cursor_of(m);
    uint8_t k = get_u8(&c);
    if (!c.bad && k != 'S' && k != 'P')
        c.bad = true;
    const char *n = get_str(&c);
    if (kind)
        *kind = (char)k;
    if (name)
        *name = n;
    return finish(&c);
}

proto_status proto_parse_sasl_initial(const proto_msg *m, const char **mechanism,
                                      const uint8_t **data, int32_t *data_len)
{
    cursor c = cursor_of(m);
    const char *mech = get_str(&c);
    int32_t n = get_i32(&c);
    const uint8_t *d = NULL;
    if (n < -1)
        c.bad = true;
    else if (n >= 0)
        d = get_bytes(&c, (size_t)n);
    if (mechanism)
        *mechanism = mech;
    if (data)
        *data = d;
    if (data_len)
        *data_len = n;
    return finish(&c);
}

proto_status proto_peek_cstrings(const uint8_t *body, size_t len, size_t n, const char **out)
{
    cursor c = {.p = body, .len = body ? len : 0, .off = 0, .bad = false};
    for (size_t i = 0; i < n; i++) {
        const char *s = get_str(&c);
        if (c.bad) return PROTO_NEED_MORE;
        if (out) out[i] = s;
    }
    return PROTO_COMPLETE;
}
