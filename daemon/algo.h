/*
 * algo.h: the five rate-limit algorithms, as pure functions of (state, now, cost).
 *
 * No I/O, no clock, no allocation except through rl_log_reserve. Time is an int64
 * count of microseconds since the Unix epoch; every figure in a verdict is in
 * microseconds too (the engine rounds up to milliseconds for the wire).
 *
 * Two kinds of state:
 *   rl_cell   a fixed 24-byte state, for every algorithm but the sliding log;
 *   rl_log    a ring of (timestamp, cost) entries, for sliding_window_log.
 * A zeroed cell or log is the state of a key never seen.
 *
 * Deciding and consuming are separate steps so that several rates (and several
 * MULTI_CHECK items) can be decided first and consumed only if all allow:
 *   rl_cell_decide() computes the verdict and the cell as it would be after
 *   consuming; the caller writes that cell back only if it commits. For the log,
 *   rl_log_decide() only reads, and rl_log_commit() appends.
 *
 * Bounds, whatever a client sends (ADJUST included): a key's usage never exceeds
 * twice the rate's capacity, so every state is back to empty within two windows; a
 * log never holds more than `limit` entries.
 */
#ifndef RL_ALGO_H
#define RL_ALGO_H

#include <stdbool.h>
#include <stdint.h>

typedef enum rl_algorithm {
    RL_ALGO_FIXED_WINDOW,    /* at most limit admitted per epoch-aligned window of period */
    RL_ALGO_SLIDING_LOG,     /* at most limit admitted in any trailing period (exact) */
    RL_ALGO_SLIDING_COUNTER, /* weighted previous window + current window <= limit */
    RL_ALGO_TOKEN_BUCKET,    /* capacity burst, refilled continuously at limit/period */
    RL_ALGO_GCRA,            /* generic cell rate algorithm; redis-cell's CL.THROTTLE */
    RL_ALGO_CONCURRENCY,     /* at most limit slots held at once (leases: algo_lease.h);
                                period_us is the lease; no cell or log */
} rl_algorithm;

/* One rate: the parameters of one algorithm instance. */
typedef struct rl_rate {
    rl_algorithm algorithm; /* which algorithm */
    uint64_t limit;         /* units admitted per period, >= 1 */
    int64_t period_us;      /* the period, > 0 */
    uint64_t burst;         /* token_bucket/gcra capacity in units, >= 1; ignored otherwise */
} rl_rate;

/* The largest limit a sliding_window_log rate may have (the config refuses more and
 * suggests sliding_window_counter). A denied CHECK may walk the whole log (up to
 * `limit` entries) to find its retry time. One CHECK in the embedded store (-O2, the
 * 2-core dev VM) on a log of N entries: full log of N units, cost 1: 0.05 us at every N;
 * the worst case, N entries holding 2N units (reachable with ADJUST), cost N:
 * N = 1,000: 1.8 us, N = 10,000: 17 us, N = 100,000: 170 us (cost 1: 0.9, 8.6, 101 us). */
#define RL_SLIDING_LOG_MAX_LIMIT 10000

/* Fixed-size state. Field meaning per algorithm:
 *   fixed_window:     a = start of the window counted in b, b = units admitted in it
 *   sliding_counter:  a = start of the current window, b = its units, c = previous window's
 *   token_bucket/gcra: a = theoretical arrival time (TAT); 0 = idle */
typedef struct rl_cell {
    int64_t a; /* see above */
    int64_t b; /* see above */
    int64_t c; /* see above */
} rl_cell;

/* One entry of a sliding log. */
typedef struct rl_log_entry {
    int64_t at_us; /* when the units were admitted */
    int64_t cost;  /* how many units */
} rl_log_entry;

/* A sliding log: a ring of entries, oldest first, with their total. */
typedef struct rl_log {
    rl_log_entry *entries; /* ring storage, cap entries (owned; see rl_log_free) */
    uint32_t cap;          /* ring capacity */
    uint32_t head;         /* index of the oldest entry */
    uint32_t len;          /* entries in use */
    int64_t total;         /* sum of the costs of the entries in use */
} rl_log;

/* What an algorithm answers. All times in microseconds, relative to now. */
typedef struct rl_verdict {
    bool allowed;           /* the cost may pass */
    bool capped;            /* ADJUST: the charge met the ceiling of 2 x capacity and
                               the units above it were dropped (RL_FLAG_CAPPED) */
    uint64_t limit;         /* limit per window (capacity for token_bucket/gcra) */
    uint64_t remaining;     /* units left after this decision (after consuming if allowed) */
    int64_t reset_after_us; /* until usage would be back to zero */
    int64_t retry_after_us; /* denied: until the same cost would pass; 0 if allowed */
    int64_t window_us;      /* the rate's window (token_bucket/gcra: time to refill capacity) */
} rl_verdict;

// Returns the largest cost the rate can ever admit at once (limit, or burst for
// token_bucket and gcra; concurrency: limit, the slots). A cost above it gets COST_TOO_LARGE, never
// a verdict.
uint64_t rl_rate_capacity(const rl_rate *rate);

// Returns the window reported for the rate, in microseconds: period for window
// algorithms, the time to refill the full capacity for token_bucket and gcra, the
// lease for concurrency.
int64_t rl_rate_window_us(const rl_rate *rate);

// Decides whether cost (1..capacity) may pass rate at now_us for a key whose state
// is *cell. Writes the verdict to *out and, in *next, the cell as it would be after
// consuming (equal to the cell's current meaning if denied). Pure.
void rl_cell_decide(const rl_rate *rate, const rl_cell *cell, int64_t now_us, uint64_t cost,
                    rl_cell *next, rl_verdict *out);

// Adds delta units (> 0: charge, < 0: give back; usage never goes below zero) to the
// key's usage at now_us without deciding. A charge saturates at 2 x capacity (then
// out->capped is set). Writes the new cell to *next and, to *out, the verdict a cost-1
// request would get now (without consuming it). Pure.
void rl_cell_adjust(const rl_rate *rate, const rl_cell *cell, int64_t now_us, int64_t delta,
                    rl_cell *next, rl_verdict *out);

// Returns the time (us) after which the cell holds no information (it equals a
// zeroed cell for every future decision), so a store may evict it then.
int64_t rl_cell_expires_at(const rl_rate *rate, const rl_cell *cell);

// Drops the log's entries that are out of the trailing period at now_us. This does
// not change any decision; it keeps the log small.
void rl_log_trim(const rl_rate *rate, rl_log *log, int64_t now_us);

// Decides whether cost may pass a sliding_window_log rate at now_us. Trims the log,
// writes the verdict to *out, appends nothing (see rl_log_commit).
void rl_log_decide(const rl_rate *rate, rl_log *log, int64_t now_us, uint64_t cost,
                   rl_verdict *out);

// Makes room for one more entry of a log of rate (none is needed once the log holds
// rate->limit entries: a commit then merges). Returns 0, or -1 if memory could not be
// had (the log is unchanged). Grows through the project's allocator.
int rl_log_reserve(const rl_rate *rate, rl_log *log);

// Appends (now_us, cost) to the log of rate. The caller called rl_log_reserve first, or
// knows an entry at now_us already exists (entries at the same instant are merged).
// The log never holds more than rate->limit entries: when appending would exceed that,
// its two oldest entries are merged into one stamped with the later one's time.
void rl_log_commit(const rl_rate *rate, rl_log *log, int64_t now_us, uint64_t cost);

// Adds delta units at now_us (> 0: appends like a commit, after rl_log_reserve, and
// saturates at 2 x limit units in the trailing period, setting out->capped; < 0:
// removes units from the newest entries first). Writes the verdict a cost-1 request
// would get now to *out.
void rl_log_adjust(const rl_rate *rate, rl_log *log, int64_t now_us, int64_t delta,
                   rl_verdict *out);

// Returns the time (us) after which the log is empty for every future decision.
int64_t rl_log_expires_at(const rl_rate *rate, const rl_log *log);

// Frees the log's storage and zeroes it.
void rl_log_free(rl_log *log);

// Folds v into *acc so that *acc reports the most restrictive of the verdicts seen:
// allowed only if all are; when allowed, the fewest remaining; when denied, the denying
// verdict with the longest retry_after. Call with acc->limit == 0 for the first.
void rl_verdict_merge(rl_verdict *acc, const rl_verdict *v);

#endif
