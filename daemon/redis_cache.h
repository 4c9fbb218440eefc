/*
 * redis_cache.h: the over-limit cache of the Redis store (like envoy's).
 *
 * When Redis denies a single-item CHECK with retry_after R, the item (policy, key,
 * limits) is remembered as denied until R after the call was sent (a time at or before
 * Redis's decision, so never later than Redis would say). Until then a CHECK of the
 * same item with a cost at least the cached one is denied locally, without Redis: its
 * verdict is the cached one with retry_after and reset_after counted down. The cache
 * only ever denies, so it never admits what Redis would deny; a RESET or ADJUST of the
 * item, a forgotten namespace, or a changed limit drops the entry. A denial that another
 * instance lifts early (RESET elsewhere) is still honoured here until its retry time.
 * With a larger cost than the cached one, retry_after is a lower bound (the cached
 * cost's retry time); a retry then goes to Redis again.
 *
 * A fixed table of slots, direct-mapped by a hash of (policy, key): a new denial
 * overwrites whatever held its slot. No I/O, no clock: every time is passed in.
 */
#ifndef RL_REDIS_CACHE_H
#define RL_REDIS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "redis_batch.h"

#define RL_REDIS_CACHE_NAME_MAX 200 /* policy + key bytes at most; longer items are not cached */

typedef struct rl_redis_cache rl_redis_cache;

// Returns a cache of slots entries (rounded up to a power of two), or NULL if memory
// could not be had.
rl_redis_cache *rl_redis_cache_new(size_t slots);

// Frees the cache. NULL is fine.
void rl_redis_cache_free(rl_redis_cache *cache);

// Returns the stamp of the item's slot: a value that changes whenever the entry is
// dropped. Take it at submit and give it to insert, so that a denial that was in flight
// while the item was reset is not remembered.
uint64_t rl_redis_cache_stamp(const rl_redis_cache *cache, const rl_store_item *item);

// If a CHECK of item at now (cache time, microseconds) is denied by the cache, fills
// *out with the verdict, *store_now with Redis's estimated clock, and returns 1.
// Returns 0 otherwise.
int rl_redis_cache_lookup(rl_redis_cache *cache, const rl_store_item *item, int64_t now,
                          rl_verdict *out, int64_t *store_now);

// Remembers that Redis denied item (cost item->cost) with verdict v on its clock
// store_now, in a call sent at sent (cache time). Ignored if stamp (from
// rl_redis_cache_stamp at submit) is out of date, or v has no retry time.
void rl_redis_cache_insert(rl_redis_cache *cache, const rl_redis_item *item, uint64_t stamp,
                           int64_t sent, int64_t store_now, const rl_verdict *v);

// Drops what the cache knows of item (a RESET or ADJUST of it).
void rl_redis_cache_drop(rl_redis_cache *cache, const rl_store_item *item);

// Drops every entry of namespace ns (ns_len bytes).
void rl_redis_cache_forget_ns(rl_redis_cache *cache, const char *ns, size_t ns_len);

/* Figures for stats. */
typedef struct rl_redis_cache_stats {
    uint64_t hits;    /* CHECKs denied from the cache */
    uint64_t inserts; /* denials remembered */
    uint64_t stale;   /* denials not remembered: the item changed while in flight */
    size_t slots;     /* table size */
} rl_redis_cache_stats;

// Returns the cache's figures.
rl_redis_cache_stats rl_redis_cache_figures(const rl_redis_cache *cache);

#endif
