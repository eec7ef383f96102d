/* log.c: leveled logging to stderr. Each event is one line, prefixed with its
 * level the way PostgreSQL does (LOG/WARNING/ERROR/DEBUG); under systemd
 * journald adds the timestamp. Messages never contain secrets: callers never
 * pass passwords or authentication payloads here. */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdio.h>

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

void log_msg(config_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per event so concurrent writers never interleave a line. */
    fprintf(stderr, "%s: %s\n", level_word(level), line);
}
