/* flush.c: the per-iteration write batching described in flush.h. */
#include "daemon/flush.h"

#include <uv.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/server.h"

static uv_check_t check;
static uv_idle_t idle;
static bool armed;
static tp_client *clients;   /* marked clients (singly linked via flush_next) */
static tp_backend *backends; /* marked backends */

static void on_idle(uv_idle_t *h) {}

static void on_check(uv_check_t *h)
{
    /* Flushing may mark again (an error closes, a send fails): loop. */
    while (clients || backends) {
        while (backends) {
            tp_backend *b = backends;
            backends = b->flush_next;
            b->flush_queued = false;
            b->flush_next = NULL;
            backend_flush(b);
        }
        while (clients) {
            tp_client *c = clients;
            clients = c->flush_next;
            c->flush_queued = false;
            c->flush_next = NULL;
            client_flush(c);
        }
    }
    uv_idle_stop(&idle);
    uv_check_stop(&check);
    armed = false;
}

static void arm(void)
{
    if (armed) return;
    armed = true;
    uv_check_start(&check, on_check);
    uv_idle_start(&idle, on_idle);
}

void flush_init(void)
{
    uv_check_init(tp.loop, &check);
    uv_idle_init(tp.loop, &idle);
    uv_unref((uv_handle_t *)&check);
    uv_unref((uv_handle_t *)&idle);
}

void flush_close(void)
{
    uv_close((uv_handle_t *)&check, NULL);
    uv_close((uv_handle_t *)&idle, NULL);
}

void flush_client_later(tp_client *c)
{
    if (c->flush_queued) return;
    c->flush_queued = true;
    c->flush_next = clients;
    clients = c;
    arm();
}

void flush_backend_later(tp_backend *b)
{
    if (b->flush_queued) return;
    b->flush_queued = true;
    b->flush_next = backends;
    backends = b;
    arm();
}

void flush_forget_client(tp_client *c)
{
    if (!c->flush_queued) return;
    for (tp_client **pp = &clients; *pp; pp = &(*pp)->flush_next)
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    c->flush_queued = false;
    c->flush_next = NULL;
}

void flush_forget_backend(tp_backend *b)
{
    if (!b->flush_queued) return;
    for (tp_backend **pp = &backends; *pp; pp = &(*pp)->flush_next)
        if (*pp == b) {
            *pp = b->flush_next;
            break;
        }
    b->flush_queued = false;
    b->flush_next = NULL;
}
