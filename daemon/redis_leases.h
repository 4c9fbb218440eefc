/*
 * redis_leases.h: the LEASES listing of the Redis store, with plain commands on the
 * store's pool (the batch script is not involved).
 *
 * First TIME (Redis's clock), then per lease set <prefix>{<escaped policy>:<key>}:0
 * ZRANGEBYSCORE <set> (<now> +inf WITHSCORES LIMIT 0 <what is still wanted + 1>, so
 * expired members are left out by Redis and no reply is larger than the listing needs.
 * With a key, that one set. Without one, the policy's sets are found with SCAN MATCH
 * <prefix>{<escaped policy>:*}:0 COUNT 1000, at most RL_REDIS_LEASES_SCANS rounds and
 * RL_REDIS_LEASES_KEYS sets, no new round after half of the deadline; whatever bound
 * stops the walk early marks the listing truncated, as do leases past max.
 *
 * Up to 32 set reads are pipelined on one connection; the store is told after each reply
 * (replied), so that script calls held back by them are sent.
 *
 * Answered once, within the deadline: past it, or when a connection is lost, with
 * STORE_UNAVAILABLE.
 */
#ifndef RL_REDIS_LEASES_H
#define RL_REDIS_LEASES_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_pool.h"
#include "store.h"

#define RL_REDIS_LEASES_SCANS 100 /* SCAN rounds of one listing at most */
#define RL_REDIS_LEASES_KEYS 2000 /* lease sets read by one listing at most */

/* What one listing asks. */
typedef struct rl_redis_leases_query {
    const char *prefix;         /* the store's key prefix */
    size_t prefix_len;          /* its bytes */
    const char *ns;             /* the policy name */
    size_t ns_len;              /* its bytes */
    const char *key;            /* the key, or NULL/empty for every key of the policy */
    size_t key_len;             /* its bytes */
    size_t max;                 /* leases listed at most */
    int64_t timeout_us;         /* the deadline, from now */
    void (*replied)(void *arg); /* called after each reply to the listing's commands, or NULL:
                                   its reads in flight count against the pool's connections */
    void *replied_arg;          /* its argument */
} rl_redis_leases_query;

// Starts listing q's leases on pool (events on base); calls done(arg, list) exactly
// once, possibly before returning. The job frees itself (also when the pool is freed).
// Returns RL_OK, or RL_ERR if it could not start (done is not called).
int rl_redis_leases_start(rl_redis_pool *pool, struct event_base *base,
                          const rl_redis_leases_query *q, rl_store_leases_done *done, void *arg);

#endif
