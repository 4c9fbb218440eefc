/*
 * log.c: leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int max_level = RL_LOG_INFO; /* the most verbose level written */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rl_log_set_level(int level) {
    max_level = level;
}

int rl_log_enabled(int level) {
    return level <= max_level;
}

static void vlog(int level, const char *fmt, va_list ap) {
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "rlimitd: %s: %s\n", level_names[level], line);
}

void rl_log_write(int level, const char *fmt, ...) {
    if (!rl_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void rl_log_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(RL_LOG_ERROR, fmt, ap);
    va_end(ap);
    abort();
}
