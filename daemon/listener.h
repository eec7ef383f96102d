/* listener.h: the sockets clients connect to: TCP on listen_addr:listen_port
 * (numeric addresses or host names) and the Unix socket
 * unix_socket_dir/.s.PGSQL.<listen_port>. */
#pragma once

#include "config/config.h"

/* Open every listener of cfg. A listen_addr host name is resolved here, with
 * getaddrinfo (this runs before the loop does), and every address it has is
 * listened on. Negative when one cannot be opened. */
int listeners_open(const config *cfg) __attribute__((warn_unused_result));
/* --check: report, as "FILE:LINE: listen_addr: what", each listen_addr item
 * that does not resolve (what listeners_open would refuse before binding).
 * Returns the number of problems reported. */
int listeners_check(const config *cfg, void (*report)(void *arg, const char *message), void *arg);
/* Stop accepting and close every listener (removes the socket file). */
void listeners_close(void);
