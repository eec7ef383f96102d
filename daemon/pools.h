/* pools.h: a pool at run time — its configuration, the pool algorithm's
 * state, its backends and its wait-timeout timer — and the daemon's side of
 * checkout and checkin: it carries out what pool/ decides. */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "config/config.h"
#include "daemon/log.h"
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
    uint64_t connect_failures;  /* connects failed since the last one that
                                   succeeded (0: the server is reachable) */
    uint64_t failures_unlogged; /* of them, those no log line counted yet */
    double failure_logged_at;   /* tp_now() of the last such line */
    tp_backend *backends;    /* every backend of the pool (all states) */
    int n_backends;
    uint64_t clients;        /* clients connected to this pool */
    int pinned;              /* clients pinned to their backend by session state */
    tp_params server_params; /* reported parameters of its first backend,
                                told to clients at login in transaction mode */
    bool removed;            /* gone from the configuration by a reload: not
                                found by name any more; its clients carry on */
    bool freeing;            /* drained: its timers are closing, then freed */
    int closing_handles;     /* timers not closed yet while freeing */
    stats_counters stats;    /* transactions, queries, bytes, wait and
                                transaction histograms (SHOW STATS, /metrics) */
} tp_pool;

/* ---- the set of pools (pools_set.c) ---- */

int pools_create(const config *cfg) __attribute__((warn_unused_result));
/* Carry out a reload's pool changes: new pools appear, removed ones drain
 * (freed when their last client and backend are gone), changed ones take
 * their new settings at once; a change of what a backend is retires their
 * backends as DISPOSE does. `d` compares the configuration in force with
 * new_cfg; nothing of either is kept. */
void pools_apply(const config_diff *d);
/* A removed pool whose clients are all gone: close its idle backends, and
 * free it once no backend is left. Called when a client or backend leaves. */
void pools_maybe_free(tp_pool *p);
/* Close every backend (shutdown). */
void pools_close_all(void);
/* Free the pools once the loop has ended and every backend is freed. */
void pools_free(void);
/* The pool clients reach by this name (never a removed one), or NULL. */
tp_pool *pools_find(const char *name);
size_t pools_count(void);
tp_pool *pools_at(size_t i);

/* A client wants a backend. Later, exactly one of client_on_backend() or
 * client_on_backend_error() is called for it (possibly before this returns). */
void pools_checkout(tp_pool *p, tp_client *c);
/* The client no longer wants one (it left while waiting). */
void pools_cancel_checkout(tp_pool *p, tp_client *c);
/* A lent backend comes back clean: kept, handed to a waiter, or closed. While
 * a cancel for it is in flight, none of that yet: it is checked in when the
 * cancel is over (backend_cancel.c). */
void pools_checkin(tp_pool *p, tp_backend *b);
/* A backend is gone (closed, died); frees its slot and serves waiters. */
void pools_backend_gone(tp_pool *p, tp_backend *b, bool died);
/* Serve the waiters a freed slot or larger limits let through. */
void pools_serve_waiters(tp_pool *p);
/* DISPOSE (Engine.dispose()): idle backends are closed now, lent ones when
 * they come back; backends opened from now on serve as usual. */
void pools_dispose(tp_pool *p, const char *why);
/* PAUSE / RESUME (pool_pause): while paused, clients wanting a backend are
 * queued and do not time out. */
void pools_pause(tp_pool *p);
void pools_resume(tp_pool *p);
/* Paused, and no backend lent or connecting: every transaction has ended. */
bool pools_pause_done(const tp_pool *p);
double tp_now(void);

/* echo_pool's log lines. An event of SPEC §3.2's list (connect, checkout,
 * checkin, recycle, invalidate, timeout) is logged at info with echo_pool =
 * true or debug; a detail (pre-ping, reset on return, opening a backend, on_connect
 * run again ...) at info with echo_pool = debug. Otherwise they are debug
 * lines, which log_level = debug shows. */
config_log_level pools_echo_level(const tp_pool *p, bool detail);
#define pools_echo(p, detail, ...)                                                                           \
    do {                                                                                                     \
        config_log_level echo_level_ = pools_echo_level((p), (detail));                                      \
        if (log_enabled(echo_level_)) log_msg(echo_level_, __VA_ARGS__);                                     \
    } while (0)
