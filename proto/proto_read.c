/* proto_read.c: framing. It owns the answer to "does this byte view start
 * with a whole message?" for the two shapes the protocol has: regular messages
 * (type byte, int32 length counting itself, body) and the typeless packets of
 * the startup phase (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
 * Nothing here copies or allocates: a complete message is handed back as a
 * view into the caller's buffer, and an incomplete one as the number of bytes
 * to wait for. The length field is checked before it is trusted, and nothing
 * past the framed length is ever read. */
#include "proto/proto.h"

#include <stdio.h>
#include <string.h>

#include "proto/proto_internal.h"

const char *proto_status_to_str(proto_status s)
{
    switch (s) {
    case PROTO_COMPLETE:
        return "complete";
    case PROTO_NEED_MORE:
        return "need more";
    case PROTO_INVALID:
        return "invalid";
    }
    return "unknown";
}

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

static void set_need(size_t *need, size_t n)
{
    if (need)
        *need = n;
}

proto_status proto_read_header(const uint8_t *buf, size_t len, uint32_t max_len,
                               uint8_t *type, size_t *total_len, const char **why)
{
    if (len < 5)
        return PROTO_NEED_MORE;
    uint32_t mlen = proto_get_u32(buf + 1);
    if (mlen < 4) {
        set_why(why, "invalid message length");
        return PROTO_INVALID;
    }
    if (mlen > max_len) {
        set_why(why, "message too large");
        return PROTO_INVALID;
    }
#if SIZE_MAX <= UINT32_MAX
    /* 1 + mlen must fit in size_t (only a concern where size_t is 32 bits). */
    if (mlen == UINT32_MAX) {
        set_why(why, "message too large");
        return PROTO_INVALID;
    }
#endif
    if (type)
        *type = buf[0];
    if (total_len)
        *total_len = (size_t)mlen + 1;
    return PROTO_COMPLETE;
}

/* Types a frontend may send once logged in: PostgresMain's switch (Q P B E
 * F C D H S X, and the CopyData/CopyDone/CopyFail it accepts outside COPY). */
static bool frontend_type(uint8_t t)
{
    return t != '\0' && strchr("QPBEFCDHSXdcf", t) != NULL;
}

static _Thread_local char type_why[48];

proto_status proto_read_frontend_header(const uint8_t *buf, size_t len, uint32_t max_len,
                                        uint8_t *type, size_t *total_len, const char **why)
{
    if (len >= 1 && !frontend_type(buf[0])) {
        snprintf(type_why, sizeof type_why, "invalid frontend message type %d", buf[0]);
        set_why(why, type_why);
        return PROTO_INVALID;
    }
    return proto_read_header(buf, len, max_len, type, total_len, why);
}

proto_status proto_read_msg(const uint8_t *buf, size_t len, uint32_t max_len,
                            proto_msg *out, size_t *need, const char **why)
{
    uint8_t type = 0;
    size_t total = 0;
    proto_status st = proto_read_header(buf, len, max_len, &type, &total, why);
    if (st == PROTO_NEED_MORE) {
        set_need(need, 5);
        return st;
    }
    if (st != PROTO_COMPLETE)
        return st;
    if (len < total) {
        set_need(need, total);
        return PROTO_NEED_MORE;
    }
    if (out) {
        out->type = type;
        out->body = buf + 5;
        out->body_len = (uint32_t)(total - 5);
        out->total_len = total;
    }
    return PROTO_COMPLETE;
}

/* The why for an unsupported protocol names the version the client asked for,
 * so it is formatted into a thread-local buffer: valid until the next call to
 * proto_read_startup() on the same thread. */
static _Thread_local char version_why[96];

static const char *unsupported_version(uint32_t code)
{
    snprintf(version_why, sizeof version_why,
             "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
             (unsigned)(code >> 16), (unsigned)(code & 0xffffu));
    return version_why;
}

/* Checks that only need the first 8 bytes (length and code), done as soon as
 * those are in so that a client which sends, say, a 16-byte "SSLRequest" and
 * waits for the answer is refused at once rather than waited on. */
static proto_status check_code(uint32_t plen, uint32_t code, const char **why)
{
    switch (code) {
    case PROTO_SSL_REQUEST:
        if (plen != 8) {
            set_why(why, "invalid length of SSL request packet");
            return PROTO_INVALID;
        }
        return PROTO_COMPLETE;
    case PROTO_GSSENC_REQUEST:
        if (plen != 8) {
            set_why(why, "invalid length of GSSENC request packet");
            return PROTO_INVALID;
        }
        return PROTO_COMPLETE;
    case PROTO_CANCEL_REQUEST:
        if (plen != 16) {
            set_why(why, "invalid length of cancel request packet");
            return PROTO_INVALID;
        }
        return PROTO_COMPLETE;
    default:
        /* Any other 1234.xxxx code lands here too and is refused by name, as
         * PostgreSQL does. Minor versions above 0 are accepted: the caller may
         * answer with NegotiateProtocolVersion. */
        if (code >> 16 != 3) {
            set_why(why, unsupported_version(code));
            return PROTO_INVALID;
        }
        return PROTO_COMPLETE;
    }
}

/* StartupMessage body after the code: name\0value\0 ... \0, the terminator
 * being exactly the last byte (as PostgreSQL insists). */
static proto_status parse_params(const uint8_t *buf, size_t plen, proto_startup *out,
                                 const char **why)
{
    size_t off = 8;
    for (;;) {
        if (off >= plen) {
            set_why(why, "invalid startup packet layout: expected terminator as last byte");
            return PROTO_INVALID;
        }
        if (buf[off] == '\0')
            break;
        const uint8_t *name = buf + off;
        const uint8_t *nul = memchr(name, '\0', plen - off);
        if (!nul) {
            set_why(why, "invalid startup packet layout: unterminated parameter name");
            return PROTO_INVALID;
        }
        off = (size_t)(nul - buf) + 1;
        if (off >= plen) {
            set_why(why, "invalid startup packet layout: parameter without a value");
            return PROTO_INVALID;
        }
        const uint8_t *value = buf + off;
        nul = memchr(value, '\0', plen - off);
        if (!nul) {
            set_why(why, "invalid startup packet layout: unterminated parameter value");
            return PROTO_INVALID;
        }
        off = (size_t)(nul - buf) + 1;
        if (out->n_params == PROTO_MAX_STARTUP_PARAMS) {
            set_why(why, "too many parameters in startup packet");
            return PROTO_INVALID;
        }
        out->names[out->n_params] = (const char *)name;
        out->values[out->n_params] = (const char *)value;
        out->n_params++;
    }
    if (off != plen - 1) {
        set_why(why, "invalid startup packet layout: expected terminator as last byte");
        return PROTO_INVALID;
    }
    const char *user = proto_startup_get(out, "user");
    if (!user || user[0] == '\0') {
        set_why(why, "no PostgreSQL user name specified in startup packet");
        return PROTO_INVALID;
    }
    return PROTO_COMPLETE;
}

proto_status proto_read_startup(const uint8_t *buf, size_t len, proto_startup *out,
                                size_t *need, const char **why)
{
    /* Like PostgreSQL: read the 4-byte length first, then the whole packet. */
    if (len < 4) {
        set_need(need, 4);
        return PROTO_NEED_MORE;
    }
    uint32_t plen = proto_get_u32(buf);
    if (plen < 8 || plen > PROTO_MAX_STARTUP) {
        set_why(why, "invalid length of startup packet");
        return PROTO_INVALID;
    }
    if (len >= 8) {
        proto_status st = check_code(plen, proto_get_u32(buf + 4), why);
        if (st != PROTO_COMPLETE)
            return st;
    }
    if (len < plen) {
        set_need(need, plen);
        return PROTO_NEED_MORE;
    }

    proto_startup local;
    proto_startup *s = out ? out : &local;
    memset(s, 0, sizeof *s);
    s->code = proto_get_u32(buf + 4);
    s->total_len = plen;
    switch (s->code) {
    case PROTO_SSL_REQUEST:
    case PROTO_GSSENC_REQUEST:
        return PROTO_COMPLETE;
    case PROTO_CANCEL_REQUEST:
        s->cancel_pid = proto_get_u32(buf + 8);
        s->cancel_key = proto_get_u32(buf + 12);
        return PROTO_COMPLETE;
    default:
        return parse_params(buf, plen, s, why);
    }
}

const char *proto_startup_get(const proto_startup *s, const char *name)
{
    /* The last occurrence wins, as in PostgreSQL, which applies them in order. */
    for (size_t i = s->n_params; i > 0; i--) {
        if (strcmp(s->names[i - 1], name) == 0)
            return s->values[i - 1];
    }
    return NULL;
}
