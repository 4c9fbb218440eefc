/*
 * store_redis.h: counters in Redis, shared by every rlimitd instance that points at
 * the same Redis, decided atomically by Lua scripts on Redis's clock.
 */
#ifndef RL_STORE_REDIS_H
#define RL_STORE_REDIS_H

#include <event2/event.h>

#include "store.h"

// Connects to the Redis in conf (synchronously, so that a wrong address or password is
// a clear startup error), loads the scripts, and returns a store driven by base's event
// loop. Returns NULL with the reason in err (errlen bytes) if Redis cannot be used.
rl_store *rl_store_redis_new(struct event_base *base, const rl_store_conf *conf, char *err,
                             size_t errlen);

#endif
