/* backend_internal.h: what backend.c and backend_connect.c share: the poll
 * handle management and the connect-phase poll callback. */
#pragma once

#include "daemon/backend.h"

int backend_poll_open(tp_backend *b) __attribute__((warn_unused_result));
void backend_poll_close(tp_backend *b);
void backend_poll_update(tp_backend *b, int events);
void backend_on_connect_poll(tp_backend *b, int status, int events);
/* Drop the connect deadline (connect over, or backend closing). */
void backend_connect_timer_stop(tp_backend *b);
/* Free the struct once no handle is open and no cancel is in flight any
 * more (after backend_close). */
void backend_maybe_free(tp_backend *b);
void backend_free_memory(tp_backend *b);
