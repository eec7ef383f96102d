/* client_limits.c: client_login_timeout and client_idle_timeout, enforced by
 * one periodic sweep over the client list: no timer and no work per message,
 * one 4-byte timestamp per client (idle_since, set when a transaction ends).
 * A client that has not authenticated within client_login_timeout gets FATAL
 * 08P01; a logged-in client idle outside a transaction (no query running,
 * nothing pending) for client_idle_timeout gets FATAL 57P05, as PostgreSQL's
 * idle_session_timeout. Each closing is logged. (max_message_size is applied
 * where client.c reads a message header.) */
#include "daemon/client_limits.h"

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

#define SWEEP_MIN_MS 100
#define SWEEP_MAX_MS 1000

static uv_timer_t sweep_timer;
static bool sweep_on;

uint32_t client_limits_clock(void)
{
    return (uint32_t)(uv_now(tp.loop) / 100);
}

/* Logged in, not inside a transaction, nothing running or pending. */
static bool is_idle(const tp_client *c)
{
    if (!c->logged_in || c->discard_until_sync || tp_buf_size(&c->in) > 0) return false;
    if (c->state == CLIENT_READY) return true; /* transaction mode, between transactions */
    if (c->state != CLIENT_ACTIVE || !c->backend) return false;
    return backend_is_clean(c->backend) && c->pass_remaining == 0 && !c->unsynced;
}

static void check_client(tp_client *c, const config *cfg, double now, uint32_t clock)
{
    if (c->state == CLIENT_STARTUP || c->state == CLIENT_AUTH) {
        if (cfg->client_login_timeout > 0 && now - c->connected_at >= cfg->client_login_timeout) {
            log_info("client %llu (%s): client_login_timeout (%g s) reached %s; closing",
                     (unsigned long long)c->id, c->peer, cfg->client_login_timeout,
                     c->state == CLIENT_STARTUP ? "before a complete startup packet"
                                                : "during authentication");
            client_fatal(c, "08P01",
                         "client_login_timeout: startup and authentication not completed in time");
        }
        return;
    }
    if (cfg->client_idle_timeout > 0 && is_idle(c) &&
        (double)(uint32_t)(clock - c->idle_since) / 10.0 >= cfg->client_idle_timeout) {
        log_info("client %llu (%s): user \"%s\", pool \"%s\": idle for client_idle_timeout (%g s); closing",
                 (unsigned long long)c->id, c->peer, c->user, c->database, cfg->client_idle_timeout);
        client_fatal(c, "57P05", "terminating connection due to idle-session timeout");
    }
}

/* The sweep runs often enough for the shortest timeout to be kept within a
 * tenth of it (at most every 100 ms, at least every second). */
static uint64_t sweep_interval(const config *cfg)
{
    double shortest = 0;
    if (cfg->client_login_timeout > 0) shortest = cfg->client_login_timeout;
    if (cfg->client_idle_timeout > 0 && (shortest == 0 || cfg->client_idle_timeout < shortest))
        shortest = cfg->client_idle_timeout;
    double ms = shortest * 100.0; /* a tenth, in ms */
    if (shortest == 0 || ms > SWEEP_MAX_MS) return SWEEP_MAX_MS;
    return ms < SWEEP_MIN_MS ? SWEEP_MIN_MS : (uint64_t)ms;
}

static void on_sweep(uv_timer_t *t)
{
    const config *cfg = tp.cfg;
    if (cfg->client_login_timeout > 0 || cfg->client_idle_timeout > 0) {
        double now = tp_now();
        uint32_t clock = client_limits_clock();
        for (tp_client *c = tp.clients, *next; c; c = next) {
            next = c->next; /* c may close (and leave the list) */
            check_client(c, cfg, now, clock);
        }
    }
    uv_timer_start(t, on_sweep, sweep_interval(cfg), 0);
}

void client_limits_start(void)
{
    if (sweep_on) return;
    uv_timer_init(tp.loop, &sweep_timer);
    uv_unref((uv_handle_t *)&sweep_timer); /* never keeps the loop alive */
    uv_timer_start(&sweep_timer, on_sweep, sweep_interval(tp.cfg), 0);
    sweep_on = true;
}

void client_limits_stop(void)
{
    if (!sweep_on) return;
    uv_timer_stop(&sweep_timer);
    uv_close((uv_handle_t *)&sweep_timer, NULL);
    sweep_on = false;
}
