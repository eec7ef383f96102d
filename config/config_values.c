/* config_values.c: the parsers of single values, and the enums' names.
 *
 * Every parser is strict: the whole text must be the value, with nothing
 * before or after (inih has already trimmed blanks around it), numbers are in
 * range, and keywords are matched without regard to case. None of them
 * prints or keeps anything; the key table (config_keys.c) turns a refusal into
 * a message that says what was expected. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

static const config_word bool_words[] = {
    {"true", 1}, {"yes", 1}, {"on", 1}, {"1", 1},
    {"false", 0}, {"no", 0}, {"off", 0}, {"0", 0},
    {NULL, 0},
};

/* Optional sign then decimal digits only: what strtol may read. */
static bool is_decimal_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s))
        s++;
    return *s == '\0';
}

int config_parse_int(const char *text, long min, long max, long *out)
{
    if (!is_decimal_int(text))
        return -1;
    errno = 0;
    long v = strtol(text, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

bool config_int_out_of_range(const char *text)
{
    if (!is_decimal_int(text))
        return false;
    errno = 0;
    long v = strtol(text, NULL, 10);
    return errno == ERANGE || v > INT_MAX || v < INT_MIN;
}

int config_parse_octal_mode(const char *text, int *out)
{
    if (*text == '\0')
        return -1;
    long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        v = v * 8 + (*p - '0');
        if (v > 0777)
            return -1;
    }
    *out = (int)v;
    return 0;
}

/* A plain decimal number: [sign] digits [. digits] [e [sign] digits], with at
 * least one digit before the exponent. Refuses what strtod would also take
 * (hex, inf, nan, leading blanks). */
static bool is_decimal_number(const char *s)
{
    int digits = 0;
    if (*s == '+' || *s == '-')
        s++;
    while (isdigit((unsigned char)*s))
        s++, digits++;
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s))
            s++, digits++;
    }
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

int config_parse_seconds(const char *text, bool allow_never, double *out, bool *too_large)
{
    *too_large = false;
    if (!is_decimal_number(text))
        return -1;
    /* strtod follows LC_NUMERIC: spell the point as the locale does, so a
     * daemon that called setlocale() still reads "2.5" as 2.5. */
    char buf[128];
    const char *point = localeconv()->decimal_point;
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        const char *piece = *p == '.' ? point : p;
        size_t len = *p == '.' ? strlen(point) : 1;
        if (n + len >= sizeof buf)
            return -1; /* no sane number of seconds is this long */
        memcpy(buf + n, piece, len);
        n += len;
    }
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0')
        return -1;
    if (allow_never && v == -1.0) {
        *out = -1.0;
        return 0;
    }
    if (!isfinite(v) || v > CONFIG_MAX_SECONDS) {
        *too_large = v > 0;
        return -1;
    }
    if (v < 0)
        return -1;
    *out = v + 0.0; /* -0 becomes 0 */
    return 0;
}

int config_parse_word(const char *text, const config_word *words, int *out)
{
    for (const config_word *w = words; w->word; w++) {
        if (strcasecmp(text, w->word) == 0) {
            *out = w->value;
            return 0;
        }
    }
    return -1;
}

int config_parse_bool(const char *text, bool *out)
{
    int v;
    if (config_parse_word(text, bool_words, &v) < 0)
        return -1;
    *out = v != 0;
    return 0;
}

int config_parse_isolation(const char *text, config_isolation *out, bool *autocommit)
{
    static const config_word levels[] = {
        {"", CONFIG_ISOLATION_DEFAULT},
        {"DEFAULT", CONFIG_ISOLATION_DEFAULT},
        {"READ UNCOMMITTED", CONFIG_ISOLATION_READ_UNCOMMITTED},
        {"READ COMMITTED", CONFIG_ISOLATION_READ_COMMITTED},
        {"REPEATABLE READ", CONFIG_ISOLATION_REPEATABLE_READ},
        {"SERIALIZABLE", CONFIG_ISOLATION_SERIALIZABLE},
        {NULL, 0},
    };
    /* "read_committed", "Read  Committed" -> "READ COMMITTED". Longer than any
     * level means not a level; the buffer bound is only a guard. */
    char norm[32];
    size_t n = 0;
    bool gap = false;
    *autocommit = false;
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '_' || isspace(c)) {
            gap = n > 0;
            continue;
        }
        if (n + (gap ? 2 : 1) >= sizeof norm)
            return -1;
        if (gap)
            norm[n++] = ' ';
        gap = false;
        norm[n++] = (char)toupper(c);
    }
    norm[n] = '\0';
    if (strcmp(norm, "AUTOCOMMIT") == 0) {
        *autocommit = true;
        return -1;
    }
    int v;
    if (config_parse_word(norm, levels, &v) < 0)
        return -1;
    *out = (config_isolation)v;
    return 0;
}

static bool has_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]))
            return true;
    return false;
}

int config_check_hostport(const char *text)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text)
        return -1;
    long port;
    if (!isdigit((unsigned char)colon[1]) || config_parse_int(colon + 1, 1, 65535, &port) < 0)
        return -1;
    size_t hlen = (size_t)(colon - text);
    if (has_blank(text, hlen))
        return -1;
    if (text[0] == '[') {
        /* "[::1]": brackets around a non-empty address, nothing else. */
        if (hlen < 3 || text[hlen - 1] != ']' || memchr(text + 1, ']', hlen - 2) ||
            memchr(text + 1, '[', hlen - 2))
            return -1;
        return 0;
    }
    /* An unbracketed host cannot hold a ':' (write IPv6 as [addr]). */
    if (memchr(text, ':', hlen) || memchr(text, '[', hlen) || memchr(text, ']', hlen))
        return -1;
    return 0;
}

void config_free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

int config_split_list(const char *text, bool no_inner_space, char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return 0;

    size_t count = 1;
    for (const char *q = p; *q; q++)
        count += *q == ',';
    char **v = calloc(count, sizeof *v);
    if (!v)
        return -2;

    size_t i = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b || (no_inner_space && has_blank(a, (size_t)(b - a)))) {
            config_free_list(v, i);
            return -1;
        }
        v[i] = strndup(a, (size_t)(b - a));
        if (!v[i]) {
            config_free_list(v, i);
            return -2;
        }
        i++;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *items = v;
    *n = i;
    return 0;
}

/* ---- names -------------------------------------------------------------- */

const char *config_pool_mode_to_str(config_pool_mode m)
{
    switch (m) {
    case CONFIG_POOL_MODE_TRANSACTION: return "transaction";
    case CONFIG_POOL_MODE_SESSION: return "session";
    }
    return "unknown";
}

const char *config_reset_style_to_str(config_reset_style r)
{
    switch (r) {
    case CONFIG_RESET_ROLLBACK: return "rollback";
    case CONFIG_RESET_COMMIT: return "commit";
    case CONFIG_RESET_NONE: return "none";
    }
    return "unknown";
}

const char *config_isolation_to_str(config_isolation i)
{
    switch (i) {
    case CONFIG_ISOLATION_DEFAULT: return "";
    case CONFIG_ISOLATION_READ_UNCOMMITTED: return "READ UNCOMMITTED";
    case CONFIG_ISOLATION_READ_COMMITTED: return "READ COMMITTED";
    case CONFIG_ISOLATION_REPEATABLE_READ: return "REPEATABLE READ";
    case CONFIG_ISOLATION_SERIALIZABLE: return "SERIALIZABLE";
    }
    return "unknown";
}

const char *config_echo_to_str(config_echo e)
{
    switch (e) {
    case CONFIG_ECHO_OFF: return "false";
    case CONFIG_ECHO_ON: return "true";
    case CONFIG_ECHO_DEBUG: return "debug";
    }
    return "unknown";
}

const char *config_auth_type_to_str(config_auth_type a)
{
    switch (a) {
    case CONFIG_AUTH_SCRAM_SHA_256: return "scram-sha-256";
    case CONFIG_AUTH_MD5: return "md5";
    case CONFIG_AUTH_PASSWORD: return "password";
    case CONFIG_AUTH_TRUST: return "trust";
    case CONFIG_AUTH_PEER: return "peer";
    }
    return "unknown";
}

const char *config_log_level_to_str(config_log_level l)
{
    switch (l) {
    case CONFIG_LOG_ERROR: return "error";
    case CONFIG_LOG_WARN: return "warn";
    case CONFIG_LOG_INFO: return "info";
    case CONFIG_LOG_DEBUG: return "debug";
    }
    return "unknown";
}

const char *config_tls_mode_to_str(config_tls_mode m)
{
    switch (m) {
    case CONFIG_TLS_DISABLE: return "disable";
    case CONFIG_TLS_ALLOW: return "allow";
    case CONFIG_TLS_PREFER: return "prefer";
    case CONFIG_TLS_REQUIRE: return "require";
    }
    return "unknown";
}

/* PgBouncer's tls_protocols: tlsv1.0 .. tlsv1.3, `secure` (1.2 and 1.3),
 * `all`, `legacy` (= all), separated by commas or blanks. */
int config_parse_tls_protocols(const char *text, unsigned *out)
{
    static const config_word words[] = {
        {"tlsv1.0", CONFIG_TLS_V1_0},
        {"tlsv1.1", CONFIG_TLS_V1_1},
        {"tlsv1.2", CONFIG_TLS_V1_2},
        {"tlsv1.3", CONFIG_TLS_V1_3},
        {"secure", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
        {"all", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
        {"legacy", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
        {NULL, 0},
    };
    unsigned set = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        char word[16];
        size_t n = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != ',') {
            if (n + 1 >= sizeof word)
                return -1;
            word[n++] = *p++;
        }
        word[n] = '\0';
        int v;
        if (config_parse_word(word, words, &v) < 0)
            return -1;
        set |= (unsigned)v;
    }
    if (!set)
        return -1;
    *out = set;
    return 0;
}
