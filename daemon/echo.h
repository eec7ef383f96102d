/* echo.h: the pool key `echo` — one log line for each statement a client
 * runs, with its pool, client, user, duration and command tag (or ERROR and
 * its SQLSTATE); with `echo = debug` also its parameters. See echo.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tp_client tp_client;
typedef struct client_echo client_echo;

/* Client messages whose bodies echo reads: they are taken whole before they
 * are relayed, up to this size (a larger one streams and is seen in part). */
#define ECHO_WHOLE_LIMIT (1024 * 1024)
static inline bool echo_wants_whole(uint8_t type)
{
    return type == 'Q' || type == 'P' || type == 'B' || type == 'E' || type == 'C';
}

/* A message of the client is being relayed to its backend (its pool has
 * echo on): `have` of its `total` bytes are at msg (fewer for a big message
 * streamed). The client's echo state is made on first use. -1 when out of
 * memory. */
int echo_client_message(tp_client *c, uint8_t type, const uint8_t *msg, size_t have, size_t total)
    __attribute__((warn_unused_result));

/* A backend message relayed to c, whose echo state exists (c->echo): its
 * type, and for CommandComplete 'C' its tag, for ErrorResponse 'E' its
 * SQLSTATE. Acted on: 'C', 'E', ParseComplete '1', CopyInResponse 'G',
 * ReadyForQuery 'Z', and these, which the relay streams: */
void echo_backend_message(tp_client *c, uint8_t type, const char *arg);
static inline bool echo_streamed_type(uint8_t type)
{
    return type == '2' || type == 'I' || type == 's'; /* BindComplete, EmptyQueryResponse, PortalSuspended */
}

/* With the client. */
void echo_free(client_echo *e);
