/* admin_commands.h: the admin console's commands that act on the daemon
 * (RELOAD, PAUSE, RESUME, DISPOSE, SHUTDOWN) and SHOW CONFIG. */
#pragma once

#include <stdbool.h>

typedef struct tp_client tp_client;

/* Runs `sql` when it is one of these commands, sending the answer (PAUSE may
 * send it later); false when it is none of them. */
bool admin_command(tp_client *c, const char *sql);
/* An admin client is closing: forget its pending PAUSE. */
void admin_client_gone(tp_client *c);
/* A CancelRequest for an admin client: ends the wait of its PAUSE. */
void admin_cancel(tp_client *c);
