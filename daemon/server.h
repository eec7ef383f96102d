/* server.h: the daemon's process-wide state — loop, configuration, users,
 * listeners, client list — and its lifecycle (start, reload, stop). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "auth/auth.h"
#include "config/config.h"

typedef struct tp_client tp_client;

typedef struct tp_server {
    uv_loop_t *loop;
    config *cfg;
    auth_file users;
    bool have_users;
    tp_client *clients; /* every client connection */
    size_t n_clients;
    bool stopping;
    int exit_code;
} tp_server;

extern tp_server tp;

/* Open listeners and pools for cfg, run the loop until stopped. Takes cfg
 * (it is freed, or the configuration a reload put in its place). Returns the
 * process exit code. */
int server_run(config *cfg);
void server_stop(bool graceful);
/* Called when a client or backend went away, so a graceful stop can end. */
void server_maybe_finish(void);
