/*
 * engine_internal.h: the engine's state, shared by its files (engine.c: decisions;
 * engine_admin.c: dispatch table, admin opcodes, stats, reload). Not an interface
 * for other modules.
 */
#ifndef RL_ENGINE_INTERNAL_H
#define RL_ENGINE_INTERNAL_H

#include "engine.h"
#include "store.h"

/* Decision counters of one policy. */
typedef struct policy_stats {
    uint64_t allowed;       /* answered ALLOWED (shadow would-be denials excluded) */
    uint64_t denied;        /* answered DENIED */
    uint64_t shadow_denied; /* would have been denied; allowed by shadow mode */
    uint64_t exempt;        /* allowed as exempt keys */
    uint64_t blocked;       /* denied as blocked keys */
    uint64_t errors;        /* answered with an error status */
    uint64_t store_errors;  /* the store failed for a request of this policy */
    uint64_t fallbacks;     /* answered by on_store_error */
} policy_stats;

/* A config with its stats, referenced by the engine and by requests in flight. */
typedef struct conf_ref {
    rl_config *config;   /* the config (owned) */
    policy_stats *stats; /* per policy, parallel to config->policies */
    int refs;            /* holders: the engine while current, plus pendings */
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
    uint8_t done;              /* the current pass's store answer arrived */
    uint8_t pass;              /* 0 first, 1 the shadow second pass */
    uint8_t fallback;          /* answered under on_store_error */
    uint8_t keys_lost;         /* could not copy keys for a later pass */
    rl_status error;           /* the request's error status, or OK */
    char *keys;                /* copies of the keys for a later pass (owned) */
    char *text;                /* admin answer text (owned) */
    slot slots[RL_MAX_ITEMS];  /* the items */
} pending;

/* One opcode's handler. */
typedef struct rl_opcode_handler {
    void (*run)(pending *p, const rl_request *req); /* must end in rl_engine_finish, once */
    uint32_t needs; /* the operation bit it needs (RL_PERM_*); 0: always served (PING,
                       AUTH); ADJUST's depends on its cost (rl_engine_needs) */
} rl_opcode_handler;

struct rl_engine {
    struct event_base *base; /* the event loop */
    conf_ref *conf;          /* the config in force */
    rl_store *store;         /* the configured store */
    rl_store *local;         /* the embedded store (the store itself when memory) */
    struct event *sweep;     /* evicts expired keys of the embedded store */
    pending *free_list;      /* released pendings for reuse */
    size_t in_flight;        /* pendings in use */
    uint64_t refused;        /* frames answered before decoding (BUSY, too large...) */
    uint64_t reloads;        /* successful reloads */
    uint64_t reload_failures;/* refused reloads */
    uint64_t refused_peers;  /* connections refused for their peer's uid/gid */
    uint64_t auth_failures;  /* wrong tokens (AUTH, HTTP bearer) */
    int64_t started_us;      /* when the engine started */
    int store_down;          /* the store reported an error last */
    uint64_t local_errors;   /* embedded store errors not logged yet */
    int64_t last_local_error_log; /* when the last such line was written (us) */
    int (*reload)(void *arg, char *err, size_t errlen); /* the daemon's reload */
    void *reload_arg;        /* reload's argument */
    void *admin;             /* engine_admin.c's state (top keys, denial log) */
};

// Creates a reference (count 1) to config with zeroed stats; NULL if out of memory.
conf_ref *rl_conf_ref_new(rl_config *config);

// Drops a reference; the last frees the config and its stats.
void rl_conf_ref_put(conf_ref *ref);

// Returns the stats of policy (which belongs to ref's config).
policy_stats *rl_engine_policy_stats(conf_ref *ref, const rl_policy *policy);

// Returns the counters an answer of p for policy goes to: those of the config in force
// (p may have been decided under a config a reload has replaced since).
policy_stats *rl_engine_stats_of(pending *p, const rl_policy *policy);

// Fills a wire result from a verdict (times rounded up to whole ms).
void rl_result_from_verdict(rl_result *r, const rl_verdict *v, rl_status status);

// Returns the handler of opcode, or NULL if it is not defined.
const rl_opcode_handler *rl_engine_handler(uint8_t opcode);

// Returns the permission req needs (RL_PERM_*, 0 for none): its handler's, or for
// ADJUST "refund" when its cost is negative and "charge" otherwise.
uint32_t rl_engine_needs(const rl_opcode_handler *h, const rl_request *req);

// Runs a decision opcode (CHECK, PEEK, ADJUST, RESET, MULTI_CHECK) for p.
void rl_engine_decide(pending *p, const rl_request *req);

// Answers p with what it holds (error, verdicts or text) and releases it.
void rl_engine_finish(pending *p);

// Counts one answered item (allowed/denied/shadow/...), feeds the top-keys summary
// and the denial log.
void rl_engine_count(pending *p, const slot *s, const rl_result *r);

// Counts a request answered with an error status.
void rl_engine_count_error(pending *p);

// Notes a store failure (logged once per change of state, not per request).
void rl_engine_store_error(struct rl_engine *e, const rl_store_answer *ans);

// Notes an error of the embedded store (STORE_FULL, out of memory): logged at most
// once a second, with the number of such errors since the last line.
void rl_engine_local_error(struct rl_engine *e, const rl_store_answer *ans);

// Sets up engine_admin.c's state; called once by rl_engine_new.
void rl_engine_started(struct rl_engine *e);

// Frees engine_admin.c's state.
void rl_engine_admin_free(struct rl_engine *e);

#endif
