/*
 * replay_stats.h: what `rlimitctl replay` reports of one policy under one config:
 * exact totals, distinct keys (exact up to RL_REPLAY_KEYS_EXACT, then estimated), a
 * bounded top-K of denied keys (Space-Saving) with each one's requests, longest denial
 * streak and largest retry-after, the peak one-second rate and a time series. Memory
 * is bounded whatever the log's length; nothing is allocated per request once the
 * tables have grown.
 */
#ifndef RL_REPLAY_STATS_H
#define RL_REPLAY_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RL_REPLAY_TOPK 256             /* denied keys followed per policy */
#define RL_REPLAY_KEY_KEPT 128         /* bytes of a followed key kept */
#define RL_REPLAY_KEYS_EXACT (1 << 16) /* distinct keys counted exactly, then estimated */
#define RL_REPLAY_SERIES_MAX 1500      /* points of a series at most */

/* The time axis every series shares: one start, one step. */
typedef struct rl_replay_axis {
    int64_t start_s; /* the first second of the log */
    int64_t last_s;  /* the last second seen */
    int64_t step_s;  /* seconds a point (1, 60, or a multiple of 60 for long logs) */
} rl_replay_axis;

typedef struct rl_replay_stats rl_replay_stats;

/* One followed denied key, for the report. */
typedef struct rl_replay_key {
    char key[RL_REPLAY_KEY_KEPT]; /* its first bytes */
    size_t kept;                  /* bytes at key */
    size_t key_len;               /* its whole length */
    uint64_t hash;                /* hash of the whole key */
    uint64_t denied;              /* denials (an upper bound once evictions happened) */
    uint64_t requests;            /* requests while followed, plus the inherited count */
    uint64_t streak;              /* denials in a row now */
    uint64_t longest_streak;      /* the longest run of denials */
    int64_t max_retry_us;         /* the largest retry-after it was told */
    int next;                     /* next slot in its hash chain, or -1 */
} rl_replay_key;

// Sets "key" of object o to key (len bytes, any bytes) as the daemon's TOP answer does:
// as it is if escaping leaves it so (daemon/escape.h), else escaped (UTF-8 kept) with
// "escaped": true and "key_hex", its exact bytes in hex. Returns 0, or -1 (memory).
int rl_replay_key_json(json_t *o, const char *key, size_t len);

// Returns the hash of a key (deterministic: the same log gives the same report).
uint64_t rl_replay_hash(const char *key, size_t len);

// Returns new, empty statistics on axis (which must outlive them), or NULL.
rl_replay_stats *rl_replay_stats_new(rl_replay_axis *axis);

// Counts one decided request at ts_us of key (len bytes, hash from rl_replay_hash).
// Returns 0, or -1 if memory ran out.
int rl_replay_stats_add(rl_replay_stats *s, int64_t ts_us, const char *key, size_t len,
                        uint64_t hash, int allowed, int64_t retry_after_us);

// Moves the axis to cover second sec (the first call sets its start); every series
// follows at its next use.
void rl_replay_axis_see(rl_replay_axis *axis, int64_t sec);

// Returns the followed key's figures, or NULL if the key is not followed.
const rl_replay_key *rl_replay_stats_key(const rl_replay_stats *s, const char *key, size_t len,
                                         uint64_t hash);

// Returns the policy's figures as the "policies" entry of the JSON report (name,
// algorithm given). NULL if out of memory.
json_t *rl_replay_stats_json(rl_replay_stats *s, const char *name, const char *algorithm);

// Returns the number of requests counted.
uint64_t rl_replay_stats_requests(const rl_replay_stats *s);

// Frees the statistics. NULL is fine.
void rl_replay_stats_free(rl_replay_stats *s);

#endif
