/* stats_text.c: a growing text buffer for rendering figures (the metrics
 * page is built whole, then written), with a sticky failure flag. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

void stats_text_init(stats_text *t)
{
    memset(t, 0, sizeof *t);
}

void stats_text_free(stats_text *t)
{
    free(t->data);
    stats_text_init(t);
}

/* Room for `more` bytes plus a NUL. */
static bool reserve(stats_text *t, size_t more)
{
    if (t->failed) return false;
    if (t->len + more + 1 <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            t->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *d = realloc(t->data, cap);
    if (!d) {
        t->failed = true;
        return false;
    }
    t->data = d;
    t->cap = cap;
    return true;
}

void stats_text_printf(stats_text *t, const char *fmt, ...)
{
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    va_list again;
    va_copy(again, ap);
    size_t room = t->cap > t->len ? t->cap - t->len : 0;
    int n = vsnprintf(room ? t->data + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
    } else if ((size_t)n < room) {
        t->len += (size_t)n;
    } else if (reserve(t, (size_t)n)) {
        vsnprintf(t->data + t->len, t->cap - t->len, fmt, again);
        t->len += (size_t)n;
    }
    va_end(again);
}

void stats_text_append(stats_text *t, const void *data, size_t len)
{
    if (len == 0 || !reserve(t, len)) return;
    memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
}

void stats_text_label_value(stats_text *t, const char *s)
{
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '"')
            esc = "\\\"";
        else if (*s == '\n')
            esc = "\\n";
        if (esc)
            stats_text_append(t, esc, 2);
        else
            stats_text_append(t, s, 1);
    }
}
