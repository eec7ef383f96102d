/* proto.h: the PostgreSQL v3 wire codec. No I/O at all.
 *
 * Readers take a byte view (buf, len) and say whether it holds a complete
 * message, needs more bytes (and how many at least), or is invalid (and why);
 * a complete message is returned as a view borrowed from the caller's buffer.
 * Builders append messages to a growable proto_buf whose `failed` flag is
 * sticky, so a chain of appends needs one check at the end. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION_3 196608u        /* 3.0 */
#define PROTO_CANCEL_REQUEST 80877102u /* 1234.5678 */
#define PROTO_SSL_REQUEST 80877103u    /* 1234.5679 */
#define PROTO_GSSENC_REQUEST 80877104u /* 1234.5680 */
#define PROTO_MAX_STARTUP 10000u       /* bytes, as PostgreSQL */

typedef enum {
    PROTO_INVALID = -1,
    PROTO_COMPLETE = 0,
    PROTO_NEED_MORE = 1,
} proto_status;

/* "complete", "need more", "invalid". */
const char *proto_status_to_str(proto_status s);

/* A regular message: type byte, int32 length (counting itself), body. */
typedef struct proto_msg {
    uint8_t type;
    const uint8_t *body; /* borrowed; body_len bytes */
    uint32_t body_len;
    size_t total_len; /* 1 + 4 + body_len: bytes to consume */
} proto_msg;

/* Frame one regular message at the start of buf. max_len bounds the length
 * field (a larger one is invalid). On PROTO_NEED_MORE, *need (if not NULL) is
 * the total number of bytes needed to make progress (>= len + 1): 5 while the
 * header is incomplete, then 1 + the length field. On PROTO_INVALID, *why (if
 * not NULL) is a static explanation. The type byte is not validated. */
proto_status proto_read_msg(const uint8_t *buf, size_t len, uint32_t max_len,
                            proto_msg *out, size_t *need, const char **why);

/* Only the header: type and total length, when at least 5 bytes are there
 * (else PROTO_NEED_MORE). The length field is validated as in proto_read_msg. */
proto_status proto_read_header(const uint8_t *buf, size_t len, uint32_t max_len,
                               uint8_t *type, size_t *total_len, const char **why);

/* proto_read_header for what a client sends after its startup: a type byte
 * PostgreSQL does not take from a frontend is invalid too ("invalid frontend
 * message type N", as PostgreSQL says; *why valid until the next call on the
 * same thread), so garbage never reaches a backend. */
proto_status proto_read_frontend_header(const uint8_t *buf, size_t len, uint32_t max_len,
                                        uint8_t *type, size_t *total_len, const char **why);

#define PROTO_MAX_STARTUP_PARAMS 64

/* The first packet of a connection (no type byte). */
typedef struct proto_startup {
    uint32_t code; /* PROTO_VERSION_3 (or another major 3 minor), or a request code */
    size_t total_len;
    /* StartupMessage: name/value pairs, borrowed, NUL-terminated in buf. */
    const char *names[PROTO_MAX_STARTUP_PARAMS];
    const char *values[PROTO_MAX_STARTUP_PARAMS];
    size_t n_params;
    /* CancelRequest */
    uint32_t cancel_pid;
    uint32_t cancel_key;
} proto_startup;

/* Parse a startup-phase packet: StartupMessage, SSLRequest, GSSENCRequest or
 * CancelRequest. Lengths above PROTO_MAX_STARTUP, a missing terminator, a
 * protocol major other than 3 (reported as invalid with a why naming it),
 * missing "user", too many params are PROTO_INVALID.
 *
 * *need is 4 until the length word is in, then the packet's length. The length
 * and, once 8 bytes are in, the code are checked at once (an SSLRequest of the
 * wrong length or protocol 2.0 is refused without waiting for the rest). The
 * why for an unsupported version ("unsupported frontend protocol 2.0: server
 * supports 3.0 to 3.0") lives in a thread-local buffer valid until the next
 * call on that thread; every other why is a static string. Minor versions of 3
 * above 0 are accepted and reported in code. An empty "user" counts as missing;
 * the terminator must be the packet's last byte. On PROTO_INVALID the contents
 * of *out are unspecified. */
proto_status proto_read_startup(const uint8_t *buf, size_t len, proto_startup *out,
                                size_t *need, const char **why);

/* Look up a startup parameter; NULL if absent. If a name occurs more than
 * once, the last occurrence wins (as PostgreSQL applies them in order). */
const char *proto_startup_get(const proto_startup *s, const char *name);

/* Fields of an ErrorResponse/NoticeResponse body, borrowed (NULL if absent).
 *
 * Body parsers below check the whole body as PostgreSQL does: C strings end
 * inside it, integers fit, no bytes are left over (Parse and Bind are walked to
 * their end). Any out-pointer may be NULL. The message type is not checked. */
typedef struct proto_error_fields {
    const char *severity; /* V (non-localized) if present, else S (localized) */
    const char *sqlstate; /* C */
    const char *message;  /* M */
    const char *detail;   /* D */
    const char *hint;     /* H */
} proto_error_fields;
proto_status proto_parse_error(const proto_msg *m, proto_error_fields *out);

/* ParameterStatus body: name and value, borrowed. */
proto_status proto_parse_param_status(const proto_msg *m, const char **name,
                                      const char **value);

/* Message bodies holding a single C string (Query 'Q', CommandComplete 'C',
 * PasswordMessage 'p' as text): the string, borrowed. */
proto_status proto_parse_cstring(const proto_msg *m, const char **s);

/* Parse 'P': statement name and query. Bind 'B': portal and statement name.
 * Close 'C'/Describe 'D' (client): kind ('S' or 'P', anything else is invalid)
 * and name. */
proto_status proto_parse_parse(const proto_msg *m, const char **stmt, const char **query);
proto_status proto_parse_bind(const proto_msg *m, const char **portal, const char **stmt);
proto_status proto_parse_close_describe(const proto_msg *m, char *kind, const char **name);

/* A Bind 'B' in full: its names, its parameter formats and values (borrowed
 * from the body). The values are checked as proto_parse_bind does; the format
 * count is not matched to the parameter count (PostgreSQL judges that). */
typedef struct proto_bind {
    const char *portal;
    const char *stmt;
    uint16_t n_formats;     /* parameter format codes given: 0 (all text), 1 (one for all) or one each */
    const uint8_t *formats; /* n_formats big-endian int16s */
    uint16_t n_params;
    const uint8_t *values; /* n_params of: int32 length (-1 = NULL), then that many bytes */
    uint16_t n_result_formats;
} proto_bind;
proto_status proto_parse_bind_params(const proto_msg *m, proto_bind *out);

/* One parameter of a Bind parsed by proto_parse_bind_params. */
typedef struct proto_bind_value {
    bool binary;         /* its format code is not 0 (text) */
    const uint8_t *data; /* NULL for SQL NULL */
    int32_t len;         /* -1 for SQL NULL */
} proto_bind_value;
/* A position among a Bind's parameters; zeroed = before the first. */
typedef struct proto_bind_iter {
    uint16_t index;
    size_t off;
} proto_bind_iter;
/* The next parameter into *v: false after the last. A parameter beyond the
 * format codes given (when more than one was) counts as text. */
bool proto_bind_next(const proto_bind *b, proto_bind_iter *it, proto_bind_value *v);

/* The parameters of a Bind for a log line, as a tuple, SQLAlchemy-like:
 * ('42', NULL, <binary 4 bytes>). A text value is quoted, with \, ' and
 * control bytes escaped (\\, \', \n, \r, \t, \xNN) and cut after
 * PROTO_PARAM_SHOW_CHARS characters (UTF-8 sequences kept whole) with "..."
 * after its quote. The text is NUL-terminated in out; when the tuple does
 * not fit in cap - 1 bytes, the parameters that do not are shown as one
 * "...": ('42', ...). cap must be at least 16 (else out gets ""). Returns
 * the length written. */
#define PROTO_PARAM_SHOW_CHARS 200
size_t proto_bind_params_text(const proto_bind *b, char *out, size_t cap);

/* The first n C strings of a body of which only the first len bytes are at
 * hand (a message too big to keep whole, seen in part): PROTO_COMPLETE when
 * all n end within those bytes (out[i] borrowed from body), else
 * PROTO_NEED_MORE. Nothing else of the body is checked. */
proto_status proto_peek_cstrings(const uint8_t *body, size_t len, size_t n, const char **out);

/* SASLInitialResponse 'p': mechanism and the client-first data. A data length
 * of -1 (no data) gives *data = NULL and *data_len = -1. */
proto_status proto_parse_sasl_initial(const proto_msg *m, const char **mechanism,
                                      const uint8_t **data, int32_t *data_len);

/* ---- builders ---- */

/* The largest a proto_buf may grow (PostgreSQL's own limit on a message);
 * an append beyond it fails the buffer. */
#define PROTO_BUF_MAX (1024u * 1024u * 1024u)

/* proto_buf_init() or a zeroed struct is an empty buffer. Once `failed` is
 * set, every call except free and reset is a no-op. It is set by a failed
 * allocation, growth past PROTO_BUF_MAX, end() without begin(), begin() inside
 * an open message, a message longer than INT32_MAX, or a count that does not
 * fit its 16-bit field (more than 65535). put_str(NULL) writes an empty
 * string. */
typedef struct proto_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;      /* sticky: an allocation failed or a message was malformed */
    size_t msg_start; /* offset of the message being built (internal) */
    size_t len_pos;   /* offset of its length field (internal; valid if in_msg) */
    bool in_msg;      /* between begin() and end() (internal) */
} proto_buf;

void proto_buf_init(proto_buf *b);
void proto_buf_free(proto_buf *b);
void proto_buf_reset(proto_buf *b); /* len = 0, failed = false; keeps memory */
void proto_buf_append(proto_buf *b, const void *data, size_t len); /* raw bytes */

/* Generic message building: begin(type), put_*, end() fills in the length.
 * type 0 begins a typeless startup-style packet. */
void proto_buf_begin(proto_buf *b, uint8_t type);
void proto_buf_put_u8(proto_buf *b, uint8_t v);
void proto_buf_put_i16(proto_buf *b, int16_t v);
void proto_buf_put_i32(proto_buf *b, int32_t v);
void proto_buf_put_bytes(proto_buf *b, const void *data, size_t len);
void proto_buf_put_str(proto_buf *b, const char *s); /* with its NUL */
void proto_buf_end(proto_buf *b);

/* Whole messages. */
void proto_build_auth(proto_buf *b, int32_t code, const void *data, size_t len); /* 'R' */
void proto_build_auth_ok(proto_buf *b);
void proto_build_param_status(proto_buf *b, const char *name, const char *value); /* 'S' */
void proto_build_backend_key(proto_buf *b, uint32_t pid, uint32_t key);        /* 'K' */
void proto_build_ready(proto_buf *b, char status);                             /* 'Z' */
/* 'E' with S and V = severity ("ERROR", "FATAL"), C, M, optional D (NULL). */
void proto_build_error(proto_buf *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail);
void proto_build_notice(proto_buf *b, const char *severity, const char *sqlstate,
                        const char *message);
void proto_build_query(proto_buf *b, const char *sql);              /* 'Q' */
void proto_build_command_complete(proto_buf *b, const char *tag);   /* 'C' */
void proto_build_empty_query(proto_buf *b);                         /* 'I' */
void proto_build_terminate(proto_buf *b);                           /* 'X' */
void proto_build_sync(proto_buf *b);                                /* 'S' (client) */
/* Row description of n text columns named names[i]. */
void proto_build_row_description(proto_buf *b, size_t n, const char *const *names);
/* Data row of n text values (NULL = SQL NULL). */
void proto_build_data_row(proto_buf *b, size_t n, const char *const *values);
void proto_build_parse(proto_buf *b, const char *stmt, const char *query,
                       size_t n_types, const uint32_t *types);
void proto_build_close(proto_buf *b, char kind, const char *name); /* 'C' (client) */

/* ---- SQL scanning (proto_sql.c) ---- */

/* What the statements of a query string do to session state. */
enum {
    PROTO_SQL_SET = 1u << 0,        /* session SET / RESET x / set_config / LOAD */
    PROTO_SQL_LISTEN = 1u << 1,
    PROTO_SQL_ADVISORY = 1u << 2,   /* a session-level advisory lock */
    PROTO_SQL_TEMP = 1u << 3,       /* CREATE TEMP … */
    PROTO_SQL_CURSOR = 1u << 4,     /* DECLARE … WITH HOLD */
    PROTO_SQL_PREPARE = 1u << 5,    /* SQL-level PREPARE */
    PROTO_SQL_SET_REPORTED = 1u << 7, /* SET of a reported setting (TimeZone …): follows the client */
    PROTO_SQL_RESET_ALL = 1u << 8,
    PROTO_SQL_UNLISTEN_ALL = 1u << 9,
    PROTO_SQL_DISCARD_ALL = 1u << 10,
    PROTO_SQL_DISCARD_TEMP = 1u << 11,
    PROTO_SQL_DEALLOCATE_ALL = 1u << 12,
    PROTO_SQL_CLOSE_ALL = 1u << 13,
    PROTO_SQL_ADVISORY_UNLOCK_ALL = 1u << 14,
};
#define PROTO_SQL_CREATES_STATE 0x7fu
unsigned proto_sql_session_effects(const char *sql, size_t len);
/* A query string that is "DEALLOCATE [PREPARE] name" alone: 1 and the
 * name (lower-cased, as PostgreSQL folds it) in `name`, else 0. */
int proto_sql_deallocate_name(const char *sql, size_t len, char *name, size_t cap);
/* "RESET name" or "SET [SESSION] name TO|= DEFAULT" alone: 1 and the name
 * (lower-cased) in `name`, else 0. The setting goes back to the session's
 * default, which is no state of the client's own. */
int proto_sql_reset_name(const char *sql, size_t len, char *name, size_t cap);
/* "SET [SESSION] name TO|= value" alone, the value one word, number or
 * plain quoted literal: 1 with the name (lower-cased) and the value as the
 * server will take it, else 0. Such a setting can follow the client like a
 * startup parameter instead of pinning it. */
int proto_sql_simple_set(const char *sql, size_t len, char *name, size_t ncap, char *value, size_t vcap);
