/* config_internal.h: what the files of config/ share and nobody else uses.
 *
 * Loading goes in three steps, each in its own file:
 *   config_lex.c     the file's text -> sections of raw `key = value` entries
 *                    (inih splits the lines; we count them and see headers);
 *   config_keys.c    the table of every key: scope, type, range, default; and
 *                    one function that turns a value's text into a field;
 *   config_load.c    the sections -> a `config`: defaults, then [tidepool],
 *                    then each pool's own keys.
 * config_values.c holds the plain value parsers, config_url.c the url rules,
 * config_errors.c the list of "FILE:LINE: key: what" messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

#define CONFIG_WUR __attribute__((warn_unused_result))
#define CONFIG_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- messages (config_errors.c) ---------------------------------------- */

/* A malloc'd formatted string, or NULL when out of memory. */
char *config_fmt(const char *fmt, ...) CONFIG_PRINTF(1, 2);

typedef struct config_err {
    int line;   /* 0 = about the whole file */
    size_t seq; /* order of discovery, to keep a stable order per line */
    char *msg;  /* the full "FILE:LINE: key: what" */
} config_err;

/* Problems found so far; sorted into file order at the end. */
typedef struct config_errlist {
    const char *file; /* FILE of every message */
    config_err *v;
    size_t n, cap;
    bool oom; /* an allocation failed somewhere: the load fails */
} config_errlist;

/* Adds "FILE:LINE: KEY: what" ("FILE: what" when line is 0, "FILE:LINE:
 * what" when key is NULL). */
void config_errlist_add(config_errlist *el, int line, const char *key, const char *fmt, ...)
    CONFIG_PRINTF(4, 5);
/* Same, taking ownership of a malloc'd `what`; NULL means out of memory. */
void config_errlist_add_owned(config_errlist *el, int line, const char *key, char *what);
/* Sorts into file order, moves the messages to `errs` (may be NULL: then they
 * are dropped), returns how many there were. Empties `el`. */
size_t config_errlist_finish(config_errlist *el, config_errors *errs);

/* ---- value parsers (config_values.c) ----------------------------------- */
/* Each returns 0 and stores the value, or -1 when `text` is not valid. They
 * never allocate except where said. */

typedef struct config_word {
    const char *word; /* matched case-insensitively */
    int value;
} config_word;

int config_parse_int(const char *text, long min, long max, long *out) CONFIG_WUR;
/* Like config_parse_int but says whether a well-formed number was too large
 * or small, to write a better message. */
bool config_int_out_of_range(const char *text);
int config_parse_octal_mode(const char *text, int *out) CONFIG_WUR;
/* A decimal number of seconds, >= 0 and at most CONFIG_MAX_SECONDS; -1 too
 * when `allow_never`. *too_large is set when only the cap was exceeded. */
#define CONFIG_MAX_SECONDS 1e9
int config_parse_seconds(const char *text, bool allow_never, double *out, bool *too_large) CONFIG_WUR;
int config_parse_bool(const char *text, bool *out) CONFIG_WUR;
int config_parse_word(const char *text, const config_word *words, int *out) CONFIG_WUR;
/* Isolation level in any case, with spaces or underscores. Sets *autocommit
 * when the text is AUTOCOMMIT (which is refused). */
int config_parse_isolation(const char *text, config_isolation *out, bool *autocommit) CONFIG_WUR;
/* client_tls_protocols: a list of tlsv1.0 .. tlsv1.3, secure, all, legacy
 * (commas or blanks between) into CONFIG_TLS_V1_* bits; empty is refused. */
int config_parse_tls_protocols(const char *text, unsigned *out) CONFIG_WUR;
/* "HOST:PORT", HOST possibly "[v6]". */
int config_check_hostport(const char *text) CONFIG_WUR;

/* Splits a comma-separated list, trimming blanks around items. An empty or
 * blank text gives 0 items. Returns 0, -1 when an item is empty or (when
 * `no_inner_space`) holds a blank, -2 when out of memory. */
int config_split_list(const char *text, bool no_inner_space, char ***items, size_t *n) CONFIG_WUR;
void config_free_list(char **items, size_t n);

/* ---- url (config_url.c) ------------------------------------------------- */

/* The hook set by config_set_conninfo_check: returns its message (NULL when
 * fine or when no hook is set). */
const char *config_run_conninfo_check(const char *conninfo);
/* The scheme part of a url ("mysql" of "mysql://…"), malloc'd, or NULL when
 * the url has none or out of memory. */
char *config_url_scheme(const char *url);

/* ---- the key table (config_keys.c) ------------------------------------- */

typedef enum {
    CONFIG_SCOPE_DAEMON,    /* [tidepool] only */
    CONFIG_SCOPE_POOL,      /* [pool.NAME], or [tidepool] as a default */
    CONFIG_SCOPE_POOL_ONLY, /* [pool.NAME] only: it names one pool */
} config_scope;

typedef struct config_key config_key;

/* The key named `name` (exact, lower case), or NULL. */
const config_key *config_key_find(const char *name);
/* A known key close to `name` (a typo or wrong case), or NULL. */
const char *config_key_suggest(const char *name);
config_scope config_key_scope(const config_key *k);

/* Parses `text` into the field of `base` (a config for daemon keys, a
 * config_pool for pool keys). Returns 0, or -1 with *why a malloc'd message
 * without the "key: " prefix (NULL when out of memory). The field keeps its
 * old value on failure. */
int config_key_apply(const config_key *k, const char *text, void *base, char **why) CONFIG_WUR;

/* Set every daemon field of `cfg` / pool field of `pool` to its default.
 * Return -1 only when out of memory. */
int config_defaults_daemon(config *cfg) CONFIG_WUR;
int config_defaults_pool(config_pool *pool) CONFIG_WUR;

/* ---- the raw document (config_lex.c) ----------------------------------- */

typedef struct config_entry {
    char *key;
    char *value;
    int line;
} config_entry;

typedef enum {
    CONFIG_SECTION_NONE,    /* before any header: keys here are errors */
    CONFIG_SECTION_DAEMON,  /* [tidepool] */
    CONFIG_SECTION_POOL,    /* [pool.NAME] */
    CONFIG_SECTION_UNKNOWN, /* reported once; its keys are ignored */
} config_section_kind;

typedef struct config_section {
    config_section_kind kind;
    char *header;  /* "[pool.x]" as written (trimmed), for messages */
    char *name;    /* NAME of a pool section, else NULL */
    int line;      /* of the header */
    bool rejected; /* duplicate, reserved or empty name: already reported */
    config_entry *entries;
    size_t n, cap;
} config_section;

typedef struct config_doc {
    config_section *v; /* v[0] is the NONE section */
    size_t n, cap;
} config_doc;

/* Splits `text` (len bytes, need not end with NUL or newline) into sections
 * of entries. Syntax problems, unknown or duplicate sections and duplicate keys
 * go to `el`. Returns -1 only when out of memory. */
int config_lex(const char *text, size_t len, config_doc *doc, config_errlist *el) CONFIG_WUR;
void config_doc_free(config_doc *doc);
