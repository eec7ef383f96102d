/* config_diff.c: what a reload changes, from the configuration in force to a
 * new one, without applying anything.
 *
 * Pools are matched by name: a name only in the new file is added, one only
 * in the old file is removed, one in both is changed when any of its keys has
 * another value. Values are compared as a file would spell them (the same
 * text SHOW CONFIG prints, passwords included), so every key is compared the
 * same way and a new key needs nothing here. The daemon decides what to do
 * with each change; config_key_info_at() says which keys apply live. */
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* Does key i differ between a and b? -1 when out of memory. */
static int key_differs(size_t i, const void *a, const void *b)
{
    char *x = config_key_format(i, a, false);
    char *y = config_key_format(i, b, false);
    int rc = !x || !y ? -1 : strcmp(x, y) != 0;
    free(x);
    free(y);
    return rc;
}

/* Keys of one scope that differ, as a bit mask; sets *effects_seen bit e
 * for each reload effect e among them. -1 when out of memory. */
static int compare(bool pool_keys, const void *a, const void *b, unsigned long long *mask,
                   unsigned *effects_seen)
{
    *mask = 0;
    *effects_seen = 0;
    for (size_t i = 0; i < config_key_count(); i++) {
        config_key_info info;
        config_key_info_at(i, &info);
        if (info.pool != pool_keys) continue;
        int d = key_differs(i, a, b);
        if (d < 0) return -1;
        if (d) {
            *mask |= 1ull << i;
            *effects_seen |= 1u << info.reload;
        }
    }
    return 0;
}

static config_pool_diff *push(config_diff *d)
{
    config_pool_diff *v = realloc(d->pools, (d->n_pools + 1) * sizeof *v);
    if (!v) return NULL;
    d->pools = v;
    config_pool_diff *e = &v[d->n_pools++];
    memset(e, 0, sizeof *e);
    return e;
}

int config_diff_make(const config *old, const config *new_cfg, config_diff *out)
{
    memset(out, 0, sizeof *out);
    unsigned effects;
    if (compare(false, old, new_cfg, &out->daemon_keys, &effects) < 0) goto oom;
    out->needs_restart = (effects & (1u << CONFIG_RELOAD_RESTART)) != 0;

    for (size_t i = 0; i < old->n_pools; i++) {
        const config_pool *o = &old->pools[i];
        const config_pool *n = config_find_pool(new_cfg, o->name);
        unsigned long long keys = 0;
        if (n && compare(true, o, n, &keys, &effects) < 0) goto oom;
        if (n && !keys) continue;
        config_pool_diff *e = push(out);
        if (!e) goto oom;
        e->old_pool = o;
        e->new_pool = n;
        e->change = n ? CONFIG_POOL_CHANGED : CONFIG_POOL_REMOVED;
        e->keys = keys;
        e->new_backends = n && (effects & (1u << CONFIG_RELOAD_NEW_BACKENDS)) != 0;
    }
    for (size_t i = 0; i < new_cfg->n_pools; i++) {
        const config_pool *n = &new_cfg->pools[i];
        if (config_find_pool(old, n->name)) continue;
        config_pool_diff *e = push(out);
        if (!e) goto oom;
        e->new_pool = n;
        e->change = CONFIG_POOL_ADDED;
    }
    return 0;

oom:
    config_diff_free(out);
    return -1;
}

void config_diff_free(config_diff *d)
{
    free(d->pools);
    memset(d, 0, sizeof *d);
}
