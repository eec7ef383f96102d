/* fake_pg.h: a stand-in PostgreSQL server for fuzz_client, on the same libuv
 * loop as the daemon, listening on a Unix socket. It speaks just enough of
 * the server side of protocol 3.0 for tidepool's backends: trust login with
 * the usual ParameterStatus messages, simple and extended queries answered
 * with canned results (no SQL is run), transaction status from BEGIN /
 * COMMIT / ROLLBACK, an error for any statement containing "fail", COPY in
 * and out. Like PostgreSQL, it closes a connection that sends an invalid
 * message. */
#pragma once

#include <stddef.h>
#include <uv.h>

/* Listen on DIR/.s.PGSQL.PORT. Returns 0 or a negative libuv error. */
int fake_pg_start(uv_loop_t *loop, const char *dir, int port);
/* Connections accepted and not yet fully closed. */
size_t fake_pg_connections(void);
