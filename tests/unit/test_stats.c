/* test_stats.c: unit tests of stats/ — histogram buckets and their edges,
 * cumulative counts, mean and quantiles on known inputs, the text buffer and
 * label escaping, and the Prometheus rendering checked line by line against
 * the exposition grammar (HELP and TYPE before samples, cumulative buckets
 * ending at +Inf, _count equal to the +Inf bucket). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

#define EPS 1e-12

/* ---- histogram -------------------------------------------------------------- */

START_TEST(test_bounds_increasing)
{
    ck_assert(stats_hist_bounds[0] == 0.0001);
    ck_assert(stats_hist_bounds[STATS_HIST_NBOUNDS - 1] == 30);
    for (size_t i = 1; i < STATS_HIST_NBOUNDS; i++)
        ck_assert(stats_hist_bounds[i] > stats_hist_bounds[i - 1]);
}
END_TEST

START_TEST(test_bucket_edges)
{
    /* A value equal to a bound is in that bound's bucket (le = "less or
     * equal"); just above it, in the next one. */
    for (size_t i = 0; i < STATS_HIST_NBOUNDS; i++) {
        stats_hist h = {0};
        stats_hist_observe(&h, stats_hist_bounds[i]);
        ck_assert_uint_eq(h.buckets[i], 1);
        stats_hist_observe(&h, nextafter(stats_hist_bounds[i], INFINITY));
        ck_assert_uint_eq(h.buckets[i + 1], 1);
        ck_assert_uint_eq(h.count, 2);
    }
    stats_hist h = {0};
    stats_hist_observe(&h, 0);
    stats_hist_observe(&h, -1); /* a clock step backwards counts as 0 */
    stats_hist_observe(&h, NAN);
    ck_assert_uint_eq(h.buckets[0], 3);
    ck_assert(h.sum == 0);
    stats_hist_observe(&h, 31);
    stats_hist_observe(&h, 1e9);
    ck_assert_uint_eq(h.buckets[STATS_HIST_NBOUNDS], 2);
    ck_assert(h.max == 1e9);
}
END_TEST

START_TEST(test_cumulative_and_mean)
{
    stats_hist h = {0};
    ck_assert(stats_hist_mean(&h) == 0);
    ck_assert(stats_hist_quantile(&h, 0.99) == 0);
    stats_hist_observe(&h, 0.00005); /* bucket 0 */
    stats_hist_observe(&h, 0.0003);  /* bucket 2 (0.00025, 0.0005] */
    stats_hist_observe(&h, 0.0003);
    stats_hist_observe(&h, 2);   /* (1, 2.5] */
    stats_hist_observe(&h, 100); /* +Inf */
    ck_assert_uint_eq(stats_hist_cumulative(&h, 0), 1);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 1), 1);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 2), 3);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 12), 3); /* le=1 */
    ck_assert_uint_eq(stats_hist_cumulative(&h, 13), 4); /* le=2.5 */
    ck_assert_uint_eq(stats_hist_cumulative(&h, STATS_HIST_NBOUNDS - 1), 4);
    ck_assert_uint_eq(stats_hist_cumulative(&h, STATS_HIST_NBOUNDS), 5);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 99), 5);
    ck_assert(fabs(stats_hist_mean(&h) - (0.00005 + 0.0006 + 2 + 100) / 5) < EPS);
}
END_TEST

START_TEST(test_quantile_uniform_in_one_bucket)
{
    /* 100 values in (0.01, 0.025]: ranks spread linearly over the bucket. */
    stats_hist h = {0};
    for (int i = 1; i <= 100; i++)
        stats_hist_observe(&h, 0.01 + 0.015 * i / 100.0);
    ck_assert_uint_eq(h.buckets[7], 100);
    ck_assert(fabs(stats_hist_quantile(&h, 0.5) - (0.01 + 0.015 * 0.5)) < 1e-9);
    ck_assert(fabs(stats_hist_quantile(&h, 0.99) - (0.01 + 0.015 * 0.99)) < 1e-9);
    ck_assert(fabs(stats_hist_quantile(&h, 1) - 0.025) < 1e-9);
    ck_assert(fabs(stats_hist_quantile(&h, 0) - 0.01) < 1e-9); /* the bucket's lower edge */
}
END_TEST

START_TEST(test_quantile_across_buckets)
{
    /* 990 fast (in (0.5 ms, 1 ms]) and 10 slow (in (0.5 s, 1 s]): p99 is
     * the fast bucket's upper edge, p99.5 halfway through the slow bucket. */
    stats_hist h = {0};
    for (int i = 0; i < 990; i++)
        stats_hist_observe(&h, 0.0008);
    for (int i = 0; i < 10; i++)
        stats_hist_observe(&h, 0.9);
    ck_assert(fabs(stats_hist_quantile(&h, 0.99) - 0.001) < 1e-12);
    ck_assert(fabs(stats_hist_quantile(&h, 0.995) - 0.75) < 1e-12);
    ck_assert(fabs(stats_hist_quantile(&h, 0.5) - (0.0005 + 0.0005 * 500 / 990.0)) < 1e-12);
}
END_TEST

START_TEST(test_quantile_never_above_max)
{
    /* Every value 3 ms: interpolation in (2.5 ms, 5 ms] would say up to 5 ms;
     * the estimate is capped by the largest observation. */
    stats_hist h = {0};
    for (int i = 0; i < 50; i++)
        stats_hist_observe(&h, 0.003);
    ck_assert(stats_hist_quantile(&h, 0.99) <= 0.003);
    ck_assert(stats_hist_quantile(&h, 0.99) > 0.0025);
    /* In the +Inf bucket the answer is the largest observation. */
    stats_hist big = {0};
    stats_hist_observe(&big, 45);
    stats_hist_observe(&big, 60);
    ck_assert(stats_hist_quantile(&big, 0.99) == 60);
    ck_assert(stats_hist_quantile(&big, 0.5) == 60);
}
END_TEST

/* ---- text and rendering ------------------------------------------------------ */

START_TEST(test_text_grows_and_escapes)
{
    stats_text t;
    stats_text_init(&t);
    for (int i = 0; i < 2000; i++)
        stats_text_printf(&t, "%d,", i);
    ck_assert(!t.failed);
    ck_assert_uint_eq(strlen(t.data), t.len);
    ck_assert(strncmp(t.data, "0,1,2,", 6) == 0);
    ck_assert(strstr(t.data, "1999,") != NULL);
    stats_text_free(&t);
    stats_text_init(&t);
    stats_text_label_value(&t, "a\\b\"c\nd");
    ck_assert_str_eq(t.data, "a\\\\b\\\"c\\nd");
    stats_text_free(&t);
    stats_text_init(&t);
    stats_text_append(&t, "", 0); /* nothing: still no buffer */
    ck_assert_ptr_null(t.data);
    static char big[10000];
    memset(big, 'z', sizeof big);
    stats_text_append(&t, "ab", 2);
    stats_text_append(&t, big, sizeof big);
    ck_assert(!t.failed);
    ck_assert_uint_eq(t.len, 2 + sizeof big);
    ck_assert_uint_eq(strlen(t.data), t.len);
    ck_assert(t.data[0] == 'a' && t.data[t.len - 1] == 'z');
    stats_text_free(&t);
}
END_TEST

static stats_figures sample_pool(const char *name)
{
    stats_figures f;
    memset(&f, 0, sizeof f);
    f.pool = name;
    f.logging_name = name;
    f.pool_size = 5;
    f.max_overflow = 10;
    f.clients = 3;
    f.pinned = 1;
    f.algo.idle = 2;
    f.algo.lent = 1;
    f.algo.overflow = -2;
    f.algo.timeouts = 4;
    f.counters.transactions = 7;
    f.counters.queries = 21;
    for (int i = 0; i < 7; i++)
        stats_hist_observe(&f.counters.xact, 0.002 * (i + 1));
    stats_hist_observe(&f.counters.wait, 0);
    stats_hist_observe(&f.counters.wait, 40);
    return f;
}

/* Is `s` a metric name (Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*) of length n? */
static bool is_name(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = ch == '_' || ch == ':' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (i > 0 && ch >= '0' && ch <= '9');
        if (!ok) return false;
    }
    return true;
}

START_TEST(test_render_grammar)
{
    stats_figures f[2] = {sample_pool("inventorydb"), sample_pool("we\"ird\\name")};
    stats_globals g = {.version = "0.1.0", .clients = 6};
    stats_text t;
    stats_text_init(&t);
    ck_assert_int_eq(stats_prom_render(&t, &g, f, 2), 0);
    ck_assert(t.len > 0 && t.data[t.len - 1] == '\n');

    char family[128] = "", type[32] = "";
    bool help_seen = false;
    unsigned long long last_bucket = 0, inf_bucket = 0;
    int samples = 0;
    char *save = NULL;
    for (char *line = strtok_r(t.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            const char *name = line + 7;
            size_t n = strcspn(name, " ");
            ck_assert(is_name(name, n));
            ck_assert_uint_lt(n, sizeof family);
            memcpy(family, name, n);
            family[n] = '\0';
            help_seen = true;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            ck_assert(help_seen);
            char name[128];
            ck_assert_int_eq(sscanf(line + 7, "%127s %31s", name, type), 2);
            ck_assert_str_eq(name, family);
            ck_assert(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0 ||
                      strcmp(type, "histogram") == 0);
            continue;
        }
        ck_assert_msg(line[0] != '#', "stray comment: %s", line);
        /* A sample of the current family: name{labels} value */
        ck_assert_msg(type[0] != '\0', "sample before TYPE: %s", line);
        size_t n = strcspn(line, "{ ");
        ck_assert(is_name(line, n));
        char name[128];
        memcpy(name, line, n);
        name[n] = '\0';
        if (strcmp(type, "histogram") == 0) {
            size_t fl = strlen(family);
            ck_assert(strncmp(name, family, fl) == 0);
            const char *suffix = name + fl;
            ck_assert(strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 ||
                      strcmp(suffix, "_count") == 0);
            const char *value = strrchr(line, ' ') + 1;
            if (strcmp(suffix, "_bucket") == 0) {
                unsigned long long v = strtoull(value, NULL, 10);
                if (strstr(line, "le=\"0.0001\"")) last_bucket = 0;
                ck_assert(v >= last_bucket); /* cumulative */
                last_bucket = v;
                if (strstr(line, "le=\"+Inf\"")) inf_bucket = v;
            } else if (strcmp(suffix, "_count") == 0) {
                ck_assert_uint_eq(strtoull(value, NULL, 10), inf_bucket);
            }
        } else {
            ck_assert_str_eq(name, family);
        }
        const char *rest = line + n;
        if (*rest == '{') {
            const char *end = strstr(rest, "} ");
            ck_assert_ptr_nonnull(end);
            rest = end + 1;
        }
        ck_assert(*rest == ' ');
        char *endp;
        strtod(rest + 1, &endp);
        ck_assert_msg(*endp == '\0' && endp != rest + 1, "bad value: %s", line);
        samples++;
    }
    ck_assert_int_gt(samples, 50);
    stats_text_free(&t);

    /* Exact lines. */
    stats_text_init(&t);
    ck_assert_int_eq(stats_prom_render(&t, &g, f, 2), 0);
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_transactions_total{pool=\"inventorydb\"} 7\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_checkout_timeouts_total{pool=\"inventorydb\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_pool_overflow{pool=\"inventorydb\"} -2\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "tidepool_pool_pinned_clients{pool=\"we\\\"ird\\\\name\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        t.data, "\ntidepool_transaction_duration_seconds_bucket{pool=\"inventorydb\",le=\"0.005\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(
        t.data, "\ntidepool_transaction_duration_seconds_bucket{pool=\"inventorydb\",le=\"0.01\"} 5\n"));
    ck_assert_ptr_nonnull(
        strstr(t.data, "\ntidepool_checkout_wait_seconds_bucket{pool=\"inventorydb\",le=\"30\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(t.data, "\ntidepool_checkout_wait_seconds_bucket{pool=\"inventorydb\",le=\"+Inf\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_checkout_wait_seconds_count{pool=\"inventorydb\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_checkout_wait_seconds_sum{pool=\"inventorydb\"} 40\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "tidepool_build_info{version=\"0.1.0\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t.data, "\ntidepool_clients 6\n"));
    stats_text_free(&t);
}
END_TEST

START_TEST(test_render_no_pools)
{
    stats_globals g = {.version = "x", .clients = 0};
    stats_text t;
    stats_text_init(&t);
    ck_assert_int_eq(stats_prom_render(&t, &g, NULL, 0), 0);
    ck_assert_ptr_nonnull(strstr(t.data, "tidepool_up 1\n"));
    /* Families are still announced, with no samples. */
    ck_assert_ptr_nonnull(strstr(t.data, "# TYPE tidepool_transactions_total counter\n"));
    stats_text_free(&t);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("hist");
    tcase_add_test(tc, test_bounds_increasing);
    tcase_add_test(tc, test_bucket_edges);
    tcase_add_test(tc, test_cumulative_and_mean);
    tcase_add_test(tc, test_quantile_uniform_in_one_bucket);
    tcase_add_test(tc, test_quantile_across_buckets);
    tcase_add_test(tc, test_quantile_never_above_max);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("render");
    tcase_add_test(tr, test_text_grows_and_escapes);
    tcase_add_test(tr, test_render_grammar);
    tcase_add_test(tr, test_render_no_pools);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
