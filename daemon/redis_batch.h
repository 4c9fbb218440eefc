/*
 * redis_batch.h: store batches (requests) as the Redis store keeps them, and the
 * script call that carries many of them.
 *
 * No I/O: a request copies what a submit hands over; rl_redis_call_encode writes one
 * EVALSHA (or EVAL) command in Redis's wire format for a run of requests;
 * rl_redis_call_decode checks a reply against those requests and turns it into one
 * answer per request.
 *
 * Redis key of rate r of an item: <prefix>{<policy>:<key>}:<r>. The hash tag keeps
 * every rate of one (policy, key) in one Redis Cluster slot. Key bytes go in as they
 * are; in the policy name the bytes ':', '{', '}' and '%' are written %XX, so that no
 * two (policy, key) pairs share a name (a plain policy name is unchanged). A Redis key
 * longer than RL_REDIS_MAX_KEY bytes is refused with KEY_TOO_LONG. A concurrency
 * rate's key (rate 0 of its policy) is a sorted set of its leases (redis_script.lua).
 */
#ifndef RL_REDIS_BATCH_H
#define RL_REDIS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define RL_REDIS_MAX_KEY 4096 /* bytes of one Redis key, prefix and rate index included */

/* One item, copied. */
typedef struct rl_redis_item {
    rl_limits limits; /* the rates (a copy) */
    int64_t cost;     /* units */
    uint64_t lease;   /* ACQUIRE, RELEASE, RENEW: the lease id; 0 otherwise */
    int64_t at_us;    /* REFUND: when the CHECK given back was decided; 0 otherwise */
    const char *ns;   /* policy name bytes (into the request's block) */
    size_t ns_len;    /* bytes of ns */
    const char *key;  /* key bytes (into the request's block) */
    size_t key_len;   /* bytes of key */
    const char *rkey; /* "<prefix>{<ns>:<key>}:" (into the request's block) */
    size_t rkey_len;  /* bytes of rkey */
} rl_redis_item;

/* One submit: its items, its callback, and where it is in the store's lists. */
typedef struct rl_redis_request {
    struct rl_redis_request *prev, *next; /* the store's unanswered list, oldest first */
    struct rl_redis_request *queue_next;  /* the store's queue of requests not yet sent */
    rl_store_done *done;                  /* called once with the answer */
    void *arg;                            /* its argument */
    int64_t submitted_us;                 /* monotonic clock at submit */
    uint64_t seq;                         /* the store's submit order (cluster calls are
                                             sorted by slot, then by it) */
    uint64_t cache_stamp;                 /* single CHECK: the cache's stamp at submit */
    rl_store_op op;                       /* what to do */
    uint16_t slot;                        /* Redis Cluster: the slot of its keys (set by
                                             the store; all its items share it) */
    uint8_t route;                        /* Redis Cluster: how it is sent (RL_ROUTE_*
                                             of store_redis_int.h) */
    uint8_t hops;                         /* Redis Cluster: redirects followed */
    uint8_t resend;                       /* Redis Cluster: its node call answered it
                                             REDIRECT: 1 unwritten, 2 after a write */
    uint8_t answered;                     /* done was called */
    uint8_t uncached;                     /* a part of a split request: a denial of it is
                                             not remembered in the over-limit cache */
    uint8_t alone;                        /* ACQUIRE: its answer came on an absent set
                                             (set by the decode); RELEASE: of a lease
                                             acquired so by this store (set by the store;
                                             a hint: sent as RL_REDIS_OP_RELEASE_ALONE) */
    uint8_t count;                        /* items */
    rl_redis_item items[];                /* then the names' bytes */
} rl_redis_request;

// Writes the policy name ns (len bytes) as it appears in Redis keys (':', '{', '}', '%'
// as %XX) to out, if out is not NULL. Returns the bytes it takes.
size_t rl_redis_ns_escape(const char *ns, size_t len, char *out);

// Writes s (len bytes) with Redis glob specials (* ? [ ] \) backslash-escaped to out (if
// not NULL), so that it matches itself in a SCAN MATCH pattern; returns the bytes.
size_t rl_redis_glob_escape(const char *s, size_t len, char *out);

// Copies a submit into one allocation. Returns the request (free with rl_free), or NULL
// with *status KEY_TOO_LONG (a Redis key over RL_REDIS_MAX_KEY) or INTERNAL (memory).
rl_redis_request *rl_redis_request_new(rl_store_op op, const rl_store_item *items, size_t n,
                                       const char *prefix, size_t prefix_len, rl_status *status);

/* A command being built: a growable buffer. */
typedef struct rl_redis_cmdbuf {
    char *data; /* the bytes (owned; rl_free) */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} rl_redis_cmdbuf;

// Writes the script call for reqs[0..count) to buf (emptied first): EVALSHA with sha
// (40 hex digits), or EVAL with the script's source if sha is NULL; now_us is the
// decision time (0: Redis's TIME). Returns RL_OK, or RL_ERR if memory ran out.
int rl_redis_call_encode(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                         const char *sha, int64_t now_us);

// Like rl_redis_call_encode, for a Redis Cluster node, with the cluster variant of the
// script (rl_redis_cluster_script for EVAL). declared: the keys are declared as KEYS
// (all requests must be of one slot: Redis checks them before running, answering
// MOVED, ASK or TRYAGAIN). Otherwise (a node call) the keys go in ARGV, grouped in runs
// of one slot: reqs must be ordered so that requests of a slot are adjacent (their
// order within the slot kept), and a run Redis does not serve whole here is answered
// RL_REDIS_REDIRECT by the script, unwritten (rl_redis_call_decode: RL_ST_INTERNAL with
// errstr starting with RL_REDIS_REDIRECT).
int rl_redis_call_encode_cluster(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                                 const char *sha, int64_t now_us, int declared);

// Called per request by rl_redis_call_decode with its answer (valid during the call).
typedef void rl_redis_answer_fn(void *arg, rl_redis_request *req, rl_store_answer *answer);

struct redisReply;

// Checks reply (the script's answer to the call for reqs[0..count)) whole, then calls
// fn(arg, req, answer) for each request in order. Returns RL_OK, or RL_ERR with a
// reason in *errstr (static) if the reply is not what the script returns (nothing is
// answered then).
int rl_redis_call_decode(const struct redisReply *reply, rl_redis_request *const *reqs,
                         size_t count, rl_redis_answer_fn *fn, void *arg, const char **errstr);

#endif
