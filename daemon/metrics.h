/* metrics.h: the Prometheus endpoint (GET /metrics on metrics_listen). */
#pragma once

#include "config/config.h"

/* Listen on cfg->metrics_listen, if set. Negative when it cannot. */
int metrics_open(const config *cfg) __attribute__((warn_unused_result));
/* Stop listening and close the scrapes in progress. metrics_open() may be
 * called again afterwards (a reload that changed metrics_listen). */
void metrics_close(void);
