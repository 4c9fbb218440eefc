/*
 * store.h: where counters live, behind one interface: the embedded hash table
 * (store_memory.c) or Redis (store_redis.c).
 *
 * A store decides a batch of items atomically: for CHECK, every rate of every item
 * is decided first and all are consumed only if all allow (all-or-nothing, for
 * multi-rate policies and MULTI_CHECK alike). A store knows nothing of sockets,
 * policies' names beyond their use as a namespace, shadow mode or fallbacks: the
 * engine does those.
 *
 * Completion: submit calls done exactly once, either before it returns or later from
 * the event loop. The memory store always answers before returning; the Redis store
 * also does when it can answer at once (the over-limit cache denies, Redis is down, a
 * key too long, out of memory), and later otherwise. A caller must therefore not touch
 * what done may release once submit has been called. Everything an item points to need
 * only live until submit returns: an asynchronous store copies what it keeps.
 */
#ifndef RL_STORE_H
#define RL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "algo.h"
#include "config.h"
#include "rlproto.h"
#include "stats.h"

typedef enum rl_store_op {
    RL_STORE_CHECK,  /* decide and consume if every item allows */
    RL_STORE_PEEK,   /* decide, consume nothing */
    RL_STORE_ADJUST, /* add cost (signed) to every rate of the item; no decision */
    RL_STORE_RESET,  /* forget the item's state for every rate */
} rl_store_op;

/* One item of a batch, resolved against its policy by the engine. */
typedef struct rl_store_item {
    const rl_limits *limits; /* the rates the key is held to */
    const char *ns;          /* namespace of the state: the policy name */
    size_t ns_len;           /* bytes of ns */
    const char *key;         /* the key bytes */
    size_t key_len;          /* bytes of key */
    int64_t cost;            /* units (signed for ADJUST; 1..capacity otherwise) */
} rl_store_item;

/* The answer for a batch. */
typedef struct rl_store_answer {
    rl_status status;                  /* ALLOWED (all allowed), DENIED, or a store error:
                                          STORE_UNAVAILABLE, STORE_FULL, INTERNAL */
    int64_t now_us;                    /* the store's clock at the decision */
    size_t count;                      /* items answered (as submitted) */
    rl_verdict verdicts[RL_MAX_ITEMS]; /* per item, merged over its rates (if no error) */
    uint16_t flags;                    /* RL_FLAG_CACHED: denied from the over-limit cache;
                                          RL_FLAG_CAPPED: an ADJUST charge was held at the
                                          ceiling of 2 x capacity */
    const char *errstr;                /* a store error's detail, for the log, or NULL */
} rl_store_answer;

typedef struct rl_store rl_store;

// Called once per submitted batch with its answer (valid only during the call).
typedef void rl_store_done(void *arg, const rl_store_answer *answer);

/* The operations every store provides. */
typedef struct rl_store_ops {
    const char *name; /* "memory" or "redis" */
    // Decides op for items[0..n) (1 <= n <= RL_MAX_ITEMS) at the store's time. Calls
    // done(arg, answer) exactly once. Returns RL_OK, or RL_ERR if it could not take the
    // batch at all (then done is not called; the engine answers INTERNAL).
    int (*submit)(rl_store *store, rl_store_op op, const rl_store_item *items, size_t n,
                  rl_store_done *done, void *arg);
    // Optional (NULL if the store has nothing to gain): hints that the key will be
    // decided soon. Stage 0 starts loading the key's hash bucket, stage 1 (called after
    // stage 0 for a batch of keys) the key's state, so that decisions on a pipelined
    // batch do not wait on memory one key at a time. Changes nothing.
    void (*prefetch)(rl_store *store, const char *ns, size_t ns_len, const char *key,
                     size_t key_len, int stage);
    // Forgets every key of the namespace (a policy removed or changed by a reload).
    void (*forget_ns)(rl_store *store, const char *ns, size_t ns_len);
    // Fills out (zeroed by the caller) with the store's type and figures (keys,
    // evictions, latency...: stats.h), as many as it has. out->failed tells whether
    // memory ran short; the caller frees out with rl_store_figures_free.
    void (*stats)(rl_store *store, rl_store_figures *out);
    // Stops the store; done callbacks of batches still in flight are called with
    // STORE_UNAVAILABLE before it returns. Frees it.
    void (*free)(rl_store *store);
} rl_store_ops;

/* The common head of every store. */
struct rl_store {
    const rl_store_ops *ops; /* its operations */
};

#endif
