/*
 * redis_script.h: the Lua script that decides batches of items inside Redis.
 *
 * One EVALSHA decides many store batches (submits), one after the other, at one
 * instant; redis_batch.c writes the call and reads the reply. The script's source,
 * with the call's arguments, its reply and the state kept in Redis described at its
 * top, is daemon/redis_script.lua; the build compiles it in (redis_script.c).
 *
 * The numbers below are the C side of the call's layout; the script has its own copy
 * of each (and of rl_algorithm and rl_store_op), which tests/unit/test_redis_script.c
 * checks against these.
 */
#ifndef RL_REDIS_SCRIPT_H
#define RL_REDIS_SCRIPT_H

#include <stddef.h>

#define RL_REDIS_RATE_ARGS 4        /* arguments per rate: algorithm, limit, period_us, burst */
#define RL_REDIS_BATCH_ARGS 2       /* arguments of a batch before its items: op, item count */
#define RL_REDIS_ITEM_ARGS 2        /* arguments per item: its limit set, cost */
#define RL_REDIS_VERDICT_FIELDS 4   /* integers per rate in the reply */
#define RL_REDIS_COMPACT_FIELDS 3   /* integers per item in a compact call's reply */
#define RL_REDIS_CAPPED 2           /* added to a verdict's allowed field: the charge was capped */
#define RL_REDIS_REMAINING_SCALE 2  /* compact reply: first field = remaining * this + allowed */
#define RL_REDIS_COMPANION_MARK '#' /* ends a sliding log's companion key */
#define RL_REDIS_LEASE_ARGS 1       /* arguments after a lease item's: the lease id */
#define RL_REDIS_LEASE_FIELDS 6     /* integers per lease item in the reply */
#define RL_REDIS_LEASE_UNKNOWN 2    /* a lease item's outcome: the lease is not held */
#define RL_REDIS_MAX_LEASES                                                                        \
    10000 /* members of a lease set read at most: the highest                                      \
             concurrency limit (each lease holds a slot) */

#define RL_REDIS_CLUSTER_MARK "K" /* ARGV[1] of a cluster node call: keys in ARGV */
#define RL_REDIS_LEASE_MARK "L"   /* before the batch count of a call in the lease form */
#define RL_REDIS_LEASE_OPS 8      /* lease form code: op + this x (set - 1 + sets x cost) */
#define RL_REDIS_OP_RELEASE_ALONE                                                                  \
    7 /* lease form op: a RELEASE whose lease this store acquired on an absent set (so the set     \
         is likely that lease alone: ZPOPMIN first) */
#define RL_REDIS_LEASE_RUN "*"  /* lease form: "<code>*<n>" heads a run of n batches */
#define RL_REDIS_LEASE_SCALE 16 /* lease form reply: remaining x this + outcome x 2 + expired */
#define RL_REDIS_LEASE_SHORT                                                                       \
    6 /* lease form reply: remaining x RL_REDIS_LEASE_SCALE + this: allowed, reset_after the       \
         lease, nothing follows; + this + 1: the same with reset_after 0 */
#define RL_REDIS_REDIRECT                                                                          \
    "REDIRECT " /* starts a batch's status the script did not run:                                 \
                   its slot is not (or no longer all) here */
/* The first line of the cluster variant: a node call touches many slots of its node. */
#define RL_REDIS_CLUSTER_SHEBANG "#!lua flags=allow-cross-slot-keys\n"

// The script as sent to Redis (redis_script.lua without its comments and blanks),
// NUL-terminated, and its length.
extern const char rl_redis_script[];
extern const size_t rl_redis_script_len;

// The same script for Redis Cluster: RL_REDIS_CLUSTER_SHEBANG, then rl_redis_script (so
// Redis's line numbers are one more than the file's).
extern const char rl_redis_cluster_script[];
extern const size_t rl_redis_cluster_script_len;

#endif
