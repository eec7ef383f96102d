/* pools.h: a pool at run time — its configuration, the pool algorithm's
 * state, its backends and its wait-timeout timer — and the daemon's side of
 * checkout and checkin: it carries out what pool/ decides. */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "config/config.h"
#include "daemon/params.h"
#include "pool/pool.h"
#include "stats/stats.h"

typedef struct tp_backend tp_backend;
typedef struct tp_client tp_client;

typedef struct tp_pool {
    config_pool cfg;         /* a private copy (strings owned) */
    char *startup_options;   /* "-c default_transaction_isolation=…" or NULL */
    pool *algo;
    uv_timer_t timer;        /* fires at the earliest waiter deadline */
    uv_timer_t retry_timer;  /* retries connects that failed (server restarting) */
    tp_client *retrying;     /* clients waiting for that retry */
    tp_backend *backends;    /* every backend of the pool (all states) */
    int n_backends;
    uint64_t clients;        /* clients connected to this pool */
    int pinned;              /* clients pinned to their backend by session state */
    tp_params server_params; /* reported parameters of its first backend,
                                told to clients at login in transaction mode */
    stats_counters stats;    /* transactions, queries, bytes, wait and
                                transaction histograms (SHOW STATS, /metrics) */
} tp_pool;

int pools_create(const config *cfg) __attribute__((warn_unused_result));
/* Close every backend (shutdown). */
void pools_close_all(void);
/* Free the pools once the loop has ended and every backend is freed. */
void pools_free(void);
tp_pool *pools_find(const char *name);
size_t pools_count(void);
tp_pool *pools_at(size_t i);

/* A client wants a backend. Later, exactly one of client_on_backend() or
 * client_on_backend_error() is called for it (possibly before this returns). */
void pools_checkout(tp_pool *p, tp_client *c);
/* The client no longer wants one (it left while waiting). */
void pools_cancel_checkout(tp_pool *p, tp_client *c);
/* A lent backend comes back clean: kept, handed to a waiter, or closed. */
void pools_checkin(tp_pool *p, tp_backend *b);
/* A backend is gone (closed, died); frees its slot and serves waiters. */
void pools_backend_gone(tp_pool *p, tp_backend *b, bool died);
double tp_now(void);
