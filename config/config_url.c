/* config_url.c: a pool's url, as a user pastes it, turned into what libpq takes.
 *
 * Two forms are accepted, told apart as libpq does: a URI ("scheme://…") or a
 * keyword string ("host=… dbname=…"). A URI may carry SQLAlchemy's "+driver"
 * ("postgresql+psycopg2://…"): the driver means nothing to a pooler, so it is
 * dropped and "postgres://" is spelt "postgresql://". The rest (user,
 * password, hosts, query options) is kept as written: libpq is the judge of
 * it, through the optional check hook the daemon installs, since config/ does
 * not link libpq. A keyword string is only checked for its shape here. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

static config_conninfo_check check_fn;
static void *check_arg;

void config_set_conninfo_check(config_conninfo_check fn, void *arg)
{
    check_fn = fn;
    check_arg = arg;
}

const char *config_run_conninfo_check(const char *conninfo)
{
    return check_fn ? check_fn(conninfo, check_arg) : NULL;
}

/* Length of the scheme when `url` starts with "scheme://", else 0. */
static size_t scheme_len(const char *url)
{
    size_t i = 0;
    if (!isalpha((unsigned char)url[0]))
        return 0;
    while (isalnum((unsigned char)url[i]) || url[i] == '+' || url[i] == '-' || url[i] == '.')
        i++;
    return strncmp(url + i, "://", 3) == 0 ? i : 0;
}

char *config_url_scheme(const char *url)
{
    size_t n = url ? scheme_len(url) : 0;
    return n ? strndup(url, n) : NULL;
}

/* The shape of a libpq keyword string, as conninfo_parse() reads it:
 * `key = value` pairs separated by blanks; a value is either bare (a backslash
 * escapes the next character) or in single quotes (with \' and \\). */
static const char *check_keywords(const char *s)
{
    int pairs = 0;
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        if (p == key)
            return "keyword string: '=' without a keyword before it";
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=')
            return "keyword string: a keyword without '=' and a value after it";
        p++;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\'') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return "keyword string: a quoted value without its closing quote";
                if (*p == '\\') {
                    p++;
                    if (*p == '\0')
                        return "keyword string: a quoted value without its closing quote";
                    p++;
                } else if (*p == '\'') {
                    p++;
                    break;
                } else {
                    p++;
                }
            }
        } else {
            while (*p && !isspace((unsigned char)*p)) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
        }
        pairs++;
    }
    return pairs ? NULL : "keyword string: no key=value in it";
}

static bool is_driver_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

char *config_normalize_url(const char *url, const char **why)
{
    static const char expected[] =
        "expected a postgresql:// URL (postgresql+DRIVER:// and postgres:// too) "
        "or a libpq keyword string like 'host=... dbname=...'";
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!url || !*url) {
        *why = expected;
        return NULL;
    }

    size_t n = scheme_len(url);
    if (n) {
        const char *plus = memchr(url, '+', n);
        size_t base = plus ? (size_t)(plus - url) : n;
        bool pg = (base == 10 && strncasecmp(url, "postgresql", 10) == 0) ||
                  (base == 8 && strncasecmp(url, "postgres", 8) == 0);
        if (!pg) {
            *why = "unsupported scheme: expected postgresql://, postgres:// or "
                   "postgresql+DRIVER:// (a SQLAlchemy URL for PostgreSQL)";
            return NULL;
        }
        if (plus && !is_driver_name(plus + 1, n - base - 1)) {
            *why = "expected a driver name after '+' (like postgresql+psycopg2://)";
            return NULL;
        }
        const char *rest = url + n + 3;
        size_t len = strlen(rest);
        char *out = malloc(sizeof "postgresql://" + len);
        if (!out) {
            *why = "out of memory";
            return NULL;
        }
        memcpy(out, "postgresql://", sizeof "postgresql://" - 1);
        memcpy(out + sizeof "postgresql://" - 1, rest, len + 1);
        return out;
    }

    if (!strchr(url, '=')) {
        *why = expected;
        return NULL;
    }
    const char *bad = check_keywords(url);
    if (bad) {
        *why = bad;
        return NULL;
    }
    char *out = strdup(url);
    if (!out)
        *why = "out of memory";
    return out;
}

/* Replaces the characters [from, to) of s by "***" in a new string. */
static char *mask_span(const char *s, size_t from, size_t to)
{
    return config_fmt("%.*s***%s", (int)from, s, s + to);
}

char *config_url_hide_password(const char *url)
{
    char *out = strdup(url);
    if (!out)
        return NULL;
    /* URI: scheme://user:PASSWORD@host... */
    size_t sl = scheme_len(out);
    if (sl) {
        size_t start = sl + 3;
        size_t auth_end = start + strcspn(out + start, "/?#");
        const char *at = memchr(out + start, '@', auth_end - start);
        const char *colon = at ? memchr(out + start, ':', (size_t)(at - (out + start))) : NULL;
        if (colon) {
            char *m = mask_span(out, (size_t)(colon + 1 - out), (size_t)(at - out));
            free(out);
            out = m;
            if (!out)
                return NULL;
        }
    }
    /* Keyword strings and URI query options: password=VALUE. */
    for (size_t from = 0;;) {
        char *p = strstr(out + from, "password=");
        if (!p)
            break;
        size_t vstart = (size_t)(p - out) + strlen("password=");
        size_t vend = vstart;
        if (out[vend] == '\'') {
            for (vend++; out[vend] && out[vend] != '\''; vend++)
                if (out[vend] == '\\' && out[vend + 1])
                    vend++;
            if (out[vend])
                vend++;
        } else {
            while (out[vend] && !isspace((unsigned char)out[vend]) && out[vend] != '&')
                vend++;
        }
        char *m = mask_span(out, vstart, vend);
        free(out);
        out = m;
        if (!out)
            return NULL;
        from = vstart + 3;
    }
    return out;
}

/* Whether `s` has the keyword `password` followed by '=' (blanks allowed),
 * at its start or after one of the characters in `before`. */
static bool has_password_keyword(const char *s, const char *before)
{
    for (const char *p = s; (p = strcasestr(p, "password")) != NULL; p += 8) {
        if (p != s && !strchr(before, p[-1]))
            continue;
        const char *q = p + 8;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '=')
            return true;
    }
    return false;
}

bool config_url_has_password(const char *url)
{
    if (!url)
        return false;
    size_t n = scheme_len(url);
    if (n == 0)
        return has_password_keyword(url, " \t\n");
    const char *auth = url + n + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at && memchr(auth, ':', (size_t)(at - auth)))
        return true;
    const char *query = strchr(url, '?');
    return query && has_password_keyword(query + 1, "&");
}
