/* log.h: leveled logging to stderr, one line per event (journald adds time). */
#pragma once

#include <stdbool.h>

#include "config/config.h"

void log_set_level(config_log_level level);
bool log_enabled(config_log_level level);
void log_msg(config_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(CONFIG_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(CONFIG_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(CONFIG_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { \
        if (log_enabled(CONFIG_LOG_DEBUG)) log_msg(CONFIG_LOG_DEBUG, __VA_ARGS__); \
    } while (0)
