/* stats_prom.c: the Prometheus text exposition format 0.0.4 of the figures
 * (what GET /metrics answers). One table names every per-pool gauge and
 * counter with its help text; each family is written once, # HELP and
 * # TYPE first, then one sample per pool. Histograms are written with
 * cumulative _bucket samples ending at le="+Inf", then _sum and _count. */
#include <stddef.h>
#include <stdio.h>

#include "stats/stats.h"

typedef enum { VAL_U64, VAL_INT, VAL_DBL } val_kind;

typedef struct family {
    const char *name;
    const char *type; /* "gauge" or "counter" */
    const char *help;
    val_kind kind;
    size_t offset; /* of the value in stats_figures */
} family;

#define F(field) offsetof(stats_figures, field)

static const family families[] = {
    {"tidepool_pool_clients", "gauge", "Client connections to the pool.", VAL_U64, F(clients)},
    {"tidepool_pool_size", "gauge", "Configured pool_size.", VAL_INT, F(pool_size)},
    {"tidepool_pool_max_overflow", "gauge", "Configured max_overflow (-1: no limit).", VAL_INT,
     F(max_overflow)},
    {"tidepool_pool_checked_in", "gauge", "Backends idle in the pool (checked in).", VAL_INT, F(algo.idle)},
    {"tidepool_pool_checked_out", "gauge", "Backends lent to clients (checked out).", VAL_INT, F(algo.lent)},
    {"tidepool_pool_connecting", "gauge", "Backends being connected.", VAL_INT, F(algo.connecting)},
    {"tidepool_pool_overflow", "gauge",
     "Open backends minus pool_size, as SQLAlchemy's QueuePool.overflow() (negative below pool_size).",
     VAL_INT, F(algo.overflow)},
    {"tidepool_pool_waiting", "gauge", "Clients queued for a backend.", VAL_INT, F(algo.waiting)},
    {"tidepool_pool_longest_wait_seconds", "gauge", "How long the first queued client has waited.", VAL_DBL,
     F(algo.longest_wait)},
    {"tidepool_pool_pinned_clients", "gauge", "Clients pinned to their backend by session state.", VAL_INT,
     F(pinned)},
    {"tidepool_transactions_total", "counter", "Transactions completed.", VAL_U64, F(counters.transactions)},
    {"tidepool_queries_total", "counter", "Simple Query and extended Execute messages relayed.", VAL_U64,
     F(counters.queries)},
    {"tidepool_client_received_bytes_total", "counter", "Bytes received from the pool's clients.", VAL_U64,
     F(counters.bytes_received)},
    {"tidepool_client_sent_bytes_total", "counter", "Bytes sent to the pool's clients.", VAL_U64,
     F(counters.bytes_sent)},
    {"tidepool_checkouts_total", "counter", "Backends given to clients by the pool.", VAL_U64,
     F(algo.checkouts)},
    {"tidepool_checkout_timeouts_total", "counter",
     "Clients that waited pool_timeout for a backend and got SQLSTATE 53300.", VAL_U64, F(algo.timeouts)},
    {"tidepool_invalidations_total", "counter",
     "Backends replaced at lend because of a pool-wide invalidation or a dispose.", VAL_U64,
     F(algo.invalidations)},
    {"tidepool_recycles_total", "counter", "Backends replaced at lend because older than pool_recycle.",
     VAL_U64, F(algo.recycles)},
    {"tidepool_pre_ping_failures_total", "counter", "Pre-pings (pool_pre_ping) that found a dead backend.",
     VAL_U64, F(counters.pre_ping_failures)},
    {"tidepool_backend_connects_total", "counter", "Backend connections opened.", VAL_U64, F(algo.connects)},
    {"tidepool_backend_connect_failures_total", "counter", "Backend connection attempts that failed.",
     VAL_U64, F(algo.connect_failures)},
};

typedef struct hist_family {
    const char *name;
    const char *help;
    size_t offset; /* of the stats_hist in stats_figures */
} hist_family;

static const hist_family hist_families[] = {
    {"tidepool_checkout_wait_seconds", "Time clients waited for a backend.", F(counters.wait)},
    {"tidepool_transaction_duration_seconds", "Duration of completed transactions.", F(counters.xact)},
};

static void header(stats_text *t, const char *name, const char *type, const char *help)
{
    stats_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pool_label(stats_text *t, const stats_figures *f)
{
    stats_text_printf(t, "pool=\"");
    stats_text_label_value(t, f->logging_name ? f->logging_name : f->pool);
    stats_text_printf(t, "\"");
}

static void sample(stats_text *t, const family *fam, const stats_figures *f)
{
    const char *base = (const char *)f + fam->offset;
    stats_text_printf(t, "%s{", fam->name);
    pool_label(t, f);
    switch (fam->kind) {
    case VAL_U64:
        stats_text_printf(t, "} %llu\n", (unsigned long long)*(const uint64_t *)base);
        break;
    case VAL_INT:
        stats_text_printf(t, "} %d\n", *(const int *)base);
        break;
    case VAL_DBL:
        stats_text_printf(t, "} %.6f\n", *(const double *)base);
        break;
    }
}

static void histogram(stats_text *t, const hist_family *fam, const stats_figures *f)
{
    const stats_hist *h = (const stats_hist *)((const char *)f + fam->offset);
    uint64_t cum = 0;
    for (size_t i = 0; i <= STATS_HIST_NBOUNDS; i++) {
        cum += h->buckets[i];
        stats_text_printf(t, "%s_bucket{", fam->name);
        pool_label(t, f);
        if (i < STATS_HIST_NBOUNDS)
            stats_text_printf(t, ",le=\"%g\"} %llu\n", stats_hist_bounds[i], (unsigned long long)cum);
        else
            stats_text_printf(t, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    stats_text_printf(t, "%s_sum{", fam->name);
    pool_label(t, f);
    stats_text_printf(t, "} %.9g\n%s_count{", h->sum, fam->name);
    pool_label(t, f);
    stats_text_printf(t, "} %llu\n", (unsigned long long)h->count);
}

int stats_prom_render(stats_text *out, const stats_globals *g, const stats_figures *f, size_t n)
{
    header(out, "tidepool_up", "gauge", "1 while tidepool serves.");
    stats_text_printf(out, "tidepool_up 1\n");
    header(out, "tidepool_build_info", "gauge", "tidepool's version, as a label; the value is 1.");
    stats_text_printf(out, "tidepool_build_info{version=\"");
    stats_text_label_value(out, g->version ? g->version : "");
    stats_text_printf(out, "\"} 1\n");
    header(out, "tidepool_clients", "gauge", "Client connections, admin console included.");
    stats_text_printf(out, "tidepool_clients %llu\n", (unsigned long long)g->clients);
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
        header(out, families[k].name, families[k].type, families[k].help);
        for (size_t i = 0; i < n; i++)
            sample(out, &families[k], &f[i]);
    }
    for (size_t k = 0; k < sizeof hist_families / sizeof hist_families[0]; k++) {
        header(out, hist_families[k].name, "histogram", hist_families[k].help);
        for (size_t i = 0; i < n; i++)
            histogram(out, &hist_families[k], &f[i]);
    }
    return out->failed ? -1 : 0;
}
