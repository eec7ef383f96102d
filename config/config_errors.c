/* config_errors.c: the problems found while loading a file.
 *
 * Every check appends "FILE:LINE: key: what is wrong" to one list as soon as it
 * finds a problem, and loading goes on, so a user sees all of them at once.
 * The checks run in two passes (reading, then resolving), so the list is
 * sorted by line at the end: the user reads it in file order. An allocation
 * failure only sets a flag: the load then fails as a whole. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static char *vfmt(const char *fmt, va_list ap) CONFIG_PRINTF(1, 0);

static char *vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *config_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    return s;
}

static void push(config_errlist *el, int line, char *msg)
{
    if (!msg) {
        el->oom = true;
        return;
    }
    if (el->n == el->cap) {
        size_t cap = el->cap ? el->cap * 2 : 8;
        config_err *v = realloc(el->v, cap * sizeof *v);
        if (!v) {
            free(msg);
            el->oom = true;
            return;
        }
        el->v = v;
        el->cap = cap;
    }
    el->v[el->n] = (config_err){.line = line, .seq = el->n, .msg = msg};
    el->n++;
}

void config_errlist_add_owned(config_errlist *el, int line, const char *key, char *what)
{
    if (!what) {
        el->oom = true;
        return;
    }
    char *msg;
    if (line <= 0)
        msg = config_fmt("%s: %s", el->file, what);
    else if (!key)
        msg = config_fmt("%s:%d: %s", el->file, line, what);
    else
        msg = config_fmt("%s:%d: %s: %s", el->file, line, key, what);
    free(what);
    push(el, line, msg);
}

void config_errlist_add(config_errlist *el, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = vfmt(fmt, ap);
    va_end(ap);
    config_errlist_add_owned(el, line, key, what);
}

static int by_line(const void *a, const void *b)
{
    const config_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t config_errlist_finish(config_errlist *el, config_errors *errs)
{
    size_t count = el->n;
    if (el->n)
        qsort(el->v, el->n, sizeof *el->v, by_line);
    size_t i = 0;
    if (errs && el->n) {
        char **items = realloc(errs->items, (errs->count + el->n) * sizeof *items);
        if (items) {
            errs->items = items;
            for (; i < el->n; i++)
                items[errs->count++] = el->v[i].msg;
        }
    }
    for (; i < el->n; i++)
        free(el->v[i].msg);
    free(el->v);
    el->v = NULL;
    el->n = el->cap = 0;
    return count;
}

void config_errors_clear(config_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->count; i++)
        free(errs->items[i]);
    free(errs->items);
    errs->items = NULL;
    errs->count = 0;
}
