/*
 * store_redis_int.h: the Redis store's insides, shared by its three parts:
 *   store_redis.c    the store: queues, script calls, answers, deadlines, stats;
 *   redis_cluster.c  Redis Cluster: the node table, the slot map and its refreshes,
 *                    redirects (MOVED, ASK, TRYAGAIN) and the retry timer;
 *   redis_split.c    a MULTI_CHECK (or multi-item PEEK) whose items lie in several
 *                    slots: one part per slot, and the refund of the parts that were
 *                    consumed when another was refused.
 * Nothing here is for other modules (store_redis.h is the interface).
 */
#ifndef RL_STORE_REDIS_INT_H
#define RL_STORE_REDIS_INT_H

#include <event2/event.h>
#include <stdint.h>

#include "redis_batch.h"
#include "redis_cache.h"
#include "redis_pool.h"
#include "redis_topo.h"
#include "store.h"

#define RL_REDIS_LATENCY_BUCKETS 104 /* 4 per power of two up to 2^26 us */
#define RL_REDIS_MAX_HOPS 5          /* redirects one request may follow */
#define RL_REDIS_HOST_MAX 256        /* bytes of a node's host name, NUL included */
#define RL_REDIS_ALONE_SLOTS 65536   /* lease ids remembered for a RELEASE hint (512 KB) */

/* How a request is sent (cluster): with others in a node call, or alone in a call
   with its keys declared (after a redirect), after ASKING (an ASK redirect). */
enum { RL_ROUTE_NODE, RL_ROUTE_DECLARED, RL_ROUTE_ASKING };

/* Store errors by kind: each counts the submits answered with it. */
typedef struct rl_redis_errors {
    uint64_t down;         /* answered at once: Redis (the key's node) was down */
    uint64_t timeout;      /* no reply within command_timeout_ms */
    uint64_t disconnected; /* the connection was lost with the call in flight */
    uint64_t redis;        /* Redis answered the call with an error */
    uint64_t item;         /* a command failed inside the script: that request only */
    uint64_t reply;        /* the reply was not what the script returns */
    uint64_t key_too_long; /* a Redis key over RL_REDIS_MAX_KEY */
    uint64_t internal;     /* out of memory */
    uint64_t unrouted;     /* cluster: no master known for the key's slot */
} rl_redis_errors;

/* Cluster figures. */
typedef struct rl_redis_cluster_counts {
    uint64_t moved;            /* MOVED redirects followed */
    uint64_t ask;              /* ASK redirects followed */
    uint64_t tryagain;         /* TRYAGAIN answers (retried after a pause) */
    uint64_t redirected;       /* requests a node call answered REDIRECT (resent alone) */
    uint64_t partial;          /* of those, batches that failed after writing (over-count) */
    uint64_t readonly;         /* calls refused by a replica (resent after a refresh) */
    uint64_t hops_exhausted;   /* requests answered STORE_UNAVAILABLE after too many hops */
    uint64_t refreshes;        /* topology refreshes completed */
    uint64_t refresh_failures; /* refreshes that got no usable answer */
    uint64_t topology_changes; /* refreshes that changed the slot map */
    uint64_t split;            /* multi-item requests split over several slots */
    uint64_t refunds;          /* parts given back after another part was refused */
    uint64_t refund_failures;  /* give-backs that failed (their units stay counted) */
} rl_redis_cluster_counts;

typedef struct redis_store redis_store;

/* One Redis server the store sends to: the Redis of the url (or the Sentinels'
   master), or a node of the cluster. */
typedef struct rl_redis_node {
    redis_store *store;                        /* its store */
    rl_redis_pool *pool;                       /* its connections */
    char addr[RL_REDIS_HOST_MAX + 8];          /* "host:port", for logs and stats */
    char host[RL_REDIS_HOST_MAX];              /* host */
    uint16_t port;                             /* port */
    int master;                                /* cluster: serves slots now */
    size_t slots;                              /* cluster: how many */
    rl_redis_request *queue_head, *queue_tail; /* requests not sent yet, oldest first */
    size_t calls_out;                          /* script calls in flight */
    uint64_t calls;                            /* script calls sent */
    uint64_t call_items;                       /* items in them */
    uint64_t call_errors;                      /* calls answered with an error or lost */
    uint64_t latency_sum_us;                   /* call round trips, summed */
    uint64_t latency_calls;                    /* round trips measured */
    int64_t latency_max_us;                    /* the longest */
} rl_redis_node;

/* One script call in flight. */
typedef struct rl_redis_call {
    rl_redis_cmd cmd;         /* first: the pool hands it back */
    rl_redis_cmd asking;      /* ASKING sent before it on the same connection */
    redis_store *store;       /* its store */
    rl_redis_node *node;      /* where it went */
    int route;                /* RL_ROUTE_* (all its requests share it) */
    int retried;              /* resent as EVAL after NOSCRIPT */
    int asking_out;           /* its ASKING has not been answered yet */
    int orphan;               /* freed by its owner while asking_out: on_asking_reply frees */
    int64_t sent_us;          /* monotonic clock when sent */
    int64_t sent_clock;       /* cache clock when first sent */
    int64_t now_override;     /* the decision time sent (tests), or 0 */
    size_t count;             /* requests */
    rl_redis_request *reqs[]; /* the requests, in the order the call holds them */
} rl_redis_call;

struct redis_store {
    rl_store base;                      /* the interface */
    struct event_base *ev;              /* the loop */
    rl_store_conf conf;                 /* a node's connection settings (strings borrowed
                                           from the owned copies below; host per node) */
    char *username, *password;          /* owned copies */
    rl_redis_node **nodes;              /* node 0: the single Redis; cluster: every node met */
    size_t node_count;                  /* entries in nodes */
    int cluster;                        /* the store is on a Redis Cluster */
    size_t masters;                     /* cluster: nodes serving slots now (node->master) */
    struct rl_redis_sentinel *sentinel; /* Sentinel mode: follows the master, or NULL */
    int16_t *owner;                     /* cluster: node index per slot, -1 unknown */
    rl_redis_cache *cache;              /* over-limit cache, or NULL */
    const int64_t *clock;               /* tests: the decision time; NULL: Redis's TIME */
    char *prefix;                       /* key prefix (owned) */
    size_t prefix_len;                  /* its bytes */
    int64_t timeout_us;                 /* command_timeout_ms */
    int64_t dead_after_ms;              /* a pool's dead-connection limit */
    size_t batch_max;                   /* items per script call at most */
    rl_redis_request *oldest, *newest;  /* unanswered requests, in submit order */
    rl_redis_request *retry_head;       /* cluster: requests waiting out a TRYAGAIN or a
                                           refresh, resent by retry_timer */
    rl_redis_request *retry_tail;       /* the newest of them */
    struct event *flush;                /* sends the queues at the end of the loop iteration */
    struct event *expiry;               /* answers the oldest request at its deadline */
    struct event *retry_timer;          /* cluster: resends the retry list */
    struct event *refresh_timer;        /* cluster: the next topology refresh */
    struct rl_redis_refresh *refresh;   /* cluster: the CLUSTER SHARDS in flight, or NULL */
    struct event *refresh_deadline;     /* cluster: gives up on it (another node is asked) */
    uint64_t refresh_asks;              /* cluster: topology questions sent */
    int64_t refresh_last_us;            /* when the last refresh was sent */
    int refresh_soon;                   /* a refresh was asked for while one ran */
    int submitting_part;                /* cluster: redis_split.c is submitting a part */
    int flush_scheduled;                /* flush is active */
    int closing;                        /* free has begun: submit refuses */
    rl_redis_cmdbuf buf;                /* the command being built (reused) */
    uint64_t seq;                       /* requests numbered in submit order */
    uint64_t requests;                  /* submits */
    uint64_t items;                     /* items submitted */
    uint64_t calls;                     /* script calls sent */
    uint64_t call_items;                /* items sent in script calls */
    uint64_t noscript;                  /* calls resent as EVAL after NOSCRIPT */
    uint64_t forgets;                   /* namespaces forgotten */
    rl_redis_errors errors;             /* see above */
    rl_redis_cluster_counts cl;         /* cluster figures */
    uint64_t latency[RL_REDIS_LATENCY_BUCKETS]; /* submit-to-answer times from Redis */
    uint64_t latency_count;                     /* answers counted in latency */
    int64_t latency_max;                        /* the longest, us */
    int64_t log_second;                         /* the second of the last rate-limited log line */
    uint64_t log_suppressed;                    /* rate-limited lines not written */
    uint64_t *alone; /* ids of leases this store acquired on an absent set, at id &
                        (RL_REDIS_ALONE_SLOTS - 1) (a hint for their RELEASE; a newer id
                        takes the place of an older one), or NULL until the first */
};

/* ---- store_redis.c ---- */

// Logs a warning, at most one line a second (the others are counted and reported).
__attribute__((format(printf, 2, 3))) void rl_redis_log_limited(redis_store *s, const char *fmt,
                                                                ...);
// Answers req with a store error status (errstr for the log) unless it was answered.
void rl_redis_answer_error(redis_store *s, rl_redis_request *req, rl_status status,
                           const char *errstr);
// Puts req (unanswered, owned by nobody) at the end of node's queue and schedules a flush.
void rl_redis_node_enqueue(rl_redis_node *node, rl_redis_request *req);
// Creates a node for host:port with its pool (connecting in the background); NULL if
// memory or events could not be had. script: the variant its pool loads.
rl_redis_node *rl_redis_node_new(redis_store *s, const char *host, uint16_t port, int up);
// Takes req into the store: the unanswered list, its deadline, and the queue of the node
// that serves it (or answers it at once if none can). Returns nothing: done is called.
void rl_redis_route(redis_store *s, rl_redis_request *req);

/* ---- redis_cluster.c ---- */

// Startup: asks the seeds in turn for the topology (synchronously, each within
// connect_timeout_ms) and makes a node (with its pool) for every master. Returns RL_OK,
// RL_AGAIN (no seed answered: the store starts down and keeps asking), or RL_ERR with
// the reason in err (a seed refused us: password, scripting).
int rl_redis_cluster_start(redis_store *s, const rl_store_conf *conf, char *err, size_t errlen);
// Returns the node serving slot, or NULL (none known: a refresh is asked for).
rl_redis_node *rl_redis_cluster_owner(redis_store *s, uint16_t slot);
// Asks for a topology refresh (soon, never two at once, at most one per 100 ms).
void rl_redis_cluster_refresh(redis_store *s);
// A call's error reply: follows MOVED/ASK, waits out TRYAGAIN, refreshes on READONLY.
// Returns 1 if req was taken (requeued or waiting; it belongs to the store again), 0 if
// the error is not a redirect (the caller answers it).
int rl_redis_cluster_redirect(redis_store *s, rl_redis_call *c, rl_redis_request *req,
                              const char *error);
// A node call's request answered RL_REDIS_REDIRECT (or "non local key") by the script:
// resent alone with declared keys. Returns 1 if taken, 0 if it must be answered (hops).
int rl_redis_cluster_resend(redis_store *s, rl_redis_request *req, int partial);
// A node's pool went down or came up: refresh (cluster).
void rl_redis_cluster_node_event(redis_store *s, rl_redis_node *node);
// Adds the cluster's figures (nodes, slots, redirects, refreshes) to out.
void rl_redis_cluster_figures(const redis_store *s, rl_store_figures *out);
// Stops the cluster's timers and frees the retry list's requests (answered already).
void rl_redis_cluster_stop(redis_store *s);

/* ---- redis_split.c ---- */

// Submits a multi-item CHECK or PEEK whose items lie in several slots (slots[i]: item
// i's) as one part per slot, answering done once with the whole (a refused CHECK gives back what
// its other parts consumed). Returns RL_OK (done will be called) or RL_ERR (out of memory, done not
// called).
int rl_redis_split_submit(redis_store *s, rl_store_op op, const rl_store_item *items, size_t n,
                          const uint16_t *slots, rl_store_done *done, void *arg);

#endif
