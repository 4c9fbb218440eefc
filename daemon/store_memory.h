/*
 * store_memory.h: the embedded store, an in-process hash table of key states.
 *
 * The default store, and the `local` fallback of the Redis store. Expired state is
 * evicted lazily on access and by an incremental sweep (rl_store_memory_sweep), so
 * memory stays bounded; at most max_keys live keys are held, and a new key past that
 * gets STORE_FULL (a live counter is never dropped, which would over-admit).
 */
#ifndef RL_STORE_MEMORY_H
#define RL_STORE_MEMORY_H

#include "store.h"

// Returns a new, empty memory store holding at most max_keys keys, or NULL if memory
// could not be had. The clock is the system's (CLOCK_REALTIME, microseconds).
rl_store *rl_store_memory_new(uint64_t max_keys);

// Like rl_store_memory_new, with a clock the caller controls (tests): *now_us is read at
// every decision.
rl_store *rl_store_memory_new_clocked(uint64_t max_keys, const int64_t *now_us);

// Evicts expired keys from up to budget hash buckets, resuming where the last sweep
// stopped. Returns the number of keys evicted.
size_t rl_store_memory_sweep(rl_store *store, size_t budget);

// Called by a sweep for each concurrency key it evicts that still listed leases (all
// expired): ns is the key's namespace (the policy), leases how many.
typedef void rl_store_memory_expired(void *arg, const char *ns, size_t ns_len, uint32_t leases);

// Sets the function sweeps call for expired leases they evict (the engine counts them
// as "expired"), or NULL for none.
void rl_store_memory_on_expired(rl_store *store, rl_store_memory_expired *fn, void *arg);

// Returns the number of keys held.
size_t rl_store_memory_count(const rl_store *store);

// Returns the most keys any one hash bucket holds (tests: a client must not be able to
// pile keys into one bucket).
size_t rl_store_memory_longest_chain(const rl_store *store);

#endif
