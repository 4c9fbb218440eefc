/*
 * redis_pool.h: the Redis store's connections, on hiredis's public async API driven by
 * a libevent event_base (through redis_io.h).
 *
 * Each connection goes through
 *     IDLE --connect--> CONNECTING --handshake replies--> READY
 *       ^                    |                              |
 *       +--- backoff timer <-+---- error, timeout, EOF <----+
 * The handshake is AUTH (when a password is configured; else PING, so that a Redis that
 * wants one answers NOAUTH), SELECT (db != 0), in Sentinel mode (conf->mode
 * RL_REDIS_SENTINEL) ROLE, and SCRIPT LOAD of the decision script, pipelined; its last
 * reply makes the connection READY
 * and tells the script's SHA1. A connection that fails waits 100 ms, doubling up to
 * 5 s (with jitter), before it connects again.
 *
 * The pool is up while at least one connection is READY (or, right after a successful
 * startup check, while the first connections are still being made). State changes
 * (up -> down, down -> up) are logged once each and reported to the owner.
 *
 * Commands are sent pipelined on the READY connection with the fewest in flight. Each
 * command's callback runs exactly once: with the reply, or with NULL when its
 * connection is lost or the pool is freed. A connection whose oldest command has waited
 * longer than dead_after_ms is considered dead and dropped (a black-holed peer).
 *
 * Sentinel mode: a server whose ROLE is not master is refused like a wrong password
 * (dropped, logged once per reason, retried after the backoff) and reported through the
 * wrong_role event, so that the owner asks the Sentinels again. The pool may be created
 * without an address (conf host and unix_path NULL): its connections then wait, idle,
 * for rl_redis_pool_retarget.
 */
#ifndef RL_REDIS_POOL_H
#define RL_REDIS_POOL_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rlproto.h"

typedef struct rl_redis_pool rl_redis_pool;
typedef struct rl_redis_conn rl_redis_conn;
typedef struct rl_redis_cmd rl_redis_cmd;
struct redisReply;

// Receives a command's reply (NULL: the connection was lost). The reply is valid
// during the call only. The command belongs to the caller again.
typedef void rl_redis_reply_fn(rl_redis_cmd *cmd, struct redisReply *reply);

/* A command in flight; embed it in whatever the reply must reach. */
struct rl_redis_cmd {
    rl_redis_reply_fn *fn; /* called once with the reply */
    rl_redis_conn *conn;   /* the connection it was sent on (set by send) */
    rl_redis_cmd *next;    /* the connection's in-flight commands, oldest first */
    int64_t sent_us;       /* monotonic clock when sent */
};

/* What the pool tells its owner. */
typedef struct rl_redis_pool_events {
    void (*ready)(void *arg);      /* a connection became READY: send what waits */
    void (*down)(void *arg);       /* the pool went down: fail what waits */
    void *arg;                     /* their argument */
    void (*wrong_role)(void *arg); /* Sentinel mode: a server was not a master (optional) */
} rl_redis_pool_events;

// Connects synchronously to conf's Redis within connect_timeout_ms, authenticates,
// selects the database and loads script (len bytes), writing its SHA1 (40 hex digits
// and a NUL) to sha. Returns RL_OK; RL_AGAIN if Redis could not be reached (refused,
// timed out, loading): the store may start down and reconnect; RL_ERR if Redis refused
// us (wrong password, unknown user, bad database, scripting refused), with the reason in
// err (errlen bytes) either way. In Sentinel mode (conf->mode RL_REDIS_SENTINEL, with
// host and port set to the resolved master) it checks ROLE too: a server that is not a
// master is RL_AGAIN.
int rl_redis_pool_check(const rl_store_conf *conf, const char *script, size_t len, char *sha,
                        char *err, size_t errlen);

struct redisContext;
// Called by rl_redis_pool_check_then on the connection it checked (authenticated, script
// loaded): returns RL_OK, RL_AGAIN or RL_ERR with the reason in err (errlen bytes).
typedef int rl_redis_sync_fn(struct redisContext *c, void *arg, char *err, size_t errlen);

// rl_redis_pool_check, then then(c, arg, ...) on the same connection if the check passed
// (its result is returned; err gets "redis at HOST:PORT: " before then's reason).
int rl_redis_pool_check_then(const rl_store_conf *conf, const char *script, size_t len, char *sha,
                             rl_redis_sync_fn *then, void *arg, char *err, size_t errlen);

// Creates the pool of conf->pool connections on base and starts connecting them. up
// says whether the startup check succeeded (the pool starts up, else down). Returns
// NULL if memory or events could not be had.
rl_redis_pool *rl_redis_pool_new(struct event_base *base, const rl_store_conf *conf,
                                 const char *script, size_t script_len, int up,
                                 int64_t dead_after_ms, rl_redis_pool_events events);

// Returns 1 if the pool is up, 0 if it is down.
int rl_redis_pool_up(const rl_redis_pool *pool);

// Returns the number of READY connections.
int rl_redis_pool_ready(const rl_redis_pool *pool);

// Returns the fewest commands in flight on any READY connection (SIZE_MAX if none is
// READY): below the owner's cap, a send goes out now.
size_t rl_redis_pool_least_in_flight(const rl_redis_pool *pool);

// Returns the script's SHA1 (40 hex digits), or NULL if no connection has loaded it.
const char *rl_redis_pool_sha(const rl_redis_pool *pool);

// Sends the wire-format command (len bytes at buf; copied) on the READY connection with
// the fewest commands in flight, or on conn if it is not NULL and READY. Returns RL_OK
// (cmd->fn will be called once), or RL_ERR if no connection could take it (it will not).
int rl_redis_pool_send(rl_redis_pool *pool, rl_redis_conn *conn, rl_redis_cmd *cmd, const char *buf,
                       size_t len);

/* Figures for stats. */
typedef struct rl_redis_pool_stats {
    int connections;     /* in the pool */
    int ready;           /* READY now */
    uint64_t connects;   /* handshakes completed (the first ones included) */
    uint64_t reconnects; /* handshakes completed by connections that had been lost */
    uint64_t failures;   /* connection attempts or connections that failed */
    uint64_t dead;       /* connections dropped for not answering */
    size_t in_flight;    /* commands sent and not answered */
} rl_redis_pool_stats;

// Returns the pool's figures.
rl_redis_pool_stats rl_redis_pool_figures(const rl_redis_pool *pool);

// Points the pool at host:port (copied; TCP) from now on: every connection is let go
// and connects to the new address at once (a failed connect waits the usual backoff).
// The commands in flight on the old connections get their callback once with a NULL
// reply (never resent: the owner answers them as a store error); the connections stop
// taking commands at once, and are closed (the callbacks run) from an event of the loop
// shortly after, never inside this call, so it is safe from inside any pool callback.
// The pool is down until a new connection is READY (down is reported from that event if
// it was up). Returns RL_OK, or RL_ERR if memory is short (nothing changed).
int rl_redis_pool_retarget(rl_redis_pool *pool, const char *host, uint16_t port);

// Closes every connection (in-flight callbacks are called with NULL first) and frees
// the pool. NULL is fine.
void rl_redis_pool_free(rl_redis_pool *pool);

#endif
