/* params.c: session parameter sets (name -> value), case-insensitive names. */
#include "daemon/params.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static tp_param *find(const tp_params *p, const char *name)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcasecmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}

const char *params_get(const tp_params *p, const char *name)
{
    tp_param *it = find(p, name);
    return it ? it->value : NULL;
}

int params_set(tp_params *p, const char *name, const char *value)
{
    tp_param *it = find(p, name);
    char *v = strdup(value);
    if (!v) return -1;
    if (it) {
        free(it->value);
        it->value = v;
        return 0;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        tp_param *n = realloc(p->items, cap * sizeof *n);
        if (!n) {
            free(v);
            return -1;
        }
        p->items = n;
        p->cap = cap;
    }
    char *k = strdup(name);
    if (!k) {
        free(v);
        return -1;
    }
    p->items[p->count].name = k;
    p->items[p->count].value = v;
    p->count++;
    return 0;
}

void params_remove(tp_params *p, const char *name)
{
    tp_param *it = find(p, name);
    if (!it) return;
    free(it->name);
    free(it->value);
    *it = p->items[--p->count];
}

void params_clear(tp_params *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->items[i].name);
        free(p->items[i].value);
    }
    free(p->items);
    p->items = NULL;
    p->count = p->cap = 0;
}

int params_copy(tp_params *dst, const tp_params *src)
{
    for (size_t i = 0; i < src->count; i++)
        if (params_set(dst, src->items[i].name, src->items[i].value) < 0) return -1;
    return 0;
}

const char *const params_reported[] = {
    "application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
    "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
    "server_encoding", "server_version", "session_authorization",
    "standard_conforming_strings", "TimeZone", NULL};

bool params_is_reported(const char *name)
{
    for (int i = 0; params_reported[i]; i++)
        if (strcasecmp(params_reported[i], name) == 0) return true;
    return false;
}
