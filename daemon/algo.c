/*
 * algo.c: the five rate-limit algorithms, as pure functions of (state, now, cost).
 *
 * Exact semantics. P is the period, L the limit, all times in microseconds, "now" the
 * decision instant. Every verdict reports limit (L, or the burst B for token_bucket and
 * gcra), remaining (units left, after consuming if allowed, never below 0),
 * reset_after (until usage is back to zero), retry_after (denied: the smallest wait
 * after which the same cost passes, absent other traffic; 0 if allowed) and window.
 *
 * fixed_window. Windows are aligned to the epoch: start = floor(now / P) * P,
 *   end = start + P. A cost passes iff count_in_window + cost <= L. remaining =
 *   L - count (after consuming); reset_after = end - now if count > 0, else 0;
 *   retry_after = end - now; window = P. At most L units pass per aligned window,
 *   hence at most 2L in any trailing P.
 *
 * sliding_window_log. Every admission is logged as (at, cost); an entry counts at the
 *   instants at <= t < at + P. A cost passes iff the sum of the entries with
 *   at > now - P, plus cost, is <= L. remaining = L - sum (after consuming);
 *   reset_after = newest.at + P - now (0 if the log is empty); retry_after = the
 *   smallest w such that the entries with at > now + w - P, plus cost, sum to <= L,
 *   that is e.at + P - now for the oldest entry e such that the entries newer than e,
 *   plus cost, sum to <= L. window = P. At most L units pass in any trailing P.
 *   Entries at the same instant are merged; an entry older than the newest (a clock
 *   that stepped back) is merged into the newest, which only makes it count longer.
 *   A log holds at most L entries: when appending would make L + 1, its two oldest
 *   entries are merged into one stamped with the later one's time (the merged units
 *   count longer, never shorter: nothing is over-admitted). A CHECK never needs that
 *   (a log with L entries holds at least L units, so nothing more passes); ADJUST may.
 *   ADJUST < 0 removes units from the newest entries first.
 *
 * sliding_window_counter. Windows aligned as for fixed_window; the state is the
 *   current window's count (curr) and the previous window's (prev; 0 if the stored
 *   window is older than the one before now's). elapsed = now - start; estimate =
 *   floor(prev * (P - elapsed) / P) + curr, computed exactly. A cost passes iff
 *   estimate + cost <= L. remaining = L - estimate (after consuming); reset_after =
 *   end of the next window - now if curr > 0, else end of this window - now if
 *   prev > 0, else 0; retry_after = the exact smallest wait w (in microseconds) after
 *   which the estimate plus cost is <= L: first inside this window, else in the next
 *   one (where prev becomes curr and curr becomes 0), else at the start of the window
 *   after that, where both are 0. window = P. At most L units pass per aligned window.
 *   ADJUST < 0 gives back from curr first, then from prev.
 *
 * token_bucket and gcra (one implementation, a GCRA meter, which is a token bucket of
 *   capacity B refilled at one unit per T). T = ceil(P / L) (rounded up, so the rate is
 *   never above L per P), B = burst (token_bucket defaults it to L, gcra to 1; the
 *   caller fills it in). The state is the theoretical arrival time tat (0 = idle).
 *   tat' = max(tat, now); new_tat = tat' + cost * T. A cost passes iff
 *   new_tat - now <= B * T; then tat := new_tat, remaining = floor((B*T - (new_tat -
 *   now)) / T), reset_after = new_tat - now. Denied: retry_after = new_tat - now - B*T,
 *   remaining = floor((B*T - (tat' - now)) / T), reset_after = tat' - now. window =
 *   B * T. These are redis-cell's CL.THROTTLE answers with max_burst = B - 1 (limit
 *   reported = B, retry_after 0 where redis-cell says -1). At most B + floor(d / T)
 *   units pass in any span of d microseconds.
 *
 * ADJUST (rl_cell_adjust, rl_log_adjust) adds delta units to the usage at now: > 0
 *   charges (fixed: count += delta; counter: curr += delta; bucket: tat' += delta * T;
 *   log: an entry at now), < 0 gives back, never below zero usage (bucket: tat never
 *   below now). A charge saturates at twice the capacity C (L, or B for buckets), so
 *   that every state is back to empty within two windows: fixed: count <= 2L; counter:
 *   curr <= 2L; bucket: tat <= now + 2 * B * T; log: the units in the trailing period
 *   <= 2L (only what fits is logged). A charge cut short by that ceiling sets
 *   verdict.capped. Its verdict describes the state after the adjustment, consuming
 *   nothing: allowed and retry_after are those of a cost-1 request now; remaining and
 *   reset_after are the state's own (not minus the probe's unit).
 *
 * Expiry: after rl_cell_expires_at / rl_log_expires_at the state equals a zeroed one
 *   (fixed: window end; counter: end of the window after the stored one, or of the
 *   stored one if only prev is left; bucket: tat; log: newest.at + P).
 *
 * Arithmetic is exact (128-bit where a product could overflow); a time beyond int64
 * saturates, which only rates the config refuses (a window over 2^32-1 ms) can reach.
 * A cost above rl_rate_capacity() is a caller bug (the engine answers COST_TOO_LARGE):
 * it is denied, nothing consumed, retry_after = window. A cell given a
 * sliding_window_log rate is decided as sliding_window_counter.
 */
#include "algo.h"
#include "alloc.h"

#include <string.h>

#define LOG_INITIAL_CAP 4 /* entries of a log's first ring */

typedef __int128 i128;
typedef unsigned __int128 u128;

/* One algorithm on a cell. A "state" is the cell normalized to now: fixed and counter
 * windows moved to now's window, the bucket's tat raised to now. */
typedef struct cell_ops {
    void (*load)(const rl_rate *rate, const rl_cell *cell, int64_t now, rl_cell *state);
    bool (*fits)(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost);
    void (*charge)(const rl_rate *rate, rl_cell *state, int64_t now, int64_t delta);
    void (*figures)(const rl_rate *rate, const rl_cell *state, int64_t now, rl_verdict *out);
    int64_t (*retry)(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost);
    int64_t (*expires)(const rl_rate *rate, const rl_cell *cell);
    bool (*saturate)(const rl_rate *rate, rl_cell *state, int64_t now); /* to 2 x capacity */
} cell_ops;

/* ---- arithmetic helpers ---- */

static int64_t clamp64(i128 value) {
    if (value > INT64_MAX)
        return INT64_MAX;
    if (value < INT64_MIN)
        return INT64_MIN;
    return (int64_t)value;
}

static uint64_t clamp_u64(u128 value) {
    return value > UINT64_MAX ? UINT64_MAX : (uint64_t)value;
}

/* Returns the start of the period-aligned window holding t (floor, also below 0). */
static int64_t window_start(int64_t t, int64_t period) {
    int64_t offset = t % period;
    if (offset < 0)
        offset += period;
    return t - offset;
}

/* Returns a non-negative count as unsigned (negative, i.e. corrupt, counts as 0). */
static uint64_t usage(int64_t count) {
    return count > 0 ? (uint64_t)count : 0;
}

/* Returns count + delta, saturated, never below 0. */
static int64_t add_units(int64_t count, int64_t delta) {
    int64_t sum = clamp64((i128)count + delta);
    return sum > 0 ? sum : 0;
}

/* Returns a cost as a signed count of units. */
static int64_t units(uint64_t cost) {
    return cost > INT64_MAX ? INT64_MAX : (int64_t)cost;
}

/* Returns whether used + cost <= limit, without overflow. */
static bool fits_in(uint64_t used, uint64_t cost, uint64_t limit) {
    return used <= limit && cost <= limit - used;
}

/* Returns the most units a charge may leave in use: twice the capacity. */
static uint64_t ceiling_of(uint64_t capacity) {
    return clamp_u64((u128)capacity * 2);
}

/* Lowers *count to twice limit if it is above. Returns whether it was. */
static bool cap_count(int64_t *count, uint64_t limit) {
    int64_t ceiling = units(ceiling_of(limit));
    if (*count <= ceiling)
        return false;
    *count = ceiling;
    return true;
}

/* Returns what is left of limit after used, never below 0. */
static uint64_t room(uint64_t limit, uint64_t used) {
    return used < limit ? limit - used : 0;
}

/* ---- rates ---- */

static bool is_bucket(const rl_rate *rate) {
    return rate->algorithm == RL_ALGO_TOKEN_BUCKET || rate->algorithm == RL_ALGO_GCRA;
}

/* Returns the bucket's emission interval T = ceil(period / limit), at least 1. */
static i128 bucket_interval(const rl_rate *rate) {
    uint64_t period = (uint64_t)rate->period_us;
    return (i128)((period - 1) / rate->limit + 1);
}

/* Returns the bucket's tolerance B * T. */
static i128 bucket_tolerance(const rl_rate *rate) {
    return (i128)rate->burst * bucket_interval(rate);
}

uint64_t rl_rate_capacity(const rl_rate *rate) {
    /* window algorithms and concurrency (its slots): the limit */
    return is_bucket(rate) ? rate->burst : rate->limit;
}

int64_t rl_rate_window_us(const rl_rate *rate) {
    /* window algorithms: the period; concurrency: the lease, held in period_us */
    return is_bucket(rate) ? clamp64(bucket_tolerance(rate)) : rate->period_us;
}

static void verdict_init(rl_verdict *out, const rl_rate *rate, bool allowed) {
    *out = (rl_verdict){
        .allowed = allowed, .limit = rl_rate_capacity(rate), .window_us = rl_rate_window_us(rate)};
}

/* ---- fixed_window: a = window start, b = units in it ---- */

static void fixed_load(const rl_rate *rate, const rl_cell *cell, int64_t now, rl_cell *state) {
    int64_t start = window_start(now, rate->period_us);
    *state = (rl_cell){.a = start, .b = cell->a == start ? (int64_t)usage(cell->b) : 0};
}

static bool fixed_fits(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    (void)now;
    return fits_in(usage(state->b), cost, rate->limit);
}

static void fixed_charge(const rl_rate *rate, rl_cell *state, int64_t now, int64_t delta) {
    (void)rate;
    (void)now;
    state->b = add_units(state->b, delta);
}

static void fixed_figures(const rl_rate *rate, const rl_cell *state, int64_t now, rl_verdict *out) {
    out->remaining = room(rate->limit, usage(state->b));
    out->reset_after_us = state->b > 0 ? state->a + rate->period_us - now : 0;
}

static int64_t fixed_retry(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    (void)cost;
    return state->a + rate->period_us - now;
}

static int64_t fixed_expires(const rl_rate *rate, const rl_cell *cell) {
    return cell->b > 0 ? clamp64((i128)cell->a + rate->period_us) : cell->a;
}

/* The window's count, and the counter's current one, stay at most 2 x limit. */
static bool count_saturate(const rl_rate *rate, rl_cell *state, int64_t now) {
    (void)now;
    return cap_count(&state->b, rate->limit);
}

/* ---- sliding_window_counter: a = window start, b = its units, c = previous window's ---- */

static void counter_load(const rl_rate *rate, const rl_cell *cell, int64_t now, rl_cell *state) {
    int64_t start = window_start(now, rate->period_us);
    *state = (rl_cell){.a = start};
    if (cell->a == start) {
        state->b = (int64_t)usage(cell->b);
        state->c = (int64_t)usage(cell->c);
    } else if (cell->a == start - rate->period_us) {
        state->c = (int64_t)usage(cell->b);
    }
}

/* Returns floor(prev * (period - elapsed) / period) + curr, computed exactly. */
static uint64_t counter_estimate(const rl_rate *rate, const rl_cell *state, int64_t now) {
    uint64_t period = (uint64_t)rate->period_us;
    uint64_t left = period - (uint64_t)(now - state->a);
    u128 weighted = (u128)usage(state->c) * left / period;
    return clamp_u64(weighted + usage(state->b));
}

static bool counter_fits(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    return fits_in(counter_estimate(rate, state, now), cost, rate->limit);
}

/* Takes back units from curr first, then from prev. */
static void counter_charge(const rl_rate *rate, rl_cell *state, int64_t now, int64_t delta) {
    (void)rate;
    (void)now;
    if (delta >= 0) {
        state->b = add_units(state->b, delta);
        return;
    }
    i128 rest = (i128)state->b + delta;
    state->b = rest > 0 ? (int64_t)rest : 0;
    if (rest < 0)
        state->c = add_units(state->c, clamp64(rest));
}

static void counter_figures(const rl_rate *rate, const rl_cell *state, int64_t now,
                            rl_verdict *out) {
    out->remaining = room(rate->limit, counter_estimate(rate, state, now));
    if (state->b > 0)
        out->reset_after_us = state->a + 2 * rate->period_us - now;
    else if (state->c > 0)
        out->reset_after_us = state->a + rate->period_us - now;
    else
        out->reset_after_us = 0;
}

/* Finds the first instant of the window [start, start + period) at which
 * floor(prev * (period - elapsed) / period) + curr + cost <= limit. The condition is
 * floor(prev * x / period) <= k with x = period - elapsed and k = limit - cost - curr,
 * that is prev * x <= (k + 1) * period - 1, so x <= x_max = ((k+1)*period - 1) / prev.
 * Returns false if no instant of the window qualifies. */
static bool counter_pass_in(uint64_t prev, uint64_t curr, uint64_t limit, uint64_t cost,
                            int64_t start, int64_t period, int64_t *at) {
    if (!fits_in(curr, cost, limit))
        return false;
    u128 k = limit - cost - curr;
    u128 x_max = prev ? ((k + 1) * (u128)period - 1) / prev : (u128)period;
    if (x_max == 0)
        return false;
    *at = x_max >= (u128)period ? start : start + period - (int64_t)x_max;
    return true;
}

static int64_t counter_retry(const rl_rate *rate, const rl_cell *state, int64_t now,
                             uint64_t cost) {
    int64_t period = rate->period_us, at;
    uint64_t curr = usage(state->b), prev = usage(state->c);
    if (!counter_pass_in(prev, curr, rate->limit, cost, state->a, period, &at) &&
        !counter_pass_in(curr, 0, rate->limit, cost, state->a + period, period, &at))
        at = state->a + 2 * period;
    return at - now;
}

static int64_t counter_expires(const rl_rate *rate, const rl_cell *cell) {
    if (cell->b > 0)
        return clamp64((i128)cell->a + 2 * (i128)rate->period_us);
    if (cell->c > 0)
        return clamp64((i128)cell->a + rate->period_us);
    return cell->a;
}

/* ---- token_bucket and gcra: a = theoretical arrival time (tat) ---- */

static void bucket_load(const rl_rate *rate, const rl_cell *cell, int64_t now, rl_cell *state) {
    (void)rate;
    *state = (rl_cell){.a = cell->a > now ? cell->a : now};
}

/* Returns how far the tat would be ahead of now after cost more units. */
static i128 bucket_ahead(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    return (i128)state->a - now + (i128)cost * bucket_interval(rate);
}

static bool bucket_fits(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    return bucket_ahead(rate, state, now, cost) <= bucket_tolerance(rate);
}

static void bucket_charge(const rl_rate *rate, rl_cell *state, int64_t now, int64_t delta) {
    i128 tat = (i128)state->a + (i128)delta * bucket_interval(rate);
    state->a = tat > now ? clamp64(tat) : now;
}

static void bucket_figures(const rl_rate *rate, const rl_cell *state, int64_t now,
                           rl_verdict *out) {
    i128 ahead = (i128)state->a - now, tolerance = bucket_tolerance(rate);
    i128 left = ahead < tolerance ? (tolerance - ahead) / bucket_interval(rate) : 0;
    out->remaining = clamp_u64((u128)left);
    out->reset_after_us = clamp64(ahead);
}

static int64_t bucket_retry(const rl_rate *rate, const rl_cell *state, int64_t now, uint64_t cost) {
    return clamp64(bucket_ahead(rate, state, now, cost) - bucket_tolerance(rate));
}

static int64_t bucket_expires(const rl_rate *rate, const rl_cell *cell) {
    (void)rate;
    return cell->a;
}

/* The tat stays at most two windows (2 x B x T) ahead of now. */
static bool bucket_saturate(const rl_rate *rate, rl_cell *state, int64_t now) {
    i128 ceiling = (i128)now + 2 * bucket_tolerance(rate);
    if (state->a <= ceiling)
        return false;
    state->a = clamp64(ceiling);
    return true;
}

/* ---- cells ---- */

static const cell_ops fixed_ops = {fixed_load,  fixed_fits,    fixed_charge,  fixed_figures,
                                   fixed_retry, fixed_expires, count_saturate};
static const cell_ops counter_ops = {counter_load,    counter_fits,  counter_charge,
                                     counter_figures, counter_retry, counter_expires,
                                     count_saturate};
static const cell_ops bucket_ops = {bucket_load,  bucket_fits,    bucket_charge,  bucket_figures,
                                    bucket_retry, bucket_expires, bucket_saturate};

static const cell_ops *ops_for(const rl_rate *rate) {
    switch (rate->algorithm) {
    case RL_ALGO_FIXED_WINDOW:
        return &fixed_ops;
    case RL_ALGO_TOKEN_BUCKET:
    case RL_ALGO_GCRA:
        return &bucket_ops;
    case RL_ALGO_SLIDING_LOG:
    case RL_ALGO_SLIDING_COUNTER:
    default:
        return &counter_ops;
    }
}

/* Fills *out for state at now: allowed as given, the state's figures, the retry of cost. */
static void cell_verdict(const cell_ops *ops, const rl_rate *rate, const rl_cell *state,
                         int64_t now, uint64_t cost, bool allowed, rl_verdict *out) {
    verdict_init(out, rate, allowed);
    ops->figures(rate, state, now, out);
    if (allowed)
        return;
    if (cost > rl_rate_capacity(rate))
        out->retry_after_us = out->window_us;
    else
        out->retry_after_us = ops->retry(rate, state, now, cost);
}

void rl_cell_decide(const rl_rate *rate, const rl_cell *cell, int64_t now_us, uint64_t cost,
                    rl_cell *next, rl_verdict *out) {
    const cell_ops *ops = ops_for(rate);
    rl_cell state;
    ops->load(rate, cell, now_us, &state);
    bool allowed = cost <= rl_rate_capacity(rate) && ops->fits(rate, &state, now_us, cost);
    if (allowed)
        ops->charge(rate, &state, now_us, units(cost));
    cell_verdict(ops, rate, &state, now_us, cost, allowed, out);
    *next = state;
}

void rl_cell_adjust(const rl_rate *rate, const rl_cell *cell, int64_t now_us, int64_t delta,
                    rl_cell *next, rl_verdict *out) {
    const cell_ops *ops = ops_for(rate);
    rl_cell state;
    ops->load(rate, cell, now_us, &state);
    ops->charge(rate, &state, now_us, delta);
    bool capped = delta > 0 && ops->saturate(rate, &state, now_us);
    bool allowed = ops->fits(rate, &state, now_us, 1);
    cell_verdict(ops, rate, &state, now_us, 1, allowed, out);
    out->capped = capped;
    *next = state;
}

int64_t rl_cell_expires_at(const rl_rate *rate, const rl_cell *cell) {
    return ops_for(rate)->expires(rate, cell);
}

/* ---- sliding_window_log ---- */

static rl_log_entry *log_at(const rl_log *log, uint32_t index) {
    return &log->entries[(log->head + index) % log->cap];
}

static rl_log_entry *log_newest(const rl_log *log) {
    return log_at(log, log->len - 1);
}

void rl_log_trim(const rl_rate *rate, rl_log *log, int64_t now_us) {
    int64_t horizon = now_us - rate->period_us;
    while (log->len > 0 && log_at(log, 0)->at_us <= horizon) {
        log->total -= log_at(log, 0)->cost;
        log->head = (log->head + 1) % log->cap;
        log->len--;
    }
    if (log->len == 0)
        log->head = 0;
}

/* Fills remaining and reset_after as if pending more units were logged at now. */
static void log_figures(const rl_rate *rate, const rl_log *log, int64_t now, uint64_t pending,
                        rl_verdict *out) {
    int64_t newest = log->len > 0 ? log_newest(log)->at_us : INT64_MIN;
    if (pending > 0 && newest < now)
        newest = now;
    u128 used = (u128)usage(log->total) + pending;
    out->remaining = room(rate->limit, clamp_u64(used));
    out->reset_after_us = newest == INT64_MIN ? 0 : newest + rate->period_us - now;
}

/* Returns the wait until the oldest entries have left the trailing period far enough
 * for cost to fit: the entry whose expiry makes room decides it. */
static int64_t log_retry(const rl_rate *rate, const rl_log *log, int64_t now, uint64_t cost) {
    uint64_t kept = usage(log->total);
    for (uint32_t i = 0; i < log->len; i++) {
        const rl_log_entry *entry = log_at(log, i);
        kept -= usage(entry->cost) < kept ? usage(entry->cost) : kept;
        if (fits_in(kept, cost, rate->limit))
            return entry->at_us + rate->period_us - now;
    }
    return rate->period_us;
}

static void log_verdict(const rl_rate *rate, const rl_log *log, int64_t now, uint64_t cost,
                        bool consume, rl_verdict *out) {
    bool possible = cost <= rate->limit;
    bool allowed = possible && fits_in(usage(log->total), cost, rate->limit);
    verdict_init(out, rate, allowed);
    log_figures(rate, log, now, allowed && consume ? cost : 0, out);
    if (!allowed)
        out->retry_after_us = possible ? log_retry(rate, log, now, cost) : rate->period_us;
}

void rl_log_decide(const rl_rate *rate, rl_log *log, int64_t now_us, uint64_t cost,
                   rl_verdict *out) {
    rl_log_trim(rate, log, now_us);
    log_verdict(rate, log, now_us, cost, true, out);
}

int rl_log_reserve(const rl_rate *rate, rl_log *log) {
    if (log->len < log->cap || log->len >= rate->limit)
        return 0;
    if (log->cap > UINT32_MAX / 2)
        return -1;
    uint32_t cap = log->cap ? log->cap * 2 : LOG_INITIAL_CAP;
    rl_log_entry *entries = rl_malloc((size_t)cap * sizeof(*entries));
    if (!entries)
        return -1;
    for (uint32_t i = 0; i < log->len; i++)
        entries[i] = *log_at(log, i);
    rl_free(log->entries);
    log->entries = entries;
    log->cap = cap;
    log->head = 0;
    return 0;
}

/* Merges the oldest entry into the next one, which keeps its (later) time. */
static void log_merge_oldest(rl_log *log) {
    rl_log_entry *next = log_at(log, 1);
    next->cost = add_units(next->cost, log_at(log, 0)->cost);
    log->head = (log->head + 1) % log->cap;
    log->len--;
}

/* Appends units at now. An entry at now or later (a clock that stepped back) takes
 * them. A log of limit entries first merges its two oldest; if it still has no room
 * (limit 1, or the caller did not reserve), the newest entry takes them, restamped to
 * now (counting them longer, never shorter). With no storage at all they are dropped. */
void rl_log_commit(const rl_rate *rate, rl_log *log, int64_t now_us, uint64_t cost) {
    if (log->len > 0 && log_newest(log)->at_us < now_us && log->len >= rate->limit && log->len >= 2)
        log_merge_oldest(log);
    if (log->len > 0 &&
        (log_newest(log)->at_us >= now_us || log->len == log->cap || log->len >= rate->limit)) {
        rl_log_entry *newest = log_newest(log);
        newest->at_us = newest->at_us > now_us ? newest->at_us : now_us;
        newest->cost = add_units(newest->cost, units(cost));
    } else if (log->len < log->cap) {
        *log_at(log, log->len) = (rl_log_entry){.at_us = now_us, .cost = units(cost)};
        log->len++;
    } else {
        return;
    }
    log->total = add_units(log->total, units(cost));
}

/* Removes up to amount units, newest entries first. */
static void log_give_back(rl_log *log, uint64_t amount) {
    while (amount > 0 && log->len > 0) {
        rl_log_entry *newest = log_newest(log);
        uint64_t taken = usage(newest->cost) < amount ? usage(newest->cost) : amount;
        newest->cost -= (int64_t)taken;
        log->total = add_units(log->total, -(int64_t)taken);
        amount -= taken;
        if (newest->cost <= 0)
            log->len--;
    }
    if (log->len == 0)
        log->head = 0;
}

/* Returns how much of a charge of delta units fits under the ceiling of 2 x limit
 * units in the trailing period (the log is trimmed). */
static uint64_t log_headroom(const rl_rate *rate, const rl_log *log, uint64_t delta) {
    uint64_t room_left = room(ceiling_of(rate->limit), usage(log->total));
    return delta < room_left ? delta : room_left;
}

void rl_log_adjust(const rl_rate *rate, rl_log *log, int64_t now_us, int64_t delta,
                   rl_verdict *out) {
    uint64_t charged = 0;
    rl_log_trim(rate, log, now_us);
    if (delta > 0)
        charged = log_headroom(rate, log, (uint64_t)delta);
    if (charged > 0)
        rl_log_commit(rate, log, now_us, charged);
    else if (delta < 0)
        log_give_back(log, (uint64_t)0 - (uint64_t)delta);
    log_verdict(rate, log, now_us, 1, false, out);
    out->capped = delta > 0 && charged < (uint64_t)delta;
}

int64_t rl_log_expires_at(const rl_rate *rate, const rl_log *log) {
    if (log->len == 0)
        return 0;
    return clamp64((i128)log_newest(log)->at_us + rate->period_us);
}

void rl_log_free(rl_log *log) {
    rl_free(log->entries);
    memset(log, 0, sizeof(*log));
}

/* ---- verdicts ---- */

void rl_verdict_merge(rl_verdict *acc, const rl_verdict *v) {
    bool replace;
    if (acc->limit == 0)
        replace = true;
    else if (acc->allowed != v->allowed)
        replace = !v->allowed;
    else if (v->allowed)
        replace = v->remaining < acc->remaining;
    else
        replace = v->retry_after_us > acc->retry_after_us;
    if (replace)
        *acc = *v;
}
