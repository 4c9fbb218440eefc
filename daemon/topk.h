/*
 * topk.h: the keys a policy denies most, from a bounded heavy-hitters summary.
 *
 * Space-Saving (Metwally et al.) over two consecutive windows of window_ms: every
 * denial adds one to its key's counter in the current window; when all
 * RL_TOPK_SLOTS counters are taken, the smallest is handed to the new key, which
 * inherits its count as the possible overcount (`error`). A key denied more than
 * 1/RL_TOPK_SLOTS of a window's denials is always in the summary. Listing merges
 * the current and the previous window, so it shows the last one to two windows.
 *
 * Memory is fixed (about 20 KB a summary); an update scans the window's counters
 * (RL_TOPK_SLOTS, contiguous) and never allocates. Keys longer than RL_TOPK_KEY_MAX
 * are kept by their first bytes, their length and a hash of the whole key.
 */
#ifndef RL_TOPK_H
#define RL_TOPK_H

#include <stddef.h>
#include <stdint.h>

#define RL_TOPK_SLOTS 64        /* counters per window */
#define RL_TOPK_KEY_MAX 128     /* key bytes kept per counter */
#define RL_TOPK_WINDOW_MS 60000 /* the default window */

typedef struct rl_topk rl_topk;

/* One key of a listing. */
typedef struct rl_topk_key {
    const char *key; /* the key's first `kept` bytes (owned by the summary) */
    size_t kept;     /* bytes at key */
    size_t key_len;  /* the key's whole length (more than kept: truncated) */
    uint64_t denied; /* estimated denials: an upper bound */
    uint64_t error;  /* possible overcount: at least denied - error were denied */
} rl_topk_key;

// Returns an empty summary whose windows last window_ms (> 0), or NULL if out of
// memory. The caller frees it with rl_topk_free.
rl_topk *rl_topk_new(int64_t window_ms);

// Counts one denial of key (len bytes) at now_ms (a monotonic clock, never going back).
void rl_topk_add(rl_topk *topk, const char *key, size_t len, int64_t now_ms);

// Writes up to n keys, most denied first, of the windows still current at now_ms to
// out. Returns how many were written. The keys point into the summary and stay valid
// until its next rl_topk_add or rl_topk_free.
size_t rl_topk_list(rl_topk *topk, int64_t now_ms, rl_topk_key *out, size_t n);

// Frees the summary. NULL is fine.
void rl_topk_free(rl_topk *topk);

#endif
