/* backend.h: one connection from tidepool to PostgreSQL.
 *
 * A backend is opened with libpq's non-blocking connect (names resolved with
 * uv_getaddrinfo first, so nothing blocks the loop), then libpq steps aside:
 * its bytes are relayed directly on the same socket (through libpq's SSL
 * object when the link uses TLS), framed by the codec. It carries its own
 * pool slot (pool_conn) and the values of the parameters it reported. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/buf.h"
#include "daemon/params.h"
#include "daemon/prepared.h"
#include "pool/pool.h"
#include "proto/proto.h"

typedef struct tp_pool tp_pool;
typedef struct tp_client tp_client;
typedef struct tp_backend tp_backend;
typedef struct pg_conn PGconn;
typedef struct pg_cancel PGcancel;

typedef enum {
    BACKEND_RESOLVING = 0, /* uv_getaddrinfo on the pool's host names */
    BACKEND_CONNECTING,    /* PQconnectPoll driven by the uv_poll */
    BACKEND_SETUP,         /* on_connect SQL running */
    BACKEND_IDLE,          /* in the pool, not lent */
    BACKEND_LINKED,        /* lent to a client; relaying */
    BACKEND_CLOSING,       /* handles closing; freed in the last close callback */
} backend_state;

/* Called when an internal query ends: ok, or the first error's fields
 * (borrowed for the call only; NULL fields when the link died). */
typedef void (*backend_query_cb)(tp_backend *b, bool ok, const char *sqlstate,
                                 const char *message);
/* Called once when a connect attempt ends; error is NULL on success. */
typedef void (*backend_connect_cb)(tp_backend *b, const char *error);

/* One host entry of a connect: a host of the url and one of its addresses. */
typedef struct {
    char *host; /* as the url names it */
    char *addr; /* for libpq's hostaddr; "" when libpq needs none */
    char *port; /* its own port, or NULL: the url's port applies to all */
} backend_target;

struct tp_backend {
    pool_conn slot;      /* pool slot; slot.data = this */
    tp_pool *pool;
    tp_client *client;   /* the client it is lent to (or connecting for), or NULL */
    backend_state state;
    bool dead;           /* the link failed; backend_died is closing it */
    bool discard_after_reset; /* backend_release: DISCARD ALL (and on_connect) once out of the transaction */
    bool session_reset;       /* a client's RESET, DISCARD or SET x TO DEFAULT ran on it
                                 since on_connect last did: with on_connect, it is
                                 reset and runs on_connect again before its next lend */
    uint64_t id;         /* tidepool's number for logs */
    int pid;             /* PostgreSQL backend pid */

    PGconn *conn;        /* libpq connection (owns the socket) */
    void *ssl;           /* OpenSSL SSL* when the link uses TLS, else NULL */
    PGcancel *cancel;    /* for CancelRequest forwarding (backend_cancel.c) */
    int cancels;         /* cancels of its client's query in flight on the thread
                            pool: while > 0 it is lent to no one and not freed */
    bool checkin_deferred; /* it came back to pools_checkin while a cancel was
                              in flight: checked in when the last one is over */
    int fd;
    uv_poll_t *poll;     /* watches fd; malloc'd so a new socket (multi-host
                            connect) can get a new handle while the old closes */
    int poll_events;     /* events currently requested */
    int open_handles;    /* handles (poll, getaddrinfo) not yet closed */
    bool read_paused;    /* backpressure: the client's write queue is full */
    uv_getaddrinfo_t gai;
    int resolve_index;   /* host being resolved */
    char **hosts;        /* host list from the pool url (for resolution) */
    char **hostaddrs;    /* per host: its addresses, comma-separated; "" when
                            libpq needs none (Unix socket); NULL: did not resolve */
    int n_hosts;
    backend_target *targets; /* multi-host urls: libpq's host entries, one per address */
    int n_targets;
    int target_first;    /* first entry handed to libpq in this attempt */
    int target_now;      /* entry libpq is trying: its own connect deadline */
    backend_connect_cb on_connected;
    uv_timer_t *connect_timer; /* deadline of the connect (malloc'd; freed by its close) */
    char *connect_error; /* message of a failed connect (malloc'd) */

    tp_buf in;           /* bytes read from the backend, not yet processed */
    tp_buf out;          /* bytes to write to the backend */
    bool flush_queued;   /* marked for the end-of-iteration flush */
    tp_backend *flush_next;
    size_t pass_remaining; /* bytes of the current message still to forward */

    char txn_status;     /* last ReadyForQuery status: 'I', 'T' or 'E' */
    double xact_started; /* tp_now() when the client's current transaction
                            began (at lend in transaction mode, at its first
                            message in session mode or while pinned); 0 when
                            none is running or it is not to be counted */
    int pending_syncs;   /* Query/Sync sent whose ReadyForQuery hasn't come */
    bool in_copy;        /* CopyIn/CopyOut/CopyBoth in progress */
    bool copy_in;        /* while in_copy: it is COPY FROM STDIN (CopyInResponse) */
    int copy_syncs;      /* Syncs relayed since the last Query/Execute and before
                            any CopyDone/CopyFail: ignored if that is a COPY FROM STDIN */
    bool copy_in_over;   /* CopyDone/CopyFail sent (or the COPY failed) since then */
    char last_run;       /* 'Q' or 'E': the last Query or Execute relayed to it */
    tp_params params;    /* parameters as this backend has them now */
    uint64_t synced_tags[3]; /* tags of the client's, the pool's and its own
                                parameters when last in sync (client_login.c) */
    tp_expects expects;  /* what the messages sent will answer (transaction mode) */
    tp_prepared prepared; /* statements prepared on it under tidepool's names */
    tp_replay replay;     /* the batch in flight, kept for a stale-plan retry */

    backend_query_cb query_cb; /* internal query in flight (not relayed) */
    char *query_sqlstate;      /* first error of the internal query */
    char *query_message;
    tp_backend *next_all, *prev_all; /* all backends of the pool */
};

/* A new, unconnected backend of pool p (its slot is what pool_checkout
 * takes as fresh_conn). Freed by backend_close or backend_discard. */
tp_backend *backend_alloc(tp_pool *p);
/* Free a backend that was never started. */
void backend_discard(tp_backend *b);
/* Start connecting; cb runs once, possibly before this returns. */
void backend_start(tp_backend *b, backend_connect_cb cb);
/* Close now: sends Terminate if the link is usable, frees when handles close. */
void backend_close(tp_backend *b, const char *why);
/* Queue bytes to PostgreSQL; -1 when the link is dead. */
int backend_send(tp_backend *b, const void *data, size_t len) __attribute__((warn_unused_result));
/* Run SQL (simple Query) without relaying its results; cb runs at ReadyForQuery. */
int backend_query(tp_backend *b, const char *sql, backend_query_cb cb)
    __attribute__((warn_unused_result));
/* Run each of sqls[0..n) as a simple Query of its own (so that each may be
 * a statement a transaction block refuses, as DISCARD ALL), sent at once;
 * cb runs at the last ReadyForQuery, with the first error if any. */
int backend_query_each(tp_backend *b, const char *const *sqls, int n, backend_query_cb cb)
    __attribute__((warn_unused_result));
/* End a COPY FROM STDIN with CopyFail (why as its message), as tidepool's
 * own: cb runs at the ReadyForQuery that follows. */
int backend_copy_fail(tp_backend *b, const char *why, backend_query_cb cb)
    __attribute__((warn_unused_result));
/* Backpressure from the client side. */
void backend_pause_reading(tp_backend *b);
void backend_resume_reading(tp_backend *b);
/* True when it may be lent or kept: idle status, nothing pending. */
bool backend_is_clean(const tp_backend *b);
/* Account for a client message relayed to b: the ReadyForQuery each Query,
 * FunctionCall and Sync owes, except Syncs sent in COPY FROM STDIN, which
 * the server ignores (libpq sends one after an extended-protocol COPY's
 * Execute, and another after CopyDone). */
void backend_count_client_message(tp_backend *b, uint8_t type);
size_t backend_out_queue(const tp_backend *b);
/* Settings PostgreSQL does not report changed (SET/RESET/DISCARD): mark
 * their recorded values unknown so the next sync sets or resets them. */
void backend_forget_unreported_params(tp_backend *b);
/* The client was sent b's ReadyForQuery (relayed, or held back and sent
 * later): finish what it ends (a pending SET, a RESET) and let the client
 * carry on, or give b back. */
void backend_after_relayed_ready(tp_backend *b);
/* Forward a CancelRequest to PostgreSQL for the query b (lent) runs: PQcancel
 * on the thread pool. Until it is over, b goes back to no pool and is not
 * freed (see backend_cancel.c). 0, or a negative error (nothing started). */
int backend_cancel(tp_backend *b) __attribute__((warn_unused_result));
/* Write what is queued now (flush.c calls it). */
void backend_flush(tp_backend *b);
const char *backend_state_to_str(backend_state s);
