/*
 * redis_forget.h: deletes every Redis key of one policy (namespace) in the
 * background, with SCAN ... MATCH <prefix>{<policy>:* and UNLINK, never blocking Redis
 * for long (COUNT 1000 per step).
 *
 * Best effort: if the connection is lost half-way the job stops (the rest expires
 * by its TTL) and the loss is logged.
 */
#ifndef RL_REDIS_FORGET_H
#define RL_REDIS_FORGET_H

#include <stddef.h>

#include "redis_pool.h"

// Starts forgetting namespace ns (ns_len bytes) under key prefix (prefix_len bytes) on
// pool. The job frees itself when done or when the pool is freed. Returns RL_OK, or
// RL_ERR if it could not start (no connection READY, out of memory).
int rl_redis_forget_start(rl_redis_pool *pool, const char *prefix, size_t prefix_len,
                          const char *ns, size_t ns_len);

#endif
