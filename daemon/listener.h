/* listener.h: the sockets clients connect to: TCP on listen_addr:listen_port
 * and the Unix socket unix_socket_dir/.s.PGSQL.<listen_port>. */
#pragma once

#include "config/config.h"

int listeners_open(const config *cfg) __attribute__((warn_unused_result));
/* Stop accepting and close every listener (removes the socket file). */
void listeners_close(void);
