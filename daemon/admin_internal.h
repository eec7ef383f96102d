/* admin_internal.h: what the admin console's files share (admin_commands.c,
 * admin_pause.c). */
#pragma once

#include "daemon/pools.h"

typedef struct tp_client tp_client;

/* An ErrorResponse then ReadyForQuery; detail may be NULL. */
void admin_reply_error(tp_client *c, const char *sqlstate, const char *msg, const char *detail);
/* CommandComplete `tag` then ReadyForQuery. */
void admin_reply_done(tp_client *c, const char *tag);
/* The pool a command names; when there is none, replies 3D000 and returns NULL. */
tp_pool *admin_named_pool(tp_client *c, const char *name);

/* PAUSE [pool] / RESUME [pool] (admin_pause.c); name NULL = every pool. */
void admin_pause(tp_client *c, const char *name);
void admin_resume(tp_client *c, const char *name);
