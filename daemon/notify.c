/* notify.c: owns every sd_notify() call. READY=1 once the listeners accept,
 * RELOADING=1 (with MONOTONIC_USEC, as systemd's reload protocol asks) and
 * READY=1 again around a reload, STOPPING=1 at shutdown, and a STATUS= line
 * ("12 clients, 2 pools, 3 backends") refreshed every few seconds by an
 * unreferenced uv timer, so it never keeps the loop alive. When the service
 * has WatchdogSec=, the same timer sends WATCHDOG=1 often enough.
 * Built without libsystemd (no TIDEPOOL_HAVE_SYSTEMD), the calls do nothing. */
#include "daemon/notify.h"

#ifdef TIDEPOOL_HAVE_SYSTEMD

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

#define NOTIFY_STATUS_MS 5000

static uv_timer_t status_timer;
static bool timer_on; /* status_timer is initialised and not closed */
static bool watchdog; /* WatchdogSec= is set for us: ping on each tick */
static bool stopped;  /* STOPPING=1 sent: nothing more but that */

static void status_line(char *out, size_t size)
{
    size_t n_pools = pools_count();
    int n_backends = 0;
    for (size_t i = 0; i < n_pools; i++)
        n_backends += pools_at(i)->n_backends;
    snprintf(out, size, "%zu client%s, %zu pool%s, %d backend%s", tp.n_clients, tp.n_clients == 1 ? "" : "s",
             n_pools, n_pools == 1 ? "" : "s", n_backends, n_backends == 1 ? "" : "s");
}

static void send_state(const char *state)
{
    char status[128];
    status_line(status, sizeof status);
    int rc = sd_notifyf(0, "%sSTATUS=%s", state, status);
    if (rc < 0) log_debug("sd_notify: %s", strerror(-rc));
}

static void on_status_tick(uv_timer_t *t)
{
    if (stopped) return;
    send_state(watchdog ? "WATCHDOG=1\n" : "");
}

static void start_timer(void)
{
    if (timer_on || stopped || !getenv("NOTIFY_SOCKET")) return;
    uint64_t interval = NOTIFY_STATUS_MS;
    uint64_t wd_usec = 0;
    if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
        watchdog = true;
        uint64_t half_ms = wd_usec / 2000;
        if (half_ms < 1) half_ms = 1;
        if (half_ms < interval) interval = half_ms;
    }
    uv_timer_init(tp.loop, &status_timer);
    uv_timer_start(&status_timer, on_status_tick, interval, interval);
    uv_unref((uv_handle_t *)&status_timer);
    timer_on = true;
}

void notify_ready(void)
{
    if (stopped) return;
    send_state("READY=1\n");
    start_timer();
}

void notify_reloading(void)
{
    if (stopped) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    int rc =
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading the configuration", usec);
    if (rc < 0) log_debug("sd_notify: %s", strerror(-rc));
}

void notify_stopping(void)
{
    if (stopped) return;
    stopped = true;
    int rc = sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing running transactions");
    if (rc < 0) log_debug("sd_notify: %s", strerror(-rc));
    if (timer_on) {
        uv_timer_stop(&status_timer);
        uv_close((uv_handle_t *)&status_timer, NULL);
        timer_on = false;
    }
}

#else /* !TIDEPOOL_HAVE_SYSTEMD */

void notify_ready(void) {}
void notify_reloading(void) {}
void notify_stopping(void) {}

#endif
