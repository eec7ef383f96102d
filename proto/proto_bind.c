/* proto_bind.c: the parameters of a Bind parsed by proto_parse_bind_params:
 * walking its values one by one, and writing them as the short, escaped
 * tuple a log line shows (echo = debug). The values were checked by the
 * parser, so walking them trusts their lengths. */
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/proto_internal.h"

bool proto_bind_next(const proto_bind *b, proto_bind_iter *it, proto_bind_value *v)
{
    if (it->index >= b->n_params) return false;
    uint16_t i = it->index++;
    uint16_t format = 0;
    if (b->n_formats == 1)
        format = proto_get_u16(b->formats);
    else if (i < b->n_formats)
        format = proto_get_u16(b->formats + 2 * (size_t)i);
    int32_t len = proto_u32_to_i32(proto_get_u32(b->values + it->off));
    it->off += 4;
    v->binary = format != 0;
    v->len = len < 0 ? -1 : len;
    v->data = len < 0 ? NULL : b->values + it->off;
    if (len > 0) it->off += (size_t)len;
    return true;
}

/* Bytes one value's characters may take when shown: each is at most four
 * (a UTF-8 sequence, or an escape \xNN); then quotes, "..." and the NUL. */
#define SHOWN_MAX (PROTO_PARAM_SHOW_CHARS * 4 + 4)
#define VALUE_MAX (SHOWN_MAX + 16)

/* One value as the log shows it, into out (VALUE_MAX bytes); returns its length. */
static size_t render_value(const proto_bind_value *v, char *out)
{
    if (!v->data) return (size_t)snprintf(out, VALUE_MAX, "NULL");
    if (v->binary) return (size_t)snprintf(out, VALUE_MAX, "<binary %ld bytes>", (long)v->len);
    size_t n = 0, chars = 0;
    out[n++] = '\'';
    int32_t i = 0;
    /* A run of continuation bytes (not UTF-8) counts no characters: the
     * bytes shown are bounded too. */
    for (; i < v->len && n < SHOWN_MAX; i++) {
        uint8_t ch = v->data[i];
        if ((ch & 0xc0) != 0x80 && chars++ == PROTO_PARAM_SHOW_CHARS) break; /* one character too many */
        const char *esc = NULL;
        switch (ch) {
        case '\\':
            esc = "\\\\";
            break;
        case '\'':
            esc = "\\'";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            memcpy(out + n, esc, 2);
            n += 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(out + n, 5, "\\x%02x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n++] = '\'';
    if (i < v->len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return n;
}

size_t proto_bind_params_text(const proto_bind *b, char *out, size_t cap)
{
    static const char more[] = ", ...)"; /* room kept for it while values remain */
    if (cap < 16) {
        if (cap) out[0] = '\0';
        return 0;
    }
    size_t n = 0;
    out[n++] = '(';
    proto_bind_iter it = {0};
    proto_bind_value v;
    char item[VALUE_MAX];
    bool cut = false;
    for (uint16_t i = 0; proto_bind_next(b, &it, &v); i++) {
        size_t sep = i ? 2 : 0, len = render_value(&v, item);
        bool last = it.index == b->n_params;
        size_t room = last ? 1 : sizeof more - 1; /* what must still fit after it */
        if (n + sep + len + room > cap - 1) {
            cut = true;
            break;
        }
        if (sep) memcpy(out + n, ", ", 2);
        memcpy(out + n + sep, item, len);
        n += sep + len;
    }
    if (cut) {
        const char *tail = n > 1 ? more : more + 2; /* "(...)" when none fitted */
        size_t tl = strlen(tail);
        memcpy(out + n, tail, tl);
        n += tl;
    } else {
        out[n++] = ')';
    }
    out[n] = '\0';
    return n;
}
