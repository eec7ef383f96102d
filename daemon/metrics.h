/* metrics.h: the Prometheus endpoint (GET /metrics on metrics_listen). */
#pragma once

#include "config/config.h"

/* Listen on cfg->metrics_listen, if set (a host name is resolved first,
 * with getaddrinfo: call it before the loop runs). Negative when it cannot. */
int metrics_open(const config *cfg) __attribute__((warn_unused_result));
/* --check: 0 when cfg->metrics_listen is unset or resolves (as metrics_open
 * would resolve it), else -1 with "FILE:LINE: metrics_listen: what" in why. */
int metrics_check(const config *cfg, char *why, size_t why_len) __attribute__((warn_unused_result));
/* Stop listening and close the scrapes in progress. metrics_open() may be
 * called again afterwards (a reload that changed metrics_listen). */
void metrics_close(void);
