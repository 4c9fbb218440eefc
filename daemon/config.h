/*
 * config.h: the daemon's configuration, parsed from JSON (jansson) and validated.
 *
 * Every field is checked; an unknown field or a bad value is an error whose message
 * names the field's path (e.g. `policies.api.period: "5x" is not a duration`).
 * A parsed config is immutable; a reload builds a new one and swaps it in.
 */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "algo.h"

#define RL_MAX_RATES 8      /* rates per policy */
#define RL_MAX_LISTENERS 16 /* listen addresses */

typedef enum rl_mode {
    RL_MODE_ENFORCE, /* deny what is over the limit */
    RL_MODE_SHADOW,  /* decide and count, log would-be denials, always allow */
} rl_mode;

typedef enum rl_on_error {
    RL_ON_ERROR_LOCAL, /* decide with the embedded store while the store is down (default) */
    RL_ON_ERROR_ALLOW, /* fail open */
    RL_ON_ERROR_DENY,  /* fail closed */
} rl_on_error;

/* The rates one key is held to; a request passes only if every rate allows it. */
typedef struct rl_limits {
    rl_rate rates[RL_MAX_RATES]; /* the rates, in config order */
    uint8_t rate_count;          /* 1..RL_MAX_RATES */
} rl_limits;

/* A key with limits of its own (e.g. a partner). */
typedef struct rl_override {
    char *key;        /* the key bytes (owned) */
    size_t key_len;   /* bytes of key */
    rl_limits limits; /* its limits */
} rl_override;

/* A set of keys (exempt or blocked), searched by exact match. */
typedef struct rl_keyset {
    char **keys;  /* sorted key strings (owned) */
    size_t *lens; /* their lengths */
    size_t count; /* number of keys */
} rl_keyset;

typedef struct rl_policy {
    char *name;                 /* policy name (owned, NUL-terminated) */
    size_t name_len;            /* bytes of name */
    rl_limits limits;           /* the default limits */
    rl_mode mode;               /* enforce or shadow */
    rl_on_error on_store_error; /* what to answer when the store fails */
    rl_override *overrides;     /* keys with their own limits, sorted by key */
    size_t override_count;      /* entries in overrides */
    rl_keyset exempt;           /* always allowed, not counted */
    rl_keyset block;            /* always denied */
    uint64_t fingerprint;       /* hash of the limits: a reload keeps counters if unchanged */
} rl_policy;

typedef enum rl_listener_kind {
    RL_LISTEN_UNIX, /* binary protocol on a Unix socket */
    RL_LISTEN_TCP,  /* binary protocol on TCP */
    RL_LISTEN_HTTP, /* the HTTP endpoint (evhttp) */
} rl_listener_kind;

/* Operations a listener allows (its "ops"), as bits of a permission mask. PING and AUTH
   need none. */
#define RL_PERM_CHECK (1u << 0)       /* "check": CHECK (HTTP: /check, /auth) */
#define RL_PERM_PEEK (1u << 1)        /* "peek": PEEK */
#define RL_PERM_MULTI_CHECK (1u << 2) /* "multi_check": MULTI_CHECK */
#define RL_PERM_CHARGE (1u << 3)      /* "charge": ADJUST with a positive cost */
#define RL_PERM_REFUND (1u << 4)      /* "refund": ADJUST with a negative cost */
#define RL_PERM_RESET (1u << 5)       /* "reset": RESET */
#define RL_PERM_POLICIES (1u << 6)    /* "policies": POLICIES */
#define RL_PERM_STATS (1u << 7)       /* "stats": STATS (HTTP: /metrics) */
#define RL_PERM_TOP (1u << 8)         /* "top": TOP */
#define RL_PERM_RELOAD (1u << 9)      /* "reload": RELOAD */
#define RL_PERM_LEASE (1u << 10)      /* "lease": ACQUIRE, RELEASE, RENEW */
#define RL_PERM_LEASES (1u << 11)     /* "leases": LEASES (the held leases listed) */
#define RL_PERM_ALL ((1u << 12) - 1)  /* an admin listener's */
/* Not an operation: the connection may use its listener's operations (it authenticated,
   or its listener needs no token). Without it only PING and AUTH are served. */
#define RL_PERM_AUTHENTICATED (1u << 31)
/* The defaults of listeners without "ops" and not "admin". */
#define RL_PERM_DEFAULT_BINARY                                                                     \
    (RL_PERM_CHECK | RL_PERM_PEEK | RL_PERM_MULTI_CHECK | RL_PERM_CHARGE | RL_PERM_POLICIES |      \
     RL_PERM_STATS | RL_PERM_LEASE)
#define RL_PERM_DEFAULT_HTTP (RL_PERM_CHECK | RL_PERM_STATS)
#define RL_MAX_PEERS 64     /* entries of peer_uids, of peer_gids */
#define RL_MIN_TOKEN_LEN 16 /* token_file: bytes at least */

typedef struct rl_listener_conf {
    char *address;         /* as written: unix:PATH, tcp:HOST:PORT, http:HOST:PORT (owned) */
    rl_listener_kind kind; /* which kind */
    char *path;            /* unix: socket path (owned) */
    char *host;            /* tcp/http: host (owned) */
    uint16_t port;         /* tcp/http: port (0: any free port) */
    int admin;             /* every operation allowed (default: unix yes, others no) */
    uint32_t perms;        /* the operations allowed (RL_PERM_*), from admin or ops */
    int mode;              /* unix: socket file mode (default 0660) */
    uint32_t *peer_uids;   /* unix: uids a peer may have, or NULL for any (owned) */
    size_t peer_uid_count; /* entries in peer_uids */
    uint32_t *peer_gids;   /* unix: gids a peer may have, or NULL for any (owned) */
    size_t peer_gid_count; /* entries in peer_gids */
    char *token_file;      /* tcp/http: the file the token was read from, or NULL (owned) */
    char *token;           /* its content without trailing newlines (owned; not NUL-ended) */
    size_t token_len;      /* bytes of token (RL_MIN_TOKEN_LEN..RL_MAX_TOKEN_LEN) */
    int insecure;          /* "insecure": true: no token on a non-loopback host, on purpose */
} rl_listener_conf;

typedef enum rl_store_type {
    RL_STORE_MEMORY, /* the embedded hash table */
    RL_STORE_REDIS,  /* shared counters in Redis */
} rl_store_type;

/* The Redis store's defaults, in one place: the config gives them to the fields it
 * leaves unset, and the Redis store uses them for a field left 0 (or NULL) in a conf
 * built without the parser. */
#define RL_REDIS_DEFAULT_PORT 6379
#define RL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define RL_REDIS_DEFAULT_COMMAND_TIMEOUT_MS 250
#define RL_REDIS_DEFAULT_POOL 2        /* connections */
#define RL_REDIS_DEFAULT_BATCH_MAX 256 /* items per script call */
#define RL_REDIS_DEFAULT_KEY_PREFIX "rl:"
#define RL_REDIS_SENTINEL_DEFAULT_PORT 26379 /* a Sentinel node given without :PORT */
#define RL_REDIS_MAX_SEEDS 64                /* store.cluster: seed URLs at most */
#define RL_REDIS_MAX_SENTINELS 16            /* store.sentinel.nodes: entries at most */
#define RL_REDIS_MAX_MASTER_NAME 255         /* store.sentinel.master: bytes at most */

/* How the Redis store reaches Redis: one server (url), a Redis Cluster (cluster: seed
   nodes), or the master a set of Sentinels names (sentinel). */
typedef enum rl_redis_mode { RL_REDIS_SINGLE, RL_REDIS_CLUSTER, RL_REDIS_SENTINEL } rl_redis_mode;

/* A TCP address of a Redis node or a Sentinel. */
typedef struct rl_redis_addr {
    char *host;    /* host name or address (owned) */
    uint16_t port; /* TCP port */
} rl_redis_addr;

typedef struct rl_store_conf {
    rl_store_type type;       /* memory or redis */
    rl_redis_mode mode;       /* redis: single (url), cluster or sentinel */
    uint64_t max_keys;        /* embedded store (and local fallback): live keys at most */
    char *url;                /* redis: as written (owned) */
    char *host;               /* redis: host, or NULL for a Unix socket (owned) */
    uint16_t port;            /* redis: TCP port */
    char *unix_path;          /* redis: socket path (owned) */
    int db;                   /* redis: database number */
    char *username;           /* redis: ACL user, or NULL (owned) */
    char *password;           /* redis: password, or NULL (owned) */
    int connect_timeout_ms;   /* redis: connect timeout */
    int command_timeout_ms;   /* redis: reply timeout; past it the fallback answers */
    char *key_prefix;         /* redis: prefix of every key (default "rl:") (owned) */
    int pool;                 /* redis: connections */
    int batch_max;            /* redis: items per script call at most */
    rl_redis_addr *seeds;     /* cluster: the seed nodes (owned), seed_count of them; host and
                                 port above are the first one's */
    size_t seed_count;        /* cluster: entries in seeds */
    char *sentinel_master;    /* sentinel: the master's name (owned) */
    rl_redis_addr *sentinels; /* sentinel: the Sentinels (owned), sentinel_count of them */
    size_t sentinel_count;    /* sentinel: entries in sentinels */
    char *sentinel_username;  /* sentinel: ACL user for the Sentinels, or NULL (owned) */
    char *sentinel_password;  /* sentinel: password for the Sentinels, or NULL (owned) */
} rl_store_conf;

typedef struct rl_denial_log_conf {
    char *path;      /* file to append denials to, or NULL for none (owned) */
    int syslog;      /* 1: send denials to syslog instead */
    int lines_per_s; /* at most this many lines per second; the rest are counted */
} rl_denial_log_conf;

typedef struct rl_config {
    char *source;                                 /* the file it was read from (owned) */
    rl_listener_conf listeners[RL_MAX_LISTENERS]; /* listen addresses */
    size_t listener_count;                        /* entries in listeners */
    rl_store_conf store;                          /* the store */
    rl_policy *policies;                          /* policies, sorted by name */
    size_t policy_count;                          /* entries in policies */
    uint32_t max_frame;                           /* limits.max_frame: bytes per frame at most */
    uint32_t max_key;                             /* limits.max_key: key bytes at most */
    uint32_t max_connections;                     /* limits.max_connections */
    uint32_t max_pending;          /* limits.max_pending: requests in flight per connection */
    uint32_t max_output;           /* limits.max_output: unsent reply bytes per connection */
    int idle_timeout_ms;           /* limits.idle_timeout: close idle connections after */
    uint32_t max_http_connections; /* limits.max_http_connections: open HTTP connections */
    int http_header_timeout_ms;    /* limits.http_header_timeout: a request's headers within */
    rl_denial_log_conf denial_log; /* denial_log */
    int log_level;                 /* log_level: 0 error, 1 warn, 2 info, 3 debug */
} rl_config;

// Parses and validates the JSON config at path. Returns the config (owned by the
// caller; rl_config_free) or NULL with a message naming the file, and the field's path
// where there is one, written to err (errlen bytes).
rl_config *rl_config_load(const char *path, char *err, size_t errlen);

/* Flags of rl_config_load_flags. */
#define RL_CONFIG_NO_LISTEN 1 /* "listen" may be absent (rlimitctl replay opens no socket) */

// rl_config_load under flags (RL_CONFIG_*). With RL_CONFIG_NO_LISTEN a config without
// "listen" loads with no listeners; a "listen" that is given is checked as the daemon's.
rl_config *rl_config_load_flags(const char *path, int flags, char *err, size_t errlen);

// Like rl_config_load, from a NUL-terminated JSON string; source names it in messages.
rl_config *rl_config_parse(const char *json, const char *source, char *err, size_t errlen);

// Frees a config and everything it owns. NULL is fine.
void rl_config_free(rl_config *config);

// Returns the policy named name (len bytes), or NULL. O(log n).
const rl_policy *rl_config_policy(const rl_config *config, const char *name, size_t len);

// Returns the limits the key is held to under policy (its override, or the default).
const rl_limits *rl_policy_limits(const rl_policy *policy, const char *key, size_t len);

// Returns 1 if key is in the set, 0 otherwise.
int rl_keyset_has(const rl_keyset *set, const char *key, size_t len);

// Parses a duration ("500ms", "1s", "10m", "1h", "1d", or a JSON integer of ms handled
// by the caller) into milliseconds. Returns 0, or -1 if text is not a duration.
int rl_duration_parse(const char *text, int64_t *ms);

// Returns the algorithm's config name ("token_bucket", ...).
const char *rl_algorithm_name(rl_algorithm algorithm);

// Returns 1 if a peer with uid and gid may use listener l (it lists neither peer_uids
// nor peer_gids, or one of them holds the peer's id), 0 otherwise.
int rl_listener_peer_allowed(const rl_listener_conf *l, uint32_t uid, uint32_t gid);

// Compares a token given by a client (given_len bytes) with the expected one, in a time
// that depends only on expected_len. Returns 1 if they are equal, 0 otherwise.
int rl_token_equal(const char *expected, size_t expected_len, const char *given, size_t given_len);

// Returns the config name of the operation bit perm ("check", ...), or NULL.
const char *rl_perm_name(uint32_t perm);

// Copies what decides who may use listener l and for what (kind, admin, perms, peers,
// token, insecure; not its address). Returns the copy (rl_listener_trust_release), or
// NULL if out of memory.
rl_listener_conf *rl_listener_trust_dup(const rl_listener_conf *l);

// Frees a copy made by rl_listener_trust_dup (the token wiped first). NULL is fine.
void rl_listener_trust_release(rl_listener_conf *l);

// Returns 1 if a and b admit the same peers and the same token (their operations may
// differ), 0 otherwise.
int rl_listener_trust_same(const rl_listener_conf *a, const rl_listener_conf *b);

#endif
