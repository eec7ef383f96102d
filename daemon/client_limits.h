/* client_limits.h: client_login_timeout and client_idle_timeout, by one
 * periodic sweep over the client list (client_limits.c). */
#pragma once

#include <stdint.h>

/* Start the sweep (server start) and stop it (shutdown). */
void client_limits_start(void);
void client_limits_stop(void);
/* The clock of tp_client.idle_since: the loop's time in tenths of a second
 * (wraps after 13 years). */
uint32_t client_limits_clock(void);
