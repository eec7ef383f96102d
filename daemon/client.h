/* client.h: one application connection to tidepool: its startup, its
 * authentication, the pool it uses and, while one is lent, its backend. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/buf.h"
#include "daemon/params.h"
#include "daemon/prepared.h"
#include "pool/pool.h"

typedef struct tp_pool tp_pool;
typedef struct tp_backend tp_backend;
typedef struct client_auth client_auth;
typedef struct client_tls client_tls;
typedef struct client_echo client_echo;

typedef enum {
    CLIENT_STARTUP = 0,  /* reading the startup packet */
    CLIENT_AUTH,         /* waiting for a password or SASL message */
    CLIENT_LOGIN_WAIT,   /* authenticated, waiting for its first backend */
    CLIENT_READY,        /* logged in, no backend lent (transaction mode) */
    CLIENT_WAITING,      /* a message is pending, waiting for a backend */
    CLIENT_ACTIVE,       /* linked to a backend; relaying */
    CLIENT_RELEASING,    /* left; its backend is being reset */
    CLIENT_CLOSING,      /* handle closing; freed in the close callback */
    CLIENT_ADMIN,        /* on the admin console (virtual database tidepool) */
} client_state;

typedef struct tp_client {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uint64_t id;
    char peer[64];                /* address for logs */
    client_tls *tls;              /* TLS session (client_tls.c) once SSLRequest was
                                     accepted; NULL for plaintext clients */
    char *user;                   /* one allocation: user, then database */
    char *database;
    tp_params params;             /* session parameters as this client sees them:
                                     its startup parameters, then the reported
                                     values it was told and those it SET */
    tp_params *startup;           /* its startup parameters, as sent (RESET goes
                                     back to them), kept apart only once params
                                     change (client_param_set): NULL until then */
    tp_pool *pool;
    tp_stmts stmts;               /* its named prepared statements (transaction mode) */
    tp_backend *backend;          /* lent backend, or NULL */
    tp_backend *connecting;       /* backend being opened for it, or NULL */
    pool_waiter waiter;           /* its place in the pool's queue */
    double checkout_started;      /* when it began waiting for the current backend */
    struct tp_client *retry_next, *retry_prev;
    client_auth *auth;            /* while authenticating (client_auth.c), else NULL */
    tp_buf in;                    /* bytes read, not yet processed */
    tp_buf out;                   /* bytes to write at the next flush */
    struct tp_client *flush_next;
    size_t pass_remaining;        /* bytes of the current message to forward */
    char *pending_set_name;       /* a simple SET sent outside a transaction: */
    char *pending_set_value;      /* becomes its own parameter when it succeeds */
    double connected_at;
    client_echo *echo;             /* echo.c's record of its statements in flight:
                                      NULL unless its pool has echo on and it ran one */
    struct tp_client *next, *prev; /* server's client list */

    client_state state;
    uint32_t key_pid, key_secret; /* the BackendKeyData tidepool gave it */
    unsigned pins;                /* PROTO_SQL_* session state keeping it on its
                                     backend in transaction mode (0 = not pinned) */
    uint32_t idle_since;          /* client_limits_clock() when its last transaction ended */
    /* Flags, packed (an idle client's size counts). */
    bool unix_socket : 1;
    bool retrying : 1;           /* in its pool's connect-retry list */
    bool flush_queued : 1;       /* marked for the end-of-iteration flush */
    bool unsynced : 1;           /* extended-protocol messages sent since the last Sync */
    bool discard_until_sync : 1; /* after an error of tidepool's own: drop until Sync */
    bool reading : 1;            /* uv_read_start is in effect */
    bool backend_full : 1;       /* backpressure: the backend's queue is full */
    bool eof : 1;                /* the peer closed its side */
    bool logged_in : 1;          /* its first ReadyForQuery was sent */
    bool stmts_limit_logged : 1; /* a Parse of its was refused by
                                    max_client_prepared_statements (logged once) */
    bool reset_pending : 1;      /* RESET/DISCARD ALL ran: restore startup params at ReadyForQuery */
    bool reset_all_sent : 1;     /* a RESET ALL or DISCARD ALL of its is on the way
                                    (transaction mode): at its ReadyForQuery its
                                    parameters are its startup ones again */
    bool set_default_sent : 1;   /* its Query is a RESET x or SET x TO DEFAULT: a "SET"
                                    that completes it is a reset too (reset_pending) */
    bool restoring : 1;          /* its startup values are being set again after a RESET
                                    (client_reset.c): its input waits */
    bool txn_pooling : 1;        /* its pool lends per transaction: the pool's pool_mode
                                    when it logged in (a reload changes it for new
                                    clients only) */
    bool admin_waiting : 1;      /* admin console: its PAUSE has not completed */
    bool cancel_unsent : 1;      /* CLIENT_WAITING with its backend lent and being set up
                                    (parameter sync): a CancelRequest came, so its
                                    message is answered 57014 instead of being sent */
} tp_client;

/* A new connection was accepted on `server` (a listening stream). */
void client_accept(uv_stream_t *server, bool unix_socket);
/* Serve an already connected Unix stream socket as a new client (tests/fuzz
 * drives the state machine through a socketpair). On success it owns fd;
 * on failure the caller still does. Returns 0 or a negative libuv error. */
int client_adopt_fd(int fd);
/* The pool answered a checkout. */
void client_on_backend(tp_client *c, tp_backend *b);
void client_on_backend_error(tp_client *c, const char *sqlstate, const char *message);
/* Its backend died while lent. */
void client_on_backend_lost(tp_client *c, const char *message);
/* Relay: bytes from the linked backend to the client. */
int client_send(tp_client *c, const void *data, size_t len) __attribute__((warn_unused_result));
/* The linked backend finished a Query/Sync cycle (ReadyForQuery relayed). */
void client_on_ready(tp_client *c);
/* It holds a backend (session mode, or pinned) and is between transactions:
 * ReadyForQuery 'I' answered its last message, nothing of it is pending or
 * buffered. (A shutdown closes such a client at once.) */
bool client_is_idle_on_backend(const tp_client *c);
/* The client ran RESET ALL or DISCARD ALL: its parameters are its startup ones again. */
void client_on_session_reset(tp_client *c);
/* Statements with these PROTO_SQL_* session effects are being run: pin or
 * unpin the client (transaction mode). */
void client_apply_session_effects(tp_client *c, unsigned effects);
/* Its backend reported CommandComplete "SET" (b), or ReadyForQuery (NULL): a
 * pending simple SET took, or did not. */
void client_on_set_done(tp_client *c, tp_backend *b);
/* Close with a FATAL error (sqlstate may be NULL: close silently). */
void client_fatal(tp_client *c, const char *sqlstate, const char *message);
/* Find a client by the cancel key tidepool gave it. */
tp_client *client_find_by_key(uint32_t pid, uint32_t secret);
/* Write what is batched in c->out now (flush.c calls it). */
void client_flush(tp_client *c);
/* Write queue size (batched and in flight), for backpressure. */
size_t client_write_queue(const tp_client *c);
/* The backend's send queue drained: read from the client again. */
void client_on_backend_drained(tp_client *c);
