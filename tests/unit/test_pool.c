/* test_pool.c: unit tests of pool/ — every QueuePool rule (checkout order,
 * strict-FIFO waiters, handoff, overflow, unlimited pools, timeouts and their
 * message, connect failures, recycle, invalidation, pre-ping, dispose, pause,
 * reload, cancel, stats) driven by a fake clock, plus a randomized test that
 * plays the daemon against the pool and checks the invariants after every
 * step. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"

#define NCONN 64
#define NWAIT 64

/* Fresh fixtures for every test (Check forks, but also runs with
 * CK_FORK=no). */
static pool_conn C[NCONN];
static pool_waiter W[NWAIT];
static pool *P;

static pool_limits limits(int size, int overflow, double timeout)
{
    pool_limits l = {
        .pool_size = size,
        .max_overflow = overflow,
        .timeout = timeout,
        .recycle = -1,
        .pre_ping = false,
        .use_lifo = false,
    };
    return l;
}

static void setup_fixtures(void)
{
    for (int i = 0; i < NCONN; i++)
        pool_conn_init(&C[i], NULL);
    for (int i = 0; i < NWAIT; i++)
        pool_waiter_init(&W[i], NULL);
    P = NULL;
}

static void teardown_fixtures(void)
{
    /* Tests leave conns around; the pool is freed only when empty, so free
     * the memory directly through a clean pool. */
    if (P) {
        for (int i = 0; i < NCONN; i++)
            if (C[i].state != POOL_CONN_GONE)
                pool_remove(P, &C[i], 0);
        for (int i = 0; i < NWAIT; i++)
            pool_cancel_wait(P, &W[i]);
        pool_free(P);
        P = NULL;
    }
}

static pool *mk(pool_limits l)
{
    P = pool_new(&l);
    ck_assert_ptr_nonnull(P);
    return P;
}

static pool_stats stats(double now)
{
    pool_stats s;
    pool_get_stats(P, now, &s);
    return s;
}

/* Checkout for waiter i with conn slot j as the fresh one. */
static pool_checkout_result co(int i, int j, double now, pool_conn **out)
{
    return pool_checkout(P, &W[i], &C[j], now, out);
}

/* Waiter i gets a brand-new conn j, connected at `now`: it is LENT. */
static void open_lent(int i, int j, double now)
{
    pool_conn *out = NULL;
    ck_assert_int_eq(co(i, j, now, &out), POOL_OPEN);
    ck_assert_ptr_eq(out, &C[j]);
    ck_assert_int_eq(C[j].state, POOL_CONN_CONNECTING);
    pool_connected(P, &C[j], now);
    ck_assert_int_eq(C[j].state, POOL_CONN_LENT);
}

static void checkin_expect(int j, double now, pool_checkin_result want, pool_waiter *want_to)
{
    pool_waiter *to = (pool_waiter *)1;
    ck_assert_int_eq(pool_checkin(P, &C[j], now, &to), want);
    ck_assert_ptr_eq(to, want_to);
}

/* ---- checkout order ------------------------------------------------------- */

START_TEST(test_open_below_capacity_without_waiting)
{
    mk(limits(2, 1, 30));
    pool_conn *out;
    /* Three connects in flight at once: none waits for another to finish. */
    ck_assert_int_eq(co(0, 0, 0, &out), POOL_OPEN);
    ck_assert_ptr_eq(out, &C[0]);
    ck_assert_int_eq(co(1, 1, 0, &out), POOL_OPEN);
    ck_assert_int_eq(co(2, 2, 0, &out), POOL_OPEN);
    pool_stats s = stats(0);
    ck_assert_int_eq(s.connecting, 3);
    ck_assert_int_eq(s.open, 3);
    ck_assert_int_eq(s.waiting, 0);
    /* At capacity (2 + 1) the fourth queues; its fresh slot is untouched. */
    ck_assert_int_eq(co(3, 3, 0, &out), POOL_WAIT);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(C[3].state, POOL_CONN_GONE);
    ck_assert(W[3].queued);
}
END_TEST

START_TEST(test_reuse_idle_first)
{
    mk(limits(5, 10, 30));
    open_lent(0, 0, 1);
    checkin_expect(0, 2, POOL_KEEP, NULL);
    ck_assert_int_eq(C[0].state, POOL_CONN_IDLE);
    ck_assert(C[0].returned_at == 2);
    /* Far below capacity, the idle conn is still reused, not a new one. */
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 3, &out), POOL_LEND);
    ck_assert_ptr_eq(out, &C[0]);
    ck_assert_int_eq(C[0].state, POOL_CONN_LENT);
    ck_assert_int_eq(C[1].state, POOL_CONN_GONE);
    ck_assert_int_eq(stats(3).open, 1);
}
END_TEST

static void idle_order(bool lifo, const int want[3])
{
    pool_limits l = limits(5, 10, 30);
    l.use_lifo = lifo;
    mk(l);
    for (int i = 0; i < 3; i++)
        open_lent(i, i, 0);
    /* Returned in order 1, 0, 2. */
    checkin_expect(1, 1, POOL_KEEP, NULL);
    checkin_expect(0, 2, POOL_KEEP, NULL);
    checkin_expect(2, 3, POOL_KEEP, NULL);
    for (int i = 0; i < 3; i++) {
        pool_conn *out;
        ck_assert_int_eq(co(10 + i, 10 + i, 4, &out), POOL_LEND);
        ck_assert_ptr_eq(out, &C[want[i]]);
    }
}

START_TEST(test_fifo_idle_longest_first)
{
    static const int want[3] = {1, 0, 2};
    idle_order(false, want);
}
END_TEST

START_TEST(test_lifo_most_recent_first)
{
    static const int want[3] = {2, 0, 1};
    idle_order(true, want);
}
END_TEST

START_TEST(test_queue_at_capacity)
{
    mk(limits(1, 1, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    pool_conn *out;
    ck_assert_int_eq(co(2, 2, 7, &out), POOL_WAIT);
    ck_assert(W[2].queued);
    ck_assert(W[2].enqueued_at == 7);
    ck_assert(W[2].deadline == 37);
    ck_assert(pool_next_deadline(P) == 37);
    pool_stats s = stats(9);
    ck_assert_int_eq(s.waiting, 1);
    ck_assert(s.longest_wait == 2);
    /* Asking again for a waiter already queued changes nothing. */
    ck_assert_int_eq(co(2, 2, 8, &out), POOL_WAIT);
    ck_assert_int_eq(stats(8).waiting, 1);
    ck_assert(W[2].enqueued_at == 7);
    /* Nothing is ready: no slot is free. */
    ck_assert_ptr_null(pool_next_ready(P));
}
END_TEST

START_TEST(test_handoff_at_checkin)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    uint64_t before = stats(1).checkouts;
    checkin_expect(0, 2, POOL_HANDOFF, &W[1]);
    ck_assert(!W[1].queued);
    ck_assert_int_eq(C[0].state, POOL_CONN_LENT);
    pool_stats s = stats(2);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.lent, 1);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_uint_eq(s.checkouts, before + 1);
}
END_TEST

START_TEST(test_strict_fifo_among_waiters)
{
    mk(limits(2, 0, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    pool_conn *out;
    for (int i = 2; i < 6; i++)
        ck_assert_int_eq(co(i, i, i, &out), POOL_WAIT);
    checkin_expect(1, 10, POOL_HANDOFF, &W[2]);
    checkin_expect(0, 11, POOL_HANDOFF, &W[3]);
    /* A newcomer while 4 and 5 wait goes behind them. */
    ck_assert_int_eq(co(6, 6, 12, &out), POOL_WAIT);
    checkin_expect(0, 13, POOL_HANDOFF, &W[4]);
    checkin_expect(1, 14, POOL_HANDOFF, &W[5]);
    checkin_expect(0, 15, POOL_HANDOFF, &W[6]);
    checkin_expect(1, 16, POOL_KEEP, NULL);
}
END_TEST

START_TEST(test_newcomer_does_not_overtake_freed_slot)
{
    mk(limits(1, 1, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    pool_conn *out;
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_WAIT);
    /* Backend 0 dies: a slot is free, but waiters are in line. */
    pool_remove(P, &C[0], 3);
    /* A newcomer arriving before the daemon drained pool_next_ready() does
     * not take the slot: it queues behind 2 and 3. */
    ck_assert_int_eq(co(4, 4, 3, &out), POOL_WAIT);
    ck_assert_int_eq(stats(3).waiting, 3);
    /* The head of the line is released and served, though others still wait. */
    ck_assert_ptr_eq(pool_next_ready(P), &W[2]);
    ck_assert(W[2].ready && !W[2].queued);
    ck_assert_int_eq(co(2, 5, 3, &out), POOL_OPEN);
    ck_assert_ptr_eq(out, &C[5]);
    ck_assert(!W[2].ready);
    ck_assert_ptr_null(pool_next_ready(P));
    pool_connected(P, &C[5], 4);
    /* Then 3, then the newcomer 4. */
    checkin_expect(1, 5, POOL_HANDOFF, &W[3]);
    checkin_expect(5, 6, POOL_HANDOFF, &W[4]);
}
END_TEST

START_TEST(test_next_ready_ordering_and_reservation)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    for (int i = 1; i <= 4; i++)
        ck_assert_int_eq(co(i, i, i, &out), POOL_WAIT);
    ck_assert_ptr_null(pool_next_ready(P));
    /* Capacity grows by two: exactly two waiters become ready, in order,
     * even when both are released before either is checked out. */
    pool_limits l = limits(1, 2, 30);
    pool_set_limits(P, &l);
    pool_waiter *a = pool_next_ready(P);
    pool_waiter *b = pool_next_ready(P);
    ck_assert_ptr_eq(a, &W[1]);
    ck_assert_ptr_eq(b, &W[2]);
    ck_assert_ptr_null(pool_next_ready(P));
    /* The released ones are the head of the line: a newcomer now queues. */
    ck_assert_int_eq(co(9, 9, 5, &out), POOL_WAIT);
    ck_assert_int_eq(co(1, 11, 5, &out), POOL_OPEN);
    ck_assert_int_eq(co(2, 12, 5, &out), POOL_OPEN);
    ck_assert_ptr_null(pool_next_ready(P));
    pool_stats s = stats(5);
    ck_assert_int_eq(s.open, 3);
    ck_assert_int_eq(s.waiting, 3);
    /* Queue order is 3, 4, 9. */
    pool_connected(P, &C[11], 6);
    checkin_expect(11, 7, POOL_HANDOFF, &W[3]);
    checkin_expect(11, 7, POOL_HANDOFF, &W[4]);
    checkin_expect(11, 7, POOL_HANDOFF, &W[9]);
}
END_TEST

START_TEST(test_next_ready_serves_idle_conn)
{
    /* An idle conn with a waiter queued cannot arise through the API;
     * released waiters let it happen briefly: the idle conn goes to the
     * released waiter first, and pool_next_ready() reports servability. */
    mk(limits(2, 0, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    pool_conn *out;
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_WAIT);
    pool_remove(P, &C[1], 2);
    ck_assert_ptr_eq(pool_next_ready(P), &W[2]);
    /* Before its checkout, conn 0 comes back: nobody is queued, kept idle. */
    checkin_expect(0, 3, POOL_KEEP, NULL);
    /* The released waiter takes the idle conn rather than opening one. */
    ck_assert_int_eq(co(2, 3, 3, &out), POOL_LEND);
    ck_assert_ptr_eq(out, &C[0]);
    /* One slot is still free; a newcomer gets it at once (nobody queued). */
    ck_assert_int_eq(co(4, 4, 3, &out), POOL_OPEN);
}
END_TEST

START_TEST(test_released_waiter_back_to_head_when_limits_shrink)
{
    mk(limits(1, 1, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    pool_conn *out;
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_WAIT);
    pool_remove(P, &C[1], 3);
    ck_assert_ptr_eq(pool_next_ready(P), &W[2]);
    /* Reload shrinks capacity to 1 before the checkout is made. */
    pool_limits l = limits(1, 0, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(co(2, 2, 4, &out), POOL_WAIT);
    ck_assert(W[2].queued && !W[2].ready);
    ck_assert(W[2].enqueued_at == 1 && W[2].deadline == 31);
    ck_assert(stats(4).longest_wait == 3);
    /* It is still first. */
    checkin_expect(0, 5, POOL_HANDOFF, &W[2]);
    checkin_expect(0, 6, POOL_HANDOFF, &W[3]);
}
END_TEST

START_TEST(test_released_waiter_alone_back_in_queue)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    pool_remove(P, &C[0], 2);
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    ck_assert_int_eq(stats(2).waiting, 0);
    /* The daemon serves someone else first (misuse, but it must hold up):
     * no room is left for the released waiter, which queues again. */
    pool_limits l = limits(1, 0, 30);
    l.max_overflow = -1;
    pool_set_limits(P, &l);
    ck_assert_int_eq(co(2, 2, 2, &out), POOL_OPEN); /* unlimited: served */
    l.max_overflow = 0;
    pool_set_limits(P, &l);
    ck_assert_int_eq(co(1, 3, 3, &out), POOL_WAIT);
    ck_assert(W[1].queued && W[1].deadline == 31);
    ck_assert(pool_next_deadline(P) == 31);
    pool_connected(P, &C[2], 3);
    checkin_expect(2, 4, POOL_HANDOFF, &W[1]);
}
END_TEST

START_TEST(test_limits_normalised)
{
    pool_limits l = limits(-3, 4, 30);
    mk(l);
    ck_assert_int_eq(pool_get_limits(P)->pool_size, 0);
    ck_assert_int_eq(pool_get_limits(P)->max_overflow, -1);
    l = limits(3, 4, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_get_limits(P)->pool_size, 3);
    ck_assert_int_eq(pool_get_limits(P)->max_overflow, 4);
    ck_assert(pool_get_limits(P)->timeout == 30);
}
END_TEST

START_TEST(test_cancel_wait)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(co(i, i, i, &out), POOL_WAIT);
    pool_cancel_wait(P, &W[2]);
    ck_assert(!W[2].queued);
    ck_assert_int_eq(stats(4).waiting, 2);
    /* A no-op on a waiter that is not queued. */
    pool_cancel_wait(P, &W[2]);
    pool_cancel_wait(P, &W[7]);
    ck_assert_int_eq(stats(4).waiting, 2);
    /* Cancel the head: longest wait follows the new head. */
    pool_cancel_wait(P, &W[1]);
    ck_assert(stats(10).longest_wait == 7);
    checkin_expect(0, 11, POOL_HANDOFF, &W[3]);
    checkin_expect(0, 12, POOL_KEEP, NULL);
    ck_assert(pool_next_deadline(P) < 0);
}
END_TEST

START_TEST(test_cancel_released_waiter)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    pool_remove(P, &C[0], 2);
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    /* Its client left before the checkout: the reservation goes too, so a
     * newcomer is served at once. */
    pool_cancel_wait(P, &W[1]);
    ck_assert(!W[1].ready);
    ck_assert_int_eq(co(2, 2, 3, &out), POOL_OPEN);
}
END_TEST

/* ---- overflow and unlimited pools --------------------------------------------- */

START_TEST(test_overflow_shrinks_back_on_checkin)
{
    mk(limits(2, 2, 30));
    for (int i = 0; i < 4; i++)
        open_lent(i, i, 0);
    pool_stats s = stats(0);
    ck_assert_int_eq(s.open, 4);
    ck_assert_int_eq(s.overflow, 2);
    /* Whichever conn returns to a full idle list is closed. */
    checkin_expect(3, 1, POOL_KEEP, NULL);
    checkin_expect(0, 1, POOL_KEEP, NULL);
    checkin_expect(2, 1, POOL_CLOSE, NULL);
    ck_assert_int_eq(C[2].state, POOL_CONN_GONE);
    checkin_expect(1, 1, POOL_CLOSE, NULL);
    s = stats(1);
    ck_assert_int_eq(s.open, 2);
    ck_assert_int_eq(s.idle, 2);
    ck_assert_int_eq(s.overflow, 0);
    ck_assert_uint_eq(s.closed_on_checkin, 2);
}
END_TEST

START_TEST(test_max_overflow_unlimited)
{
    mk(limits(2, -1, 30));
    for (int i = 0; i < NCONN; i++)
        open_lent(i % NWAIT, i, 0);
    pool_stats s = stats(0);
    ck_assert_int_eq(s.open, NCONN);
    ck_assert_int_eq(s.overflow, NCONN - 2);
    ck_assert_int_eq(s.waiting, 0);
    for (int i = 0; i < NCONN; i++)
        checkin_expect(i, 1, i < 2 ? POOL_KEEP : POOL_CLOSE, NULL);
    ck_assert_int_eq(stats(1).open, 2);
    /* Any negative value is read as -1. */
    pool_limits l = limits(2, -7, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_get_limits(P)->max_overflow, -1);
}
END_TEST

START_TEST(test_pool_size_zero_unlimited)
{
    mk(limits(0, 10, 30));
    /* As QueuePool: pool_size 0 forces max_overflow -1. */
    ck_assert_int_eq(pool_get_limits(P)->pool_size, 0);
    ck_assert_int_eq(pool_get_limits(P)->max_overflow, -1);
    for (int i = 0; i < NCONN; i++)
        open_lent(i % NWAIT, i, 0);
    ck_assert_int_eq(stats(0).overflow, NCONN);
    /* Nothing is ever closed on checkin. */
    for (int i = 0; i < NCONN; i++)
        checkin_expect(i, 1, POOL_KEEP, NULL);
    pool_stats s = stats(1);
    ck_assert_int_eq(s.idle, NCONN);
    ck_assert_uint_eq(s.closed_on_checkin, 0);
    ck_assert_int_eq(pool_idle_excess(P), 0);
}
END_TEST

/* ---- timeouts --------------------------------------------------------------- */

START_TEST(test_timeout_expiry_order_and_count)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert(pool_next_deadline(P) < 0);
    ck_assert_int_eq(co(1, 1, 0, &out), POOL_WAIT);
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_WAIT);
    ck_assert(pool_next_deadline(P) == 30);
    ck_assert_ptr_null(pool_expire(P, 29.999));
    /* deadline <= now expires. */
    ck_assert_ptr_eq(pool_expire(P, 30), &W[1]);
    ck_assert(!W[1].queued);
    ck_assert_ptr_null(pool_expire(P, 30));
    ck_assert(pool_next_deadline(P) == 31);
    ck_assert_ptr_eq(pool_expire(P, 100), &W[2]);
    ck_assert_ptr_eq(pool_expire(P, 100), &W[3]);
    ck_assert_ptr_null(pool_expire(P, 100));
    ck_assert(pool_next_deadline(P) < 0);
    pool_stats s = stats(100);
    ck_assert_uint_eq(s.timeouts, 3);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert(s.longest_wait == 0);
}
END_TEST

START_TEST(test_timeout_after_reload_changed_timeout)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 0, &out), POOL_WAIT); /* deadline 30 */
    pool_limits l = limits(1, 0, 5);
    pool_set_limits(P, &l);
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_WAIT); /* deadline 6 */
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_WAIT); /* deadline 7 */
    ck_assert(pool_next_deadline(P) == 6);
    ck_assert_ptr_null(pool_expire(P, 5.5));
    ck_assert_ptr_eq(pool_expire(P, 6), &W[2]);
    ck_assert(pool_next_deadline(P) == 7);
    /* Both expired at 40: the first in queue order goes first. */
    ck_assert_ptr_eq(pool_expire(P, 40), &W[1]);
    ck_assert_ptr_eq(pool_expire(P, 40), &W[3]);
    ck_assert_ptr_null(pool_expire(P, 40));
    ck_assert_uint_eq(stats(40).timeouts, 3);
    /* An empty queue is in order again. */
    ck_assert_int_eq(co(4, 4, 50, &out), POOL_WAIT);
    ck_assert(pool_next_deadline(P) == 55);
}
END_TEST

START_TEST(test_timeout_message)
{
    mk(limits(5, 10, 30));
    for (int i = 0; i < 15; i++)
        open_lent(i, i, 0);
    pool_conn *out;
    ck_assert_int_eq(co(20, 20, 0, &out), POOL_WAIT);
    ck_assert_ptr_eq(pool_expire(P, 30), &W[20]);
    char buf[200];
    int n = pool_format_timeout_message(P, buf, sizeof buf);
    ck_assert_str_eq(buf, "QueuePool limit of size 5 overflow 10 reached, "
                          "connection timed out, timeout 30.00");
    ck_assert_int_eq(n, (int)strlen(buf));
    /* snprintf rules when the buffer is short. */
    char small[10];
    ck_assert_int_eq(pool_format_timeout_message(P, small, sizeof small), n);
    ck_assert_str_eq(small, "QueuePool");

    pool_limits l = limits(2, 0, 2.5);
    pool_set_limits(P, &l);
    pool_format_timeout_message(P, buf, sizeof buf);
    /* The live counter, as SQLAlchemy prints it. */
    ck_assert_str_eq(buf, "QueuePool limit of size 2 overflow 13 reached, "
                          "connection timed out, timeout 2.50");
}
END_TEST

/* ---- connects ---------------------------------------------------------------- */

START_TEST(test_connected_fields)
{
    mk(limits(5, 10, 30));
    pool_dispose(P, 0);
    pool_dispose(P, 0);
    pool_conn *out;
    ck_assert_int_eq(co(0, 0, 3, &out), POOL_OPEN);
    pool_connected(P, &C[0], 4.5);
    ck_assert_int_eq(C[0].state, POOL_CONN_LENT);
    ck_assert(C[0].created_at == 4.5);
    ck_assert(C[0].fresh);
    ck_assert_uint_eq(C[0].generation, 2);
    pool_stats s = stats(5);
    ck_assert_uint_eq(s.connects, 1);
    ck_assert_uint_eq(s.checkouts, 1);
    ck_assert_int_eq(s.connecting, 0);
    ck_assert_int_eq(s.lent, 1);
}
END_TEST

START_TEST(test_connect_failure_frees_slot)
{
    mk(limits(1, 0, 30));
    pool_conn *out;
    ck_assert_int_eq(co(0, 0, 0, &out), POOL_OPEN);
    ck_assert_int_eq(co(1, 1, 0, &out), POOL_WAIT);
    ck_assert_ptr_null(pool_next_ready(P));
    pool_connect_failed(P, &C[0], 1);
    ck_assert_int_eq(C[0].state, POOL_CONN_GONE);
    pool_stats s = stats(1);
    ck_assert_int_eq(s.open, 0);
    ck_assert_uint_eq(s.connect_failures, 1);
    ck_assert_uint_eq(s.connects, 0);
    /* Better than SQLAlchemy: the waiter is served now, not at its timeout. */
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    ck_assert_int_eq(co(1, 2, 1, &out), POOL_OPEN);
    ck_assert_ptr_eq(out, &C[2]);
}
END_TEST

START_TEST(test_remove_frees_slot_any_state)
{
    mk(limits(1, 2, 30));
    pool_conn *out;
    ck_assert_int_eq(co(0, 0, 0, &out), POOL_OPEN); /* connecting */
    open_lent(1, 1, 0);                             /* lent */
    open_lent(2, 2, 0);
    checkin_expect(2, 1, POOL_KEEP, NULL); /* idle */
    ck_assert_int_eq(stats(1).open, 3);
    pool_remove(P, &C[0], 2);
    pool_remove(P, &C[1], 2);
    pool_remove(P, &C[2], 2);
    pool_stats s = stats(2);
    ck_assert_int_eq(s.open, 0);
    ck_assert_int_eq(s.idle + s.lent + s.connecting, 0);
    ck_assert_ptr_null(pool_pop_idle(P, 2));
}
END_TEST

/* ---- lend-time checks ---------------------------------------------------------------- */

/* Lend idle conn j to waiter i at `now` and run the lend check. */
static pool_check relend(int i, int j, double now)
{
    pool_conn *out;
    ck_assert_int_eq(co(i, NCONN - 1, now, &out), POOL_LEND);
    ck_assert_ptr_eq(out, &C[j]);
    return pool_lend_check(P, &C[j], now);
}

START_TEST(test_recycle_strict_boundary)
{
    pool_limits l = limits(5, 10, 30);
    l.recycle = 10;
    mk(l);
    open_lent(0, 0, 100);
    checkin_expect(0, 101, POOL_KEEP, NULL);
    /* Exactly recycle seconds old: kept (strict '>'). */
    ck_assert_int_eq(relend(1, 0, 110), POOL_CHECK_USE);
    checkin_expect(0, 110, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(1, 0, 110.001), POOL_CHECK_RECYCLE);
    ck_assert_uint_eq(stats(111).recycles, 1);
    ck_assert_uint_eq(stats(111).invalidations, 0);
}
END_TEST

START_TEST(test_recycle_zero_and_never)
{
    pool_limits l = limits(5, 10, 30);
    l.recycle = 0;
    mk(l);
    open_lent(0, 0, 1);
    checkin_expect(0, 1, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(1, 0, 1), POOL_CHECK_USE); /* 0 > 0 is false */
    checkin_expect(0, 1, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(1, 0, 1.5), POOL_CHECK_RECYCLE);
    checkin_expect(0, 1.5, POOL_KEEP, NULL);
    l.recycle = -1;
    pool_set_limits(P, &l);
    ck_assert_int_eq(relend(1, 0, 1e9), POOL_CHECK_USE);
}
END_TEST

START_TEST(test_recycle_before_invalidation)
{
    pool_limits l = limits(5, 10, 30);
    l.recycle = 10;
    l.pre_ping = true;
    mk(l);
    open_lent(0, 0, 0);
    checkin_expect(0, 1, POOL_KEEP, NULL);
    pool_invalidate(P, NULL, 5);
    ck_assert_int_eq(relend(1, 0, 20), POOL_CHECK_RECYCLE);
    pool_stats s = stats(20);
    ck_assert_uint_eq(s.recycles, 1);
    ck_assert_uint_eq(s.invalidations, 0);
}
END_TEST

START_TEST(test_invalidation_only_of_conns_created_before)
{
    mk(limits(5, 10, 30));
    open_lent(0, 0, 1); /* created 1 */
    open_lent(1, 1, 5); /* created 5 */
    /* Conn 1 dies at 6: everything created before 6 is doomed. */
    pool_invalidate(P, &C[1], 6);
    pool_remove(P, &C[1], 6);
    open_lent(2, 2, 6); /* created at the same instant: not before */
    open_lent(3, 3, 7);
    checkin_expect(0, 8, POOL_KEEP, NULL);
    checkin_expect(2, 8, POOL_KEEP, NULL);
    checkin_expect(3, 8, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(10, 0, 9), POOL_CHECK_INVALID);
    ck_assert_int_eq(relend(11, 2, 9), POOL_CHECK_USE);
    ck_assert_int_eq(relend(12, 3, 9), POOL_CHECK_USE);
    ck_assert_uint_eq(stats(9).invalidations, 1);
    /* Conn 0 (created 1) dies too: older than the invalidation time, so the
     * time does not move, and conn 3 (created 7) stays valid. */
    pool_invalidate(P, &C[0], 10);
    checkin_expect(3, 10, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(13, 3, 11), POOL_CHECK_USE);
    /* NULL: unconditional. */
    pool_invalidate(P, NULL, 12);
    checkin_expect(3, 12, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(13, 3, 13), POOL_CHECK_INVALID);
    ck_assert_uint_eq(stats(13).invalidations, 2);
}
END_TEST

START_TEST(test_pre_ping_only_when_not_fresh)
{
    pool_limits l = limits(2, 0, 30);
    l.pre_ping = true;
    mk(l);
    open_lent(0, 0, 0);
    /* Just connected: fresh, no ping even if the daemon asks. */
    ck_assert(C[0].fresh);
    ck_assert_int_eq(pool_lend_check(P, &C[0], 0), POOL_CHECK_USE);
    ck_assert(!C[0].fresh);
    checkin_expect(0, 1, POOL_KEEP, NULL);
    ck_assert_int_eq(relend(1, 0, 2), POOL_CHECK_PING);
    /* A conn lent once without a lend check (the usual POOL_OPEN path) is
     * not fresh after its checkin. */
    open_lent(2, 1, 2);
    checkin_expect(1, 3, POOL_KEEP, NULL);
    ck_assert(!C[1].fresh);
    ck_assert_int_eq(relend(3, 1, 3), POOL_CHECK_PING);
    /* Also a conn handed straight to a waiter. */
    pool_conn *out;
    ck_assert_int_eq(co(4, 4, 3, &out), POOL_WAIT);
    checkin_expect(0, 4, POOL_HANDOFF, &W[4]);
    ck_assert_int_eq(pool_lend_check(P, &C[0], 4), POOL_CHECK_PING);
    /* Without pre_ping: USE. */
    l.pre_ping = false;
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_lend_check(P, &C[0], 6), POOL_CHECK_USE);
}
END_TEST

START_TEST(test_replace_keeps_slot_and_turn)
{
    pool_limits l = limits(1, 0, 30);
    l.recycle = 10;
    mk(l);
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(2, 2, 2, &out), POOL_WAIT);
    checkin_expect(0, 20, POOL_HANDOFF, &W[1]);
    ck_assert_int_eq(pool_lend_check(P, &C[0], 20), POOL_CHECK_RECYCLE);
    /* Replace with a new slot: the count stays, waiter 2 stays queued. */
    pool_replace(P, &C[0], &C[5], 20);
    ck_assert_int_eq(C[0].state, POOL_CONN_GONE);
    ck_assert_int_eq(C[5].state, POOL_CONN_CONNECTING);
    pool_stats s = stats(20);
    ck_assert_int_eq(s.open, 1);
    ck_assert_int_eq(s.connecting, 1);
    ck_assert_int_eq(s.waiting, 1);
    ck_assert_ptr_null(pool_next_ready(P));
    pool_connected(P, &C[5], 21);
    ck_assert(C[5].fresh);
    ck_assert_int_eq(pool_lend_check(P, &C[5], 21), POOL_CHECK_USE);
    /* In place, then a failed reconnect frees the slot for waiter 2. */
    pool_replace(P, &C[5], &C[5], 22);
    ck_assert_int_eq(C[5].state, POOL_CONN_CONNECTING);
    pool_connect_failed(P, &C[5], 23);
    ck_assert_ptr_eq(pool_next_ready(P), &W[2]);
    ck_assert_int_eq(co(2, 6, 23, &out), POOL_OPEN);
    s = stats(23);
    ck_assert_uint_eq(s.connects, 2);
    ck_assert_uint_eq(s.connect_failures, 1);
    ck_assert_uint_eq(s.recycles, 1);
}
END_TEST

/* ---- dispose, reload, pop ------------------------------------------------------------ */

START_TEST(test_dispose_closes_idle_now_retires_lent_later)
{
    mk(limits(5, 10, 30));
    open_lent(0, 0, 0);
    open_lent(1, 1, 0);
    open_lent(2, 2, 0);
    pool_conn *out;
    ck_assert_int_eq(co(3, 3, 0, &out), POOL_OPEN); /* still connecting */
    checkin_expect(0, 1, POOL_KEEP, NULL);
    checkin_expect(1, 1, POOL_KEEP, NULL);
    pool_dispose(P, 2);
    pool_conn *a = pool_dispose_next_idle(P, 2);
    pool_conn *b = pool_dispose_next_idle(P, 2);
    ck_assert_ptr_null(pool_dispose_next_idle(P, 2));
    ck_assert(a != b && (a == &C[0] || a == &C[1]) && (b == &C[0] || b == &C[1]));
    ck_assert_int_eq(C[0].state, POOL_CONN_GONE);
    ck_assert_int_eq(C[1].state, POOL_CONN_GONE);
    ck_assert_int_eq(stats(2).open, 2);
    /* The lent one is closed when it comes back... */
    checkin_expect(2, 3, POOL_CLOSE, NULL);
    /* ...and so is one whose connect started before the dispose. */
    pool_connected(P, &C[3], 3);
    checkin_expect(3, 4, POOL_CLOSE, NULL);
    ck_assert_int_eq(stats(4).open, 0);
    /* New conns are kept, and a later drain leaves them alone. */
    open_lent(4, 4, 5);
    checkin_expect(4, 6, POOL_KEEP, NULL);
    ck_assert_ptr_null(pool_dispose_next_idle(P, 6));
    ck_assert_int_eq(relend(5, 4, 7), POOL_CHECK_USE);
}
END_TEST

START_TEST(test_dispose_old_idle_lent_before_drain_is_invalid)
{
    mk(limits(5, 10, 30));
    open_lent(0, 0, 0);
    checkin_expect(0, 1, POOL_KEEP, NULL);
    pool_dispose(P, 2);
    ck_assert_int_eq(relend(1, 0, 3), POOL_CHECK_INVALID);
    ck_assert_uint_eq(stats(3).invalidations, 1);
}
END_TEST

START_TEST(test_dispose_frees_slots_for_waiters)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    pool_dispose(P, 2);
    /* The retired conn is closed, not handed off; the waiter gets a new one. */
    checkin_expect(0, 3, POOL_CLOSE, NULL);
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    ck_assert_int_eq(co(1, 2, 3, &out), POOL_OPEN);
}
END_TEST

START_TEST(test_reload_grows_capacity)
{
    mk(limits(1, 0, 30));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(2, 2, 2, &out), POOL_WAIT);
    ck_assert_int_eq(co(3, 3, 3, &out), POOL_WAIT);
    pool_limits l = limits(1, 2, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_get_limits(P)->max_overflow, 2);
    pool_waiter *w;
    int served = 0;
    while ((w = pool_next_ready(P))) {
        ck_assert_ptr_eq(w, &W[1 + served]);
        ck_assert_int_eq(co(1 + served, 1 + served, 4, &out), POOL_OPEN);
        served++;
    }
    ck_assert_int_eq(served, 2);
    ck_assert_int_eq(stats(4).waiting, 1);
    ck_assert(W[3].queued);
    /* Growing to unlimited releases the rest. */
    l.max_overflow = -1;
    pool_set_limits(P, &l);
    ck_assert_ptr_eq(pool_next_ready(P), &W[3]);
}
END_TEST

START_TEST(test_reload_shrinks_capacity)
{
    mk(limits(3, 3, 30));
    for (int i = 0; i < 6; i++)
        open_lent(i, i, 0);
    pool_limits l = limits(1, 1, 30);
    pool_set_limits(P, &l);
    pool_conn *out;
    /* Above capacity: newcomers wait... */
    ck_assert_int_eq(co(10, 10, 1, &out), POOL_WAIT);
    /* ...and returning conns are closed, not handed off, until open is back
     * at capacity (2). */
    for (int i = 0; i < 4; i++)
        checkin_expect(i, 2, POOL_CLOSE, NULL);
    ck_assert_int_eq(stats(2).open, 2);
    ck_assert_ptr_null(pool_next_ready(P));
    checkin_expect(4, 3, POOL_HANDOFF, &W[10]);
    checkin_expect(4, 3, POOL_KEEP, NULL);
    checkin_expect(5, 3, POOL_CLOSE, NULL); /* pool_size 1 already idle */
    pool_stats s = stats(3);
    ck_assert_int_eq(s.open, 1);
    ck_assert_uint_eq(s.closed_on_checkin, 5);
}
END_TEST

START_TEST(test_reload_shrinks_idle)
{
    mk(limits(4, 0, 30));
    for (int i = 0; i < 4; i++)
        open_lent(i, i, 0);
    for (int i = 0; i < 4; i++)
        checkin_expect(i, 1 + i, POOL_KEEP, NULL);
    ck_assert_int_eq(pool_idle_excess(P), 0);
    pool_limits l = limits(2, 0, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_idle_excess(P), 2);
    /* pop_idle gives the one idle longest. */
    ck_assert_ptr_eq(pool_pop_idle(P, 5), &C[0]);
    ck_assert_ptr_eq(pool_pop_idle(P, 5), &C[1]);
    ck_assert_int_eq(C[0].state, POOL_CONN_GONE);
    ck_assert_int_eq(pool_idle_excess(P), 0);
    ck_assert_int_eq(stats(5).idle, 2);
    /* Capacity below the open ones: the excess is limited to what is idle. */
    pool_conn *out;
    ck_assert_int_eq(co(5, 5, 6, &out), POOL_LEND);
    ck_assert_ptr_eq(out, &C[2]);
    l = limits(1, 0, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_idle_excess(P), 1);
    ck_assert_ptr_nonnull(pool_pop_idle(P, 7));
    ck_assert_ptr_null(pool_pop_idle(P, 7));
    ck_assert_int_eq(pool_idle_excess(P), 0);
}
END_TEST

/* ---- pause ----------------------------------------------------------------------- */

START_TEST(test_pause_holds_checkouts_until_resume)
{
    mk(limits(2, 0, 10));
    open_lent(0, 0, 0);
    ck_assert(!pool_is_paused(P));
    pool_pause(P, 1);
    ck_assert(pool_is_paused(P));
    pool_conn *out;
    /* Free capacity, then an idle conn: nobody is served while paused. */
    ck_assert_int_eq(co(1, 1, 2, &out), POOL_WAIT);
    ck_assert_ptr_null(out);
    checkin_expect(0, 3, POOL_KEEP, NULL); /* kept, not handed to W1 */
    ck_assert_ptr_null(pool_next_ready(P));
    ck_assert_double_lt(pool_next_deadline(P), 0);
    ck_assert_ptr_null(pool_expire(P, 1000));
    pool_stats s = stats(4);
    ck_assert_int_eq(s.lent, 0);
    ck_assert_int_eq(s.idle, 1);
    ck_assert_int_eq(s.waiting, 1);
    ck_assert_uint_eq(s.timeouts, 0);
    /* RESUME at 20: W1 queued at 2, all of it paused: its 10 s start now. */
    pool_resume(P, 20);
    ck_assert(!pool_is_paused(P));
    ck_assert_double_eq_tol(pool_next_deadline(P), 30, 1e-9);
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    ck_assert_int_eq(co(1, 1, 20, &out), POOL_LEND);
    ck_assert_ptr_eq(out, &C[0]);
}
END_TEST

START_TEST(test_pause_time_does_not_count_toward_timeout)
{
    mk(limits(1, 0, 10));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT); /* deadline 11 */
    ck_assert_int_eq(co(2, 2, 2, &out), POOL_WAIT); /* deadline 12 */
    pool_pause(P, 5);
    ck_assert_int_eq(co(3, 3, 6, &out), POOL_WAIT); /* queued while paused */
    pool_resume(P, 8);                              /* 3 s paused */
    ck_assert_ptr_null(pool_expire(P, 13.9));
    ck_assert_ptr_eq(pool_expire(P, 14), &W[1]);
    ck_assert_ptr_null(pool_expire(P, 14.9));
    ck_assert_ptr_eq(pool_expire(P, 15), &W[2]);
    ck_assert_double_eq_tol(pool_next_deadline(P), 18, 1e-9); /* 8 + 10 */
    ck_assert_ptr_eq(pool_expire(P, 18), &W[3]);
    ck_assert_uint_eq(stats(18).timeouts, 3);
}
END_TEST

START_TEST(test_pause_released_waiter_back_to_head)
{
    mk(limits(1, 0, 10));
    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 1, &out), POOL_WAIT);
    ck_assert_int_eq(co(2, 2, 2, &out), POOL_WAIT);
    pool_remove(P, &C[0], 3);
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    pool_pause(P, 3);
    pool_pause(P, 4); /* already paused: no change */
    ck_assert_int_eq(co(1, 1, 4, &out), POOL_WAIT);
    ck_assert(W[1].queued);
    ck_assert_int_eq(stats(4).waiting, 2);
    pool_resume(P, 5);
    pool_resume(P, 6); /* not paused: no change */
    ck_assert_ptr_eq(pool_next_ready(P), &W[1]);
    ck_assert_ptr_null(pool_next_ready(P)); /* one slot, promised to W1 */
    ck_assert_int_eq(co(1, 1, 6, &out), POOL_OPEN);
    /* W1's deadline (11) moved by the 2 s paused; W2 is still queued. */
    ck_assert_double_eq_tol(pool_next_deadline(P), 14, 1e-9);
}
END_TEST

/* Lowering pool_size while conns are lent: nothing lent is touched; the
 * extra ones close as they come back. Raising it serves waiters at once. */
START_TEST(test_reload_size_down_then_up)
{
    mk(limits(3, 0, 30));
    for (int i = 0; i < 3; i++)
        open_lent(i, i, 0);
    pool_limits l = limits(1, 0, 30);
    pool_set_limits(P, &l);
    ck_assert_int_eq(pool_idle_excess(P), 0);
    ck_assert_int_eq(stats(1).lent, 3);
    checkin_expect(0, 1, POOL_CLOSE, NULL);
    checkin_expect(1, 1, POOL_CLOSE, NULL);
    checkin_expect(2, 1, POOL_KEEP, NULL);
    pool_conn *out;
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_LEND);
    ck_assert_int_eq(co(4, 4, 2, &out), POOL_WAIT);
    ck_assert_int_eq(co(5, 5, 2, &out), POOL_WAIT);
    l = limits(3, 0, 30);
    pool_set_limits(P, &l);
    ck_assert_ptr_eq(pool_next_ready(P), &W[4]);
    ck_assert_ptr_eq(pool_next_ready(P), &W[5]);
    ck_assert_ptr_null(pool_next_ready(P));
    ck_assert_int_eq(co(4, 4, 3, &out), POOL_OPEN);
    ck_assert_int_eq(co(5, 5, 3, &out), POOL_OPEN);
}
END_TEST

/* ---- stats ------------------------------------------------------------------------- */

START_TEST(test_stats_numbers)
{
    pool_limits l = limits(2, 1, 10);
    l.recycle = 100;
    mk(l);
    pool_stats s = stats(0);
    ck_assert_int_eq(s.open, 0);
    ck_assert_int_eq(s.overflow, -2);
    ck_assert(s.longest_wait == 0);

    open_lent(0, 0, 0);
    pool_conn *out;
    ck_assert_int_eq(co(1, 1, 0, &out), POOL_OPEN);
    ck_assert_int_eq(co(2, 2, 0, &out), POOL_OPEN);
    pool_connect_failed(P, &C[2], 1);
    ck_assert_int_eq(co(2, 2, 1, &out), POOL_OPEN);
    pool_connected(P, &C[2], 2);
    ck_assert_int_eq(co(3, 3, 2, &out), POOL_WAIT);
    ck_assert_int_eq(co(4, 4, 3, &out), POOL_WAIT);
    s = stats(4.5);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_int_eq(s.lent, 2);
    ck_assert_int_eq(s.connecting, 1);
    ck_assert_int_eq(s.open, 3);
    ck_assert_int_eq(s.overflow, 1);
    ck_assert_int_eq(s.waiting, 2);
    ck_assert_double_eq_tol(s.longest_wait, 2.5, 1e-9);
    ck_assert_uint_eq(s.checkouts, 4); /* three opens + the retried one */
    ck_assert_uint_eq(s.connects, 2);
    ck_assert_uint_eq(s.connect_failures, 1);

    checkin_expect(0, 5, POOL_HANDOFF, &W[3]);
    ck_assert_ptr_eq(pool_expire(P, 13), &W[4]);
    checkin_expect(0, 14, POOL_KEEP, NULL);
    checkin_expect(2, 14, POOL_KEEP, NULL);
    pool_connected(P, &C[1], 14);
    checkin_expect(1, 15, POOL_CLOSE, NULL);
    ck_assert_int_eq(relend(5, 0, 200), POOL_CHECK_RECYCLE);
    pool_invalidate(P, NULL, 201);
    ck_assert_int_eq(relend(6, 2, 202), POOL_CHECK_RECYCLE);
    s = stats(300);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_int_eq(s.lent, 2);
    ck_assert_int_eq(s.connecting, 0);
    ck_assert_int_eq(s.open, 2);
    ck_assert_int_eq(s.overflow, 0);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert(s.longest_wait == 0);
    ck_assert_uint_eq(s.checkouts, 7);
    ck_assert_uint_eq(s.timeouts, 1);
    ck_assert_uint_eq(s.recycles, 2);
    ck_assert_uint_eq(s.invalidations, 0);
    ck_assert_uint_eq(s.closed_on_checkin, 1);
}
END_TEST

START_TEST(test_to_str)
{
    ck_assert_str_eq(pool_conn_state_to_str(POOL_CONN_CONNECTING), "connecting");
    ck_assert_str_eq(pool_conn_state_to_str(POOL_CONN_GONE), "gone");
    ck_assert_str_eq(pool_checkout_result_to_str(POOL_WAIT), "wait");
    ck_assert_str_eq(pool_check_to_str(POOL_CHECK_RECYCLE), "recycle");
    ck_assert_str_eq(pool_checkin_result_to_str(POOL_HANDOFF), "handoff");
}
END_TEST

/* ---- randomized invariants -------------------------------------------------------------
 * The test plays the daemon: clients ask for conns, conns connect or fail,
 * come back, die, waiters give up or time out, limits change, the pool is
 * disposed. A model kept by the test says what must happen: which waiter is
 * served next (strict FIFO), which idle conn is lent (FIFO/LIFO), and the
 * counts. After every step: open <= capacity whenever something was opened
 * or kept, idle + lent + connecting == open, no waiter queued while an idle
 * conn or free capacity exists, and the pool's figures match the model's. */

/* Check's ck_assert records a mark point on every success, which is slow in
 * a loop of hundreds of thousands of steps; these only cost on failure. */
static int rq_seed;
static long rq_step;
#define RQ(e)                                                                  \
    do {                                                                       \
        if (!(e))                                                              \
            ck_abort_msg("%s:%d: '%s' failed (seed %d, step %ld)", __FILE__,    \
                         __LINE__, #e, rq_seed, rq_step);                      \
    } while (0)
#define RQ_OP(a, op, b)                                                        \
    do {                                                                       \
        long long rq_a_ = (long long)(a), rq_b_ = (long long)(b);              \
        if (!(rq_a_ op rq_b_))                                                 \
            ck_abort_msg("%s:%d: '%s %s %s' failed: %lld vs %lld (seed %d, "    \
                         "step %ld)", __FILE__, __LINE__, #a, #op, #b, rq_a_,   \
                         rq_b_, rq_seed, rq_step);                             \
    } while (0)
#define RQ_EQ(a, b) RQ_OP(a, ==, b)
#define RQ_NE(a, b) RQ_OP(a, !=, b)
#define RQ_LT(a, b) RQ_OP(a, <, b)
#define RQ_LE(a, b) RQ_OP(a, <=, b)
#define RQ_GT(a, b) RQ_OP(a, >, b)
#define RQ_GE(a, b) RQ_OP(a, >=, b)
#define RQ_NULL(x) RQ((x) == NULL)
#define RQ_NONNULL(x) RQ((x) != NULL)

enum { CL_FREE, CL_QUEUED, CL_OPENING, CL_HOLDING };

#define RN_CONN 40
#define RN_CLIENT 24

typedef struct {
    uint64_t rng;
    double now;
    pool_limits lim;
    uint64_t generation;
    int cl_state[RN_CLIENT];
    int cl_conn[RN_CLIENT];     /* conn it holds or is opening */
    double cl_deadline[RN_CLIENT];
    double cl_enq[RN_CLIENT];
    int queue[RN_CLIENT], qlen; /* model queue, in order */
    int idle[RN_CONN], nidle;   /* model idle list, checkin order */
    pool_conn_state cs[RN_CONN];
    int n_lent, n_connecting;
    uint64_t checkouts, timeouts;
    long steps;
} model;

static uint64_t rnd(model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static int rndn(model *m, int n)
{
    return (int)(rnd(m) % (uint64_t)n);
}

static int cidx(const pool_waiter *w)
{
    return (int)(w - W);
}

static int kidx(const pool_conn *c)
{
    return (int)(c - C);
}

static long capacity(const model *m)
{
    if (m->lim.pool_size == 0 || m->lim.max_overflow < 0)
        return -1;
    return (long)m->lim.pool_size + m->lim.max_overflow;
}

static int m_open(const model *m)
{
    return m->nidle + m->n_lent + m->n_connecting;
}

static void q_remove(model *m, int c)
{
    for (int i = 0; i < m->qlen; i++) {
        if (m->queue[i] == c) {
            memmove(&m->queue[i], &m->queue[i + 1], (size_t)(m->qlen - i - 1) * sizeof(int));
            m->qlen--;
            return;
        }
    }
    ck_abort_msg("client %d not in model queue", c);
}

static void idle_remove(model *m, int k)
{
    for (int i = 0; i < m->nidle; i++) {
        if (m->idle[i] == k) {
            memmove(&m->idle[i], &m->idle[i + 1], (size_t)(m->nidle - i - 1) * sizeof(int));
            m->nidle--;
            return;
        }
    }
    ck_abort_msg("conn %d not in model idle list", k);
}

static int free_slot(model *m)
{
    int start = rndn(m, RN_CONN);
    for (int i = 0; i < RN_CONN; i++) {
        int k = (start + i) % RN_CONN;
        if (m->cs[k] == POOL_CONN_GONE)
            return k;
    }
    ck_abort_msg("no free conn slot");
    return -1;
}

static void set_cs(model *m, int k, pool_conn_state s)
{
    pool_conn_state old = m->cs[k];
    if (old == POOL_CONN_LENT)
        m->n_lent--;
    if (old == POOL_CONN_CONNECTING)
        m->n_connecting--;
    if (s == POOL_CONN_LENT)
        m->n_lent++;
    if (s == POOL_CONN_CONNECTING)
        m->n_connecting++;
    m->cs[k] = s;
    RQ_EQ(C[k].state, s);
}

static void check_capacity(const model *m)
{
    long cap = capacity(m);
    if (cap >= 0)
        RQ_LE(m_open(m), cap);
}

static void lent_to(model *m, int c, int k);

/* The daemon's side of a checkout result for client c. */
static void handle_checkout(model *m, int c, pool_checkout_result r, pool_conn *out, int fresh)
{
    switch (r) {
    case POOL_LEND: {
        int k = kidx(out);
        RQ_GT(m->nidle, 0);
        int want = m->lim.use_lifo ? m->idle[m->nidle - 1] : m->idle[0];
        RQ_EQ(k, want);
        idle_remove(m, k);
        set_cs(m, k, POOL_CONN_LENT);
        RQ_EQ(C[fresh].state, POOL_CONN_GONE);
        m->checkouts++;
        lent_to(m, c, k);
        break;
    }
    case POOL_OPEN:
        RQ(out == &C[fresh]);
        RQ_EQ(m->nidle, 0);
        set_cs(m, fresh, POOL_CONN_CONNECTING);
        check_capacity(m);
        m->checkouts++;
        m->cl_state[c] = CL_OPENING;
        m->cl_conn[c] = fresh;
        break;
    case POOL_WAIT:
        RQ_NULL(out);
        RQ(W[c].queued);
        RQ_EQ(C[fresh].state, POOL_CONN_GONE);
        m->cl_state[c] = CL_QUEUED;
        m->queue[m->qlen++] = c;
        m->cl_deadline[c] = m->now + m->lim.timeout;
        m->cl_enq[c] = m->now;
        RQ(W[c].deadline == m->cl_deadline[c]);
        break;
    }
}

/* Serve every waiter the pool says is ready; the first must be the model's
 * head each time. Sometimes release several before checking them out. */
static void drain(model *m)
{
    for (;;) {
        int rel[RN_CLIENT], nrel = 0;
        int batch = 1 + rndn(m, 3);
        pool_waiter *w;
        while (nrel < batch && (w = pool_next_ready(P))) {
            int c = cidx(w);
            RQ_GT(m->qlen, 0);
            RQ_EQ(c, m->queue[0]);
            RQ(w->ready && !w->queued);
            q_remove(m, c);
            rel[nrel++] = c;
        }
        if (nrel == 0)
            return;
        for (int i = 0; i < nrel; i++) {
            int c = rel[i];
            int fresh = free_slot(m);
            pool_conn *out;
            pool_checkout_result r = pool_checkout(P, &W[c], &C[fresh], m->now, &out);
            RQ_NE(r, POOL_WAIT); /* released waiters are served */
            handle_checkout(m, c, r, out, fresh);
        }
    }
}

/* Conn k is LENT to client c: run the lend check like the daemon. */
static void lent_to(model *m, int c, int k)
{
    m->cl_state[c] = CL_HOLDING;
    m->cl_conn[c] = k;
    if (C[k].fresh)
        return; /* just connected: no check needed */
    pool_check chk = pool_lend_check(P, &C[k], m->now);
    RQ(!C[k].fresh);
    bool replace = chk == POOL_CHECK_RECYCLE || chk == POOL_CHECK_INVALID;
    if (chk == POOL_CHECK_PING && rndn(m, 4) == 0) {
        pool_invalidate(P, &C[k], m->now); /* the ping failed */
        replace = true;
    }
    if (replace) {
        int fresh = rndn(m, 2) ? k : free_slot(m);
        pool_replace(P, &C[k], &C[fresh], m->now);
        if (fresh != k)
            set_cs(m, k, POOL_CONN_GONE);
        set_cs(m, fresh, POOL_CONN_CONNECTING);
        m->cl_state[c] = CL_OPENING;
        m->cl_conn[c] = fresh;
    }
}

static int pick_client(model *m, int state)
{
    int start = rndn(m, RN_CLIENT);
    for (int i = 0; i < RN_CLIENT; i++) {
        int c = (start + i) % RN_CLIENT;
        if (m->cl_state[c] == state)
            return c;
    }
    return -1;
}

static void random_limits(model *m)
{
    static const int sizes[] = {0, 1, 2, 3, 5};
    static const int overflows[] = {-1, 0, 1, 2, 4};
    m->lim.pool_size = sizes[rndn(m, 5)];
    m->lim.max_overflow = overflows[rndn(m, 5)];
    m->lim.timeout = (double)rndn(m, 20);
    m->lim.recycle = rndn(m, 3) ? -1 : (double)rndn(m, 50);
    m->lim.pre_ping = rndn(m, 2);
    m->lim.use_lifo = rndn(m, 2);
    pool_set_limits(P, &m->lim);
    m->lim = *pool_get_limits(P);
}

static void check_invariants(model *m)
{
    pool_stats s;
    pool_get_stats(P, m->now, &s);
    RQ_EQ(s.idle + s.lent + s.connecting, s.open);
    RQ_EQ(s.idle, m->nidle);
    RQ_EQ(s.lent, m->n_lent);
    RQ_EQ(s.connecting, m->n_connecting);
    RQ_EQ(s.waiting, m->qlen);
    RQ_EQ(s.overflow, s.open - m->lim.pool_size);
    RQ_EQ(s.checkouts, m->checkouts);
    RQ_EQ(s.timeouts, m->timeouts);
    if (m->qlen > 0) {
        /* Nobody waits while something could serve them. */
        RQ_EQ(s.idle, 0);
        long cap = capacity(m);
        RQ(cap >= 0 && s.open >= cap);
        RQ_NULL(pool_next_ready(P));
        RQ(s.longest_wait == m->now - m->cl_enq[m->queue[0]]);
        double d = m->cl_deadline[m->queue[0]];
        for (int i = 0; i < m->qlen; i++) {
            RQ(W[m->queue[i]].queued);
            if (m->cl_deadline[m->queue[i]] < d)
                d = m->cl_deadline[m->queue[i]];
        }
        RQ(pool_next_deadline(P) == d);
    } else {
        RQ(s.longest_wait == 0);
        RQ(pool_next_deadline(P) < 0);
    }
    for (int k = 0; k < RN_CONN; k++)
        RQ_EQ(C[k].state, m->cs[k]);
    /* Excess idle conns are popped right after a reload; KEEP never adds one. */
    if (m->lim.pool_size > 0)
        RQ_LE(s.idle, m->lim.pool_size);
    RQ_EQ(pool_idle_excess(P), 0);
}

static void random_step(model *m)
{
    int op = rndn(m, 100);
    pool_waiter *to;
    if (op < 30) { /* a client asks for a conn */
        int c = pick_client(m, CL_FREE);
        if (c < 0)
            return;
        bool line = m->qlen > 0;
        int fresh = free_slot(m);
        pool_conn *out;
        pool_checkout_result r = pool_checkout(P, &W[c], &C[fresh], m->now, &out);
        if (line)
            RQ_EQ(r, POOL_WAIT); /* never overtakes */
        if (r == POOL_WAIT && !line) {
            long cap = capacity(m);
            RQ(m->nidle == 0 && cap >= 0 && m_open(m) >= cap);
        }
        handle_checkout(m, c, r, out, fresh);
    } else if (op < 55) { /* a client gives its conn back */
        int c = pick_client(m, CL_HOLDING);
        if (c < 0)
            return;
        int k = m->cl_conn[c];
        bool retired = C[k].generation < m->generation;
        long cap = capacity(m);
        bool over = cap >= 0 && m_open(m) > cap;
        pool_checkin_result r = pool_checkin(P, &C[k], m->now, &to);
        m->cl_state[c] = CL_FREE;
        if (retired || over) {
            RQ_EQ(r, POOL_CLOSE);
        } else if (m->qlen > 0) {
            RQ_EQ(r, POOL_HANDOFF);
            int next = cidx(to);
            RQ_EQ(next, m->queue[0]);
            RQ(!to->queued);
            q_remove(m, next);
            m->checkouts++;
            lent_to(m, next, k);
        } else if (m->lim.pool_size > 0 && m->nidle >= m->lim.pool_size) {
            RQ_EQ(r, POOL_CLOSE);
        } else {
            RQ_EQ(r, POOL_KEEP);
        }
        if (r == POOL_KEEP) {
            set_cs(m, k, POOL_CONN_IDLE);
            m->idle[m->nidle++] = k;
            RQ(C[k].returned_at == m->now);
            check_capacity(m);
        } else if (r == POOL_CLOSE) {
            set_cs(m, k, POOL_CONN_GONE);
            drain(m);
        }
    } else if (op < 65) { /* a connect completes or fails */
        int c = pick_client(m, CL_OPENING);
        if (c < 0)
            return;
        int k = m->cl_conn[c];
        if (rndn(m, 5)) {
            pool_connected(P, &C[k], m->now);
            set_cs(m, k, POOL_CONN_LENT);
            RQ(C[k].fresh && C[k].created_at == m->now);
            lent_to(m, c, k);
        } else {
            pool_connect_failed(P, &C[k], m->now);
            set_cs(m, k, POOL_CONN_GONE);
            m->cl_state[c] = CL_FREE;
            drain(m);
        }
    } else if (op < 70) { /* a backend dies, lent or idle */
        if (rndn(m, 2) && m->nidle > 0) {
            int k = m->idle[rndn(m, m->nidle)];
            idle_remove(m, k);
            pool_remove(P, &C[k], m->now);
            set_cs(m, k, POOL_CONN_GONE);
        } else {
            int c = pick_client(m, CL_HOLDING);
            if (c < 0)
                return;
            int k = m->cl_conn[c];
            if (rndn(m, 2))
                pool_invalidate(P, &C[k], m->now);
            pool_remove(P, &C[k], m->now);
            set_cs(m, k, POOL_CONN_GONE);
            m->cl_state[c] = CL_FREE;
        }
        drain(m);
    } else if (op < 76) { /* a waiter gives up */
        if (m->qlen == 0)
            return;
        int c = m->queue[rndn(m, m->qlen)];
        pool_cancel_wait(P, &W[c]);
        RQ(!W[c].queued);
        q_remove(m, c);
        m->cl_state[c] = CL_FREE;
    } else if (op < 90) { /* time passes; waiters time out */
        m->now += (double)rndn(m, 4000) / 1000.0;
        pool_waiter *w;
        while ((w = pool_expire(P, m->now))) {
            int c = cidx(w);
            int first = -1;
            for (int i = 0; i < m->qlen; i++) {
                if (m->cl_deadline[m->queue[i]] <= m->now) {
                    first = m->queue[i];
                    break;
                }
            }
            RQ_EQ(c, first);
            q_remove(m, c);
            m->cl_state[c] = CL_FREE;
            m->timeouts++;
        }
        for (int i = 0; i < m->qlen; i++)
            RQ(m->cl_deadline[m->queue[i]] > m->now);
    } else if (op < 94) { /* reload */
        random_limits(m);
        int n = pool_idle_excess(P);
        for (int i = 0; i < n; i++) {
            pool_conn *k = pool_pop_idle(P, m->now);
            RQ_NONNULL(k);
            RQ_EQ(kidx(k), m->idle[0]);
            idle_remove(m, kidx(k));
            set_cs(m, kidx(k), POOL_CONN_GONE);
        }
        drain(m);
    } else if (op < 96) { /* dispose */
        pool_dispose(P, m->now);
        m->generation++;
        pool_conn *k;
        while ((k = pool_dispose_next_idle(P, m->now))) {
            RQ_LT(k->generation, m->generation);
            idle_remove(m, kidx(k));
            set_cs(m, kidx(k), POOL_CONN_GONE);
        }
        for (int i = 0; i < m->nidle; i++)
            RQ_EQ(C[m->idle[i]].generation, m->generation);
        drain(m);
    } else if (op < 98) { /* pool-wide invalidation */
        pool_invalidate(P, NULL, m->now);
    } else { /* shutdown-like: close one idle conn */
        pool_conn *k = pool_pop_idle(P, m->now);
        if (k) {
            RQ_EQ(kidx(k), m->idle[0]);
            idle_remove(m, kidx(k));
            set_cs(m, kidx(k), POOL_CONN_GONE);
            drain(m);
        }
    }
}

START_TEST(test_randomized_invariants)
{
    for (int seed = 1; seed <= 40; seed++) {
        model m;
        memset(&m, 0, sizeof m);
        m.rng = 0x9E3779B97F4A7C15ull * (uint64_t)seed;
        for (int i = 0; i < NCONN; i++)
            pool_conn_init(&C[i], NULL);
        for (int i = 0; i < NWAIT; i++)
            pool_waiter_init(&W[i], NULL);
        for (int k = 0; k < RN_CONN; k++)
            m.cs[k] = POOL_CONN_GONE;
        m.lim = limits(2, 2, 5);
        mk(m.lim);
        rq_seed = seed;
        for (int step = 0; step < 5000; step++) {
            rq_step = step;
            random_step(&m);
            check_invariants(&m);
            m.steps++;
        }
        teardown_fixtures();
    }
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup_fixtures, teardown_fixtures);
    tcase_add_test(tc, test_open_below_capacity_without_waiting);
    tcase_add_test(tc, test_reuse_idle_first);
    tcase_add_test(tc, test_fifo_idle_longest_first);
    tcase_add_test(tc, test_lifo_most_recent_first);
    tcase_add_test(tc, test_queue_at_capacity);
    tcase_add_test(tc, test_handoff_at_checkin);
    tcase_add_test(tc, test_strict_fifo_among_waiters);
    tcase_add_test(tc, test_newcomer_does_not_overtake_freed_slot);
    tcase_add_test(tc, test_next_ready_ordering_and_reservation);
    tcase_add_test(tc, test_next_ready_serves_idle_conn);
    tcase_add_test(tc, test_released_waiter_back_to_head_when_limits_shrink);
    tcase_add_test(tc, test_released_waiter_alone_back_in_queue);
    tcase_add_test(tc, test_limits_normalised);
    tcase_add_test(tc, test_cancel_wait);
    tcase_add_test(tc, test_cancel_released_waiter);
    tcase_add_test(tc, test_overflow_shrinks_back_on_checkin);
    tcase_add_test(tc, test_max_overflow_unlimited);
    tcase_add_test(tc, test_pool_size_zero_unlimited);
    tcase_add_test(tc, test_timeout_expiry_order_and_count);
    tcase_add_test(tc, test_timeout_after_reload_changed_timeout);
    tcase_add_test(tc, test_timeout_message);
    tcase_add_test(tc, test_connected_fields);
    tcase_add_test(tc, test_connect_failure_frees_slot);
    tcase_add_test(tc, test_remove_frees_slot_any_state);
    tcase_add_test(tc, test_recycle_strict_boundary);
    tcase_add_test(tc, test_recycle_zero_and_never);
    tcase_add_test(tc, test_recycle_before_invalidation);
    tcase_add_test(tc, test_invalidation_only_of_conns_created_before);
    tcase_add_test(tc, test_pre_ping_only_when_not_fresh);
    tcase_add_test(tc, test_replace_keeps_slot_and_turn);
    tcase_add_test(tc, test_dispose_closes_idle_now_retires_lent_later);
    tcase_add_test(tc, test_dispose_old_idle_lent_before_drain_is_invalid);
    tcase_add_test(tc, test_dispose_frees_slots_for_waiters);
    tcase_add_test(tc, test_reload_grows_capacity);
    tcase_add_test(tc, test_reload_shrinks_capacity);
    tcase_add_test(tc, test_reload_shrinks_idle);
    tcase_add_test(tc, test_reload_size_down_then_up);
    tcase_add_test(tc, test_pause_holds_checkouts_until_resume);
    tcase_add_test(tc, test_pause_time_does_not_count_toward_timeout);
    tcase_add_test(tc, test_pause_released_waiter_back_to_head);
    tcase_add_test(tc, test_stats_numbers);
    tcase_add_test(tc, test_to_str);
    suite_add_tcase(s, tc);

    TCase *tr = tcase_create("randomized");
    tcase_add_checked_fixture(tr, setup_fixtures, teardown_fixtures);
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, test_randomized_invariants);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
