/* reload.c: SIGHUP and RELOAD. The file is loaded into a fresh struct and
 * checked as a whole, auth_file included, before anything changes; an
 * invalid file changes nothing. A valid one is compared with the
 * configuration in force (config_diff_make): the listeners' keys cannot move
 * under running sockets, so they keep their old values until a restart; the
 * other [tidepool] keys are read where they are used and apply at once; the
 * pools change as pools_apply() says. */
#include "daemon/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/client_tls.h"
#include "daemon/log.h"
#include "daemon/notify.h"
#include "daemon/pools.h"
#include "daemon/secrets.h"
#include "daemon/server.h"

static void add_error(config_errors *errs, const char *msg)
{
    char *copy = strdup(msg);
    char **items = copy ? realloc(errs->items, (errs->count + 1) * sizeof *items) : NULL;
    if (!items) {
        free(copy);
        return;
    }
    errs->items = items;
    errs->items[errs->count++] = copy;
}

/* The keys of the listeners (and metrics endpoint) keep the values in force:
 * take them from `old` into `fresh`, warning about each one that changed. */
static void keep_restart_keys(config *fresh, config *old, const config_diff *d)
{
    for (size_t i = 0; i < config_key_count(); i++) {
        config_key_info info;
        config_key_info_at(i, &info);
        if (info.pool || info.reload != CONFIG_RELOAD_RESTART || !((d->daemon_keys >> i) & 1)) continue;
        char *was = config_key_format(i, old, true);
        char *now = config_key_format(i, fresh, true);
        log_warn("reload: %s: '%s' needs a restart to take effect; '%s' stays in force", info.name,
                 now ? now : "?", was ? was : "?");
        free(was);
        free(now);
    }
#define SWAP(field)                                                                                          \
    do {                                                                                                     \
        __typeof__(fresh->field) tmp_ = fresh->field;                                                        \
        fresh->field = old->field;                                                                           \
        old->field = tmp_;                                                                                   \
    } while (0)
    SWAP(listen_addrs);
    SWAP(n_listen_addrs);
    SWAP(listen_port);
    SWAP(unix_socket_dir);
    SWAP(unix_socket_mode);
    SWAP(metrics_listen);
#undef SWAP
}

static void log_daemon_changes(const config *old, const config *fresh, const config_diff *d)
{
    for (size_t i = 0; i < config_key_count(); i++) {
        config_key_info info;
        config_key_info_at(i, &info);
        if (info.pool || info.reload == CONFIG_RELOAD_RESTART || !((d->daemon_keys >> i) & 1)) continue;
        char *was = config_key_format(i, old, true);
        char *now = config_key_format(i, fresh, true);
        log_info("reload: %s: '%s' -> '%s'", info.name, was ? was : "?", now ? now : "?");
        free(was);
        free(now);
    }
}

static int refuse(const char *path, config_errors *errs, config_errors *out)
{
    log_error("reload of %s refused: %zu error(s); the configuration in force is unchanged", path,
              errs->count);
    for (size_t i = 0; i < errs->count; i++) {
        log_error("%s", errs->items[i]);
        if (out) add_error(out, errs->items[i]);
    }
    config_errors_clear(errs);
    return -1;
}

static int reload_config(config_errors *out)
{
    const char *path = tp.cfg->path;
    log_info("reloading %s", path);
    config *fresh = NULL;
    config_errors errs = {0};
    if (config_load_file(path, &fresh, &errs) < 0) {
        if (errs.count == 0) add_error(&errs, "invalid configuration");
        return refuse(path, &errs, out);
    }
    auth_file users = {0};
    char *why = NULL;
    if (secrets_load_users(fresh, &users, &why) < 0) {
        add_error(&errs, why ? why : "auth_file: out of memory");
        free(why);
        config_free(fresh);
        return refuse(path, &errs, out);
    }
    config_diff d;
    if (config_diff_make(tp.cfg, fresh, &d) < 0) {
        auth_file_free(&users);
        config_free(fresh);
        add_error(&errs, "out of memory");
        return refuse(path, &errs, out);
    }

    config *old = tp.cfg;
    log_daemon_changes(old, fresh, &d);
    keep_restart_keys(fresh, old, &d);
    pools_apply(&d);
    size_t added = 0, removed = 0, changed = 0;
    for (size_t i = 0; i < d.n_pools; i++) {
        added += d.pools[i].change == CONFIG_POOL_ADDED;
        removed += d.pools[i].change == CONFIG_POOL_REMOVED;
        changed += d.pools[i].change == CONFIG_POOL_CHANGED;
    }
    config_diff_free(&d);

    auth_file_free(&tp.users);
    tp.users = users;
    tp.have_users = fresh->auth_file != NULL;
    secrets_log_warnings(fresh, &tp.users);
    log_set_level(fresh->log_level);
    tp.cfg = fresh;
    config_free(old);
    /* Certificates are read again (rotation); unusable ones are logged and
     * the TLS context in force stays. */
    char tls_err[512];
    if (client_tls_configure(fresh, tls_err, sizeof tls_err) < 0)
        log_error("reload: client TLS not reloaded: %s", tls_err);
    log_info("reloaded %s: %zu pool(s) added, %zu removed, %zu changed", fresh->path, added, removed,
             changed);
    return 0;
}

int server_reload(config_errors *out)
{
    notify_reloading();
    int rc = reload_config(out);
    notify_ready();
    return rc;
}
