/* log.c: leveled logging to stderr. Each event is one line, prefixed with its
 * level the way PostgreSQL does (LOG/WARNING/ERROR/DEBUG); under systemd
 * journald adds the timestamp. A message is escaped (log_escape) after it is
 * formatted, so that nothing in it — a client's user name, a statement, a
 * multi-line libpq error — can break the line or pass for a line of its own.
 * Messages never contain secrets: callers never pass passwords or
 * authentication payloads here. */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_LINE_MAX 2048 /* a formatted message longer than this is cut */

static config_log_level current_level = CONFIG_LOG_INFO;

void log_set_level(config_log_level level) { current_level = level; }

bool log_enabled(config_log_level level) { return level <= current_level; }

static const char *level_word(config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_ERROR: return "ERROR";
    case CONFIG_LOG_WARN: return "WARNING";
    case CONFIG_LOG_INFO: return "LOG";
    case CONFIG_LOG_DEBUG: return "DEBUG";
    }
    return "LOG";
}

static bool is_control(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

size_t log_escape(char *dst, size_t cap, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        char esc[4];
        size_t w = 1;
        if (!is_control(ch)) {
            esc[0] = (char)ch;
        } else if (ch == '\n' || ch == '\r') {
            esc[0] = '\\';
            esc[1] = ch == '\n' ? 'n' : 'r';
            w = 2;
        } else {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[ch >> 4];
            esc[3] = hex[ch & 15];
            w = 4;
        }
        if (n + w >= cap) break;
        memcpy(dst + n, esc, w);
        n += w;
    }
    dst[n] = '\0';
    return n;
}

void log_msg(config_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    size_t n = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    /* Most messages have nothing to escape: they are printed as they are. */
    const char *out = line;
    char escaped[4 * LOG_LINE_MAX];
    for (size_t i = 0; i < n; i++)
        if (is_control((unsigned char)line[i])) {
            log_escape(escaped, sizeof escaped, line, n);
            out = escaped;
            break;
        }
    /* One fprintf per event so concurrent writers never interleave a line. */
    fprintf(stderr, "%s: %s\n", level_word(level), out);
}
