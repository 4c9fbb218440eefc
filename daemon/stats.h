/*
 * stats.h: the daemon's figures as one typed snapshot.
 *
 * The engine fills an rl_stats (engine_stats.c) and asks each store to add its own
 * figures (rl_store_ops.stats); the snapshot is then rendered twice from the same
 * values: to JSON for the STATS answer (rl_stats_json) and to Prometheus text for
 * /metrics (metrics.c). No one writes JSON that another module parses again, and a
 * store may report any number of figures.
 *
 *   engine counters --+
 *   store figures  ---+--> rl_stats --> rl_stats_json --> STATS text (rlimitctl, Python)
 *                                   \-> rl_metrics_render --> /metrics
 */
#ifndef RL_STATS_H
#define RL_STATS_H

#include <stddef.h>
#include <stdint.h>

/* How a figure behaves, which decides how it is rendered. */
typedef enum rl_figure_kind {
    RL_FIGURE_COUNTER, /* only grows: JSON integer, Prometheus counter NAME_total */
    RL_FIGURE_GAUGE,   /* goes up and down: JSON integer, Prometheus gauge */
    RL_FIGURE_RATIO,   /* a fraction: JSON real, Prometheus gauge */
    RL_FIGURE_FLAG,    /* yes or no: JSON boolean, Prometheus gauge 0 or 1 */
    RL_FIGURE_WORD,    /* a state word: JSON string, Prometheus NAME{NAME="word"} 1 */
} rl_figure_kind;

/* One figure of a store. Names and words are string literals (never copied). A figure
   may describe one server of the store (a Redis Cluster node): it then carries the
   server's name in node, and renders inside that server's object of the store's
   "nodes" array (JSON) and with a node="..." label (Prometheus). */
typedef struct rl_figure {
    const char *node;    /* the server it describes ("host:port"; borrowed from the store,
                            which renders before it changes), or NULL: the whole store's */
    const char *group;   /* the JSON object it sits in inside the store's ("errors") or
                            the node's ("latency_us"), or NULL */
    const char *name;    /* its JSON field, [a-z0-9_]+: also its Prometheus name's end */
    rl_figure_kind kind; /* how it is rendered */
    uint64_t value;      /* COUNTER, GAUGE, FLAG (0 or 1) */
    double ratio;        /* RATIO */
    const char *word;    /* WORD */
} rl_figure;

/* A store's submit-to-answer latency, if it measures one. */
typedef struct rl_latency_figures {
    int present;    /* 0: the store does not measure latency */
    uint64_t count; /* answers measured */
    int64_t p50_us; /* median, microseconds */
    int64_t p99_us; /* 99th percentile, microseconds */
    int64_t max_us; /* the longest, microseconds */
} rl_latency_figures;

/* The figures of one store, in the order it added them. */
typedef struct rl_store_figures {
    const char *type;           /* "memory" or "redis" */
    rl_figure *list;            /* the figures (owned) */
    size_t count;               /* figures in list */
    size_t cap;                 /* room in list */
    int failed;                 /* memory ran out while adding: the list is incomplete */
    rl_latency_figures latency; /* rendered as "latency_us" */
} rl_store_figures;

/* Decision counters of one policy. */
typedef struct rl_policy_counters {
    uint64_t allowed;       /* answered ALLOWED (shadow would-be denials excluded) */
    uint64_t denied;        /* answered DENIED */
    uint64_t shadow_denied; /* would have been denied; allowed by shadow mode */
    uint64_t exempt;        /* allowed as exempt keys */
    uint64_t blocked;       /* denied as blocked keys */
    uint64_t errors;        /* answered with an error status */
    uint64_t store_errors;  /* the store failed for a request of this policy */
    uint64_t fallbacks;     /* answered by on_store_error */
    /* Concurrency policies only (ACQUIRE counts in allowed/denied too): */
    uint64_t held;                   /* leases held now, as this instance saw them */
    uint64_t acquired;               /* leases taken (ACQUIRE allowed with a lease id) */
    uint64_t released;               /* leases ended by RELEASE */
    uint64_t expired;                /* leases reclaimed by expiry (counted when trimmed) */
    uint64_t released_on_disconnect; /* leases released as their connection closed */
    uint64_t lease_unknown;          /* RELEASE/RENEW answered LEASE_UNKNOWN */
} rl_policy_counters;

/* One policy's line of the snapshot. */
typedef struct rl_policy_figures {
    const char *name;            /* the policy's name (the config's; valid while it is) */
    rl_policy_counters counters; /* its counters */
    int concurrency;             /* a concurrency policy: the lease counters are reported */
} rl_policy_figures;

/* Everything STATS and /metrics report. */
typedef struct rl_stats {
    rl_policy_figures *policies; /* per policy of the config in force (owned) */
    size_t policy_count;         /* entries in policies */
    rl_store_figures store;      /* the configured store */
    rl_store_figures local;      /* the embedded fallback store, when the store is Redis */
    int has_local;               /* local is filled */
    uint64_t uptime_s;           /* seconds since the engine started */
    uint64_t in_flight;          /* requests being decided (a STATS request not counted) */
    uint64_t refused;            /* frames answered before decoding (BUSY, too large...) */
    uint64_t reloads;            /* reloads applied */
    uint64_t reload_failures;    /* reloads refused */
    uint64_t refused_peers;      /* connections refused for their peer's uid/gid */
    uint64_t auth_failures;      /* wrong tokens (AUTH, HTTP bearer) */
    int has_connections;         /* connections is known (the server's count is set) */
    uint64_t connections;        /* open binary-protocol connections */
    int has_denial_log;          /* a denial log is open: the three below are filled */
    uint64_t denial_lines;       /* denial log lines written */
    uint64_t denial_suppressed;  /* lines dropped by the log's own limit */
    uint64_t denial_errors;      /* lines the log failed to write */
} rl_stats;

// Appends a figure of kind to f (group may be NULL); value is used by COUNTER, GAUGE
// and FLAG. On out of memory sets f->failed and drops the figure.
void rl_figures_add(rl_store_figures *f, const char *group, const char *name, rl_figure_kind kind,
                    uint64_t value);

// Appends a RATIO figure.
void rl_figures_ratio(rl_store_figures *f, const char *group, const char *name, double ratio);

// Appends a WORD figure (word: a string literal).
void rl_figures_word(rl_store_figures *f, const char *group, const char *name, const char *word);

// Appends a figure of one server of the store, node ("host:port", not copied: it must
// outlive the rendering); otherwise as rl_figures_add.
void rl_figures_node(rl_store_figures *f, const char *node, const char *group, const char *name,
                     rl_figure_kind kind, uint64_t value);

// Appends a RATIO figure of one server of the store (see rl_figures_node).
void rl_figures_node_ratio(rl_store_figures *f, const char *node, const char *group,
                           const char *name, double ratio);

// Appends a WORD figure of one server of the store (see rl_figures_node).
void rl_figures_node_word(rl_store_figures *f, const char *node, const char *group,
                          const char *name, const char *word);

// Returns the store's figures as a JSON object ({"type": .., figures.., groups as nested
// objects, "nodes": [{"node": "host:port", its figures and groups..}, ..] in the order
// the nodes first appear, "latency_us": {count, p50, p99, max}}), or NULL if memory is
// short or f is incomplete. The caller owns the reference.
struct json_t *rl_store_figures_json(const rl_store_figures *f);

// Returns the STATS answer for s as a JSON object (fields: policies, store, uptime_s,
// in_flight, refused, reloads, reload_failures, local_store, refused_peers,
// auth_failures, connections, denial_log), or NULL if memory is short or a part is
// incomplete. The caller owns the reference.
struct json_t *rl_stats_json(const rl_stats *s);

// Frees what f holds (not f itself); f is left empty.
void rl_store_figures_free(rl_store_figures *f);

// Frees what s holds (not s itself).
void rl_stats_free(rl_stats *s);

#endif
