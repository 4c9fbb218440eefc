/*
 * denylog.h: the denial log, one line per denied request, kept apart from the
 * daemon's own log (a file of its own, or syslog).
 *
 *   2026-11-25T11:45:35.123Z policy=api key=10.0.0.7 retry_after_ms=1200
 *
 * Policy names and keys are escaped (rl_escape_key: `\\` for a backslash, `\xHH` for
 * spaces, controls and every byte from 0x80 up), so a line is always one line of
 * printable ASCII and no name or key can pass for another or forge a field. A key
 * too long for the line is cut after a whole escape and followed by "..." and a
 * field only a cut key has, its length in bytes:
 *
 *   2026-11-25T11:45:35.123Z policy=api key=zzzz... key_len=60000 retry_after_ms=1200
 *
 * The log limits itself to lines_per_s lines per wall-clock second; the lines it
 * drops are counted and reported once the second is over, as
 *
 *   2026-11-25T11:45:36.000Z suppressed 4711 denial lines
 *
 * (rl_denylog_tick, called about once a second, writes that line when no denial
 * follows). A flood therefore writes at most lines_per_s + 1 lines a second.
 * Writing never blocks the caller for long: the file is opened O_APPEND and each
 * line is one write(); a failed write is counted, not retried.
 */
#ifndef RL_DENYLOG_H
#define RL_DENYLOG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct rl_denylog rl_denylog;

/* What the log did since it was opened. */
typedef struct rl_denylog_stats {
    uint64_t lines;      /* denial lines written */
    uint64_t suppressed; /* denial lines dropped by the limit */
    uint64_t errors;     /* lines that could not be written */
} rl_denylog_stats;

// Opens the log conf describes: the file conf->path (created 0640 if missing, appended
// to) or, with conf->syslog, syslog (ident "rlimitd-denials", facility LOG_DAEMON,
// priority LOG_NOTICE). Returns NULL with *err empty if conf asks for no log, NULL
// with the reason in err if the file cannot be opened, else the log (the caller
// closes it with rl_denylog_close).
rl_denylog *rl_denylog_open(const rl_denial_log_conf *conf, char *err, size_t errlen);

// Logs one denial at now_us (wall clock, microseconds since the epoch): policy and key
// (len bytes each), and the retry hint. Drops and counts it past the limit.
void rl_denylog_write(rl_denylog *log, int64_t now_us, const char *policy, size_t policy_len,
                      const char *key, size_t key_len, uint32_t retry_after_ms);

// Writes the summary of the lines dropped in seconds that are over at now_us.
void rl_denylog_tick(rl_denylog *log, int64_t now_us);

// Reopens the file under its path (after log rotation). Returns 0, or -1 with the
// reason in err (the old file stays in use).
int rl_denylog_reopen(rl_denylog *log, char *err, size_t errlen);

// Returns 1 if log writes what conf describes (same path or syslog, same limit).
int rl_denylog_same(const rl_denylog *log, const rl_denial_log_conf *conf);

// Returns what the log did so far.
rl_denylog_stats rl_denylog_get_stats(const rl_denylog *log);

// Writes a pending summary, closes the file and frees the log. NULL is fine.
void rl_denylog_close(rl_denylog *log);

#endif
