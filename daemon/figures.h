/* figures.h: one snapshot of every pool's figures, the single source of
 * SHOW POOLS, SHOW STATS and GET /metrics. */
#pragma once

#include <stddef.h>

#include "stats/stats.h"

typedef struct tp_pool tp_pool;

/* The figures of pool p at time now (seconds, tp_now()). Strings are
 * borrowed from the pool. */
void figures_of(const tp_pool *p, double now, stats_figures *out);
/* Every pool's figures, taken at one moment, in configuration order: a
 * malloc'd array of *n (free() it), or NULL with *n = 0 when there is no
 * pool or no memory. */
stats_figures *figures_all(size_t *n);
void figures_globals(stats_globals *out);
