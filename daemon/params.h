/* params.h: a small set of session parameters (name -> value), compared by
 * name case-insensitively as PostgreSQL does. Used for what a backend reports
 * (ParameterStatus) and for what a client asked for in its startup packet. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* tp_param.kind: what PostgreSQL does with the parameter. */
#define PARAM_REPORTED 1u /* reported with ParameterStatus */
#define PARAM_SETTABLE 2u /* reported, and a client may set it */

typedef struct tp_param {
    char *name;
    char *value;
    uint32_t hash; /* of the name, case-folded: compared before the names */
    uint8_t kind;  /* PARAM_* */
} tp_param;

typedef struct tp_params {
    tp_param *items;
    size_t count;
    size_t cap;
    uint64_t tag; /* content tag: a new one with every change (0: empty); two
                     sets with the same tag hold the same parameters */
} tp_params;

const char *params_get(const tp_params *p, const char *name);
/* The value in p of the parameter `like` names (an item of another set). */
const char *params_get_like(const tp_params *p, const tp_param *like);
/* Set name = value (nothing changes when it has that value already). */
int params_set(tp_params *p, const char *name, const char *value) __attribute__((warn_unused_result));
void params_remove(tp_params *p, const char *name);
void params_clear(tp_params *p);
/* Add src's parameters to dst (an empty dst takes src's tag). */
int params_copy(tp_params *dst, const tp_params *src) __attribute__((warn_unused_result));
/* Same names (case-insensitive) with the same values. */
bool params_equal(const tp_params *a, const tp_params *b);

/* Parameters PostgreSQL 15 reports with ParameterStatus (GUC_REPORT),
 * NULL-terminated; and whether `name` is one of them. */
extern const char *const params_reported[];
bool params_is_reported(const char *name);
/* Reported parameters a client may set; the others describe the server or
 * follow from the pool's configuration. */
bool params_is_settable(const char *name);
