/*
 * test_algo.c: the rate-limit algorithms against their stated semantics (see the top
 * of daemon/algo.c), with an injected clock. Hand-computed figures first, then
 * randomized runs checked by brute force against naive reference models.
 */
#include "algo.h"
#include "alloc.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define SEC 1000000LL           /* microseconds in a second */
#define T0 (1700000000LL * SEC) /* an epoch instant aligned to the second */
#define MAX_EVENTS 4096         /* admissions recorded by a randomized run */

/* Like ck_assert_msg, for hot loops: Check's own macros talk to the runner on every
 * call, even when the condition holds. */
#define require(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* ---- helpers ---- */

static rl_rate make_rate(rl_algorithm algorithm, uint64_t limit, int64_t period_us,
                         uint64_t burst) {
    return (rl_rate){
        .algorithm = algorithm, .limit = limit, .period_us = period_us, .burst = burst};
}

static int64_t align(int64_t t, int64_t period) {
    return t - t % period;
}

/* Decides on a cell and writes the next cell back (as a store would on commit). */
static rl_verdict cell_check(const rl_rate *rate, rl_cell *cell, int64_t now, uint64_t cost) {
    rl_verdict v;
    rl_cell next;
    rl_cell_decide(rate, cell, now, cost, &next, &v);
    if (v.allowed)
        *cell = next;
    return v;
}

/* Decides on a cell without committing. */
static rl_verdict cell_peek(const rl_rate *rate, const rl_cell *cell, int64_t now, uint64_t cost) {
    rl_verdict v;
    rl_cell next;
    rl_cell_decide(rate, cell, now, cost, &next, &v);
    return v;
}

/* Decides on a log and commits if allowed. */
static rl_verdict log_check(const rl_rate *rate, rl_log *log, int64_t now, uint64_t cost) {
    rl_verdict v;
    rl_log_decide(rate, log, now, cost, &v);
    if (v.allowed) {
        ck_assert_int_eq(rl_log_reserve(rate, log), 0);
        rl_log_commit(rate, log, now, cost);
    }
    return v;
}

static rl_log log_clone(const rl_log *log) {
    rl_log copy = *log;
    if (log->cap > 0) {
        copy.entries = rl_malloc(log->cap * sizeof(*log->entries));
        require(copy.entries != NULL, "out of memory");
        memcpy(copy.entries, log->entries, log->cap * sizeof(*log->entries));
    }
    return copy;
}

/* Decides on a copy of the log, so the log itself is left as it was. */
static rl_verdict log_peek(const rl_rate *rate, const rl_log *log, int64_t now, uint64_t cost) {
    rl_log copy = log_clone(log);
    rl_verdict v;
    rl_log_decide(rate, &copy, now, cost, &v);
    rl_log_free(&copy);
    return v;
}

static void assert_verdict(const rl_verdict *v, bool allowed, uint64_t limit, uint64_t remaining,
                           int64_t reset, int64_t retry, int64_t window) {
    ck_assert_int_eq(v->allowed, allowed);
    ck_assert_uint_eq(v->limit, limit);
    ck_assert_uint_eq(v->remaining, remaining);
    ck_assert_int_eq(v->reset_after_us, reset);
    ck_assert_int_eq(v->retry_after_us, retry);
    ck_assert_int_eq(v->window_us, window);
}

/* A deterministic xorshift generator, so failures reproduce. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static uint64_t rng_below(uint64_t *state, uint64_t bound) {
    return rng_next(state) % bound;
}

/* ---- a meter: one rate with its state, cell or log ---- */

typedef struct meter {
    rl_rate rate; /* the rate under test */
    rl_cell cell; /* its state, for every algorithm but the log */
    rl_log log;   /* its state, for the sliding log */
} meter;

typedef struct event {
    int64_t at;    /* admission instant */
    uint64_t cost; /* units admitted */
} event;

static bool is_log(const meter *m) {
    return m->rate.algorithm == RL_ALGO_SLIDING_LOG;
}

/* Decides and commits if allowed. Cells are written back even when denied, which the
 * interface says is harmless. */
static rl_verdict meter_check(meter *m, int64_t now, uint64_t cost) {
    if (is_log(m))
        return log_check(&m->rate, &m->log, now, cost);
    rl_verdict v;
    rl_cell next;
    rl_cell_decide(&m->rate, &m->cell, now, cost, &next, &v);
    m->cell = next;
    return v;
}

static rl_verdict meter_adjust(meter *m, int64_t now, int64_t delta) {
    rl_verdict v;
    rl_cell next;
    if (!is_log(m)) {
        rl_cell_adjust(&m->rate, &m->cell, now, delta, &next, &v);
        m->cell = next;
        return v;
    }
    if (delta > 0)
        ck_assert_int_eq(rl_log_reserve(&m->rate, &m->log), 0);
    rl_log_adjust(&m->rate, &m->log, now, delta, &v);
    return v;
}

/* Decides at now on scratch (a clone of the log, probed at ascending times only) or on
 * the meter's cell, committing nothing. */
static rl_verdict meter_probe(const meter *m, rl_log *scratch, int64_t now, uint64_t cost) {
    if (!is_log(m))
        return cell_peek(&m->rate, &m->cell, now, cost);
    rl_verdict v;
    rl_log_decide(&m->rate, scratch, now, cost, &v);
    return v;
}

/* A denied cost, retried exactly at now + retry, passes; every earlier instant (all of
 * them when full_scan, else now and retry - 1) is still denied. */
static void assert_retry_exact(const meter *m, int64_t now, uint64_t cost, int64_t retry,
                               bool full_scan) {
    ck_assert_int_gt(retry, 0);
    rl_log scratch = log_clone(&m->log);
    for (int64_t w = 0; w < retry; w = (full_scan || w == retry - 1) ? w + 1 : retry - 1)
        require(!meter_probe(m, &scratch, now + w, cost).allowed,
                "cost %llu allowed at +%lld, before retry_after %lld", (unsigned long long)cost,
                (long long)w, (long long)retry);
    require(meter_probe(m, &scratch, now + retry, cost).allowed,
            "cost %llu denied at retry_after %lld", (unsigned long long)cost, (long long)retry);
    rl_log_free(&scratch);
}

/* remaining is exact: that many more units pass at the same instant, one more does not. */
static void assert_remaining_exact(const meter *m, int64_t now, const rl_verdict *v) {
    uint64_t cap = rl_rate_capacity(&m->rate);
    rl_log scratch = log_clone(&m->log);
    if (v->remaining > 0 && v->remaining <= cap)
        ck_assert(meter_probe(m, &scratch, now, v->remaining).allowed);
    if (v->remaining + 1 <= cap)
        ck_assert(!meter_probe(m, &scratch, now, v->remaining + 1).allowed);
    rl_log_free(&scratch);
}

/* reset_after is when the full capacity is back (and, except for the approximate
 * counter, not a microsecond earlier). */
static void assert_reset_exact(const meter *m, int64_t now, const rl_verdict *v) {
    uint64_t cap = rl_rate_capacity(&m->rate);
    rl_log scratch = log_clone(&m->log);
    int64_t reset = v->reset_after_us;
    ck_assert_int_ge(reset, 0);
    if (reset > 0 && m->rate.algorithm != RL_ALGO_SLIDING_COUNTER)
        ck_assert(!meter_probe(m, &scratch, now + reset - 1, cap).allowed);
    rl_verdict full = meter_probe(m, &scratch, now + reset, cap);
    ck_assert(full.allowed);
    ck_assert_uint_eq(full.remaining, 0);
    rl_log_free(&scratch);
}

/* After its expiry instant the state answers exactly as a key never seen. */
static void assert_expiry_exact(const meter *m, int64_t now) {
    uint64_t cap = rl_rate_capacity(&m->rate);
    int64_t at =
        is_log(m) ? rl_log_expires_at(&m->rate, &m->log) : rl_cell_expires_at(&m->rate, &m->cell);
    at = at > now ? at : now;
    rl_verdict v =
        is_log(m) ? log_peek(&m->rate, &m->log, at, cap) : cell_peek(&m->rate, &m->cell, at, cap);
    rl_log empty = {0};
    rl_cell zero = {0};
    rl_verdict fresh =
        is_log(m) ? log_peek(&m->rate, &empty, at, cap) : cell_peek(&m->rate, &zero, at, cap);
    ck_assert_mem_eq(&v, &fresh, sizeof(v));
}

static meter make_meter(rl_algorithm algorithm, uint64_t limit, int64_t period, uint64_t burst) {
    return (meter){.rate = make_rate(algorithm, limit, period, burst)};
}

static void meter_free(meter *m) {
    rl_log_free(&m->log);
}

/* ---- rates and merging ---- */

START_TEST(test_rate_capacity_and_window) {
    rl_rate fixed = make_rate(RL_ALGO_FIXED_WINDOW, 10, 60 * SEC, 99);
    rl_rate bucket = make_rate(RL_ALGO_TOKEN_BUCKET, 100, 60 * SEC, 20);
    rl_rate gcra = make_rate(RL_ALGO_GCRA, 3, 10, 2);
    ck_assert_uint_eq(rl_rate_capacity(&fixed), 10);
    ck_assert_int_eq(rl_rate_window_us(&fixed), 60 * SEC);
    ck_assert_uint_eq(rl_rate_capacity(&bucket), 20);
    /* T = 600 ms, so 20 units refill in 12 s. */
    ck_assert_int_eq(rl_rate_window_us(&bucket), 12 * SEC);
    ck_assert_uint_eq(rl_rate_capacity(&gcra), 2);
    /* T = ceil(10 / 3) = 4 us: rounded up so the rate is never above 3 per 10 us. */
    ck_assert_int_eq(rl_rate_window_us(&gcra), 8);
}
END_TEST

START_TEST(test_verdict_merge) {
    rl_verdict a = {.allowed = true, .limit = 10, .remaining = 5, .window_us = 1};
    rl_verdict b = {.allowed = true, .limit = 100, .remaining = 3, .window_us = 2};
    rl_verdict c = {.allowed = false, .limit = 7, .retry_after_us = 40, .window_us = 3};
    rl_verdict d = {.allowed = false, .limit = 8, .retry_after_us = 90, .window_us = 4};
    rl_verdict acc = {0};
    rl_verdict_merge(&acc, &a);
    ck_assert_int_eq(acc.window_us, 1);
    rl_verdict_merge(&acc, &b);
    ck_assert_int_eq(acc.window_us, 2); /* fewest remaining */
    rl_verdict_merge(&acc, &a);
    ck_assert_int_eq(acc.window_us, 2);
    rl_verdict_merge(&acc, &c);
    ck_assert_int_eq(acc.window_us, 3); /* a denial beats every allowance */
    rl_verdict_merge(&acc, &b);
    ck_assert_int_eq(acc.window_us, 3);
    rl_verdict_merge(&acc, &d);
    ck_assert_int_eq(acc.window_us, 4); /* the longest retry */
    rl_verdict_merge(&acc, &c);
    ck_assert(!acc.allowed);
    ck_assert_uint_eq(acc.limit, 8);
    ck_assert_int_eq(acc.retry_after_us, 90);
}
END_TEST

/* ---- fixed_window ---- */

START_TEST(test_fixed_counts_and_boundary) {
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 5, SEC, 0);
    rl_cell cell = {0};
    int64_t end = T0 + SEC;
    for (uint64_t i = 0; i < 5; i++) {
        rl_verdict v = cell_check(&rate, &cell, T0 + 100 * (int64_t)i, 1);
        assert_verdict(&v, true, 5, 4 - i, end - T0 - 100 * (int64_t)i, 0, SEC);
    }
    rl_verdict v = cell_check(&rate, &cell, T0 + 1000, 1);
    assert_verdict(&v, false, 5, 0, end - T0 - 1000, end - T0 - 1000, SEC);
    v = cell_check(&rate, &cell, end - 1, 1);
    assert_verdict(&v, false, 5, 0, 1, 1, SEC);
    v = cell_check(&rate, &cell, end, 1);
    assert_verdict(&v, true, 5, 4, SEC, 0, SEC);
    ck_assert_int_eq(cell.a, end);
    ck_assert_int_eq(cell.b, 1);
}
END_TEST

START_TEST(test_fixed_epoch_aligned_and_costs) {
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 10, 60 * SEC, 0);
    rl_cell cell = {0};
    int64_t start = align(T0, 60 * SEC), now = start + 45 * SEC;
    rl_verdict v = cell_check(&rate, &cell, now, 4);
    /* The first request 45 s into the minute resets with the minute, 15 s later. */
    assert_verdict(&v, true, 10, 6, 15 * SEC, 0, 60 * SEC);
    v = cell_check(&rate, &cell, now, 4);
    assert_verdict(&v, true, 10, 2, 15 * SEC, 0, 60 * SEC);
    v = cell_check(&rate, &cell, now + 1, 3);
    assert_verdict(&v, false, 10, 2, 15 * SEC - 1, 15 * SEC - 1, 60 * SEC);
    v = cell_check(&rate, &cell, now + 2, 2);
    assert_verdict(&v, true, 10, 0, 15 * SEC - 2, 0, 60 * SEC);
    v = cell_check(&rate, &cell, start + 60 * SEC, 10);
    assert_verdict(&v, true, 10, 0, 60 * SEC, 0, 60 * SEC);
}
END_TEST

START_TEST(test_fixed_denied_next_is_unchanged) {
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 2, SEC, 0);
    rl_cell cell = {0}, next;
    rl_verdict v;
    cell_check(&rate, &cell, T0, 2);
    rl_cell_decide(&rate, &cell, T0 + 5, 1, &next, &v);
    ck_assert(!v.allowed);
    ck_assert_int_eq(next.a, cell.a);
    ck_assert_int_eq(next.b, 2);
}
END_TEST

START_TEST(test_fixed_adjust) {
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 10, SEC, 0);
    rl_cell cell = {0}, next;
    rl_verdict v;
    int64_t now = T0 + 300000;
    rl_cell_adjust(&rate, &cell, now, 3, &next, &v);
    /* The verdict shows the state after the charge; the cost-1 probe is not consumed. */
    assert_verdict(&v, true, 10, 7, 700000, 0, SEC);
    ck_assert_int_eq(next.b, 3);
    rl_cell_adjust(&rate, &next, now, 20, &cell, &v);
    assert_verdict(&v, false, 10, 0, 700000, 700000, SEC);
    ck_assert_int_eq(cell.b, 20); /* 23 held at 2 x the limit */
    ck_assert(v.capped);
    rl_cell_adjust(&rate, &cell, now, -14, &next, &v);
    assert_verdict(&v, true, 10, 4, 700000, 0, SEC);
    ck_assert(!v.capped);
    rl_cell_adjust(&rate, &next, now, -100, &cell, &v);
    assert_verdict(&v, true, 10, 10, 0, 0, SEC);
    ck_assert_int_eq(cell.b, 0);
    /* A charge in a later window does not carry the old window's count. */
    rl_cell old = {.a = T0, .b = 9};
    rl_cell_adjust(&rate, &old, T0 + SEC, 2, &next, &v);
    assert_verdict(&v, true, 10, 8, SEC, 0, SEC);
}
END_TEST

START_TEST(test_fixed_expiry) {
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 3, SEC, 0);
    rl_cell cell = {0}, zero = {0};
    cell_check(&rate, &cell, T0 + 10, 3);
    int64_t expires = rl_cell_expires_at(&rate, &cell);
    ck_assert_int_eq(expires, T0 + SEC);
    ck_assert(!cell_peek(&rate, &cell, expires - 1, 1).allowed);
    rl_verdict v = cell_peek(&rate, &cell, expires, 3), fresh = cell_peek(&rate, &zero, expires, 3);
    ck_assert_mem_eq(&v, &fresh, sizeof(v));
    ck_assert_int_le(rl_cell_expires_at(&rate, &zero), T0);
}
END_TEST

START_TEST(test_fixed_exact_admissions_per_window) {
    /* A request every 10 us for ten 1 ms windows: exactly 5 per window. */
    rl_rate rate = make_rate(RL_ALGO_FIXED_WINDOW, 5, 1000, 0);
    rl_cell cell = {0};
    int per_window[10] = {0};
    for (int64_t t = 0; t < 10000; t += 10)
        if (cell_check(&rate, &cell, T0 + t, 1).allowed)
            per_window[t / 1000]++;
    for (int w = 0; w < 10; w++)
        ck_assert_int_eq(per_window[w], 5);
}
END_TEST

/* ---- sliding_window_log ---- */

START_TEST(test_log_exact_trailing_period) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 3, 10 * SEC, 0);
    rl_log log = {0};
    for (int64_t i = 0; i < 3; i++) {
        rl_verdict v = log_check(&rate, &log, T0 + i * SEC, 1);
        assert_verdict(&v, true, 3, 2 - (uint64_t)i, 10 * SEC, 0, 10 * SEC);
    }
    rl_verdict v = log_check(&rate, &log, T0 + 3 * SEC, 1);
    /* The entry at T0 leaves at T0 + 10 s; the newest (T0 + 2 s) at T0 + 12 s. */
    assert_verdict(&v, false, 3, 0, 9 * SEC, 7 * SEC, 10 * SEC);
    v = log_check(&rate, &log, T0 + 10 * SEC - 1, 1);
    assert_verdict(&v, false, 3, 0, 2 * SEC + 1, 1, 10 * SEC);
    v = log_check(&rate, &log, T0 + 10 * SEC, 1);
    assert_verdict(&v, true, 3, 0, 10 * SEC, 0, 10 * SEC);
    ck_assert_uint_eq(log.len, 3);
    ck_assert_int_eq(log.total, 3);
    rl_log_free(&log);
}
END_TEST

START_TEST(test_log_costs_and_retry) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 10, 10 * SEC, 0);
    rl_log log = {0};
    log_check(&rate, &log, T0, 4);
    log_check(&rate, &log, T0 + SEC, 3);
    rl_verdict v = log_check(&rate, &log, T0 + 2 * SEC, 3);
    assert_verdict(&v, true, 10, 0, 10 * SEC, 0, 10 * SEC);
    /* Cost 5 needs both the 4 (at T0) and the 3 (at T0 + 1 s) gone: T0 + 11 s. */
    v = log_check(&rate, &log, T0 + 5 * SEC, 5);
    assert_verdict(&v, false, 10, 0, 7 * SEC, 6 * SEC, 10 * SEC);
    /* Cost 4 needs only the 4 gone: T0 + 10 s. */
    v = log_check(&rate, &log, T0 + 5 * SEC, 4);
    assert_verdict(&v, false, 10, 0, 7 * SEC, 5 * SEC, 10 * SEC);
    v = log_check(&rate, &log, T0 + 10 * SEC, 5);
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.remaining, 4);
    v = log_check(&rate, &log, T0 + 11 * SEC, 5);
    assert_verdict(&v, true, 10, 2, 10 * SEC, 0, 10 * SEC);
    rl_log_free(&log);
}
END_TEST

START_TEST(test_log_merges_same_instant) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 10, SEC, 0);
    rl_log log = {0};
    log_check(&rate, &log, T0, 2);
    log_check(&rate, &log, T0, 3);
    ck_assert_uint_eq(log.len, 1);
    ck_assert_int_eq(log.entries[log.head].cost, 5);
    /* An entry stamped before the newest (the clock stepped back) joins the newest. */
    log_check(&rate, &log, T0 + 50, 1);
    log_check(&rate, &log, T0 + 20, 1);
    ck_assert_uint_eq(log.len, 2);
    ck_assert_int_eq(log.total, 7);
    ck_assert_int_eq(rl_log_expires_at(&rate, &log), T0 + 50 + SEC);
    rl_log_free(&log);
}
END_TEST

START_TEST(test_log_grows_and_wraps) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 600, 10000, 0);
    rl_log log = {0};
    /* 300 entries at distinct instants: the ring doubles from 4 to 512. */
    for (int64_t i = 0; i < 300; i++)
        ck_assert(log_check(&rate, &log, T0 + 10 * i, 1).allowed);
    ck_assert_uint_eq(log.len, 300);
    ck_assert_uint_eq(log.cap, 512);
    ck_assert_int_eq(log.total, 300);
    /* At T0 + 12000, the entries up to T0 + 2000 are out: 99 remain, head is 201. */
    rl_log_trim(&rate, &log, T0 + 12000);
    ck_assert_uint_eq(log.len, 99);
    ck_assert_uint_eq(log.head, 201);
    /* Append across the ring's end, then grow while wrapped: order must survive. */
    for (int64_t i = 0; i < 500; i++) {
        ck_assert_int_eq(rl_log_reserve(&rate, &log), 0);
        rl_log_commit(&rate, &log, T0 + 12000 + i, 1);
    }
    ck_assert_uint_eq(log.len, 599);
    ck_assert_uint_eq(log.cap, 1024);
    ck_assert_int_eq(log.total, 599);
    for (uint32_t i = 1; i < log.len; i++)
        ck_assert_int_lt(log.entries[(log.head + i - 1) % log.cap].at_us,
                         log.entries[(log.head + i) % log.cap].at_us);
    /* At T0 + 12499 the entries up to T0 + 2490 are out: 550 used. Cost 60 needs ten
     * more gone, the last of them at T0 + 2590, so it passes at T0 + 12590. */
    rl_verdict v = log_peek(&rate, &log, T0 + 12499, 60);
    assert_verdict(&v, false, 600, 50, 10000, 91, 10000);
    rl_log_free(&log);
    ck_assert_ptr_null(log.entries);
    ck_assert_uint_eq(log.cap, 0);
}
END_TEST

START_TEST(test_log_reserve_allocation_failure) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 10, SEC, 0);
    rl_log log = {0};
    rl_alloc_fail_after(0);
    ck_assert_int_eq(rl_log_reserve(&rate, &log), -1);
    ck_assert_ptr_null(log.entries);
    ck_assert_uint_eq(log.cap, 0);
    rl_alloc_fail_after(-1);
    for (int64_t i = 0; i < 4; i++) {
        ck_assert_int_eq(rl_log_reserve(&rate, &log), 0);
        rl_log_commit(&rate, &log, T0 + i, 1);
    }
    rl_log before = log;
    rl_log_entry saved[4];
    memcpy(saved, log.entries, sizeof(saved));
    rl_alloc_fail_after(0);
    ck_assert_int_eq(rl_log_reserve(&rate, &log), -1);
    rl_alloc_fail_after(-1);
    ck_assert_mem_eq(&log, &before, sizeof(log));
    ck_assert_mem_eq(log.entries, saved, sizeof(saved));
    /* A merge into the entry at the same instant needs no room. */
    rl_log_commit(&rate, &log, T0 + 3, 2);
    ck_assert_uint_eq(log.len, 4);
    ck_assert_int_eq(log.total, 6);
    ck_assert_int_eq(rl_log_reserve(&rate, &log), 0);
    ck_assert_uint_eq(log.cap, 8);
    rl_log_free(&log);
}
END_TEST

START_TEST(test_log_adjust) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 10, 10 * SEC, 0);
    rl_log log = {0};
    rl_verdict v;
    log_check(&rate, &log, T0, 2);
    ck_assert_int_eq(rl_log_reserve(&rate, &log), 0);
    rl_log_adjust(&rate, &log, T0 + SEC, 3, &v);
    assert_verdict(&v, true, 10, 5, 10 * SEC, 0, 10 * SEC);
    ck_assert_int_eq(rl_log_reserve(&rate, &log), 0);
    rl_log_adjust(&rate, &log, T0 + 2 * SEC, 6, &v);
    /* 11 used of 10: a cost-1 request waits for the 2 at T0 to leave. */
    assert_verdict(&v, false, 10, 0, 10 * SEC, 8 * SEC, 10 * SEC);
    /* Giving back 7 takes the 6 at T0 + 2 s and 1 of the 3 at T0 + 1 s. */
    rl_log_adjust(&rate, &log, T0 + 3 * SEC, -7, &v);
    assert_verdict(&v, true, 10, 6, 8 * SEC, 0, 10 * SEC);
    ck_assert_uint_eq(log.len, 2);
    ck_assert_int_eq(log.total, 4);
    rl_log_adjust(&rate, &log, T0 + 3 * SEC, -100, &v);
    assert_verdict(&v, true, 10, 10, 0, 0, 10 * SEC);
    ck_assert_uint_eq(log.len, 0);
    ck_assert_int_eq(rl_log_expires_at(&rate, &log), 0);
    rl_log_free(&log);
}
END_TEST

START_TEST(test_log_expiry_and_trim) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 2, SEC, 0);
    rl_log log = {0};
    log_check(&rate, &log, T0, 1);
    log_check(&rate, &log, T0 + 400, 1);
    ck_assert_int_eq(rl_log_expires_at(&rate, &log), T0 + 400 + SEC);
    rl_verdict before = log_peek(&rate, &log, T0 + SEC + 1, 1);
    rl_log_trim(&rate, &log, T0 + SEC + 1);
    ck_assert_uint_eq(log.len, 1);
    rl_verdict after = log_peek(&rate, &log, T0 + SEC + 1, 1);
    ck_assert_mem_eq(&before, &after, sizeof(before));
    /* Allowed, the probe would be the newest entry: reset a full period away. */
    assert_verdict(&after, true, 2, 0, SEC, 0, SEC);
    rl_log_trim(&rate, &log, T0 + 400 + SEC);
    ck_assert_uint_eq(log.len, 0);
    ck_assert_int_eq(log.total, 0);
    rl_log_free(&log);
}
END_TEST

/* ---- sliding_window_counter ---- */

START_TEST(test_counter_weighted_estimate_and_retry) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_COUNTER, 10, SEC, 0);
    rl_cell cell = {.a = T0 - SEC, .b = 10, .c = 4}; /* last window: 10 units */
    /* 250 ms into the window: floor(10 * 0.75) = 7 still count, 3 pass. */
    rl_verdict v = cell_check(&rate, &cell, T0 + 250000, 3);
    assert_verdict(&v, true, 10, 0, 2 * SEC - 250000, 0, SEC);
    ck_assert_int_eq(cell.a, T0);
    ck_assert_int_eq(cell.b, 3);
    ck_assert_int_eq(cell.c, 10);
    /* One more passes once floor(10 * (1 s - e) / 1 s) <= 6: e >= 300001 us. */
    v = cell_check(&rate, &cell, T0 + 250000, 1);
    assert_verdict(&v, false, 10, 0, 2 * SEC - 250000, 50001, SEC);
    ck_assert(!cell_peek(&rate, &cell, T0 + 300000, 1).allowed);
    v = cell_peek(&rate, &cell, T0 + 300001, 1);
    assert_verdict(&v, true, 10, 0, 2 * SEC - 300001, 0, SEC);
}
END_TEST

START_TEST(test_counter_full_window_waits_into_next) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_COUNTER, 10, SEC, 0);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&rate, &cell, T0, 10);
    assert_verdict(&v, true, 10, 0, 2 * SEC, 0, SEC);
    /* The next window starts with 10 weighted by 1: the first pass is at T0 + 1 s + 1. */
    v = cell_check(&rate, &cell, T0 + 400000, 1);
    assert_verdict(&v, false, 10, 0, 2 * SEC - 400000, 600001, SEC);
    ck_assert(!cell_peek(&rate, &cell, T0 + SEC, 1).allowed);
    ck_assert(cell_peek(&rate, &cell, T0 + SEC + 1, 1).allowed);
    /* Cost 10 needs floor(10 * x / 1 s) = 0, x <= 99999 us left: T0 + 1 s + 900001. */
    v = cell_check(&rate, &cell, T0 + 400000, 10);
    ck_assert_int_eq(v.retry_after_us, SEC + 900001 - 400000);
    ck_assert(!cell_peek(&rate, &cell, T0 + SEC + 900000, 10).allowed);
    ck_assert(cell_peek(&rate, &cell, T0 + SEC + 900001, 10).allowed);
    /* Cost 5 passes once floor(10 * x / 1 s) <= 5, x = 599999 us left: e = 400001. */
    v = cell_check(&rate, &cell, T0 + 400000, 5);
    ck_assert_int_eq(v.retry_after_us, SEC + 400001 - 400000);
}
END_TEST

START_TEST(test_counter_reset_and_stale_windows) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_COUNTER, 10, SEC, 0);
    rl_cell cell = {.a = T0, .b = 10, .c = 0};
    int64_t now = T0 + SEC + 500000;
    /* floor(10 * 0.5) = 5 still count. Denied, only the previous window is left: reset
     * at the end of this window; cost 6 passes once floor(10 * x / 1 s) <= 4. */
    rl_verdict v = cell_peek(&rate, &cell, now, 6);
    assert_verdict(&v, false, 10, 5, 500000, 1, SEC);
    /* Allowed, the current window holds units: reset at the end of the next window. */
    v = cell_peek(&rate, &cell, now, 1);
    assert_verdict(&v, true, 10, 4, SEC + 500000, 0, SEC);
    /* Two windows later the stored window is stale: a new key. */
    v = cell_peek(&rate, &cell, T0 + 2 * SEC, 1);
    assert_verdict(&v, true, 10, 9, 2 * SEC, 0, SEC);
    ck_assert_int_eq(rl_cell_expires_at(&rate, &cell), T0 + 2 * SEC);
    rl_cell prev_only = {.a = T0, .b = 0, .c = 4};
    ck_assert_int_eq(rl_cell_expires_at(&rate, &prev_only), T0 + SEC);
    rl_cell zero = {0};
    ck_assert_int_le(rl_cell_expires_at(&rate, &zero), T0);
    v = cell_peek(&rate, &zero, T0 + 123, 10);
    assert_verdict(&v, true, 10, 0, 2 * SEC - 123, 0, SEC);
}
END_TEST

START_TEST(test_counter_adjust) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_COUNTER, 10, SEC, 0);
    rl_cell cell = {.a = T0, .b = 8}, next;
    rl_verdict v;
    int64_t now = T0 + SEC + 500000; /* prev = 8, weighted to 4 */
    rl_cell_adjust(&rate, &cell, now, 3, &next, &v);
    assert_verdict(&v, true, 10, 3, SEC + 500000, 0, SEC);
    ck_assert_int_eq(next.b, 3);
    ck_assert_int_eq(next.c, 8);
    rl_cell_adjust(&rate, &next, now, 4, &cell, &v);
    /* 4 + 7 = 11: a cost-1 request waits until floor(8 * x / 1 s) <= 2, x = 374999. */
    assert_verdict(&v, false, 10, 0, SEC + 500000, 125001, SEC);
    /* Giving back 9 empties curr (7) and takes 2 from prev. */
    rl_cell_adjust(&rate, &cell, now, -9, &next, &v);
    ck_assert_int_eq(next.b, 0);
    ck_assert_int_eq(next.c, 6);
    assert_verdict(&v, true, 10, 7, 500000, 0, SEC);
    rl_cell_adjust(&rate, &next, now, -100, &cell, &v);
    assert_verdict(&v, true, 10, 10, 0, 0, SEC);
}
END_TEST

START_TEST(test_counter_exact_admissions) {
    /* A request every 10 us: 5 in the first 1 ms window, then the weighted previous
     * window lets one through each time floor(5 * x / 1000) drops by one. */
    rl_rate rate = make_rate(RL_ALGO_SLIDING_COUNTER, 5, 1000, 0);
    rl_cell cell = {0};
    int64_t admitted[64];
    int count = 0;
    for (int64_t t = 0; t < 2000 && count < 64; t += 10)
        if (cell_check(&rate, &cell, T0 + t, 1).allowed)
            admitted[count++] = t;
    const int64_t expected[] = {0, 10, 20, 30, 40, 1010, 1210, 1410, 1610, 1810};
    ck_assert_int_eq(count, 10);
    for (int i = 0; i < count; i++)
        ck_assert_int_eq(admitted[i], expected[i]);
}
END_TEST

/* ---- token_bucket and gcra ---- */

START_TEST(test_gcra_redis_cell_example) {
    /* CL.THROTTLE user123 15 30 60: max_burst 15, 30 per 60 s. */
    rl_rate rate = make_rate(RL_ALGO_GCRA, 30, 60 * SEC, 16);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&rate, &cell, T0, 1);
    /* redis-cell: 0 (allowed), 16 (limit), 15 (remaining), -1 (retry), 2 (reset, s). */
    assert_verdict(&v, true, 16, 15, 2 * SEC, 0, 32 * SEC);
    for (uint64_t i = 1; i < 16; i++) {
        v = cell_check(&rate, &cell, T0, 1);
        assert_verdict(&v, true, 16, 15 - i, 2 * SEC * (int64_t)(i + 1), 0, 32 * SEC);
    }
    v = cell_check(&rate, &cell, T0, 1);
    assert_verdict(&v, false, 16, 0, 32 * SEC, 2 * SEC, 32 * SEC);
    v = cell_check(&rate, &cell, T0 + 2 * SEC - 1, 1);
    assert_verdict(&v, false, 16, 0, 30 * SEC + 1, 1, 32 * SEC);
    v = cell_check(&rate, &cell, T0 + 2 * SEC, 1);
    assert_verdict(&v, true, 16, 0, 32 * SEC, 0, 32 * SEC);
    /* Ten seconds of quiet refill five units. */
    v = cell_check(&rate, &cell, T0 + 12 * SEC, 1);
    assert_verdict(&v, true, 16, 4, 24 * SEC, 0, 32 * SEC);
    ck_assert_int_eq(rl_cell_expires_at(&rate, &cell), T0 + 36 * SEC);
}
END_TEST

START_TEST(test_gcra_burst_one) {
    rl_rate rate = make_rate(RL_ALGO_GCRA, 10, SEC, 1);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&rate, &cell, T0, 1);
    assert_verdict(&v, true, 1, 0, 100000, 0, 100000);
    v = cell_check(&rate, &cell, T0 + 1, 1);
    assert_verdict(&v, false, 1, 0, 99999, 99999, 100000);
    v = cell_check(&rate, &cell, T0 + 100000, 1);
    assert_verdict(&v, true, 1, 0, 100000, 0, 100000);
}
END_TEST

START_TEST(test_token_bucket_protocol_example) {
    /* PROTOCOL.md's example: 100 per minute, allowed, 99 remaining, reset 600 ms. */
    rl_rate rate = make_rate(RL_ALGO_TOKEN_BUCKET, 100, 60 * SEC, 100);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&rate, &cell, T0, 1);
    assert_verdict(&v, true, 100, 99, 600000, 0, 60 * SEC);
}
END_TEST

START_TEST(test_token_bucket_costs) {
    rl_rate rate = make_rate(RL_ALGO_TOKEN_BUCKET, 10, 10 * SEC, 10);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&rate, &cell, T0, 10);
    assert_verdict(&v, true, 10, 0, 10 * SEC, 0, 10 * SEC);
    v = cell_check(&rate, &cell, T0 + 500000, 3);
    assert_verdict(&v, false, 10, 0, 9500000, 2500000, 10 * SEC);
    v = cell_check(&rate, &cell, T0 + 3 * SEC - 1, 3);
    ck_assert(!v.allowed);
    ck_assert_int_eq(v.retry_after_us, 1);
    ck_assert_uint_eq(v.remaining, 2); /* 2.999999 units refilled */
    v = cell_check(&rate, &cell, T0 + 3 * SEC, 3);
    assert_verdict(&v, true, 10, 0, 10 * SEC, 0, 10 * SEC);
}
END_TEST

START_TEST(test_token_bucket_rounds_interval_up) {
    /* 3 per 10 us: T = 4 us, so at most 3 + burst pass in any 10 us, never 4 + burst. */
    rl_rate rate = make_rate(RL_ALGO_TOKEN_BUCKET, 3, 10, 1);
    rl_cell cell = {0};
    int admitted = 0;
    for (int64_t t = 0; t < 1000; t++)
        admitted += cell_check(&rate, &cell, T0 + t, 1).allowed;
    ck_assert_int_eq(admitted, 250);
}
END_TEST

START_TEST(test_bucket_adjust) {
    rl_rate rate = make_rate(RL_ALGO_TOKEN_BUCKET, 10, 10 * SEC, 10);
    rl_cell cell = {0}, next;
    rl_verdict v;
    rl_cell_adjust(&rate, &cell, T0, 4, &next, &v);
    assert_verdict(&v, true, 10, 6, 4 * SEC, 0, 10 * SEC);
    ck_assert_int_eq(next.a, T0 + 4 * SEC);
    rl_cell_adjust(&rate, &next, T0, 8, &cell, &v);
    /* 12 units over a capacity of 10: a cost-1 request waits 3 s. */
    assert_verdict(&v, false, 10, 0, 12 * SEC, 3 * SEC, 10 * SEC);
    rl_cell_adjust(&rate, &cell, T0 + SEC, -5, &next, &v);
    assert_verdict(&v, true, 10, 4, 6 * SEC, 0, 10 * SEC);
    rl_cell_adjust(&rate, &next, T0 + SEC, -100, &cell, &v);
    /* Never below zero usage: tat stops at now. */
    assert_verdict(&v, true, 10, 10, 0, 0, 10 * SEC);
    ck_assert_int_eq(cell.a, T0 + SEC);
    ck_assert_int_eq(rl_cell_expires_at(&rate, &cell), T0 + SEC);
}
END_TEST

START_TEST(test_zeroed_state_is_a_new_key) {
    for (int algorithm = RL_ALGO_FIXED_WINDOW; algorithm <= RL_ALGO_GCRA; algorithm++) {
        meter m = make_meter((rl_algorithm)algorithm, 4, SEC, 4);
        rl_verdict v = meter_check(&m, T0 + 777, 4);
        ck_assert(v.allowed);
        ck_assert_uint_eq(v.remaining, 0);
        meter_free(&m);
    }
}
END_TEST

START_TEST(test_cost_above_capacity_is_denied) {
    /* The engine answers COST_TOO_LARGE first; the algorithms still refuse it. */
    rl_rate fixed = make_rate(RL_ALGO_FIXED_WINDOW, 5, SEC, 0);
    rl_rate gcra = make_rate(RL_ALGO_GCRA, 5, SEC, 2);
    rl_rate sliding = make_rate(RL_ALGO_SLIDING_LOG, 5, SEC, 0);
    rl_cell cell = {0};
    rl_log log = {0};
    rl_verdict v = cell_check(&fixed, &cell, T0, 6);
    assert_verdict(&v, false, 5, 5, 0, SEC, SEC);
    v = cell_check(&gcra, &cell, T0, 3);
    assert_verdict(&v, false, 2, 2, 0, 400000, 400000);
    v = log_check(&sliding, &log, T0, 6);
    assert_verdict(&v, false, 5, 5, 0, SEC, SEC);
    ck_assert_int_eq(log.len, 0);
}
END_TEST

START_TEST(test_extreme_rates_do_not_overflow) {
    /* The largest figures the wire can carry: T = 1 ms, B * T = 2^32 - 1 ms. */
    int64_t period = (int64_t)UINT32_MAX * 1000;
    rl_rate big = make_rate(RL_ALGO_TOKEN_BUCKET, UINT32_MAX, period, UINT32_MAX);
    ck_assert_int_eq(rl_rate_window_us(&big), period);
    rl_cell cell = {0};
    rl_verdict v = cell_check(&big, &cell, T0, UINT32_MAX);
    assert_verdict(&v, true, UINT32_MAX, 0, period, 0, period);
    v = cell_check(&big, &cell, T0, UINT32_MAX);
    assert_verdict(&v, false, UINT32_MAX, 0, period, period, period);
    /* A tolerance beyond int64 (the config refuses it: the window would not fit the
     * wire) saturates instead of wrapping: the tat stops ~292,000 years out. */
    rl_rate huge = make_rate(RL_ALGO_TOKEN_BUCKET, 1, period, UINT32_MAX);
    ck_assert_int_eq(rl_rate_window_us(&huge), INT64_MAX);
    cell = (rl_cell){0};
    ck_assert(cell_check(&huge, &cell, T0, UINT32_MAX).allowed);
    ck_assert_int_eq(cell.a, INT64_MAX);
    ck_assert_int_eq(rl_cell_expires_at(&huge, &cell), INT64_MAX);
    rl_rate wide = make_rate(RL_ALGO_SLIDING_COUNTER, UINT32_MAX, period, 0);
    rl_cell counter = {0};
    v = cell_check(&wide, &counter, T0, UINT32_MAX);
    ck_assert(v.allowed);
    v = cell_check(&wide, &counter, align(T0, period) + period, 1);
    ck_assert(!v.allowed);
    ck_assert_int_eq(v.retry_after_us, 1);
}
END_TEST

/* ---- bounds: a charge saturates at 2 x capacity, a refund stops at empty, a log
 * holds at most limit entries ---- */

/* The five algorithms at capacity 4 (burst 4 for the buckets), period 10 s. */
static meter bounded_meter(int algorithm) {
    return make_meter((rl_algorithm)algorithm, 4, 10 * SEC, 4);
}

START_TEST(test_adjust_saturates_at_twice_capacity) {
    for (int algorithm = RL_ALGO_FIXED_WINDOW; algorithm <= RL_ALGO_GCRA; algorithm++) {
        meter m = bounded_meter(algorithm);
        int64_t now = T0 + 123, window = rl_rate_window_us(&m.rate);
        ck_assert(meter_check(&m, now, 4).allowed); /* full */
        rl_verdict v = meter_adjust(&m, now, 4);    /* to 2 x capacity: nothing held back */
        ck_assert(!v.allowed && !v.capped);
        ck_assert_int_le(v.reset_after_us, 2 * window);
        v = meter_adjust(&m, now, 4); /* above it: held at the ceiling */
        ck_assert_msg(v.capped, "algorithm %d: a charge past 2 x capacity not capped", algorithm);
        ck_assert_int_le(v.reset_after_us, 2 * window);
        v = meter_adjust(&m, now, INT64_MAX);
        ck_assert(v.capped);
        ck_assert_int_le(v.reset_after_us, 2 * window);
        int64_t expires =
            is_log(&m) ? rl_log_expires_at(&m.rate, &m.log) : rl_cell_expires_at(&m.rate, &m.cell);
        ck_assert_int_le(expires, now + 2 * window);
        /* The usage is exactly 2 x capacity: giving back 4 leaves the key full, 4 more empty. */
        v = meter_adjust(&m, now, -4);
        ck_assert(!v.capped);
        ck_assert_uint_eq(v.remaining, 0);
        v = meter_adjust(&m, now, -4);
        ck_assert_uint_eq(v.remaining, 4);
        ck_assert_int_eq(v.reset_after_us, 0);
        /* Saturated again, the key is back to empty two windows later. */
        meter_adjust(&m, now, INT64_MAX);
        ck_assert(meter_check(&m, now + 2 * window, 4).allowed);
        meter_free(&m);
    }
}
END_TEST

START_TEST(test_refund_never_goes_below_empty) {
    for (int algorithm = RL_ALGO_FIXED_WINDOW; algorithm <= RL_ALGO_GCRA; algorithm++) {
        meter m = bounded_meter(algorithm);
        int64_t now = align(T0, 10 * SEC), window = rl_rate_window_us(&m.rate);
        rl_verdict v = meter_adjust(&m, now, -4); /* a key never seen */
        ck_assert(v.allowed && !v.capped);
        ck_assert_uint_eq(v.remaining, 4);
        ck_assert_int_eq(v.reset_after_us, 0);
        meter_adjust(&m, now, INT64_MIN);
        ck_assert(meter_check(&m, now, 4).allowed);
        ck_assert_msg(!meter_check(&m, now, 1).allowed, "algorithm %d: a refund made credit",
                      algorithm);
        /* Half a window into the next one (the counter's previous window still weighs). */
        now += window + window / 2;
        v = meter_adjust(&m, now, INT64_MIN);
        ck_assert_uint_eq(v.remaining, 4);
        ck_assert(meter_check(&m, now, 4).allowed);
        ck_assert_msg(!meter_check(&m, now, 1).allowed, "algorithm %d: a refund made credit",
                      algorithm);
        meter_free(&m);
    }
}
END_TEST

/* Returns the log's entry i (0 = oldest). */
static rl_log_entry log_entry(const rl_log *log, uint32_t i) {
    return log->entries[(log->head + i) % log->cap];
}

START_TEST(test_log_merges_its_two_oldest_entries) {
    rl_rate rate = make_rate(RL_ALGO_SLIDING_LOG, 3, 10 * SEC, 0);
    meter m = {.rate = rate};
    for (int64_t i = 0; i < 3; i++)
        ck_assert(!meter_adjust(&m, T0 + i * SEC, 1).capped);
    /* A fourth entry would be one too many: those of T0 and T0 + 1 s become one at 1 s. */
    ck_assert(!meter_adjust(&m, T0 + 3 * SEC, 1).capped);
    ck_assert_uint_eq(m.log.len, 3);
    ck_assert_int_eq(m.log.total, 4);
    ck_assert_int_eq(log_entry(&m.log, 0).at_us, T0 + SEC);
    ck_assert_int_eq(log_entry(&m.log, 0).cost, 2);
    meter_adjust(&m, T0 + 4 * SEC, 2);
    ck_assert_uint_eq(m.log.len, 3);
    ck_assert_int_eq(log_entry(&m.log, 0).at_us, T0 + 2 * SEC);
    ck_assert_int_eq(log_entry(&m.log, 0).cost, 3);
    /* 6 units = 2 x limit: the next charge is held back whole. */
    rl_verdict v = meter_adjust(&m, T0 + 5 * SEC, 1);
    ck_assert(v.capped);
    ck_assert_int_eq(m.log.total, 6);
    /* At T0 + 11 s the units logged at 2 s, 3 s and 4 s (4 of them) still count, as they
     * would unmerged: a cost-1 request waits for the one of 3 s to leave (at 13 s). */
    v = log_check(&rate, &m.log, T0 + 11 * SEC, 1);
    ck_assert(!v.allowed);
    ck_assert_int_eq(v.retry_after_us, 2 * SEC);
    /* The CHECK path's commit keeps the bound too, and limit 1 restamps the one entry. */
    ck_assert_int_eq(rl_log_reserve(&rate, &m.log), 0);
    rl_log_commit(&rate, &m.log, T0 + 12 * SEC, 1);
    ck_assert_uint_eq(m.log.len, 3);
    rl_rate one = make_rate(RL_ALGO_SLIDING_LOG, 1, 10 * SEC, 0);
    rl_log log = {0};
    for (int64_t i = 0; i < 3; i++) {
        ck_assert_int_eq(rl_log_reserve(&one, &log), 0);
        rl_log_commit(&one, &log, T0 + i, 1);
    }
    ck_assert_uint_eq(log.len, 1);
    ck_assert_int_eq(log_entry(&log, 0).at_us, T0 + 2);
    ck_assert_int_eq(log.total, 3);
    rl_log_free(&log);
    meter_free(&m);
}
END_TEST

#define FLOOD 100000 /* ADJUSTs of the flood test */

/* 100,000 ADJUST +1 on a limit-5 log (15 min), one every 10 ms: the log keeps at most 5
 * entries and 10 units; every probe that the units logged (unmerged) would deny is
 * denied, and the key frees no earlier than they say, within a period of the last. */
START_TEST(test_log_adjust_flood_stays_bounded) {
    static int64_t logged[FLOOD]; /* instants of the units actually logged */
    int count = 0, first = 0;     /* logged, and the first still in the trailing period */
    int64_t period = 15 * 60 * SEC, now = T0;
    meter m = make_meter(RL_ALGO_SLIDING_LOG, 5, period, 0);
    for (int i = 0; i < FLOOD; i++) {
        now = T0 + (int64_t)i * 10000;
        rl_verdict v = meter_adjust(&m, now, 1);
        if (!v.capped)
            logged[count++] = now;
        while (first < count && logged[first] <= now - period)
            first++;
        require(m.log.len <= 5 && m.log.total <= 10, "step %d: %u entries, %lld units", i,
                m.log.len, (long long)m.log.total);
        require(m.log.total >= count - first, "step %d: the log forgot units", i);
        require(v.allowed == (count - first + 1 <= 5), "step %d: probe %d", i, v.allowed);
    }
    ck_assert_int_ge(count - first, 5);
    rl_verdict v = log_peek(&m.rate, &m.log, now, 1);
    ck_assert(!v.allowed);
    assert_retry_exact(&m, now, 1, v.retry_after_us, false);
    int64_t exact_free = logged[count - 5] + period; /* when 4 logged units are left */
    ck_assert_int_ge(now + v.retry_after_us, exact_free);
    ck_assert_int_le(now + v.retry_after_us, logged[count - 1] + period);
    meter_free(&m);
}
END_TEST

/* ---- randomized runs ---- */

typedef struct run_config {
    rl_algorithm algorithm; /* algorithm under test */
    uint64_t limit;         /* rate limit */
    int64_t period;         /* rate period */
    uint64_t burst;         /* bucket capacity */
} run_config;

static const run_config run_configs[] = {
    {RL_ALGO_FIXED_WINDOW, 7, 1000, 0},
    {RL_ALGO_SLIDING_LOG, 9, 1000, 0},
    {RL_ALGO_SLIDING_LOG, 4, 997, 0},
    {RL_ALGO_SLIDING_COUNTER, 10, 1000, 0},
    {RL_ALGO_SLIDING_COUNTER, 3, 997, 0},
    {RL_ALGO_SLIDING_COUNTER, 50, 7, 0},
    {RL_ALGO_TOKEN_BUCKET, 5, 1000, 5},
    {RL_ALGO_TOKEN_BUCKET, 3, 1000, 4},
    {RL_ALGO_GCRA, 7, 1000, 1},
    {RL_ALGO_GCRA, 30, 60 * SEC, 16},
    {RL_ALGO_SLIDING_COUNTER, 100, 60 * SEC, 0},
};
#define RUN_CONFIGS ((int)(sizeof(run_configs) / sizeof(run_configs[0])))

/* Returns the next instant of a random run: mostly small steps, some repeats, some
 * idle gaps longer than two windows. */
static int64_t next_instant(uint64_t *rng, int64_t now, int64_t window) {
    uint64_t pick = rng_below(rng, 100);
    if (pick < 15)
        return now;
    if (pick < 20)
        return now + 2 * window + (int64_t)rng_below(rng, (uint64_t)window);
    return now + 1 + (int64_t)rng_below(rng, (uint64_t)window / 5 + 1);
}

static uint64_t random_cost(uint64_t *rng, uint64_t cap) {
    return rng_below(rng, 3) ? 1 : 1 + rng_below(rng, cap);
}

/* Every verdict of a random run keeps its promises: retry_after, remaining and
 * reset_after are exact (checked by brute force), including after adjustments. */
START_TEST(test_random_promises_hold) {
    const run_config *config = &run_configs[_i % RUN_CONFIGS];
    uint64_t rng = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
    meter m = make_meter(config->algorithm, config->limit, config->period, config->burst);
    int64_t now = T0 + (int64_t)rng_below(&rng, SEC), window = rl_rate_window_us(&m.rate);
    bool small = window <= 5000;
    int denials = 0;
    for (int step = 0; step < 300; step++) {
        now = next_instant(&rng, now, window);
        bool adjust = rng_below(&rng, 10) == 0;
        /* An adjustment's verdict is that of a cost-1 probe. */
        uint64_t cost = adjust ? 1 : random_cost(&rng, rl_rate_capacity(&m.rate));
        int64_t cap = (int64_t)rl_rate_capacity(&m.rate);
        rl_verdict v =
            adjust
                ? meter_adjust(&m, now, (int64_t)rng_below(&rng, 2 * (uint64_t)cap + 9) - cap - 4)
                : meter_check(&m, now, cost);
        require(v.reset_after_us <= 2 * window, "reset_after %lld beyond two windows",
                (long long)v.reset_after_us);
        require(!is_log(&m) || m.log.len <= m.rate.limit, "%u log entries", m.log.len);
        if (!v.allowed) {
            denials++;
            assert_retry_exact(&m, now, cost, v.retry_after_us, small);
        }
        assert_remaining_exact(&m, now, &v);
        assert_reset_exact(&m, now, &v);
        assert_expiry_exact(&m, now);
    }
    ck_assert_int_gt(denials, 10);
    meter_free(&m);
}
END_TEST

/* ---- naive reference models: sliding log and sliding counter from the raw history ---- */

typedef struct history {
    event events[MAX_EVENTS]; /* admissions, in time order */
    int len;                  /* admissions recorded */
} history;

static void history_add(history *h, int64_t at, uint64_t cost) {
    ck_assert_int_lt(h->len, MAX_EVENTS);
    h->events[h->len++] = (event){.at = at, .cost = cost};
}

/* Sums the admissions with from <= at < to. */
static uint64_t history_sum(const history *h, int64_t from, int64_t to) {
    uint64_t sum = 0;
    for (int i = 0; i < h->len; i++)
        if (h->events[i].at >= from && h->events[i].at < to)
            sum += h->events[i].cost;
    return sum;
}

/* The usage a cost is checked against at now, computed from the history alone. */
static uint64_t reference_usage(const rl_rate *rate, const history *h, int64_t now) {
    int64_t period = rate->period_us;
    if (rate->algorithm == RL_ALGO_SLIDING_LOG)
        return history_sum(h, now - period + 1, now + 1);
    int64_t start = align(now, period), left = start + period - now;
    uint64_t prev = history_sum(h, start - period, start);
    return prev * (uint64_t)left / (uint64_t)period + history_sum(h, start, now + 1);
}

/* reset_after from the history, with pending units about to be admitted at now. */
static int64_t reference_reset(const rl_rate *rate, const history *h, int64_t now,
                               uint64_t pending) {
    int64_t period = rate->period_us;
    if (rate->algorithm == RL_ALGO_SLIDING_LOG) {
        if (pending > 0)
            return period;
        return h->len > 0 && h->events[h->len - 1].at > now - period
                   ? h->events[h->len - 1].at + period - now
                   : 0;
    }
    int64_t start = align(now, period);
    if (pending > 0 || history_sum(h, start, now + 1) > 0)
        return start + 2 * period - now;
    return history_sum(h, start - period, start) > 0 ? start + period - now : 0;
}

/* The first wait after which cost passes, found by stepping the clock. */
static int64_t reference_retry(const rl_rate *rate, const history *h, int64_t now, uint64_t cost) {
    for (int64_t w = 1;; w++)
        if (reference_usage(rate, h, now + w) + cost <= rate->limit)
            return w;
}

static void check_against_reference(const run_config *config, uint64_t seed) {
    static history h;
    uint64_t rng = seed;
    meter m = make_meter(config->algorithm, config->limit, config->period, config->burst);
    int64_t now = T0 + (int64_t)rng_below(&rng, SEC);
    h.len = 0;
    for (int step = 0; step < 400; step++) {
        now = next_instant(&rng, now, config->period);
        uint64_t cost = random_cost(&rng, config->limit);
        uint64_t used = reference_usage(&m.rate, &h, now);
        bool allowed = used + cost <= config->limit;
        rl_verdict v = meter_check(&m, now, cost);
        ck_assert_int_eq(v.allowed, allowed);
        ck_assert_uint_eq(v.remaining, config->limit - used - (allowed ? cost : 0));
        ck_assert_int_eq(v.reset_after_us, reference_reset(&m.rate, &h, now, allowed ? cost : 0));
        ck_assert_int_eq(v.retry_after_us, allowed ? 0 : reference_retry(&m.rate, &h, now, cost));
        if (allowed)
            history_add(&h, now, cost);
    }
    meter_free(&m);
}

START_TEST(test_log_and_counter_match_reference) {
    static const run_config configs[] = {
        {RL_ALGO_SLIDING_LOG, 9, 1000, 0},      {RL_ALGO_SLIDING_LOG, 4, 997, 0},
        {RL_ALGO_SLIDING_COUNTER, 10, 1000, 0}, {RL_ALGO_SLIDING_COUNTER, 3, 997, 0},
        {RL_ALGO_SLIDING_COUNTER, 50, 7, 0},
    };
    for (int i = 0; i < (int)(sizeof(configs) / sizeof(configs[0])); i++)
        for (uint64_t seed = 1; seed <= 4; seed++)
            check_against_reference(&configs[i], seed * 0x2545f4914f6cdd1dULL);
}
END_TEST

/* ---- admission bounds over any trailing window ---- */

/* Runs dense random traffic and records what was admitted. */
static void admit_random(meter *m, uint64_t seed, history *h) {
    uint64_t rng = seed;
    int64_t now = T0 + (int64_t)rng_below(&rng, SEC), period = m->rate.period_us;
    h->len = 0;
    for (int step = 0; step < 3000 && h->len < MAX_EVENTS; step++) {
        now += rng_below(&rng, 8) == 0 ? period : (int64_t)rng_below(&rng, period / 20 + 1);
        uint64_t cost = random_cost(&rng, rl_rate_capacity(&m->rate));
        if (meter_check(m, now, cost).allowed)
            history_add(h, now, cost);
    }
}

/* Returns the most admitted in any trailing period (t - period, t]. */
static uint64_t max_trailing(const history *h, int64_t period) {
    uint64_t most = 0;
    for (int i = 0; i < h->len; i++) {
        uint64_t sum = history_sum(h, h->events[i].at - period + 1, h->events[i].at + 1);
        most = sum > most ? sum : most;
    }
    return most;
}

/* Returns the most admitted in any epoch-aligned window. */
static uint64_t max_aligned(const history *h, int64_t period) {
    uint64_t most = 0;
    for (int i = 0; i < h->len; i++) {
        int64_t start = align(h->events[i].at, period);
        uint64_t sum = history_sum(h, start, start + period);
        most = sum > most ? sum : most;
    }
    return most;
}

/* GCRA: between any two admissions t_i <= t_j, at most B + floor((t_j - t_i) / T) pass. */
static void assert_bucket_bound(const rl_rate *rate, const history *h) {
    int64_t interval = ((rate->period_us - 1) / (int64_t)rate->limit) + 1;
    for (int i = 0; i < h->len; i++) {
        uint64_t sum = 0;
        for (int j = i; j < h->len; j++) {
            sum += h->events[j].cost;
            int64_t span = h->events[j].at - h->events[i].at;
            require(sum <= rate->burst + (uint64_t)(span / interval),
                    "%llu units passed in %lld us", (unsigned long long)sum, (long long)span);
        }
    }
}

START_TEST(test_trailing_window_bounds) {
    static history h;
    const run_config *config = &run_configs[_i % RUN_CONFIGS];
    meter m = make_meter(config->algorithm, config->limit, config->period, config->burst);
    admit_random(&m, 0xd1b54a32d192ed03ULL + (uint64_t)_i, &h);
    uint64_t limit = config->limit, trailing = max_trailing(&h, config->period);
    ck_assert_int_gt(h.len, 20);
    switch (config->algorithm) {
    case RL_ALGO_SLIDING_LOG:
        ck_assert_uint_eq(trailing, limit); /* reached, never passed */
        break;
    case RL_ALGO_FIXED_WINDOW:
    case RL_ALGO_SLIDING_COUNTER:
        ck_assert_uint_eq(max_aligned(&h, config->period), limit);
        ck_assert_uint_le(trailing, 2 * limit);
        break;
    case RL_ALGO_TOKEN_BUCKET:
    case RL_ALGO_GCRA:
        assert_bucket_bound(&m.rate, &h);
        ck_assert_uint_le(trailing, config->burst + limit);
        break;
    case RL_ALGO_CONCURRENCY: /* not a meter: test_algo_lease.c */
        ck_abort_msg("no concurrency run config");
        break;
    }
    meter_free(&m);
}
END_TEST

static Suite *algo_suite(void) {
    Suite *suite = suite_create("algo");
    TCase *figures = tcase_create("figures");
    tcase_add_test(figures, test_rate_capacity_and_window);
    tcase_add_test(figures, test_verdict_merge);
    tcase_add_test(figures, test_fixed_counts_and_boundary);
    tcase_add_test(figures, test_fixed_epoch_aligned_and_costs);
    tcase_add_test(figures, test_fixed_denied_next_is_unchanged);
    tcase_add_test(figures, test_fixed_adjust);
    tcase_add_test(figures, test_fixed_expiry);
    tcase_add_test(figures, test_fixed_exact_admissions_per_window);
    tcase_add_test(figures, test_log_exact_trailing_period);
    tcase_add_test(figures, test_log_costs_and_retry);
    tcase_add_test(figures, test_log_merges_same_instant);
    tcase_add_test(figures, test_log_grows_and_wraps);
    tcase_add_test(figures, test_log_reserve_allocation_failure);
    tcase_add_test(figures, test_log_adjust);
    tcase_add_test(figures, test_log_expiry_and_trim);
    tcase_add_test(figures, test_counter_weighted_estimate_and_retry);
    tcase_add_test(figures, test_counter_full_window_waits_into_next);
    tcase_add_test(figures, test_counter_reset_and_stale_windows);
    tcase_add_test(figures, test_counter_adjust);
    tcase_add_test(figures, test_counter_exact_admissions);
    tcase_add_test(figures, test_gcra_redis_cell_example);
    tcase_add_test(figures, test_gcra_burst_one);
    tcase_add_test(figures, test_token_bucket_protocol_example);
    tcase_add_test(figures, test_token_bucket_costs);
    tcase_add_test(figures, test_token_bucket_rounds_interval_up);
    tcase_add_test(figures, test_bucket_adjust);
    tcase_add_test(figures, test_zeroed_state_is_a_new_key);
    tcase_add_test(figures, test_cost_above_capacity_is_denied);
    tcase_add_test(figures, test_extreme_rates_do_not_overflow);
    tcase_add_test(figures, test_adjust_saturates_at_twice_capacity);
    tcase_add_test(figures, test_refund_never_goes_below_empty);
    tcase_add_test(figures, test_log_merges_its_two_oldest_entries);
    tcase_add_test(figures, test_log_adjust_flood_stays_bounded);
    suite_add_tcase(suite, figures);
    TCase *random = tcase_create("random");
    tcase_add_loop_test(random, test_random_promises_hold, 0, 3 * RUN_CONFIGS);
    tcase_add_test(random, test_log_and_counter_match_reference);
    tcase_add_loop_test(random, test_trailing_window_bounds, 0, 2 * RUN_CONFIGS);
    suite_add_tcase(suite, random);
    return suite;
}

int main(void) {
    SRunner *runner = srunner_create(algo_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
