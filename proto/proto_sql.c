/* proto_sql.c: a small SQL scanner that tells which statements of a query
 * string create or drop session state a backend keeps for its session (SET,
 * LISTEN, session advisory locks, temp objects, WITH HOLD cursors, SQL-level
 * PREPARE) — what transaction pooling cannot move to another backend. It
 * skips comments, string literals (including E'' and dollar quotes) and
 * quoted identifiers, splits statements at top-level semicolons, and looks at
 * the leading keywords of each and at the function names it calls. It errs on
 * the side of reporting state: a false report only keeps a client on its
 * backend longer. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

#define MAX_WORDS 6

/* ASCII character classes, inline: <ctype.h>'s cost a call per character,
 * and in the C locale they are ASCII anyway (a byte above 127 is none). */
static inline bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}
static inline bool is_alpha(char c)
{
    return (unsigned char)((c | 0x20) - 'a') < 26;
}
static inline bool is_alnum(char c)
{
    return is_alpha(c) || (unsigned char)(c - '0') < 10;
}
static inline char to_lower(char c)
{
    return (unsigned char)(c - 'A') < 26 ? (char)(c | 0x20) : c;
}

typedef struct scan {
    const char *p;
    const char *end;
} scan;

/* Skip blanks, comments, literals; stop at a word, ';' or other char. */
static void skip_noise(scan *s)
{
    for (;;) {
        while (s->p < s->end && is_space(*s->p))
            s->p++;
        if (s->p + 1 < s->end && s->p[0] == '-' && s->p[1] == '-') {
            while (s->p < s->end && *s->p != '\n') s->p++;
            continue;
        }
        if (s->p + 1 < s->end && s->p[0] == '/' && s->p[1] == '*') {
            int depth = 0;
            while (s->p + 1 < s->end) {
                if (s->p[0] == '/' && s->p[1] == '*') {
                    depth++;
                    s->p += 2;
                } else if (s->p[0] == '*' && s->p[1] == '/') {
                    s->p += 2;
                    if (--depth == 0) break;
                } else {
                    s->p++;
                }
            }
            if (depth > 0) s->p = s->end;
            continue;
        }
        return;
    }
}

/* Skip a literal or quoted identifier starting at s->p; false if none. */
static bool skip_quoted(scan *s)
{
    const char *p = s->p;
    if (p < s->end && (*p == 'E' || *p == 'e') && p + 1 < s->end && p[1] == '\'') p++;
    if (p < s->end && (*p == '\'' || *p == '"')) {
        char q = *p++;
        bool backslash = s->p[0] != q; /* E'' strings use backslash escapes */
        while (p < s->end) {
            if (backslash && *p == '\\' && p + 1 < s->end) {
                p += 2;
                continue;
            }
            if (*p == q) {
                if (p + 1 < s->end && p[1] == q) {
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            p++;
        }
        s->p = p;
        return true;
    }
    if (p < s->end && *p == '$') {
        /* $tag$ ... $tag$ */
        const char *t = p + 1;
        while (t < s->end && (is_alnum(*t) || *t == '_'))
            t++;
        if (t < s->end && *t == '$') {
            size_t tag_len = (size_t)(t - p + 1);
            const char *q = t + 1;
            while (q + tag_len <= s->end && memcmp(q, p, tag_len) != 0) q++;
            s->p = q + tag_len <= s->end ? q + tag_len : s->end;
            return true;
        }
    }
    return false;
}

static bool word_is(const char *w, size_t n, const char *kw)
{
    /* The first letters differ mostly: compared before the call. */
    return strlen(kw) == n && to_lower(w[0]) == kw[0] && strncasecmp(w, kw, n) == 0;
}

typedef struct stmt_words {
    const char *w[MAX_WORDS];
    size_t n[MAX_WORDS];
    int count;
} stmt_words;

static bool lead(const stmt_words *sw, int i, const char *kw)
{
    return i < sw->count && word_is(sw->w[i], sw->n[i], kw);
}

/* Settings PostgreSQL reports with ParameterStatus: a change to them is
 * seen by the pooler and can follow the client to any backend. */
static bool is_reported_setting(const stmt_words *sw, int i)
{
    static const char *const names[] = {"application_name", "client_encoding", "datestyle",
                                        "intervalstyle", "timezone", "standard_conforming_strings",
                                        "names", NULL};
    if (lead(sw, i, "time") && lead(sw, i + 1, "zone")) return true;
    for (int k = 0; names[k]; k++)
        if (lead(sw, i, names[k])) return true;
    return false;
}

static unsigned judge_statement(const stmt_words *sw, unsigned calls)
{
    unsigned f = calls;
    if (lead(sw, 0, "set")) {
        int i = lead(sw, 1, "session") && !lead(sw, 2, "characteristics") ? 2 : 1;
        if (lead(sw, 1, "local") || lead(sw, 1, "transaction") || lead(sw, 1, "constraints")) {
            /* lasts only for the transaction */
        } else if (is_reported_setting(sw, i)) {
            f |= PROTO_SQL_SET_REPORTED;
        } else {
            f |= PROTO_SQL_SET;
        }
    } else if (lead(sw, 0, "reset")) {
        f |= lead(sw, 1, "all") ? PROTO_SQL_RESET_ALL : PROTO_SQL_SET; /* RESET x: still a change */
    } else if (lead(sw, 0, "listen")) {
        f |= PROTO_SQL_LISTEN;
    } else if (lead(sw, 0, "unlisten")) {
        if (sw->count == 1) f |= PROTO_SQL_UNLISTEN_ALL; /* "UNLISTEN *": '*' is not a word */
    } else if (lead(sw, 0, "discard")) {
        if (lead(sw, 1, "all")) f |= PROTO_SQL_DISCARD_ALL;
        else if (lead(sw, 1, "temp") || lead(sw, 1, "temporary")) f |= PROTO_SQL_DISCARD_TEMP;
    } else if (lead(sw, 0, "create")) {
        int i = 1;
        if (lead(sw, i, "or") && lead(sw, i + 1, "replace")) i += 2;
        if (lead(sw, i, "global") || lead(sw, i, "local")) i++;
        if (lead(sw, i, "temp") || lead(sw, i, "temporary")) f |= PROTO_SQL_TEMP;
    } else if (lead(sw, 0, "declare")) {
        f |= PROTO_SQL_CURSOR; /* WITH HOLD is checked by the caller's words scan */
    } else if (lead(sw, 0, "prepare")) {
        if (!lead(sw, 1, "transaction")) f |= PROTO_SQL_PREPARE;
    } else if (lead(sw, 0, "deallocate")) {
        if (lead(sw, 1, "all") || (lead(sw, 1, "prepare") && lead(sw, 2, "all"))) f |= PROTO_SQL_DEALLOCATE_ALL;
    } else if (lead(sw, 0, "close")) {
        if (lead(sw, 1, "all")) f |= PROTO_SQL_CLOSE_ALL;
    } else if (lead(sw, 0, "load")) {
        f |= PROTO_SQL_SET;
    }
    return f;
}

/* True when the text is surely without session effects: one statement
 * (a ';' may only end it) led by a word judge_statement ignores, and
 * without the function names the full scan looks for ("advisory",
 * "set_config", even inside literals or comments). Most queries are such
 * and cost a fifth of a full scan this way; anything else gets one. */
static bool surely_none(const char *sql, size_t len)
{
    scan s = {sql, sql + len};
    skip_noise(&s);
    const char *w = s.p;
    while (s.p < s.end && is_alpha(*s.p))
        s.p++;
    size_t n = (size_t)(s.p - w);
    if (!(word_is(w, n, "select") || word_is(w, n, "insert") || word_is(w, n, "update") ||
          word_is(w, n, "delete") || word_is(w, n, "with") || word_is(w, n, "values") ||
          word_is(w, n, "begin") || word_is(w, n, "commit") || word_is(w, n, "rollback")))
        return false;
    for (const char *p = s.p; p < s.end; p++) {
        char c = (char)(*p | 0x20);
        if (*p == ';') {
            for (p++; p < s.end; p++)
                if (!is_space(*p)) return false;
            return true;
        }
        if (c == 'a' && s.end - p >= 8 && (p[1] | 0x20) == 'd' && strncasecmp(p, "advisory", 8) == 0)
            return false;
        if (c == 's' && s.end - p >= 10 && (p[1] | 0x20) == 'e' && strncasecmp(p, "set_config", 10) == 0)
            return false;
    }
    return true;
}

unsigned proto_sql_session_effects(const char *sql, size_t len)
{
    if (surely_none(sql, len)) return 0;
    scan s = {sql, sql + len};
    unsigned flags = 0, calls = 0;
    stmt_words sw = {.count = 0};
    bool hold = false, with = false, on_commit_drop = false;
    int on_commit = 0; /* words of "ON COMMIT DROP" seen in a row */
    for (;;) {
        skip_noise(&s);
        if (s.p >= s.end || *s.p == ';') {
            unsigned f = judge_statement(&sw, calls);
            if ((f & PROTO_SQL_CURSOR) && !hold) f &= ~PROTO_SQL_CURSOR;
            if (on_commit_drop) f &= ~PROTO_SQL_TEMP; /* gone at the end of the transaction */
            flags |= f;
            if (s.p >= s.end) break;
            s.p++;
            sw.count = 0;
            calls = 0;
            hold = with = on_commit_drop = false;
            on_commit = 0;
            continue;
        }
        if (skip_quoted(&s)) continue;
        if (is_alpha(*s.p) || *s.p == '_') {
            const char *w = s.p;
            while (s.p < s.end && (is_alnum(*s.p) || *s.p == '_' || *s.p == '$'))
                s.p++;
            size_t n = (size_t)(s.p - w);
            if (sw.count < MAX_WORDS) {
                sw.w[sw.count] = w;
                sw.n[sw.count] = n;
                sw.count++;
            }
            if (word_is(w, n, "hold") && with) hold = true;
            if (word_is(w, n, "on")) on_commit = 1;
            else if (on_commit == 1 && word_is(w, n, "commit")) on_commit = 2;
            else if (on_commit == 2 && word_is(w, n, "drop")) on_commit_drop = true;
            else on_commit = 0;
            with = word_is(w, n, "with");
            if (word_is(w, n, "pg_advisory_lock") || word_is(w, n, "pg_advisory_lock_shared") ||
                word_is(w, n, "pg_try_advisory_lock") || word_is(w, n, "pg_try_advisory_lock_shared"))
                calls |= PROTO_SQL_ADVISORY;
            else if (word_is(w, n, "pg_advisory_unlock_all"))
                calls |= PROTO_SQL_ADVISORY_UNLOCK_ALL;
            else if (word_is(w, n, "set_config"))
                calls |= PROTO_SQL_SET; /* may be is_local = true; counted anyway */
            continue;
        }
        s.p++;
    }
    return flags;
}

/* The words of a query string holding a single statement of plain words
 * ('=' counts as a word, names may hold dots), lower-cased; -1 when it holds
 * anything else (literals, numbers, several statements, too many words). */
#define SIMPLE_MAX_WORDS 6
static int simple_words(const char *sql, size_t len, char w[SIMPLE_MAX_WORDS][128])
{
    scan s = {sql, sql + len};
    int n = 0;
    for (;;) {
        skip_noise(&s);
        if (s.p >= s.end) break;
        if (*s.p == ';') {
            s.p++;
            skip_noise(&s);
            if (s.p < s.end) return -1;
            break;
        }
        const char *b = s.p;
        if (*s.p == '=') {
            s.p++;
        } else if (is_alpha(*s.p) || *s.p == '_') {
            while (s.p < s.end && (is_alnum(*s.p) || *s.p == '_' || *s.p == '$' || *s.p == '.'))
                s.p++;
        } else {
            return -1;
        }
        size_t wl = (size_t)(s.p - b);
        if (n == SIMPLE_MAX_WORDS || wl >= 128) return -1;
        for (size_t i = 0; i < wl; i++)
            w[n][i] = to_lower(b[i]);
        w[n][wl] = '\0';
        n++;
    }
    return n;
}

/* Whether the statement starts with the word kw (lower case): a cheap test
 * before the scans below, which most queries fail at their first word. */
static bool first_word_is(const char *sql, size_t len, const char *kw)
{
    scan s = {sql, sql + len};
    skip_noise(&s);
    size_t n = strlen(kw);
    if ((size_t)(s.end - s.p) < n || to_lower(*s.p) != kw[0] || strncasecmp(s.p, kw, n) != 0) return false;
    const char *after = s.p + n;
    return after == s.end || !(is_alnum(*after) || *after == '_' || *after == '$' || *after == '.');
}

static int copy_name(const char *nm, char *name, size_t cap)
{
    if (strlen(nm) + 1 > cap) return 0;
    strcpy(name, nm);
    return 1;
}

int proto_sql_deallocate_name(const char *sql, size_t len, char *name, size_t cap)
{
    if (!first_word_is(sql, len, "deallocate")) return 0;
    char w[SIMPLE_MAX_WORDS][128];
    int n = simple_words(sql, len, w);
    if (n < 2 || strcmp(w[0], "deallocate") != 0) return 0;
    int i = strcmp(w[1], "prepare") == 0 ? 2 : 1;
    if (n != i + 1 || strcmp(w[i], "all") == 0 || strchr(w[i], '.')) return 0;
    return copy_name(w[i], name, cap);
}

int proto_sql_reset_name(const char *sql, size_t len, char *name, size_t cap)
{
    if (!first_word_is(sql, len, "set") && !first_word_is(sql, len, "reset")) return 0;
    char w[SIMPLE_MAX_WORDS][128];
    int n = simple_words(sql, len, w);
    if (n == 2 && strcmp(w[0], "reset") == 0 && strcmp(w[1], "all") != 0) return copy_name(w[1], name, cap);
    if (n < 4 || strcmp(w[0], "set") != 0) return 0;
    int i = strcmp(w[1], "session") == 0 ? 2 : 1;
    if (n != i + 3 || strcmp(w[i + 2], "default") != 0) return 0;
    if (strcmp(w[i + 1], "to") != 0 && strcmp(w[i + 1], "=") != 0) return 0;
    if (strcmp(w[i], "local") == 0) return 0;
    return copy_name(w[i], name, cap);
}

int proto_sql_simple_set(const char *sql, size_t len, char *name, size_t ncap, char *value, size_t vcap)
{
    /* The value may be a quoted literal, which simple_words refuses: split
     * the text at the value first. */
    if (!first_word_is(sql, len, "set")) return 0;
    scan s = {sql, sql + len};
    const char *vstart = NULL;
    int words = 0;
    bool assign = false;
    while (!vstart) {
        skip_noise(&s);
        if (s.p >= s.end) return 0;
        if (*s.p == '=') {
            s.p++;
            assign = true;
        } else if (is_alpha(*s.p) || *s.p == '_') {
            const char *b = s.p;
            while (s.p < s.end && (is_alnum(*s.p) || *s.p == '_' || *s.p == '.'))
                s.p++;
            words++;
            if (words >= 2 && (size_t)(s.p - b) == 2 && strncasecmp(b, "to", 2) == 0) assign = true;
        } else {
            return 0;
        }
        if (assign) {
            skip_noise(&s);
            vstart = s.p;
        }
        if (words > 4) return 0;
    }
    char w[SIMPLE_MAX_WORDS][128];
    int n = simple_words(sql, (size_t)(vstart - sql), w);
    /* n counts "set [session] name to|=" */
    if (n < 3 || strcmp(w[0], "set") != 0) return 0;
    int i = strcmp(w[1], "session") == 0 ? 2 : 1;
    if (n != i + 2 || strcmp(w[i], "local") == 0 || strcmp(w[i], "time") == 0) return 0;
    /* One value: 'literal' (no backslashes), a number or a word. */
    const char *p = vstart, *e = sql + len;
    size_t vn = 0;
    if (p < e && *p == '\'') {
        p++;
        for (;;) {
            if (p >= e || *p == '\\') return 0;
            if (*p == '\'') {
                if (p + 1 < e && p[1] == '\'') p++;
                else break;
            }
            if (vn + 1 >= vcap) return 0;
            value[vn++] = *p++;
        }
        p++;
    } else {
        while (p < e && (is_alnum(*p) || *p == '_' || *p == '.' || *p == '-')) {
            if (vn + 1 >= vcap) return 0;
            value[vn++] = *p++;
        }
        if (vn == 0) return 0;
    }
    value[vn] = '\0';
    scan t = {p, e};
    skip_noise(&t);
    if (t.p < t.end && *t.p == ';') {
        t.p++;
        skip_noise(&t);
    }
    if (t.p < t.end) return 0;
    if (strcmp(value, "default") == 0 || strcasecmp(value, "default") == 0) return 0;
    return copy_name(w[i], name, ncap);
}
