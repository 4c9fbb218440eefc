/*
 * store_redis.h: counters in Redis, shared by every rlimitd instance that points at
 * the same Redis, decided atomically by Lua scripts on Redis's clock.
 *
 * How a decision travels:
 *
 *   submit --> over-limit cache? --denied--> answered at once (RL_FLAG_CACHED)
 *     |                                  redis down? --> answered at once: UNAVAILABLE
 *     v
 *   queue (copies) --end of the loop iteration, or batch_max items--> one EVALSHA of
 *   the batch script (redis_script.h) per batch_max items, pipelined on the pool's
 *   least busy connection (redis_pool.h) --> reply --> one answer per submit
 *
 *   Every submit is answered within command_timeout_ms: past it, with
 *   STORE_UNAVAILABLE (a late reply is then ignored). NOSCRIPT (a restarted or flushed
 *   Redis) resends the call once as EVAL, which reloads the script. A lost connection
 *   fails its calls with STORE_UNAVAILABLE and reconnects with backoff.
 *
 * Stats (stats_json): state, requests, items, calls, items_per_call, in flight,
 * errors by kind, reconnects, cache hits, latency p50/p99 of answers from Redis.
 */
#ifndef RL_STORE_REDIS_H
#define RL_STORE_REDIS_H

#include <event2/event.h>

#include "store.h"

#define RL_REDIS_CACHE_SLOTS 4096 /* over-limit cache entries by default */

/* Knobs for tests; production uses rl_store_redis_new (all zero). */
typedef struct rl_store_redis_options {
    const int64_t *clock; /* tests: *clock (us) is the decision time sent to the script
                             and the over-limit cache's clock; NULL: Redis's TIME */
    int no_cache;         /* 1: no over-limit cache */
    int dead_after_ms;    /* a connection silent this long with commands out is dropped
                             (0: max(2 s, 20 x command_timeout_ms)) */
} rl_store_redis_options;

// Connects to the Redis in conf (synchronously, so that a wrong address or password is
// a clear startup error), loads the scripts, and returns a store driven by base's event
// loop. Returns NULL with the reason in err (errlen bytes) if Redis cannot be used.
// Redis merely unreachable (refused, timed out, loading) is not an error: the store
// starts down (answering STORE_UNAVAILABLE) and connects in the background. conf is
// copied; it need not outlive the call.
rl_store *rl_store_redis_new(struct event_base *base, const rl_store_conf *conf, char *err,
                             size_t errlen);

// Like rl_store_redis_new, with test knobs (options may be NULL).
rl_store *rl_store_redis_new_with(struct event_base *base, const rl_store_conf *conf,
                                  const rl_store_redis_options *options, char *err, size_t errlen);

#endif
