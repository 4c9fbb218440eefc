/*
 * log.h: the daemon's log, to stderr (journald captures it under systemd).
 *
 * rl_log_fatal is for broken invariants only; what the daemon survives is a warning.
 */
#ifndef RL_LOG_H
#define RL_LOG_H

typedef enum rl_log_level {
    RL_LOG_ERROR = 0, /* the daemon cannot do what was asked */
    RL_LOG_WARN = 1,  /* something failed and the daemon goes on */
    RL_LOG_INFO = 2,  /* state changes: started, reloaded, store up or down */
    RL_LOG_DEBUG = 3, /* per-connection detail */
} rl_log_level;

// Sets the most verbose level written (default RL_LOG_INFO).
void rl_log_set_level(int level);

// Returns 1 if messages of level are written.
int rl_log_enabled(int level);

// Writes one line "rlimitd: LEVEL: message" to stderr if level is enabled. The message
// is escaped (escape.h, with spaces and valid UTF-8 kept): a backslash is written `\\`,
// controls (a newline too), bidi and invisible characters and bytes of invalid UTF-8
// `\xHH`; callers pass names as they are.
void rl_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rl_log_error(...) rl_log_write(RL_LOG_ERROR, __VA_ARGS__)
#define rl_log_warn(...) rl_log_write(RL_LOG_WARN, __VA_ARGS__)
#define rl_log_info(...) rl_log_write(RL_LOG_INFO, __VA_ARGS__)
#define rl_log_debug(...) rl_log_write(RL_LOG_DEBUG, __VA_ARGS__)

// Logs at error level and aborts: for broken invariants, never for input.
void rl_log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
