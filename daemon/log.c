/* log.c: leveled logging to stderr. Each event is one line, prefixed with its
 * level the way PostgreSQL does (LOG/WARNING/ERROR/DEBUG); under systemd
 * journald adds the timestamp. A message is escaped (log_escape) after it is
 * formatted, so that nothing in it — a client's user name, a statement, a
 * multi-line libpq error — can break the line or pass for a line of its own.
 * A message longer than LOG_LINE_MAX (a long statement echoed) is cut there
 * and says how much was cut. Messages never contain secrets: callers never
 * pass passwords or authentication payloads here. */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_LINE_SHORT 2048     /* formatted on the stack; longer ones on the heap */
#define LOG_LINE_MAX (64 * 1024) /* a formatted message longer than this is cut */

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

/* Print one event: `msg` (n bytes) escaped if it holds control characters;
 * `cut` bytes of it were left out. */
static void print_line(config_log_level level, const char *msg, size_t n, size_t cut)
{
    const char *out = msg;
    char *escaped = NULL;
    /* Most messages have nothing to escape: they are printed as they are. */
    for (size_t i = 0; i < n; i++)
        if (is_control((unsigned char)msg[i])) {
            escaped = malloc(4 * n + 1);
            if (escaped) log_escape(escaped, 4 * n + 1, msg, n);
            out = escaped ? escaped : "(a message with control characters, not logged: out of memory)";
            break;
        }
    /* One fprintf per event so concurrent writers never interleave a line. */
    if (cut) fprintf(stderr, "%s: %s... (%zu bytes more not logged)\n", level_word(level), out, cut);
    else fprintf(stderr, "%s: %s\n", level_word(level), out);
    free(escaped);
}

void log_msg(config_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    char line[LOG_LINE_SHORT];
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0) {
        va_end(again);
        return;
    }
    size_t n = (size_t)len;
    if (n < sizeof line) {
        va_end(again);
        print_line(level, line, n, 0);
        return;
    }
    /* A long message: formatted again on the heap, up to LOG_LINE_MAX. */
    size_t keep = n < LOG_LINE_MAX ? n : LOG_LINE_MAX;
    char *big = malloc(keep + 1);
    if (big) vsnprintf(big, keep + 1, fmt, again);
    va_end(again);
    if (big) print_line(level, big, keep, n - keep);
    else print_line(level, line, sizeof line - 1, n - (sizeof line - 1));
    free(big);
}
