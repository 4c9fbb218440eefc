/*
 * denylog.c: the denial log, limited to lines_per_s lines a second.
 */
#include "denylog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "escape.h"

#define LINE_MAX_BYTES 2048 /* longer keys are cut (the line says so with key_len=) */
#define KEY_CUT_TAIL 64     /* room kept after a key for what follows it */

struct rl_denylog {
    char *path;             /* the file, or NULL with syslog (owned) */
    int fd;                 /* the open file, or -1 */
    int use_syslog;         /* lines go to syslog */
    uint32_t lines_per_s;   /* limit */
    int64_t second;         /* the wall-clock second being counted */
    uint32_t in_second;     /* lines written in it */
    uint64_t dropped;       /* lines dropped in it (and not yet reported) */
    rl_denylog_stats stats; /* totals */
};

static int open_file(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        snprintf(err, errlen, "denial_log.path: cannot open %s: %s", path, strerror(errno));
    return fd;
}

rl_denylog *rl_denylog_open(const rl_denial_log_conf *conf, char *err, size_t errlen) {
    if (errlen)
        err[0] = '\0';
    if (!conf->path && !conf->syslog)
        return NULL;
    rl_denylog *log = rl_calloc(1, sizeof(*log));
    if (!log || (conf->path && !conf->syslog &&
                 !(log->path = rl_strndup(conf->path, strlen(conf->path))))) {
        snprintf(err, errlen, "denial log: out of memory");
        rl_free(log);
        return NULL;
    }
    log->fd = -1;
    log->use_syslog = conf->syslog;
    log->lines_per_s = conf->lines_per_s > 0 ? (uint32_t)conf->lines_per_s : 1;
    log->second = -1;
    if (log->path && (log->fd = open_file(log->path, err, errlen)) < 0) {
        rl_free(log->path);
        rl_free(log);
        return NULL;
    }
    if (log->use_syslog)
        openlog("rlimitd-denials", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    return log;
}

// Writes "2026-11-25T11:45:35.123Z" for now_us into buf (at least 32 bytes).
static void iso_time(int64_t now_us, char *buf, size_t len) {
    time_t secs = (time_t)(now_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(now_us / 1000 % 1000));
}

// Writes one line (text without time or newline).
static void emit(rl_denylog *log, int64_t now_us, const char *text) {
    char line[LINE_MAX_BYTES + 64];
    if (log->use_syslog) {
        syslog(LOG_NOTICE, "%s", text);
        return;
    }
    iso_time(now_us, line, 32);
    size_t n = strlen(line);
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s\n", text);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    if (log->fd < 0 || write(log->fd, line, n) != (ssize_t)n)
        log->stats.errors++;
}

// Writes the summary of the lines dropped and not reported yet.
static void report_dropped(rl_denylog *log, int64_t now_us) {
    char text[64];
    if (log->dropped == 0)
        return;
    snprintf(text, sizeof(text), "suppressed %llu denial lines", (unsigned long long)log->dropped);
    emit(log, now_us, text);
    log->dropped = 0;
}

// Starts counting the second now_us falls in, reporting what the last one dropped.
static void roll(rl_denylog *log, int64_t now_us) {
    int64_t second = now_us / 1000000;
    if (second == log->second)
        return;
    report_dropped(log, now_us);
    log->second = second;
    log->in_second = 0;
}

void rl_denylog_write(rl_denylog *log, int64_t now_us, const char *policy, size_t policy_len,
                      const char *key, size_t key_len, uint32_t retry_after_ms) {
    char text[LINE_MAX_BYTES];
    roll(log, now_us);
    if (log->in_second >= log->lines_per_s) {
        log->dropped++;
        log->stats.suppressed++;
        return;
    }
    log->in_second++;
    size_t n = (size_t)snprintf(text, sizeof(text), "policy=");
    n += rl_escape_key(policy, policy_len, text + n, sizeof(text) - n); /* fits: 4 * 255 */
    n += (size_t)snprintf(text + n, sizeof(text) - n, " key=");
    size_t room = sizeof(text) - n - KEY_CUT_TAIL;
    size_t need = rl_escape_key(key, key_len, text + n, room);
    if (need < room)
        snprintf(text + n + need, sizeof(text) - n - need, " retry_after_ms=%u", retry_after_ms);
    else /* cut: whole escapes only, then a field only a cut key has */
        snprintf(text + n + strlen(text + n), KEY_CUT_TAIL, "... key_len=%zu retry_after_ms=%u",
                 key_len, retry_after_ms);
    emit(log, now_us, text);
    log->stats.lines++;
}

void rl_denylog_tick(rl_denylog *log, int64_t now_us) {
    roll(log, now_us);
}

int rl_denylog_reopen(rl_denylog *log, char *err, size_t errlen) {
    if (!log->path)
        return 0;
    int fd = open_file(log->path, err, errlen);
    if (fd < 0)
        return -1;
    if (log->fd >= 0)
        close(log->fd);
    log->fd = fd;
    return 0;
}

int rl_denylog_same(const rl_denylog *log, const rl_denial_log_conf *conf) {
    if (!log)
        return !conf->path && !conf->syslog;
    if (log->use_syslog != conf->syslog || log->lines_per_s != (uint32_t)conf->lines_per_s)
        return 0;
    return log->use_syslog || (conf->path && strcmp(conf->path, log->path) == 0);
}

rl_denylog_stats rl_denylog_get_stats(const rl_denylog *log) {
    rl_denylog_stats none = {0, 0, 0};
    return log ? log->stats : none;
}

void rl_denylog_close(rl_denylog *log) {
    if (!log)
        return;
    report_dropped(log, rl_clock_real_us());
    if (log->fd >= 0)
        close(log->fd);
    if (log->use_syslog)
        closelog();
    rl_free(log->path);
    rl_free(log);
}
