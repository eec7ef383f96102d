/* log.h: leveled logging to stderr, one line per event (journald adds time). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

void log_set_level(config_log_level level);
bool log_enabled(config_log_level level);
void log_msg(config_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy src (len bytes) to dst with its control characters escaped, so it
 * fits on one line and cannot pass for another: newline as \n, carriage
 * return as \r, every other byte below 0x20 and DEL as \xNN; tab and every
 * other byte stay as they are. Writes at most cap - 1 bytes and a NUL
 * (cap > 0), never cutting an escape in two; returns the bytes written. */
size_t log_escape(char *dst, size_t cap, const char *src, size_t len);

#define log_error(...) log_msg(CONFIG_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(CONFIG_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(CONFIG_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { \
        if (log_enabled(CONFIG_LOG_DEBUG)) log_msg(CONFIG_LOG_DEBUG, __VA_ARGS__); \
    } while (0)
