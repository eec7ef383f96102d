/* reset.h: giving a backend back after its client is done with it, and
 * bringing a backend's session back to what a new backend's is. */
#pragma once

#include <stdbool.h>

#include "daemon/backend.h"

/* The client left (or, in transaction mode, finished a transaction). Make the
 * backend fit to lend again — ROLLBACK or COMMIT per pool_reset_on_return if
 * it is inside a transaction (or close it for `none`), DISCARD ALL and the
 * pool's on_connect when a session ended or a client's RESET / DISCARD may
 * have undone what on_connect did — then check it in. A backend still running
 * a query, or one whose reset fails, is closed instead. */
void backend_release(tp_backend *b, bool session_end);

/* The pool has on_connect and a client's RESET, DISCARD or SET x TO DEFAULT
 * ran on b since on_connect last did: its effects may be gone. */
bool backend_needs_on_connect(const tp_backend *b);

/* Start b's session afresh, as a new backend's: DISCARD ALL, then the pool's
 * on_connect (if any), sent at once; cb runs at the end (ok, or the first
 * error: the caller closes the backend). What tidepool knows of b is updated
 * at once: no statement prepared, every setting at its reset value. */
int backend_reset_session(tp_backend *b, backend_query_cb cb) __attribute__((warn_unused_result));
