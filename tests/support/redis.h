/*
 * redis.h: a private redis-server for tests, in its own temporary directory.
 *
 * The server listens on 127.0.0.1 on a free port (found by binding port 0) and on a
 * Unix socket in its directory, saves nothing, and dies with the test (parent-death
 * signal). Nothing assumes a Redis already running. tests/support/redis.sh does the
 * same for shell tests.
 */
#ifndef RLT_REDIS_H
#define RLT_REDIS_H

#include <sys/types.h>

struct redisContext;

typedef struct rlt_redis {
    pid_t pid;      /* the server, or 0 when stopped */
    int port;       /* its TCP port (kept across restarts) */
    char dir[256];  /* its temporary directory */
    char sock[320]; /* its Unix socket path */
    char args[512]; /* extra server arguments given to start */
} rlt_redis;

// Starts a server with the extra command-line arguments args (e.g. "--requirepass x";
// may be NULL) on a free port in a new temporary directory, and waits until it answers
// PING. Returns 0, or -1 if it did not come up.
int rlt_redis_start(rlt_redis *r, const char *args);

// Stops the server (SIGKILL if kill_it, else SIGTERM) and waits for it; the directory
// and port are kept for a restart.
void rlt_redis_stop(rlt_redis *r, int kill_it);

// Starts the server again on the same port and directory. Returns 0 or -1.
int rlt_redis_restart(rlt_redis *r);

// Stops the server if it runs and removes its directory.
void rlt_redis_cleanup(rlt_redis *r);

// Returns a synchronous hiredis connection to the server (authenticated with password
// if not NULL), or NULL. Free it with redisFree.
struct redisContext *rlt_redis_connect(const rlt_redis *r, const char *password);

// Sends a command given as raw text (e.g. "DEBUG SLEEP 0.5\r\n") on a new TCP
// connection and returns at once without reading the reply. Returns the connection's
// fd (the caller closes it), or -1.
int rlt_redis_fire(const rlt_redis *r, const char *raw);

#endif
