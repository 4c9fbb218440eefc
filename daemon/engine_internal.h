/*
 * engine_internal.h: the engine's state, shared by its three files. Not an interface
 * for other modules.
 *
 *   engine.c        the opcode table and the path of a request: validation, the store
 *                   batch, fallbacks, shadow mode, the response
 *   engine_stats.c  what every answer feeds: the per-policy counters, the top-keys
 *                   summaries (TOP), the denial log; the stats snapshot (STATS, /metrics)
 *   engine_admin.c  the admin opcodes (POLICIES, STATS, TOP, RELOAD) and reload
 *   engine_lease.c  concurrency leases: lease ids, LEASES, release on disconnect (the
 *                   lease counters are engine_stats.c's)
 */
#ifndef RL_ENGINE_INTERNAL_H
#define RL_ENGINE_INTERNAL_H

#include "denylog.h"
#include "engine.h"
#include "stats.h"
#include "store.h"
#include "topk.h"

/* A config with its counters, referenced by the engine and by requests in flight. */
typedef struct conf_ref {
    rl_config *config;            /* the config (owned) */
    rl_policy_counters *counters; /* per policy, parallel to config->policies */
    int refs;                     /* holders: the engine while current, plus pendings */
} conf_ref;

/* One item of a request in flight. */
typedef struct slot {
    const rl_policy *policy; /* resolved policy (in the pending's conf) */
    const rl_limits *limits; /* the limits the key is held to */
    const char *key;         /* key bytes: the request's, or the pending's copy */
    uint16_t key_len;        /* bytes of key */
    int64_t cost;            /* units */
    rl_status status;        /* validation status */
    uint16_t flags;          /* RL_FLAG_* known so far */
    uint8_t batch_index;     /* index in the store batch */
    rl_verdict verdict;      /* the decision */
} slot;

/* A request in flight. */
typedef struct pending {
    struct pending *next_free; /* free list link */
    struct rl_engine *engine;  /* owner */
    conf_ref *conf;            /* the config it is decided under (a reference) */
    rl_engine_reply *reply;    /* where the answer goes */
    void *arg;                 /* reply's argument */
    rl_store *store;           /* the store the current pass went to */
    uint32_t id;               /* request id */
    uint8_t opcode;            /* opcode */
    rl_store_op opcode_store;  /* what the store is asked (PEEK when a key is blocked) */
    uint8_t item_count;        /* slots in use */
    uint32_t perms;            /* the connection's permissions (RL_PERM_*) */
    uint8_t submitting;        /* store submits on the stack: the store may answer (and the
                                  request be answered) before they return, so the pending
                                  is released only once the outermost has returned */
    uint8_t answered;          /* replied while submitting: release it when submit returns */
    uint8_t pass;              /* 0 first, 1 the shadow second pass */
    uint8_t fallback;          /* answered under on_store_error */
    uint8_t keys_lost;         /* could not copy keys for a later pass */
    uint8_t acquired;          /* ACQUIRE: the store took the lease (answer its id) */
    uint8_t on_close;          /* RELEASE sent by the engine for a closed connection */
    rl_status lease_status;    /* RELEASE/RENEW: the store's OK or LEASE_UNKNOWN */
    uint64_t lease;            /* ACQUIRE: the new lease's id; RELEASE/RENEW: the id named */
    rl_status error;           /* the request's error status, or OK */
    char *keys;                /* copies of the keys for a later pass (owned) */
    char *text;                /* admin answer text (owned) */
    slot slots[RL_MAX_ITEMS];  /* the items */
} pending;

struct rl_engine {
    struct event_base *base;      /* the event loop */
    conf_ref *conf;               /* the config in force */
    rl_store *store;              /* the configured store */
    rl_store *local;              /* the embedded store (the store itself when memory) */
    struct event *sweep;          /* evicts expired keys of the embedded store */
    pending *free_list;           /* released pendings for reuse */
    size_t in_flight;             /* pendings in use */
    uint64_t refused;             /* frames answered before decoding (BUSY, too large...) */
    uint64_t reloads;             /* successful reloads */
    uint64_t reload_failures;     /* refused reloads */
    uint64_t refused_peers;       /* connections refused for their peer's uid/gid */
    uint64_t auth_failures;       /* wrong tokens (AUTH, HTTP bearer) */
    int64_t started_us;           /* when the engine started (real time) */
    int store_down;               /* the store reported an error last */
    uint64_t local_errors;        /* embedded store errors not logged yet */
    int64_t last_local_error_log; /* when the last such line was written (monotonic us) */
    int (*reload)(void *arg, char *err, size_t errlen); /* the daemon's reload */
    void *reload_arg;                                   /* reload's argument */
    rl_topk **tops;                   /* per policy in force; NULL until its first denial */
    size_t top_count;                 /* entries in tops (0 if memory was short) */
    rl_denylog *denylog;              /* the denial log, or NULL */
    struct event *denylog_tick;       /* reports the denial log's dropped lines each second */
    size_t (*connections)(void *arg); /* counts the server's connections, or NULL */
    void *connections_arg;            /* its argument */
    uint64_t lease_counter;           /* leases handed out: the input of the next id */
    uint8_t lease_key[16];            /* the ids' SipHash key (getrandom) */
};

/* ---- engine.c ---- */

// Creates a reference (count 1) to config with zeroed counters; NULL if out of memory.
conf_ref *rl_conf_ref_new(rl_config *config);

// Drops a reference; the last frees the config and its counters.
void rl_conf_ref_put(conf_ref *ref);

// Answers p with what it holds (error, verdicts or text) and releases it (once the
// store submits on the stack have returned). Every opcode handler ends in it, once.
void rl_engine_finish(pending *p);

// Handles req as rl_engine_handle does; on_close marks a RELEASE the engine sends for a
// connection that closed (counted released_on_disconnect).
void rl_engine_handle_as(rl_engine *engine, const rl_request *req, uint32_t perms,
                         rl_engine_reply *reply, void *arg, int on_close);

// Releases p (to the free list) once it was answered and no submit is on the stack.
void rl_engine_pending_put(pending *p);

/* ---- engine_lease.c ---- */

// Returns 1 if opcode is ACQUIRE, RELEASE or RENEW.
int rl_engine_is_lease_op(uint8_t opcode);

// Returns 1 if policy is a concurrency policy.
int rl_engine_is_concurrency(const rl_policy *policy);

// Returns a new lease id: SipHash-2-4 of a per-engine counter under a random key; never 0.
uint64_t rl_engine_new_lease_id(struct rl_engine *e);

// Sets up what leases need at engine start: the id key, the embedded store's expiry hook.
// Returns RL_OK, or RL_ERR if no random key could be had.
int rl_engine_lease_start(struct rl_engine *e);

// LEASES: the held leases of a concurrency policy (one key, or all its keys).
void rl_engine_run_leases(pending *p, const rl_request *req);

/* ---- engine_stats.c ---- */

// Sets up the top-keys summaries and opens the denial log of the config in force;
// called once by rl_engine_new. Out of memory only loses TOP (logged).
void rl_engine_stats_start(struct rl_engine *e);

// Frees the summaries and closes the denial log.
void rl_engine_stats_stop(struct rl_engine *e);

// Moves what survives a reload to next (not yet in force): the counters and summaries
// of policies that keep their name (summaries only if their limits are unchanged too),
// and reopens the denial log (or opens next's).
void rl_engine_stats_reload(struct rl_engine *e, conf_ref *next);

// Counts one answered item (allowed/denied/shadow/...), feeds the top-keys summary
// and the denial log.
void rl_engine_count(pending *p, const slot *s, const rl_result *r);

// Counts what a store answer reports beside its verdicts for p: leases of the key it
// found expired, leases a RESET ended.
void rl_engine_count_store_leases(pending *p, const rl_store_answer *ans);

// Counts leases of the policy named ns that a sweep of the embedded store found expired.
void rl_engine_count_swept_leases(struct rl_engine *e, const char *ns, size_t ns_len,
                                  uint32_t leases);

// Counts a request answered with an error status.
void rl_engine_count_error(pending *p);

// Counts a store failure for every item of p and logs it (once per change of state,
// not per request).
void rl_engine_count_store_error(pending *p, const rl_store_answer *ans);

// Notes an error of the embedded store (STORE_FULL, out of memory): logged at most
// once a second, with the number of such errors since the last line.
void rl_engine_local_error(struct rl_engine *e, const rl_store_answer *ans);

// Lists the most denied keys of the policy at index i of the config in force into
// keys (at most n). Returns how many.
size_t rl_engine_top_keys(struct rl_engine *e, size_t i, rl_topk_key *keys, size_t n);

/* ---- engine_admin.c: the admin opcodes' handlers (the table is engine.c's) ---- */

// POLICIES: the policies in force as JSON.
void rl_engine_run_policies(pending *p, const rl_request *req);

// STATS: the stats snapshot as JSON.
void rl_engine_run_stats(pending *p, const rl_request *req);

// TOP: the most denied keys of one policy or of all.
void rl_engine_run_top(pending *p, const rl_request *req);

// RELOAD: the daemon's reload (rl_engine_set_reloader).
void rl_engine_run_reload(pending *p, const rl_request *req);

#endif
