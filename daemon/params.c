/* params.c: session parameter sets (name -> value), case-insensitive names. */
#include "daemon/params.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint64_t last_tag;

/* FNV-1a of the ASCII-lower-cased name (PostgreSQL folds names the same). */
static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        unsigned char ch = *s >= 'A' && *s <= 'Z' ? (unsigned char)(*s | 0x20) : *s;
        h = (h ^ ch) * 16777619u;
    }
    return h;
}

static tp_param *find_hashed(const tp_params *p, const char *name, uint32_t h)
{
    for (size_t i = 0; i < p->count; i++)
        if (p->items[i].hash == h && strcasecmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}

static tp_param *find(const tp_params *p, const char *name)
{
    return find_hashed(p, name, name_hash(name));
}

const char *params_get(const tp_params *p, const char *name)
{
    tp_param *it = find(p, name);
    return it ? it->value : NULL;
}

const char *params_get_like(const tp_params *p, const tp_param *like)
{
    tp_param *it = find_hashed(p, like->name, like->hash);
    return it ? it->value : NULL;
}

int params_set(tp_params *p, const char *name, const char *value)
{
    uint32_t h = name_hash(name);
    tp_param *it = find_hashed(p, name, h);
    if (it && strcmp(it->value, value) == 0) return 0;
    char *v = strdup(value);
    if (!v) return -1;
    p->tag = ++last_tag;
    if (it) {
        free(it->value);
        it->value = v;
        return 0;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1; /* most clients set one or two */
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
    unsigned kind = params_is_settable(k)   ? PARAM_REPORTED | PARAM_SETTABLE
                    : params_is_reported(k) ? PARAM_REPORTED
                                            : 0;
    p->items[p->count] = (tp_param){.name = k, .value = v, .hash = h, .kind = (uint8_t)kind};
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
    p->tag = ++last_tag;
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
    p->tag = 0;
}

int params_copy(tp_params *dst, const tp_params *src)
{
    bool was_empty = dst->count == 0;
    for (size_t i = 0; i < src->count; i++)
        if (params_set(dst, src->items[i].name, src->items[i].value) < 0) return -1;
    if (was_empty) dst->tag = src->tag;
    return 0;
}

bool params_equal(const tp_params *a, const tp_params *b)
{
    if (a->tag == b->tag) return true;
    if (a->count != b->count) return false;
    for (size_t i = 0; i < a->count; i++) {
        const char *v = params_get_like(b, &a->items[i]);
        if (!v || strcmp(v, a->items[i].value) != 0) return false;
    }
    return true;
}

const char *const params_reported[] = {
    "application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
    "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
    "server_encoding", "server_version", "session_authorization",
    "standard_conforming_strings", "TimeZone", NULL};

static bool in_list(const char *const *names, const char *name)
{
    for (int i = 0; names[i]; i++)
        if (strcasecmp(names[i], name) == 0) return true;
    return false;
}

bool params_is_reported(const char *name)
{
    return in_list(params_reported, name);
}

bool params_is_settable(const char *name)
{
    static const char *const names[] = {"application_name",
                                        "client_encoding",
                                        "DateStyle",
                                        "IntervalStyle",
                                        "TimeZone",
                                        "standard_conforming_strings",
                                        NULL};
    return in_list(names, name);
}
