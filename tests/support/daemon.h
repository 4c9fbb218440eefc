/*
 * daemon.h: start and stop a real rlimitd for end-to-end tests.
 *
 * The daemon runs from $RLIMITD_BIN (default build/rlimitd), behind the optional
 * command prefix $RLIMITD_WRAPPER (e.g. valgrind), in its own temporary directory,
 * with a config the test writes. "@DIR@" in the config text becomes that directory,
 * so tests can place sockets and files there.
 */
#ifndef RLT_DAEMON_H
#define RLT_DAEMON_H

#include <sys/types.h>

typedef struct rlt_daemon {
    pid_t pid;        /* the daemon (or its wrapper) */
    char dir[256];    /* its temporary directory */
    char config[320]; /* the config file */
    char log[320];    /* its stderr */
    char sock[320];   /* "unix:@DIR@/rlimitd.sock", the address tests connect to */
    int exited;       /* rlt_daemon_wait saw it exit */
    int status;       /* then: its exit status (-1: killed by a signal) */
} rlt_daemon;

// Writes config (with @DIR@ replaced) to a new temporary directory and starts the
// daemon on it; waits until @DIR@/rlimitd.sock exists and the daemon logged that it is
// ready. Returns 0,
// or -1 (with the daemon's log printed) if it did not come up.
int rlt_daemon_start(rlt_daemon *d, const char *config);

// Replaces the daemon's config file with config (@DIR@ replaced), for reload tests.
int rlt_daemon_rewrite(rlt_daemon *d, const char *config);

// Sends sig to the daemon.
void rlt_daemon_signal(rlt_daemon *d, int sig);

// Returns 1 if the daemon's log contains text.
int rlt_daemon_log_has(const rlt_daemon *d, const char *text);

// Waits (timeout_ms at most) for the daemon to exit by itself. Returns its exit status
// (-1 if a signal killed it), or -2 if it is still running.
int rlt_daemon_wait(rlt_daemon *d, int timeout_ms);

// Stops the daemon with SIGTERM (unless rlt_daemon_wait saw it exit) and waits for it (30 s at
// most, then SIGKILL). Returns its exit status (0 for a clean stop; the wrapper's error code under
// valgrind), or -1 if it had to be killed or died of a signal. Removes the temporary directory.
int rlt_daemon_stop(rlt_daemon *d);

// Substitutes @DIR@ in text into out (len bytes).
void rlt_expand(const rlt_daemon *d, const char *text, char *out, size_t len);

#endif
