/*
 * store_redis.h: counters in Redis, shared by every rlimitd instance that points at
 * the same Redis, decided atomically by Lua scripts on Redis's clock.
 *
 * How a decision travels:
 *
 *   submit --> a single-item CHECK the over-limit cache denies? --> answered at once,
 *     |                                                            RL_FLAG_CACHED
 *     |--> Redis down? --> answered at once: STORE_UNAVAILABLE
 *     v
 *   queue (a copy) --end of the loop iteration--> one EVALSHA of the batch script
 *   (redis_script.h) per batch_max items, sent on the least busy READY connection of
 *   the pool (redis_pool.h), pipelined: at most 2 calls per connection in flight; what
 *   arrives meanwhile waits for a reply and goes out in one call, so calls grow with
 *   load --> reply --> one answer per submit, in submit order
 *
 * Every submit is answered within command_timeout_ms: past it with STORE_UNAVAILABLE
 * (a late reply is then ignored, though Redis may have counted a CHECK: a timeout
 * never admits more, it may count more). NOSCRIPT (a restarted or flushed Redis)
 * resends the call once as EVAL, which loads the script again. A lost connection fails
 * its calls with STORE_UNAVAILABLE and reconnects with backoff; a connection silent
 * for max(2 s, 20 x command_timeout_ms) with calls out is dropped and remade.
 *
 * Keys: <key_prefix>{<policy>:<key>}:<rate index>, binary-safe, one hash tag per
 * (policy, key) so an item's rates share a Redis Cluster slot (redis_batch.h). One
 * script call holds many keys, so a Cluster would need calls split by slot: not done.
 * A Redis key over RL_REDIS_MAX_KEY (4096) bytes is answered KEY_TOO_LONG.
 *
 * Stats (the stats op, as typed figures: stats.h): state, connections, requests, items,
 * calls, items_per_call, in_flight, noscript_retries, connects, reconnects, connection
 * failures, dead connections, errors by kind (down, timeout, disconnected, redis, item,
 * reply, key_too_long, internal), the cache's hits/inserts/stale, and the submit-to-answer
 * latency (count, p50, p99, max, in us) of every submit that went through the queue.
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
