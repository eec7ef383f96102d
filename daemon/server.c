/* server.c: process lifecycle. Starts the loop with the listeners, the pools
 * and the signal handlers; SIGTERM stops accepting, closes the clients
 * between transactions (those holding a backend too) and lets running
 * transactions finish (up to shutdown_timeout); SIGINT closes everything at
 * once; SIGHUP reloads the configuration (reload.c). */
#include "daemon/server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/client_limits.h"
#include "daemon/client_tls.h"
#include "daemon/flush.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/pools.h"
#include "daemon/reload.h"
#include "daemon/secrets.h"

tp_server tp;

static uv_signal_t sig_int, sig_term, sig_hup;
static uv_timer_t shutdown_timer;
static bool shutdown_timer_on;

static int load_users(const config *cfg, auth_file *out)
{
    char *msg = NULL;
    if (secrets_load_users(cfg, out, &msg) < 0) {
        log_error("%s", msg ? msg : "auth_file: out of memory");
        free(msg);
        return -1;
    }
    return 0;
}

static void close_all_clients(void)
{
    for (tp_client *c = tp.clients, *next; c; c = next) {
        next = c->next;
        client_fatal(c, "57P01", "terminating connection due to administrator command");
    }
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void server_maybe_finish(void)
{
    static bool finished;
    if (!tp.stopping || finished) return;
    if (tp.n_clients > 0) return;
    finished = true;
    if (shutdown_timer_on) {
        uv_timer_stop(&shutdown_timer);
        uv_close((uv_handle_t *)&shutdown_timer, NULL);
        shutdown_timer_on = false;
    }
    pools_close_all();
    flush_close();
    client_limits_stop();
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_hup);
    if (!uv_is_closing((uv_handle_t *)&sig_int)) {
        uv_close((uv_handle_t *)&sig_int, NULL);
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_hup, NULL);
    }
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    log_info("shutdown_timeout reached: closing the remaining clients");
    /* Their transactions are cut short by tidepool, not abandoned by the
     * client: closed with their backend, they are rolled back (PostgreSQL's
     * fast shutdown does the same), whatever pool_reset_on_return says. */
    for (tp_client *c = tp.clients; c; c = c->next) {
        tp_backend *b = c->backend;
        if (!b || client_is_idle_on_backend(c)) continue;
        c->backend = NULL;
        b->client = NULL;
        backend_close(b, "shutdown_timeout");
    }
    close_all_clients();
}

void server_stop(bool graceful)
{
    if (!tp.stopping) {
        tp.stopping = true;
        notify_stopping();
        listeners_close();
        metrics_close();
    }
    if (!graceful) {
        close_all_clients();
    } else {
        /* Clients not inside a transaction leave now — those that hold
         * their backend between transactions (session mode, pinned) too;
         * the others when their transaction ends (client_on_ready). */
        for (tp_client *c = tp.clients, *next; c; c = next) {
            next = c->next;
            if ((c->state != CLIENT_ACTIVE && c->state != CLIENT_RELEASING) || client_is_idle_on_backend(c))
                client_fatal(c, "57P01", "terminating connection due to administrator command");
        }
        if (!shutdown_timer_on && tp.n_clients > 0) {
            uv_timer_init(tp.loop, &shutdown_timer);
            uv_timer_start(&shutdown_timer, on_shutdown_timeout,
                           (uint64_t)(tp.cfg->shutdown_timeout * 1000), 0);
            shutdown_timer_on = true;
        }
    }
    server_maybe_finish();
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (signum == SIGINT) {
        log_info("received SIGINT: shutting down now");
        server_stop(false);
    } else if (signum == SIGTERM) {
        log_info("received SIGTERM: shutting down after running transactions");
        server_stop(true);
    } else if (signum == SIGHUP) {
        log_info("received SIGHUP");
        if (server_reload(NULL) < 0) log_debug("SIGHUP: reload refused");
    }
}

static int run(config *cfg)
{
    memset(&tp, 0, sizeof tp);
    tp.loop = uv_default_loop();
    tp.cfg = cfg;
    log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);

    if (load_users(cfg, &tp.users) < 0) return 1;
    char tls_err[512];
    if (client_tls_configure(cfg, tls_err, sizeof tls_err) < 0) {
        log_error("%s", tls_err);
        auth_file_free(&tp.users);
        return 1;
    }
    tp.have_users = cfg->auth_file != NULL;
    secrets_log_warnings(cfg, &tp.users);
    if (pools_create(cfg) < 0) return 1;
    flush_init();
    if (listeners_open(cfg) < 0 || metrics_open(cfg) < 0) {
        listeners_close();
        metrics_close();
        pools_close_all();
        uv_run(tp.loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_init(tp.loop, &sig_int);
    uv_signal_init(tp.loop, &sig_term);
    uv_signal_init(tp.loop, &sig_hup);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    client_limits_start();
    log_info("tidepool ready: %zu pool(s)", cfg->n_pools);
    notify_ready();

    uv_run(tp.loop, UV_RUN_DEFAULT);

    /* Anything left (should be nothing): close it and let callbacks run. */
    uv_walk(tp.loop, on_walk_close, NULL);
    uv_run(tp.loop, UV_RUN_DEFAULT);
    uv_loop_close(tp.loop);
    pools_free();
    auth_file_free(&tp.users);
    client_tls_cleanup();
    log_info("tidepool stopped");
    return tp.exit_code;
}

int server_run(config *cfg)
{
    int rc = run(cfg);
    config_free(tp.cfg); /* the one in force: a reload may have replaced cfg */
    tp.cfg = NULL;
    return rc;
}
