/* reset.h: giving a backend back after its client is done with it. */
#pragma once

#include <stdbool.h>

typedef struct tp_backend tp_backend;

/* The client left (or, in transaction mode, finished a transaction). Make the
 * backend fit to lend again — ROLLBACK or COMMIT per pool_reset_on_return if
 * it is inside a transaction (or close it for `none`), DISCARD ALL when a
 * session ended — then check it in. A backend still running a query, or one
 * whose reset fails, is closed instead. */
void backend_release(tp_backend *b, bool session_end);
