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
    RL_STORE_RESET,  /* forget the item's state for every rate (a concurrency key: every
                        lease of the key) */
    /* Concurrency policies (rate algorithm RL_ALGO_CONCURRENCY), one item per batch: */
    RL_STORE_ACQUIRE, /* hold cost slots as lease item.lease until now + the lease
                         (the rate's period_us) if they fit in limit: ALLOWED, else DENIED */
    RL_STORE_RELEASE, /* end lease item.lease: ALLOWED, or LEASE_UNKNOWN if not held */
    RL_STORE_RENEW,   /* move lease item.lease's expiry to now + the lease: ALLOWED, or
                         LEASE_UNKNOWN if not held */
    /* Redis Cluster only (a split MULTI_CHECK's give-back; the embedded store answers
       INTERNAL): */
    RL_STORE_REFUND, /* give back cost units a CHECK consumed at item.at_us (the store's
                        clock), as far as they still count now: never more */
} rl_store_op;

/* One item of a batch, resolved against its policy by the engine. */
typedef struct rl_store_item {
    const rl_limits *limits; /* the rates the key is held to */
    const char *ns;          /* namespace of the state: the policy name */
    size_t ns_len;           /* bytes of ns */
    const char *key;         /* the key bytes */
    size_t key_len;          /* bytes of key */
    int64_t cost;            /* units (signed for ADJUST; 1..capacity otherwise; the
                                slots for ACQUIRE; 0 for RELEASE/RENEW) */
    uint64_t lease;          /* ACQUIRE: the new lease's id (chosen by the engine, never
                                0); RELEASE/RENEW: the id named; REFUND of a one-rate
                                token bucket or gcra item: its tat after the decision
                                (at_us + its reset_after), 0 if not known; 0 otherwise */
    int64_t at_us;           /* REFUND: when the CHECK given back was decided (the
                                answer's now_us); 0 otherwise */
} rl_store_item;

/* The answer for a batch. */
typedef struct rl_store_answer {
    rl_status status;                  /* ALLOWED (all allowed), DENIED, LEASE_UNKNOWN
                                          (RELEASE/RENEW of a lease not held: unknown,
                                          expired or released; nothing changed), or a
                                          store error: STORE_UNAVAILABLE, STORE_FULL,
                                          INTERNAL */
    int64_t now_us;                    /* the store's clock at the decision */
    size_t count;                      /* items answered (as submitted) */
    rl_verdict verdicts[RL_MAX_ITEMS]; /* per item, merged over its rates (if no error).
                                          Leases (also with LEASE_UNKNOWN): limit = the
                                          key's slots, remaining = free slots after the
                                          op, window = the lease; reset_after = until this
                                          lease expires (ACQUIRE allowed, RENEW), until the
                                          last held lease expires (ACQUIRE denied,
                                          RELEASE; 0 if none); retry_after (ACQUIRE
                                          denied) = until enough held leases have expired
                                          for its slots to fit (1 slot: the earliest
                                          expiry; algo_lease.h) */
    uint32_t leases_expired;           /* leases ops: leases of the key this call found
                                          expired and dropped (the engine counts them
                                          "expired"); 0 otherwise */
    uint64_t slots_expired;            /* leases ops: the slots those leases held */
    uint32_t leases_ended;             /* RESET of a concurrency key: the leases it ended
                                          (neither expired nor released); 0 otherwise */
    uint16_t flags;                    /* RL_FLAG_CACHED: denied from the over-limit cache;
                                          RL_FLAG_CAPPED: an ADJUST charge was held at the
                                          ceiling of 2 x capacity */
    const char *errstr;                /* a store error's detail, for the log, or NULL */
} rl_store_answer;

typedef struct rl_store rl_store;

/* One held lease, as the LEASES listing reports it. */
typedef struct rl_store_lease {
    const char *key;       /* the key's bytes (valid only during the done call) */
    size_t key_len;        /* bytes of key */
    uint64_t id;           /* the lease id */
    uint64_t slots;        /* slots it holds */
    int64_t expires_in_us; /* until it expires, on the store's clock */
} rl_store_lease;

/* The answer to a LEASES listing. */
typedef struct rl_store_lease_list {
    rl_status status;             /* OK, or a store error (STORE_UNAVAILABLE, INTERNAL) */
    const rl_store_lease *leases; /* the leases held now (valid only during the call) */
    size_t count;                 /* entries in leases */
    int truncated;                /* more were held than max */
    const char *errstr;           /* a store error's detail, or NULL */
} rl_store_lease_list;

// Called once per listing with its answer (valid only during the call).
typedef void rl_store_leases_done(void *arg, const rl_store_lease_list *list);

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
    // Optional (NULL if the store cannot list leases: the engine answers INTERNAL): lists
    // the leases held now in namespace ns for key (or for every key if key_len is 0), at
    // most max of them. Calls done exactly once, possibly before returning. Returns RL_OK,
    // or RL_ERR if it could not take the request (done is not called).
    int (*leases)(rl_store *store, const char *ns, size_t ns_len, const char *key, size_t key_len,
                  size_t max, rl_store_leases_done *done, void *arg);
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
