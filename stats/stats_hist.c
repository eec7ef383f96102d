/* stats_hist.c: fixed-bucket histograms of durations — observing one value
 * (the hot path: a short scan and three additions), the cumulative counts
 * Prometheus wants, and the mean and quantiles SHOW STATS prints. */
#include "stats/stats.h"

/* 1 - 2.5 - 5 steps from 100 µs to 10 s, then 30 s (pool_timeout's default):
 * a checkout served at once lands in the first buckets, a transaction of a
 * web request in the middle, a pool timeout near the end. */
const double stats_hist_bounds[STATS_HIST_NBOUNDS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

void stats_hist_observe(stats_hist *h, double seconds)
{
    if (!(seconds >= 0)) seconds = 0; /* negative or NaN */
    size_t i = 0;
    while (i < STATS_HIST_NBOUNDS && seconds > stats_hist_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum += seconds;
    if (seconds > h->max) h->max = seconds;
}

uint64_t stats_hist_cumulative(const stats_hist *h, size_t i)
{
    if (i > STATS_HIST_NBOUNDS) i = STATS_HIST_NBOUNDS;
    uint64_t n = 0;
    for (size_t k = 0; k <= i; k++)
        n += h->buckets[k];
    return n;
}

double stats_hist_mean(const stats_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

double stats_hist_quantile(const stats_hist *h, double q)
{
    if (h->count == 0) return 0;
    if (!(q > 0)) q = 0;
    if (q > 1) q = 1;
    double rank = q * (double)h->count;
    uint64_t below = 0; /* observations in the buckets before i */
    for (size_t i = 0; i <= STATS_HIST_NBOUNDS; i++) {
        uint64_t in = h->buckets[i];
        if (in == 0 || (double)(below + in) < rank) {
            below += in;
            continue;
        }
        if (i == STATS_HIST_NBOUNDS) return h->max; /* +Inf: the largest seen */
        double lo = i == 0 ? 0 : stats_hist_bounds[i - 1];
        double hi = stats_hist_bounds[i];
        double v = lo + (hi - lo) * ((rank - (double)below) / (double)in);
        return v < h->max ? v : h->max;
    }
    return h->max; /* not reached: rank <= count */
}
