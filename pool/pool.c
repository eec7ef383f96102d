/* pool.c: the QueuePool algorithm itself — slot counting against pool_size +
 * max_overflow, the idle list (FIFO or LIFO), the strict-FIFO waiter queue
 * with its deadlines, lend-time checks (recycle, invalidation, pre-ping),
 * dispose generations and the counters behind pool_stats. It owns no
 * connection and reads no clock: every decision is returned to the daemon,
 * and time comes in as an argument. See pool.h for the contract and the
 * fairness rule. */
#include "pool/pool.h"

#include <assert.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool {
    pool_limits limits; /* normalised: pool_size >= 0, max_overflow >= -1 */

    /* Idle conns in checkin order: head = idle longest, tail = newest. */
    pool_conn *idle_head, *idle_tail;
    int n_idle, n_lent, n_connecting;

    /* Queued waiters in arrival order (a released waiter that could not be
     * served goes back to the head). */
    pool_waiter *wait_head, *wait_tail;
    int n_waiting;
    int n_ready;           /* released by pool_next_ready(), not checked out */
    bool deadlines_sorted; /* queue deadlines are non-decreasing head to tail */

    bool paused;            /* PAUSE: nobody is served (see pool_pause) */
    double paused_at;
    double invalidate_time; /* conns created before it are replaced at lend */
    uint64_t generation;    /* bumped by pool_dispose() */

    uint64_t checkouts, timeouts, invalidations, connects, connect_failures,
        recycles, closed_on_checkin;
};

/* ---- limits ------------------------------------------------------------ */

static void normalise_limits(pool_limits *l)
{
    if (l->pool_size < 0)
        l->pool_size = 0;
    if (l->max_overflow < 0 || l->pool_size == 0)
        l->max_overflow = -1; /* as QueuePool.__init__: size 0 forces -1 */
}

static bool unlimited(const pool *p)
{
    return p->limits.max_overflow < 0;
}

static int n_open(const pool *p)
{
    return p->n_idle + p->n_lent + p->n_connecting;
}

/* Slots that may still be opened; 0 when at or above capacity. Only
 * meaningful when the pool is not unlimited. */
static long free_capacity(const pool *p)
{
    long cap = (long)p->limits.pool_size + (long)p->limits.max_overflow;
    long room = cap - (long)n_open(p);
    return room > 0 ? room : 0;
}

static bool above_capacity(const pool *p)
{
    if (unlimited(p))
        return false;
    return (long)n_open(p) > (long)p->limits.pool_size + (long)p->limits.max_overflow;
}

/* True if the idle conns plus free capacity exceed `promised` (waiters
 * already released and owed one of them). */
static bool can_serve_beyond(const pool *p, int promised)
{
    if (unlimited(p))
        return true;
    return (long)p->n_idle + free_capacity(p) > (long)promised;
}

/* ---- idle list ------------------------------------------------------------ */

static void idle_push_tail(pool *p, pool_conn *c)
{
    c->prev = p->idle_tail;
    c->next = NULL;
    if (p->idle_tail)
        p->idle_tail->next = c;
    else
        p->idle_head = c;
    p->idle_tail = c;
    p->n_idle++;
}

static void idle_unlink(pool *p, pool_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->idle_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        p->idle_tail = c->prev;
    c->prev = c->next = NULL;
    p->n_idle--;
}

/* ---- waiter queue ---------------------------------------------------------- */

static void queue_push_tail(pool *p, pool_waiter *w)
{
    if (p->wait_tail && w->deadline < p->wait_tail->deadline)
        p->deadlines_sorted = false;
    w->prev = p->wait_tail;
    w->next = NULL;
    if (p->wait_tail)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    w->queued = true;
    p->n_waiting++;
}

static void queue_push_head(pool *p, pool_waiter *w)
{
    if (p->wait_head && w->deadline > p->wait_head->deadline)
        p->deadlines_sorted = false;
    w->prev = NULL;
    w->next = p->wait_head;
    if (p->wait_head)
        p->wait_head->prev = w;
    else
        p->wait_tail = w;
    p->wait_head = w;
    w->queued = true;
    p->n_waiting++;
}

static void queue_unlink(pool *p, pool_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        p->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        p->wait_tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    p->n_waiting--;
    if (p->n_waiting == 0)
        p->deadlines_sorted = true; /* an empty queue is trivially sorted */
}

/* ---- conn state changes ------------------------------------------------------
 * Every change of a conn's state goes through here, so the counters always
 * match the states. */

static void conn_leave(pool *p, pool_conn *c)
{
    switch (c->state) {
    case POOL_CONN_CONNECTING:
        p->n_connecting--;
        break;
    case POOL_CONN_IDLE:
        idle_unlink(p, c);
        break;
    case POOL_CONN_LENT:
        p->n_lent--;
        break;
    case POOL_CONN_GONE:
        break;
    }
}

static void conn_set_state(pool *p, pool_conn *c, pool_conn_state s)
{
    conn_leave(p, c);
    c->state = s;
    switch (s) {
    case POOL_CONN_CONNECTING:
        p->n_connecting++;
        break;
    case POOL_CONN_IDLE:
        idle_push_tail(p, c);
        break;
    case POOL_CONN_LENT:
        p->n_lent++;
        break;
    case POOL_CONN_GONE:
        c->prev = c->next = NULL;
        break;
    }
}

/* ---- life of a pool ------------------------------------------------------------ */

void pool_waiter_init(pool_waiter *w, void *data)
{
    memset(w, 0, sizeof *w);
    w->data = data;
}

void pool_conn_init(pool_conn *c, void *data)
{
    memset(c, 0, sizeof *c);
    c->state = POOL_CONN_GONE;
    c->data = data;
}

pool *pool_new(const pool_limits *limits)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->limits = *limits;
    normalise_limits(&p->limits);
    p->deadlines_sorted = true;
    p->invalidate_time = -DBL_MAX; /* nothing invalidated yet */
    return p;
}

void pool_free(pool *p)
{
    /* The pool owns no conn or waiter, only itself: freeing it with some
     * still in it (a contract breach) leaves their links dangling but frees
     * nothing of the daemon's. */
    free(p);
}

void pool_set_limits(pool *p, const pool_limits *limits)
{
    p->limits = *limits;
    normalise_limits(&p->limits);
}

const pool_limits *pool_get_limits(const pool *p)
{
    return &p->limits;
}

/* ---- checkout ---------------------------------------------------------------- */

pool_checkout_result pool_checkout(pool *p, pool_waiter *w, pool_conn *fresh_conn,
                                   double now, pool_conn **out)
{
    *out = NULL;
    if (w->queued)
        return POOL_WAIT; /* already in line */

    bool released = w->ready;
    if (released) {
        /* Released by pool_next_ready(): head of the line. */
        w->ready = false;
        p->n_ready--;
    }
    if (p->paused) {
        goto enqueue; /* held until pool_resume() */
    } else if (!released && (p->n_waiting > 0 || !can_serve_beyond(p, p->n_ready))) {
        /* A newcomer: behind everyone already in line, or at capacity. */
        goto enqueue;
    }

    if (p->idle_head) {
        pool_conn *c = p->limits.use_lifo ? p->idle_tail : p->idle_head;
        conn_set_state(p, c, POOL_CONN_LENT);
        p->checkouts++;
        *out = c;
        return POOL_LEND;
    }
    if (unlimited(p) || free_capacity(p) > 0) {
        assert(fresh_conn);
        if (!fresh_conn)
            goto enqueue;
        fresh_conn->state = POOL_CONN_GONE; /* a caller's slot, not in the pool */
        fresh_conn->prev = fresh_conn->next = NULL;
        fresh_conn->created_at = now; /* until the connect completes */
        fresh_conn->returned_at = now;
        fresh_conn->fresh = false;
        fresh_conn->generation = p->generation;
        conn_set_state(p, fresh_conn, POOL_CONN_CONNECTING);
        p->checkouts++;
        *out = fresh_conn;
        return POOL_OPEN;
    }

enqueue:
    if (released) {
        /* Nothing left for a released waiter (limits shrank in between): it
         * goes back to the head of the line, keeping its deadline. */
        queue_push_head(p, w);
    } else {
        w->enqueued_at = now;
        w->deadline = now + p->limits.timeout;
        queue_push_tail(p, w);
    }
    return POOL_WAIT;
}

void pool_connected(pool *p, pool_conn *c, double now)
{
    assert(c->state == POOL_CONN_CONNECTING);
    if (c->state != POOL_CONN_CONNECTING)
        return;
    conn_set_state(p, c, POOL_CONN_LENT);
    c->created_at = now;
    c->returned_at = now;
    c->fresh = true;
    p->connects++;
}

void pool_connect_failed(pool *p, pool_conn *c, double now)
{
    (void)now;
    assert(c->state == POOL_CONN_CONNECTING);
    if (c->state != POOL_CONN_CONNECTING)
        return;
    conn_set_state(p, c, POOL_CONN_GONE);
    p->connect_failures++;
}

pool_check pool_lend_check(pool *p, pool_conn *c, double now)
{
    assert(c->state == POOL_CONN_LENT);
    bool was_fresh = c->fresh;
    c->fresh = false;

    /* SQLAlchemy's _ConnectionRecord.get_connection(): recycle first... */
    if (p->limits.recycle >= 0 && now - c->created_at > p->limits.recycle) {
        p->recycles++;
        return POOL_CHECK_RECYCLE;
    }
    /* ...then pool-wide invalidation (here also a dispose generation)... */
    if (c->created_at < p->invalidate_time || c->generation < p->generation) {
        p->invalidations++;
        return POOL_CHECK_INVALID;
    }
    /* ...then _ConnectionFairy._checkout(): pre-ping unless fresh. */
    if (p->limits.pre_ping && !was_fresh)
        return POOL_CHECK_PING;
    return POOL_CHECK_USE;
}

void pool_replace(pool *p, pool_conn *old, pool_conn *fresh, double now)
{
    assert(old->state == POOL_CONN_LENT);
    if (old->state != POOL_CONN_LENT)
        return;
    conn_set_state(p, old, POOL_CONN_GONE);
    fresh->state = POOL_CONN_GONE;
    fresh->prev = fresh->next = NULL;
    fresh->created_at = now;
    fresh->returned_at = now;
    fresh->fresh = false;
    fresh->generation = p->generation;
    conn_set_state(p, fresh, POOL_CONN_CONNECTING);
}

/* ---- checkin and removal ------------------------------------------------------- */

pool_checkin_result pool_checkin(pool *p, pool_conn *c, double now, pool_waiter **to)
{
    *to = NULL;
    assert(c->state == POOL_CONN_LENT);
    if (c->state != POOL_CONN_LENT)
        return POOL_CLOSE; /* nothing changes in the pool */
    c->fresh = false; /* it has been lent once, checked or not */

    if (c->generation < p->generation || above_capacity(p))
        goto close; /* retired by dispose, or limits shrank */

    if (p->wait_head && !p->paused) {
        pool_waiter *w = p->wait_head;
        queue_unlink(p, w);
        p->checkouts++;
        *to = w;
        return POOL_HANDOFF;
    }

    if (p->limits.pool_size > 0 && p->n_idle >= p->limits.pool_size)
        goto close; /* QueuePool._do_return_conn: queue Full → close */

    conn_set_state(p, c, POOL_CONN_IDLE);
    c->returned_at = now;
    return POOL_KEEP;

close:
    conn_set_state(p, c, POOL_CONN_GONE);
    p->closed_on_checkin++;
    return POOL_CLOSE;
}

void pool_remove(pool *p, pool_conn *c, double now)
{
    (void)now;
    assert(c->state != POOL_CONN_GONE);
    conn_set_state(p, c, POOL_CONN_GONE);
}

void pool_invalidate(pool *p, const pool_conn *dead, double now)
{
    /* Pool._invalidate: only move the time forward for a conn that was
     * created after the last invalidation (older ones are already doomed). */
    if (!dead || p->invalidate_time < dead->created_at)
        p->invalidate_time = now;
}

void pool_dispose(pool *p, double now)
{
    (void)now;
    p->generation++;
}

pool_conn *pool_dispose_next_idle(pool *p, double now)
{
    (void)now;
    for (pool_conn *c = p->idle_head; c; c = c->next) {
        if (c->generation < p->generation) {
            conn_set_state(p, c, POOL_CONN_GONE);
            return c;
        }
    }
    return NULL;
}

pool_conn *pool_pop_idle(pool *p, double now)
{
    (void)now;
    pool_conn *c = p->idle_head;
    if (c)
        conn_set_state(p, c, POOL_CONN_GONE);
    return c;
}

int pool_idle_excess(const pool *p)
{
    long excess = 0;
    if (p->limits.pool_size > 0 && p->n_idle > p->limits.pool_size)
        excess = p->n_idle - p->limits.pool_size;
    if (!unlimited(p)) {
        long over = (long)n_open(p) - ((long)p->limits.pool_size + p->limits.max_overflow);
        if (over > excess)
            excess = over;
    }
    if (excess > p->n_idle)
        excess = p->n_idle;
    return (int)excess;
}

/* ---- waiters -------------------------------------------------------------------- */

void pool_cancel_wait(pool *p, pool_waiter *w)
{
    if (w->queued)
        queue_unlink(p, w);
    if (w->ready) {
        w->ready = false;
        p->n_ready--;
    }
}

pool_waiter *pool_next_ready(pool *p)
{
    pool_waiter *w = p->wait_head;
    if (!w || p->paused || !can_serve_beyond(p, p->n_ready))
        return NULL;
    queue_unlink(p, w);
    w->ready = true;
    p->n_ready++;
    return w;
}

pool_waiter *pool_expire(pool *p, double now)
{
    pool_waiter *w = p->wait_head;
    if (p->paused)
        return NULL;
    if (p->deadlines_sorted) {
        if (!w || w->deadline > now)
            return NULL;
    } else {
        while (w && w->deadline > now)
            w = w->next;
        if (!w)
            return NULL;
    }
    queue_unlink(p, w);
    p->timeouts++;
    return w;
}

double pool_next_deadline(const pool *p)
{
    if (!p->wait_head || p->paused)
        return -1;
    if (p->deadlines_sorted)
        return p->wait_head->deadline;
    double d = p->wait_head->deadline;
    for (const pool_waiter *w = p->wait_head->next; w; w = w->next)
        if (w->deadline < d)
            d = w->deadline;
    return d;
}

/* ---- pause ---------------------------------------------------------------------- */

void pool_pause(pool *p, double now)
{
    if (p->paused)
        return;
    p->paused = true;
    p->paused_at = now;
}

void pool_resume(pool *p, double now)
{
    if (!p->paused)
        return;
    p->paused = false;
    p->deadlines_sorted = true;
    double prev = -DBL_MAX;
    for (pool_waiter *w = p->wait_head; w; w = w->next) {
        double since = w->enqueued_at > p->paused_at ? w->enqueued_at : p->paused_at;
        if (now > since)
            w->deadline += now - since;
        if (w->deadline < prev)
            p->deadlines_sorted = false;
        prev = w->deadline;
    }
}

bool pool_is_paused(const pool *p)
{
    return p->paused;
}

/* ---- reporting -------------------------------------------------------------------- */

void pool_get_stats(const pool *p, double now, pool_stats *out)
{
    memset(out, 0, sizeof *out);
    out->idle = p->n_idle;
    out->lent = p->n_lent;
    out->connecting = p->n_connecting;
    out->open = n_open(p);
    out->overflow = out->open - p->limits.pool_size;
    out->waiting = p->n_waiting;
    /* The head is the oldest arrival: a released waiter put back at the head
     * was the head when it was released. */
    out->longest_wait = p->wait_head ? now - p->wait_head->enqueued_at : 0;
    out->checkouts = p->checkouts;
    out->timeouts = p->timeouts;
    out->invalidations = p->invalidations;
    out->connects = p->connects;
    out->connect_failures = p->connect_failures;
    out->recycles = p->recycles;
    out->closed_on_checkin = p->closed_on_checkin;
}

int pool_format_timeout_message(const pool *p, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "QueuePool limit of size %d overflow %d reached, "
                    "connection timed out, timeout %0.2f",
                    p->limits.pool_size, n_open(p) - p->limits.pool_size,
                    p->limits.timeout);
}

const char *pool_conn_state_to_str(pool_conn_state s)
{
    switch (s) {
    case POOL_CONN_CONNECTING: return "connecting";
    case POOL_CONN_IDLE: return "idle";
    case POOL_CONN_LENT: return "lent";
    case POOL_CONN_GONE: return "gone";
    }
    return "?";
}

const char *pool_checkout_result_to_str(pool_checkout_result r)
{
    switch (r) {
    case POOL_LEND: return "lend";
    case POOL_OPEN: return "open";
    case POOL_WAIT: return "wait";
    }
    return "?";
}

const char *pool_check_to_str(pool_check c)
{
    switch (c) {
    case POOL_CHECK_USE: return "use";
    case POOL_CHECK_PING: return "ping";
    case POOL_CHECK_RECYCLE: return "recycle";
    case POOL_CHECK_INVALID: return "invalid";
    }
    return "?";
}

const char *pool_checkin_result_to_str(pool_checkin_result r)
{
    switch (r) {
    case POOL_KEEP: return "keep";
    case POOL_HANDOFF: return "handoff";
    case POOL_CLOSE: return "close";
    }
    return "?";
}
