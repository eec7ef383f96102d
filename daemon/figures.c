/* figures.c: gathers what the pool algorithm (pool_get_stats) and the
 * daemon's counters (tp_pool.stats) say about each pool into stats_figures,
 * so the admin console and the metrics endpoint print the same numbers. */
#include "daemon/figures.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/pools.h"
#include "daemon/server.h"
#include "version.h"

void figures_of(const tp_pool *p, double now, stats_figures *out)
{
    memset(out, 0, sizeof *out);
    out->pool = p->cfg.name;
    out->logging_name = p->cfg.pool_logging_name ? p->cfg.pool_logging_name : p->cfg.name;
    out->pool_size = p->cfg.pool_size;
    out->max_overflow = p->cfg.max_overflow;
    out->clients = p->clients;
    out->pinned = p->pinned;
    pool_get_stats(p->algo, now, &out->algo);
    out->counters = p->stats;
}

stats_figures *figures_all(size_t *n)
{
    *n = 0;
    size_t count = pools_count();
    if (count == 0) return NULL;
    stats_figures *f = calloc(count, sizeof *f);
    if (!f) return NULL;
    double now = tp_now();
    for (size_t i = 0; i < count; i++)
        figures_of(pools_at(i), now, &f[i]);
    *n = count;
    return f;
}

void figures_globals(stats_globals *out)
{
    out->version = TIDEPOOL_VERSION;
    out->clients = tp.n_clients;
}
