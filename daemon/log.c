/*
 * log.c: leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "escape.h"

static int max_level = RL_LOG_INFO; /* the most verbose level written */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rl_log_set_level(int level) {
    max_level = level;
}

int rl_log_enabled(int level) {
    return level <= max_level;
}

// Writes one line: the message escaped (escape.h, spaces and UTF-8 kept), so that a
// policy name or config text in it can neither start a line nor drive a terminal.
static void vlog(int level, const char *fmt, va_list ap) {
    char line[1024], shown[4 * sizeof(line)];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    rl_escape(line, len, RL_ESCAPE_UTF8 | RL_ESCAPE_KEEP_SPACE, shown, sizeof(shown));
    fprintf(stderr, "rlimitd: %s: %s\n", level_names[level], shown);
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
