/* pool.h: SQLAlchemy's QueuePool algorithm for backend connections, no I/O.
 *
 * The pool counts slots and orders waiters; the daemon owns the real
 * connections and carries out the pool's decisions. Time is always passed in
 * (seconds on a monotonic clock), so unit tests drive it with a fake clock.
 *
 * A slot is a pool_conn, embedded in the daemon's backend object. Its life:
 *   pool_checkout() -> POOL_OPEN  : the daemon connects, then pool_connected()
 *                                   (the conn is then lent to that waiter) or
 *                                   pool_connect_failed() (slot freed).
 *   pool_checkout() -> POOL_LEND  : an idle conn is lent. Before using it the
 *                                   daemon asks pool_lend_check(): USE, PING
 *                                   (pre-ping first) or REPLACE (recycle /
 *                                   pool invalidation: close it, pool_remove(),
 *                                   then pool_checkout() again for the waiter).
 *   pool_checkin()                : a lent conn comes back: kept idle, handed
 *                                   straight to the first waiter, or to close.
 *   pool_remove()                 : a conn (lent or idle) is gone: slot freed.
 * Waiters (pool_waiter, embedded in the daemon's client object) queue strictly
 * first come, first served, and time out after pool_timeout.
 *
 * Fairness rule (strict FIFO). "The line" is the queue plus the waiters that
 * pool_next_ready() has released and whose pool_checkout() has not been made
 * yet. pool_checkout() for a newcomer (a waiter neither queued nor released)
 * serves it at once only if nobody is queued and the idle conns plus the free
 * capacity exceed the released waiters; otherwise it is queued at the tail,
 * even if a conn happens to be free: a newcomer never overtakes the line. A
 * released waiter is the head of the line: its pool_checkout() serves it from
 * an idle conn or free capacity, and only if neither is left (limits shrank
 * in between) does it go back to the head of the queue, keeping its deadline.
 * So: call pool_checkout() right after pool_next_ready() returns a waiter (or
 * pool_cancel_wait() to drop it), and after anything that frees a slot
 * (pool_remove, pool_connect_failed, pool_checkin -> POOL_CLOSE,
 * pool_dispose_next_idle, pool_pop_idle, pool_set_limits) drain
 * pool_next_ready() until NULL. Then no waiter is queued while an idle conn or
 * free capacity exists.
 *
 * Capacity is pool_size + max_overflow conns open (connecting, idle or lent);
 * none when pool_size = 0 or max_overflow = -1. Conns retired by dispose count
 * until they are checked in.
 *
 * Misuse (a call in the wrong state) is caught by assert() in debug builds and
 * ignored in release builds. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    POOL_CONN_CONNECTING = 0, /* slot reserved, connect in progress */
    POOL_CONN_IDLE,           /* in the idle list */
    POOL_CONN_LENT,           /* in use by a client */
    POOL_CONN_GONE,           /* removed from the pool */
} pool_conn_state;

typedef struct pool_conn {
    struct pool_conn *prev, *next; /* idle list links, valid while IDLE */
    pool_conn_state state;
    double created_at;  /* when the connect completed (SQLAlchemy's starttime) */
    double returned_at; /* last checkin */
    bool fresh;         /* not lent since it connected, beyond the lend to
                           the waiter that opened it: no pre-ping needed.
                           Cleared by pool_lend_check() and pool_checkin(). */
    uint64_t generation; /* pool generation when its connect started
                            (POOL_OPEN / pool_replace); dispose retires older */
    void *data;         /* the daemon's backend object */
} pool_conn;

typedef struct pool_waiter {
    struct pool_waiter *prev, *next; /* queue links, valid while queued */
    bool queued;
    double enqueued_at;
    double deadline; /* enqueued_at + pool_timeout */
    void *data;      /* the daemon's client object */
    bool ready;      /* released by pool_next_ready(), its pool_checkout() not
                        made yet: served ahead of the queue. Set and cleared by
                        the pool only. */
} pool_waiter;

/* A waiter must start zeroed (calloc, = {0}) or be set up with this; it can
 * be reused for any number of checkouts while it is neither queued nor ready. */
void pool_waiter_init(pool_waiter *w, void *data);
/* Zero a conn slot (state GONE: not in the pool) and set its data. */
void pool_conn_init(pool_conn *c, void *data);

typedef struct pool_limits {
    int pool_size;       /* idle conns kept; 0 = no limit (and max_overflow -1) */
    int max_overflow;    /* -1 = no limit (any negative value is taken as -1) */
    double timeout;      /* pool_timeout, seconds */
    double recycle;      /* seconds; < 0 = never */
    bool pre_ping;
    bool use_lifo;
} pool_limits;

typedef struct pool_stats {
    int idle;        /* checked in */
    int lent;        /* checked out */
    int connecting;
    int open;        /* idle + lent + connecting */
    int overflow;    /* open - pool_size, may be negative (as SQLAlchemy) */
    int waiting;
    double longest_wait; /* seconds the first waiter has waited at `now` */
    /* checkouts: conns given to waiters (POOL_LEND, POOL_OPEN, POOL_HANDOFF);
     * timeouts: waiters expired by pool_expire();
     * invalidations: lend checks that said POOL_CHECK_INVALID;
     * recycles: lend checks that said POOL_CHECK_RECYCLE;
     * connects / connect_failures: pool_connected() / pool_connect_failed();
     * closed_on_checkin: pool_checkin() that said POOL_CLOSE. */
    uint64_t checkouts, timeouts, invalidations, connects, connect_failures,
        recycles, closed_on_checkin;
} pool_stats;

typedef struct pool pool; /* opaque */

/* NULL when out of memory. Limits are normalised (see pool_limits) and
 * returned so by pool_get_limits(). */
pool *pool_new(const pool_limits *limits);
/* Free the pool. The daemon must have removed every conn and waiter first. */
void pool_free(pool *p);
/* New limits (reload). Takes effect for the next decisions; if capacity grew,
 * waiters that can now be served are returned one by one by pool_next_ready(). */
void pool_set_limits(pool *p, const pool_limits *limits);
const pool_limits *pool_get_limits(const pool *p);

typedef enum {
    POOL_LEND = 0, /* *out is an idle conn, now LENT */
    POOL_OPEN,     /* *out is the caller's `fresh_conn`, now CONNECTING: connect it */
    POOL_WAIT,     /* the waiter is queued; it will come back via checkin or
                      pool_next_ready(), or time out via pool_expire() */
} pool_checkout_result;

/* Ask for a conn for waiter w. `fresh_conn` is a slot the caller provides in
 * case a new connection is to be opened (it is used only on POOL_OPEN).
 * Order: an idle conn (FIFO: idle longest; LIFO: most recently returned),
 * else a new one below capacity, else POOL_WAIT with deadline now + timeout
 * (see the fairness rule above for newcomers while others wait). *out is
 * NULL on POOL_WAIT. A waiter already queued stays queued: POOL_WAIT. */
pool_checkout_result pool_checkout(pool *p, pool_waiter *w, pool_conn *fresh_conn,
                                   double now, pool_conn **out);

/* A connect finished: the conn is LENT to the waiter that asked; created_at =
 * now, fresh (no pre-ping at its first lend). */
void pool_connected(pool *p, pool_conn *c, double now);
/* A connect failed: the slot is freed. */
void pool_connect_failed(pool *p, pool_conn *c, double now);

typedef enum {
    POOL_CHECK_USE = 0,
    POOL_CHECK_PING,    /* pool_pre_ping and not fresh: ping first */
    POOL_CHECK_RECYCLE, /* older than pool_recycle: replace */
    POOL_CHECK_INVALID, /* created before the last invalidation or dispose: replace */
} pool_check;

/* Lend-time check of a conn just returned by POOL_LEND or POOL_HANDOFF
 * (SQLAlchemy checks every conn it takes from its queue; order: recycle
 * `now - created_at > recycle` (strict) when recycle >= 0, then invalidation
 * `created_at < invalidate time` or an older generation, then pre-ping when
 * pre_ping and not fresh). Marks the conn not fresh. A conn just connected
 * (POOL_OPEN) needs no check; if checked it says USE. */
pool_check pool_lend_check(pool *p, pool_conn *c, double now);

/* Replace a LENT conn in its slot, for the same waiter (SQLAlchemy reconnects
 * in the same record): after POOL_CHECK_RECYCLE / POOL_CHECK_INVALID or a
 * failed pre-ping, the daemon closes the old backend and calls this: `old` is
 * GONE and `fresh` (a new slot, or `old` itself to reconnect in place) is
 * CONNECTING, counted in place of `old`; then pool_connected() or
 * pool_connect_failed() as after POOL_OPEN. Prefer it to pool_remove()
 * followed by pool_checkout(): there the waiter is a newcomer again and, after
 * a POOL_HANDOFF (others queued), goes to the back of the queue. */
void pool_replace(pool *p, pool_conn *old, pool_conn *fresh, double now);

/* Checkin order: a conn of an older generation (dispose) or one above
 * capacity (limits shrank) is closed; else it is handed to the first queued
 * waiter; else closed if pool_size conns are already idle (pool_size > 0);
 * else kept idle (returned_at = now). */
typedef enum {
    POOL_KEEP = 0, /* now IDLE */
    POOL_HANDOFF,  /* still LENT, now to *to (removed from the queue) */
    POOL_CLOSE,    /* pool_size already idle (or retired by dispose): the
                      conn is GONE, slot freed; the daemon closes it */
} pool_checkin_result;

pool_checkin_result pool_checkin(pool *p, pool_conn *c, double now, pool_waiter **to);

/* A conn is gone (died, closed, replaced), from any state but GONE. */
void pool_remove(pool *p, pool_conn *c, double now);

/* Pool-wide invalidation (SQLAlchemy's Pool._invalidate): backend `dead` died.
 * If the pool's invalidation time is older than dead->created_at, it becomes
 * `now`, so every conn created before now is replaced at its next lend
 * (POOL_CHECK_INVALID). `dead` may be NULL: invalidate unconditionally. */
void pool_invalidate(pool *p, const pool_conn *dead, double now);

/* Dispose (Engine.dispose()): returns idle conns one at a time (now GONE) for
 * the daemon to close; lent ones are retired (closed) at checkin, connecting
 * ones at their checkin too. Only conns older than the last pool_dispose() are
 * returned; conns connected since stay. NULL when none is left. */
pool_conn *pool_dispose_next_idle(pool *p, double now);
void pool_dispose(pool *p, double now); /* bump generation; then drain with the above */

/* An idle conn to close (e.g. shrink after reload, shutdown), or NULL. It is
 * the one idle longest, and is GONE. */
pool_conn *pool_pop_idle(pool *p, double now);
/* How many idle conns the current limits want closed now: the idle ones above
 * pool_size, or above capacity after a reload shrank it. Pop that many. */
int pool_idle_excess(const pool *p);

/* PAUSE (PgBouncer's): while paused, pool_checkout() queues every waiter (a
 * released one goes back to the head of the queue), pool_checkin() keeps or
 * closes a conn as usual but hands it to nobody, pool_next_ready() and
 * pool_expire() return NULL and pool_next_deadline() is negative: nobody is
 * served, nobody times out. Lent conns stay lent; the daemon knows the pause
 * is complete when pool_get_stats() shows none lent or connecting.
 * pool_resume(): each queued waiter's deadline moves later by the time it
 * spent queued while paused (so pool_timeout counts only unpaused waiting);
 * then the daemon drains pool_next_ready(). Both are no-ops when already in
 * that state. */
void pool_pause(pool *p, double now);
void pool_resume(pool *p, double now);
bool pool_is_paused(const pool *p);

/* A waiter leaves the queue (client gone, cancel). No-op if not queued.
 * A waiter released by pool_next_ready() but not checked out yet is dropped
 * from the line too. */
void pool_cancel_wait(pool *p, pool_waiter *w);

/* The next waiter that can be served right now because a slot became free
 * (after pool_remove, pool_connect_failed, pool_set_limits), removed from the
 * queue; NULL if none. The daemon calls pool_checkout() again for it.
 * It is the first queued waiter, returned only if an idle conn or free
 * capacity is left beyond the waiters already released; it is marked ready
 * (head of the line) until its pool_checkout(). */
pool_waiter *pool_next_ready(pool *p);

/* The first queued waiter whose deadline is <= now, removed from the queue
 * and counted as a timeout; NULL if none. Deadlines are fixed at enqueue, so
 * after a reload changed pool_timeout they need not follow queue order; the
 * first in queue order among the expired ones is returned. */
pool_waiter *pool_expire(pool *p, double now);
/* Earliest deadline among waiters, or a negative number if none wait. */
double pool_next_deadline(const pool *p);

void pool_get_stats(const pool *p, double now, pool_stats *out);

/* SQLAlchemy's TimeoutError text into buf (snprintf rules, returns its
 * result): "QueuePool limit of size %d overflow %d reached, connection timed
 * out, timeout %0.2f" with pool_size, the live overflow counter
 * (open - pool_size) and pool_timeout. */
int pool_format_timeout_message(const pool *p, char *buf, size_t len);

/* Names for logs: "connecting", "lend", "use", "keep", ... */
const char *pool_conn_state_to_str(pool_conn_state s);
const char *pool_checkout_result_to_str(pool_checkout_result r);
const char *pool_check_to_str(pool_check c);
const char *pool_checkin_result_to_str(pool_checkin_result r);
