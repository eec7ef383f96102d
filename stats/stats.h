/* stats.h: the figures behind SHOW STATS, SHOW POOLS and the Prometheus
 * endpoint, no I/O and no clock.
 *
 * - stats_hist: a histogram of durations in seconds over fixed log-scale
 *   buckets (100 µs ... 30 s, then +Inf), cheap to update in the relay's hot
 *   path (a few comparisons and additions), from which the mean and any
 *   quantile are estimated the way Prometheus' histogram_quantile() does.
 * - stats_counters: what the daemon counts per pool on top of the pool
 *   algorithm's own counters (pool_stats).
 * - stats_figures: every figure of one pool at one moment, gathered once
 *   (daemon/figures.c) and printed by both the admin console and /metrics,
 *   so the two cannot disagree.
 * - stats_text and stats_prom_render(): the Prometheus text exposition
 *   format 0.0.4 of a set of figures. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"

/* Upper bounds (inclusive, seconds) of the finite buckets, increasing. */
#define STATS_HIST_NBOUNDS 17
extern const double stats_hist_bounds[STATS_HIST_NBOUNDS];

typedef struct stats_hist {
    /* Observations per bucket (not cumulative): buckets[i] holds the values
     * v with bounds[i-1] < v <= bounds[i]; buckets[STATS_HIST_NBOUNDS] those
     * above the last bound (the +Inf bucket). */
    uint64_t buckets[STATS_HIST_NBOUNDS + 1];
    uint64_t count; /* observations */
    double sum;     /* their sum, seconds */
    double max;     /* the largest one, seconds (0 when none) */
} stats_hist;

/* Count one duration (seconds; negative or NaN counts as 0). */
void stats_hist_observe(stats_hist *h, double seconds);
/* Observations <= stats_hist_bounds[i] (i < STATS_HIST_NBOUNDS), or all of
 * them (i == STATS_HIST_NBOUNDS): Prometheus' cumulative _bucket value. */
uint64_t stats_hist_cumulative(const stats_hist *h, size_t i);
/* Mean in seconds; 0 when empty. */
double stats_hist_mean(const stats_hist *h);
/* Estimated q-quantile (0 <= q <= 1) in seconds; 0 when empty. Linear
 * interpolation inside the bucket that holds rank q * count (the first
 * bucket starts at 0), as Prometheus' histogram_quantile(); the +Inf bucket
 * answers the largest observation, and no estimate exceeds it. */
double stats_hist_quantile(const stats_hist *h, double q);

/* Counted by the daemon for one pool (the pool algorithm counts checkouts,
 * timeouts, invalidations, recycles and connects itself, see pool_stats). */
typedef struct stats_counters {
    /* Transactions completed: in transaction mode one per lend of a backend
     * that ended with the client's ReadyForQuery (idle) and the backend's
     * checkin; in session mode, and for pinned clients, one per
     * ReadyForQuery that ends a run of client messages with the backend idle.
     * A transaction a client abandons (disconnects inside it) is not counted. */
    uint64_t transactions;
    /* Simple Query messages plus extended-protocol Execute messages relayed. */
    uint64_t queries;
    uint64_t bytes_received; /* from the pool's clients, after login */
    uint64_t bytes_sent;     /* to the pool's clients, tidepool's own messages included */
    uint64_t pre_ping_failures;
    stats_hist wait; /* checkout wait: from the client's need to its backend */
    stats_hist xact; /* transaction duration, as counted in `transactions` */
} stats_counters;

/* Every figure of one pool at one moment. */
typedef struct stats_figures {
    const char *pool;         /* the pool's NAME (admin console) */
    const char *logging_name; /* pool_logging_name (the metrics' pool label) */
    int pool_size, max_overflow;
    uint64_t clients; /* client connections to this pool */
    int pinned;       /* of them, pinned to their backend by session state */
    pool_stats algo;  /* gauges and counters of the pool algorithm */
    stats_counters counters;
} stats_figures;

/* Process-wide figures. */
typedef struct stats_globals {
    const char *version;
    uint64_t clients; /* every client connection, admin console included */
} stats_globals;

/* A growing text buffer with a sticky failure flag: check `failed` once
 * after a chain of appends. */
typedef struct stats_text {
    char *data; /* NUL-terminated when not failed */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; data holds what fitted */
} stats_text;

void stats_text_init(stats_text *t);
void stats_text_free(stats_text *t);
void stats_text_printf(stats_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stats_text_append(stats_text *t, const void *data, size_t len);
/* Append s as a Prometheus label value: \ " and newline escaped. */
void stats_text_label_value(stats_text *t, const char *s);

/* The Prometheus text exposition (format 0.0.4) of the globals and of n
 * pools: every family with its # HELP and # TYPE lines, then one sample per
 * pool labelled pool="<logging_name>". Returns 0, or -1 when out of memory. */
int stats_prom_render(stats_text *out, const stats_globals *g, const stats_figures *f, size_t n)
    __attribute__((warn_unused_result));
