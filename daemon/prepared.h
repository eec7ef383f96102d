/* prepared.h: protocol-level named prepared statements in transaction mode.
 *
 * A client's named statements live in tidepool, not on a backend: each is
 * remembered (name -> query and parameter types) and prepared on whichever
 * backend serves the client, under a server-side name derived from its text
 * ("tp_" + hash), so clients sharing a backend share the statement and names
 * never collide. Each backend keeps a bounded set of what it has prepared.
 *
 * Responses are kept in order with a queue per backend of what each message
 * sent will answer: a Parse the backend already has is not sent and its
 * ParseComplete is made up at its place in the stream; a Parse tidepool adds
 * before a Bind has its ParseComplete swallowed; a client's Close of a named
 * statement is answered by tidepool.
 *
 * What tidepool remembers for a client is bounded by its pool's
 * max_client_prepared_statements: a Parse of a new name beyond it is refused
 * with 53400 for that client alone (see prepared_parse_refused). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/buf.h"
#include "proto/proto.h"

typedef struct tp_client tp_client;
typedef struct tp_backend tp_backend;

/* A client's named statement. */
typedef struct tp_stmt {
    char *name;         /* the client's name */
    uint64_t hash;      /* of the Parse body after the name (query, types) */
    tp_shared *rest;    /* Parse body after the name: query\0 int16 n, types
                           (shared: echo.c keeps the text of runs in flight) */
    unsigned effects;   /* PROTO_SQL_* session effects of its query, applied at each Bind */
} tp_stmt;

/* Named statements, oldest first. */
typedef struct tp_stmts {
    tp_stmt *items;
    size_t count, cap;
} tp_stmts;

/* What one message sent to a backend will answer. */
typedef enum {
    EXPECT_PARSE = 1, /* ParseComplete or ErrorResponse */
    EXPECT_BIND,      /* BindComplete */
    EXPECT_DESCRIBE,  /* RowDescription or NoData (after ParameterDescription) */
    EXPECT_EXECUTE,   /* CommandComplete, EmptyQueryResponse or PortalSuspended */
    EXPECT_CLOSE,     /* CloseComplete */
    EXPECT_SYNC,      /* ReadyForQuery */
    EXPECT_QUERY,     /* ReadyForQuery (simple Query, FunctionCall) */
    FAKE_PARSE,       /* send the client a ParseComplete here */
    FAKE_CLOSE,       /* send the client a CloseComplete here */
    SWALLOW_PARSE,    /* tidepool's own Parse: drop its ParseComplete */
    SWALLOW_CLOSE,    /* tidepool's own Close: drop its CloseComplete */
    REFUSED_PARSE,    /* stands for a refused Parse: its error is replaced by
                         the client's 53400 */
} expect_kind;

typedef struct tp_expect {
    uint8_t kind;
    uint64_t hash; /* statement of a Parse, to forget it if the Parse fails */
} tp_expect;

typedef struct tp_expects {
    tp_expect *items; /* ring buffer */
    size_t head, count, cap;
    uint64_t popped;  /* answers received so far (replay bookkeeping) */
} tp_expects;

/* A batch of Bind/Describe/Execute/Sync kept until it is answered, so that
 * one whose first Bind meets a stale plan can be sent again after the
 * statement is prepared afresh (see prepared_backend_message). */
typedef struct tp_replay {
    uint8_t *data;        /* the client's messages, as it sent them */
    size_t len, cap;
    bool capturing;       /* the batch is still arriving */
    bool ready;           /* a whole batch (up to Sync) is kept */
    bool pending;         /* its Bind failed on a stale plan: resend at ReadyForQuery */
    uint64_t popped_at;   /* tp_expects.popped when the batch began */
    uint64_t hash;        /* statement of its first Bind */
} tp_replay;

/* A backend's prepared statements (server side), least recently used first. */
typedef struct tp_prepared {
    uint64_t *hashes;
    size_t count, cap;
    bool stale; /* a plan went stale ("cached plan must not change result
                   type"): DEALLOCATE ALL before it is lent again */
} tp_prepared;

void stmts_clear(tp_stmts *s);
tp_stmt *stmts_find(tp_stmts *s, const char *name);
/* Forget one (the others keep their order). */
void stmts_remove(tp_stmts *s, const char *name);
/* Remember name -> rest, replacing a statement of that name in its place:
 * rest copied, or (_shared) one more reference to it. -1 when out of memory. */
int stmts_put(tp_stmts *s, const char *name, uint64_t hash, const uint8_t *rest, size_t rest_len)
    __attribute__((warn_unused_result));
int stmts_put_shared(tp_stmts *s, const char *name, uint64_t hash, tp_shared *rest)
    __attribute__((warn_unused_result));
/* Remember the named statement of a whole Parse message: 1 when remembered,
 * 0 when it is unnamed or malformed, -1 when out of memory. */
int stmts_register(tp_stmts *s, const uint8_t *msg, size_t total) __attribute__((warn_unused_result));
void expects_clear(tp_expects *q);
void prepared_clear(tp_prepared *p);
void replay_clear(tp_replay *r);
/* A client message that cannot be replayed went to the backend. */
void prepared_no_replay(tp_backend *b);

/* Client -> backend, transaction mode: send one whole message of the client
 * (type and body), rewriting statement names and adding what the backend
 * lacks. Returns 0, or -1 when the link failed or memory ran out. */
int prepared_client_message(tp_client *c, tp_backend *b, uint8_t type, const uint8_t *msg,
                            size_t total) __attribute__((warn_unused_result));
/* Remember a named Parse without a backend (a Parse+Sync alone, as
 * PQprepare sends): 1 when remembered, 0 when not a named statement, -1 when
 * out of memory. It is prepared on a backend at its first Bind or Describe,
 * where PostgreSQL then judges it. */
int prepared_register(tp_client *c, const uint8_t *msg, size_t total) __attribute__((warn_unused_result));
/* A whole Parse message that would make the client's named statements more
 * than its pool's max_client_prepared_statements (a new name while it has
 * that many already; 0 = no limit): the Parse must be refused with
 * prepared_send_refusal. The first refusal of each client is logged. */
bool prepared_parse_refused(tp_client *c, const uint8_t *msg, size_t total);
/* The client's ErrorResponse (53400) for a refused Parse. */
void prepared_send_refusal(tp_client *c);
/* SQL "DEALLOCATE name" of one of the client's protocol-level statements:
 * sent as a DEALLOCATE of its server name. 1 when done, 0 when `name` is not
 * one of them, -1 on failure. */
int prepared_deallocate(tp_client *c, tp_backend *b, const char *name) __attribute__((warn_unused_result));
/* Whether a client message type goes through the above (whole). */
bool prepared_needs_whole(uint8_t type);
/* A simple Query or FunctionCall is being sent (streamed): its answer ends
 * at ReadyForQuery. */
int prepared_note_query(tp_backend *b) __attribute__((warn_unused_result));

/* Backend -> client: a message of `type` starts (the body is not needed).
 * Sends any made-up responses due before it, pops what it answers, and says
 * whether to drop it. `sqlstate`/`message` are given for ErrorResponse. */
bool prepared_backend_message(tp_backend *b, uint8_t type, const char *sqlstate, const char *message);
/* After a complete message: send any made-up responses now due. */
void prepared_flush_fakes(tp_backend *b);
/* The client ran DEALLOCATE ALL or DISCARD ALL. */
void prepared_client_dropped_all(tp_client *c, tp_backend *b);
