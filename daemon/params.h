/* params.h: a small set of session parameters (name -> value), compared by
 * name case-insensitively as PostgreSQL does. Used for what a backend reports
 * (ParameterStatus) and for what a client asked for in its startup packet. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct tp_param {
    char *name;
    char *value;
} tp_param;

typedef struct tp_params {
    tp_param *items;
    size_t count;
    size_t cap;
} tp_params;

const char *params_get(const tp_params *p, const char *name);
int params_set(tp_params *p, const char *name, const char *value) __attribute__((warn_unused_result));
void params_remove(tp_params *p, const char *name);
void params_clear(tp_params *p);
int params_copy(tp_params *dst, const tp_params *src) __attribute__((warn_unused_result));

/* Parameters PostgreSQL 15 reports with ParameterStatus (GUC_REPORT),
 * NULL-terminated; and whether `name` is one of them. */
extern const char *const params_reported[];
bool params_is_reported(const char *name);
